"""The WebSocket handshake's Origin check: a socket opens only from the site's own origin.

Channels' `AllowedHostsOriginValidator` compares host names only, so a page on another port or
scheme of the same host (`http://127.0.0.1:18299`, `https://127.0.0.1`) could drive the user's
sockets with the user's cookie. `SameOriginValidator` asks of the handshake what Django's CSRF check
asks of a form post (`CsrfViewMiddleware._origin_verified`): its `Origin` is the request's own
scheme, Host and port (`ws` is `http`, `wss` is `https`, or as `SECURE_PROXY_SSL_HEADER` says
behind a proxy), the Host being one of `ALLOWED_HOSTS`; or it is one of `CSRF_TRUSTED_ORIGINS`
(`https://*.example.com` for example.com and its subdomains) while the Host is still one of
`ALLOWED_HOSTS`. No `Origin`, `null`, or one that matches nothing is refused at the handshake
(HTTP 403), before the session is even read.
"""

from __future__ import annotations

import io
from typing import Any
from urllib.parse import urlsplit

from channels.security.websocket import WebsocketDenier
from django.conf import settings
from django.core.exceptions import DisallowedHost
from django.core.handlers.asgi import ASGIRequest
from django.http import HttpRequest
from django.utils.http import is_same_domain

HTTP_SCHEMES = {"ws": "http", "wss": "https"}
NOT_A_WEBSOCKET = "SameOriginValidator guards WebSocket connections only."


class SameOriginValidator:
    """ASGI middleware: the inner application for a handshake from the site's own (or a trusted)
    origin; anything else is denied (HTTP 403)."""

    def __init__(self, application: Any) -> None:
        self.application = application

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        if scope["type"] != "websocket":
            raise ValueError(NOT_A_WEBSOCKET)
        if origin_allowed(scope):
            return await self.application(scope, receive, send)
        return await WebsocketDenier()(scope, receive, send)


def origin_allowed(scope: dict[str, Any]) -> bool:
    """Whether the handshake in `scope` comes from the site's own origin, or a trusted one, to a
    Host this site serves."""
    request = handshake_request(scope)
    origin = request.META.get("HTTP_ORIGIN")
    if not origin:
        return False
    try:
        host = request.get_host()  # ALLOWED_HOSTS, as for every page
    except DisallowedHost:
        return False
    return origin == f"{request.scheme}://{host}" or origin_trusted(origin)


def handshake_request(scope: dict[str, Any]) -> HttpRequest:
    """The handshake as Django sees an HTTP request: the same headers, and the scheme of the page
    that may open it (`ws` → `http`, `wss` → `https`), so that `get_host()` and `scheme` (behind a
    proxy, `SECURE_PROXY_SSL_HEADER`) answer as they do for the pages."""
    scheme = scope.get("scheme") or "ws"
    as_http = {**scope, "type": "http", "method": "GET", "scheme": HTTP_SCHEMES.get(scheme, scheme)}
    return ASGIRequest(as_http, io.BytesIO())


def origin_trusted(origin: str) -> bool:
    """Whether `origin` is one of `CSRF_TRUSTED_ORIGINS`, read as Django's CSRF check reads them:
    exactly, or, for `scheme://*.domain`, the domain and its subdomains with that scheme."""
    trusted = settings.CSRF_TRUSTED_ORIGINS
    if origin in [allowed for allowed in trusted if "*" not in allowed]:
        return True
    try:
        parsed = urlsplit(origin)
    except ValueError:
        return False
    wildcards = [urlsplit(allowed) for allowed in trusted if "*" in allowed]
    return any(
        allowed.scheme == parsed.scheme and is_same_domain(parsed.netloc, allowed.netloc.lstrip("*"))
        for allowed in wildcards
    )
