"""Server pages under /hub/ (see servers/views.py)."""

from __future__ import annotations

from django.urls import path

from servers import views

urlpatterns = [
    path("home", views.home, name="home"),
    path("home/stop", views.stop, name="server-stop"),
    path("home/remove", views.remove, name="server-remove"),
    path("home/new", views.new_named, name="server-new"),
    path("spawn", views.spawn, name="spawn-mine"),
    path("spawn/<str:username>", views.spawn, name="spawn"),
    path("spawn/<str:username>/<str:server_name>", views.spawn, name="spawn"),
    path("spawn-pending/<str:username>", views.spawn_pending, name="spawn-pending"),
    path(
        "spawn-pending/<str:username>/<str:server_name>",
        views.spawn_pending,
        name="spawn-pending",
    ),
    path("user/<str:username>", views.user_route, name="user-route-bare"),
    path("user/<str:username>/<path:rest>", views.user_route, name="user-route"),
    path("user-redirect/<path:rest>", views.user_redirect, name="user-redirect"),
]
