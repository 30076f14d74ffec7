"""The operator's view of servers at /hub/admin/: state, start/stop actions
(through servers.services, never by editing the state field), recent events,
profiles, and the read-only event history."""

from __future__ import annotations

from datetime import timedelta

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import path
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from accounts.admin import AuditedActions
from servers import services
from servers.models import Profile, Server, ServerEvent

RECENT_EVENTS = 20
OPERATIONS_ROWS = 100  # per table of the operations page
FAILURES_SINCE = timedelta(hours=24)


@admin.register(Server)
class ServerAdmin(AuditedActions, admin.ModelAdmin):
    change_list_template = "admin/servers/server/change_list.html"  # + "Operations" link
    list_display = ["__str__", "state", "profile", "open_link", "started", "last_activity"]
    list_filter = ["state", "profile"]
    search_fields = ["user__username", "name"]
    list_select_related = ["user", "profile"]
    actions = ["start", "stop"]
    fields = [
        "user",
        "name",
        "display_name",
        "state",
        "profile",
        "user_options",
        "server_url",
        "open_link",
        "failure",
        "requested_at",
        "started",
        "last_activity",
        "changed",
        "attempt",
        "worker",
        "heartbeat",
        "recent_events",
    ]
    # state moves only through servers.services (compare-and-set); never by hand
    readonly_fields = [f for f in fields if f != "display_name"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def get_urls(self) -> list:
        view = self.admin_site.admin_view(self.operations_view)
        return [path("operations/", view, name="servers_operations"), *super().get_urls()]

    def operations_view(self, request: HttpRequest) -> HttpResponse:
        """The operator's page: what runs, what is pending (and whether its
        worker is still renewing its lease), what failed and what the culler
        and reconcile did lately."""
        now = timezone.now()
        servers = Server.objects.select_related("user", "profile")
        State = Server.State
        pending = list(
            servers.filter(state__in=[State.STARTING, State.STOPPING]).order_by("changed")[
                :OPERATIONS_ROWS
            ]
        )
        for server in pending:
            server.lease_age = (
                (now - server.heartbeat).total_seconds() if server.heartbeat else None
            )
        since = now - FAILURES_SINCE
        context = {
            **self.admin_site.each_context(request),
            "title": "Operations",
            "now": now,
            "counts": {
                "running": servers.filter(state=State.RUNNING).count(),
                "starting": servers.filter(state=State.STARTING).count(),
                "stopping": servers.filter(state=State.STOPPING).count(),
                "failed_24h": servers.filter(state=State.FAILED, changed__gte=since).count(),
            },
            "running": servers.filter(state=State.RUNNING).order_by("-started")[:OPERATIONS_ROWS],
            "pending": pending,
            "failures": servers.filter(state=State.FAILED, changed__gte=since).order_by("-changed")[
                :OPERATIONS_ROWS
            ],
            "lifecycle_events": ServerEvent.objects.select_related("server__user")
            .filter(kind__in=[ServerEvent.Kind.CULLED, ServerEvent.Kind.RECONCILED])
            .order_by("-id")[:OPERATIONS_ROWS],
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/servers/operations.html", context)

    @admin.display(description="URL")
    def server_url(self, server: Server) -> str:
        """Where the router sends this server's traffic (empty unless running)."""
        return server.url or "—"

    @admin.display(description="open")
    def open_link(self, server: Server) -> str:
        if server.state != Server.State.RUNNING:
            return "—"
        return format_html(
            '<a href="{}" target="_blank" rel="noopener">{}</a>', *[server.prefix] * 2
        )

    @admin.display(description="recent events")
    def recent_events(self, server: Server) -> str:
        events = server.events.order_by("-id")[:RECENT_EVENTS]
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}%</td><td>{}</td><td>{}</td></tr>",
            (
                (e.created.strftime("%Y-%m-%d %H:%M:%S"), e.kind, e.progress, e.message, e.actor)
                for e in events
            ),
        )
        return format_html("<table>{}</table>", rows) if rows else "—"

    @admin.action(description="Start selected servers")
    def start(self, request: HttpRequest, queryset: QuerySet[Server]) -> None:
        started = 0
        for server in queryset.select_related("user", "profile"):
            options = server.options()
            if server.profile_id and "profile" not in options:
                options["profile"] = server.profile.slug
            try:
                started += services.request_start(
                    server, by=request.user.username, user_options=options
                )
            except services.StartRefused as exc:
                self.message_user(request, f"{server}: {exc}", messages.ERROR)
        self.message_user(request, f"Start requested for {started} server(s).")

    @admin.action(description="Stop selected servers")
    def stop(self, request: HttpRequest, queryset: QuerySet[Server]) -> None:
        stopped = sum(services.request_stop(s, by=request.user.username) for s in queryset)
        self.message_user(request, f"Stop requested for {stopped} server(s).")


