"""Usage for staff: tokens, answers, error and stop rates and the slowest answers over a period.

An answer is an assistant message that finished (any status but `generating`); it counts on the
day it was asked (its `created`, in the site's time zone). Tokens are the sums of the answers'
stored `usage`. Every figure is summed by the database, on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterator
from dataclasses import dataclass

from django.db.models import BigIntegerField, Count, Q, QuerySet, Sum, Value
from django.db.models.fields.json import KT
from django.db.models.functions import Cast, Coalesce, TruncDate
from django.utils import timezone

from conversations.models import Message
from review.transcripts import assistant_name

SLOWEST = 10
CSV_HEADER = (
    "day",
    "user",
    "assistant",
    "model",
    "answers",
    "input_tokens",
    "output_tokens",
    "total_tokens",
    "errors",
    "stopped",
    "interrupted",
)


@dataclass(frozen=True)
class UsageRow:
    """The figures of one group of answers (a day, a user, an assistant and model, or all)."""

    label: str
    detail: str = ""
    """A second line for the label: the model of an assistant's row."""
    answers: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    errors: int = 0
    stopped: int = 0
    interrupted: int = 0

    @property
    def full_label(self) -> str:
        return f"{self.label} · {self.detail}" if self.detail else self.label

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    @property
    def error_rate(self) -> float:
        return self.errors / self.answers if self.answers else 0.0

    @property
    def stop_rate(self) -> float:
        return self.stopped / self.answers if self.answers else 0.0

    @property
    def interrupted_rate(self) -> float:
        return self.interrupted / self.answers if self.answers else 0.0


@dataclass(frozen=True)
class SlowAnswer:
    """One of the slowest answers, with where to read it."""

    message_id: int
    conversation_id: int
    conversation_title: str
    username: str
    model: str
    status: str
    created: dt.datetime
    first_token_ms: int | None
    duration_ms: int | None


@dataclass(frozen=True)
class Percentiles:
    """Median and 95th percentile of a timing, in milliseconds (None without data)."""

    p50: int | None
    p95: int | None


@dataclass(frozen=True)
class UsageReport:
    """Everything the usage page shows for one period."""

    start: dt.date
    end: dt.date
    totals: UsageRow
    days: list[tuple[dt.date, UsageRow]]
    users: list[UsageRow]
    assistants: list[UsageRow]
    first_token: Percentiles
    duration: Percentiles
    slowest_first_token: list[SlowAnswer]
    slowest_total: list[SlowAnswer]


def usage_report(*, start: dt.date, end: dt.date, slowest: int = SLOWEST) -> UsageReport:
    """The usage of the answers asked from `start` to `end`, both days included."""
    answers = answers_in_period(start=start, end=end)
    by_day = {
        row["day"]: _row(str(row["day"]), row)
        for row in answers.annotate(day=TruncDate("created")).values("day").annotate(**_figures()).order_by("day")
    }
    days = [start + dt.timedelta(days=n) for n in range((end - start).days + 1)]
    users = answers.values("conversation__owner__username").annotate(**_figures()).order_by()
    assistants = answers.values("conversation__assistant_id", "model").annotate(**_figures()).order_by()
    return UsageReport(
        start=start,
        end=end,
        totals=_row("all", answers.aggregate(**_figures())),
        days=[(day, by_day.get(day) or UsageRow(label=str(day))) for day in days],
        users=_biggest_first(_row(r["conversation__owner__username"], r) for r in users),
        assistants=_biggest_first(
            _row(assistant_name(r["conversation__assistant_id"]), r, detail=r["model"] or "unknown model")
            for r in assistants
        ),
        first_token=_percentiles(answers, "first_token_ms"),
        duration=_percentiles(answers, "duration_ms"),
        slowest_first_token=_slowest(answers, "first_token_ms", slowest),
        slowest_total=_slowest(answers, "duration_ms", slowest),
    )


