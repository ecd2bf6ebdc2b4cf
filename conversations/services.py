"""Writes: every change to conversations and messages goes through these functions."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from math import ceil

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.db.models.functions import Now
from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.messages.utils import count_tokens_approximately

from agent_runtime.report import RunReport
from conversations.branches import MessageTree
from conversations.budgets import budget_check, deployment_budget_set
from conversations.models import Conversation, Feedback, Message
from conversations.selectors import SendState, conversation_retry_after, send_state, stale_since, user_retry_after

TITLE_LENGTH = 60
TOO_MANY_CONVERSATIONS = "You started {limit} conversations in the last hour; try again in {seconds} s."
RUN_INTERRUPTED = "The server writing this answer stopped before it finished."
RUN_RESTARTED = "The server restarted before this answer finished: Regenerate it to get the rest."
RUN_NOT_STORED = "The answer could not be stored; what could be kept is shown. Send again to retry."
TITLE_MAX_LENGTH = 200
TITLE_EMPTY = "The 'title' must not be blank."
TITLE_TOO_LONG = "The 'title' is longer than 200 characters."
FEEDBACK_COMMENT_MAX_LENGTH = 2000
FEEDBACK_BAD_RATING = "The 'rating' must be 1 (thumbs up) or -1 (thumbs down)."
FEEDBACK_BAD_COMMENT = "The 'comment' must be a string."
FEEDBACK_COMMENT_TOO_LONG = "The 'comment' is longer than 2,000 characters."
FEEDBACK_NOT_ANSWER = "Only the assistant's answers can be rated."
NOTHING_TO_REGENERATE = "There is no answer to regenerate yet; send a message first."
FEEDBACK_GENERATING = "This answer is still being written; rate it once it has finished."


class NothingToRegenerate(Exception):
    """The branch on screen has no question to answer again."""


class RunBusy(Exception):
    """The conversation already has an answer being written."""


class BadTitle(Exception):
    """A title that may not be stored: blank, or too long."""


class BadFeedback(Exception):
    """Feedback that may not be stored: a rating other than 1 or -1, a bad or too long comment, or
    a message that is not an answer."""


class AnswerGenerating(Exception):
    """The answer is still being written: it cannot be rated yet."""


class RateLimited(Exception):
    """The user is over a limit; may try again after `retry_after` seconds."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(retry_after)
        self.retry_after = retry_after


ModelName = str | Callable[[Conversation], str]
"""An answer's model name, or how to name it from the conversation (its `model` as stored now)."""


@dataclass(frozen=True)
class SendLimits:
    """Per user, across conversations and processes."""

    messages_per_minute: int
    concurrent_runs: int


@dataclass(frozen=True)
class StartedTurn:
    """A stored user message and, when a run starts for it, the assistant message to fill."""

    user_message: Message
    assistant_message: Message | None
    new_title: str = ""
    """The title the turn gave a conversation that had none (its first question), else empty."""

    @property
    def is_duplicate(self) -> bool:
        """Whether the user message was stored before (a resend): no new run starts."""
        return self.assistant_message is None


def conversation_create(
    *,
    owner: AbstractBaseUser,
    assistant_id: str | None = None,
    title: str = "",
    per_hour: int | None = None,
    model: str = "",
) -> Conversation:
    """Create an empty conversation for `owner` answered by `assistant_id` (default: the first of
    `AGENT_ASSISTANTS`) with `model` (blank: the assistant's default; whether the assistant offers it
    is the caller's to check); RateLimited when `per_hour` were created in the last hour."""
    with transaction.atomic():
        if per_hour is not None:
            _lock_user(owner.pk)
            retry_after = conversation_retry_after(user_id=owner.pk, per_hour=per_hour, now=datetime.now(UTC))
            if retry_after is not None:
                raise RateLimited(retry_after)
        conversation = Conversation(owner=owner, title=title[:TITLE_MAX_LENGTH], model=model)
        if assistant_id is not None:
            conversation.assistant_id = assistant_id
        conversation.save()
        return conversation


