"""Staff review: a conversation's transcript as turns to read, and the record of who read it.

Each turn is one stored message. An answer carries its tool steps (with the approval each needed,
and who decided), its rendered Markdown, its model, usage and timing. The view is built from
these turns only, so what a turn shows can grow (branches) without the page changing shape. An answer
also carries its owner's feedback (thumbs up or down, and the comment).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Prefetch
from django.utils.safestring import SafeString

from conversations.assistants import assistant_get
from conversations.branches import MessageTree
from conversations.models import Conversation, Feedback, Message, ToolApproval
from review.markdown import markdown_to_html
from review.models import TranscriptRead

PREVIEW_CHARS = 160
WAITING = "waiting"


@dataclass(frozen=True)
class ApprovalMark:
    """A person's decision on a tool call: `approved`, `denied`, `expired` or `waiting`."""

    decision: str
    by: str | None
    at: datetime | None


@dataclass(frozen=True)
class StepView:
    """One tool call of an answer, as text: its arguments and its result or error, in full and in one line."""

    call_id: str
    name: str
    args: str
    args_preview: str
    result: str
    result_preview: str
    failed: bool
    approval: ApprovalMark | None

    has_more: bool
    """Whether the one-line previews leave something out (cut, or lines joined)."""


@dataclass(frozen=True)
class TurnView:
    """One message of the transcript."""

    message: Message
    steps: tuple[StepView, ...] = ()
    answer_html: SafeString | None = None
    feedback: Feedback | None = None
    """The conversation owner's thumbs up or down on this answer, with their comment."""
    version: tuple[int, int] | None = None
    """(n, of) when the message has versions (an edited question, a regenerated answer)."""
    on_screen: bool = True
    """Whether it is on the branch the owner's tabs show (not an earlier version or its follow-ups)."""

    @property
    def is_answer(self) -> bool:
        return self.message.role == Message.Role.ASSISTANT

    @property
    def input_tokens(self) -> int:
        return _tokens(self.message.usage, "input_tokens")

    @property
    def output_tokens(self) -> int:
        return _tokens(self.message.usage, "output_tokens")

    @property
    def first_token_ms(self) -> int | None:
        return self.message.first_token_ms

    @property
    def duration_ms(self) -> int | None:
        """From the stored timing; for answers stored before it was recorded, from start and finish."""
        message = self.message
        if message.duration_ms is not None:
            return message.duration_ms
        if message.started and message.finished:
            return max(0, round((message.finished - message.started).total_seconds() * 1000))
        return None


@dataclass(frozen=True)
class TranscriptTotals:
    """The conversation at a glance."""

    messages: int
    answers: int
    input_tokens: int
    output_tokens: int
    errors: int
    stopped: int
    interrupted: int
    thumbs_up: int
    thumbs_down: int
    tools: tuple[str, ...]
    models: tuple[str, ...]


def transcript_turns(*, conversation: Conversation) -> list[TurnView]:
    """The conversation's messages, oldest first, ready to read."""
    owners_feedback = Prefetch("feedback", queryset=Feedback.objects.filter(user_id=conversation.owner_id))
    messages = list(conversation.messages.prefetch_related(owners_feedback))
    approvals = list(ToolApproval.objects.filter(conversation=conversation).select_related("decided_by"))
    tree = MessageTree.load(conversation.pk)
    on_screen = set(tree.branch(tree.leaf_id))
    turns = []
    for message in messages:
        turn = _turn(message, [a for a in approvals if a.message_id == message.pk])
        versions = tree.versions(message.pk)
        version = (versions.index(message.pk) + 1, len(versions)) if len(versions) > 1 else None
        turns.append(replace(turn, version=version, on_screen=message.pk in on_screen))
    return turns


def transcript_totals(turns: list[TurnView]) -> TranscriptTotals:
    """Sums and names over the turns."""
    answers = [t for t in turns if t.is_answer]
    statuses = [t.message.status for t in answers]
    return TranscriptTotals(
        messages=len(turns),
        answers=len(answers),
        input_tokens=sum(t.input_tokens for t in answers),
        output_tokens=sum(t.output_tokens for t in answers),
        errors=statuses.count(Message.Status.ERROR),
        stopped=statuses.count(Message.Status.CANCELLED),
        interrupted=statuses.count(Message.Status.INTERRUPTED),
        thumbs_up=sum(1 for t in answers if t.feedback and t.feedback.rating == Feedback.Rating.UP),
        thumbs_down=sum(1 for t in answers if t.feedback and t.feedback.rating == Feedback.Rating.DOWN),
        tools=tuple(dict.fromkeys(step.name for t in answers for step in t.steps)),
        models=tuple(dict.fromkeys(t.message.model for t in answers if t.message.model)),
    )


