"""What every page may show of the ways in: the single sign-on button, the password form, sign-up."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest


def sign_in(request: HttpRequest) -> dict[str, object]:
    return {
        "sso_enabled": settings.SSO_ENABLED,
        "sso_button_label": settings.OIDC_BUTTON_LABEL,
        "password_login_enabled": settings.PASSWORD_LOGIN_ENABLED,
        "signup_enabled": settings.SIGNUP_ENABLED,
    }
