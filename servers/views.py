"""Server pages: home, the profile picker, the pending page and the landing
spots for /user/... requests that have no route. Thin: look up, call
servers.services, render or redirect."""

from __future__ import annotations

from urllib.parse import urlencode

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseRedirect,
    JsonResponse,
    QueryDict,
)
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from accounts import identity, tokens
from accounts.api.access import Access
from accounts.models import User
from accounts.validators import validate_server_name
from accounts.views import approved_login_required
from servers import hosts, services
from servers.addressing import addressed_server
from servers.forms import NamedServerForm, SpawnForm
from servers.models import Server

State = Server.State
# query parameter counting hub -> /user/ bounces for a running server without a route
LOOP_GUARD = "redirects"


# --- helpers ------------------------------------------------------------------


def _owner(request: HttpRequest, username: str | None) -> User:
    """The user whose server is addressed: yourself, or anyone for an admin."""
    me = request.user
    if username is None or username == me.username:
        return me
    if not me.is_superuser:
        raise PermissionDenied(f"{me.username} may not access {username}'s servers")
    return get_object_or_404(User, username=username)


def _checked_name(server_name: str) -> str:
    try:
        validate_server_name(server_name)
    except ValidationError:
        raise Http404("no such server") from None
    return server_name


def _server_url_name(view: str, server: Server) -> str:
    args = [server.user.username] + ([server.name] if server.name else [])
    return reverse(view, args=args)


def _safe_next(value: str, prefix: str) -> str:
    """Only a same-host path inside the server's own prefix is a valid `next`
    (no scheme, no //host, no backslash tricks: GHSA-3vff-hjqv-m7h8)."""
    if not value or not value.startswith(prefix) or "\\" in value or "//" in value:
        return ""
    if "/../" in value or value.endswith("/.."):
        return ""
    return value if url_has_allowed_host_and_scheme(value, allowed_hosts=None) else ""


def _with_next(url: str, next_url: str) -> str:
    return f"{url}?{urlencode({'next': next_url})}" if next_url else url


def _render_spawn(
    request: HttpRequest, server: Server, form: SpawnForm, *, status: int = 200, **extra
) -> HttpResponse:
    context = {
        "server": server,
        "owner": server.user,
        "form": form,
        "next": _safe_next(request.POST.get("next") or request.GET.get("next", ""), server.prefix),
        **extra,
    }
    return render(request, "servers/spawn.html", context, status=status)


# --- home ---------------------------------------------------------------------


@approved_login_required
def home(request: HttpRequest) -> HttpResponse:
    return _render_home(request, NamedServerForm())


def _render_home(request: HttpRequest, form: NamedServerForm, status: int = 200) -> HttpResponse:
    servers = list(request.user.servers.all())
    default = next((s for s in servers if s.name == ""), None)
    if default is None:
        default = Server(user=request.user, name="")
    context = {
        "nav": "home",
        "default_server": default,
        "named_servers": [s for s in servers if s.name],
        "named_form": form,
        "allow_named": settings.HUB_ALLOW_NAMED_SERVERS,
        "named_limit": settings.HUB_NAMED_SERVER_LIMIT,
        # without profiles there is nothing to pick: Start posts the start itself
        "has_profiles": services.allowed_profiles(request.user).exists(),
    }
    return render(request, "servers/home.html", context, status=status)


@require_POST
@approved_login_required
def stop(request: HttpRequest) -> HttpResponse:
    server = get_object_or_404(request.user.servers, name=request.POST.get("server", ""))
    services.request_stop(server, by=request.user.username)
    return redirect("home")


@require_POST
@approved_login_required
def remove(request: HttpRequest) -> HttpResponse:
    server = get_object_or_404(
        request.user.servers.exclude(name=""), name=request.POST.get("server", "")
    )
    try:
        services.delete_server(server)
    except services.StartRefused as exc:
        return render(request, "servers/error.html", {"message": str(exc)}, status=exc.status)
    return redirect("home")


@require_POST
@approved_login_required
def new_named(request: HttpRequest) -> HttpResponse:
    form = NamedServerForm(request.POST)
    if not settings.HUB_ALLOW_NAMED_SERVERS:
        form.add_error(None, "Named servers are not enabled on this hub.")
    if not form.is_valid():
        return _render_home(request, form, status=400)
    name = form.cleaned_data["name"]
    if not services.allowed_profiles(request.user).exists():
        return spawn(request, request.user.username, name)  # nothing to pick: start it
    return redirect("spawn", request.user.username, name)


# --- spawn --------------------------------------------------------------------


