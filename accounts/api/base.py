"""What every /hub/api view shares: JSON in and out whatever the Accept and
Content-Type headers say (JupyterHub ignores both), the caller's Access, and
JupyterHub's pagination protocol."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urlencode

from rest_framework import exceptions
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.views import APIView

from accounts import audit
from accounts.api import inputs
from accounts.api.access import Access
from accounts.identity import Identity
from accounts.models import Group, User

PAGINATION_MEDIA_TYPE = "application/jupyterhub-pagination+json"


class AnyJSONParser(inputs.BoundedJSONParser):
    """JupyterHub parses every body as JSON, whatever its Content-Type."""

    media_type = "*/*"


class AlwaysJSON(BaseContentNegotiation):
    """The pagination Accept type (and text/event-stream) must not give 406."""

    def select_parser(self, request: Request, parsers: Sequence[Any]) -> Any:
        return parsers[0] if parsers else None

    def select_renderer(
        self, request: Request, renderers: Sequence[BaseRenderer], format_suffix: str | None = None
    ) -> tuple[BaseRenderer, str]:
        return renderers[0], renderers[0].media_type


class CompactJSONRenderer(JSONRenderer):
    compact = True
    ensure_ascii = True


class HubAPIView(APIView):
    parser_classes = [AnyJSONParser]
    renderer_classes = [CompactJSONRenderer]
    content_negotiation_class = AlwaysJSON

    def finalize_response(self, request: Request, response: Any, *args: Any, **kwargs: Any) -> Any:
        """One hook for the audit log: changes made through the API on
        someone else's behalf (an admin's token or session, a service)."""
        response = super().finalize_response(request, response, *args, **kwargs)
        who = request.auth if response.status_code < 400 else None
        if isinstance(who, Identity):
            owner = self.kwargs.get("name") if "/users/" in request.path else None
            if audit.is_admin_api_call(request.method, request.path, actor=who.name, owner=owner):
                audit.record(
                    audit.Action.ADMIN_ACTION,
                    actor=who.name,
                    target=request.path,
                    request=request._request,
                    method=request.method,
                    status=response.status_code,
                )
        return response

    @property
    def identity(self) -> Identity:
        who = self.request.auth
        if not isinstance(who, Identity):
            raise exceptions.NotAuthenticated("Missing or invalid credentials")
        return who

    @property
    def access(self) -> Access:
        cached = getattr(self, "_access", None)
        if cached is None:
            cached = self._access = Access(self.identity)
        return cached

    def json_body(self, *, default: Any = None) -> Any:
        """The parsed body; DEFAULT when there is none (or it is JSON null)."""
        if not self.request._request.body.strip():
            return default
        data = self.request.data
        return default if data is None else data

    def json_dict(self) -> dict[str, Any]:
        body = self.json_body(default={})
        if not isinstance(body, dict):
            raise exceptions.ParseError("Body must be a JSON dict or empty")
        return body


def user_groups(name: str) -> Callable[[], list[str]]:
    """The groups of user NAME, fetched only if a `!group=` filter asks."""
    return lambda: list(Group.objects.filter(members__username=name).values_list("name", flat=True))


def find_user(name: str) -> User:
    user = User.objects.filter(username=name).first()
    if user is None:
        raise exceptions.NotFound(f"No such user: {name}")
    return user


def wants_pagination(request: Request) -> bool:
    return PAGINATION_MEDIA_TYPE in request.META.get("HTTP_ACCEPT", "")


def page_bounds(request: Request) -> tuple[int, int]:
    """JupyterHub's offset/limit, bounded (accounts/api/inputs.py)."""
    return inputs.page_bounds(request.query_params, paginated=wants_pagination(request))


def paginated(
    request: Request, items: list[Any], offset: int, limit: int, total: int
) -> dict[str, Any]:
    """`{"items", "_pagination"}` with an absolute next URL (the culler follows it)."""
    following = None
    if offset + limit < total:
        query = request.query_params.copy()
        query["offset"] = str(offset + limit)
        query["limit"] = str(limit)
        url = request.build_absolute_uri(request.path) + "?" + urlencode(query, doseq=True)
        following = {"offset": offset + limit, "limit": limit, "url": url}
    return {
        "items": items,
        "_pagination": {"offset": offset, "limit": limit, "total": total, "next": following},
    }
