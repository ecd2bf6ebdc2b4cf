"""Writes: every change to conversations and messages goes through these functions."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction

from agent_runtime.report import RunReport
from conversations.models import Conversation, Message

TITLE_LENGTH = 60
RUN_INTERRUPTED = "The server writing this answer stopped before it finished."


class RunBusy(Exception):
    """The conversation already has an answer being written."""


@dataclass(frozen=True)
class StartedTurn:
    """A stored user message and, when a run starts for it, the assistant message to fill."""

    user_message: Message
    assistant_message: Message | None

    @property
    def is_duplicate(self) -> bool:
        """Whether the user message was stored before (a resend): no new run starts."""
        return self.assistant_message is None


def conversation_create(*, owner: AbstractBaseUser, title: str = "") -> Conversation:
    """Create an empty conversation for `owner`."""
    return Conversation.objects.create(owner=owner, title=title[:200])


def conversation_delete(*, conversation: Conversation) -> None:
    """Delete a conversation and its messages."""
    conversation.delete()


def turn_start(
    *, conversation: Conversation, content: str, client_id: str, run_id: str, model: str, worker: str
) -> StartedTurn:
    """Store the user's message and a `generating` assistant message in one transaction.

    A message whose `client_id` is already stored is a resend: nothing is written.
    Raises RunBusy when another answer is being written (nothing is written then either).
    """
    existing = Message.objects.filter(conversation=conversation, client_id=client_id).first()
    if existing is not None:
        return StartedTurn(user_message=existing, assistant_message=None)
    now = datetime.now(UTC)
    try:
        with transaction.atomic():
            user_message = Message.objects.create(
                conversation=conversation,
                role=Message.Role.USER,
                content=content,
                client_id=client_id,
            )
            assistant_message = Message.objects.create(
                conversation=conversation,
                role=Message.Role.ASSISTANT,
                status=Message.Status.GENERATING,
                run_id=run_id,
                model=model,
                worker=worker,
                started=now,
                heartbeat=now,
            )
            if not conversation.title:
                conversation.title = _title_from(content)
            conversation.save(update_fields=["title", "updated"])
    except IntegrityError:
        existing = Message.objects.filter(conversation=conversation, client_id=client_id).first()
        if existing is not None:
            return StartedTurn(user_message=existing, assistant_message=None)
        raise RunBusy from None
    return StartedTurn(user_message=user_message, assistant_message=assistant_message)


def run_finish(*, message_id: int, report: RunReport) -> bool:
    """Store a run's outcome on its assistant message, unless it was finished already."""
    with transaction.atomic():
        updated = Message.objects.filter(pk=message_id, status=Message.Status.GENERATING).update(
            status=report.status,
            content=report.content,
            tool_steps=[step.as_dict() for step in report.tool_steps],
            usage=dict(report.usage),
            error=report.error_message or "",
            finished=datetime.fromtimestamp(report.finished or report.started, UTC),
        )
    return bool(updated)


def run_heartbeat(*, message_id: int, content: str, tool_steps: list[dict]) -> bool:
    """Record that the run is alive, with its answer so far; return whether a stop was requested."""
    generating = Message.objects.filter(pk=message_id, status=Message.Status.GENERATING)
    if not generating.update(heartbeat=datetime.now(UTC), content=content, tool_steps=tool_steps):
        return True  # deleted with its conversation, or finished elsewhere: nobody wants more of it
    return generating.filter(stop_requested=True).exists()


def run_request_stop(*, conversation: Conversation) -> str | None:
    """Durably ask the conversation's streaming run to stop; its run id, or None when none streams."""
    message = Message.objects.filter(conversation=conversation, status=Message.Status.GENERATING).first()
    if message is None:
        return None
    Message.objects.filter(pk=message.pk).update(stop_requested=True)
    return message.run_id


def run_interrupt(*, message_id: int, stale_before: datetime, content: str | None, tool_steps: list | None) -> bool:
    """Mark a run whose process stopped beating as `interrupted`, unless it finished meanwhile."""
    changes = {"status": Message.Status.INTERRUPTED, "error": RUN_INTERRUPTED, "finished": datetime.now(UTC)}
    if content is not None:
        changes["content"] = content
    if tool_steps is not None:
        changes["tool_steps"] = tool_steps
    updated = Message.objects.filter(
        pk=message_id, status=Message.Status.GENERATING, heartbeat__lt=stale_before
    ).update(**changes)
    return bool(updated)


def _title_from(content: str) -> str:
    line = " ".join(content.split())
    return line if len(line) <= TITLE_LENGTH else line[: TITLE_LENGTH - 1].rstrip() + "…"
