"""URL configuration."""

from django.contrib import admin
from django.urls import include, path

from accounts.throttling import login_throttle

urlpatterns = [
    # The admin's own login form is a second way to try passwords: it counts with the site's login.
    path("admin/login/", login_throttle(admin.site.login)),
    path("admin/", admin.site.urls),
    path("", include("accounts.urls")),
    path("", include("conversations.urls")),
    path("", include("api.urls")),
]