def assistant_name(assistant_id: str) -> str:
    """The assistant's name, or its id when the deployment no longer offers it."""
    assistant = assistant_get(assistant_id)
    return assistant.name if assistant is not None else f"{assistant_id} (no longer offered)"


def transcript_read_record(
    *, reader: AbstractBaseUser, conversation: Conversation, messages_shown: bool
) -> TranscriptRead:
    """Note that `reader` opened the conversation's transcript (kept for superusers to see)."""
    return TranscriptRead.objects.create(
        reader=reader,
        reader_username=reader.get_username(),
        conversation=conversation,
        conversation_number=conversation.pk,
        owner_username=conversation.owner.get_username(),
        messages_shown=messages_shown,
    )


def _turn(message: Message, approvals: list[ToolApproval]) -> TurnView:
    if message.role != Message.Role.ASSISTANT:
        return TurnView(message=message)
    steps = [s for s in message.tool_steps if isinstance(s, dict)] if isinstance(message.tool_steps, list) else []
    by_id = {a.approval_id: a for a in approvals}
    by_call = {a.call_id: a for a in approvals}
    views = [_step(step, by_id, by_call) for step in steps]
    shown = {view.call_id for view in views}
    views += [_waiting_step(a) for a in approvals if a.call_id not in shown]
    feedback = next(iter(message.feedback.all()), None)
    return TurnView(
        message=message, steps=tuple(views), answer_html=markdown_to_html(message.content), feedback=feedback
    )


def _step(step: dict[str, Any], by_id: dict[str, ToolApproval], by_call: dict[str, ToolApproval]) -> StepView:
    call_id = str(step.get("call_id", ""))
    stored = step.get("approval") if isinstance(step.get("approval"), dict) else None
    row = by_id.get(str(stored.get("approval_id"))) if stored else None
    row = row or by_call.get(call_id)
    failed = "error" in step
    result = str(step["error"]) if failed else step.get("output")
    return StepView(
        call_id=call_id,
        name=str(step.get("name", "?")),
        args=_full(step.get("args")),
        args_preview=_preview(step.get("args")),
        result=_full(result),
        result_preview=_preview(result),
        failed=failed,
        approval=_approval_mark(stored, row),
        has_more=_cut(step.get("args")) or _cut(result),
    )


def _waiting_step(approval: ToolApproval) -> StepView:
    """An approval whose call is not among the stored steps (the run ended while it waited)."""
    return StepView(
        call_id=approval.call_id,
        name=approval.tool,
        args=_full(approval.arguments),
        args_preview=_preview(approval.arguments),
        result="",
        result_preview="",
        failed=False,
        approval=_approval_mark(None, approval),
        has_more=_cut(approval.arguments),
    )


def _approval_mark(stored: dict[str, Any] | None, row: ToolApproval | None) -> ApprovalMark | None:
    if row is not None:
        by = row.decided_by.get_username() if row.decided_by is not None else (stored or {}).get("by")
        return ApprovalMark(decision=row.decision or WAITING, by=by, at=row.decided_at)
    if stored is not None:
        return ApprovalMark(decision=str(stored.get("decision") or WAITING), by=stored.get("by"), at=None)
    return None


def _full(value: Any) -> str:
    """A value as a reader wants it whole: text as it is, anything else as indented JSON."""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, indent=2)


def _one_line(value: Any) -> str:
    return " ".join((value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)).split())


def _preview(value: Any) -> str:
    """A value on one line, cut at PREVIEW_CHARS."""
    line = _one_line(value)
    return line if len(line) <= PREVIEW_CHARS else line[: PREVIEW_CHARS - 1].rstrip() + "…"


def _cut(value: Any) -> bool:
    """Whether the preview of `value` loses something: it is cut, or it is text of several lines."""
    return len(_one_line(value)) > PREVIEW_CHARS or (isinstance(value, str) and "\n" in value.strip())


def _tokens(usage: Any, key: str) -> int:
    value = usage.get(key) if isinstance(usage, dict) else None
    return value if isinstance(value, int) else 0
