"""LDAP / Active Directory sign-in (django-auth-ldap), configured by the
HUB_LDAP_* variables (hubsite/signin.py). The only module that talks to the
directory. Usernames follow the hub's rules; filter and DN metacharacters in
what people type are escaped by django-auth-ldap before any search or bind."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django_auth_ldap.backend import LDAPBackend

from accounts import signin
from accounts.models import User
from accounts.validators import normalize_username, validate_username


class HubLDAPBackend(LDAPBackend):
    def ldap_to_django_username(self, username: str) -> str:
        return normalize_username(username)

    def get_or_build_user(self, username: str, ldap_user) -> tuple[User, bool]:
        try:
            validate_username(username)
        except ValidationError:
            # a directory name the hub cannot use as a URL segment or a home
            raise ldap_user.AuthenticationFailed(f"{username!r} is not a valid hub name") from None
        return super().get_or_build_user(username, ldap_user)

    def authenticate_ldap_user(self, ldap_user, password: str) -> User | None:
        user = super().authenticate_ldap_user(ldap_user, password)
        if user is None:
            return None
        groups = ldap_user.group_names if self.settings.GROUP_SEARCH else None
        state = {"ldap_dn": ldap_user.dn}
        signin.record_sign_in(user, method=User.SignIn.LDAP, groups=groups, state=state)
        return user


def still_in_directory(user: User) -> bool:
    """Before a start, like JupyterHub's refresh_pre_spawn: whether an LDAP
    user is still in the directory and in the allowed groups (their hub groups
    follow). Needs the service account (HUB_LDAP_BIND_DN): without it there is
    no way to look without the person's password, and the last login stands."""
    backend = HubLDAPBackend()
    if user.sign_in != User.SignIn.LDAP or not backend.settings.BIND_DN:
        return True
    refreshed = backend.populate_user(user.get_username())
    if refreshed is None:
        return False
    required = backend.settings.REQUIRE_GROUP
    if required is not None and not required.resolve(refreshed.ldap_user):
        return False
    if backend.settings.GROUP_SEARCH:
        signin.sync_groups(user, refreshed.ldap_user.group_names)
        user.save(update_fields=["external_groups"])
    return True