@approved_login_required
def spawn(request: HttpRequest, username: str | None = None, server_name: str = "") -> HttpResponse:
    owner = _owner(request, username)
    name = _checked_name(server_name)
    server = owner.servers.filter(name=name).first()
    if server is not None and server.state == State.RUNNING:
        return HttpResponseRedirect(server.browser_url)
    if server is not None and server.is_pending:
        return redirect(_server_url_name("spawn-pending", server))
    form = SpawnForm(services.allowed_profiles(owner), request.POST or None)
    if request.method != "POST":
        return _render_spawn(request, server or Server(user=owner, name=name), form)
    return _start(request, owner, name, server, form)


def _start(
    request: HttpRequest, owner: User, name: str, server: Server | None, form: SpawnForm
) -> HttpResponse:
    placeholder = server or Server(user=owner, name=name)
    options = form.user_options()
    if options is None:
        return _render_spawn(request, placeholder, form, status=400)
    try:
        server = services.start_server(owner, name, by=request.user.username, user_options=options)
    except services.StartRefused as exc:
        form.errors.append(str(exc))
        return _render_spawn(request, placeholder, form, status=exc.status)
    next_url = _safe_next(request.POST.get("next", ""), server.prefix)
    return redirect(_with_next(_server_url_name("spawn-pending", server), next_url))


@approved_login_required
def spawn_pending(request: HttpRequest, username: str, server_name: str = "") -> HttpResponse:
    owner = _owner(request, username)
    server = owner.servers.filter(name=_checked_name(server_name)).first()
    if server is None or server.state == State.STOPPED:
        return redirect(_server_url_name("spawn", server or Server(user=owner, name=server_name)))
    next_url = _safe_next(request.GET.get("next", ""), server.prefix)
    ready_url = hosts.browser_url(owner.username, next_url or server.prefix)
    if server.state == State.RUNNING:
        return HttpResponseRedirect(ready_url)
    api = f"/hub/api/users/{owner.username}/"
    progress_url = api + (f"servers/{server.name}/progress" if server.name else "server/progress")
    context = {
        "server": server,
        "owner": owner,
        "progress_url": progress_url,
        "ready_url": ready_url,
        "spawn_url": _server_url_name("spawn", server),
    }
    return render(request, "servers/pending.html", context)


# --- where the router sends /user/... without a route --------------------------


def _server_for_path(owner: User, rest: str) -> Server:
    """/user/<name>/<server>/... addresses a named server only when one by
    that name exists; otherwise the path belongs to the default server."""
    first = rest.split("/", 1)[0]
    if first and settings.HUB_ALLOW_NAMED_SERVERS:
        named = owner.servers.filter(name=first).first()
        if named is not None:
            return named
    return owner.servers.filter(name="").first() or Server(user=owner, name="")


@csrf_exempt  # only GET acts; other methods get JupyterHub's JSON answer below
def user_route(request: HttpRequest, username: str, rest: str = "") -> HttpResponse:
    """/hub/user/<name>/...: where the router sends /user/<name>/... without a
    route. Like JupyterHub's UserUrlHandler: a token works as well as the
    session; API requests to a server that is not running get 424 JSON, pages
    get the spawn prompt (424) or the pending page (303)."""
    if request.method not in ("GET", "HEAD"):
        return _not_running_json(request, username, _requested_server_name(request, username, rest))
    raw = tokens.from_authorization(request.META.get("HTTP_AUTHORIZATION", ""))
    who = identity.resolve_token(raw) if raw else None
    if who is None:
        return _user_route_for_session(request, username, rest)
    first = rest.split("/", 1)[0]
    candidates = ["", first] if "/" in rest else [""]
    if not any(Access(who).on_server("access:servers", username, n) for n in candidates):
        raise Http404("No access to resources or resources not found")
    # a script polling the API of a server that is not running yet: answered
    # from one query (servers/addressing.py); everything else reads the models
    addressed = addressed_server(username, rest)
    if addressed is None:
        raise Http404("No User matches the given query.")
    if (
        addressed.state != State.RUNNING
        and not hosts.is_hostless(username)
        and _wants_json(request, rest)
    ):
        return _not_running_json(request, username, addressed.server_name)
    owner = get_object_or_404(User, username=username)
    return _route(request, owner, _server_for_path(owner, rest), rest)


@approved_login_required
def _user_route_for_session(request: HttpRequest, username: str, rest: str) -> HttpResponse:
    owner = _owner(request, username)
    return _route(request, owner, _server_for_path(owner, rest), rest)


