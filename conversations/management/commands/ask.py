"""`manage.py ask "What is 10 + 10?"`: run the agent through the product's path, streamed to the terminal.

The message is stored and its run started by the one send path (`sending.send_message`) in this
process, and the run's events are followed like the API follows them (`follow.follow_run`): tool calls as they
start (`→ add`), their arguments as the model types them, their results (`= 20` or `! error`),
then the answer as it streams, and a one-line summary. With `REDIS_URL` set, the browser tabs
open on the conversation watch the same run live.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.core.management.base import BaseCommand, CommandError, CommandParser

from agent_runtime import events
from agent_runtime.events import Event
from conversations.actions import choose_model
from conversations.assistants import assistant_get, assistant_registry
from conversations.follow import follow_run
from conversations.models import Conversation
from conversations.selectors import conversation_get_for_user
from conversations.sending import Refused, send_message, send_validate
from conversations.services import conversation_create

CLI_USERNAME = "cli"
NO_SUCH_USER = "No user {username!r}."
NO_SUCH_CONVERSATION = "User {username!r} has no conversation {conversation_id}."
RUN_FAILED = "The run ended {status}."
STOPPED = "Stopped: the partial answer is stored as cancelled."
REFUSED = "{code}: {message}"
NO_SUCH_ASSISTANT = "No assistant {assistant_id!r}; the assistants are: {known}."
TOOL_STARTED = "→ {name} "
TOOL_OUTPUT = "= {output}"
TOOL_ERROR = "! {error}"
APPROVAL_WAITING = "? {name} waits for approval: approve or deny it in a tab, or POST /api/approvals/{approval_id}"
APPROVAL_RESOLVED = "  {decision}{by}"


@dataclass
class TerminalRenderer:
    """Writes a run's events as they arrive: tool lines, then the streamed answer, then a summary."""

    write: Any
    """`write(text)`: writes without adding a newline."""
    started: float = field(default_factory=time.monotonic)
    open_call: str | None = None
    at_line_start: bool = True
    final: Event | None = None
    errors: list[Event] = field(default_factory=list)
    names: dict[str, str] = field(default_factory=dict)
    step_calls: set[str] = field(default_factory=set)
    """The calls of the current step: with several (parallel calls), results name their tool."""
    step_answered: bool = False

    def show(self, event: Event) -> None:
        """Render one event."""
        handler = getattr(self, f"on_{event['type']}", None)
        if handler is not None:
            handler(event)

    def on_tool_start(self, event: Event) -> None:
        self.names[event["call_id"]] = event["name"]
        if self.step_answered:  # a new step
            self.step_calls.clear()
            self.step_answered = False
        self.step_calls.add(event["call_id"])
        self._new_line()
        self._emit(TOOL_STARTED.format(name=event["name"]))
        self.open_call = event["call_id"]

    def on_tool_args(self, event: Event) -> None:
        if self.open_call != event["call_id"]:  # parallel calls: a fragment of another call
            self._new_line()
            self._emit(TOOL_STARTED.format(name=self.names.get(event["call_id"], "?")))
            self.open_call = event["call_id"]
        self._emit(event["delta"])

    def on_tool_result(self, event: Event) -> None:
        self._new_line()
        label = f"  ({event['name']})" if len(self.step_calls) > 1 else ""
        self.step_answered = True
        if "error" in event:
            self._emit(TOOL_ERROR.format(error=event["error"]) + label + "\n")
        else:
            output = event["output"]
            shown = output if isinstance(output, str) else json.dumps(output, ensure_ascii=False)
            self._emit(TOOL_OUTPUT.format(output=shown) + label + "\n")

    def on_approval_requested(self, event: Event) -> None:
        self._new_line()
        self._emit(APPROVAL_WAITING.format(name=event["name"], approval_id=event["approval_id"]) + "\n")

    def on_approval_resolved(self, event: Event) -> None:
        by = f" by {event['by']}" if event["by"] else ""
        self._emit(APPROVAL_RESOLVED.format(decision=event["decision"], by=by) + "\n")

    def on_token(self, event: Event) -> None:
        if self.open_call is not None:
            self._new_line()
        self._emit(event["text"])

    def on_final(self, event: Event) -> None:
        self.final = event

    def on_error(self, event: Event) -> None:
        self.errors.append(event)
        self._new_line()
        self._emit(f"! {event['code']}: {event['message']}\n")

    def on_done(self, event: Event) -> None:
        self._new_line()
        self._emit(self.summary(event["status"]) + "\n")

    def summary(self, status: str) -> str:
        """`(completed · tools: add · 204 tokens · 0.4 s)`."""
        parts = [status]
        if self.final is not None:
            if self.final["tools_used"]:
                parts.append("tools: " + ", ".join(self.final["tools_used"]))
            parts.append(f"{self.final['usage'].get('total_tokens', 0)} tokens")
        parts.append(f"{time.monotonic() - self.started:.1f} s")
        return "(" + " · ".join(parts) + ")"

    def _emit(self, text: str) -> None:
        if text:
            self.write(text)
            self.at_line_start = text.endswith("\n")

    def _new_line(self) -> None:
        if not self.at_line_start:
            self._emit("\n")
        self.open_call = None