def conversation_rename(*, conversation: Conversation, title: str) -> Conversation:
    """Name the conversation as its owner chose (trimmed); automatic titles leave it alone from now on.

    Raises BadTitle when the trimmed title is blank or longer than 200 characters. Whether the text
    can be stored at all is `conversations.actions.text_check`'s to say, before this.
    """
    title = " ".join(title.split())
    if not title:
        raise BadTitle(TITLE_EMPTY)
    if len(title) > TITLE_MAX_LENGTH:
        raise BadTitle(TITLE_TOO_LONG)
    conversation.title = title
    conversation.title_set_by_user = True
    conversation.save(update_fields=["title", "title_set_by_user", "updated"])
    return conversation


def conversation_model_set(*, conversation: Conversation, model: str) -> Conversation:
    """Store the model the owner chose (one the assistant offers: the caller checked); the next run
    answers with it, an answer being written goes on with its own."""
    conversation.model = model
    conversation.save(update_fields=["model"])  # not `updated`: the sidebar's order is the talk's
    return conversation


def conversation_title_auto(*, conversation_id: int, title: str) -> bool:
    """Give the conversation an automatic title (the model's), unless its owner named it; whether it did."""
    updated = Conversation.objects.filter(pk=conversation_id, title_set_by_user=False).update(
        title=title[:TITLE_MAX_LENGTH]
    )
    return bool(updated)


def feedback_set(*, message: Message, user: AbstractBaseUser, rating: object, comment: object = "") -> Feedback:
    """Store `user`'s rating (1 or -1) and comment (trimmed, at most 2,000 characters) on the answer
    `message`, replacing what they said about it before.

    Raises BadFeedback, and AnswerGenerating while the answer is being written. Ownership is the
    caller's to check (`selectors.message_get_for_user`); whether the comment can be stored at all
    is `conversations.actions.text_check`'s to say, before this.
    """
    if type(rating) is not int or rating not in Feedback.Rating.values:
        raise BadFeedback(FEEDBACK_BAD_RATING)
    if comment is None:
        comment = ""
    if not isinstance(comment, str):
        raise BadFeedback(FEEDBACK_BAD_COMMENT)
    comment = comment.strip()
    if len(comment) > FEEDBACK_COMMENT_MAX_LENGTH:
        raise BadFeedback(FEEDBACK_COMMENT_TOO_LONG)
    if message.role != Message.Role.ASSISTANT:
        raise BadFeedback(FEEDBACK_NOT_ANSWER)
    with transaction.atomic():
        if Message.objects.filter(pk=message.pk, status=Message.Status.GENERATING).exists():
            raise AnswerGenerating(FEEDBACK_GENERATING)
        feedback, _created = Feedback.objects.update_or_create(
            message=message, user=user, defaults={"rating": rating, "comment": comment}
        )
    return feedback


def turn_start(
    *,
    conversation: Conversation,
    content: str,
    client_id: str,
    run_id: str,
    model: ModelName,
    worker: str,
    limits: SendLimits | None = None,
    edit_of: Message | None = None,
) -> StartedTurn:
    """Store the user's message and a `generating` assistant message in one transaction.

    The message follows the branch on screen; with `edit_of` (a question of the conversation) it is
    a new version of that question instead, following what it followed. Either way the new answer
    becomes the conversation's leaf: every tab shows its branch.
    A message whose `client_id` is already stored is a resend: nothing is written.
    Raises RunBusy when another answer is being written, and RateLimited when the owner is over
    `limits` (nothing is written then either). The limits are checked under a lock on the owner,
    in the transaction that inserts: sends at the same moment, on any process, count one by one.
    """
    now = datetime.now(UTC)
    try:
        with transaction.atomic():
            state = _limits_checked_state(conversation, limits, now)
            parent_id = edit_of.parent_id if edit_of is not None else state.leaf_id
            user_message = Message.objects.create(
                conversation=conversation,
                parent_id=parent_id,
                role=Message.Role.USER,
                content=content,
                client_id=client_id,
            )
            model_name = _model_name(conversation, model, state)
            assistant_message = _answer_create(conversation, user_message, run_id, model_name, worker, now)
            new_title = _leaf_set(conversation, assistant_message, title=title_shorten(content))
    except IntegrityError:
        return _resent_or_busy(conversation, client_id)
    return StartedTurn(user_message=user_message, assistant_message=assistant_message, new_title=new_title)


