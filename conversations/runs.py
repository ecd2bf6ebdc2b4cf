"""One run's life: start the executor, relay its events to every tab, persist, cancel.

A run belongs to the conversation, not to the socket that asked for it: it lives in
this process's registry until its `done`, whatever happens to the tabs.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass, field
from typing import Any
from uuid import uuid4

from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings

from agent_runtime import events
from agent_runtime.events import Event
from agent_runtime.executor import AgentRun
from agent_runtime.llm import build_chat_model
from conversations.models import Conversation
from conversations.selectors import history_for_agent
from conversations.services import RunBusy, run_finish, turn_start

logger = logging.getLogger(__name__)

GROUP_EVENT_TYPE = "run.event"
PERSIST_ATTEMPTS = 3


@dataclass
class ActiveRun:
    """A run streaming in this process, with every event it has emitted so far."""

    conversation_id: int
    run_id: str
    message_id: int
    agent_run: AgentRun
    user_message: dict[str, Any]
    events: list[Event] = field(default_factory=list)
    task: asyncio.Task[None] | None = None


_active: dict[int, ActiveRun] = {}


def group_name(conversation_id: int) -> str:
    """The channel-layer group of a conversation's tabs."""
    return f"conversation-{conversation_id}"


def active_run_get(conversation_id: int) -> ActiveRun | None:
    """The run streaming now in this conversation, if any."""
    return _active.get(conversation_id)


def active_run_snapshot(conversation_id: int) -> dict[str, Any] | None:
    """`{"run_id", "events"}` of the streaming run, for a tab that joins late."""
    active = _active.get(conversation_id)
    if active is None:
        return None
    return {"run_id": active.run_id, "events": list(active.events)}


async def run_send(*, conversation: Conversation, content: str, client_id: str) -> ActiveRun | None:
    """Store the user's message and start a run for it; None when it was a resend.

    Raises RunBusy when the conversation already has a run streaming.
    """
    if conversation.pk in _active:
        raise RunBusy
    model_config = settings.AGENT_MODEL
    run_id = uuid4().hex
    turn = await database_sync_to_async(turn_start)(
        conversation=conversation,
        content=content,
        client_id=client_id,
        run_id=run_id,
        model=model_config.display_name,
    )
    if turn.is_duplicate:
        return None
    history = await database_sync_to_async(history_for_agent)(
        conversation=conversation,
        before_id=turn.user_message.pk,
        limit=settings.AGENT_HISTORY_MESSAGES,
    )
    agent_run = AgentRun(
        llm=build_chat_model(model_config),
        model_name=model_config.display_name,
        user_input=content,
        history=history,
        run_id=run_id,
        max_iterations=settings.AGENT_MAX_ITERATIONS,
        timeout=settings.AGENT_RUN_TIMEOUT,
    )
    active = ActiveRun(
        conversation_id=conversation.pk,
        run_id=run_id,
        message_id=turn.assistant_message.pk,
        agent_run=agent_run,
        user_message={"id": turn.user_message.pk, "content": content, "client_id": client_id},
    )
    _active[conversation.pk] = active
    active.task = asyncio.create_task(relay_run_events(active), name=f"relay-{run_id}")
    return active


def run_stop(conversation_id: int) -> bool:
    """Cancel the conversation's streaming run; False when none streams here."""
    active = _active.get(conversation_id)
    if active is None:
        return False
    active.agent_run.cancel()
    return True


async def relay_run_events(active: ActiveRun) -> None:
    """Send each event of the run to the conversation's group; persist before `final` and `done`."""
    held_final: Event | None = None
    try:
        async for event in active.agent_run:
            if event["type"] == events.RUN_STARTED:
                event["user_message"] = active.user_message
            if event["type"] == events.FINAL:
                held_final = event
                continue
            if event["type"] == events.DONE:
                await _persist(active)
                if held_final is not None:
                    await _publish(active, held_final)
            await _publish(active, event)
    finally:
        _active.pop(active.conversation_id, None)


async def _persist(active: ActiveRun) -> None:
    for attempt in range(1, PERSIST_ATTEMPTS + 1):
        try:
            await database_sync_to_async(run_finish)(message_id=active.message_id, report=active.agent_run.report)
            return
        except Exception:
            logger.exception("storing run %s failed (attempt %d)", active.run_id, attempt)
            await asyncio.sleep(0.2 * attempt)


async def _publish(active: ActiveRun, event: Event) -> None:
    active.events.append(event)
    text = json.dumps(event, separators=(",", ":"))
    try:
        await get_channel_layer().group_send(
            group_name(active.conversation_id), {"type": GROUP_EVENT_TYPE, "text": text}
        )
    except Exception:
        # Tabs that miss events see a gap in `seq` and resynchronise from the buffer.
        logger.exception("relaying an event of run %s failed", active.run_id)
