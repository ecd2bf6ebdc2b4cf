"""Reads: what a user may see, and the history the agent is given."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from importlib import import_module
from math import ceil
from typing import Any

from django.conf import settings
from django.contrib.auth import HASH_SESSION_KEY, SESSION_KEY, get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import connection
from django.db.models import (
    DateTimeField,
    Exists,
    Expression,
    ExpressionWrapper,
    IntegerField,
    OuterRef,
    Prefetch,
    Q,
    QuerySet,
    Subquery,
)
from django.db.models.expressions import RawSQL
from django.db.models.functions import Now
from django.utils.crypto import constant_time_compare

from agent_runtime import events
from agent_runtime.events import Event
from agent_runtime.history import ASSISTANT, USER, HistoryTurn
from conversations.assistants import assistant_default_id, assistant_get
from conversations.branches import branch_ids
from conversations.models import Budget, Conversation, Feedback, Message, Preferences

CONCURRENT_RETRY_SECONDS = 5


def conversation_get_for_user(*, user: AbstractBaseUser, conversation_id: int) -> Conversation | None:
    """The conversation if `user` owns it, else None (others' conversations do not exist for them)."""
    if not user.is_authenticated:
        return None
    conversation = Conversation.objects.filter(pk=conversation_id, owner=user).first()
    if conversation is not None:
        conversation.owner = user  # it is theirs: a run started on it needs no query to know whose
    return conversation


def conversation_list_for_user(*, user: AbstractBaseUser) -> QuerySet[Conversation]:
    """The user's conversations, newest first, with the count of the messages on screen (the branch
    to the leaf: `branches.MessageTree.branch`; hidden versions are not counted) and last status."""
    last_status = Message.objects.filter(conversation=OuterRef("pk")).order_by("-created", "-id")
    return (
        Conversation.objects.filter(owner=user)
        .annotate(message_count=_branch_length(), last_status=Subquery(last_status.values("status")[:1]))
        .order_by("-updated", "-id")
    )


def _branch_length() -> RawSQL:
    """The number of messages on the conversation's branch on screen, as `MessageTree.branch` walks it
    (from the leaf, or the newest message when the leaf is not one of the conversation's, up its
    parents), in the list's one query: a recursive query per row, on PostgreSQL and SQLite alike."""
    quote = connection.ops.quote_name
    messages, conversation = quote(Message._meta.db_table), quote(Conversation._meta.db_table)
    this = f"{conversation}.{quote('id')}"
    return RawSQL(
        f"""(WITH RECURSIVE branch (id, parent_id) AS (
            SELECT m.id, m.parent_id FROM {messages} m
            WHERE m.conversation_id = {this} AND m.id = COALESCE(
                (SELECT l.id FROM {messages} l WHERE l.id = {conversation}.leaf_id AND l.conversation_id = {this}),
                (SELECT MAX(n.id) FROM {messages} n WHERE n.conversation_id = {this})
            )
            UNION
            SELECT m.id, m.parent_id FROM {messages} m JOIN branch b ON m.id = b.parent_id
            WHERE m.conversation_id = {this}
        ) SELECT COUNT(*) FROM branch)""",
        [],
        output_field=IntegerField(),
    )


def conversation_list_for_page(
    *, user: AbstractBaseUser, query: str = "", open_id: int | None = None
) -> QuerySet[Conversation]:
    """The user's conversations as the pages list them: matching `query` (see `conversation_search`),
    and without blank ones (no message, no title) other than the one open (`open_id`)."""
    conversations = conversation_search(conversations=conversation_list_for_user(user=user), query=query)
    has_messages = Exists(Message.objects.filter(conversation=OuterRef("pk")))  # not the count: no second walk
    return conversations.filter(has_messages | ~Q(title="") | Q(pk=open_id))


def conversation_search(*, conversations: QuerySet[Conversation], query: str) -> QuerySet[Conversation]:
    """Those of `conversations` whose title or a message holds every word of `query`, case-insensitively.

    Refused `bad_request` past the search bounds (`actions.search_check`), before any filter is built.
    """
    from conversations.actions import search_check  # actions reads through this module

    for word in search_check(query=query):
        in_messages = Message.objects.filter(conversation=OuterRef("pk"), content__icontains=word)
        conversations = conversations.filter(Q(title__icontains=word) | Exists(in_messages))
    return conversations


def conversation_empty_for_user(*, user: AbstractBaseUser, assistant_id: str) -> Conversation | None:
    """The user's most recent blank conversation with `assistant_id` (no message, no title), if any."""
    has_messages = Message.objects.filter(conversation=OuterRef("pk"))
    return (
        Conversation.objects.filter(owner=user, assistant_id=assistant_id, title="")
        .exclude(Exists(has_messages))
        .order_by("-updated", "-id")
        .first()
    )


def conversation_list_recent(*, user: AbstractBaseUser, limit: int, query: str = "") -> list[Conversation]:
    """The user's most recently updated conversations (those matching `query`, when given)."""
    conversations = conversation_search(conversations=Conversation.objects.filter(owner=user), query=query)
    return list(conversations.order_by("-updated", "-id")[:limit])


def conversation_title_is_automatic(*, conversation_id: int) -> bool:
    """Whether the conversation's title is still the product's to choose (its owner has not named it)."""
    return Conversation.objects.filter(pk=conversation_id, title_set_by_user=False).exists()


def conversation_has_run(*, conversation: Conversation, run_id: str) -> bool:
    """Whether `run_id` is the run of one of the conversation's answers."""
    return Message.objects.filter(conversation=conversation, run_id=run_id).exists()


def answer_for_client_id(*, conversation: Conversation, client_id: str) -> tuple[Message, Message | None] | None:
    """The message sent with `client_id` and the answer to it (if any); None if never sent.

    A question's answer is its first answer; a regenerated answer (sent with its own `client_id`)
    answers itself.
    """
    sent = Message.objects.filter(conversation=conversation, client_id=client_id).first()
    if sent is None:
        return None
    if sent.role == Message.Role.ASSISTANT:
        return sent, sent
    answer = Message.objects.filter(parent=sent, role=Message.Role.ASSISTANT).order_by("pk").first()
    return sent, answer


def message_list(*, conversation: Conversation, limit: int | None = None) -> list[Message]:
    """The branch on screen, oldest first: all of it, or its last `limit` messages, with the owner's
    feedback; each message knows its `versions` (the ids of itself and its siblings, oldest first)."""
    ids, tree = branch_ids(conversation.pk)
    if limit is not None:
        ids = ids[-limit:] if limit > 0 else []
    owners_feedback = Prefetch("feedback", queryset=Feedback.objects.filter(user_id=conversation.owner_id))
    by_id = {m.pk: m for m in Message.objects.filter(pk__in=ids).prefetch_related(owners_feedback)}
    messages = [by_id[i] for i in ids if i in by_id]
    for message in messages:
        message.conversation = conversation
        message.versions = tree.versions(message.pk)
    return messages


def question_get(*, conversation: Conversation, message_id: int) -> Message | None:
    """One of the conversation's questions (a user message), or None."""
    return Message.objects.filter(pk=message_id, conversation=conversation, role=Message.Role.USER).first()


def message_get_for_user(*, user: AbstractBaseUser, message_id: int) -> Message | None:
    """The message if it is in a conversation `user` owns, else None."""
    if not user.is_authenticated:
        return None
    return Message.objects.filter(pk=message_id, conversation__owner=user).select_related("conversation").first()


def feedback_payload(feedback: Feedback | None) -> dict[str, Any] | None:
    """Feedback as the page and the API show it, or None."""
    if feedback is None:
        return None
    return {"rating": feedback.rating, "comment": feedback.comment, "updated": feedback.updated.isoformat()}


def message_feedback(message: Message) -> Feedback | None:
    """The conversation owner's feedback on `message` (prefetched by `message_list`), if any."""
    owner_id = message.conversation.owner_id
    return next((f for f in message.feedback.all() if f.user_id == owner_id), None)


def message_payload(message: Message) -> dict[str, Any]:
    """A message as the page receives it in a snapshot."""
    return {
        "id": message.pk,
        "role": message.role,
        "content": message.content,
        "status": message.status,
        "client_id": message.client_id,
        "run_id": message.run_id,
        "tool_steps": message.tool_steps,
        "usage": message.usage,
        "model": message.model,
        "error": message.error,
        "created": message.created.isoformat(),
        "feedback": feedback_payload(message_feedback(message)) if message.role == Message.Role.ASSISTANT else None,
        "parent_id": message.parent_id,
        "versions": getattr(message, "versions", None) or [message.pk],
    }


def run_events_resumed(*, answer: Message, logged: list[Event]) -> list[Event]:
    """The events to show of a streaming answer whose log lost its first ones (Redis restarted, evicted
    it or failed over): its `run_started` rebuilt from storage, then what the logged events add to the
    answer stored so far (`content` and `tool_steps`, recorded at each heartbeat), which a tab shows
    first. Calls already stored lose their `tool_start` and `tool_args`, and the logged `token`s the
    text the stored answer holds already (`_overlap`)."""
    question = Message.objects.filter(pk=answer.parent_id, role=Message.Role.USER).first()
    start = events.run_started(run_id=answer.run_id, model=answer.model, seq=1)
    if question is not None:
        start["user_message"] = {"id": question.pk, "content": question.content, "client_id": question.client_id}
    stored_calls = {step.get("call_id") for step in answer.tool_steps or ()}
    repeated = _overlap(answer.content, "".join(e["text"] for e in logged if e["type"] == events.TOKEN))
    resumed: list[Event] = [start]
    for event in logged:
        if event["type"] in (events.TOOL_START, events.TOOL_ARGS) and event["call_id"] in stored_calls:
            continue
        if event["type"] == events.TOKEN and repeated:
            cut = min(repeated, len(event["text"]))
            repeated -= cut
            if cut == len(event["text"]):
                continue
            event = events.token(run_id=event["run_id"], text=event["text"][cut:], seq=event["seq"])
        resumed.append(event)
    return resumed


def _overlap(stored: str, logged: str) -> int:
    """How much of `logged` (the text a log kept) `stored` (the answer stored so far) holds already: the
    most where `stored`, from some point to its end, and the start of `logged` agree. The stored answer
    may be ahead of the log (text still waiting to be relayed): then all of `logged` is in it."""
    if not logged:
        return 0
    probe = logged[:16]  # most candidates differ early: rule them out without copying much
    start = stored.find(logged[0])
    while start != -1:
        common = min(len(logged), len(stored) - start)
        if stored.startswith(probe[:common], start) and stored.startswith(logged[:common], start):
            return common
        start = stored.find(logged[0], start + 1)
    return 0


def stale_since(seconds: float) -> Expression:
    """The database's time `seconds` ago. Heartbeats are written and judged by the database's clock
    alone, so a process whose own clock is off never takes a live run for a dead one."""
    return ExpressionWrapper(Now() - timedelta(seconds=seconds), output_field=DateTimeField())


def stale_runs(*, stale_seconds: float) -> list[Message]:
    """Answers still `generating` whose process has not beaten for `stale_seconds` (database time)."""
    return list(Message.objects.filter(status=Message.Status.GENERATING, heartbeat__lt=stale_since(stale_seconds)))


@dataclass(frozen=True)
class SendState:
    """What a run start reads under the owner's lock, in one query (`send_state`)."""

    leaf_id: int | None
    """The end of the branch on screen: the stored leaf, else the newest message (None: no messages)."""
    recent_answers: int
    """Answers the owner started since the rate window began (sends, regenerates and edits alike)."""
    streaming: int
    """The owner's answers being written, in every conversation."""
    model: str | None = None
    """The conversation's model choice as stored ("" for the assistant's default; None: no such row)."""
    has_budget: bool = False
    """Whether a token budget is set on the owner or one of their groups (`budgets.Budget`)."""


def send_state(*, user_id: int, conversation_id: int, window_start: datetime) -> SendState:
    """The conversation's leaf (the newest message when none is stored, as `MessageTree.branch` reads it)
    and the owner's counts against the send limits, the conversation's model choice and whether a
    budget applies to the owner: one statement (a send's transaction is the product's share of the
    first token; the ORM cost ~0.6 ms more per query on this path)."""
    quote = connection.ops.quote_name
    message = quote(Message._meta.db_table)
    conversations = quote(Conversation._meta.db_table)
    budgets = quote(Budget._meta.db_table)
    memberships = quote(get_user_model().groups.through._meta.db_table)
    owned = f"FROM {message} m JOIN {conversations} c ON c.id = m.conversation_id WHERE c.owner_id = %s"
    sql = f"""
        SELECT
            COALESCE(
                (SELECT leaf_id FROM {conversations} WHERE id = %s),
                (SELECT MAX(id) FROM {message} WHERE conversation_id = %s)
            ),
            (SELECT COUNT(*) {owned} AND m.role = %s AND m.created >= %s),
            (SELECT COUNT(*) {owned} AND m.status = %s),
            (SELECT model FROM {conversations} WHERE id = %s),
            EXISTS (
                SELECT 1 FROM {budgets} b WHERE b.user_id = %s
                OR b.group_id IN (SELECT g.group_id FROM {memberships} g WHERE g.user_id = %s)
            )
    """
    params = [conversation_id, conversation_id, user_id, Message.Role.ASSISTANT, window_start]
    params += [user_id, Message.Status.GENERATING, conversation_id, user_id, user_id]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        leaf_id, recent, streaming, model, has_budget = cursor.fetchone()
    return SendState(
        leaf_id=leaf_id, recent_answers=recent, streaming=streaming, model=model, has_budget=bool(has_budget)
    )


def user_retry_after(
    *, user_id: int, state: SendState, messages_per_minute: int, concurrent_runs: int, window_start: datetime
) -> int | None:
    """Seconds until the user may send again under the rate limits (counted in `state`), or None when
    they may now. Sends count by the answers they start, so a regenerate or an edit counts as a send."""
    if state.recent_answers >= messages_per_minute:
        # The window reopens when the oldest of the last `messages_per_minute` answers leaves it.
        oldest_counted = (
            Message.objects.filter(
                conversation__owner_id=user_id, role=Message.Role.ASSISTANT, created__gte=window_start
            )
            .order_by("-created")
            .values_list("created", flat=True)[messages_per_minute - 1 : messages_per_minute]
            .first()
        )
        if oldest_counted is not None:
            return max(1, ceil((oldest_counted - window_start).total_seconds()))
    if state.streaming >= concurrent_runs:
        return CONCURRENT_RETRY_SECONDS
    return None


def conversation_retry_after(*, user_id: int, per_hour: int, now: datetime) -> int | None:
    """Seconds until the user may create another conversation, or None when they may now."""
    window_start = now - timedelta(hours=1)
    recent = list(
        Conversation.objects.filter(owner_id=user_id, created__gte=window_start)
        .order_by("-created")
        .values_list("created", flat=True)[:per_hour]
    )
    if len(recent) >= per_hour:
        return max(1, ceil((recent[-1] - window_start).total_seconds()))
    return None


def session_is_current(*, session_key: str | None, user: AbstractBaseUser) -> bool:
    """Whether the session a socket was opened with still logs `user` in: not logged out since,
    the account still active, and its password unchanged (Django's session auth hash)."""
    if not session_key or not user.is_authenticated:
        return False
    data = import_module(settings.SESSION_ENGINE).SessionStore(session_key).load()
    if str(data.get(SESSION_KEY)) != str(user.pk):
        return False
    current = get_user_model().objects.filter(pk=user.pk, is_active=True).first()
    if current is None:
        return False
    return constant_time_compare(data.get(HASH_SESSION_KEY, ""), current.get_session_auth_hash())


def history_for_agent(*, conversation: Conversation, parent_id: int | None, limit: int) -> list[HistoryTurn]:
    """The branch ending at `parent_id` (what the new question follows), oldest first: its last
    `limit` messages, answered turns only. One query: the branch is walked up in the database."""
    if parent_id is None or limit <= 0:
        return []
    table = connection.ops.quote_name(Message._meta.db_table)
    # `kept` counts the messages the history keeps (an empty answer is left out): the walk stops as
    # soon as it has `limit` of them, and each step is one primary-key lookup.
    empty = "CASE WHEN {m}role = %s AND {m}content = '' THEN 0 ELSE 1 END"
    sql = f"""
        WITH RECURSIVE branch(id, parent_id, role, content, depth, kept) AS (
            SELECT id, parent_id, role, content, 0, {empty.format(m="")}
            FROM {table} WHERE id = %s AND conversation_id = %s
            UNION ALL
            SELECT m.id, m.parent_id, m.role, m.content, b.depth + 1, b.kept + {empty.format(m="m.")}
            FROM branch b JOIN {table} m ON m.id = b.parent_id
            WHERE b.kept < %s AND b.depth < %s
        )
        SELECT role, content FROM branch WHERE NOT (role = %s AND content = '') ORDER BY depth LIMIT %s
    """
    assistant = Message.Role.ASSISTANT
    params = [assistant, parent_id, conversation.pk, assistant, limit, 3 * limit, assistant, limit]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    return [HistoryTurn(role=USER if r == Message.Role.USER else ASSISTANT, content=c) for r, c in reversed(rows)]


def preferences_for_user(*, user: AbstractBaseUser) -> Preferences | None:
    """The user's own settings, or None until they first save them (or when nobody is signed in)."""
    if not user.is_authenticated:
        return None
    return Preferences.objects.filter(user=user).first()


def preferred_assistant_id(*, user: AbstractBaseUser) -> str:
    """The assistant a new conversation of the user's gets unless they pick one: their default when
    this deployment still offers it, else the deployment's first."""
    preferences = preferences_for_user(user=user)
    chosen = preferences.default_assistant_id if preferences is not None else ""
    return chosen if chosen and assistant_get(chosen) is not None else assistant_default_id()
