"""The benchmark's ASGI app: the product, untouched, plus the references' WebSocket routes.

`uvicorn bench.asgi:application` (or any server of `bench.servers.SERVERS`). Sockets under
`/ws/bench/` go to the references (behind the same origin check and session authentication as
the product's); everything else goes to `chatsite.asgi.application` itself, so the product's
code path is the one deployed.

With `BENCH_COUNT_SQL=1` every SQL statement the process runs is counted by its first word, and
`GET /bench/sql` answers the counts so far as JSON (the two-process run reads them per answer).

Experiments (off unless their variable is set; they measure proposed product changes before the
product makes them, see docs/benchmarks.md):

- `BENCH_RELAY_ADAPTIVE=base,per_run,cap` (milliseconds): a run's relay interval becomes
  `min(cap, max(base, per_run x runs streaming in this process))` when it starts, instead of
  `RELAY_MIN_INTERVAL_MS`: more text merged per event only when many runs share the process.
- `BENCH_LAYER_CLEAN_EVERY=seconds`: the in-memory channel layer looks for expired messages
  at most this often, instead of scanning every channel and group at every send and receive.
"""

from __future__ import annotations

import json
import os
import threading
from collections import Counter
from typing import Any

from django.db.backends.signals import connection_created

SQL_PATH = "/bench/sql"
statements: Counter[str] = Counter()
_lock = threading.Lock()


def count_statement(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
    """A Django execute wrapper: count the statement by its first word, then run it."""
    kind = sql.lstrip().split(None, 1)[0].upper() if sql.strip() else "?"
    with _lock:
        statements[kind] += 1
    return execute(sql, params, many, context)


def _count_on(sender: Any, connection: Any, **kwargs: Any) -> None:
    if count_statement not in connection.execute_wrappers:
        connection.execute_wrappers.append(count_statement)


# Before the product is imported: a process that warms up at import opens connections it keeps.
if os.environ.get("BENCH_COUNT_SQL"):
    connection_created.connect(_count_on, weak=False)

import chatsite.asgi  # noqa: E402

product_application = chatsite.asgi.application  # importing it set Django up, which what follows needs

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402

from bench.reference import websocket_urlpatterns  # noqa: E402

REFERENCE_PREFIX = "/ws/bench/"

references = AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns)))


class AdaptiveRelaySettings:
    """Django's settings, but the relay interval grows with the runs streaming in this process."""

    def __init__(self, settings: Any, base: float, per_run: float, cap: float) -> None:
        self._settings, self._base, self._per_run, self._cap = settings, base, per_run, cap

    def __getattr__(self, name: str) -> Any:
        if name == "RELAY_MIN_INTERVAL_SECONDS":
            from conversations.process import process_state

            return min(self._cap, max(self._base, self._per_run * len(process_state().runs))) / 1000
        return getattr(self._settings, name)


def _experiments() -> None:
    adaptive = os.environ.get("BENCH_RELAY_ADAPTIVE")
    if adaptive:
        from django.conf import settings

        from conversations import runs

        base, per_run, cap = (float(v) for v in adaptive.split(","))
        runs.settings = AdaptiveRelaySettings(settings, base, per_run, cap)
    every = os.environ.get("BENCH_LAYER_CLEAN_EVERY")
    if every:
        import time

        from channels.layers import InMemoryChannelLayer

        clean = InMemoryChannelLayer._clean_expired
        last = [0.0]

        def clean_now_and_then(self: InMemoryChannelLayer) -> None:
            now = time.monotonic()
            if now - last[0] >= float(every):
                last[0] = now
                clean(self)

        InMemoryChannelLayer._clean_expired = clean_now_and_then


_experiments()


async def _sql_counts(send: Any) -> None:
    with _lock:
        body = json.dumps(dict(statements)).encode()
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body})


async def application(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Route the references' sockets to them, the SQL counts to their page, everything else to the product."""
    if scope["type"] == "websocket" and scope["path"].startswith(REFERENCE_PREFIX):
        await references(scope, receive, send)
        return
    if scope["type"] == "http" and scope["path"] == SQL_PATH and os.environ.get("BENCH_COUNT_SQL"):
        await _sql_counts(send)
        return
    await product_application(scope, receive, send)
