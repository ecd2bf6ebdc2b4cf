"""Who is calling: a personal API token (programs), or the session cookie with CSRF (the browser)."""

from __future__ import annotations

from contextvars import ContextVar
from datetime import UTC, datetime

from channels.db import database_sync_to_async
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.http import HttpRequest
from ninja.security import APIKeyCookie, HttpBearer
from ninja.utils import check_csrf

from api.errors import CODES_BY_STATUS, CSRF_FAILED, INVALID_TOKEN, ApiError
from api.models import ApiToken
from api.selectors import api_token_authenticate
from api.services import api_token_mark_used

authenticating_token_id: ContextVar[int | None] = ContextVar("authenticating_token_id", default=None)
"""The API token that authenticated the request being served; None for the session cookie.

Set by the authentication, in the request's own context, and read by `api.sse` so that an event
stream opened with a token ends when the token stops working. Every authenticated request sets it.
"""


def _working_token(secret: str) -> ApiToken | None:
    token = api_token_authenticate(secret=secret)
    if token is not None:
        api_token_mark_used(token=token, now=datetime.now(UTC))
    return token


class TokenAuth(HttpBearer):
    """`Authorization: Bearer <token>`: a bad, revoked or expired token is refused at once (401)."""

    async def authenticate(self, request: HttpRequest, token: str) -> AbstractBaseUser:
        working = await database_sync_to_async(_working_token)(token.strip())
        if working is None:
            raise ApiError(401, CODES_BY_STATUS[401], INVALID_TOKEN)
        authenticating_token_id.set(working.pk)
        return working.user


class SessionCookieAuth(APIKeyCookie):
    """The browser's session cookie; a request that changes something must pass Django's CSRF check."""

    param_name: str = settings.SESSION_COOKIE_NAME

    def _get_key(self, request: HttpRequest) -> str | None:
        key = request.COOKIES.get(self.param_name)
        if key and check_csrf(request) is not None:
            raise ApiError(403, CODES_BY_STATUS[403], CSRF_FAILED)
        return key

    async def authenticate(self, request: HttpRequest, key: str | None) -> AbstractBaseUser | None:
        authenticating_token_id.set(None)
        if not key:
            return None
        user = await request.auser()
        return user if user.is_authenticated else None
