"""Finding what to review: the conversation list's filters and its search over messages and tool steps.

Tool steps are a JSON list per message. Search treats them as JSON text (`Cast` to text, then
`icontains`), which works alike on SQLite and PostgreSQL; a failed step holds `"error": "`. The two
databases write JSON text differently (SQLite keeps `\\u00e9` escapes, PostgreSQL writes `é`), so a
term is looked for in both spellings. The "tool used" filter instead compares each step's `name`
exactly (`HasToolStepNamed`): a reader without `view_message` must not learn, by filtering, what a
tool's arguments or results hold.
"""

from __future__ import annotations

import json

from django.contrib import admin
from django.contrib.auth import get_user_model
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import BooleanField, Exists, Expression, F, Func, OuterRef, Q, QuerySet, TextField, Value
from django.db.models.functions import Cast
from django.db.models.sql.compiler import SQLCompiler
from django.http import HttpRequest
from django.utils.text import smart_split, unescape_string_literal

from conversations.models import Conversation, Feedback, Message
from review.transcripts import assistant_name

TOOL_NAMES_SCANNED = 2000
"""The latest answers with tool steps whose tool names the "tool used" filter offers."""
LARGEST_ID = 2**63 - 1
"""The largest primary key the databases hold (a `BigAutoField`)."""


def messages_with_steps_text() -> QuerySet[Message]:
    """Messages with their tool steps as JSON text (`steps_text`), to search with `icontains`."""
    return Message.objects.annotate(steps_text=Cast("tool_steps", TextField()))


def json_spellings(term: str) -> set[str]:
    """`term` as it appears inside a JSON string on PostgreSQL (`é`) and on SQLite (`\\u00e9`)."""
    return {json.dumps(term, ensure_ascii=False)[1:-1], json.dumps(term)[1:-1]}


def steps_text_contains(patterns: set[str]) -> Q:
    """Messages whose tool steps' JSON text contains one of `patterns`, case-insensitively."""
    query = Q()
    for pattern in patterns:
        query |= Q(steps_text__icontains=pattern)
    return query


class HasToolStepNamed(Func):
    """Whether a message's tool steps (a JSON list) hold a step whose `name` is exactly `name`.

    Only the steps' own names count: an argument or a result holding `"name": ...` never matches.
    """

    arity = 2
    output_field = BooleanField()

    def __init__(self, name: str) -> None:
        super().__init__(F("tool_steps"), Value(name))

    def as_sql(self, compiler: SQLCompiler, connection: BaseDatabaseWrapper, **extra: object) -> tuple[str, list]:
        """SQLite: one row per step (`json_each`); a step that is no object has no name."""
        (steps, steps_params), (name, name_params) = (compiler.compile(e) for e in self.get_source_expressions())
        sql = (
            f"EXISTS (SELECT 1 FROM json_each({steps}) AS step WHERE json_type({steps}) = 'array' AND "
            f"CASE WHEN step.type = 'object' THEN json_extract(step.value, '$.name') END = {name})"
        )
        return sql, [*steps_params, *steps_params, *name_params]

    def as_postgresql(
        self, compiler: SQLCompiler, connection: BaseDatabaseWrapper, **extra: object
    ) -> tuple[str, list]:
        """PostgreSQL: the list contains `[{"name": name}]`."""
        (steps, steps_params), (name, name_params) = (compiler.compile(e) for e in self.get_source_expressions())
        sql = f"({steps} @> jsonb_build_array(jsonb_build_object('name', ({name})::text)))"
        return sql, [*steps_params, *name_params]


def conversations_with_message(query: Q | Expression, *, steps: bool = False) -> Exists:
    """Conversations having a message matching `query` (which may use `steps_text` when `steps`)."""
    messages = messages_with_steps_text() if steps else Message.objects.all()
    return Exists(messages.filter(query, conversation=OuterRef("pk")))


def search_conversations(queryset: QuerySet[Conversation], search: str, *, in_messages: bool) -> QuerySet:
    """Every word (or "quoted phrase") in the title, the owner's username or, when `in_messages`,
    a message's text or a tool step's name, arguments or result."""
    for word in smart_split(search):
        if word.startswith(('"', "'")) and word[0] == word[-1] and len(word) > 1:
            word = unescape_string_literal(word)
        matches = Q(title__icontains=word) | Q(owner__username__iexact=word)
        if in_messages:
            matches |= conversations_with_message(Q(content__icontains=word))
            matches |= conversations_with_message(steps_text_contains(json_spellings(word)), steps=True)
        queryset = queryset.filter(matches)
    return queryset


