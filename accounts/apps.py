from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.contrib.auth.signals import user_logged_out

        from accounts import signals

        user_logged_out.connect(
            signals.revoke_oauth_tokens_on_logout, dispatch_uid="accounts.revoke_oauth_on_logout"
        )

        from django.db.models.signals import m2m_changed

        from accounts import signin
        from accounts.models import Group

        m2m_changed.connect(
            signin.on_membership_change,
            sender=Group.members.through,
            dispatch_uid="accounts.stop_servers_when_refused",
        )