class ProfileForm(forms.ModelForm):
    """The profile's fields in the operator's words, with what each JSON field holds."""

    class Meta:
        model = Profile
        fields = [
            "display_name",
            "slug",
            "description",
            "default",
            "order",
            "allowed_groups",
            "user_env",
            "image",
            "cpu_limit",
            "cpu_guarantee",
            "mem_limit",
            "mem_guarantee",
            "extra_resource_limits",
            "environment",
            "options",
            "spawner_overrides",
        ]
        labels = {
            "user_env": "User environment",
            "cpu_limit": "CPU limit",
            "cpu_guarantee": "CPU guarantee",
            "mem_limit": "Memory limit",
            "mem_guarantee": "Memory guarantee",
            "extra_resource_limits": "Extra resource limits",
            "spawner_overrides": "Spawner overrides",
        }
        help_texts = {
            "slug": 'The name scripts use: user_options {"profile": "<slug>"}.',
            "default": "Preselected on the start page, and used when a start names no profile.",
            "order": "Position on the start page (smallest first).",
            "cpu_limit": "Cores, e.g. 2 or 0.5. Local servers only get CPU_LIMIT set "
            "(a hard limit needs cgroups); Kubernetes enforces it.",
            "cpu_guarantee": "Cores reserved (Kubernetes request); local servers ignore it.",
            "mem_limit": "e.g. 2G or 512M. Local servers: the process's address-space "
            "limit (RLIMIT_AS); Kubernetes: the container limit.",
            "mem_guarantee": "e.g. 1G (Kubernetes request); local servers ignore it.",
            "extra_resource_limits": 'JSON, resource name to amount, e.g. {"nvidia.com/gpu": "1"}.',
            "image": "Kubernetes image; the local spawner uses the user environment instead.",
            "environment": "JSON, variable to value, set in the server, "
            'e.g. {"MPLBACKEND": "Agg"}.',
            "options": "JSON, KubeSpawner's profile_options: choices on the start page, e.g. "
            '{"size": {"display_name": "Size", "choices": {"small": {"display_name": '
            '"Small", "default": true, "overrides": {"mem_limit": "1G"}}}}}.',
            "spawner_overrides": "JSON, KubeSpawner's kubespawner_override: spawner "
            'settings of this profile, e.g. {"default_url": "/lab", "mem_limit": "4G"}.',
        }


@admin.register(Profile)
class ProfileAdmin(admin.ModelAdmin):
    form = ProfileForm
    list_display = ["display_name", "slug", "default", "order", "group_names"]
    list_editable = ["order"]
    prepopulated_fields = {"slug": ["display_name"]}
    filter_horizontal = ["allowed_groups"]
    search_fields = ["slug", "display_name"]

    @admin.display(description="allowed groups")
    def group_names(self, profile: Profile) -> str:
        return ", ".join(g.name for g in profile.allowed_groups.all()) or "everyone"


@admin.register(ServerEvent)
class ServerEventAdmin(admin.ModelAdmin):
    list_display = ["when", "server", "kind", "progress", "message", "actor"]
    list_filter = ["kind", "created"]
    ordering = ["-created", "-id"]  # newest first
    search_fields = ["server__user__username", "server__name", "message"]
    list_select_related = ["server__user"]

    @admin.display(description="time (UTC)", ordering="created")
    def when(self, event: ServerEvent) -> str:
        return event.created.strftime("%Y-%m-%d %H:%M:%S")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: ServerEvent | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: ServerEvent | None = None) -> bool:
        return False