def answer_regenerate(
    *,
    conversation: Conversation,
    client_id: str,
    run_id: str,
    model: ModelName,
    worker: str,
    limits: SendLimits | None = None,
) -> StartedTurn:
    """Answer the last question of the branch on screen again: a `generating` answer beside the earlier
    ones (which are kept, as versions), sent with `client_id`; it becomes the conversation's leaf.

    A `client_id` already stored is a resend: nothing is written (`assistant_message` is None).
    Raises NothingToRegenerate when the branch has no question yet, RunBusy and RateLimited as
    `turn_start` does.
    """
    now = datetime.now(UTC)
    try:
        with transaction.atomic():
            state = _limits_checked_state(conversation, limits, now)
            leaf = Message.objects.filter(pk=state.leaf_id).first() if state.leaf_id is not None else None
            if leaf is not None and leaf.role == Message.Role.ASSISTANT:
                if leaf.status == Message.Status.GENERATING:
                    raise RunBusy
                leaf = Message.objects.filter(pk=leaf.parent_id).first()
            if leaf is None or leaf.role != Message.Role.USER:
                raise NothingToRegenerate(NOTHING_TO_REGENERATE)
            model_name = _model_name(conversation, model, state)
            answer = _answer_create(conversation, leaf, run_id, model_name, worker, now, client_id=client_id)
            _leaf_set(conversation, answer)
    except IntegrityError:
        return _resent_or_busy(conversation, client_id)
    return StartedTurn(user_message=leaf, assistant_message=answer)


def _resent_or_busy(conversation: Conversation, client_id: str) -> StartedTurn:
    """After a unique constraint refused the insert: a resend of `client_id` (nothing written), or else
    another answer being written (RunBusy)."""
    existing = Message.objects.filter(conversation=conversation, client_id=client_id).first()
    if existing is None:
        raise RunBusy
    return StartedTurn(user_message=existing, assistant_message=None)


def branch_select(*, conversation: Conversation, message_id: int) -> int:
    """Show the branch through `message_id` (one of the conversation's messages) in every tab: down to
    its newest versions. Returns the new leaf's id. Raises Message.DoesNotExist for a message of
    another conversation, and RunBusy while an answer is being written (its branch stays on screen)."""
    with transaction.atomic():
        if not Message.objects.filter(pk=message_id, conversation=conversation).exists():
            raise Message.DoesNotExist
        if Message.objects.filter(conversation=conversation, status=Message.Status.GENERATING).exists():
            raise RunBusy
        leaf_id = MessageTree.load(conversation.pk).newest_leaf_under(message_id)
        Conversation.objects.filter(pk=conversation.pk).update(leaf_id=leaf_id)
    return leaf_id


def _answer_create(
    conversation: Conversation,
    question: Message,
    run_id: str,
    model: str,
    worker: str,
    now: datetime,
    *,
    client_id: str | None = None,
) -> Message:
    return Message.objects.create(
        conversation=conversation,
        parent=question,
        role=Message.Role.ASSISTANT,
        status=Message.Status.GENERATING,
        client_id=client_id,
        run_id=run_id,
        model=model,
        worker=worker,
        started=now,
        heartbeat=Now(),  # the database's clock, which liveness is judged by, whatever this process's says
    )


