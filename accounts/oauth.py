"""The hub as the OAuth2 provider of its single-user servers (JupyterHub's
internal OAuth): authorization code grant with PKCE S256, relative redirect
URIs, and the server's own API token as the client secret.

`authorize` runs in the browser's hub session and hands out a one-time code;
`exchange_code` runs server to server and turns the code into an ApiToken of
kind OAUTH whose scopes let exactly the authorizing user into that server.
Views only parse HTTP and format the OAuthError raised here.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit, urlunsplit

from django.conf import settings
from django.utils import timezone

from accounts import audit, identity, services
from accounts import scopes as sc
from accounts.models import ApiToken, OAuthClient, OAuthCode, User

# RFC 7636 4.1: 43-128 characters of the unreserved set
_VERIFIER_RE = re.compile(r"^[A-Za-z0-9._~-]{43,128}$")
# the S256 challenge is a base64url SHA-256 without padding: always 43 characters
_CHALLENGE_RE = re.compile(r"^[A-Za-z0-9_-]{43}$")
_MAX_PARAM = 2048


class OAuthError(Exception):
    """An OAuth2 error (RFC 6749 4.1.2.1 / 5.2).

    With `redirect_uri` set, the error goes back to the client in the query of
    that URI; without it, the browser or caller is told directly with STATUS."""

    def __init__(
        self,
        error: str,
        description: str,
        *,
        status: int = 400,
        redirect_uri: str = "",
        state: str = "",
    ) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.status = status
        self.redirect_uri = redirect_uri
        self.state = state

    def as_json(self) -> dict[str, str]:
        return {"error": self.error, "error_description": self.description}

    def redirect_url(self) -> str:
        params = {"error": self.error, "error_description": self.description}
        if self.state:
            params["state"] = self.state
        return add_query(self.redirect_uri, params)


@dataclass(frozen=True)
class AuthorizeRequest:
    """A validated authorization request, before the access check."""

    client: OAuthClient
    redirect_uri: str
    state: str
    code_challenge: str
    code_challenge_method: str
    requested_scopes: frozenset[str]


def add_query(url: str, params: Mapping[str, str]) -> str:
    """URL with PARAMS appended to its query (relative URLs stay relative)."""
    parts = urlsplit(url)
    query = "&".join(q for q in (parts.query, urlencode(params)) if q)
    return urlunsplit(parts._replace(query=query))


def _param(params: Mapping[str, str], name: str) -> str:
    value = params.get(name) or ""
    if len(value) > _MAX_PARAM:
        raise OAuthError("invalid_request", f"{name} is too long")
    return value


# --- authorization endpoint ---------------------------------------------------


def validate_authorize(params: Mapping[str, str]) -> AuthorizeRequest:
    """Check an authorization request's client and redirect URI, then the rest.

    An unknown client or a redirect URI other than the registered one is told
    to the browser (never redirected: that would be an open redirect); later
    errors go back to the client's registered redirect URI."""
    client_id = _param(params, "client_id")
    client = OAuthClient.objects.select_related("server__user").filter(identifier=client_id).first()
    if not client_id or client is None:
        raise OAuthError("invalid_client", "unknown OAuth client")
    redirect_uri = _param(params, "redirect_uri") or client.redirect_uri
    if redirect_uri != client.redirect_uri:
        raise OAuthError("invalid_request", "redirect_uri does not match the client's")
    state = _param(params, "state")

    def refuse(error: str, description: str) -> OAuthError:
        return OAuthError(error, description, redirect_uri=redirect_uri, state=state)

    if _param(params, "response_type") != "code":
        raise refuse("unsupported_response_type", "only response_type=code is supported")
    challenge = _param(params, "code_challenge")
    method = _param(params, "code_challenge_method") or ("S256" if challenge else "")
    if method and method != "S256":
        raise refuse("invalid_request", "only code_challenge_method=S256 is supported")
    if method and not _CHALLENGE_RE.fullmatch(challenge):
        raise refuse("invalid_request", "code_challenge is not a base64url SHA-256 digest")
    return AuthorizeRequest(
        client=client,
        redirect_uri=redirect_uri,
        state=state,
        code_challenge=challenge,
        code_challenge_method=method,
        requested_scopes=frozenset(_param(params, "scope").split()),
    )


