"""Signal receivers of the accounts app, connected in AccountsConfig.ready()."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from accounts import identity, services
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
