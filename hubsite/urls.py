"""Everything the hub serves lives under /hub/; /user/... belongs to the router."""

from __future__ import annotations

from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

from accounts.api.views import root as api_root
from servers.api.metrics import MetricsView

urlpatterns = [
    path("", RedirectView.as_view(url="/hub/", permanent=False)),
    # jupyterhub-singleuser checks the hub version at JUPYTERHUB_API_URL, no slash
    path("hub/api", api_root),
    path("hub/api/oauth2/", include("accounts.oauth_urls")),
    path("hub/api/", include("accounts.api.urls")),
    path("hub/api/", include("servers.api.urls")),
    path("hub/api/", include("routing.api.urls")),
    path("hub/metrics", MetricsView.as_view(), name="metrics"),
    # one login page for everyone: the hub's (approval check, allauth rate limits)
    path("hub/admin/login/", RedirectView.as_view(url="/hub/login", query_string=True)),
    path("hub/admin/", admin.site.urls),
    path("hub/", include("accounts.urls")),
    path("hub/", include("servers.urls")),
]

# JSON for /hub/api errors that happen outside a DRF view (unknown path, a crash);
# a database outage is a 503 with Retry-After, not a 500 (hubsite/errors.py)
handler404 = "accounts.api.errors.not_found"
handler500 = "hubsite.errors.server_error"