class OwnerFilter(admin.SimpleListFilter):
    """One user's conversations (`?owner=<id>`, linked from the user's admin page); listed only when chosen.

    The chosen user is named only if they own a conversation the reader may list (whose username the
    list shows anyway): any other id, a staff account's or nobody's, names nobody and lists nothing.
    """

    title = "owner"
    parameter_name = "owner"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        owner_id = self.owner_id()
        if owner_id is None:
            return []
        listed = model_admin.get_queryset(request).filter(owner=OuterRef("pk"))
        owner = get_user_model().objects.filter(Exists(listed), pk=owner_id).first()
        return [(str(owner_id), owner.get_username())] if owner is not None else []

    def has_output(self) -> bool:
        """Shown, and so applied, whenever an owner is chosen: one the reader may not see lists nothing."""
        return self.value() is not None

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if self.value():
            owner_id = self.owner_id()
            return queryset.filter(owner_id=owner_id) if owner_id is not None else queryset.none()
        return queryset

    def owner_id(self) -> int | None:
        """The chosen user's id, or None when the value is none (`²`, `-1` and `1e3` are none)."""
        value = self.value() or ""
        if not (value.isascii() and value.isdigit()) or int(value) > LARGEST_ID:
            return None
        return int(value)


class AssistantFilter(admin.SimpleListFilter):
    """Conversations answered by one assistant."""

    title = "assistant"
    parameter_name = "assistant"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        ids = Conversation.objects.order_by("assistant_id").values_list("assistant_id", flat=True).distinct()
        return [(i, assistant_name(i)) for i in ids]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        return queryset.filter(assistant_id=self.value()) if self.value() else queryset


class ModelFilter(admin.SimpleListFilter):
    """Conversations with an answer by one model."""

    title = "model"
    parameter_name = "model"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        models = Message.objects.exclude(model="").order_by("model").values_list("model", flat=True).distinct()
        return [(m, m) for m in models]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if self.value():
            return queryset.filter(conversations_with_message(Q(model=self.value())))
        return queryset


class AnswerStatusFilter(admin.SimpleListFilter):
    """Conversations with an answer that ended in an error, was interrupted or was stopped."""

    title = "an answer ended"
    parameter_name = "answer_status"
    labels = {
        Message.Status.ERROR: "in an error",
        Message.Status.INTERRUPTED: "interrupted",
        Message.Status.CANCELLED: "stopped by the user",
    }

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [(str(status), label) for status, label in self.labels.items()]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if self.value() in self.labels:
            return queryset.filter(conversations_with_message(Q(status=self.value())))
        return queryset


class ToolUsedFilter(admin.SimpleListFilter):
    """Conversations in which the agent called one tool: its exact name, or nothing."""

    title = "tool used"
    parameter_name = "tool"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [(name, name) for name in recent_tool_names()]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if self.value():
            return queryset.filter(conversations_with_message(HasToolStepNamed(self.value())))
        return queryset


class ToolErrorFilter(admin.SimpleListFilter):
    """Conversations in which a tool call failed (or was refused)."""

    title = "tool error"
    parameter_name = "tool_error"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [("yes", "a tool call failed")]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if self.value() == "yes":
            return queryset.filter(conversations_with_message(steps_text_contains({'"error": "'}), steps=True))
        return queryset


class FeedbackFilter(admin.SimpleListFilter):
    """Conversations whose owner rated an answer: thumbs down, thumbs up, or with a comment."""

    title = "feedback"
    parameter_name = "feedback"
    kinds = {
        "down": ("a thumbs down", Q(rating=Feedback.Rating.DOWN)),
        "up": ("a thumbs up", Q(rating=Feedback.Rating.UP)),
        "comment": ("a comment", ~Q(comment="")),
    }

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [(value, label) for value, (label, _query) in self.kinds.items()]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if self.value() in self.kinds:
            _label, query = self.kinds[self.value()]
            rated = Feedback.objects.filter(query, message__conversation=OuterRef("pk"), user=OuterRef("owner"))
            return queryset.filter(Exists(rated))
        return queryset


def recent_tool_names() -> list[str]:
    """The tool names of the latest answers that called tools, sorted."""
    latest = (
        Message.objects.filter(role=Message.Role.ASSISTANT)
        .exclude(tool_steps=[])
        .order_by("-id")
        .values_list("tool_steps", flat=True)[:TOOL_NAMES_SCANNED]
    )
    names = {
        str(step["name"])
        for steps in latest
        if isinstance(steps, list)
        for step in steps
        if isinstance(step, dict) and step.get("name")
    }
    return sorted(names)
