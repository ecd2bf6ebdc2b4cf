"""Staff review of conversations: transcripts that read like the chat, filters to find them, and usage.

Who may read them is Django's model permissions (`conversations.view_conversation`, and
`conversations.view_message` for the messages), granted per user or group; being staff only
lets one into the admin. Nobody adds, changes or deletes a conversation here: the transcript is
what staff review, exactly as its owner left it, and a deletion here would skip what the product's
own delete does (stopping the answer, its event log, telling the open tabs). The one exception: a
superuser deleting a user deletes everything of theirs, conversations included
(`UserAdmin.get_deleted_objects`; `conversations.deletion` forgets the rest). Every opening of a
transcript is recorded (`TranscriptRead`), and only superusers see that record, which nobody can
delete here (a deleted user is named in it by a pseudonym: `review.pseudonyms`).
"""

from __future__ import annotations

import datetime as dt

from django.contrib import admin, messages
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.utils import unquote
from django.contrib.admin.views.main import ChangeList
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import GroupAdmin as DjangoGroupAdmin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.models import Group
from django.db.models import Count, OuterRef, QuerySet, Subquery
from django.http import HttpRequest, HttpResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html

from conversations.actions import Refused, search_check
from conversations.models import Budget, Conversation, Message
from review import filters, views
from review.models import TranscriptRead
from review.transcripts import assistant_name

admin.site.site_header = "Agent Chat · staff"
admin.site.site_title = "Agent Chat staff"
admin.site.index_title = "Review and administration"


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


class DateBarChangeList(ChangeList):
    """Django's list, where the date bar's last year is a bad parameter rather than a 500.

    For `?created__year=9999` Django computes the next year (or month, or day), past the calendar.
    """

    def get_filters(self, request: HttpRequest) -> tuple:
        years = self.get_filters_params().get(f"{self.date_hierarchy}__year") if self.date_hierarchy else None
        if years and _year(years[-1]) >= dt.MAXYEAR:
            raise IncorrectLookupParameters(f"The date bar ends before the year {dt.MAXYEAR}.")
        return super().get_filters(request)


def _year(value: str) -> int:
    try:
        return int(value)
    except ValueError:
        return 0  # Django refuses it itself


class ReadOnlyAdmin(admin.ModelAdmin):
    """Nobody adds, changes or deletes these rows here, superusers included."""

    actions = None

    def get_changelist(self, request: HttpRequest, **kwargs: object) -> type[ChangeList]:
        return DateBarChangeList

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object | None = None) -> bool:
        return False


@admin.register(Conversation)
class ConversationAdmin(ReadOnlyAdmin):
    """Conversations with their owner, assistant, size and last status; each opens as its transcript."""

    list_display = ("title_or_id", "owner_link", "assistant", "message_count", "last_status", "updated")
    list_filter = (
        filters.OwnerFilter,
        filters.AssistantFilter,
        filters.ModelFilter,
        filters.AnswerStatusFilter,
        filters.ToolUsedFilter,
        filters.ToolErrorFilter,
        filters.FeedbackFilter,
        LastStatusFilter,
        "created",
    )
    search_fields = ("title",)
    search_help_text = "Words in the title or the owner's username; with view_message also in messages and tool steps."
    date_hierarchy = "created"
    list_per_page = 50

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

    def get_search_results(self, request: HttpRequest, queryset: QuerySet, search_term: str) -> tuple[QuerySet, bool]:
        """Searching inside the messages and tool steps needs the permission to read them; a search past
        the bounds every search has (`actions.search_check`) finds nothing and says why."""
        try:
            search_check(query=search_term)
        except Refused as refused:
            messages.error(request, refused.message)
            return queryset.none(), False
        in_messages = request.user.has_perm(views.VIEW_MESSAGE)
        return filters.search_conversations(queryset, search_term, in_messages=in_messages), False

    def get_urls(self) -> list[URLPattern]:
        usage = self.admin_site.admin_view(self.usage_view)
        return [path("usage/", usage, name="conversations_conversation_usage"), *super().get_urls()]

    def usage_view(self, request: HttpRequest) -> HttpResponse:
        return views.usage_view(self, request)

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict | None = None
    ) -> HttpResponse:
        """The transcript instead of a form (anything but a read is refused by the parent's checks)."""
        conversation = self.get_object(request, unquote(object_id))
        if request.method not in ("GET", "HEAD") or conversation is None:
            return super().change_view(request, object_id, form_url, extra_context)
        return views.transcript_view(self, request, conversation)

    @admin.display(description="title", ordering="title")
    def title_or_id(self, conversation: Conversation) -> str:
        return str(conversation)

    @admin.display(description="owner", ordering="owner__username")
    def owner_link(self, conversation: Conversation) -> str:
        url = reverse("admin:conversations_conversation_changelist")
        return format_html('<a href="{}?owner={}">{}</a>', url, conversation.owner_id, conversation.owner)

    @admin.display(description="assistant", ordering="assistant_id")
    def assistant(self, conversation: Conversation) -> str:
        return assistant_name(conversation.assistant_id)

    @admin.display(description="messages", ordering="message_count")
    def message_count(self, conversation: Conversation) -> int:
        return conversation.message_count

    @admin.display(description="last status", ordering="last_status")
    def last_status(self, conversation: Conversation) -> str:
        status = conversation.last_status
        if not status:
            return "—"
        return format_html('<span class="status-chip status-chip--{}">{}</span>', status, status)


