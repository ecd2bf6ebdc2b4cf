"""When each step of a send happened, up to the first answer text leaving for the tabs.

A send's path crosses the socket's task, the database thread, the run's own task and the model
client. Each of them stamps the steps it does into the send's `Stages` (the one in the current
context): the first stamp of a name counts, later ones (a second model call after a tool) are
ignored. The run's log line (`run_finished`) carries them as milliseconds after the send was
received, and `agentchat_send_stage_seconds` counts them, so an operator sees where the time before
a first word went. Stamps are `time.monotonic()`: CLOCK_MONOTONIC, the same in every process of a
host, so they line up with other processes' stamps.

The steps, in order:

- `received`: the frame (or request) asking for the run was read;
- `checked`: the checks that need no database passed (restarting, assistant, one run at a time);
- `stored`: the question and the answer being written are stored, with the history read;
- `started`: the run's task exists and the sender is answered;
- `request`: the model client was handed the request (LangChain has built it);
- `first_chunk`: the model's first streamed chunk reached the run;
- `first_frame`: the first answer text (or tool call) was sent to the tabs.
"""

from __future__ import annotations

import contextvars
import time
from collections.abc import Iterator
from contextlib import contextmanager

ORDER = ("received", "checked", "stored", "started", "request", "first_chunk", "first_frame")

_CURRENT: contextvars.ContextVar[Stages | None] = contextvars.ContextVar("agentchat_send_stages", default=None)


class Stages:
    """The stamps of one send (CLOCK_MONOTONIC seconds, by step name)."""

    __slots__ = ("stamps",)

    def __init__(self, **stamps: float) -> None:
        self.stamps: dict[str, float] = dict(stamps)

    def stamp(self, name: str) -> None:
        """Stamp `name` now, unless it was stamped before."""
        if name not in self.stamps:
            self.stamps[name] = time.monotonic()

    @property
    def origin(self) -> float | None:
        """The earliest stamp (`received` when the send was timed from its frame)."""
        return min(self.stamps.values()) if self.stamps else None

    def offsets_ms(self) -> dict[str, float]:
        """Each stamp in milliseconds after the first, in the steps' order."""
        origin = self.origin
        if origin is None:
            return {}
        known = [name for name in ORDER if name in self.stamps]
        return {name: round((self.stamps[name] - origin) * 1000, 2) for name in known}


def current() -> Stages | None:
    """The send being timed in this context, if any."""
    return _CURRENT.get()


def stamp(name: str) -> None:
    """Stamp `name` on the send being timed in this context (nothing when none is)."""
    stages = _CURRENT.get()
    if stages is not None:
        stages.stamp(name)


def adopt(stages: Stages) -> None:
    """Time `stages` in this context from now on (a run's own task, which has a fresh context)."""
    _CURRENT.set(stages)


@contextmanager
def timing(received: float | None = None) -> Iterator[Stages]:
    """Time a send inside the block, from `received` (a monotonic stamp; now when None)."""
    stages = Stages(received=time.monotonic() if received is None else received)
    token = _CURRENT.set(stages)
    try:
        yield stages
    finally:
        _CURRENT.reset(token)
