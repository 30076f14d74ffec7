"""A server's credentials: the API token it calls the hub with, which is also
the secret of its OAuth client (JupyterHub's contract). Issued at each start,
revoked when it stops or fails.

The hub keeps only a hash of tokens, but the culler must ask the server about
its kernels with the server's own token (scheduler/workload.py), so the row
also keeps it sealed: Fernet, keyed from SECRET_KEY (a changed key just makes
the culler decide on the hub's activity alone until the next start)."""

from __future__ import annotations

import base64
import hashlib

from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings
from django.db import transaction
from django.db.models import Q

from accounts import services as account_services
from accounts.models import ApiToken, OAuthClient
from servers import hosts
from servers.models import Server


@transaction.atomic(savepoint=False)
def issue_credentials(server: Server) -> str:
    """A fresh server token plus the OAuth client whose secret it is. One
    transaction: nobody sees the token without its client, or the old pair
    half replaced (and a start commits once here, not five times)."""
    ApiToken.objects.filter(server=server, kind=ApiToken.Kind.SERVER).delete()
    OAuthClient.objects.filter(Q(server=server) | Q(identifier=server.client_id)).delete()
    username = server.user.username
    _, raw = account_services.issue_token(
        server.user,
        scopes=[
            f"users:activity!user={username}",
            f"access:servers!server={username}/{server.name}",
        ],
        note=f"server token for {server}",
        kind=ApiToken.Kind.SERVER,
        server_id=server.pk,
        check_owner=False,
    )
    client = OAuthClient(
        identifier=server.client_id,
        description=f"Server at {server.prefix}",
        # absolute on the user's host with subdomains: matched exactly at authorize
        redirect_uri=hosts.browser_url(server.user.username, f"{server.prefix}oauth_callback"),
        allowed_scopes=[],
        server=server,
    )
    client.set_secret(raw)
    client.save()
    Server.objects.filter(pk=server.pk).update(probe_token=seal(raw))
    return raw


@transaction.atomic(savepoint=False)
def revoke_credentials(server: Server) -> None:
    """Every token and OAuth client of SERVER gone, at one commit."""
    ApiToken.objects.filter(server=server).delete()
    OAuthClient.objects.filter(server=server).delete()
    Server.objects.filter(pk=server.pk).update(probe_token="")


def _fernet() -> Fernet:
    digest = hashlib.sha256(f"server-probe-token:{settings.SECRET_KEY}".encode()).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


def seal(token: str) -> str:
    return _fernet().encrypt(token.encode()).decode()


def unseal(sealed: str) -> str | None:
    """The server's token, or None if none is kept or SECRET_KEY changed since."""
    if not sealed:
        return None
    try:
        return _fernet().decrypt(sealed.encode()).decode()
    except InvalidToken:
        return None
