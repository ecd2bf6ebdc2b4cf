"""The JSON shapes of the API, as the OpenAPI description shows them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ninja import Field, Schema


class ErrorDetail(Schema):
    code: str = Field(
        description="bad_request, too_long, busy, duplicate, rate_limited, unauthorized, insufficient_scope, ..."
    )
    message: str


class ErrorOut(Schema):
    """Every error answer."""

    error: ErrorDetail


class ConversationOut(Schema):
    id: int
    title: str
    assistant: str = Field(description="The id of the assistant that answers (see GET /api/assistants).")
    model: str = Field(
        description="The model that answers its next question: one of its assistant's `models` (the owner's "
        "choice, else the assistant's default)."
    )
    created: datetime


class ConversationIn(Schema):
    """A new conversation; the body may be omitted."""

    assistant: str | None = Field(
        default=None, description="An assistant's id from GET /api/assistants (default: the first listed)."
    )
    model: str | None = Field(
        default=None,
        description="One of the assistant's `models` (GET /api/assistants; default: its first). Another "
        "model is refused with 400 `model_unavailable`.",
    )


class ConversationPatchIn(Schema):
    """A new name for a conversation, another model for its next answers, or both."""

    title: str | None = Field(default=None, description="1 to 200 characters once trimmed.")
    model: str | None = Field(
        default=None,
        description="One of the assistant's `models`; the next answer uses it (one being written goes on "
        "with its own). Another model is refused with 400 `model_unavailable`.",
    )


class ApprovalIn(Schema):
    decision: str = Field(description="approve or deny")


class ApprovalOut(Schema):
    approval_id: str
    decision: str | None = Field(description="approved, denied or expired")
    by: str | None = Field(description="Who decided (a username); null when it expired.")
    tool: str
    arguments: dict[str, Any]


class AssistantOut(Schema):
    id: str
    name: str
    description: str
    model: str = Field(description="The model that answers for it (`offline-demo` without an API key).")
    models: list[str] = Field(
        description="The models a conversation with it may choose among (`model` in POST and PATCH "
        "/api/conversations/), the default first."
    )


class FeedbackIn(Schema):
    """Thumbs up or down on an answer, with an optional comment; sending again replaces it."""

    rating: int = Field(description="1 (thumbs up) or -1 (thumbs down).")
    comment: str = Field(default="", description="Optional, at most 2,000 characters once trimmed.")


class MessageFeedbackOut(Schema):
    rating: int = Field(description="1 (thumbs up) or -1 (thumbs down).")
    comment: str
    updated: datetime


class FeedbackOut(MessageFeedbackOut):
    message_id: int


class MessageOut(Schema):
    """A stored message, as the chat page receives it in a snapshot."""

    id: int
    role: str = Field(description="user or assistant")
    content: str
    status: str = Field(description="generating, completed, cancelled, error or interrupted")
    client_id: str | None
    run_id: str = Field(description="The run that wrote an assistant message (empty for user messages).")
    tool_steps: list[dict[str, Any]] = Field(description="{call_id, name, args, output | error} per tool call.")
    usage: dict[str, Any]
    model: str
    error: str
    created: datetime
    feedback: MessageFeedbackOut | None = Field(description="The owner's rating of an answer; null when none.")
    parent_id: int | None = Field(description="The message this one follows (null for the first question).")
    versions: list[int] = Field(
        description="The ids of this message's versions (itself included), oldest first: edits of a question, "
        "regenerations of an answer. `POST /api/conversations/{id}/branch` shows another one."
    )


class ConversationDetailOut(ConversationOut):
    messages: list[MessageOut]


class MessageIn(Schema):
    """A message to send; the same rules as the WebSocket's `send` frame."""

    content: str = Field(description="The message: not blank, at most 8,000 characters.")
    client_id: str = Field(
        description=(
            "Your id for this message (1 to 64 letters, digits, '-', '_', '.' or ':'); sending it again is a "
            "resend, not a new message."
        )
    )


class RegenerateIn(Schema):
    """Answer the last question again; the same rules as the WebSocket's `regenerate` frame."""

    client_id: str = Field(
        description="Your id for this regenerate (1 to 64 letters, digits, '-', '_', '.' or ':'); sending it again "
        "is a resend, not another answer."
    )


class BranchIn(Schema):
    """Which version to show; the same as the WebSocket's `branch` frame."""

    message_id: int = Field(description="One of the conversation's messages: the version to show.")


class BudgetPeriodOut(Schema):
    limit: int | None = Field(description="Tokens allowed in the period; null: no limit.")
    used: int = Field(description="Tokens of the answers asked in the period that have ended.")
    remaining: int | None = Field(description="Tokens left (never below 0); null: no limit.")
    in_progress: int = Field(
        description="Tokens held for answers being written (QUOTA_RUN_RESERVE_TOKENS each) until they end."
    )
    resets_at: datetime = Field(description="When the period renews (UTC midnight; the 1st of the month).")


class LowBudgetOut(Schema):
    period: str = Field(description="day or month")
    remaining: int
    limit: int


class BudgetOut(Schema):
    day: BudgetPeriodOut
    month: BudgetPeriodOut
    low: LowBudgetOut | None = Field(
        description="The period with less than a fifth of its limit left (the page then shows it); else null."
    )


class MeOut(Schema):
    """Who the caller is, and their token budget."""

    id: int
    username: str
    email: str
    budget: BudgetOut
