"""Who is calling: a personal API token (programs), or the session cookie with CSRF (the browser).

Every route of the API declares the scope a token needs for it, `auth=scoped(Scope.SEND)`; a
token without that scope is refused with 403 `insufficient_scope`, and the OpenAPI description
names it (`security: [{"TokenAuth": ["send"]}, ...]`). The session cookie is not scoped: the
logged-in browser may do everything its user may.
"""

from __future__ import annotations

from contextvars import ContextVar
from datetime import UTC, datetime

from channels.db import database_sync_to_async
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.http import HttpRequest
from ninja import NinjaAPI
from ninja.openapi.schema import OpenAPISchema
from ninja.operation import Operation
from ninja.security import APIKeyCookie, HttpBearer
from ninja.utils import check_csrf

from api.errors import (
    CODES_BY_STATUS,
    CSRF_FAILED,
    INSUFFICIENT_SCOPE,
    INSUFFICIENT_SCOPE_CODE,
    INVALID_TOKEN,
    UNSCOPED_ROUTE,
    ApiError,
)
from api.models import ApiToken, Scope
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
    """`Authorization: Bearer <token>`: a bad, revoked or expired token is refused at once (401), a
    working one without the route's `scope` too (403 `insufficient_scope`; None: the route declared
    no scope, and no token may use it)."""

    def __init__(self, scope: Scope | None) -> None:
        super().__init__()
        self.scope = scope

    async def authenticate(self, request: HttpRequest, token: str) -> AbstractBaseUser:
        working = await database_sync_to_async(_working_token)(token.strip())
        if working is None:
            raise ApiError(401, CODES_BY_STATUS[401], INVALID_TOKEN)
        if not working.allows(self.scope):
            raise _insufficient_scope(self.scope)
        authenticating_token_id.set(working.pk)
        return working.user


def _insufficient_scope(scope: Scope | None) -> ApiError:
    """The 403 of a token without `scope`, with RFC 6750's `WWW-Authenticate` naming the scope."""
    if scope is None:
        return ApiError(403, INSUFFICIENT_SCOPE_CODE, UNSCOPED_ROUTE)
    challenge = f'Bearer realm="api", error="{INSUFFICIENT_SCOPE_CODE}", scope="{scope.value}"'
    message = INSUFFICIENT_SCOPE.format(scope=scope.value)
    return ApiError(403, INSUFFICIENT_SCOPE_CODE, message, headers={"WWW-Authenticate": challenge})


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


def scoped(scope: Scope | None) -> list[TokenAuth | SessionCookieAuth]:
    """What a route declares as its `auth`: a token with `scope`, or the session cookie."""
    return [TokenAuth(scope), SessionCookieAuth()]


class ScopedOpenAPISchema(OpenAPISchema):
    """The OpenAPI description, each operation's bearer requirement naming the scope it needs."""

    def operation_security(self, operation: Operation) -> list[dict[str, list[str]]] | None:
        security = super().operation_security(operation)
        scopes = [auth.scope.value for auth in operation.auth_callbacks if isinstance(auth, TokenAuth) and auth.scope]
        return [
            {name: scopes if name == TokenAuth.__name__ else need for name, need in requirement.items()}
            for requirement in security or []
        ] or None


class ScopedApi(NinjaAPI):
    """The API, its OpenAPI description showing each operation's scope."""

    def get_openapi_schema(self, *, path_prefix: str | None = None, path_params: dict | None = None) -> OpenAPISchema:
        if path_prefix is None:
            path_prefix = self.get_root_path(path_params or {})
        return ScopedOpenAPISchema(self, path_prefix)
