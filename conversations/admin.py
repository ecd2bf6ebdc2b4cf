"""Staff review of conversations: read-only transcripts with tool steps, usage and timings.

Who may read them is Django's model permissions (`conversations.view_conversation`, and
`conversations.view_message` for the transcript), granted per user or group; being staff only
lets one into the admin. Nobody adds, changes or deletes here.
"""

from __future__ import annotations

import json

from django.contrib import admin
from django.db.models import Count, OuterRef, QuerySet, Subquery
from django.http import HttpRequest
from django.utils.html import format_html, format_html_join

from conversations.models import Conversation, Message


class LastStatusFilter(admin.SimpleListFilter):
    """Filter conversations by the status of their latest message."""

    title = "last status"
    parameter_name = "last_status"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return list(Message.Status.choices)

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if self.value():
            return queryset.filter(last_status=self.value())
        return queryset


class MessageInline(admin.StackedInline):
    """The transcript, read-only."""

    model = Message
    extra = 0
    can_delete = False
    show_change_link = False
    fields = ("role", "status", "content", "tool_steps_display", "usage", "model", "timing", "error")
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: object | None = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object | None = None) -> bool:
        return False

    @admin.display(description="tool steps")
    def tool_steps_display(self, message: Message) -> str:
        if not message.tool_steps:
            return "—"
        rows = (
            (
                step.get("name", "?"),
                json.dumps(step.get("args"), ensure_ascii=False),
                "error: " + str(step["error"]) if "error" in step else json.dumps(step.get("output")),
            )
            for step in message.tool_steps
        )
        return format_html(
            "<ol>{}</ol>", format_html_join("", "<li><b>{}</b>(<code>{}</code>) → <code>{}</code></li>", rows)
        )

    @admin.display(description="timing")
    def timing(self, message: Message) -> str:
        if message.started and message.finished:
            seconds = (message.finished - message.started).total_seconds()
            return f"{message.started:%Y-%m-%d %H:%M:%S} · {seconds:.2f} s"
        return f"{message.created:%Y-%m-%d %H:%M:%S}"


@admin.register(Conversation)
class ConversationAdmin(admin.ModelAdmin):
    """Conversations with their owner, size and last status; transcripts inline."""

    list_display = ("title_or_id", "owner", "message_count", "last_status", "created")
    list_filter = ("owner", "created", LastStatusFilter)
    search_fields = ("title", "messages__content")
    readonly_fields = ("owner", "title", "created", "updated")
    inlines = [MessageInline]
    date_hierarchy = "created"

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        last = Message.objects.filter(conversation=OuterRef("pk")).order_by("-created", "-id")
        return (
            super()
            .get_queryset(request)
            .select_related("owner")
            .annotate(
                message_count=Count("messages", distinct=True),
                last_status=Subquery(last.values("status")[:1]),
            )
        )

    def get_search_fields(self, request: HttpRequest) -> tuple[str, ...]:
        """Searching inside the messages needs the permission to read them."""
        if request.user.has_perm("conversations.view_message"):
            return self.search_fields
        return ("title",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object | None = None) -> bool:
        return False

    @admin.display(description="title", ordering="title")
    def title_or_id(self, conversation: Conversation) -> str:
        return str(conversation)

    @admin.display(description="messages", ordering="message_count")
    def message_count(self, conversation: Conversation) -> int:
        return conversation.message_count

    @admin.display(description="last status", ordering="last_status")
    def last_status(self, conversation: Conversation) -> str:
        return conversation.last_status or "—"
