"""Signing up, logging in and out."""

from django.contrib.auth import views as auth_views
from django.urls import path

from accounts import views
from accounts.throttling import login_throttle

urlpatterns = [
    path("accounts/login/", login_throttle(auth_views.LoginView.as_view()), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("accounts/signup/", views.signup, name="signup"),
]
