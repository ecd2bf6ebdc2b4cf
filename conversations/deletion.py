"""Deleting conversations with everything that belongs to them: the one way every path deletes them.

A conversation's rows go in one transaction: its messages in every version (with their tool steps
and usage), the feedback on them and the approvals of their tool calls (the read record keeps the
conversation's number, `review.models.TranscriptRead`). What lives outside the database goes once
that transaction has committed: each run's event log (`agentchat:run:<run_id>` in Redis; it would
expire by itself within a day) and, when a model gets a FileField, the stored files
(`Leftovers` is where their names will go). The conversations' open tabs are told (they close, 4404).

The paths:

- a user deleting one of theirs (the page; `actions.delete_conversation`), which stops its answer first;
- the retention purge (`manage.py purge_conversations`, `purge_candidates` and `conversations_delete`),
  which never deletes a conversation whose answer is being written;
- a user's deletion (the admin, the ORM): their conversations go by the database cascade, and
  `user_leftovers_forget`, a `pre_delete` receiver on the user model (`ConversationsConfig.ready`),
  forgets what lives outside once the deletion commits.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Any

from asgiref.sync import async_to_sync
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import Exists, OuterRef, Q, QuerySet
from redis.exceptions import RedisError

from conversations import live
from conversations.event_log import RedisEventLog, RunEventLog, get_event_log
from conversations.models import Conversation, Feedback, Message
from conversations.redis_clients import redis_target

logger = logging.getLogger(__name__)

COUNTED = {
    "conversations.Conversation": "conversations",
    "conversations.Message": "messages",
    "conversations.Feedback": "feedback",
    "conversations.ToolApproval": "approvals",
}
"""The rows a deletion of conversations counts, by model label, with the word its report uses."""


@dataclass
class Leftovers:
    """What of some conversations lives outside their rows, forgotten once the rows are gone."""

    conversation_ids: list[int] = field(default_factory=list)
    run_ids: list[str] = field(default_factory=list)
    """Their runs: each one's event log (a Redis Stream, or this process's memory)."""
    # Stored files: when a model gets a FileField, `leftovers_of` collects their names here and
    # `_forget` deletes them from storage after the rows, so that every path deletes them.

    def __bool__(self) -> bool:
        return bool(self.conversation_ids or self.run_ids)


@dataclass
class Deleted:
    """What one `conversations_delete` took: rows per kind (`COUNTED`'s words), and whose they were."""

    leftovers: Leftovers
    counts: dict[str, int]
    owner_ids: set[int]


def leftovers_of(conversation_ids: Iterable[int]) -> Leftovers:
    """What the conversations have outside their rows (read before the rows go)."""
    ids = list(conversation_ids)
    run_ids = (
        Message.objects.filter(conversation_id__in=ids)
        .exclude(run_id="")
        .order_by()
        .values_list("run_id", flat=True)
        .distinct()
    )
    return Leftovers(conversation_ids=ids, run_ids=list(run_ids))


def conversations_delete(conversations: QuerySet[Conversation], *, keep_generating: bool = False) -> Deleted:
    """Delete these conversations and every row that belongs to them, in one transaction.

    The rows are locked first (on PostgreSQL), so a send to one of them waits and then finds it gone.
    With `keep_generating`, a conversation whose answer is being written (as seen once locked) is
    kept. What lives outside the database is the caller's to forget afterwards (`leftovers_forget`,
    `leftovers_forget_sync`), with the returned `Deleted.leftovers`.
    """
    with transaction.atomic():
        locked = conversations.select_for_update(of=("self",)).order_by("pk").values_list("pk", "owner_id")
        rows = dict(locked)
        if keep_generating and rows:
            generating = Message.objects.filter(conversation_id__in=rows, status=Message.Status.GENERATING)
            for conversation_id in generating.values_list("conversation_id", flat=True):
                rows.pop(conversation_id, None)
        leftovers = leftovers_of(rows)
        _total, by_model = Conversation.objects.filter(pk__in=list(rows)).delete()
    counts = {word: by_model.get(label, 0) for label, word in COUNTED.items()}
    return Deleted(leftovers=leftovers, counts=counts, owner_ids=set(rows.values()))


def last_activity_before(cutoff: datetime) -> QuerySet[Conversation]:
    """Conversations nobody has touched since `cutoff`: not updated, no message asked or finished, no
    feedback given or changed since; and no answer being written (those are never purged)."""
    messages = Message.objects.filter(conversation=OuterRef("pk"))
    recent_message = messages.filter(
        Q(created__gte=cutoff) | Q(finished__gte=cutoff) | Q(status=Message.Status.GENERATING)
    )
    recent_feedback = Feedback.objects.filter(message__conversation=OuterRef("pk"), updated__gte=cutoff)
    idle = Conversation.objects.filter(updated__lt=cutoff)
    return idle.exclude(Exists(recent_message)).exclude(Exists(recent_feedback))


@dataclass(frozen=True)
class PurgeEstimate:
    """What a purge before a cutoff would delete now, and what it would keep for a streaming answer."""

    conversations: int
    messages: int
    users: int
    generating: int


def purge_estimate(cutoff: datetime) -> PurgeEstimate:
    """Count what `purge_batches(cutoff)` would delete (a dry run), deleting nothing."""
    candidates = last_activity_before(cutoff)
    ids = candidates.order_by().values("pk")
    streaming = Message.objects.filter(conversation=OuterRef("pk"), status=Message.Status.GENERATING)
    idle_but_streaming = Conversation.objects.filter(updated__lt=cutoff).filter(Exists(streaming))
    return PurgeEstimate(
        conversations=candidates.count(),
        messages=Message.objects.filter(conversation_id__in=ids).count(),
        users=candidates.order_by().values("owner_id").distinct().count(),
        generating=idle_but_streaming.count(),
    )


def purge_batches(cutoff: datetime, *, batch_size: int) -> Iterable[Deleted]:
    """Delete the conversations last active before `cutoff`, `batch_size` per transaction (each batch
    chosen, then locked and checked again), yielding each batch's `Deleted` once it has committed.

    A conversation with an answer being written is kept, even if it was idle until that answer began.
    """
    after = 0
    while True:
        chosen = list(
            last_activity_before(cutoff).filter(pk__gt=after).order_by("pk").values_list("pk", flat=True)[:batch_size]
        )
        if not chosen:
            return
        after = chosen[-1]
        yield conversations_delete(last_activity_before(cutoff).filter(pk__in=chosen), keep_generating=True)


async def leftovers_forget(leftovers: Leftovers) -> bool:
    """Forget what lives outside the deleted conversations' rows, in a server's event loop (its shared
    connections), and tell their open tabs. False when the event logs could not be reached."""
    return await _forget(leftovers, get_event_log())


def leftovers_forget_sync(leftovers: Leftovers) -> bool:
    """`leftovers_forget` from synchronous code (a command, a signal): on a connection of its own,
    closed after. False when the event logs could not be reached (they expire by themselves)."""
    return async_to_sync(_forget_on_own_connection)(leftovers)


async def _forget_on_own_connection(leftovers: Leftovers) -> bool:
    target = redis_target()
    if not target:  # the log is this process's memory: the one the runs here write
        return await _forget(leftovers, get_event_log())
    log = RedisEventLog(target)
    try:
        return await _forget(leftovers, log)
    finally:
        await log.close()


async def _forget(leftovers: Leftovers, log: RunEventLog) -> bool:
    try:
        await log.delete(leftovers.run_ids)
    except (RedisError, OSError) as error:
        # Redis carries the tabs' messages too: telling them would fail the same way, one by one.
        logger.warning("deleting %d run event logs failed (they expire): %s", len(leftovers.run_ids), error)
        return False
    for conversation_id in leftovers.conversation_ids:
        await live.conversation_deleted_notify(conversation_id)
    return True


def user_leftovers_forget(sender: type, instance: AbstractBaseUser, using: str = "default", **kwargs: Any) -> None:
    """`pre_delete` of a user (the admin, the ORM, any path): their conversations go by the cascade, in
    the deletion's transaction; once it commits, their run logs are deleted and their tabs told."""
    owned = Conversation.objects.using(using).filter(owner_id=instance.pk).values_list("pk", flat=True)
    leftovers = leftovers_of(owned)
    if leftovers:
        transaction.on_commit(partial(leftovers_forget_sync, leftovers), using=using, robust=True)