class Command(BaseCommand):
    help = "Ask the agent something, through the same path as the chat page, and stream its work here."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("content", help="The message, e.g. 'What is 10 + 10?'")
        parser.add_argument("--conversation", type=int, help="Continue this conversation (default: a new one).")
        parser.add_argument(
            "--assistant", help="The assistant of a new conversation, by id (default: the first of AGENT_ASSISTANTS)."
        )
        parser.add_argument(
            "--model",
            help="Answer with this model, one the conversation's assistant offers (its `models`); it stays "
            "the conversation's choice, as choosing it in a tab does (default: the conversation's).",
        )
        parser.add_argument(
            "--user", help=f"Ask as this user (default: the first superuser, or else a local user {CLI_USERNAME!r})."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        content: str = options["content"]
        try:
            send_validate(content=content, client_id=CLI_USERNAME)  # refuse before creating a conversation
        except Refused as refused:
            raise _refusal(refused) from None
        user = _user(options["user"])
        conversation = _conversation(user, options["conversation"], options["assistant"])
        try:
            status = asyncio.run(self._ask(conversation, content, options["model"]))
        except KeyboardInterrupt:
            self.stdout.write("")
            raise CommandError(STOPPED) from None
        if status != "completed":
            raise CommandError(RUN_FAILED.format(status=status))

    async def _ask(self, conversation: Conversation, content: str, model: str | None = None) -> str:
        """Choose `model` (when given), start the run and render its events; the `done` status."""
        try:
            if model is not None:
                conversation = await choose_model(conversation=conversation, model=model)
            outcome = await send_message(conversation=conversation, content=content, client_id=uuid.uuid4().hex)
        except Refused as refused:
            raise _refusal(refused) from None
        active = outcome.run
        assert active is not None and active.task is not None  # a fresh client_id is never a resend
        renderer = TerminalRenderer(write=self._write)
        status = "interrupted"
        try:
            async for event in follow_run(conversation, active.run_id):
                if event is not None:
                    renderer.show(event)
                    if event["type"] == events.DONE:
                        status = event["status"]
        except asyncio.CancelledError:  # Ctrl-C: stop the run, let it store its partial answer
            active.stop()
            await asyncio.shield(active.task)
            raise
        await active.task
        return status

    def _write(self, text: str) -> None:
        self.stdout.write(text, ending="")
        self.stdout.flush()


def _refusal(refused: Refused) -> CommandError:
    """A refused send, with the code and text the socket and the API answer."""
    return CommandError(REFUSED.format(code=refused.code, message=refused.message))


def _user(username: str | None) -> AbstractBaseUser:
    users = get_user_model().objects
    if username:
        user = users.filter(username=username).first()
        if user is None:
            raise CommandError(NO_SUCH_USER.format(username=username))
        return user
    superuser = users.filter(is_superuser=True, is_active=True).order_by("pk").first()
    if superuser is not None:
        return superuser
    user, created = users.get_or_create(username=CLI_USERNAME)
    if created:
        user.set_unusable_password()
        user.save(update_fields=["password"])
    return user


def _conversation(user: AbstractBaseUser, conversation_id: int | None, assistant_id: str | None) -> Conversation:
    if conversation_id is None:
        if assistant_id is not None and assistant_get(assistant_id) is None:
            known = ", ".join(assistant_registry())
            raise CommandError(NO_SUCH_ASSISTANT.format(assistant_id=assistant_id, known=known))
        return conversation_create(owner=user, assistant_id=assistant_id)
    conversation = conversation_get_for_user(user=user, conversation_id=conversation_id)
    if conversation is None:
        raise CommandError(NO_SUCH_CONVERSATION.format(username=user.get_username(), conversation_id=conversation_id))
    return conversation
