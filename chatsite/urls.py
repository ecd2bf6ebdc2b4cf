"""URL configuration."""

from django.contrib import admin
from django.urls import include, path

from accounts.throttling import login_throttle
from accounts.views import admin_login

urlpatterns = [
    # The admin's own login form is a second way to try passwords: it counts with the site's login.
    # With PASSWORD_LOGIN_ENABLED off it sends people to single sign-on and refuses passwords.
    path("admin/login/", admin_login(login_throttle(admin.site.login))),
    path("admin/", admin.site.urls),
    path("", include("accounts.urls")),
    path("", include("conversations.urls")),
    path("", include("api.urls")),
]
