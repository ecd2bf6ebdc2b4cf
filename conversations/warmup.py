"""Getting a web server process ready for its first answer before it serves anyone (`AGENT_WARM_UP`)."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from conversations.process import process_state

logger = logging.getLogger(__name__)

WEB_SERVERS = frozenset({"daphne", "uvicorn", "gunicorn", "hypercorn", "granian"})
DATABASE_WARM_UP_TIMEOUT = 10.0
WARM_UP_GROUP = "warm-up"
WARM_UP_RUN = "warm-up"
_fork_hook_registered = False


def serving_process(argv: list[str] | None = None) -> bool:
    """Whether this process is a web server (daphne, uvicorn, gunicorn, hypercorn, granian, or
    `manage.py serve` and its workers), not another `manage.py` command or a test run: `daphne ...` as
    well as `python -m daphne ...`."""
    argv = argv if argv is not None else sys.argv
    program = Path(argv[0] or "") if argv else Path()
    name = program.parent.name if program.name == "__main__.py" else program.name
    return name in WEB_SERVERS or (name == "manage.py" and argv[1:2] == ["serve"])


def warm_up_if_serving() -> dict[str, float] | None:
    """`warm_up()` when `AGENT_WARM_UP` is on and this process is a web server; None otherwise."""
    from django.conf import settings

    if not settings.AGENT_WARM_UP or not serving_process():
        return None
    return warm_up()


def warm_up() -> dict[str, float]:
    """Get the process ready for its first answer before it serves anyone: every offered assistant's
    model built and rehearsed offline, a database connection opened (and first queries run) on the
    thread the sockets' database calls use, the channel layer and the run event log built. Each part
    that fails is logged and skipped: a start is never refused for it. Seconds per part."""
    took: dict[str, float] = {}
    for name, part in (("models", _warm_models), ("database", _warm_database), ("channels", _warm_channels)):
        started = time.perf_counter()
        try:
            part()
        except Exception:
            logger.warning("warming up the %s failed; the first answer will do it", name, exc_info=True)
        took[name] = round(time.perf_counter() - started, 3)
    logger.info("warmed up: %s", ", ".join(f"{name} {seconds:.2f} s" for name, seconds in took.items()))
    return took


def _warm_models() -> None:
    from conversations.assistants import assistants_warm_up

    assistants_warm_up()


def _warm_database() -> None:
    from asgiref.sync import SyncToAsync

    # A server that imports the application and then forks its workers (gunicorn --preload) must not
    # hand them this executor: its thread does not survive the fork, and work sent to it would wait forever.
    global _fork_hook_registered
    if not _fork_hook_registered:
        os.register_at_fork(after_in_child=_new_worker_thread)
        _fork_hook_registered = True
    # database_sync_to_async runs the sockets' calls on this one thread (outside a request's own
    # context): its connection, kept open (CONN_MAX_AGE), is the one the first send uses.
    SyncToAsync.single_thread_executor.submit(_first_queries).result(DATABASE_WARM_UP_TIMEOUT)


def _new_worker_thread() -> None:
    from asgiref.sync import SyncToAsync

    SyncToAsync.single_thread_executor = ThreadPoolExecutor(max_workers=1)


def _first_queries() -> None:
    from django.contrib.sessions.models import Session
    from django.db import close_old_connections, connection

    from conversations.models import Conversation, Message

    close_old_connections()
    connection.ensure_connection()
    Session.objects.filter(pk="").first()
    Conversation.objects.filter(pk=0).select_related("owner").first()
    Message.objects.filter(conversation_id=0).order_by("-created", "-id").first()


def _warm_channels() -> None:
    from channels.layers import get_channel_layer

    from conversations.event_log import get_event_log

    get_channel_layer()
    get_event_log()
    # Their connections (Redis) belong to the event loop that serves: opened there, as it starts.
    loop = _serving_loop() if serving_process() else None
    if loop is not None:
        task = loop.create_task(_open_connections(), name="warm-up-connections")
        warming = process_state().warm_up_tasks
        warming.add(task)
        task.add_done_callback(warming.discard)


def _serving_loop() -> asyncio.AbstractEventLoop | None:
    """The event loop this process will serve from: the running one (uvicorn imports the application
    in it), or the one daphne's reactor is about to run; None when neither is known."""
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        pass
    loop = getattr(sys.modules.get("daphne.server"), "twisted_loop", None)
    return loop if isinstance(loop, asyncio.AbstractEventLoop) and not loop.is_closed() else None


async def _open_connections() -> None:
    """A group send to a group nobody is in, and a read of a run that never was: the channel layer's
    and the event log's first connections, made before the first answer needs them."""
    from channels.layers import get_channel_layer

    from conversations.event_log import get_event_log

    try:
        layer = get_channel_layer()
        if layer is not None:
            await layer.group_send(WARM_UP_GROUP, {"type": "warm.up"})
        await get_event_log().read(WARM_UP_RUN)
    except Exception:
        logger.warning("opening the channel layer's connections failed; the first answer will", exc_info=True)
