"""Prometheus metrics, under JupyterHub's names where JupyterHub has one
(jupyterhub/metrics.py), so its dashboards work; `hub_*` for what it has not.

Events (spawn and stop durations, request durations, culls) are observed in
whichever process they happen in: gunicorn workers, Celery workers, beat.
prometheus-client's multiprocess mode (PROMETHEUS_MULTIPROC_DIR, set by
settings under the data dir) keeps each process's values in files there, and
a scrape sums them. Levels (running servers, users, pending spawns, routes)
are read from the database at scrape time, which is the truth for every hub
replica alike, so no process has to keep them up to date.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

from django.db.models import Q
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

REQUEST_DURATION_SECONDS = Histogram(
    "jupyterhub_request_duration_seconds",
    "request duration for all HTTP requests",
    ["method", "handler", "code"],
)
SPAWN_BUCKETS = [0.5, 1, 2.5, 5, 10, 15, 30, 60, 120, 180, 300, 600, float("inf")]
SERVER_SPAWN_DURATION_SECONDS = Histogram(
    "jupyterhub_server_spawn_duration_seconds",
    "time taken for server spawning operation",
    ["status"],
    buckets=SPAWN_BUCKETS,
)
SERVER_STOP_DURATION_SECONDS = Histogram(
    "jupyterhub_server_stop_seconds", "time taken for server stopping operation", ["status"]
)
CULLS = Counter("hub_culls", "servers stopped and users deleted by the idle culler", ["kind"])
RECONCILE_REPAIRS = Counter("hub_reconcile_repairs", "repairs made by reconcile", ["action"])

SPAWN_STATUSES = ("success", "failure", "already-pending", "throttled", "too-many-users")
for _status in SPAWN_STATUSES:
    SERVER_SPAWN_DURATION_SECONDS.labels(status=_status)
for _status in ("success", "failure"):
    SERVER_STOP_DURATION_SECONDS.labels(status=_status)
for _kind in ("server", "user"):
    CULLS.labels(kind=_kind)

ACTIVE_PERIODS = {"24h": timedelta(hours=24), "7d": timedelta(days=7), "30d": timedelta(days=30)}


class DatabaseCollector(Collector):
    """Levels read from the database at each scrape (a handful of COUNTs)."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        from accounts.models import User
        from servers.models import Server

        State = Server.State
        counts = {
            state: Server.objects.filter(state=state).count()
            for state in (State.RUNNING, State.STARTING, State.STOPPING)
        }
        yield GaugeMetricFamily(
            "jupyterhub_running_servers",
            "the number of user servers currently running",
            value=counts[State.RUNNING],
        )
        yield GaugeMetricFamily(
            "jupyterhub_total_users", "total number of users", value=User.objects.count()
        )
        active = GaugeMetricFamily(
            "jupyterhub_active_users",
            "number of users who were active in the given time period",
            labels=["period"],
        )
        now = timezone.now()
        for period, span in ACTIVE_PERIODS.items():
            count = User.objects.filter(last_activity__gte=now - span).count()
            active.add_metric([period], count)
        yield active
        yield GaugeMetricFamily(
            "hub_pending_spawns", "servers starting right now", value=counts[State.STARTING]
        )
        yield GaugeMetricFamily(
            "hub_pending_stops", "servers stopping right now", value=counts[State.STOPPING]
        )
        yield GaugeMetricFamily(
            "hub_routes",
            "routes the routers are told about (running servers with a URL)",
            value=Server.objects.routable().count(),
        )
        failed = Server.objects.filter(
            Q(state=State.FAILED) & Q(changed__gte=now - timedelta(hours=1))
        ).count()
        yield GaugeMetricFamily(
            "hub_failed_servers_last_hour", "servers that failed in the last hour", value=failed
        )


def exposition() -> bytes:
    """The whole metrics page: every process's events plus the database levels."""
    registry = CollectorRegistry()
    MultiProcessCollector(registry)
    registry.register(DatabaseCollector())
    return generate_latest(registry)


class RequestMetricsMiddleware:
    """jupyterhub_request_duration_seconds for every hub request, labelled by
    the view that answered (not the path: bounded cardinality)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        began = time.perf_counter()
        response = self.get_response(request)
        match: Any = getattr(request, "resolver_match", None)
        handler = match._func_path if match is not None else "unmatched"
        REQUEST_DURATION_SECONDS.labels(
            method=request.method, handler=handler, code=response.status_code
        ).observe(time.perf_counter() - began)
        return response
