"""What you run: server profiles, servers and their event history."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import connections, models, transaction
from django.utils import timezone

from accounts.validators import validate_server_name


class Profile(models.Model):
    """A choice on the spawn page, with KubeSpawner `profile_list` semantics.

    `options` maps an option key to
    `{"display_name", "choices": {slug: {"display_name", "default", "overrides"}},
    "unlisted_choice": {"enabled", "display_name", "validation_regex",
    "validation_message", "override_key" | "overrides"}}` as in KubeSpawner
    (`overrides` may use "{value}", the text typed); a chosen choice's
    `overrides` are merged over the profile's spawner settings."""

    slug = models.SlugField(max_length=63, unique=True)
    display_name = models.CharField(max_length=255)
    description = models.TextField(blank=True)
    default = models.BooleanField(default=False)
    order = models.IntegerField(default=0)
    allowed_groups = models.ManyToManyField(
        "accounts.Group",
        blank=True,
        related_name="profiles",
        help_text="Empty: every user may use this profile.",
    )
    cpu_guarantee = models.FloatField(null=True, blank=True)
    cpu_limit = models.FloatField(null=True, blank=True)
    mem_guarantee = models.CharField(max_length=32, blank=True, help_text="e.g. 1G, 512M")
    mem_limit = models.CharField(max_length=32, blank=True, help_text="e.g. 2G")
    extra_resource_limits = models.JSONField(
        default=dict, blank=True, help_text='e.g. {"nvidia.com/gpu": "1"}'
    )
    image = models.CharField(max_length=511, blank=True, help_text="Kubernetes image")
    user_env = models.CharField(
        max_length=511,
        blank=True,
        help_text="Local mode: path of the virtualenv holding jupyterhub-singleuser "
        "(empty: the default user environment).",
    )
    environment = models.JSONField(default=dict, blank=True)
    options = models.JSONField(default=dict, blank=True)
    spawner_overrides = models.JSONField(default=dict, blank=True)
    cull_timeout = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Seconds idle before the culler stops these servers "
        "(empty: HUB_CULL_TIMEOUT; 0: never for inactivity).",
    )

    class Meta:
        ordering = ["order", "id"]

    def __str__(self) -> str:
        return self.display_name


class ServerQuerySet(models.QuerySet["Server"]):
    def active(self) -> ServerQuerySet:
        return self.exclude(state__in=[Server.State.STOPPED, Server.State.FAILED])

    def routable(self) -> ServerQuerySet:
        return self.filter(state=Server.State.RUNNING).exclude(url="")

    def update(self, **kwargs: Any) -> int:
        """Like QuerySet.update, but a change of `state` or `url` also appends the
        servers' routes to the route change feed in the same transaction
        (servers/routefeed.py): every compare-and-set transition, whoever writes
        it, reaches the routers without them re-reading the table."""
        if not ROUTE_FIELDS & kwargs.keys():
            return super().update(**kwargs)
        from servers import routefeed

        lock_of = ("self",) if connections[self.db].features.has_select_for_update_of else ()
        # one transaction, no savepoint of its own inside a caller's: nothing
        # here is caught and retried, so an error ends the caller's anyway
        with transaction.atomic(using=self.db, savepoint=False):
            # lock the matching rows, so exactly these are updated and recorded
            locked = self.select_for_update(of=lock_of)  # MariaDB has no FOR UPDATE OF
            rows = list(locked.values_list("pk", "state", "url"))
            if not rows:
                return 0
            ids = [pk for pk, _, _ in rows]
            count = super(ServerQuerySet, self.filter(pk__in=ids)).update(**kwargs)
            routed = {pk for pk, state, url in rows if state == Server.State.RUNNING and url}
            if routed or _may_route(kwargs, rows):
                routefeed.record(ids, routed_before=routed)
        return count


def _may_route(changes: dict[str, Any], rows: list[tuple[int, str, str]]) -> bool:
    """Whether an update of ROWS (none routed before it) can give one of them
    a route. Most transitions cannot (a start claimed, an address noted while
    still starting, a stop finished), and then the feed is not read at all.
    An expression in place of a plain value is assumed to route."""
    state, url = changes.get("state"), changes.get("url")
    if not all(v is None or isinstance(v, str) for v in (state, url)):
        return True
    return any(
        (row_state if state is None else state) == Server.State.RUNNING
        and (row_url if url is None else url)
        for _, row_state, row_url in rows
    )


ROUTE_FIELDS = frozenset({"state", "url"})  # a change of these can move a route


