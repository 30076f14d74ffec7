"""JupyterHub's auth_state: what the sign-in learned upstream (access and
refresh tokens, the ID token's claims), kept per user, encrypted at rest with
HUB_CRYPT_KEY (Fernet; several keys separated by `;` rotate, the first one
encrypts, like JUPYTERHUB_CRYPT_KEY). Only when HUB_AUTH_STATE is on."""

from __future__ import annotations

import json
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings


class AuthStateUnavailable(RuntimeError):
    """auth_state is off, or the stored value cannot be read with the keys given."""


def _fernet() -> MultiFernet:
    keys = [k.strip() for k in settings.HUB_CRYPT_KEY.split(";") if k.strip()]
    if not settings.HUB_AUTH_STATE or not keys:
        raise AuthStateUnavailable("auth_state needs HUB_AUTH_STATE=true and HUB_CRYPT_KEY")
    return MultiFernet([Fernet(key.encode()) for key in keys])


def is_enabled() -> bool:
    return bool(settings.HUB_AUTH_STATE and settings.HUB_CRYPT_KEY)


def encrypt(state: dict[str, Any]) -> str:
    return _fernet().encrypt(json.dumps(state).encode()).decode()


def decrypt(token: str) -> dict[str, Any] | None:
    """The stored state, or None when none was stored."""
    if not token:
        return None
    try:
        return json.loads(_fernet().decrypt(token.encode()))
    except InvalidToken:
        raise AuthStateUnavailable("auth_state was encrypted with another HUB_CRYPT_KEY") from None


def spawn_environment(encrypted: str) -> dict[str, str]:
    """What a user's server gets from their auth_state (JupyterHub leaves this
    to an auth_state_hook; here it is built in): the upstream access token of
    an OpenID Connect login, the entry's DN of an LDAP login. Nothing when
    auth_state is off, or none was kept, or HUB_AUTH_STATE_ENV is empty."""
    if not (is_enabled() and encrypted and settings.HUB_AUTH_STATE_ENV):
        return {}
    state = decrypt(encrypted) or {}
    env = {}
    if state.get("access_token"):
        env[settings.HUB_AUTH_STATE_ENV] = str(state["access_token"])
    if state.get("ldap_dn"):
        env["UPSTREAM_LDAP_DN"] = str(state["ldap_dn"])
    return env
