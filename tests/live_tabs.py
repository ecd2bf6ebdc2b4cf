"""Real WebSocket tabs against live server processes."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

from tests.live_server import Server, Session, ws_headers
from tests.support.tabs import TabFrames, is_token_with

__all__ = ["LiveTab", "is_token_with"]

FRAME_TIMEOUT = 20


class LiveTab(TabFrames):
    """A logged-in browser tab on a conversation, over a real socket."""

    def __init__(self, connection: ClientConnection) -> None:
        super().__init__()
        self.connection = connection

    @classmethod
    async def open(cls, server: Server, session: Session, conversation_id: int) -> LiveTab:
        """Connect and read the snapshot."""
        connection = await connect(
            server.ws_url(conversation_id), additional_headers=ws_headers(session, server), open_timeout=10
        )
        tab = cls(connection)
        tab.snapshot = await tab.receive()
        assert tab.snapshot["type"] == "snapshot", tab.snapshot
        return tab

    async def receive(self) -> dict[str, Any]:
        frame = json.loads(await asyncio.wait_for(self.connection.recv(), FRAME_TIMEOUT))
        self.frames.append(frame)
        return frame

    async def send(self, frame: dict[str, Any] | str) -> None:
        await self.connection.send(frame if isinstance(frame, str) else json.dumps(frame))

    def caught_up_events(self) -> list[dict[str, Any]]:
        """Snapshot events plus live ones, each seq once: what the page renders."""
        replay = (self.snapshot or {}).get("active_run") or {"events": []}
        merged = {e["seq"]: e for e in replay["events"]}
        for frame in self.frames:
            if "seq" in frame:
                merged.setdefault(frame["seq"], frame)
        return [merged[seq] for seq in sorted(merged)]

    async def answer_like_the_page(self, idle: float = 3.0) -> tuple[str, int]:
        """Follow the run to its end as the page does: a gap in `seq`, or silence, asks for a snapshot.

        Returns the answer text and how many `token` events arrived live.
        """
        events: dict[int, dict[str, Any]] = {}
        live_tokens = 0
        while True:
            try:
                frame = json.loads(await asyncio.wait_for(self.connection.recv(), idle))
            except TimeoutError:
                frame = None
            if frame is not None and "seq" in frame and frame["seq"] == len(events) + 1:
                events[frame["seq"]] = frame
                live_tokens += frame["type"] == "token"
                if frame["type"] == "done":
                    return "".join(e["text"] for e in events.values() if e["type"] == "token"), live_tokens
                continue
            if frame is not None and ("seq" not in frame or frame["seq"] <= len(events)):
                continue
            await self.send({"type": "sync"})
            snapshot = (await self.receive_until(lambda f: f["type"] == "snapshot"))[-1]
            if snapshot["active_run"] is None:
                return snapshot["messages"][-1]["content"], live_tokens
            events = {e["seq"]: e for e in snapshot["active_run"]["events"]}

    async def close(self) -> None:
        await self.connection.close()