class Server(models.Model):
    """One user server. `name == ""` is the default server.

    State moves stopped -> starting -> running -> stopping -> stopped|failed,
    only through compare-and-set updates in servers.services, so a task that
    runs twice finds the row already moved and does nothing."""

    class State(models.TextChoices):
        STOPPED = "stopped"
        STARTING = "starting"
        RUNNING = "running"
        STOPPING = "stopping"
        FAILED = "failed"

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="servers"
    )
    name = models.CharField(max_length=63, blank=True, validators=[validate_server_name])
    display_name = models.CharField(max_length=255, blank=True)
    profile = models.ForeignKey(Profile, null=True, blank=True, on_delete=models.SET_NULL)
    user_options = models.JSONField(default=dict, blank=True)
    state = models.CharField(max_length=16, choices=State.choices, default=State.STOPPED)
    url = models.CharField(max_length=511, blank=True, help_text="where the router sends traffic")
    spawner_state = models.JSONField(default=dict, blank=True)
    failure = models.TextField(blank=True)
    remove_on_stop = models.BooleanField(
        default=False, help_text="A named server whose record goes once it has stopped."
    )
    started = models.DateTimeField(null=True, blank=True)
    requested_at = models.DateTimeField(null=True, blank=True)
    last_activity = models.DateTimeField(null=True, blank=True)
    changed = models.DateTimeField(default=timezone.now, db_index=True)
    # the spawn attempt that owns a start, and its lease: the worker running
    # it renews `heartbeat`; a start whose lease ran out lost its worker and
    # is taken over (scheduler/reconcile.py). `worker` says who, for operators
    # and for a same-host takeover without waiting for the lease.
    attempt = models.CharField(max_length=32, blank=True)
    heartbeat = models.DateTimeField(null=True, blank=True)
    worker = models.CharField(max_length=255, blank=True)
    # the server's own API token, sealed (scheduler/workload.py): the culler
    # reads the server's kernels with it
    probe_token = models.TextField(blank=True)

    objects = ServerQuerySet.as_manager()

    class Meta:
        ordering = ["user_id", "name"]
        constraints = [
            models.UniqueConstraint(fields=["user", "name"], name="one_server_per_name"),
        ]

    def __str__(self) -> str:
        return f"{self.user.username}/{self.name}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        """Saved and recorded in the route change feed in one transaction."""
        fields = kwargs.get("update_fields")
        if fields is not None and not ROUTE_FIELDS & set(fields):
            super().save(*args, **kwargs)
            return
        from servers import routefeed

        with transaction.atomic(using=kwargs.get("using")):
            # a new row, or one that had no route and still has none, moves no route
            routed = self.pk is not None and Server.objects.filter(pk=self.pk).routable().exists()
            super().save(*args, **kwargs)
            routefeed.record([self.pk], routed_before={self.pk} if routed else set())

    @property
    def prefix(self) -> str:
        """The public URL prefix, JupyterHub's server base_url."""
        username = self.user.username
        return f"/user/{username}/{self.name}/" if self.name else f"/user/{username}/"

    @property
    def log_name(self) -> str:
        """JupyterHub's name for a server in messages: `alice`, `alice:box`."""
        username = self.user.username
        return f"{username}:{self.name}" if self.name else username

    @property
    def browser_url(self) -> str:
        """Where the hub sends a browser: the prefix, on the user's own host
        when servers have subdomains (servers/hosts.py)."""
        from servers import hosts

        return hosts.browser_url(self.user.username, self.prefix)

    @property
    def is_ready(self) -> bool:
        return self.state == self.State.RUNNING

    @property
    def is_pending(self) -> bool:
        return self.state in (self.State.STARTING, self.State.STOPPING)

    @property
    def pending(self) -> str | None:
        """JupyterHub's `pending` field: 'spawn', 'stop' or None."""
        return {self.State.STARTING: "spawn", self.State.STOPPING: "stop"}.get(self.state)

    @property
    def client_id(self) -> str:
        from urllib.parse import quote

        base = f"jupyterhub-user-{quote(self.user.username, safe='')}"
        return f"{base}-{quote(self.name, safe='')}" if self.name else base

    def options(self) -> dict[str, Any]:
        return dict(self.user_options or {})


class ServerEvent(models.Model):
    """Progress and history of a server; the progress stream reads these."""

    class Kind(models.TextChoices):
        START_REQUESTED = "start_requested"
        PROGRESS = "progress"
        READY = "ready"
        STOP_REQUESTED = "stop_requested"
        STOPPED = "stopped"
        FAILED = "failed"
        CULLED = "culled"
        RECONCILED = "reconciled"

    server = models.ForeignKey(Server, on_delete=models.CASCADE, related_name="events")
    kind = models.CharField(max_length=32, choices=Kind.choices)
    progress = models.PositiveSmallIntegerField(default=0)
    message = models.TextField(blank=True)
    actor = models.CharField(max_length=255, blank=True)
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["server", "id"])]

    def __str__(self) -> str:
        return f"{self.server} {self.kind} {self.progress}% {self.message}"


class RouteFeed(models.Model):
    """The one row numbering the route change feed. Appending takes its row
    lock until commit, so change ids are handed out in commit order: a router
    asking for changes after id N never misses one that commits later with a
    smaller id (servers/routefeed.py)."""

    last = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"route changes up to {self.last}"


class RouteChange(models.Model):
    """One route as it became in a committed transaction; `target` empty = no
    route (stopped, failed, removed). Numbered 1, 2, 3... without gaps (ids come
    from RouteFeed, rolled back with their transaction), so a reader sees when
    the rows it asks for have been pruned."""

    id = models.BigIntegerField(primary_key=True)
    prefix = models.CharField(max_length=160)
    target = models.CharField(max_length=511, blank=True)
    user = models.CharField(max_length=63, blank=True)
    server_name = models.CharField(max_length=63, blank=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.id} {self.prefix} -> {self.target or '-'}"
