"""Finding what to review: the conversation list's filters and its search over messages and tool steps.

Tool steps are a JSON list per message. They are searched as JSON text (`Cast` to text, then
`icontains`), which works alike on SQLite and PostgreSQL: a tool name matches `"name": "<name>"`
and a failed step holds `"error": "`. The two databases write JSON text differently (SQLite keeps
`\\u00e9` escapes, PostgreSQL writes `é`), so a term is looked for in both spellings.
"""

from __future__ import annotations

import json

from django.contrib import admin
from django.db.models import Exists, OuterRef, Q, QuerySet, TextField
from django.db.models.functions import Cast
from django.http import HttpRequest
from django.utils.text import smart_split, unescape_string_literal

from conversations.models import Conversation, Feedback, Message
from review.transcripts import assistant_name

TOOL_NAMES_SCANNED = 2000
"""The latest answers with tool steps whose tool names the "tool used" filter offers."""


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


def conversations_with_message(query: Q, *, steps: bool = False) -> Exists:
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
    """One user's conversations (`?owner=<id>`, linked from the user's admin page); listed only when chosen."""

    title = "owner"
    parameter_name = "owner"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        value = self.value()
        if not value or not value.isdigit():
            return []
        owner = Conversation._meta.get_field("owner").related_model.objects.filter(pk=value).first()
        return [(value, owner.get_username())] if owner is not None else []

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        value = self.value()
        if value:
            return queryset.filter(owner_id=value) if value.isdigit() else queryset.none()
        return queryset


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
    """Conversations in which the agent called one tool."""

    title = "tool used"
    parameter_name = "tool"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [(name, name) for name in recent_tool_names()]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if self.value():
            named = {f'"name": "{spelling}"' for spelling in json_spellings(self.value())}
            return queryset.filter(conversations_with_message(steps_text_contains(named), steps=True))
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