def server_target(client: OAuthClient) -> sc.Target:
    """What `access:servers` is checked against for this client's server."""
    server = client.server
    if server is None:
        raise OAuthError("invalid_client", "this OAuth client belongs to no server")
    owner = server.user
    groups = frozenset(owner.hub_groups.values_list("name", flat=True))
    return sc.Target(user=owner.username, server=f"{owner.username}/{server.name}", groups=groups)


def access_scopes(client: OAuthClient) -> frozenset[str]:
    """The scope that opens the client's server, as jupyterhub-singleuser checks it."""
    target = server_target(client)
    return frozenset([f"access:servers!server={target.server}"])


def identify_scopes(user: User) -> frozenset[str]:
    """Enough to read one's own model at /hub/api/user (JupyterHub's identify scopes)."""
    return frozenset(f"read:users:{field}!user={user.username}" for field in ("name", "groups"))


def check_access(user: User, client: OAuthClient) -> None:
    """403 unless USER may use the client's server (owner, admin, or granted)."""
    if not (user.is_active and user.is_approved):
        raise OAuthError("access_denied", "this account cannot log in", status=403)
    who = identity.for_session(user)
    target = server_target(client)
    if not who.has("access:servers", target):
        raise OAuthError(
            "access_denied",
            f"you do not have permission to access {client.description or client.identifier}",
            status=403,
        )
    if target.user != user.username:
        audit.record(audit.Action.SERVER_ACCESS, actor=user.username, target=target.server)


def granted_scopes(user: User, request: AuthorizeRequest) -> list[str]:
    """Identify + access scopes, plus requested extras that the client may ask
    for and the user holds (JupyterHub grants no more than both allow)."""
    extras = request.requested_scopes & frozenset(request.client.allowed_scopes or ())
    held = sc.intersect(sc.expand(extras, username=user.username), identity.user_scopes(user))
    return sorted(access_scopes(request.client) | identify_scopes(user) | held)


def _hash_code(code: str) -> str:
    # codes carry 256 random bits and live 5 minutes: an unsalted hash gives a unique lookup key
    return hashlib.sha256(code.encode()).hexdigest()


def grant_code(user: User, request: AuthorizeRequest, *, session_id: str) -> str:
    """Store a one-time code for USER (hashed) and return the raw code."""
    code = secrets.token_urlsafe(32)
    OAuthCode.objects.create(
        client=request.client,
        user=user,
        code_hash=_hash_code(code),
        redirect_uri=request.redirect_uri,
        scopes=granted_scopes(user, request),
        code_challenge=request.code_challenge,
        code_challenge_method=request.code_challenge_method,
        session_id=session_id,
        expires_at=timezone.now() + OAuthCode.CODE_LIFETIME,
    )
    return code


def authorize(user: User, params: Mapping[str, str], *, session_id: str) -> str:
    """The URL to send the browser to: the client's callback with a code and
    the state. Raises OAuthError (400/403, or one to redirect with)."""
    request = validate_authorize(params)
    check_access(user, request.client)
    code = grant_code(user, request, session_id=session_id)
    query = {"code": code} | ({"state": request.state} if request.state else {})
    return add_query(request.redirect_uri, query)


# --- token endpoint -----------------------------------------------------------


def _client_credentials(params: Mapping[str, str], authorization: str) -> tuple[str, str]:
    """client_id and secret from the body, else from the Authorization header:
    `Basic` (RFC 6749 2.3.1) or `token <server token>` (the secret itself)."""
    client_id = _param(params, "client_id")
    secret = _param(params, "client_secret")
    scheme, _, value = authorization.strip().partition(" ")
    value = value.strip()
    if scheme.lower() == "basic" and value:
        try:
            basic_id, _, basic_secret = base64.b64decode(value).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            raise OAuthError("invalid_client", "malformed Basic credentials", status=401) from None
        client_id = client_id or basic_id
        secret = secret or basic_secret
    elif scheme.lower() in ("token", "bearer") and not secret:
        secret = value
    return client_id, secret


