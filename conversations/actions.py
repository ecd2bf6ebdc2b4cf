"""Actions: every change a user makes outside starting a run, each one function that checks, writes
(through `services`) and tells the open tabs (through `live`).

The socket, the API, the pages and `manage.py ask` only adapt an action: they call it and map a
`Refused` to their own wire (an `error` frame, an HTTP status, a command error), each with one
table. Starting a run (send, edit, regenerate, choosing a version) is `conversations.sending`'s,
with the same `Refused`.
"""

from __future__ import annotations

import asyncio

from channels.db import database_sync_to_async
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser

from agent_runtime.text import unstorable_character
from conversations import approvals, deletion, live, protocol, runs, services
from conversations.assistants import assistant_default_id, assistant_get, assistant_models
from conversations.models import Conversation, Feedback, Message, ToolApproval
from conversations.selectors import feedback_payload, message_get_for_user

# The codes of a refusal: the socket's direct error codes, and `not_found` (the socket, which only
# speaks of its own conversation, says `bad_request` for it; the API answers 404).
BAD_REQUEST = protocol.BAD_REQUEST
TOO_LONG = protocol.TOO_LONG
BUSY = protocol.BUSY
RATE_LIMITED = protocol.RATE_LIMITED
ASSISTANT_UNAVAILABLE = protocol.ASSISTANT_UNAVAILABLE
ALREADY_DECIDED = protocol.ALREADY_DECIDED
RESTARTING = protocol.RESTARTING
QUOTA_EXCEEDED = protocol.QUOTA_EXCEEDED
MODEL_UNAVAILABLE = protocol.MODEL_UNAVAILABLE
NOT_FOUND = "not_found"
DELETE_WAIT_SECONDS = 5
"""How long deleting a conversation waits for its answer, written in this process, to store its end."""
CODES = (*protocol.DIRECT_ERROR_CODES, NOT_FOUND)

UNSTORABLE_TEXT = "The '{field}' holds {what}, which cannot be stored; remove it and send again."
BAD_TITLE = "A new title needs a 'title' string of 1 to 200 characters once trimmed."
UNKNOWN_ASSISTANT = "No assistant {assistant!r} here; GET /api/assistants lists them."
MODEL_UNAVAILABLE_TEXT = "The assistant {assistant!r} does not offer the model {model!r}; it offers: {offered}."
NO_SUCH_MESSAGE = "No such message in your conversations."
NO_SUCH_APPROVAL = approvals.NO_SUCH_APPROVAL
ALREADY_DECIDED_TEXT = approvals.ALREADY_DECIDED
BAD_DECISION = approvals.BAD_DECISION
SEARCH_TOO_LONG = "A search takes at most {words} words and {chars} characters: shorten it and search again."


