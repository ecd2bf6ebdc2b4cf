"""The admin's own review pages: a conversation's transcript, and usage over a period (with its CSV)."""

from __future__ import annotations

import csv
import datetime as dt
from typing import TYPE_CHECKING, Any

from django import forms
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone

from conversations.models import Conversation
from review.charts import Chart, Series, bar_chart, column_chart
from review.models import TranscriptRead
from review.transcripts import assistant_name, transcript_read_record, transcript_totals, transcript_turns
from review.usage import UsageReport, UsageRow, usage_csv_rows, usage_report

if TYPE_CHECKING:
    from django.contrib.admin import ModelAdmin

DEFAULT_DAYS = 30
MAX_DAYS = 366
PRESET_DAYS = (7, 30, 90)
TOP_ROWS = 8
PERIOD_TOO_LONG = f"A period is at most {MAX_DAYS} days."
PERIOD_BACKWARDS = "The period ends before it starts."
VIEW_MESSAGE = "conversations.view_message"


def transcript_view(model_admin: ModelAdmin, request: HttpRequest, conversation: Conversation) -> HttpResponse:
    """The conversation as it read in the chat; the opening is recorded. Messages need `view_message`."""
    if not model_admin.has_view_permission(request, conversation):
        raise PermissionDenied
    messages_shown = request.user.has_perm(VIEW_MESSAGE)
    transcript_read_record(reader=request.user, conversation=conversation, messages_shown=messages_shown)
    turns = transcript_turns(conversation=conversation) if messages_shown else []
    reads = None
    if request.user.is_superuser:
        reads = TranscriptRead.objects.filter(conversation_number=conversation.pk).count()
    context = {
        **model_admin.admin_site.each_context(request),
        "opts": model_admin.model._meta,
        "is_nav_sidebar_enabled": False,  # the whole width for reading
        "title": str(conversation),
        "conversation": conversation,
        "assistant_name": assistant_name(conversation.assistant_id),
        "messages_shown": messages_shown,
        "turns": turns,
        "totals": transcript_totals(turns),
        "reads": reads,
        "reads_url": reverse("admin:review_transcriptread_changelist"),
    }
    return TemplateResponse(request, "admin/conversations/conversation/transcript.html", context)


class UsagePeriodForm(forms.Form):
    """The period the usage page shows: from `start` to `end`, both days included."""

    start = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    end = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        start, end = self.period()
        if end < start:
            raise forms.ValidationError(PERIOD_BACKWARDS)
        if (end - start).days + 1 > MAX_DAYS:
            raise forms.ValidationError(PERIOD_TOO_LONG)
        return data

    def period(self) -> tuple[dt.date, dt.date]:
        """The chosen days; the last `DEFAULT_DAYS` days by default (or when the choice is invalid)."""
        data = getattr(self, "cleaned_data", {})
        end = data.get("end") or timezone.localdate()
        start = data.get("start") or end - dt.timedelta(days=DEFAULT_DAYS - 1)
        return start, end


def usage_view(model_admin: ModelAdmin, request: HttpRequest) -> HttpResponse:
    """Tokens, answers, rates and the slowest answers over a period: charts and tables, or `?format=csv`."""
    if not model_admin.has_view_permission(request):
        raise PermissionDenied
    form = UsagePeriodForm(request.GET or None)
    start, end = form.period() if form.is_valid() or not form.is_bound else UsagePeriodForm().period()
    if request.GET.get("format") == "csv":
        return usage_csv_response(start=start, end=end)
    report = usage_report(start=start, end=end)
    today = timezone.localdate()
    context = {
        **model_admin.admin_site.each_context(request),
        "opts": model_admin.model._meta,
        "is_nav_sidebar_enabled": False,
        "title": "Usage",
        "form": form,
        "report": report,
        "charts": usage_charts(report),
        "presets": [(days, today - dt.timedelta(days=days - 1), today) for days in PRESET_DAYS],
        "changelist_url": reverse("admin:conversations_conversation_changelist"),
    }
    return TemplateResponse(request, "admin/conversations/usage.html", context)


def usage_csv_response(*, start: dt.date, end: dt.date) -> HttpResponse:
    """The period's figures per day, user, assistant and model, as a CSV download."""
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="usage-{start.isoformat()}-{end.isoformat()}.csv"'
    csv.writer(response).writerows(usage_csv_rows(start=start, end=end))
    return response


def usage_charts(report: UsageReport) -> dict[str, Chart]:
    """The usage page's four charts."""
    days = [row for _, row in report.days]
    day_labels = [f"{day.day} {day:%b}" for day, _ in report.days]
    users, assistants = report.users[:TOP_ROWS], report.assistants[:TOP_ROWS]
    return {
        "tokens": column_chart(title="Tokens per day", labels=day_labels, series=_token_series(days)),
        "answers": column_chart(
            title="Answers per day",
            labels=day_labels,
            series=[
                Series("completed", "chart-s1", [r.answers - r.errors - r.stopped - r.interrupted for r in days]),
                Series("stopped", "chart-warn", [r.stopped for r in days]),
                Series("interrupted", "chart-muted", [r.interrupted for r in days]),
                Series("error", "chart-error", [r.errors for r in days]),
            ],
        ),
        "users": bar_chart(title="Tokens per user", labels=[r.label for r in users], series=_token_series(users)),
        "assistants": bar_chart(
            title="Tokens per assistant and model",
            labels=[r.full_label for r in assistants],
            series=_token_series(assistants),
        ),
    }


def _token_series(rows: list[UsageRow]) -> list[Series]:
    return [
        Series("input tokens", "chart-s1", [r.input_tokens for r in rows]),
        Series("output tokens", "chart-s2", [r.output_tokens for r in rows]),
    ]