def authenticate_client(params: Mapping[str, str], authorization: str = "") -> OAuthClient:
    """The client whose secret was presented; 401 invalid_client otherwise."""
    client_id, secret = _client_credentials(params, authorization)
    if not client_id:
        raise OAuthError("invalid_client", "client_id is required", status=401)
    client = OAuthClient.objects.select_related("server__user").filter(identifier=client_id).first()
    # compare even for an unknown client, so timing does not tell which ids exist
    matched = client.secret_matches(secret) if client else _burn_compare(secret)
    if client is None or not secret or not matched:
        raise OAuthError("invalid_client", "client authentication failed", status=401)
    return client


def _burn_compare(secret: str) -> bool:
    hmac.compare_digest(hashlib.sha256(secret.encode()).hexdigest(), "0" * 64)
    return False


def _pkce_matches(code: OAuthCode, verifier: str) -> bool:
    if not code.code_challenge:
        return True  # the client did not use PKCE (JupyterHub: oauth_require_pkce=False)
    if not _VERIFIER_RE.fullmatch(verifier):
        return False
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    computed = base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")
    return hmac.compare_digest(computed, code.code_challenge)


def _claim_code(client: OAuthClient, raw_code: str) -> OAuthCode:
    """Take the code out of the store: whatever happens next, it is used up.
    Of two concurrent redemptions only one deletes the row, so only one wins."""
    code = OAuthCode.objects.select_related("user").filter(code_hash=_hash_code(raw_code)).first()
    if code is None or not OAuthCode.objects.filter(pk=code.pk).delete()[0]:
        raise OAuthError("invalid_grant", "unknown, expired or already used code")
    if code.client_id != client.pk:
        raise OAuthError("invalid_grant", "the code was issued to another client")
    return code


def exchange_code(params: Mapping[str, str], authorization: str = "") -> dict[str, object]:
    """Token endpoint: authenticate the client, redeem its code (once), and
    issue the access token. Returns the JSON body of the reply."""
    client = authenticate_client(params, authorization)
    if _param(params, "grant_type") != "authorization_code":
        raise OAuthError("unsupported_grant_type", "only authorization_code is supported")
    raw_code = _param(params, "code")
    if not raw_code:
        raise OAuthError("invalid_request", "code is required")
    code = _claim_code(client, raw_code)
    if code.is_expired:
        raise OAuthError("invalid_grant", "unknown, expired or already used code")
    if _param(params, "redirect_uri") != code.redirect_uri:
        raise OAuthError("invalid_grant", "redirect_uri does not match the authorization request")
    if not _pkce_matches(code, _param(params, "code_verifier")):
        raise OAuthError("invalid_grant", "PKCE verification failed")
    try:
        check_access(code.user, client)  # access may have been taken away meanwhile
    except OAuthError as exc:
        raise OAuthError("invalid_grant", exc.description) from None
    return _issue_access_token(client, code)


def _issue_access_token(client: OAuthClient, code: OAuthCode) -> dict[str, object]:
    # JupyterHub's oauth_token_expires_in defaults to the hub cookie's lifetime
    lifetime = int(settings.SESSION_COOKIE_AGE)
    try:
        _token, raw = services.issue_token(
            code.user,
            scopes=code.scopes,
            note=f"OAuth access to {client.description or client.identifier}",
            expires_in=lifetime,
            kind=ApiToken.Kind.OAUTH,
            session_id=code.session_id,
            oauth_client_id=client.pk,
        )
    except services.TokenScopeError as exc:
        raise OAuthError("invalid_scope", str(exc)) from None
    return {
        "access_token": raw,
        "token_type": "Bearer",
        "expires_in": lifetime,
        "scope": " ".join(code.scopes),
    }
