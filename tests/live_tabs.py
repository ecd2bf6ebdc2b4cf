"""Real WebSocket tabs against live server processes."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

from tests.live_server import Server, Session, ws_headers

FRAME_TIMEOUT = 20


class LiveTab:
    """A logged-in browser tab on a conversation, over a real socket."""

    def __init__(self, connection: ClientConnection) -> None:
        self.connection = connection
        self.frames: list[dict[str, Any]] = []
        self.snapshot: dict[str, Any] | None = None

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

    async def send(self, frame: dict[str, Any]) -> None:
        await self.connection.send(json.dumps(frame))

    async def ask(self, content: str, client_id: str = "c1") -> None:
        await self.send({"type": "send", "content": content, "client_id": client_id})

    async def receive_until(self, predicate: Callable[[dict[str, Any]], bool]) -> list[dict[str, Any]]:
        seen = []
        while True:
            frame = await self.receive()
            seen.append(frame)
            if predicate(frame):
                return seen

    async def run_events_until_done(self) -> list[dict[str, Any]]:
        """Receive up to the run's `done`; every run event this tab got, in order."""
        if not any(f.get("type") == "done" for f in self.frames):
            await self.receive_until(lambda f: f.get("type") == "done")
        return [f for f in self.frames if "seq" in f]

    def caught_up_events(self) -> list[dict[str, Any]]:
        """Snapshot events plus live ones, each seq once: what the page renders."""
        replay = (self.snapshot or {}).get("active_run") or {"events": []}
        merged = {e["seq"]: e for e in replay["events"]}
        for frame in self.frames:
            if "seq" in frame:
                merged.setdefault(frame["seq"], frame)
        return [merged[seq] for seq in sorted(merged)]

    async def close(self) -> None:
        await self.connection.close()


def is_token_with(text: str) -> Callable[[dict[str, Any]], bool]:
    return lambda frame: frame.get("type") == "token" and text in frame["text"]
