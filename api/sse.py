"""Server-sent events: one SSE event per run event, and comment keep-alives.

A stream opened with an API token lasts only as long as the token works: every
`API_TOKEN_RECHECK_SECONDS` it is checked again, and once revoked or expired (or its user
deactivated) the stream ends with a `: token revoked or expired` comment. Session-cookie streams
(the browser) are not bound to a token. A process that drains for a restart ends its streams at
once (`: server restarting ...`), so that their clients reconnect, to another process, with
`Last-Event-ID`: nothing is lost, the run goes on wherever it executes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, AsyncIterator

from channels.db import database_sync_to_async
from django.conf import settings
from django.http import StreamingHttpResponse

from agent_runtime import events
from agent_runtime.events import Event
from api.auth import authenticating_token_id
from api.selectors import api_token_is_working
from conversations.follow import event_id
from conversations.process import process_state

logger = logging.getLogger(__name__)

MEDIA_TYPE = "text/event-stream"
KEEP_ALIVE = ": keep-alive\n\n"
TOKEN_LAPSED = ": token revoked or expired\n\n"
TOKEN_UNCHECKED = ": token could not be checked\n\n"
RESTARTING = ": server restarting: reconnect with Last-Event-ID\n\n"
_OVER = object()


def format_event(event: Event) -> str:
    """`event: <type>`, `id: <run_id>:<seq>`, `data: <the event JSON, one line>`, a blank line."""
    data = events.encode(event)
    return f"event: {event['type']}\nid: {event_id(event)}\ndata: {data}\n\n"


async def sse_chunks(items: AsyncGenerator[Event | None, None], *, token_id: int | None = None) -> AsyncIterator[str]:
    """SSE text for a follower's items (None: a keep-alive); closes the follower however it ends.

    With `token_id`, ends early with a final comment once that token no longer works; and whatever
    the stream, once the process drains for a restart.
    """
    lapse = asyncio.ensure_future(_token_lapse(token_id)) if token_id is not None else None
    drain = asyncio.ensure_future(_drain_started())
    pending: asyncio.Future | None = None
    try:
        while True:
            pending = asyncio.ensure_future(_next(items))
            ends = {pending, drain} if lapse is None else {pending, drain, lapse}
            await asyncio.wait(ends, return_when=asyncio.FIRST_COMPLETED)
            if lapse is not None and lapse.done():
                yield lapse.result()
                return
            if drain.done():
                yield RESTARTING
                return
            item, pending = pending.result(), None
            if item is _OVER:
                return
            yield KEEP_ALIVE if item is None else format_event(item)
    except asyncio.CancelledError:
        # Under ASGI, Django cancels the response when the client disconnects; the run goes on.
        logger.debug("an event-stream client went away")
        raise
    finally:
        await _stop(lapse, drain, pending)
        if not getattr(items, "ag_running", False):  # (closing already, when both were abandoned)
            await items.aclose()


def event_stream_response(items: AsyncGenerator[Event | None, None]) -> StreamingHttpResponse:
    """A `text/event-stream` response relaying a follower, unbuffered and uncached.

    Bound to the API token that authenticated the request, if one did.
    """
    chunks = sse_chunks(items, token_id=authenticating_token_id.get())
    response = StreamingHttpResponse(chunks, content_type=MEDIA_TYPE)
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"
    return response


async def _next(items: AsyncGenerator[Event | None, None]) -> Event | object | None:
    """The follower's next item, or `_OVER` when it has ended."""
    try:
        return await anext(items)
    except StopAsyncIteration:
        return _OVER


async def _drain_started() -> None:
    """Return once this process begins to drain (SIGTERM: a deploy)."""
    await process_state().drain_started.wait()


async def _token_lapse(token_id: int) -> str:
    """Return, with the comment that ends the stream, once the token no longer works (checked periodically)."""
    while True:
        await asyncio.sleep(settings.API_TOKEN_RECHECK_SECONDS)
        try:
            working = await database_sync_to_async(api_token_is_working)(token_id=token_id)
        except Exception:
            logger.exception("checking API token %s failed: ending its event stream", token_id)
            return TOKEN_UNCHECKED
        if not working:
            return TOKEN_LAPSED


async def _stop(*tasks: asyncio.Future | None) -> None:
    """Cancel what is still running and wait until it has (a follower cancelled mid-step leaves its group)."""
    running = {task for task in tasks if task is not None and not task.done()}
    for task in running:
        task.cancel()
    if running:
        await asyncio.wait(running)
