"""What you run: server profiles, servers and their event history."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models
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

    class Meta:
        ordering = ["order", "id"]

    def __str__(self) -> str:
        return self.display_name


class ServerQuerySet(models.QuerySet["Server"]):
    def active(self) -> ServerQuerySet:
        return self.exclude(state__in=[Server.State.STOPPED, Server.State.FAILED])

    def routable(self) -> ServerQuerySet:
        return self.filter(state=Server.State.RUNNING).exclude(url="")


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

    objects = ServerQuerySet.as_manager()

    class Meta:
        ordering = ["user_id", "name"]
        constraints = [
            models.UniqueConstraint(fields=["user", "name"], name="one_server_per_name"),
        ]

    def __str__(self) -> str:
        return f"{self.user.username}/{self.name}"

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
