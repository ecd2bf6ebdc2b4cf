"""The admin's own review pages: a conversation's transcript, and usage over a period (with its CSV)."""

from __future__ import annotations

import csv
import datetime as dt
from typing import TYPE_CHECKING, Any

from django import forms
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone

from conversations.budgets import budgets_in_use
from conversations.models import Conversation
from review.charts import Chart, Series, bar_chart, column_chart
from review.models import TranscriptRead
from review.transcripts import assistant_name, transcript_read_record, transcript_totals, transcript_turns
from review.usage import UsageReport, UsageRow, usage_csv_rows, usage_report

if TYPE_CHECKING:
    from django.contrib.admin import ModelAdmin

DEFAULT_DAYS = 30
MAX_DAYS = 366
FIRST_DAY = dt.date(2000, 1, 1)
LAST_DAY = dt.date(2099, 12, 31)
"""The days a period may hold: far from the calendar's ends, where a day's end or a time zone overflows."""
PRESET_DAYS = (7, 30, 90)
TOP_ROWS = 8
PERIOD_TOO_LONG = f"A period is at most {MAX_DAYS} days."
PERIOD_BACKWARDS = "The period ends before it starts."
DATE_MALFORMED = "The {which} date is not a date: write it as YYYY-MM-DD."
DATE_OUT_OF_RANGE = f"The {{which}} date is not between {FIRST_DAY.isoformat()} and {LAST_DAY.isoformat()}."
SPREADSHEET_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
"""What a spreadsheet reads as the start of a formula, as OWASP lists it ("CSV Injection")."""
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


def day_field(which: str) -> forms.DateField:
    """A day of the period (`which` is "start" or "end"), blank for the default."""
    return forms.DateField(
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}),
        error_messages={"invalid": DATE_MALFORMED.format(which=which)},
    )


class UsagePeriodForm(forms.Form):
    """The period the usage page shows: from `start` to `end`, both days included."""

    start = day_field("start")
    end = day_field("end")

    def clean_start(self) -> dt.date | None:
        return _day_in_range(self.cleaned_data["start"], which="start")

    def clean_end(self) -> dt.date | None:
        return _day_in_range(self.cleaned_data["end"], which="end")

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if not {"start", "end"} <= data.keys():
            return data  # a day is already refused
        start, end = self.period()
        if end < start:
            raise forms.ValidationError(PERIOD_BACKWARDS)
        if (end - start).days + 1 > MAX_DAYS:
            raise forms.ValidationError(PERIOD_TOO_LONG)
        return data

    def period(self) -> tuple[dt.date, dt.date]:
        """The chosen days; the last `DEFAULT_DAYS` days by default."""
        data = getattr(self, "cleaned_data", {})
        end = data.get("end") or timezone.localdate()
        start = data.get("start") or end - dt.timedelta(days=DEFAULT_DAYS - 1)
        return start, end

    def problem(self) -> str:
        """What is wrong with the chosen period, in one text."""
        return " ".join(dict.fromkeys(str(error) for errors in self.errors.values() for error in errors))


def _day_in_range(day: dt.date | None, *, which: str) -> dt.date | None:
    if day is not None and not FIRST_DAY <= day <= LAST_DAY:
        raise forms.ValidationError(DATE_OUT_OF_RANGE.format(which=which))
    return day


def usage_view(model_admin: ModelAdmin, request: HttpRequest) -> HttpResponse:
    """Tokens, answers, rates and the slowest answers over a period: charts and tables, or `?format=csv`.

    A period it cannot show (a malformed or out-of-range day, backwards, too long) is a 400 saying why.
    """
    if not model_admin.has_view_permission(request):
        raise PermissionDenied
    form = UsagePeriodForm(request.GET)
    as_csv = request.GET.get("format") == "csv"
    if not form.is_valid():
        if as_csv:
            return HttpResponseBadRequest(form.problem(), content_type="text/plain; charset=utf-8")
        return usage_page(model_admin, request, report=None, problem=form.problem(), status=400)
    start, end = form.period()
    if as_csv:
        return usage_csv_response(start=start, end=end)
    return usage_page(model_admin, request, report=usage_report(start=start, end=end))


def usage_page(
    model_admin: ModelAdmin, request: HttpRequest, *, report: UsageReport | None, problem: str = "", status: int = 200
) -> TemplateResponse:
    """The usage page: the report's figures, or instead the `problem` with the period asked for."""
    today = timezone.localdate()
    start, end = (report.start, report.end) if report is not None else UsagePeriodForm().period()
    context = {
        **model_admin.admin_site.each_context(request),
        "opts": model_admin.model._meta,
        "is_nav_sidebar_enabled": False,
        "title": "Usage",
        "problem": problem,
        "start": start,
        "end": end,
        "report": report,
        "charts": usage_charts(report) if report is not None else None,
        "budgets": budgets_in_use(now=dt.datetime.now(dt.UTC)) if report is not None else [],
        "presets": [(days, today - dt.timedelta(days=days - 1), today) for days in PRESET_DAYS],
        "changelist_url": reverse("admin:conversations_conversation_changelist"),
    }
    return TemplateResponse(request, "admin/conversations/usage.html", context, status=status)


def usage_csv_response(*, start: dt.date, end: dt.date) -> HttpResponse:
    """The period's figures per day, user, assistant and model, as a CSV download."""
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="usage-{start.isoformat()}-{end.isoformat()}.csv"'
    rows = usage_csv_rows(start=start, end=end)
    csv.writer(response).writerows([spreadsheet_safe(cell) for cell in row] for row in rows)
    return response


def spreadsheet_safe(cell: object) -> object:
    """A text cell a spreadsheet would run as a formula (`+1+1`, `=HYPERLINK(...)`) behind a `'`.

    Only text: the number columns hold the integers the database summed, which a spreadsheet reads as
    numbers, a negative one included, so they are written as they are.
    """
    if isinstance(cell, str) and cell.startswith(SPREADSHEET_FORMULA_STARTS):
        return f"'{cell}"
    return cell


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
