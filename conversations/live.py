"""Telling a conversation's open tabs (on every process) that something changed outside a run.

Run events go out through `runs.publish_event`; this module sends the other group messages of
`conversations/protocol.py`: a new branch on screen, a new title, new feedback on an answer, a
deleted conversation, a decided approval; and, to a user's own group, that sessions ended. Each is
a hint that saves a reload: a tab that misses one (the channel layer is at most once, or down) finds
the same state in its next snapshot or page load, so a failed send is logged, never raised.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from channels.db import database_sync_to_async
from channels.layers import get_channel_layer

from conversations import protocol
from conversations.budgets import budget_status

logger = logging.getLogger(__name__)


async def branch_changed_notify(conversation_id: int) -> None:
    """The branch on screen changed (a regenerate, an edit, a version chosen): each tab gets a new
    snapshot. Sent before the run of a regenerate or an edit starts, so its events land on the new branch."""
    await _tell(conversation_id, protocol.branch_changed_message(), "a new branch")


async def title_changed_notify(conversation_id: int, title: str) -> None:
    """The conversation has a new title (renamed anywhere, or named by the model)."""
    await _tell(conversation_id, protocol.conversation_titled_message(title), "its new title")


async def model_changed_notify(conversation_id: int, model: str) -> None:
    """The owner chose another model for the conversation (in a tab or over the API)."""
    await _tell(conversation_id, protocol.conversation_model_changed_message(model), "its new model")


async def feedback_changed_notify(
    conversation_id: int, *, message_id: int, run_id: str, feedback: dict[str, Any] | None
) -> None:
    """The owner rated an answer (or changed the rating or comment) in one tab or client."""
    message = protocol.feedback_changed_message(message_id=message_id, run_id=run_id, feedback=feedback)
    await _tell(conversation_id, message, "new feedback")


async def conversation_deleted_notify(conversation_id: int) -> None:
    """The conversation was deleted: its open tabs close (4404)."""
    await _tell(conversation_id, protocol.conversation_deleted_message(), "its deletion")


async def approval_decided_notify(conversation_id: int, approval_id: str) -> None:
    """An approval was decided: the run waiting for it, on whichever process, reads it now rather
    than at its next poll of the stored row."""
    await _tell(conversation_id, protocol.approval_decided_message(approval_id), "a decided approval")


SESSIONS_CHANGED = "sessions.changed"
"""To a user's group: some of the user's sessions ended (a password changed or reset, "log out other
sessions"); each of the user's sockets checks its own session at once (`session_is_current`)."""


def user_group_name(user_id: int) -> str:
    """The group every open socket of one user joins, on every process."""
    return f"user-{user_id}"


async def sessions_changed_notify(user_id: int) -> None:
    """Some of the user's sessions ended: their sockets close (4401) now, not at their next recheck."""
    try:
        await get_channel_layer().group_send(user_group_name(user_id), {"type": SESSIONS_CHANGED})
    except Exception:
        logger.exception("telling user %s's sockets that sessions ended failed", user_id)


BUDGET_CHANGED = "budget.changed"
"""To a user's group: an answer of theirs ended; each socket tells its tab what is left of the budget."""


async def budget_changed_notify(user_id: int) -> None:
    """One of the user's answers ended: when a budget limits them, every tab of theirs hears how much is
    left (`budget` frame), so the page shows it once under a fifth. Nothing is sent without a limit."""
    try:
        status = await database_sync_to_async(budget_status)(user_id=user_id, now=datetime.now(UTC))
        if status["day"]["limit"] is None and status["month"]["limit"] is None:
            return
        message = {"type": BUDGET_CHANGED, "low": status["low"]}
        await get_channel_layer().group_send(user_group_name(user_id), message)
    except Exception:
        logger.exception("telling user %s's tabs what is left of their budget failed", user_id)


async def _tell(conversation_id: int, message: dict[str, Any], what: str) -> None:
    try:
        await get_channel_layer().group_send(protocol.group_name(conversation_id), message)
    except Exception:
        logger.exception("telling conversation %s's tabs of %s failed", conversation_id, what)
