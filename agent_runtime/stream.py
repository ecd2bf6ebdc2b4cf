"""EventStream: a run's events in order, numbered and, when they queue up, merged.

The producers (the callback handler and the executor) `emit` events as they happen; the
reader awaits them (no polling). Text that waits behind a `token` (or `tool_args` of the
same call) while the reader is busy is folded into it before it is numbered, so `seq`
stays contiguous and a slow reader gets fewer, larger events with nothing lost.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from agent_runtime import events
from agent_runtime.events import Event

OUTPUT = frozenset({events.TOKEN, events.TOOL_START})
"""The events a person sees as the answer starting: its first words, or a tool being called."""


class EventStream:
    """One run's queue of events; the only place that numbers and merges them."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[Event] = asyncio.Queue()
        """Raw, unnumbered events (read through `next_event`; the benchmark's lesson reference polls it)."""
        self._seq = 0
        self._held: Event | None = None
        self.output_emitted = False
        """Whether answer text or a tool call (`token`, `tool_start`) has been emitted yet."""

    def emit(self, event: Event) -> None:
        """Queue an event; its `seq` is given when it is read."""
        if not self.output_emitted and event["type"] in OUTPUT:
            self.output_emitted = True
        self.queue.put_nowait(event)

    async def next_event(self) -> Event:
        """Await the next event, fold in the text that waits behind it, and number it."""
        event, self._held = self._held, None
        if event is None:
            event = await self.queue.get()
        while event["type"] in (events.TOKEN, events.TOOL_ARGS):
            try:
                following = self.queue.get_nowait()
            except asyncio.QueueEmpty:
                break
            if not events.is_mergeable(event, following):
                self._held = following
                break
            events.merge_into(event, following)
        self._seq += 1
        event["seq"] = self._seq
        return event

    async def __aiter__(self) -> AsyncIterator[Event]:
        while True:
            event = await self.next_event()
            yield event
            if event["type"] == events.DONE:
                return
