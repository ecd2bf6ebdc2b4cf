"""Browser tabs for tests: what every tab does with its frames, and tabs on the in-process application.

`TabFrames` is shared by the in-process `Tab` here (Channels' `WebsocketCommunicator`, the user's
session cookie) and `tests.live_tabs.LiveTab` (a real socket against a server process).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import User

from chatsite.asgi import application
from tests.support.users import session_cookie

Frame = dict[str, Any]

ORIGIN = b"http://localhost"
FRAME_TIMEOUT = 10


class TabFrames:
    """A browser tab's received frames, and waiting for runs; subclasses carry the frames."""

    def __init__(self) -> None:
        self.frames: list[Frame] = []
        self.snapshot: Frame | None = None
        self._returned = 0

    async def receive(self) -> Frame:
        """The next frame (recorded in `frames`)."""
        raise NotImplementedError

    async def send(self, frame: Frame | str) -> None:
        """Send a frame to the server."""
        raise NotImplementedError

    async def ask(self, content: str, client_id: str = "c1") -> None:
        await self.send({"type": "send", "content": content, "client_id": client_id})

    async def receive_until(self, predicate: Callable[[Frame], bool]) -> list[Frame]:
        """Frames up to and including the first that matches."""
        seen = []
        while True:
            frame = await self.receive()
            seen.append(frame)
            if predicate(frame):
                return seen

    async def run_events_until_done(self) -> list[Frame]:
        """Receive up to the next `done`; the run events received since the previous call."""
        if not any(f.get("type") == "done" and "seq" in f for f in self.frames[self._returned :]):
            await self.receive_until(lambda f: f.get("type") == "done" and "seq" in f)
        end = next(i for i in range(self._returned, len(self.frames)) if self.frames[i].get("type") == "done")
        events = [f for f in self.frames[self._returned : end + 1] if "seq" in f]
        self._returned = end + 1
        return events


def is_token_with(text: str) -> Callable[[Frame], bool]:
    """Matches a `token` event whose text contains `text`."""
    return lambda frame: frame.get("type") == "token" and text in frame["text"]


class Tab(TabFrames):
    """A browser tab on a conversation: a WebSocket with the user's session cookie."""

    def __init__(self, communicator: WebsocketCommunicator) -> None:
        super().__init__()
        self.communicator = communicator

    async def receive(self) -> Frame:
        frame = json.loads(await self.communicator.receive_from(timeout=FRAME_TIMEOUT))
        self.frames.append(frame)
        return frame

    async def send(self, frame: Frame | str) -> None:
        await self.communicator.send_to(text_data=frame if isinstance(frame, str) else json.dumps(frame))

    async def close(self) -> None:
        await self.communicator.disconnect()


async def open_tab(
    conversation_id: int, user: User | None, *, origin: bytes | None = ORIGIN
) -> tuple[Tab, bool, int | None]:
    """Connect a tab; returns it, whether it was accepted, and the close code if refused."""
    headers = [(b"host", b"localhost")]
    if origin is not None:
        headers.append((b"origin", origin))
    if user is not None:
        cookie = await database_sync_to_async(session_cookie)(user)
        headers.append((b"cookie", f"sessionid={cookie}".encode()))
    communicator = WebsocketCommunicator(application, f"/ws/conversations/{conversation_id}/", headers=headers)
    connected, code = await communicator.connect(timeout=FRAME_TIMEOUT)
    return Tab(communicator), connected, code
