from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.contrib.admin.models import LogEntry
        from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
        from django.db.models.signals import post_save

        from accounts import signals

        user_logged_out.connect(
            signals.revoke_oauth_tokens_on_logout, dispatch_uid="accounts.revoke_oauth_on_logout"
        )
        user_logged_in.connect(signals.audit_login, dispatch_uid="accounts.audit_login")
        user_logged_out.connect(signals.audit_logout, dispatch_uid="accounts.audit_logout")
        user_login_failed.connect(signals.audit_login_failed, dispatch_uid="accounts.audit_failed")
        post_save.connect(signals.audit_admin_change, sender=LogEntry, dispatch_uid="accounts.log")

        from django.db.models.signals import m2m_changed

        from accounts import signin
        from accounts.models import Group

        m2m_changed.connect(
            signin.on_membership_change,
            sender=Group.members.through,
            dispatch_uid="accounts.stop_servers_when_refused",
        )
