"""/hub/api/ routes for the hub itself, users, groups and tokens."""

from django.urls import path

from accounts.api import views

app_name = "accounts-api"

urlpatterns = [
    path("", views.root, name="root"),
    path("info", views.InfoView.as_view(), name="info"),
    path("user", views.SelfView.as_view(), name="self"),
    path("users", views.UserListView.as_view(), name="user-list"),
    path("users/<str:name>", views.UserView.as_view(), name="user"),
    path("users/<str:name>/activity", views.ActivityView.as_view(), name="activity"),
    path("users/<str:name>/tokens", views.TokenListView.as_view(), name="token-list"),
    path("users/<str:name>/tokens/<str:token_id>", views.TokenView.as_view(), name="token"),
    path("groups", views.GroupListView.as_view(), name="group-list"),
    path("groups/<str:name>", views.GroupView.as_view(), name="group"),
    path("groups/<str:name>/users", views.GroupUsersView.as_view(), name="group-users"),
    path(
        "groups/<str:name>/properties",
        views.GroupPropertiesView.as_view(),
        name="group-properties",
    ),
]
