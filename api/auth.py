"""Who is calling: a personal API token (programs), or the session cookie with CSRF (the browser)."""

from __future__ import annotations

from datetime import UTC, datetime

from channels.db import database_sync_to_async
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.http import HttpRequest
from ninja.security import APIKeyCookie, HttpBearer
from ninja.utils import check_csrf

from api.errors import CSRF_FAILED, INVALID_TOKEN, ApiError
from api.selectors import api_token_authenticate
from api.services import api_token_mark_used


def _token_user(secret: str) -> AbstractBaseUser | None:
    token = api_token_authenticate(secret=secret)
    if token is None:
        return None
    api_token_mark_used(token=token, now=datetime.now(UTC))
    return token.user


class TokenAuth(HttpBearer):
    """`Authorization: Bearer <token>`: a bad or revoked token is refused at once (401)."""

    async def authenticate(self, request: HttpRequest, token: str) -> AbstractBaseUser:
        user = await database_sync_to_async(_token_user)(token.strip())
        if user is None:
            raise ApiError(401, "unauthorized", INVALID_TOKEN)
        return user


class SessionCookieAuth(APIKeyCookie):
    """The browser's session cookie; a request that changes something must pass Django's CSRF check."""

    param_name: str = settings.SESSION_COOKIE_NAME

    def _get_key(self, request: HttpRequest) -> str | None:
        key = request.COOKIES.get(self.param_name)
        if key and check_csrf(request) is not None:
            raise ApiError(403, "forbidden", CSRF_FAILED)
        return key

    async def authenticate(self, request: HttpRequest, key: str | None) -> AbstractBaseUser | None:
        if not key:
            return None
        user = await request.auser()
        return user if user.is_authenticated else None