class Refused(Exception):
    """An action that may not go ahead: its `code` (one of `CODES`), a text every client shows alike,
    and, for `rate_limited` and `quota_exceeded`, how many seconds to wait."""

    def __init__(self, code: str, message: str, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retry_after = retry_after


def text_check(*, field: str, value: str) -> None:
    """The one gate for text going in: Refused `bad_request`, naming `field`, if it cannot be stored."""
    what = unstorable_character(value)
    if what is not None:
        raise Refused(BAD_REQUEST, UNSTORABLE_TEXT.format(field=field, what=what))


def search_check(*, query: str) -> list[str]:
    """The one gate for a search (`?q=`, the sidebar, the History assistant): its words, or Refused
    `bad_request` past `SEARCH_MAX_CHARS` or `SEARCH_MAX_WORDS`. Every word costs the query built
    from it, so this runs before any is built; the length first, so a huge one is never even split."""
    query = query.strip()
    too_long = len(query) > settings.SEARCH_MAX_CHARS
    words = [] if too_long else query.split()
    if too_long or len(words) > settings.SEARCH_MAX_WORDS:
        limits = {"words": settings.SEARCH_MAX_WORDS, "chars": settings.SEARCH_MAX_CHARS}
        raise Refused(BAD_REQUEST, SEARCH_TOO_LONG.format(**limits))
    return words


async def create_conversation(
    *, owner: AbstractBaseUser, assistant_id: str | None = None, model: object = None
) -> Conversation:
    """Start an empty conversation answered by `assistant_id` (default: the first offered), with
    `model` (default: the assistant's first).

    Refused `bad_request` for an assistant not offered here, `model_unavailable` for a model the
    assistant does not offer, `rate_limited` past `RATE_LIMIT_CONVERSATIONS_PER_HOUR`.
    """
    assistant_id = assistant_id or assistant_default_id()
    if assistant_get(assistant_id) is None:
        raise Refused(BAD_REQUEST, UNKNOWN_ASSISTANT.format(assistant=assistant_id))
    chosen = "" if model is None else model_check(assistant_id=assistant_id, model=model)
    per_hour = settings.RATE_LIMIT_CONVERSATIONS_PER_HOUR
    create = database_sync_to_async(services.conversation_create)
    try:
        return await create(owner=owner, assistant_id=assistant_id, per_hour=per_hour, model=chosen)
    except services.RateLimited as limited:
        message = services.TOO_MANY_CONVERSATIONS.format(limit=per_hour, seconds=limited.retry_after)
        raise Refused(RATE_LIMITED, message, limited.retry_after) from None


async def rename_conversation(*, conversation: Conversation, title: object) -> Conversation:
    """Name the conversation as its owner chose; every open tab shows the new title.

    Refused `bad_request` for a title that is not a string, blank, longer than 200 characters once
    trimmed, or holds what cannot be stored.
    """
    if not isinstance(title, str):
        raise Refused(BAD_REQUEST, BAD_TITLE)
    text_check(field="title", value=title)
    try:
        renamed = await database_sync_to_async(services.conversation_rename)(conversation=conversation, title=title)
    except services.BadTitle as bad:
        raise Refused(BAD_REQUEST, str(bad)) from None
    await live.title_changed_notify(renamed.pk, renamed.title)
    return renamed


def model_check(*, assistant_id: str, model: object) -> str:
    """The model, if the assistant `assistant_id` offers it; else Refused `model_unavailable` (also for
    a model that is not a string), or `assistant_unavailable` when the deployment no longer lists the
    assistant. A name is only compared with the offered ones, never stored unchecked."""
    assistant = assistant_get(assistant_id)
    if assistant is None:
        raise Refused(ASSISTANT_UNAVAILABLE, UNKNOWN_ASSISTANT.format(assistant=assistant_id))
    offered = assistant_models(assistant)
    if not isinstance(model, str) or model not in offered:
        shown = model[:100] if isinstance(model, str) else type(model).__name__
        text = MODEL_UNAVAILABLE_TEXT.format(assistant=assistant_id, model=shown, offered=", ".join(offered))
        raise Refused(MODEL_UNAVAILABLE, text)
    return model


async def choose_model(*, conversation: Conversation, model: object) -> Conversation:
    """Answer the conversation's next questions with `model`, one its assistant offers; every open tab
    shows the choice. Allowed while an answer is being written: that answer goes on with the model it
    started with, the next one uses the new choice.

    Refused `model_unavailable` for another model, `assistant_unavailable` when the deployment no
    longer lists the conversation's assistant.
    """
    chosen = model_check(assistant_id=conversation.assistant_id, model=model)
    changed = await database_sync_to_async(services.conversation_model_set)(conversation=conversation, model=chosen)
    await live.model_changed_notify(changed.pk, chosen)
    return changed


async def delete_conversation(*, conversation: Conversation) -> None:
    """Delete the conversation with everything of it (`deletion.conversations_delete`), stopping its
    answer if one is being written (on any process); its open tabs close (4404)."""
    conversation_id = conversation.pk  # deleting clears it
    active = runs.active_run_get(conversation_id)
    if active is not None and active.task is not None and active.loop is asyncio.get_running_loop():
        # Written here, on this loop: let it store its end before its rows go, so the two writes
        # never meet (SQLite would refuse one of them) and nothing of it is written after.
        active.stop()
        await asyncio.wait({active.task}, timeout=DELETE_WAIT_SECONDS)
    elif not runs.run_stop_threadsafe(conversation_id):  # from a page's thread too
        await runs.run_stop(conversation)
    only = Conversation.objects.filter(pk=conversation_id)
    deleted = await database_sync_to_async(deletion.conversations_delete)(only)
    await deletion.leftovers_forget(deleted.leftovers)  # its run logs, and its open tabs told


async def stop_run(*, conversation: Conversation) -> bool:
    """Stop the conversation's answer being written, wherever it executes; False when none is."""
    return await runs.run_stop(conversation)


async def rate_answer(
    *, user: AbstractBaseUser, message_id: int, rating: object, comment: object
) -> tuple[Message, dict]:
    """Store `user`'s rating (1 or -1) and comment on one of their answers, replacing an earlier one;
    every open tab shows it. Returns the answer and the feedback as the clients show it.

    Refused `not_found` (not an answer in their conversations), `bad_request` (a bad rating or
    comment, or a question), `busy` (the answer is still being written).
    """
    message = await database_sync_to_async(message_get_for_user)(user=user, message_id=message_id)
    if message is None:
        raise Refused(NOT_FOUND, NO_SUCH_MESSAGE)
    if isinstance(comment, str):
        text_check(field="comment", value=comment)
    store = database_sync_to_async(services.feedback_set)
    try:
        feedback: Feedback = await store(message=message, user=user, rating=rating, comment=comment)
    except services.BadFeedback as bad:
        raise Refused(BAD_REQUEST, str(bad)) from None
    except services.AnswerGenerating as generating:
        raise Refused(BUSY, str(generating)) from None
    payload = feedback_payload(feedback)
    await live.feedback_changed_notify(
        message.conversation_id, message_id=message.pk, run_id=message.run_id, feedback=payload
    )
    return message, payload


async def decide_approval(*, user: AbstractBaseUser, approval_id: object, decision: object) -> ToolApproval:
    """Approve or deny a tool call waiting in one of `user`'s runs; the first decision counts, from any
    tab, process or client, and the waiting run hears of it at once.

    Refused `bad_request` (no id, or a decision other than approve or deny), `not_found` (no such
    approval waiting in their conversations), `already_decided`.
    """
    if not isinstance(approval_id, str) or decision not in approvals.DECISIONS:
        raise Refused(BAD_REQUEST, BAD_DECISION)
    decide = database_sync_to_async(approvals.approval_decide)
    try:
        approval = await decide(approval_id=approval_id, user=user, decision=decision)
    except approvals.ApprovalNotFound:
        raise Refused(NOT_FOUND, NO_SUCH_APPROVAL) from None
    except approvals.AlreadyDecided as decided:
        raise Refused(ALREADY_DECIDED, ALREADY_DECIDED_TEXT.format(decision=decided.decision)) from None
    approvals.approval_wake_here(approval_id)
    await live.approval_decided_notify(approval.conversation_id, approval_id)
    return approval
