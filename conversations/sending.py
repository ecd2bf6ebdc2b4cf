"""The actions that start a run, and choosing a version: whether it may go ahead, and starting it.

The socket, the HTTP API and `manage.py ask` all call `send_message` (and the socket and the API
`edit_question`, `regenerate_answer` and `choose_version`) and only adapt what they answer: a started
run, a resend (nothing new is stored or started), or `actions.Refused` with a code and a text that
every client shows alike. All runs start through `_turn`, with the same checks.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any
from uuid import uuid4

from channels.db import database_sync_to_async
from django.conf import settings

from agent_runtime import stages
from agent_runtime.assistants import Assistant
from agent_runtime.history import HistoryTurn
from conversations import live, protocol, runs
from conversations.actions import Refused, text_check
from conversations.assistants import assistant_get, conversation_model_config
from conversations.budgets import QuotaExceeded
from conversations.models import Conversation, Message
from conversations.process import process_state
from conversations.selectors import answer_for_client_id, history_for_agent, question_get
from conversations.services import (
    NothingToRegenerate,
    RateLimited,
    RunBusy,
    SendLimits,
    StartedTurn,
    answer_regenerate,
    branch_select,
    turn_start,
)

CLIENT_ID_PATTERN = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
BAD_SEND = (
    "A send frame needs a non-empty 'content' string and a 'client_id' of 1 to 64 letters, digits, "
    "'-', '_', '.' or ':'."
)
BAD_EDIT = (
    "An edit needs the 'message_id' (an integer) of one of the conversation's questions, a non-empty "
    "'content' string and a 'client_id' of 1 to 64 letters, digits, '-', '_', '.' or ':'."
)
BAD_REGENERATE = "A regenerate needs a 'client_id' of 1 to 64 letters, digits, '-', '_', '.' or ':'."
BAD_BRANCH = "Choosing a version needs the 'message_id' (an integer) of one of the conversation's messages."
NOT_EDITABLE = "Only the conversation's own questions can be edited: no such question here."
BRANCH_BUSY = "An answer is still being written; choose another version once it has finished or been stopped."
TOO_LONG = "The message is longer than {limit} characters."
RUN_BUSY = "An answer is still being written; wait for it or stop it first."
RATE_LIMITED = "You are sending too fast or have too many answers streaming; try again in {seconds} s."
RESTARTING = "This server is restarting and starts no new answers; send again in a moment."
RESTART_RETRY_AFTER = 1
ASSISTANT_UNAVAILABLE = (
    "This conversation's assistant ({assistant_id!r}) is no longer offered here; its messages stay readable. "
    "Start a new conversation to go on."
)


@dataclass(frozen=True)
class SendOutcome:
    """What a send did: started `run`, or (a resend of a stored `client_id`) nothing new."""

    run: runs.ActiveRun | None
    resent_answer: Message | None = None
    """For a resend: the answer to the earlier send (still being written, or written), if any."""

    @property
    def is_resend(self) -> bool:
        """Whether the message was stored before: no new run started."""
        return self.run is None


def send_validate(*, content: Any, client_id: Any, bad: str = BAD_SEND) -> tuple[str, str]:
    """The send's content and client_id, or Refused `bad_request` (saying `bad`) / `too_long`."""
    if not isinstance(content, str) or not content.strip() or not isinstance(client_id, str):
        raise Refused(protocol.BAD_REQUEST, bad)
    text_check(field="content", value=content)
    if not CLIENT_ID_PATTERN.fullmatch(client_id):
        raise Refused(protocol.BAD_REQUEST, bad)
    if len(content) > settings.MESSAGE_MAX_LENGTH:
        raise Refused(protocol.TOO_LONG, TOO_LONG.format(limit=settings.MESSAGE_MAX_LENGTH))
    return content, client_id


async def send_message(*, conversation: Conversation, content: Any, client_id: Any) -> SendOutcome:
    """Store the user's message at the end of the branch on screen and start the run answering it.

    A `client_id` already stored in the conversation is a resend: nothing is stored or started.
    Raises Refused: `bad_request`, `too_long`, `assistant_unavailable` (the deployment no longer
    lists the conversation's assistant), `busy` (an answer is being written, on any process) or
    `rate_limited` (the owner is over a limit; `retry_after` says how long to wait) or
    `quota_exceeded` (the owner's token budget has no room; `retry_after` says when it will).
    """
    content, client_id = send_validate(content=content, client_id=client_id)
    return await _turn(conversation, client_id, partial(turn_start, content=content))


async def edit_question(*, conversation: Conversation, message_id: Any, content: Any, client_id: Any) -> SendOutcome:
    """Store a new version of one of the conversation's questions (`message_id`) and start the run
    answering it; the earlier version and what followed it are kept. The tabs show the new branch.

    Refuses as `send_message` does, and with `bad_request` when `message_id` is not a question of
    this conversation.
    """
    content, client_id = send_validate(content=content, client_id=client_id, bad=BAD_EDIT)
    if type(message_id) is not int:
        raise Refused(protocol.BAD_REQUEST, BAD_EDIT)
    edited = await database_sync_to_async(question_get)(conversation=conversation, message_id=message_id)
    if edited is None:
        raise Refused(protocol.BAD_REQUEST, NOT_EDITABLE)
    return await _turn(conversation, client_id, partial(turn_start, content=content, edit_of=edited), branches=True)


