"""Lean WebSocket tabs for the benchmark: every frame is timed the moment it is read.

A `Tab` keeps what it saw of the current run (`RunView`): each run event by `seq` with
its receipt time (`time.monotonic()`), duplicates, reorderings and gaps. On a gap it asks
for a `sync` once, as the page does, and keeps the snapshot's events apart, so that a loss
can be reported both as seen live and as left after recovery.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
from dataclasses import dataclass, field
from typing import Any
from uuid import uuid4

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, WebSocketException

from agent_runtime import events

OPEN_TIMEOUT = 30
BUSY_RETRIES = 50
BUSY_PAUSE = 0.05


@dataclass
class RunView:
    """What one tab received of one run."""

    live: dict[int, tuple[float, dict[str, Any]]] = field(default_factory=dict)
    recovered: dict[int, dict[str, Any]] = field(default_factory=dict)
    errors: list[dict[str, Any]] = field(default_factory=list)
    frames: int = 0
    duplicates: int = 0
    reordered: int = 0
    gaps: int = 0
    max_seq: int = 0
    sync_asked: bool = False
    sent_at: float | None = None
    busy_retries: int = 0


class Tab:
    """One logged-in tab on a socket; read by its own task."""

    def __init__(self, connection: ClientConnection) -> None:
        self.connection = connection
        self.run = RunView()
        self.snapshot = asyncio.Event()
        self.answered = asyncio.Event()
        self.finished = asyncio.Event()
        self.answer_seen = asyncio.Event()
        self.closed = False
        self._sync: asyncio.Future[None] | None = None
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def open(cls, url: str, headers: dict[str, str]) -> Tab:
        """Connect (no compression, no pings) and wait for the first snapshot."""
        connection = await connect(
            url,
            additional_headers=headers,
            compression=None,
            max_size=None,
            ping_interval=None,
            open_timeout=OPEN_TIMEOUT,
            close_timeout=2,
        )
        tab = cls(connection)
        await asyncio.wait_for(tab.snapshot.wait(), OPEN_TIMEOUT)
        return tab

    def begin_run(self) -> None:
        """Forget the previous run: what follows belongs to the next one."""
        self.run = RunView()
        self.answered.clear()
        self.finished.clear()
        self.answer_seen.clear()

    async def start(self, prompt: str) -> bool:
        """Ask for a run; retry while the conversation is still busy. Whether a run started."""
        self.run.sent_at = time.monotonic()
        for attempt in range(BUSY_RETRIES):
            self.answered.clear()
            self.run.busy_retries = attempt
            await self.connection.send(json.dumps({"type": "send", "content": prompt, "client_id": uuid4().hex}))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.answered.wait(), OPEN_TIMEOUT)
            if self.run.live:
                return True
            if not any(error.get("code") == "busy" for error in self.run.errors) or self.closed:
                return False
            self.run.errors.clear()
            await asyncio.sleep(BUSY_PAUSE)
        return False

    async def close(self) -> None:
        """Close the socket and stop reading."""
        with contextlib.suppress(WebSocketException, OSError, TimeoutError):
            await self.connection.close()
        self._reader.cancel()
        await asyncio.gather(self._reader, return_exceptions=True)

    async def _read(self) -> None:
        try:
            async for raw in self.connection:
                received = time.monotonic()
                self._on_frame(received, raw)
        except (ConnectionClosed, OSError):
            pass
        finally:
            self.closed = True
            self.answered.set()
            self.answer_seen.set()
            self.finished.set()

    def _on_frame(self, received: float, raw: str | bytes) -> None:
        frame = json.loads(raw)
        run = self.run
        if frame.get("type") == "snapshot":
            self._on_snapshot(frame)
            return
        seq = frame.get("seq")
        if not isinstance(seq, int) and frame.get("type") != events.ERROR:
            return  # the conversation's news (its title, feedback), not the run's: no answer to the send
        run.frames += 1
        if not isinstance(seq, int):
            run.errors.append(frame)
            self.answered.set()
            return
        if seq in run.live:
            run.duplicates += 1
            return
        if seq < run.max_seq:
            run.reordered += 1
        elif seq > run.max_seq + 1:
            run.gaps += seq - run.max_seq - 1
            self._ask_sync()
        run.max_seq = max(run.max_seq, seq)
        run.live[seq] = (received, frame)
        self.answered.set()
        if frame["type"] in (events.FINAL, events.ERROR, events.DONE):
            self.answer_seen.set()
        if frame["type"] == events.DONE:
            self.finished.set()

    def _on_snapshot(self, frame: dict[str, Any]) -> None:
        if self.snapshot.is_set():
            self.run.frames += 1
            active = frame.get("active_run") or {"events": []}
            for event in active["events"]:
                if event["seq"] not in self.run.live:
                    self.run.recovered[event["seq"]] = event
        self.snapshot.set()

    def _ask_sync(self) -> None:
        if not self.run.sync_asked:
            self.run.sync_asked = True
            self._sync = asyncio.ensure_future(self.connection.send(json.dumps({"type": "sync"})))


@dataclass
class TabStats:
    """One tab's account of one run: latencies, counts and whether its text is exact."""

    latencies: list[float]
    frames: int
    token_frames: int
    tokens: int
    lost_live: int
    lost: int
    doubled: int
    duplicates: int
    reordered: int
    exact: bool
    done: bool
    start_s: float | None
    first_receipt: float | None
    last_receipt: float | None
    first_stamp: float | None
    last_stamp: float | None


