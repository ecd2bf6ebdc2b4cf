"""The one send path: whether a message may be sent to a conversation, and starting its run.

The socket, the HTTP API and `manage.py ask` all call `message_send` and only adapt what it
answers: a started run, a resend (nothing new is stored or started), or `SendRefused` with a
code and a text that every client shows alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

from channels.db import database_sync_to_async
from django.conf import settings

from conversations import protocol, runs
from conversations.models import Conversation, Message
from conversations.selectors import answer_for_client_id, user_retry_after
from conversations.services import RunBusy, turn_start

MAX_CLIENT_ID_LENGTH = 64
BAD_SEND = "A send frame needs a non-empty 'content' string and a 'client_id' string of at most 64 characters."
TOO_LONG = "The message is longer than {limit} characters."
RUN_BUSY = "An answer is still being written; wait for it or stop it first."
RATE_LIMITED = "You are sending too fast or have too many answers streaming; try again in {seconds} s."


class SendRefused(Exception):
    """A send that may not go ahead: `code` (see `protocol.DIRECT_ERROR_CODES`), a text, maybe a wait."""

    def __init__(self, code: str, message: str, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retry_after = retry_after


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


def send_validate(*, content: Any, client_id: Any) -> tuple[str, str]:
    """The send's content and client_id, or SendRefused `bad_request` / `too_long`."""
    if (
        not isinstance(content, str)
        or not content.strip()
        or not isinstance(client_id, str)
        or not 0 < len(client_id) <= MAX_CLIENT_ID_LENGTH
    ):
        raise SendRefused(protocol.BAD_REQUEST, BAD_SEND)
    if len(content) > settings.MESSAGE_MAX_LENGTH:
        raise SendRefused(protocol.TOO_LONG, TOO_LONG.format(limit=settings.MESSAGE_MAX_LENGTH))
    return content, client_id


async def message_send(*, conversation: Conversation, content: Any, client_id: Any) -> SendOutcome:
    """Store the user's message and start the run answering it.

    A `client_id` already stored in the conversation is a resend: nothing is stored or started.
    Raises SendRefused: `bad_request`, `too_long`, `busy` (an answer is being written, on any
    process) or `rate_limited` (the owner is over a limit; `retry_after` says how long to wait).
    """
    content, client_id = send_validate(content=content, client_id=client_id)
    resent = await _resent(conversation, client_id)
    if resent is not None:
        return resent
    if runs.active_run_get(conversation.pk) is not None:
        raise SendRefused(protocol.BUSY, RUN_BUSY)
    await _check_rate_limits(conversation)
    model = settings.AGENT_MODEL.display_name
    try:
        turn = await database_sync_to_async(turn_start)(
            conversation=conversation,
            content=content,
            client_id=client_id,
            run_id=uuid4().hex,
            model=model,
            worker=runs.WORKER_ID,
        )
    except RunBusy:
        raise SendRefused(protocol.BUSY, RUN_BUSY) from None
    if turn.is_duplicate:  # sent at the same moment from another tab
        return await _resent(conversation, client_id) or SendOutcome(run=None)
    return SendOutcome(run=await runs.run_start(conversation=conversation, turn=turn))


async def _resent(conversation: Conversation, client_id: str) -> SendOutcome | None:
    stored = await database_sync_to_async(answer_for_client_id)(conversation=conversation, client_id=client_id)
    if stored is None:
        return None
    _user_message, answer = stored
    return SendOutcome(run=None, resent_answer=answer)


async def _check_rate_limits(conversation: Conversation) -> None:
    retry_after = await database_sync_to_async(user_retry_after)(
        user_id=conversation.owner_id,
        messages_per_minute=settings.RATE_LIMIT_MESSAGES_PER_MINUTE,
        concurrent_runs=settings.RATE_LIMIT_CONCURRENT_RUNS,
        now=datetime.now(UTC),
    )
    if retry_after is not None:
        raise SendRefused(protocol.RATE_LIMITED, RATE_LIMITED.format(seconds=retry_after), retry_after)
