"""What the database holds of a conversation, and waiting until a run's answer is stored.

A run stores its answer as it ends, which may be a little after the last frame a tab or an SSE
client received: `wait_until_answered` polls until the last message is an answer no longer being
written, and fails at its deadline naming the conversation.
"""

from __future__ import annotations

from typing import Any

from channels.db import database_sync_to_async

from conversations.models import Conversation, Message
from tests.support.waits import eventually

ANSWER_TIMEOUT = 30.0


def stored(model: Any, **filters: Any):
    """The rows of `model` matching `filters`, in the order they were made (awaitable)."""
    return database_sync_to_async(lambda: list(model.objects.filter(**filters).order_by("pk")))()


def stored_messages(conversation: Conversation):
    """The conversation's messages, oldest first (awaitable)."""
    return stored(Message, conversation=conversation)


def finished_answer(messages: list[Any]) -> Any:
    """The last of `messages` if it is an answer no longer being written, else None.

    `messages` are stored `Message`s or the API's message objects (dicts)."""
    if not messages:
        return None
    last = messages[-1]
    role, status = (last["role"], last["status"]) if isinstance(last, dict) else (last.role, last.status)
    return last if role == "assistant" and status != "generating" else None


async def wait_until_answered(conversation: Conversation, timeout: float = ANSWER_TIMEOUT) -> list[Message]:  # noqa: ASYNC109
    """The conversation's messages once the last is a finished answer (completed, stopped, failed)."""

    async def messages_once_answered() -> list[Message] | None:
        messages = await stored_messages(conversation)
        return messages if finished_answer(messages) else None

    return await eventually(
        messages_once_answered,
        timeout=timeout,
        interval=0.02,
        message=f"the answer of conversation {conversation.pk} is stored",
    )
