"""A server's credentials: the API token it calls the hub with, which is also
the secret of its OAuth client (JupyterHub's contract). Issued at each start,
revoked when it stops or fails."""

from __future__ import annotations

from django.db.models import Q

from accounts import services as account_services
from accounts.models import ApiToken, OAuthClient
from servers import hosts
from servers.models import Server


def issue_credentials(server: Server) -> str:
    """A fresh server token plus the OAuth client whose secret it is."""
    ApiToken.objects.filter(server=server, kind=ApiToken.Kind.SERVER).delete()
    OAuthClient.objects.filter(Q(server=server) | Q(identifier=server.client_id)).delete()
    username = server.user.username
    token, raw = account_services.issue_token(
        server.user,
        scopes=[
            f"users:activity!user={username}",
            f"access:servers!server={username}/{server.name}",
        ],
        note=f"server token for {server}",
        kind=ApiToken.Kind.SERVER,
        check_owner=False,
    )
    ApiToken.objects.filter(pk=token.pk).update(server=server)
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
    return raw


def revoke_credentials(server: Server) -> None:
    ApiToken.objects.filter(server=server).delete()
    OAuthClient.objects.filter(server=server).delete()