def usage_csv_rows(*, start: dt.date, end: dt.date) -> Iterator[tuple[object, ...]]:
    """The header, then one row per day, user, assistant and model with answers in the period."""
    yield CSV_HEADER
    grouped = (
        answers_in_period(start=start, end=end)
        .annotate(day=TruncDate("created"))
        .values("day", "conversation__owner__username", "conversation__assistant_id", "model")
        .annotate(**_figures())
        .order_by("day", "conversation__owner__username", "conversation__assistant_id", "model")
    )
    for r in grouped:
        yield (
            r["day"].isoformat(),
            r["conversation__owner__username"],
            r["conversation__assistant_id"],
            r["model"],
            r["answers"],
            r["input_tokens"],
            r["output_tokens"],
            r["input_tokens"] + r["output_tokens"],
            r["errors"],
            r["stopped"],
            r["interrupted"],
        )


def answers_in_period(*, start: dt.date, end: dt.date) -> QuerySet[Message]:
    """The finished answers asked from `start` to `end` (days in the site's time zone, both included)."""
    zone = timezone.get_current_timezone()
    since = dt.datetime.combine(start, dt.time.min, tzinfo=zone)
    until = dt.datetime.combine(end + dt.timedelta(days=1), dt.time.min, tzinfo=zone)
    return Message.objects.filter(role=Message.Role.ASSISTANT, created__gte=since, created__lt=until).exclude(
        status=Message.Status.GENERATING
    )


def _usage(key: str) -> Cast:
    return Cast(KT(f"usage__{key}"), BigIntegerField())


def _figures() -> dict[str, object]:
    return {
        "answers": Count("id"),
        "input_tokens": Coalesce(Sum(_usage("input_tokens")), Value(0), output_field=BigIntegerField()),
        "output_tokens": Coalesce(Sum(_usage("output_tokens")), Value(0), output_field=BigIntegerField()),
        "errors": Count("id", filter=Q(status=Message.Status.ERROR)),
        "stopped": Count("id", filter=Q(status=Message.Status.CANCELLED)),
        "interrupted": Count("id", filter=Q(status=Message.Status.INTERRUPTED)),
    }


def _row(label: str, figures: dict[str, object], *, detail: str = "") -> UsageRow:
    return UsageRow(
        label=label,
        detail=detail,
        answers=int(figures["answers"] or 0),
        input_tokens=int(figures["input_tokens"] or 0),
        output_tokens=int(figures["output_tokens"] or 0),
        errors=int(figures["errors"] or 0),
        stopped=int(figures["stopped"] or 0),
        interrupted=int(figures["interrupted"] or 0),
    )


def _biggest_first(rows: Iterator[UsageRow]) -> list[UsageRow]:
    return sorted(rows, key=lambda row: (-row.total_tokens, -row.answers, row.label))


def _percentiles(answers: QuerySet[Message], field: str) -> Percentiles:
    values = sorted(answers.filter(**{f"{field}__isnull": False}).values_list(field, flat=True))
    if not values:
        return Percentiles(p50=None, p95=None)
    return Percentiles(p50=_nearest_rank(values, 50), p95=_nearest_rank(values, 95))


def _nearest_rank(ordered: list[int], percent: int) -> int:
    return ordered[max(0, math.ceil(len(ordered) * percent / 100) - 1)]


def _slowest(answers: QuerySet[Message], field: str, limit: int) -> list[SlowAnswer]:
    slow = (
        answers.filter(**{f"{field}__isnull": False})
        .select_related("conversation__owner")
        .order_by(f"-{field}", "-id")[:limit]
    )
    return [
        SlowAnswer(
            message_id=m.pk,
            conversation_id=m.conversation_id,
            conversation_title=str(m.conversation),
            username=m.conversation.owner.get_username(),
            model=m.model,
            status=m.status,
            created=m.created,
            first_token_ms=m.first_token_ms,
            duration_ms=m.duration_ms,
        )
        for m in slow
    ]
