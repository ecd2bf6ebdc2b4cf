"""The WebSocket adapter of a conversation: check who may connect, validate frames, forward events.

Frame and message types are declared in `conversations/protocol.py`; what a frame may change is the
actions' to decide (`conversations.actions`, `conversations.sending`). This module only translates
between them and the socket: a frame to an action, a refusal to an `error` frame.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import deque
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from agent_runtime import stages
from conversations import actions, approvals, live, protocol, runs, telemetry
from conversations.actions import Refused
from conversations.process import process_state
from conversations.selectors import conversation_get_for_user, session_is_current
from conversations.sending import choose_version, edit_question, regenerate_answer, send_message
from conversations.watchdog import ensure_watchdog

logger = logging.getLogger(__name__)

BAD_JSON = "A frame must be a JSON object."
UNKNOWN_FRAME = "Unknown frame type; expected send, stop, sync, approval, regenerate, edit, branch or set_model."
# A refusal's code as an `error` frame says it: the socket only speaks of its own conversation, so
# what is not found there is a bad request.
SOCKET_CODES = {actions.NOT_FOUND: protocol.BAD_REQUEST}


class ConversationConsumer(AsyncWebsocketConsumer):
    """`ws/conversations/<id>/`: the live stream of one conversation for its owner."""

    async def connect(self) -> None:
        """Accept the owner only, up to `SOCKETS_PER_USER` sockets, join the conversation's group and send
        a snapshot."""
        user = self.scope.get("user")
        conversation_id = int(self.scope["url_route"]["kwargs"]["conversation_id"])
        telemetry.log_context_set(user_id=getattr(user, "pk", None), conversation_id=conversation_id)
        self.conversation = await database_sync_to_async(conversation_get_for_user)(
            user=user, conversation_id=conversation_id
        )
        if self.conversation is None:
            await self.close(code=protocol.CLOSE_NOT_ALLOWED)
            return
        if not process_state().socket_open(user.pk, limit=settings.SOCKETS_PER_USER):
            # Accepted, then closed: a handshake refused reaches the page as a bare 1006, this says why.
            await self.accept()
            await self.close(code=protocol.CLOSE_TOO_MANY_SOCKETS)
            return
        self.counted_user: int | None = user.pk
        try:
            await self.join_and_accept()
        except BaseException:
            self.uncount_socket()  # no disconnect follows a connect that raised
            raise

    async def join_and_accept(self) -> None:
        """Join the conversation's group, accept, send the first snapshot and watch the session."""
        ensure_watchdog()
        group = protocol.group_name(self.conversation.pk)
        try:
            await asyncio.wait_for(self.channel_layer.group_add(group, self.channel_name), 5)
        except Exception:
            # The channel layer (Redis) is down: refuse now rather than hang; the page retries.
            logger.warning("joining conversation %s failed", self.conversation.pk, exc_info=True)
            self.uncount_socket()
            await self.close(code=protocol.CLOSE_UNAVAILABLE)
            return
        self.group = group
        self.user_group = live.user_group_name(self.scope["user"].pk)
        try:
            await asyncio.wait_for(self.channel_layer.group_add(self.user_group, self.channel_name), 5)
        except Exception:
            # Only the prompt close after a password change is lost: `watch_session` still notices.
            logger.warning("joining user %s's group failed", self.scope["user"].pk, exc_info=True)
        self.snapshot_asks: deque[float] = deque()  # when this tab sent the frames that cost snapshots
        self.snapshot_pending: asyncio.Task[None] | None = None
        self.sync_due = False
        self.branch_due: dict[str, Any] | None = None  # the last `branch` frame not served yet
        self.last_snapshot = 0.0
        self.session_checked = float("-inf")  # the first frame is checked
        await self.accept()
        await self.send_snapshot("connect")
        self.session_watch = asyncio.create_task(self.watch_session())

    async def disconnect(self, code: int) -> None:
        """Leave the group and the user's count of sockets; a run this tab started goes on."""
        self.uncount_socket()
        for task in (getattr(self, "session_watch", None), getattr(self, "snapshot_pending", None)):
            if task is not None:
                task.cancel()
        if getattr(self, "group", None):
            await self.channel_layer.group_discard(self.group, self.channel_name)
        if getattr(self, "user_group", None):
            await self.channel_layer.group_discard(self.user_group, self.channel_name)

    def uncount_socket(self) -> None:
        """Take this socket off its user's count of open sockets: once, however often it is called."""
        user_id, self.counted_user = getattr(self, "counted_user", None), None
        if user_id is not None:
            process_state().socket_closed(user_id)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        """Validate one client frame and act on it (none on a socket refused at connect)."""
        if not getattr(self, "group", None):
            return
        received = time.monotonic()
        try:
            frame = json.loads(text_data if text_data is not None else bytes_data or b"")
        except (ValueError, RecursionError):  # RecursionError: JSON nested too deep to parse
            await self.send_error(protocol.BAD_REQUEST, BAD_JSON)
            return
        kind = frame.get("type") if isinstance(frame, dict) else None
        if kind in protocol.CLIENT_FRAME_TYPES and not await self.session_still_current():
            await self.close(code=protocol.CLOSE_LOGGED_OUT)
            return
        if kind == protocol.CLIENT_SEND:
            with stages.timing(received):
                await self.handle_send(frame)
        elif kind == protocol.CLIENT_STOP:
            await actions.stop_run(conversation=self.conversation)
        elif kind == protocol.CLIENT_SYNC:
            await self.handle_sync()
        elif kind == protocol.CLIENT_APPROVAL:
            await self.handle_approval(frame)
        elif kind == protocol.CLIENT_BRANCH:
            await self.handle_branch(frame)
        elif kind in (protocol.CLIENT_REGENERATE, protocol.CLIENT_EDIT):
            with stages.timing(received):
                await self.handle_branching(kind, frame)
        elif kind == protocol.CLIENT_SET_MODEL:
            if await self.spend_snapshot_budget():  # each reaches every tab: bounded like `sync`
                await self.handle_set_model(frame)
        else:
            await self.send_error(protocol.BAD_REQUEST, UNKNOWN_FRAME if isinstance(frame, dict) else BAD_JSON)

    async def handle_send(self, frame: dict[str, Any]) -> None:
        """Store the message and start its run; tell only this tab what went wrong."""
        client_id = frame.get("client_id")
        try:
            await send_message(conversation=self.conversation, content=frame.get("content"), client_id=client_id)
        except Refused as refused:
            await self.send_refusal(refused, client_id=client_id)

    async def handle_branching(self, kind: str, frame: dict[str, Any]) -> None:
        """Regenerate the last answer, edit a question, or choose a version: the new branch reaches
        every tab as a snapshot; only this tab hears what went wrong."""
        client_id = frame.get("client_id")
        try:
            if kind == protocol.CLIENT_REGENERATE:
                await regenerate_answer(conversation=self.conversation, client_id=client_id)
            elif kind == protocol.CLIENT_EDIT:
                await edit_question(
                    conversation=self.conversation,
                    message_id=frame.get("message_id"),
                    content=frame.get("content"),
                    client_id=client_id,
                )
            else:
                await choose_version(conversation=self.conversation, message_id=frame.get("message_id"))
        except Refused as refused:
            await self.send_refusal(refused, client_id=client_id)

    async def handle_approval(self, frame: dict[str, Any]) -> None:
        """Approve or deny a waiting tool call; only this tab hears what went wrong."""
        approval_id = frame.get("approval_id")
        try:
            await actions.decide_approval(
                user=self.scope["user"], approval_id=approval_id, decision=frame.get("decision")
            )
        except Refused as refused:
            await self.send_refusal(refused, approval_id=approval_id)

    async def handle_set_model(self, frame: dict[str, Any]) -> None:
        """Choose the model of the next answers; every tab hears the choice (`model` frames), only this
        tab what went wrong."""
        try:
            self.conversation = await actions.choose_model(conversation=self.conversation, model=frame.get("model"))
        except Refused as refused:
            await self.send_refusal(refused)

    async def approval_decided(self, message: dict[str, Any]) -> None:
        """An approval was decided (maybe on another process): wake its run if it waits here."""
        approvals.approval_wake_here(message["approval_id"])

    async def handle_sync(self) -> None:
        """A snapshot for this tab, within the budget of the frames that cost one (`spend_snapshot_budget`)."""
        if await self.spend_snapshot_budget():
            self.sync_due = True
            await self.serve_snapshot_frames()

    async def handle_branch(self, frame: dict[str, Any]) -> None:
        """Choose a version: every tab gets a snapshot of the new branch, so a `branch` shares `sync`'s
        budget; of the versions chosen within one interval, the last is shown."""
        if await self.spend_snapshot_budget():
            self.branch_due = frame
            await self.serve_snapshot_frames()

    async def spend_snapshot_budget(self) -> bool:
        """Count a frame that costs a snapshot (`sync`, `branch`); a socket sending more than
        `SYNC_MAX_PER_MINUTE` of them in a minute is closed (4429): False then."""
        now = asyncio.get_running_loop().time()
        self.snapshot_asks.append(now)
        while self.snapshot_asks[0] < now - 60:
            self.snapshot_asks.popleft()
        if len(self.snapshot_asks) > settings.SYNC_MAX_PER_MINUTE:
            await self.close(code=protocol.CLOSE_TOO_MANY_SYNCS)
            return False
        return True

    async def serve_snapshot_frames(self) -> None:
        """Serve the due `sync` and `branch` now, or, within `SYNC_MIN_INTERVAL_SECONDS` of the last
        snapshot, once that interval is over: the frames that arrive in between share that turn."""
        wait = self.last_snapshot + settings.SYNC_MIN_INTERVAL_SECONDS - asyncio.get_running_loop().time()
        if wait <= 0:
            await self.serve_due()
        elif self.snapshot_pending is None or self.snapshot_pending.done():
            self.snapshot_pending = asyncio.create_task(self.serve_due(after=wait))

    async def serve_due(self, *, after: float = 0) -> None:
        """(`after` a wait) The version chosen last, whose snapshot reaches every tab through the group,
        then this tab's snapshot if it asked for one."""
        if after:
            await asyncio.sleep(after)
        frame, self.branch_due = self.branch_due, None
        if frame is not None:
            self.last_snapshot = asyncio.get_running_loop().time()
            await self.handle_branching(protocol.CLIENT_BRANCH, frame)
        if self.sync_due:
            self.sync_due = False
            await self.send_snapshot("sync")

    async def watch_session(self) -> None:
        """While the socket is open, close it (4401) once its session no longer logs the user in."""
        while True:
            await asyncio.sleep(settings.SOCKET_SESSION_RECHECK_SECONDS)
            if not await self.session_is_current():
                await self.close(code=protocol.CLOSE_LOGGED_OUT)
                return

    async def budget_changed(self, message: dict[str, Any]) -> None:
        """One of the user's answers ended (`live.budget_changed_notify`): what is left of their budget."""
        await self.send_frame({"type": protocol.SERVER_BUDGET, "low": message.get("low")})

    async def sessions_changed(self, message: dict[str, Any]) -> None:
        """Some of the user's sessions ended (`live.sessions_changed_notify`): check this one now."""
        if not await self.session_is_current():
            await self.close(code=protocol.CLOSE_LOGGED_OUT)

    async def dispatch(self, message: dict[str, Any]) -> None:
        """Relay run events, and read the tab's frames, straight away: channels' per-message database
        clean-up (a hop to the worker thread) is for handlers that touch the database outside
        `database_sync_to_async`, which closes stale connections itself on every call."""
        if message["type"] == protocol.GROUP_RUN_EVENT:
            await self.run_event(message)
            return
        if message["type"] == "websocket.receive":
            await self.websocket_receive(message)
            return
        await super().dispatch(message)

    async def run_stop(self, message: dict[str, Any]) -> None:
        """A tab on another process asked to stop a run; cancel it if it executes here."""
        runs.run_cancel_here(self.conversation.pk, message["run_id"])

    async def run_event(self, message: dict[str, Any]) -> None:
        """Forward one run event (already JSON) from the group to this tab."""
        await self.send(text_data=message["text"])

    async def send_snapshot(self, reason: str) -> None:
        """The stored messages and the events so far of the run streaming now; `reason` (connect, sync,
        version) counts it in `agentchat_snapshots_total`."""
        telemetry.SNAPSHOTS.labels(reason).inc()
        self.last_snapshot = asyncio.get_running_loop().time()
        await self.send_frame(await runs.conversation_snapshot(self.conversation))

    async def branch_changed(self, message: dict[str, Any]) -> None:
        """The branch on screen changed (in any tab, on any process): show it."""
        await self.send_snapshot("version")

    async def conversation_titled(self, message: dict[str, Any]) -> None:
        """The conversation has a new title (renamed in another tab or client, or named by the model)."""
        await self.send_frame(protocol.title_frame(message["title"]))

    async def conversation_model_changed(self, message: dict[str, Any]) -> None:
        """The owner chose another model (in any tab or client): remember it, and show it."""
        self.conversation.model = message["model"]
        await self.send_frame(protocol.model_frame(message["model"]))

    async def feedback_changed(self, message: dict[str, Any]) -> None:
        """The owner rated an answer in another tab or client."""
        await self.send_frame(protocol.feedback_frame(message))

    async def conversation_deleted(self, message: dict[str, Any]) -> None:
        """The conversation was deleted (in another tab): close, the page says it is gone."""
        await self.close(code=protocol.CLOSE_GONE)

    async def session_still_current(self) -> bool:
        """`session_is_current`, asked at most once per `SOCKET_SESSION_FRAME_RECHECK_SECONDS` for the
        tab's frames (a burst of frames, or each send, does not pay for it every time)."""
        now = asyncio.get_running_loop().time()
        if now - self.session_checked < settings.SOCKET_SESSION_FRAME_RECHECK_SECONDS:
            return True
        if not await self.session_is_current():
            return False
        self.session_checked = now
        return True

    async def session_is_current(self) -> bool:
        """Whether the user is still logged in with the session this socket was opened with."""
        session = self.scope.get("session")
        return await database_sync_to_async(session_is_current)(
            session_key=getattr(session, "session_key", None), user=self.scope.get("user")
        )

    async def send_refusal(self, refused: Refused, *, client_id: Any = None, approval_id: Any = None) -> None:
        """A refused action as an `error` frame for this tab only."""
        code = SOCKET_CODES.get(refused.code, refused.code)
        await self.send_error(
            code, refused.message, client_id=client_id, retry_after=refused.retry_after, approval_id=approval_id
        )

    async def send_error(
        self,
        code: str,
        message: str,
        *,
        client_id: Any = None,
        retry_after: int | None = None,
        approval_id: Any = None,
    ) -> None:
        """An error for this tab only (not part of any run); names the refused send's `client_id`, or
        the refused decision's `approval_id`."""
        frame = protocol.error_frame(
            code, message, client_id=client_id, retry_after=retry_after, approval_id=approval_id
        )
        await self.send_frame(frame)

    async def send_frame(self, frame: dict[str, Any]) -> None:
        """One frame of `protocol` (not a run event, which arrives encoded) for this tab."""
        await self.send(text_data=json.dumps(frame))