def _limits_checked_state(conversation: Conversation, limits: SendLimits | None, now: datetime) -> SendState:
    """In a run start's transaction: hold the owner's lock and check `limits` (RateLimited) and the
    owner's token budget (budgets.QuotaExceeded); what `selectors.send_state` reads, in one query:
    the conversation's leaf as it is now (tabs and processes move it), its model choice, the counts.
    The budget costs a query of its own only when the owner has one or the deployment sets one."""
    if limits is not None:
        _lock_user(conversation.owner_id)
    window_start = now - timedelta(minutes=1)
    state = send_state(user_id=conversation.owner_id, conversation_id=conversation.pk, window_start=window_start)
    if limits is not None:
        retry_after = user_retry_after(
            user_id=conversation.owner_id,
            state=state,
            messages_per_minute=limits.messages_per_minute,
            concurrent_runs=limits.concurrent_runs,
            window_start=window_start,
        )
        if retry_after is not None:
            raise RateLimited(retry_after)
        if state.has_budget or deployment_budget_set():
            budget_check(user_id=conversation.owner_id, now=now)
    return state


def _model_name(conversation: Conversation, model: ModelName, state: SendState) -> str:
    """The answer's model: `model`, or what it makes of the conversation's choice as stored now (a
    socket holds its conversation for hours; the owner may switch models in another tab)."""
    if isinstance(model, str):
        return model
    if state.model is not None:
        conversation.model = state.model
    return model(conversation)


def _leaf_set(conversation: Conversation, leaf: Message, *, title: str = "") -> str:
    """Make `leaf` the end of the branch on screen; name a still unnamed conversation `title`.
    Returns the title when it was stored, else an empty string."""
    now = datetime.now(UTC)
    Conversation.objects.filter(pk=conversation.pk).update(leaf=leaf, updated=now)
    stored = False
    if title and not conversation.title:  # a first message, or a title this process has not seen yet
        stored = bool(Conversation.objects.filter(pk=conversation.pk, title="").update(title=title))
    conversation.leaf_id = leaf.pk
    conversation.updated = now
    if not conversation.title:
        conversation.title = title
    return title if stored else ""


def run_finish(*, message_id: int, report: RunReport, worker: str) -> bool:
    """Store a run's outcome on its assistant message, unless it was finished already.

    A message no longer `generating` is not the run's any more: a sweep judged it dead (its process
    was silent past `RUN_STALE_SECONDS`), told its tabs, and the conversation may have a new run.
    Returns False then, and stores nothing.
    """
    with transaction.atomic():
        updated = Message.objects.filter(pk=message_id, status=Message.Status.GENERATING, worker=worker).update(
            status=report.status,
            content=report.content,
            tool_steps=[step.as_dict() for step in report.tool_steps],
            usage=report.usage_stored(),
            error=report.error_message or "",
            finished=datetime.fromtimestamp(report.finished or report.started, UTC),
            first_token_ms=_ms_between(report.started, report.first_output),
            duration_ms=_ms_between(report.started, report.finished),
        )
    return bool(updated)


def _ms_between(start: float, end: float | None) -> int | None:
    return None if end is None else max(0, round((end - start) * 1000))


def run_store_failed(*, message_id: int, content: str) -> None:
    """The outcome could not be stored: end the message as `error`, keeping its text if that can be
    stored, so that the conversation is free for the next send."""
    failed = Message.objects.filter(pk=message_id, status=Message.Status.GENERATING)
    changes = {"status": Message.Status.ERROR, "error": RUN_NOT_STORED, "finished": datetime.now(UTC)}
    try:
        with transaction.atomic():
            failed.update(content=content, **changes)
    except DatabaseError:
        failed.update(content="", tool_steps=[], **changes)


BEAT_GO_ON = "go_on"
BEAT_STOP = "stop"
BEAT_LOST = "lost"


