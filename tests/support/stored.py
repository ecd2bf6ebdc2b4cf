"""Conversations as the product leaves them, for the tests of deleting: every kind of row a conversation
owns (questions, answers in two versions, tool steps, usage, feedback, an approval) and its runs'
event logs, made as old as a test needs."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta

from asgiref.sync import async_to_sync
from django.contrib.auth.models import User
from django.utils import timezone

from agent_runtime import events
from conversations.event_log import get_event_log
from conversations.models import Conversation, Feedback, Message, ToolApproval
from tests.messages import message_append


@dataclass
class Stored:
    """A conversation and what belongs to it."""

    conversation: Conversation
    run_ids: list[str]

    @property
    def pk(self) -> int:
        return self.conversation.pk


def full_conversation(owner: User, title: str = "Sums", *, logs: bool = True) -> Stored:
    """A conversation with a question, an answer regenerated once (two versions, each its own run, one
    with a tool step and an approval), feedback on the first, and (with `logs`) both runs' event logs
    in this process's memory (a test with Redis writes them there itself)."""
    conversation = Conversation.objects.create(owner=owner, title=title)
    tag = uuid.uuid4().hex[:8]
    run_ids = [f"run-{tag}-1", f"run-{tag}-2"]
    question = message_append(conversation, role="user", content="What is 12 times 7?", client_id=f"q-{tag}")
    first = message_append(
        conversation,
        role="assistant",
        content="12 × 7 = 84.",
        run_id=run_ids[0],
        model="offline-demo",
        tool_steps=[{"call_id": "c1", "name": "multiply", "args": {"x": 12, "y": 7}, "output": 84}],
        usage={"input_tokens": 9, "output_tokens": 5, "total_tokens": 14},
        finished=timezone.now(),
    )
    Message.objects.create(
        conversation=conversation,
        parent=question,
        role="assistant",
        content="84.",
        run_id=run_ids[1],
        client_id=f"r-{tag}",
        model="offline-demo",
        finished=timezone.now(),
    )
    Feedback.objects.create(message=first, user=owner, rating=1, comment="right")
    ToolApproval.objects.create(
        conversation=conversation,
        message=first,
        run_id=run_ids[0],
        approval_id=f"ap-{tag}",
        call_id="c1",
        tool="multiply",
        arguments={"x": 12, "y": 7},
        decision=ToolApproval.Decision.APPROVED,
        decided_at=timezone.now(),
        decided_by=owner,
    )
    for run_id in run_ids if logs else ():
        log_run(run_id)
    return Stored(conversation=conversation, run_ids=run_ids)


def log_run(run_id: str) -> None:
    """Write a short run into this process's event log (in memory: the tests' settings have no Redis)."""
    log = get_event_log()
    started = events.run_started(run_id=run_id, model="offline-demo", seq=1)
    for event in (started, events.done(run_id=run_id, status="completed", seq=2)):
        async_to_sync(log.append)(run_id, event, events.encode(event))


def logged(run_id: str) -> list:
    """The run's events in this process's event log (empty once deleted)."""
    return async_to_sync(get_event_log().read)(run_id)


def age(stored: Stored | Conversation, days: float) -> None:
    """Make every time of the conversation `days` old (as if nobody touched it since)."""
    conversation_id = stored.pk
    then = timezone.now() - timedelta(days=days)
    Conversation.objects.filter(pk=conversation_id).update(created=then, updated=then)
    messages = Message.objects.filter(conversation_id=conversation_id)
    messages.update(created=then)
    messages.exclude(finished=None).update(finished=then)
    Feedback.objects.filter(message__conversation_id=conversation_id).update(created=then, updated=then)


def rows_of(conversation_id: int) -> dict[str, int]:
    """How many rows of each kind the conversation has (all zero once it is deleted)."""
    return {
        "conversations": Conversation.objects.filter(pk=conversation_id).count(),
        "messages": Message.objects.filter(conversation_id=conversation_id).count(),
        "feedback": Feedback.objects.filter(message__conversation_id=conversation_id).count(),
        "approvals": ToolApproval.objects.filter(conversation_id=conversation_id).count(),
    }
