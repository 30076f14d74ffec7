"""/hub/api/ routes for starting, stopping and watching servers."""

from django.urls import path

from servers.api import views

app_name = "servers-api"

urlpatterns = [
    path("users/<str:name>/server", views.ServerView.as_view(), name="default-server"),
    path(
        "users/<str:name>/server/progress",
        views.ProgressView.as_view(),
        name="default-server-progress",
    ),
    # an empty name (`.../servers/`) is the default server, as in JupyterHub
    path("users/<str:name>/servers/", views.ServerView.as_view(), name="server-default"),
    path("users/<str:name>/servers/<str:server_name>", views.ServerView.as_view(), name="server"),
    path(
        "users/<str:name>/servers/<str:server_name>/progress",
        views.ProgressView.as_view(),
        name="server-progress",
    ),
]
