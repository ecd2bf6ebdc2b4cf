"""The server process's start and stop (ASGI lifespan): sweep from the start, drain on the way out.

`manage.py serve` runs uvicorn with lifespan on, and then:

- at start: the process sweeps for runs of dead processes at once and every `RUN_SWEEP_SECONDS`,
  whatever it serves (sockets, the API, pages);
- on SIGTERM or SIGINT: the process drains (`ProcessState.begin_drain`) before the server closes
  its connections: it takes no new run (a send is refused `restarting`, HTTP 503), its event
  streams end (their clients reconnect elsewhere with `Last-Event-ID`), and the server closes its
  WebSockets with 1012, which the page takes as "reconnect now" (to another process, which follows
  the run through the group and the run's event log);
- at the lifespan's shutdown (the connections closed): its runs get `AGENT_DRAIN_SECONDS` to
  finish; the rest are stopped and stored `interrupted` ("the server restarted"), their tabs told;
  then the process exits.

A server without lifespan (daphne) gets none of this: the watchdog then starts at the first socket,
and a stop interrupts the runs (another process's sweep marks them within `RUN_STALE_SECONDS`).
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable
from typing import Any

from django.conf import settings

logger = logging.getLogger(__name__)

DRAIN_SIGNALS = (signal.SIGTERM, signal.SIGINT)
SHUTDOWN_MARGIN_SECONDS = 10.0
"""Past the drain: time for the runs stopped to store what they said and tell their tabs."""

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


async def lifespan(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    """The ASGI lifespan protocol: `startup` then, at the end, `shutdown`."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            try:
                serving_started()
            except Exception as error:
                logger.exception("the process could not start serving")
                await send({"type": "lifespan.startup.failed", "message": str(error)})
                return
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await serving_stopped()
            await send({"type": "lifespan.shutdown.complete"})
            return


def serving_started() -> None:
    """The server listens: sweep from now on, and drain as soon as a stop signal comes."""
    from conversations.watchdog import ensure_watchdog

    ensure_watchdog()
    drain_on_signals(asyncio.get_running_loop())


def drain_on_signals(loop: asyncio.AbstractEventLoop) -> None:
    """Begin the drain at SIGTERM/SIGINT, before the server's own handler (which goes on to close the
    connections) runs: the process refuses new runs before any tab can reconnect to it."""
    from conversations.process import process_state

    for number in DRAIN_SIGNALS:
        previous = signal.getsignal(number)
        if not callable(previous) or getattr(previous, "__drains__", False):
            continue  # no server handler to go on to (the default kills at once), or set already

        def drain_then(signum: int, frame: Any, previous: Callable[[int, Any], Any] = previous) -> None:
            loop.call_soon_threadsafe(process_state().begin_drain)
            previous(signum, frame)

        drain_then.__drains__ = True  # type: ignore[attr-defined]
        signal.signal(number, drain_then)


async def serving_stopped() -> None:
    """The server closed its connections: let the runs finish (`AGENT_DRAIN_SECONDS`), stop the rest."""
    from conversations.process import process_state

    drain = settings.AGENT_DRAIN_SECONDS
    unfinished = await process_state().shutdown(timeout=drain + SHUTDOWN_MARGIN_SECONDS, finish_within=drain)
    if unfinished:
        logger.warning("stopped with runs still executing: %s", ", ".join(unfinished))
    else:
        logger.info("drained: every run here has ended")
    metrics_process_ended()


def metrics_process_ended() -> None:
    """A worker of `manage.py serve --workers N` leaves: its live gauges stop counting in `/metrics`."""
    import os

    from prometheus_client import multiprocess

    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.mark_process_dead(os.getpid())
