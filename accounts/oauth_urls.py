"""/hub/api/oauth2/: the OAuth provider single-user servers log people in with."""

from django.urls import path

from accounts import oauth_views

app_name = "oauth2"

urlpatterns = [
    path("authorize", oauth_views.authorize, name="authorize"),
    path("token", oauth_views.token, name="token"),
]
