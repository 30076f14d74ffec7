"""`GET /hub/metrics`: Prometheus text, JupyterHub's MetricsHandler.

Like JupyterHub, it needs the `read:metrics` scope (a token or a session)
unless HUB_AUTHENTICATE_PROMETHEUS is false (JupyterHub's
`authenticate_prometheus = False`), for a scraper inside a trusted network."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpResponse
from prometheus_client import CONTENT_TYPE_LATEST
from rest_framework.request import Request

from accounts.api.base import HubAPIView
from servers import metrics


class MetricsView(HubAPIView):
    def get(self, request: Request) -> HttpResponse:
        if settings.HUB_AUTHENTICATE_PROMETHEUS:
            self.access.require(self.access.is_unfiltered("read:metrics"), "read:metrics")
        return HttpResponse(metrics.exposition(), content_type=CONTENT_TYPE_LATEST)