def run_heartbeat(*, message_id: int, content: str, tool_steps: list[dict], worker: str) -> str:
    """Record that the run is alive, with its answer so far, by the database's clock (the one every
    process judges liveness by); what the run does next: `BEAT_GO_ON`, `BEAT_STOP` (a stop was asked
    from elsewhere) or `BEAT_LOST` (its message is gone, or no longer `generating`: a sweep judged the
    run dead and may have let a new one start, so it must end without a word or a write)."""
    generating = Message.objects.filter(pk=message_id, status=Message.Status.GENERATING, worker=worker)
    if not generating.update(heartbeat=Now(), content=content, tool_steps=tool_steps):
        return BEAT_LOST
    return BEAT_STOP if generating.filter(stop_requested=True).exists() else BEAT_GO_ON


def run_request_stop(*, conversation: Conversation) -> str | None:
    """Durably ask the conversation's streaming run to stop; its run id, or None when none streams."""
    message = Message.objects.filter(conversation=conversation, status=Message.Status.GENERATING).first()
    if message is None:
        return None
    Message.objects.filter(pk=message.pk).update(stop_requested=True)
    return message.run_id


def run_interrupt(*, message_id: int, stale_seconds: float, content: str | None, tool_steps: list | None) -> bool:
    """Mark a run whose process stopped beating as `interrupted`, unless it beat or finished meanwhile
    (both judged by the database's clock: see `selectors.stale_runs`)."""
    changes = {"status": Message.Status.INTERRUPTED, "error": RUN_INTERRUPTED, "finished": datetime.now(UTC)}
    if content is not None:
        changes["content"] = content
    if tool_steps is not None:
        changes["tool_steps"] = tool_steps
    changes["usage"] = _usage_estimate(message_id, content, tool_steps)
    updated = Message.objects.filter(
        pk=message_id, status=Message.Status.GENERATING, heartbeat__lt=stale_since(stale_seconds)
    ).update(**changes)
    return bool(updated)


def _usage_estimate(message_id: int, content: str | None, tool_steps: list | None) -> dict[str, int | bool]:
    """What a run whose process died spent, estimated (the model's report died with it): its question
    in, its answer and tool calls so far out, about four characters a token. Marked as an estimate."""
    answer = Message.objects.filter(pk=message_id).values("content", "tool_steps", "parent__content").first() or {}
    question = HumanMessage(answer.get("parent__content") or "")
    said = AIMessage(content if content is not None else answer.get("content") or "")
    steps = tool_steps if tool_steps is not None else answer.get("tool_steps") or []
    sent = count_tokens_approximately([question])
    received = count_tokens_approximately([said]) + (ceil(len(json.dumps(steps, default=str)) / 4) if steps else 0)
    return {"input_tokens": sent, "output_tokens": received, "total_tokens": sent + received, "estimated": True}


def title_shorten(text: str) -> str:
    """Text as a conversation's title: plain text (its Markdown taken away: `titles.title_plain`), its
    whitespace collapsed, at most `TITLE_LENGTH` characters (an ellipsis marks the cut). The one place
    a title is cut to length; a name the owner types is not made here (`conversation_rename`)."""
    from conversations.titles import title_plain  # titles writes through this module

    line = title_plain(text) or " ".join(text.split())  # nothing but marks: the text as it is
    return line if len(line) <= TITLE_LENGTH else line[: TITLE_LENGTH - 1].rstrip() + "…"


def _lock_user(user_id: int) -> None:
    """Serialise the user's limited writes until the surrounding transaction ends (on any process)."""
    users = connection.ops.quote_name(get_user_model()._meta.db_table)
    with connection.cursor() as cursor:
        if connection.features.has_select_for_update:
            cursor.execute(f"SELECT id FROM {users} WHERE id = %s FOR UPDATE", [user_id])
        else:  # SQLite: a write takes the database's write lock now, not at the first insert
            cursor.execute(f"UPDATE {users} SET is_active = is_active WHERE id = %s", [user_id])
