"""The route API the router pulls (and JupyterHub's GET /hub/api/proxy).

All endpoints need the unfiltered `proxy` scope: the router's token, or an admin."""

from __future__ import annotations

import json

from django.http import HttpResponse
from rest_framework import exceptions
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from routing.api import routes
from servers.models import Server


class ProxyScopeView(APIView):
    def initial(self, request: Request, *args: object, **kwargs: object) -> None:
        super().initial(request, *args, **kwargs)
        who = request.auth
        if who is None:
            raise exceptions.NotAuthenticated("Missing or invalid credentials")
        if not who.has("proxy"):
            raise exceptions.PermissionDenied("Action is not authorized: needs scope 'proxy'")


class RouteTableView(ProxyScopeView):
    """`?since=<version>`: the changes after it ({} when none), or the full
    table with `"full": true` when the feed cannot continue from it. Without
    `since`: the full table, 304 to a matching If-None-Match."""

    def get(self, request: Request) -> Response | HttpResponse:
        since = request.query_params.get("since")
        if since is not None:
            try:
                changed = routes.changes_since(since)
            except routes.BadVersion as exc:
                raise exceptions.ValidationError(str(exc)) from None
            if changed is not None:  # serialized here: DRF's renderer doubled the cost
                version, body = changed
                answer = {"version": version, "full": False, "routes": body}
                return HttpResponse(
                    json.dumps(answer, separators=(",", ":")), content_type="application/json"
                )
        version = routes.current_version()  # before reading: later changes come next time
        etag = f'"{version}"'
        if since is None and request.headers.get("If-None-Match") == etag:
            response = HttpResponse(status=304)
        else:
            response = HttpResponse(routes.full_body(version), content_type="application/json")
        response["ETag"] = etag
        return response


class RouteLookupView(ProxyScopeView):
    def get(self, request: Request) -> Response:
        path = request.query_params.get("path", "")
        found = routes.lookup(path)
        if found is None:
            raise exceptions.NotFound(f"No route for {path}")
        prefix, route = found
        return Response({"prefix": prefix, "route": route})


class RouteActivityView(ProxyScopeView):
    def post(self, request: Request) -> Response:
        try:
            activity = routes.parse_activity(request.data)
        except ValueError as exc:
            raise exceptions.ValidationError(str(exc)) from None
        routes.record_activity(activity)
        return Response(status=204)


class ProxyView(ProxyScopeView):
    """JupyterHub's /proxy: GET the table; POST (sync) and PATCH (new proxy) are
    no-ops here because routers pull the table themselves."""

    def get(self, request: Request) -> Response:
        servers = (
            Server.objects.routable().select_related("user").order_by("user__username", "name")
        )
        offset = _int_param(request, "offset", 0)
        limit = _int_param(request, "limit", 0)
        chosen = list(servers[offset : offset + limit] if limit else servers[offset:])
        return Response(routes.proxy_table(chosen))

    def post(self, request: Request) -> Response:
        return Response(status=200)

    def patch(self, request: Request) -> Response:
        return Response(status=200)


def _int_param(request: Request, name: str, default: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if not raw.isdigit():
        raise exceptions.ValidationError(f"{name} must be a non-negative integer")
    return int(raw)
