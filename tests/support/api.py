"""The HTTP API in tests: clients with a token or a session, and server-sent events read like a client."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from asgiref.sync import ThreadSensitiveContext
from django.test import AsyncClient

from conversations.models import Conversation

READ_TIMEOUT = 20


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


class AsgiClient(AsyncClient):
    """Django's async test client, serving each request in its own `ThreadSensitiveContext` as
    Django's ASGI handler does under daphne (the test client does not), so that sync code of the
    request runs on the request's own thread, not on asgiref's process-wide one the runs use."""

    async def request(self, **request: Any) -> Any:
        async with ThreadSensitiveContext():
            return await super().request(**request)


class TokenClient(AsgiClient):
    """An async client sending `Authorization: Bearer <token>` with every request.

    (`AsyncClient(headers=...)` does not reach ASGI requests in Django 5.2, hence the override.)
    """

    def __init__(self, token: str, **defaults: Any) -> None:
        super().__init__(**defaults)
        self.token_headers = bearer(token)

    def generic(self, method: str, path: str, *args: Any, headers: dict[str, str] | None = None, **extra: Any):
        return super().generic(method, path, *args, headers={**self.token_headers, **(headers or {})}, **extra)


@dataclass
class SseEvent:
    event: str | None
    id: str | None
    data: Any


def parse_sse(text: str) -> tuple[list[SseEvent], list[str]]:
    """The SSE events of `text` (data parsed as JSON) and its comment lines."""
    events: list[SseEvent] = []
    comments: list[str] = []
    for block in text.split("\n\n"):
        fields: dict[str, str] = {}
        for line in block.split("\n"):
            if line.startswith(":"):
                comments.append(line[1:].strip())
            elif line:
                name, _, value = line.partition(":")
                fields[name] = value.removeprefix(" ")
        if "data" in fields:
            events.append(SseEvent(event=fields.get("event"), id=fields.get("id"), data=json.loads(fields["data"])))
    return events, comments


def is_sse_token_with(text: str) -> Callable[[SseEvent], bool]:
    """Matches an SSE `token` event whose text contains `text`."""
    return lambda event: event.event == "token" and text in event.data["text"]


class SseReader:
    """Reads a streaming response as parsed SSE events, like a client connection.

    A task pumps the response; `disconnect()` cancels it, as Django's ASGI handler cancels the
    response when the client goes away.
    """

    def __init__(self, response: Any) -> None:
        self.response = response
        self.chunks: asyncio.Queue[str | None] = asyncio.Queue()
        self.pump = asyncio.create_task(self._pump())
        self.buffer = ""
        self.ended = False
        self.events: list[SseEvent] = []
        self.comments: list[str] = []

    async def _pump(self) -> None:
        try:
            async for chunk in self.response.streaming_content:
                await self.chunks.put(chunk.decode() if isinstance(chunk, bytes) else chunk)
        finally:
            await self.chunks.put(None)

    async def next_block(self) -> bool:
        """Read until one more complete block (event or comment); False when the stream ended."""
        while "\n\n" not in self.buffer:
            chunk = None if self.ended else await asyncio.wait_for(self.chunks.get(), READ_TIMEOUT)
            if chunk is None:
                self.ended = True
                return False
            self.buffer += chunk
        block, self.buffer = self.buffer.split("\n\n", 1)
        events, comments = parse_sse(block + "\n\n")
        self.events += events
        self.comments += comments
        return True

    async def until(self, predicate: Any) -> SseEvent:
        """Read until an event matches `predicate`; that event."""
        while await self.next_block():
            if self.events and predicate(self.events[-1]):
                return self.events[-1]
        raise AssertionError("the stream ended first")

    async def to_end(self) -> list[SseEvent]:
        while await self.next_block():
            pass
        await self.pump
        return self.events

    async def disconnect(self) -> None:
        """The client goes away."""
        self.pump.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.pump

    @property
    def data(self) -> list[dict[str, Any]]:
        return [e.data for e in self.events]


async def sse_reader(response: Any) -> SseReader:
    assert response.status_code == 200, response.content if not response.streaming else response
    assert response["Content-Type"].startswith("text/event-stream")
    return SseReader(response)


async def send_message(client: AsyncClient, conversation_id: int, content: str, client_id: str = "c1", **extra: Any):
    return await client.post(
        f"/api/conversations/{conversation_id}/messages",
        {"content": content, "client_id": client_id},
        content_type="application/json",
        **extra,
    )


def stream_url(conversation: Conversation) -> str:
    """The conversation's SSE stream (a waiting client's, or one resuming with Last-Event-ID)."""
    return f"/api/conversations/{conversation.pk}/stream"
