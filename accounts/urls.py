"""Signing up, logging in and out, changing and resetting a password: Django's standard paths."""

from django.contrib.auth import views as auth_views
from django.urls import path

from accounts import my_data_views, oidc, views
from accounts.settings_views import account_settings
from accounts.throttling import login_throttle

urlpatterns = [
    path("accounts/login/", views.password_login(login_throttle(auth_views.LoginView.as_view())), name="login"),
    path("accounts/sso/start/", oidc.SsoStartView.as_view(), name="oidc_authentication_init"),
    path("accounts/sso/callback/", oidc.SsoCallbackView.as_view(), name="oidc_authentication_callback"),
    path("accounts/logout/", views.LogoutView.as_view(), name="logout"),
    path("accounts/signup/", views.signup, name="signup"),
    path("accounts/password_change/", views.PasswordChangeView.as_view(), name="password_change"),
    path(
        "accounts/password_change/done/",
        auth_views.PasswordChangeDoneView.as_view(),
        name="password_change_done",
    ),
    path("accounts/password_reset/", views.password_pages(views.PasswordResetView.as_view()), name="password_reset"),
    path(
        "accounts/password_reset/done/",
        views.password_pages(auth_views.PasswordResetDoneView.as_view()),
        name="password_reset_done",
    ),
    path(
        "accounts/reset/<uidb64>/<token>/",
        views.password_pages(views.PasswordResetConfirmView.as_view()),
        name="password_reset_confirm",
    ),
    path(
        "accounts/reset/done/",
        views.password_pages(auth_views.PasswordResetCompleteView.as_view()),
        name="password_reset_complete",
    ),
    path("accounts/sessions/logout-others/", views.logout_other_sessions, name="logout_other_sessions"),
    path("accounts/export/", my_data_views.export, name="account_export"),
    path("accounts/delete/", my_data_views.delete, name="account_delete"),
    path("accounts/settings/", account_settings, name="account_settings"),
]
