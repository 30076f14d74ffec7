"""The operator's view of accounts at /hub/admin/: users (approve, admin flag,
groups), hub groups and API tokens (revoke; hashes are never shown)."""

from __future__ import annotations

from typing import Any

from allauth.account.models import EmailAddress
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.forms import UserChangeForm
from django.contrib.auth.models import Group as DjangoGroup
from django.db.models import QuerySet
from django.http import HttpRequest

from accounts import audit, services
from accounts.models import ApiToken, AuditEvent, Group, User

# The hub's groups are accounts.Group; Django's permission groups are unused.
admin.site.unregister(DjangoGroup)
# sign-up is by username only: allauth's e-mail address records stay unused
if admin.site.is_registered(EmailAddress):
    admin.site.unregister(EmailAddress)
admin.site.site_header = "Jupyter Hub administration"
admin.site.site_title = "Hub admin"
admin.site.index_title = "Users, servers and profiles"
admin.site.site_url = "/hub/home"


class AuditedActions:
    """Records every bulk action of this admin in the audit log (Django's own
    change log, which the log follows too, does not see custom actions)."""

    def response_action(self, request: HttpRequest, queryset: QuerySet) -> Any:
        audit.record(
            audit.Action.ADMIN_ACTION,
            actor=request.user.username,
            target=queryset.model._meta.label_lower,
            request=request,
            admin_action=request.POST.get("action", ""),
            selected=request.POST.getlist(helpers.ACTION_CHECKBOX_NAME)[:1000],
        )
        return super().response_action(request, queryset)


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    """Read-only: the log is evidence, so nobody edits or deletes it here."""

    list_display = ("created", "action", "actor", "target", "address")
    list_filter = ("action",)
    search_fields = ("actor", "target")
    date_hierarchy = "created"
    readonly_fields = ("created", "action", "actor", "target", "address", "detail")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: AuditEvent | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: AuditEvent | None = None) -> bool:
        return False


class MembershipInline(admin.TabularInline):
    model = Group.members.through
    extra = 1
    verbose_name = "group membership"
    verbose_name_plural = "groups"
    autocomplete_fields = ["group"]


class HubUserChangeForm(UserChangeForm):
    """Django's user form with the hub's words: its stock help texts talk about
    permissions and 150-character names, neither of which the hub has."""

    class Meta(UserChangeForm.Meta):
        model = User
        labels = {"is_superuser": "Admin", "is_active": "Active", "is_approved": "Approved"}
        help_texts = {
            "username": "1-63 lowercase letters, digits, '.', '_' or '-', starting with a "
            "letter or digit. Renaming needs the user's servers stopped.",
            "is_superuser": "The hub's admin flag: may use this admin site and act on "
            "every user's servers and tokens (JupyterHub's admin).",
            "is_active": "Untick to lock the account without deleting it: no login, no "
            "API access. Running servers keep running until stopped.",
            "is_approved": "Self sign-ups start unapproved and cannot log in until approved.",
        }


@admin.register(User)
class UserAdmin(AuditedActions, DjangoUserAdmin):
    form = HubUserChangeForm
    list_display = [
        "username",
        "is_approved",
        "is_superuser",
        "is_active",
        "sign_in",
        "group_names",
        "last_activity",
        "created",
    ]
    list_filter = ["is_approved", "is_superuser", "is_active", "sign_in", "hub_groups"]
    search_fields = ["username", "first_name", "last_name", "email"]
    ordering = ["username"]
    actions = ["approve", "make_admin", "remove_admin"]
    inlines = [MembershipInline]
    fieldsets = [
        (None, {"fields": ["username", "password"]}),
        ("Personal info", {"fields": ["display_name", "first_name", "last_name", "email"]}),
        (
            "Sign-in",
            {
                "fields": ["sign_in", "external_groups"],
                "description": "How the user last signed in, and the groups that method "
                "reported (they are set again at every login).",
            },
        ),
        ("Access", {"fields": ["is_approved", "is_active", "is_superuser"]}),
        (
            "Storage",
            {
                "fields": ["storage_name"],
                "description": "Set at the first start and kept when the user is renamed, "
                "so their files stay theirs.",
            },
        ),
        # one creation date: `created` (JupyterHub's); Django's date_joined is not shown
        ("Dates", {"fields": ["created", "last_login", "last_activity"]}),
    ]
    readonly_fields = [
        *("created", "last_login", "last_activity"),
        *("sign_in", "external_groups", "storage_name"),
    ]

    def get_queryset(self, request: HttpRequest) -> QuerySet[User]:
        return super().get_queryset(request).prefetch_related("hub_groups")

    @admin.display(description="groups")
    def group_names(self, user: User) -> str:
        return ", ".join(g.name for g in user.hub_groups.all())

    def save_model(self, request: HttpRequest, obj: User, form, change: bool) -> None:
        obj.is_staff = obj.is_superuser  # staff follows the admin flag, as in services.set_admin
        super().save_model(request, obj, form, change)

    @admin.action(description="Approve selected users")
    def approve(self, request: HttpRequest, queryset: QuerySet[User]) -> None:
        count = services.approve_users(queryset)
        self.message_user(request, f"Approved {count} user(s).", messages.SUCCESS)

    @admin.action(description="Make selected users admins")
    def make_admin(self, request: HttpRequest, queryset: QuerySet[User]) -> None:
        for user in queryset:
            services.set_admin(user, True)
        self.message_user(request, f"{queryset.count()} user(s) are now admins.")

    @admin.action(description="Remove admin rights from selected users")
    def remove_admin(self, request: HttpRequest, queryset: QuerySet[User]) -> None:
        others = queryset.exclude(pk=request.user.pk)  # never lock yourself out
        for user in others:
            services.set_admin(user, False)
        self.message_user(request, f"{others.count()} user(s) are no longer admins.")


@admin.register(Group)
class GroupAdmin(admin.ModelAdmin):
    list_display = ["name", "member_count"]
    search_fields = ["name"]
    filter_horizontal = ["members"]

    @admin.display(description="members")
    def member_count(self, group: Group) -> int:
        return group.members.count()


@admin.register(ApiToken)
class ApiTokenAdmin(AuditedActions, admin.ModelAdmin):
    """Tokens are created by their owners (/hub/token, the API or the CLI);
    here they can only be inspected and revoked."""

    list_display = ["__str__", "kind", "note", "created", "expires_at", "last_activity"]
    list_filter = ["kind", "created", "expires_at"]
    search_fields = ["user__username", "service", "note", "prefix"]
    actions = ["revoke"]
    fields = [
        "user",
        "service",
        "kind",
        "prefix",
        "note",
        "scopes",
        "server",
        "oauth_client",
        "session_id",
        "created",
        "expires_at",
        "last_activity",
    ]
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: ApiToken | None = None) -> bool:
        return False

    def delete_model(self, request: HttpRequest, obj: ApiToken) -> None:
        services.revoke_token(obj, by=request.user.username)

    @admin.action(description="Revoke selected tokens")
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiToken]) -> None:
        count = 0
        for token in queryset:
            services.revoke_token(token, by=request.user.username)
            count += 1
        self.message_user(request, f"Revoked {count} token(s).", messages.SUCCESS)
