"""What every test tab does with its frames, whatever carries them (in-process or a real socket)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Frame = dict[str, Any]


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