def _route(request: HttpRequest, owner: User, server: Server, rest: str) -> HttpResponse:
    target = f"/user/{owner.username}/{rest}"
    if hosts.is_hostless(owner.username):
        return _render_hostless(request, owner)
    if server.state == State.RUNNING:
        return _bounce_to_server(request, server, hosts.browser_url(owner.username, target))
    if _wants_json(request, rest):
        return _not_running_json(request, owner.username, server.name)
    # a start that failed shows its reason on the pending page; a server that ran
    # and then died gets the "not running" prompt, as in JupyterHub
    failed_start = server.state == State.FAILED and server.started is None
    if server.pk and (server.is_pending or failed_start):
        pending = _server_url_name("spawn-pending", server)
        next_url = _with_next(pending, _safe_next(target, server.prefix))
        return HttpResponseRedirect(next_url, status=303)
    context = {
        "server": server,
        "owner": owner,
        "spawn_url": _with_next(
            _server_url_name("spawn", server), _safe_next(target, server.prefix)
        ),
    }
    # 424 like JupyterHub: frontends polling the API recognise "server not running"
    return render(request, "servers/not_running.html", context, status=424)


def _wants_json(request: HttpRequest, rest: str) -> bool:
    """An API client (JupyterHub's rule): JSON accepted first, or an /api/ path."""
    return prefers_json(request.META.get("HTTP_ACCEPT", "")) or "api" in rest.split("/")


def prefers_json(accept: str) -> bool:
    """Whether an Accept header ranks application/json above text/html (only
    exact types count, as in JupyterHub's get_accepted_mimetype)."""
    ranked = []
    for position, item in enumerate(accept.split(",")):
        mime, *params = (part.strip() for part in item.split(";"))
        quality = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        ranked.append((-quality, position, mime.lower()))
    for _, _, mime in sorted(ranked):
        if mime in ("application/json", "text/html"):
            return mime == "application/json"
    return False


def not_running_message(path: str, spawn_url: str) -> dict[str, str]:
    """JupyterHub's JSON body for an API request to a server that is not running."""
    return {
        "message": f"JupyterHub server no longer running at {path}. "
        f"Restart the server at {spawn_url}"
    }


def _not_running_json(request: HttpRequest, username: str, server_name: str) -> JsonResponse:
    spawn_path = f"/hub/spawn/{username}" + (f"/{server_name}" if server_name else "")
    path = request.path.removeprefix("/hub")
    body = not_running_message(path, request.build_absolute_uri(spawn_path))
    return JsonResponse(body, status=424)


def _requested_server_name(request: HttpRequest, username: str, rest: str) -> str:
    """The named server a non-GET request addresses, known only to its owner
    (JupyterHub tells no one else which servers exist)."""
    user = request.user
    if not (user.is_authenticated and user.username == username):
        return ""
    return _server_for_path(user, rest).name


def _render_hostless(request: HttpRequest, owner: User) -> HttpResponse:
    """The router sends /user/<name>/ here for every name that cannot be a
    host name: say so instead of bouncing (see servers/hosts.py)."""
    message = (
        f"Servers run on their own host names here, and {owner.username!r} cannot be one "
        "(only lowercase letters, digits and inner '-'). Ask an administrator to rename "
        "the account."
    )
    context = {"message": message, "title": "No host name for this user"}
    return render(request, "servers/error.html", context, status=404)


def _bounce_to_server(request: HttpRequest, server: Server, target: str) -> HttpResponse:
    """The server runs but the router had no route: send the browser back once,
    with a counter, so a route that never appears cannot loop forever."""
    try:
        bounces = int(request.GET.get(LOOP_GUARD, "0"))
    except ValueError:
        bounces = 0
    if bounces >= 1:
        message = (
            f"Your server at {server.prefix} is running, but the proxy has no route to it yet. "
            "Wait a moment and try again; if this persists, stop and start the server."
        )
        context = {"message": message, "retry_url": target, "title": "Server not reachable"}
        return render(request, "servers/error.html", context, status=503)
    query = QueryDict(mutable=True)
    query.update(request.GET)
    query[LOOP_GUARD] = str(bounces + 1)
    return HttpResponseRedirect(f"{target}?{query.urlencode()}")


@approved_login_required
def user_redirect(request: HttpRequest, rest: str = "") -> HttpResponse:
    """/hub/user-redirect/<path>: a link that works for whoever opens it."""
    if ".." in rest.split("/") or "\\" in rest or rest.startswith("/"):
        return render(request, "servers/error.html", {"message": "Invalid path."}, status=400)
    target = hosts.browser_url(request.user.username, f"/user/{request.user.username}/{rest}")
    query = request.META.get("QUERY_STRING", "")
    return HttpResponseRedirect(f"{target}?{query}" if query else target)
