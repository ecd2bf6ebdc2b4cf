"""Server-sent events: one SSE event per run event, and comment keep-alives."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, AsyncIterator

from django.http import StreamingHttpResponse

from agent_runtime import events
from agent_runtime.events import Event
from conversations.follow import event_id

logger = logging.getLogger(__name__)

MEDIA_TYPE = "text/event-stream"
KEEP_ALIVE = ": keep-alive\n\n"


def format_event(event: Event) -> str:
    """`event: <type>`, `id: <run_id>:<seq>`, `data: <the event JSON, one line>`, a blank line."""
    data = events.encode(event)
    return f"event: {event['type']}\nid: {event_id(event)}\ndata: {data}\n\n"


async def sse_chunks(items: AsyncGenerator[Event | None, None]) -> AsyncIterator[str]:
    """SSE text for a follower's items (None: a keep-alive); closes the follower however it ends."""
    try:
        async for item in items:
            yield KEEP_ALIVE if item is None else format_event(item)
    except asyncio.CancelledError:
        # Under ASGI, Django cancels the response when the client disconnects; the run goes on.
        logger.debug("an event-stream client went away")
        raise
    finally:
        if not getattr(items, "ag_running", False):  # (closing already, when both were abandoned)
            await items.aclose()


def event_stream_response(items: AsyncGenerator[Event | None, None]) -> StreamingHttpResponse:
    """A `text/event-stream` response relaying a follower, unbuffered and uncached."""
    response = StreamingHttpResponse(sse_chunks(items), content_type=MEDIA_TYPE)
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"
    return response
