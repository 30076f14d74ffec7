"""Signal receivers of the accounts app, connected in AccountsConfig.ready()."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from accounts import audit, identity, services
from accounts.identity import SESSION_ID_KEY


def revoke_oauth_tokens_on_logout(
    sender: object, request: HttpRequest | None = None, **kwargs: Any
) -> None:
    """Hub logout ends the session's OAuth tokens too, so single-user servers
    stop accepting their cookies (JupyterHub pain point: logout that does not
    log out of open servers). Django sends this before flushing the session."""
    session = getattr(request, "session", None)
    if session is None or not session.get(SESSION_ID_KEY):
        return
    services.revoke_session_tokens(identity.session_id_for(session))


def audit_login(sender: object, request: HttpRequest | None = None, **kwargs: Any) -> None:
    user = kwargs.get("user")
    audit.record(audit.Action.LOGIN, actor=getattr(user, "username", ""), request=request)


def audit_logout(sender: object, request: HttpRequest | None = None, **kwargs: Any) -> None:
    user = kwargs.get("user")
    audit.record(audit.Action.LOGOUT, actor=getattr(user, "username", ""), request=request)


def audit_login_failed(
    sender: object, credentials: dict[str, Any], request: HttpRequest | None = None, **kwargs: Any
) -> None:
    """The name tried (Django has masked the password already), never the password."""
    tried = credentials.get("username") or credentials.get("login") or ""
    audit.record(audit.Action.LOGIN_FAILED, target=str(tried), request=request)


def audit_admin_change(sender: object, instance: Any, created: bool, **kwargs: Any) -> None:
    """Every add, change and delete made in /hub/admin/ (Django's LogEntry)."""
    if not created:
        return
    audit.record(
        audit.Action.ADMIN_CHANGE,
        actor=instance.user.username,
        target=f"{instance.content_type.app_label}.{instance.content_type.model}:"
        f"{instance.object_repr}",
        change={1: "added", 2: "changed", 3: "deleted"}.get(instance.action_flag, "?"),
        message=instance.get_change_message(),
    )
