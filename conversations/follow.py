"""Follow one run of a conversation from outside a tab: its events so far, then live, each once.

The order is what makes it gapless: join the conversation's group first (everything published
from then on reaches us), then read the run's event log (everything published before), then
relay live group messages, dropping any `seq` already sent. A gap in `seq` (the channel layer
drops messages past a channel's capacity) is filled by reading the log again. The group is
always left, however the follower ends (done, client gone, cancelled).

Used by the HTTP API (server-sent events) and by `manage.py ask`; the tabs follow through their socket.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any

from channels.db import database_sync_to_async
from channels.layers import BaseChannelLayer, get_channel_layer

from agent_runtime import events
from agent_runtime.events import Event
from conversations import protocol, runs
from conversations.models import Conversation
from conversations.selectors import conversation_has_run

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class EventId:
    """Where an event sits: its run and its `seq` (`<run_id>:<seq>` on the wire)."""

    run_id: str
    seq: int

    def __str__(self) -> str:
        return f"{self.run_id}:{self.seq}"

    @classmethod
    def parse(cls, text: str | None) -> EventId | None:
        """`<run_id>:<seq>` as sent in `Last-Event-ID`; None when absent or malformed."""
        run_id, _, seq = (text or "").strip().rpartition(":")
        if not run_id or not seq.isdigit():
            return None
        return cls(run_id=run_id, seq=int(seq))


def event_id(event: Event) -> EventId:
    """The id of a run event."""
    return EventId(run_id=event["run_id"], seq=event["seq"])


@dataclass
class _Cursor:
    """The run being followed (None: the next one to start), the last `seq` sent, what to send first."""

    run_id: str | None
    last_seq: int = 0
    backlog: list[Event] = field(default_factory=list)


def follow_run(
    conversation: Conversation, run_id: str, *, keepalive_seconds: float | None = None
) -> AsyncGenerator[Event | None, None]:
    """Every event of run `run_id` of the conversation, from its first to its `done`.

    Yields None when `keepalive_seconds` pass without an event (time for a keep-alive).
    """

    async def start() -> _Cursor:
        return _Cursor(run_id=run_id, backlog=await runs.run_events_read(run_id))

    return _follow(conversation, start, keepalive_seconds)


def follow_conversation(
    conversation: Conversation, *, last_event_id: EventId | None = None, keepalive_seconds: float | None = None
) -> AsyncGenerator[Event | None, None]:
    """One run's events of the conversation, up to its `done`; None when a keep-alive is due.

    With `last_event_id` of a run of this conversation not yet sent in full (its log holds events
    after it, or it is still streaming): that run's events after it. Otherwise (no id, a run sent
    in full, one whose log has expired, or another conversation's): the run streaming now from its
    first event, or else the next run to start.
    """

    async def start() -> _Cursor:
        if last_event_id is not None and await _conversation_has_run(conversation, last_event_id.run_id):
            logged = await runs.run_events_read(last_event_id.run_id)
            if _still_to_send(logged, last_event_id.seq):
                backlog = [e for e in logged if e["seq"] > last_event_id.seq]
                return _Cursor(run_id=last_event_id.run_id, last_seq=last_event_id.seq, backlog=backlog)
        return await _cursor_for_active_run(conversation)

    return _follow(conversation, start, keepalive_seconds)


async def _follow(
    conversation: Conversation, start: Callable[[], Awaitable[_Cursor]], keepalive_seconds: float | None
) -> AsyncGenerator[Event | None, None]:
    layer = get_channel_layer()
    group = protocol.group_name(conversation.pk)
    channel = await layer.new_channel()
    await layer.group_add(group, channel)  # first: nothing published from now on can be missed
    messages = _Messages(layer, channel)
    try:
        cursor = await start()
        async with aclosing(_batches(cursor, messages, keepalive_seconds)) as batches:
            async for batch in batches:
                if batch is None:
                    yield None
                    continue
                for event in batch:
                    if event["seq"] <= cursor.last_seq:
                        continue  # sent already
                    cursor.last_seq = event["seq"]
                    yield event
                    if event["type"] == events.DONE:
                        return
    finally:
        messages.close()
        try:
            await asyncio.shield(layer.group_discard(group, channel))
        except Exception:
            logger.debug("leaving group %s failed", group)


async def _batches(
    cursor: _Cursor, messages: _Messages, keepalive_seconds: float | None
) -> AsyncGenerator[list[Event] | None, None]:
    """The events to send next, batch by batch (None: a keep-alive is due); ends when the run is over."""
    yield cursor.backlog
    while True:
        message = await messages.next(keepalive_seconds)
        if message is None:
            # Quiet for a while: maybe the layer dropped the run's last events; the log has them.
            missed = await _read_after(cursor.run_id, cursor.last_seq) if cursor.run_id else []
            yield missed or None
            continue
        if message.get("type") == protocol.GROUP_CONVERSATION_DELETED:
            return
        if message.get("type") != protocol.GROUP_RUN_EVENT:
            continue
        event = json.loads(message["text"])
        if cursor.run_id is None:
            cursor.run_id = event["run_id"]  # the next run started: follow it
        if event["run_id"] != cursor.run_id:
            # Another run started, so ours is over: send what we missed of it, and stop.
            yield await _read_after(cursor.run_id, cursor.last_seq)
            return
        yield await _fresh(cursor, event)


async def _fresh(cursor: _Cursor, event: Event) -> list[Event]:
    """What a live `event` brings: itself, after the log's events before it when there is a gap."""
    if event["seq"] <= cursor.last_seq + 1:
        return [event]
    assert cursor.run_id is not None
    missed = await _read_after(cursor.run_id, cursor.last_seq)
    return [*(e for e in missed if e["seq"] < event["seq"]), event]


def _still_to_send(logged: list[Event], after_seq: int) -> bool:
    """Whether a run whose log is `logged` has events to send after `after_seq` (now or to come)."""
    if not logged:
        return False  # unknown, or expired long after its `done`
    return logged[-1]["type"] != events.DONE or logged[-1]["seq"] > after_seq


async def _cursor_for_active_run(conversation: Conversation) -> _Cursor:
    snapshot = await runs.conversation_snapshot(conversation)
    active = snapshot["active_run"]
    if active is None:
        return _Cursor(run_id=None)
    return _Cursor(run_id=active["run_id"], backlog=list(active["events"]))


async def _conversation_has_run(conversation: Conversation, run_id: str) -> bool:
    """Whether the run is one of this conversation's (an id from elsewhere resumes nothing)."""
    return await database_sync_to_async(conversation_has_run)(conversation=conversation, run_id=run_id)


async def _read_after(run_id: str, seq: int) -> list[Event]:
    return [e for e in await runs.run_events_read(run_id) if e["seq"] > seq]


class _Messages:
    """Messages of one channel, waited for without cancelling the layer's receive on every timeout."""

    def __init__(self, layer: BaseChannelLayer, channel: str) -> None:
        self._layer = layer
        self._channel = channel
        self._pending: asyncio.Task[dict[str, Any]] | None = None

    async def next(self, patience: float | None) -> dict[str, Any] | None:
        """The next message, or None when `patience` seconds pass first."""
        if self._pending is None:
            self._pending = asyncio.ensure_future(self._layer.receive(self._channel))
        done, _ = await asyncio.wait({self._pending}, timeout=patience)
        if not done:
            return None
        task, self._pending = self._pending, None
        return task.result()

    def close(self) -> None:
        """Stop waiting."""
        if self._pending is not None:
            self._pending.cancel()
            self._pending = None