def _counted_difference(left: list[str], right: list[str]) -> int:
    """How many items of `left` are not matched in `right` (as multisets)."""
    pool: dict[str, int] = {}
    for item in right:
        pool[item] = pool.get(item, 0) + 1
    missing = 0
    for item in left:
        if pool.get(item, 0):
            pool[item] -= 1
        else:
            missing += 1
    return missing


def analyse(run: RunView, expected_tokens: int) -> TabStats:
    """Check the tab's text against the answer and measure each stamp's added latency."""
    live = {seq: event for seq, (_t, event) in run.live.items()}
    merged = {**run.recovered, **live}
    token_times = [(t, e) for _s, (t, e) in sorted(run.live.items()) if e["type"] == events.TOKEN]
    live_stamps = [stamp for _t, e in token_times for stamp in e["text"].split()]
    text = "".join(merged[s]["text"] for s in sorted(merged) if merged[s]["type"] == events.TOKEN)
    stamps = text.split()
    final = next((e for e in merged.values() if e["type"] == events.FINAL), None)
    expected = final["content"].split() if final else []
    latencies = [t - float(stamp) for t, e in token_times for stamp in e["text"].split()]
    numbers = [float(s) for s in stamps]
    exact = (
        final is not None
        and text == final["content"]
        and len(stamps) == expected_tokens
        and all(a < b for a, b in itertools.pairwise(numbers))
    )
    shortfall = max(0, expected_tokens - len(set(stamps)))
    return TabStats(
        latencies=latencies,
        frames=run.frames,
        token_frames=len(token_times),
        tokens=len(live_stamps),
        lost_live=_counted_difference(expected, live_stamps) if final else max(0, expected_tokens - len(live_stamps)),
        lost=_counted_difference(expected, stamps) if final else shortfall,
        doubled=_counted_difference(stamps, expected) if final else max(0, len(stamps) - len(set(stamps))),
        duplicates=run.duplicates,
        reordered=run.reordered,
        exact=exact,
        done=any(e["type"] == events.DONE for e in merged.values()),
        start_s=min(t for t, _e in run.live.values()) - run.sent_at if run.live and run.sent_at else None,
        first_receipt=token_times[0][0] if token_times else None,
        last_receipt=token_times[-1][0] if token_times else None,
        first_stamp=float(live_stamps[0]) if live_stamps else None,
        last_stamp=float(live_stamps[-1]) if live_stamps else None,
    )