@admin.register(TranscriptRead)
class TranscriptReadAdmin(ReadOnlyAdmin):
    """Who opened which conversation's transcript, and when: for superusers only."""

    list_display = ("read_at", "reader_username", "conversation_link", "owner_username", "messages_shown")
    list_filter = ("messages_shown", "read_at")
    search_fields = ("=reader_username", "=owner_username", "=conversation_number")
    date_hierarchy = "read_at"

    def has_module_permission(self, request: HttpRequest) -> bool:
        return request.user.is_active and request.user.is_superuser

    def has_view_permission(self, request: HttpRequest, obj: object | None = None) -> bool:
        return request.user.is_active and request.user.is_superuser

    @admin.display(description="conversation", ordering="conversation_number")
    def conversation_link(self, read: TranscriptRead) -> str:
        if read.conversation_id is None:
            return f"{read.conversation_number} (deleted)"
        url = reverse("admin:conversations_conversation_change", args=[read.conversation_id])
        return format_html('<a href="{}">{}</a>', url, read.conversation_number)


User = get_user_model()


class BudgetInline(admin.StackedInline):
    """A user's or a group's token budget (conversations/budgets.py): empty fields fall back."""

    model = Budget
    extra = 0
    max_num = 1
    can_delete = True
    verbose_name = "token budget"
    verbose_name_plural = "token budget (empty: the group's or the deployment's; 0: no limit)"


class UserBudgetInline(BudgetInline):
    fk_name = "user"
    fields = ("tokens_per_day", "tokens_per_month")


class GroupBudgetInline(BudgetInline):
    fk_name = "group"
    fields = ("tokens_per_day", "tokens_per_month")


class GroupAdmin(DjangoGroupAdmin):
    """Django's group admin with the group's token budget: each member's, unless their own says otherwise."""

    inlines = [GroupBudgetInline]


class UserAdmin(DjangoUserAdmin):
    """Django's user admin, where a superuser may delete a user with everything of theirs.

    Django refuses a deletion when anything it would take has an admin that refuses deleting it,
    and `ConversationAdmin` refuses everybody: so a user with a conversation could not be deleted
    at all. For a superuser, the user's conversations no longer stand in the way (the confirmation
    page still lists them); anyone else is refused as before. The user's own token budget is set here.
    """

    inlines = [UserBudgetInline]

    def get_deleted_objects(self, objs: object, request: HttpRequest) -> tuple:
        deleted, counts, perms_needed, protected = super().get_deleted_objects(objs, request)
        if request.user.is_active and request.user.is_superuser:
            perms_needed = perms_needed - {Conversation._meta.verbose_name}
        return deleted, counts, perms_needed, protected


if admin.site.is_registered(User):
    admin.site.unregister(User)
admin.site.register(User, UserAdmin)
if admin.site.is_registered(Group):
    admin.site.unregister(Group)
admin.site.register(Group, GroupAdmin)
