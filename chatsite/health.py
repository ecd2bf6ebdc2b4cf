"""What probes and Prometheus ask of a process, answered before anything else a request goes through.

- `GET /healthz`: the process answers (200, `{"status": "ok"}`), whatever else is down.
- `GET /readyz`: it should get traffic: its database and Redis answer and it is not draining (200), or
  503 with the reason (`{"status": "unavailable", "reasons": {"database": "...", ...}}`).
- `GET /metrics`: Prometheus's text format, for `METRICS_ALLOWED_IPS` or `METRICS_TOKEN` only.

`OperationsMiddleware` comes first in `MIDDLEWARE`, so these never read the `Host` (a probe sends
whatever it likes), never redirect to HTTPS, never touch a session, a CSRF token or a throttle.
`RequestIdMiddleware` gives every other request an id, on its log lines and in `X-Request-ID`.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import json
import os
import re
import uuid
from collections.abc import Awaitable, Callable
from functools import cache

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from django.conf import settings
from django.db import connection
from django.http import HttpRequest, HttpResponse
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

from accounts.throttling import forwarded_client_ip
from conversations.event_log import redis_ping
from conversations.process import process_state
from conversations.telemetry import DATABASE_SECONDS, REDIS_SECONDS, log_context_set, timed

PROBE_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
CHECK_TIMEOUT_SECONDS = 2.0
"""A check that has not answered by then counts as down: a probe never hangs on a dead database."""
REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")

Handler = Callable[[HttpRequest], Awaitable[HttpResponse]]


def _json(status: int, body: dict) -> HttpResponse:
    response = HttpResponse(json.dumps(body), status=status, content_type="application/json")
    response["Cache-Control"] = "no-store"
    # A probe's 503 is an answer, not a server error: no "Service Unavailable" ERROR line per probe.
    response._has_been_logged = True  # type: ignore[attr-defined]
    return response


def _database_ping() -> None:
    with timed(DATABASE_SECONDS, "ready"), connection.cursor() as cursor:
        cursor.execute("SELECT 1")


async def _check(name: str, call: Callable[[], Awaitable[object]]) -> tuple[str, str | None]:
    try:
        await asyncio.wait_for(call(), CHECK_TIMEOUT_SECONDS)
    except TimeoutError:
        return name, f"no answer within {CHECK_TIMEOUT_SECONDS:g} s"
    except Exception as error:
        return name, f"{type(error).__name__}: {str(error)[:200]}"
    return name, None


async def _redis_ready() -> None:
    with timed(REDIS_SECONDS, "ready"):
        await redis_ping()


async def readiness() -> dict[str, str]:
    """What keeps this process from taking traffic, by what: empty when it is ready."""
    if process_state().draining:
        return {"process": "draining: the process is stopping (a deploy or restart)"}
    checks = await asyncio.gather(
        _check("database", sync_to_async(_database_ping)),
        _check("redis", _redis_ready),
    )
    return {name: reason for name, reason in checks if reason is not None}


@cache
def _networks(entries: tuple[str, ...]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(entry, strict=False) for entry in entries)


def metrics_allowed(request: HttpRequest) -> bool:
    """From an allowed address (the client's, by the proxy rule of `DJANGO_BEHIND_PROXY`), or with the token."""
    token = settings.METRICS_TOKEN
    given = request.META.get("HTTP_AUTHORIZATION", "")
    if token and hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
        return True
    address = forwarded_client_ip(request) if settings.BEHIND_PROXY else request.META.get("REMOTE_ADDR", "")
    try:
        client = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(client in network for network in _networks(tuple(settings.METRICS_ALLOWED_IPS)))


def metrics_text() -> bytes:
    """Every metric of this process, or of all the workers of `manage.py serve --workers N`."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
        return generate_latest(registry)
    return generate_latest(REGISTRY)


async def probe_response(request: HttpRequest) -> HttpResponse:
    """The answer to a request for one of `PROBE_PATHS`."""
    if request.method not in ("GET", "HEAD"):
        response = _json(405, {"error": "method_not_allowed", "message": "Only GET and HEAD."})
        response["Allow"] = "GET, HEAD"
        return response
    if request.path == "/healthz":
        return _json(200, {"status": "ok"})
    if request.path == "/readyz":
        reasons = await readiness()
        if reasons:
            response = _json(503, {"status": "unavailable", "reasons": reasons})
            response["Retry-After"] = "1"
            return response
        return _json(200, {"status": "ready"})
    if not metrics_allowed(request):
        return _json(403, {"error": "forbidden", "message": "Metrics are for METRICS_ALLOWED_IPS or METRICS_TOKEN."})
    return HttpResponse(metrics_text(), content_type=CONTENT_TYPE_LATEST)


class _AsyncMiddleware:
    """A middleware that runs on the event loop (Django adapts it for a sync caller)."""

    sync_capable = False
    async_capable = True

    def __init__(self, get_response: Handler) -> None:
        self.get_response = get_response
        if iscoroutinefunction(self.get_response):
            markcoroutinefunction(self)


class OperationsMiddleware(_AsyncMiddleware):
    """Answers `PROBE_PATHS` itself; passes every other request on."""

    async def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path in PROBE_PATHS:
            return await probe_response(request)
        return await self.get_response(request)


class RequestIdMiddleware(_AsyncMiddleware):
    """Each request's id (the proxy's `X-Request-ID` when it is a sane one, else a new one) on its log
    lines and its response."""

    async def __call__(self, request: HttpRequest) -> HttpResponse:
        given = request.META.get("HTTP_X_REQUEST_ID", "")
        request_id = given if REQUEST_ID.fullmatch(given) else uuid.uuid4().hex
        request.request_id = request_id  # type: ignore[attr-defined]
        log_context_set(request_id=request_id)
        response = await self.get_response(request)
        response["X-Request-ID"] = request_id
        return response
