"""Runs whose process died: found by their silent heartbeat, marked `interrupted`, tabs told.

Every server process sweeps once when it starts serving sockets and then every
`RUN_SWEEP_SECONDS`; `manage.py sweep_runs` does one sweep from a shell or a timer.
The update is conditional, so a message that completed is never overwritten and only
one process announces each interruption.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging
from typing import Any

from channels.db import database_sync_to_async
from django.conf import settings
from django.db import DatabaseError

from agent_runtime import events
from agent_runtime.events import Event
from agent_runtime.report import ToolStep
from conversations import runs, telemetry
from conversations.approvals import approvals_expire_for_run
from conversations.event_log import get_event_log, redis_ping
from conversations.models import Message
from conversations.process import process_state
from conversations.selectors import stale_runs
from conversations.services import RUN_INTERRUPTED, run_interrupt

logger = logging.getLogger(__name__)


def ensure_watchdog() -> None:
    """Start this process's periodic sweep, once per event loop."""
    state = process_state()
    if not settings.RUN_WATCHDOG or state.draining:
        return
    loop = asyncio.get_running_loop()
    task = state.sweepers.get(loop)
    if task is None or task.done():
        state.sweepers[loop] = loop.create_task(_sweep_forever(), name="run-watchdog", context=contextvars.Context())


async def _sweep_forever() -> None:
    while True:
        try:
            await sweep_interrupted_runs()
        except Exception:
            logger.exception("sweeping interrupted runs failed")
        await asyncio.sleep(settings.RUN_SWEEP_SECONDS)


async def sweep_interrupted_runs() -> int:
    """Mark every run that stopped beating as interrupted and tell its tabs; how many were."""
    stale_seconds = settings.RUN_STALE_SECONDS
    interrupted = 0
    with telemetry.timed(telemetry.DATABASE_SECONDS, "sweep"):
        stale = await database_sync_to_async(stale_runs)(stale_seconds=stale_seconds)
    for message in stale:
        try:
            if await _interrupt(message, stale_seconds):
                interrupted += 1
                telemetry.SWEEP_INTERRUPTED.inc()
                logger.warning(
                    "run interrupted: its process went silent (no heartbeat for %g s); partial answer kept",
                    stale_seconds,
                    extra={
                        "event": "run_interrupted",
                        "run_id": message.run_id,
                        "conversation_id": message.conversation_id,
                        "worker": message.worker,
                    },
                )
        except Exception:
            # One bad row must not stop the sweep from recovering everybody else's runs.
            logger.exception("marking run %s interrupted failed", message.run_id)
    await _ping_redis()
    return interrupted


async def _ping_redis() -> None:
    """With each sweep, one timed round trip to Redis (`agentchat_redis_seconds{operation="ping"}`)."""
    try:
        with telemetry.timed(telemetry.REDIS_SECONDS, "ping"):
            await redis_ping()
    except Exception:
        logger.warning("Redis did not answer a ping", exc_info=True)


async def _interrupt(message: Message, stale_seconds: float) -> bool:
    active = runs.active_run_get(message.conversation_id)
    if active is not None and active.run_id == message.run_id:
        return False  # executing here: alive, only slow to beat
    logged = await runs.run_events_read(message.run_id)
    content, steps = partial_answer_kept(message, logged)
    interrupt = database_sync_to_async(run_interrupt)
    try:
        changed = await interrupt(message_id=message.pk, stale_seconds=stale_seconds, content=content, tool_steps=steps)
    except DatabaseError:
        logger.exception("storing the partial answer of run %s failed; marking it without", message.run_id)
        changed = await interrupt(message_id=message.pk, stale_seconds=stale_seconds, content=None, tool_steps=None)
    expired = await database_sync_to_async(approvals_expire_for_run)(run_id=message.run_id)
    if not changed or (logged and logged[-1]["type"] == events.DONE):
        return changed
    seq = logged[-1]["seq"] if logged else 0
    ending: list[Event] = [
        events.approval_resolved(run_id=message.run_id, seq=seq + n, approval_id=a, decision="expired", by=None)
        for n, a in enumerate(expired, start=1)
    ]
    seq += len(expired)
    ending += [
        events.error(run_id=message.run_id, seq=seq + 1, code=events.ERROR_INTERRUPTED, message=RUN_INTERRUPTED),
        events.done(run_id=message.run_id, seq=seq + 2, status="interrupted"),
    ]
    for event in ending:
        await runs.publish_event(message.conversation_id, message.run_id, event)
    await get_event_log().finish(message.run_id)
    # Should its process be alive after all (stalled, not dead), the run ends now, without a word: its
    # tabs there cancel it at once, and its next heartbeat finds the message no longer its own.
    await runs.run_stop_fast(message.conversation_id, message.run_id)
    return True


def partial_answer_kept(message: Message, logged: list[Event]) -> tuple[str | None, list[dict[str, Any]] | None]:
    """What to store of a dead run, beyond what its heartbeat stored (None: keep the stored).

    The answer rebuilt from the run's log replaces the stored one only when the log is whole (it begins
    with `run_started`) and extends the stored text: a log that Redis lost and began again mid-run
    holds only a tail, which must never overwrite the text the heartbeat already saved.
    """
    if not logged or logged[0]["type"] != events.RUN_STARTED:
        return None, None
    content, steps = partial_answer(logged)
    if not content.startswith(message.content) or len(steps) < len(message.tool_steps or ()):
        return None, None
    return content, steps


def partial_answer(logged: list[Event]) -> tuple[str, list[dict[str, Any]]]:
    """The answer text and tool steps a run had streamed, rebuilt from its events.

    The arguments are decoded here because only the events survive a dead process.
    """
    text = "".join(e["text"] for e in logged if e["type"] == events.TOKEN)
    args: dict[str, str] = {}
    steps = []
    for event in logged:
        if event["type"] == events.TOOL_ARGS:
            args[event["call_id"]] = args.get(event["call_id"], "") + event["delta"]
        elif event["type"] == events.TOOL_RESULT:
            raw = args.get(event["call_id"], "")
            try:
                parsed = json.loads(raw)
            except ValueError:
                parsed = raw
            step = ToolStep(
                call_id=event["call_id"],
                name=event["name"],
                args=parsed,
                output=event.get("output"),
                error=event.get("error"),
            )
            steps.append(step.as_dict())
    return text, steps
