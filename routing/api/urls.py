from django.urls import path

from routing.api import views

app_name = "routing-api"

urlpatterns = [
    path("routes", views.RouteTableView.as_view(), name="routes"),
    path("routes/lookup", views.RouteLookupView.as_view(), name="routes-lookup"),
    path("routes/activity", views.RouteActivityView.as_view(), name="routes-activity"),
    path("proxy", views.ProxyView.as_view(), name="proxy"),
]