async def regenerate_answer(*, conversation: Conversation, client_id: Any) -> SendOutcome:
    """Answer the last question of the branch on screen again (after any outcome: completed, error,
    cancelled, interrupted); the earlier answers are kept as versions. The tabs show the new answer.

    Refuses as `send_message` does, and with `bad_request` when there is no question to answer yet.
    """
    if not isinstance(client_id, str) or not CLIENT_ID_PATTERN.fullmatch(client_id):
        raise Refused(protocol.BAD_REQUEST, BAD_REGENERATE)
    return await _turn(conversation, client_id, answer_regenerate, branches=True)


async def choose_version(*, conversation: Conversation, message_id: Any) -> int:
    """Show the branch through `message_id` in every tab (the version arrows); returns its leaf.

    Raises Refused `bad_request` for a message not in the conversation, `busy` while an answer is
    being written.
    """
    if type(message_id) is not int:
        raise Refused(protocol.BAD_REQUEST, BAD_BRANCH)
    try:
        leaf_id = await database_sync_to_async(branch_select)(conversation=conversation, message_id=message_id)
    except Message.DoesNotExist:
        raise Refused(protocol.BAD_REQUEST, BAD_BRANCH) from None
    except RunBusy:
        raise Refused(protocol.BUSY, BRANCH_BUSY) from None
    await live.branch_changed_notify(conversation.pk)
    return leaf_id


async def _turn(
    conversation: Conversation, client_id: str, store: Callable[..., StartedTurn], *, branches: bool = False
) -> SendOutcome:
    """The checks every run start shares, then `store` and the history of its question (one call to
    the database thread) and the run; with `branches`, the tabs are told of the new branch before the
    run starts. A resend of a stored `client_id` is found by the store's unique constraint, or, when
    the send is refused, before the refusal: a resend is never refused."""
    try:
        if not process_state().accepting_runs:  # draining for a restart: another process takes the send
            raise Refused(protocol.RESTARTING, RESTARTING, RESTART_RETRY_AFTER)
        assistant = assistant_get(conversation.assistant_id)
        if assistant is None:
            message = ASSISTANT_UNAVAILABLE.format(assistant_id=conversation.assistant_id)
            raise Refused(protocol.ASSISTANT_UNAVAILABLE, message)
        if runs.active_run_get(conversation.pk) is not None:
            raise Refused(protocol.BUSY, RUN_BUSY)
        limits = SendLimits(
            messages_per_minute=settings.RATE_LIMIT_MESSAGES_PER_MINUTE,
            concurrent_runs=settings.RATE_LIMIT_CONCURRENT_RUNS,
        )
        stages.stamp("checked")
        try:
            turn, history = await database_sync_to_async(_store_with_history)(
                store,
                conversation=conversation,
                client_id=client_id,
                run_id=uuid4().hex,
                model=partial(_model_name, assistant=assistant),
                worker=runs.WORKER_ID,
                limits=limits,
            )
        except RunBusy:
            raise Refused(protocol.BUSY, RUN_BUSY) from None
        except NothingToRegenerate as nothing:
            raise Refused(protocol.BAD_REQUEST, str(nothing)) from None
        except RateLimited as limited:
            seconds = limited.retry_after
            raise Refused(protocol.RATE_LIMITED, RATE_LIMITED.format(seconds=seconds), seconds) from None
        except QuotaExceeded as over:
            raise Refused(protocol.QUOTA_EXCEEDED, over.message, over.retry_after) from None
    except Refused:
        resent = await _resent(conversation, client_id)
        if resent is not None:
            return resent
        raise
    if turn.is_duplicate:  # sent before, or at the same moment from another tab
        return await _resent(conversation, client_id) or SendOutcome(run=None)
    if turn.new_title:  # the conversation's first question named it: every tab shows the name
        await live.title_changed_notify(conversation.pk, turn.new_title)
    if branches:
        await live.branch_changed_notify(conversation.pk)
    run = await runs.run_start(conversation=conversation, turn=turn, assistant=assistant, history=history)
    return SendOutcome(run=run)


def _model_name(conversation: Conversation, *, assistant: type[Assistant]) -> str:
    """The answer's model: the conversation's choice, as the store read it under the owner's lock."""
    return conversation_model_config(conversation, assistant).display_name


def _store_with_history(store: Callable[..., StartedTurn], **kwargs: Any) -> tuple[StartedTurn, list[HistoryTurn]]:
    """Store the turn, then read the history its question follows, in one trip to the database thread."""
    turn = store(**kwargs)
    if turn.is_duplicate:
        return turn, []
    history = history_for_agent(
        conversation=kwargs["conversation"],
        parent_id=turn.user_message.parent_id,
        limit=settings.AGENT_HISTORY_MESSAGES,
    )
    stages.stamp("stored")
    return turn, history


async def _resent(conversation: Conversation, client_id: str) -> SendOutcome | None:
    stored = await database_sync_to_async(answer_for_client_id)(conversation=conversation, client_id=client_id)
    if stored is None:
        return None
    _user_message, answer = stored
    return SendOutcome(run=None, resent_answer=answer)
