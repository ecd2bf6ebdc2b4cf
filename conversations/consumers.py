"""The WebSocket adapter of a conversation: check who may connect, validate frames, forward events."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from conversations import runs
from conversations.selectors import conversation_get_for_user, session_is_current
from conversations.services import RateLimited, RunBusy
from conversations.watchdog import ensure_watchdog

logger = logging.getLogger(__name__)

CLOSE_LOGGED_OUT = 4401
CLOSE_NOT_ALLOWED = 4403
CLOSE_GONE = 4404
CLOSE_UNAVAILABLE = 4503

BAD_JSON = "A frame must be a JSON object."
UNKNOWN_FRAME = "Unknown frame type; expected send, stop or sync."
BAD_SEND = "A send frame needs a non-empty 'content' string and a 'client_id' string of at most 64 characters."
TOO_LONG = "The message is longer than {limit} characters."
RUN_BUSY = "An answer is still being written; wait for it or stop it first."
RATE_LIMITED = "You are sending too fast or have too many answers streaming; try again in {seconds} s."


class ConversationConsumer(AsyncWebsocketConsumer):
    """`ws/conversations/<id>/`: the live stream of one conversation for its owner."""

    async def connect(self) -> None:
        """Accept the owner only, join the conversation's group and send a snapshot."""
        user = self.scope.get("user")
        conversation_id = int(self.scope["url_route"]["kwargs"]["conversation_id"])
        self.conversation = await database_sync_to_async(conversation_get_for_user)(
            user=user, conversation_id=conversation_id
        )
        if self.conversation is None:
            await self.close(code=CLOSE_NOT_ALLOWED)
            return
        ensure_watchdog()
        try:
            await asyncio.wait_for(
                self.channel_layer.group_add(runs.group_name(self.conversation.pk), self.channel_name), 5
            )
        except Exception:
            # The channel layer (Redis) is down: refuse now rather than hang; the page retries.
            logger.warning("joining conversation %s failed", self.conversation.pk, exc_info=True)
            await self.close(code=CLOSE_UNAVAILABLE)
            return
        self.group = runs.group_name(self.conversation.pk)
        await self.accept()
        await self.send_snapshot()

    async def disconnect(self, code: int) -> None:
        """Leave the group; a run this tab started goes on."""
        if getattr(self, "group", None):
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        """Validate one client frame and act on it."""
        try:
            frame = json.loads(text_data if text_data is not None else bytes_data or b"")
        except (ValueError, RecursionError):  # RecursionError: JSON nested too deep to parse
            await self.send_error("bad_request", BAD_JSON)
            return
        kind = frame.get("type") if isinstance(frame, dict) else None
        if kind in ("send", "stop") and not await self.session_is_current():
            await self.close(code=CLOSE_LOGGED_OUT)
            return
        if kind == "send":
            await self.handle_send(frame)
        elif kind == "stop":
            await runs.run_stop(self.conversation)
        elif kind == "sync":
            await self.send_snapshot()
        else:
            await self.send_error("bad_request", UNKNOWN_FRAME if isinstance(frame, dict) else BAD_JSON)

    async def handle_send(self, frame: dict[str, Any]) -> None:
        """Store the message and start its run; tell only this tab what went wrong."""
        content, client_id = frame.get("content"), frame.get("client_id")
        if (
            not isinstance(content, str)
            or not content.strip()
            or not isinstance(client_id, str)
            or not 0 < len(client_id) <= 64
        ):
            await self.send_error("bad_request", BAD_SEND, client_id=client_id)
            return
        if len(content) > settings.MESSAGE_MAX_LENGTH:
            await self.send_error("too_long", TOO_LONG.format(limit=settings.MESSAGE_MAX_LENGTH), client_id=client_id)
            return
        try:
            await runs.run_send(conversation=self.conversation, content=content, client_id=client_id)
        except RunBusy:
            await self.send_error("busy", RUN_BUSY, client_id=client_id)
        except RateLimited as limited:
            message = RATE_LIMITED.format(seconds=limited.retry_after)
            await self.send_error("rate_limited", message, client_id=client_id, retry_after=limited.retry_after)

    async def dispatch(self, message: dict[str, Any]) -> None:
        """Relay run events straight away: channels' per-message database clean-up (a hop to the
        worker thread) is for handlers that touch the database, and this one does not."""
        if message["type"] == runs.GROUP_EVENT_TYPE:
            await self.run_event(message)
            return
        await super().dispatch(message)

    async def run_stop(self, message: dict[str, Any]) -> None:
        """A tab on another process asked to stop a run; cancel it if it executes here."""
        runs.run_cancel_here(self.conversation.pk, message["run_id"])

    async def run_event(self, message: dict[str, Any]) -> None:
        """Forward one run event (already JSON) from the group to this tab."""
        await self.send(text_data=message["text"])

    async def send_snapshot(self) -> None:
        """The stored messages and the events so far of the run streaming now."""
        await self.send(text_data=json.dumps(await runs.conversation_snapshot(self.conversation)))

    async def conversation_deleted(self, message: dict[str, Any]) -> None:
        """The conversation was deleted (in another tab): close, the page says it is gone."""
        await self.close(code=CLOSE_GONE)

    async def session_is_current(self) -> bool:
        """Whether the user is still logged in with the session this socket was opened with."""
        session = self.scope.get("session")
        return await database_sync_to_async(session_is_current)(
            session_key=getattr(session, "session_key", None), user=self.scope.get("user")
        )

    async def send_error(self, code: str, message: str, *, client_id: Any = None, **extra: Any) -> None:
        """An error for this tab only (not part of any run); names the refused send's `client_id`."""
        frame = {"type": "error", "code": code, "message": message, **extra}
        if isinstance(client_id, str) and client_id:
            frame["client_id"] = client_id[:64]
        await self.send(text_data=json.dumps(frame))
