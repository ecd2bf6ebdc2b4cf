"""Token budgets: how many tokens a user may spend per day and per month (UTC), and what is left.

A user's limits come from their own `Budget`, else the most generous of their groups' budgets, else
`QUOTA_TOKENS_PER_DAY` / `QUOTA_TOKENS_PER_MONTH`; 0 is no limit, field by field.

What counts: the stored usage of the user's answers asked in the period (input and output tokens;
a stopped or interrupted answer counts what the model reported, or an estimate marked
`"estimated": true`). An answer still being written counts as `QUOTA_RUN_RESERVE_TOKENS` until it
ends. A run starts only when its own reserve still fits beside what is used and reserved, so sends
at the same moment (checked one by one under the owner's lock, on any process) never promise more
than the budget. An answer that ends up using more than its reserve may take the total past the
limit by that excess; the next send is then refused until the period renews.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from math import ceil

from django.conf import settings
from django.db.models import BigIntegerField, Count, Q, Sum, Value
from django.db.models.fields.json import KT
from django.db.models.functions import Cast, Coalesce

from conversations.models import Budget, Message

DAY = "day"
MONTH = "month"
IN_FLIGHT_RETRY_SECONDS = 5
NOTICE_BELOW = 0.2
"""The page shows what is left once less than this share of a limit remains."""

EXHAUSTED = "You have used {period_text} token budget ({used:,} of {limit:,} tokens); it renews in {wait}."
RESERVED = (
    "Your answers being written may use the rest of {period_text} token budget ({limit:,} tokens); "
    "send again once they have finished."
)
PERIOD_TEXT = {DAY: "today's", MONTH: "this month's"}


class QuotaExceeded(Exception):
    """The user's budget has no room for another answer; `retry_after` seconds until it may."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after


@dataclass(frozen=True)
class Limits:
    """Tokens per day and per month; 0 is no limit."""

    per_day: int
    per_month: int

    @property
    def any(self) -> bool:
        return bool(self.per_day or self.per_month)


@dataclass(frozen=True)
class Period:
    """One budget period as `GET /api/me` and the page show it."""

    name: str
    limit: int
    used: int
    reserved: int
    resets_at: dt.datetime

    @property
    def remaining(self) -> int | None:
        """Tokens left (never below 0); None without a limit."""
        return max(0, self.limit - self.used) if self.limit else None

    @property
    def low(self) -> bool:
        """Less than `NOTICE_BELOW` of the limit is left."""
        return bool(self.limit) and (self.remaining or 0) < self.limit * NOTICE_BELOW

    def as_dict(self) -> dict[str, object]:
        return {
            "limit": self.limit or None,
            "used": self.used,
            "remaining": self.remaining,
            "in_progress": self.reserved,
            "resets_at": self.resets_at.isoformat().replace("+00:00", "Z"),
        }


def deployment_budget_set() -> bool:
    """Whether the deployment limits everyone (`QUOTA_TOKENS_PER_DAY` or `_MONTH`): without that, only
    users with a `Budget` of their own or of a group have limits."""
    return bool(settings.QUOTA_TOKENS_PER_DAY or settings.QUOTA_TOKENS_PER_MONTH)


def limits_for(user_id: int) -> Limits:
    """The user's limits: their own budget's fields, else their groups' (the most generous), else the
    deployment's. One query."""
    return limits_for_users([user_id])[user_id]


def limits_for_users(user_ids: list[int]) -> dict[int, Limits]:
    """`limits_for` of many users in one query."""
    rows = Budget.objects.filter(Q(user_id__in=user_ids) | Q(group__user__id__in=user_ids)).values(
        "user_id", "group__user__id", "tokens_per_day", "tokens_per_month"
    )
    own: dict[int, dict] = {}
    groups: dict[int, list[dict]] = {}
    for row in rows:
        if row["user_id"] is not None:
            own[row["user_id"]] = row
        else:
            groups.setdefault(row["group__user__id"], []).append(row)
    return {
        user_id: Limits(
            per_day=_pick(own.get(user_id), groups.get(user_id, []), "tokens_per_day", settings.QUOTA_TOKENS_PER_DAY),
            per_month=_pick(
                own.get(user_id), groups.get(user_id, []), "tokens_per_month", settings.QUOTA_TOKENS_PER_MONTH
            ),
        )
        for user_id in user_ids
    }


def _pick(own: dict | None, groups: list[dict], field: str, default: int) -> int:
    if own is not None and own[field] is not None:
        return int(own[field])
    values = [int(row[field]) for row in groups if row[field] is not None]
    if values:
        return 0 if 0 in values else max(values)
    return int(default)


def period_starts(now: dt.datetime) -> tuple[dt.datetime, dt.datetime, dt.datetime, dt.datetime]:
    """The current day's and month's starts and their next renewals, in UTC."""
    now = now.astimezone(dt.UTC)
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    month = day.replace(day=1)
    next_month = (month + dt.timedelta(days=32)).replace(day=1)
    return day, day + dt.timedelta(days=1), month, next_month


def periods(*, user_id: int, limits: Limits, now: dt.datetime) -> list[Period]:
    """The user's day and month: used (finished answers) and reserved (answers being written). One query."""
    day, next_day, month, next_month = period_starts(now)
    tokens = _usage("input_tokens") + _usage("output_tokens")
    finished = ~Q(status=Message.Status.GENERATING)
    figures = Message.objects.filter(
        conversation__owner_id=user_id, role=Message.Role.ASSISTANT, created__gte=min(day, month)
    ).aggregate(
        day=Coalesce(Sum(tokens, filter=finished & Q(created__gte=day)), Value(0), output_field=BigIntegerField()),
        month=Coalesce(Sum(tokens, filter=finished & Q(created__gte=month)), Value(0), output_field=BigIntegerField()),
        day_running=Count("id", filter=Q(status=Message.Status.GENERATING, created__gte=day)),
        month_running=Count("id", filter=Q(status=Message.Status.GENERATING, created__gte=month)),
    )
    reserve = settings.QUOTA_RUN_RESERVE_TOKENS
    return [
        Period(DAY, limits.per_day, int(figures["day"]), figures["day_running"] * reserve, next_day),
        Period(MONTH, limits.per_month, int(figures["month"]), figures["month_running"] * reserve, next_month),
    ]


def _usage(key: str) -> Coalesce:
    return Coalesce(Cast(KT(f"usage__{key}"), BigIntegerField()), Value(0), output_field=BigIntegerField())


@dataclass(frozen=True)
class BudgetUse:
    """One user's spending against their limits, for the staff's usage page."""

    username: str
    day_used: int
    day_limit: int
    month_used: int
    month_limit: int

    @property
    def share(self) -> float:
        """The larger share of a limit used (1.0 = all of it)."""
        shares = [
            used / limit
            for used, limit in ((self.day_used, self.day_limit), (self.month_used, self.month_limit))
            if limit
        ]
        return max(shares, default=0.0)

    @property
    def percent(self) -> int:
        return round(self.share * 100)


def budgets_in_use(*, now: dt.datetime, limit: int = 50) -> list[BudgetUse]:
    """The `limit` users nearest to (or past) a limit among those with answers this month, most
    spent first. Two queries."""
    day, _next_day, month, _next_month = period_starts(now)
    tokens = _usage("input_tokens") + _usage("output_tokens")
    spent = list(
        Message.objects.filter(role=Message.Role.ASSISTANT, created__gte=min(day, month))
        .exclude(status=Message.Status.GENERATING)
        .values("conversation__owner_id", "conversation__owner__username")
        .annotate(
            day=Coalesce(Sum(tokens, filter=Q(created__gte=day)), Value(0), output_field=BigIntegerField()),
            month=Coalesce(Sum(tokens, filter=Q(created__gte=month)), Value(0), output_field=BigIntegerField()),
        )
        .order_by()
    )
    limits = limits_for_users([row["conversation__owner_id"] for row in spent])
    uses = [
        BudgetUse(
            username=row["conversation__owner__username"],
            day_used=int(row["day"]),
            day_limit=limits[row["conversation__owner_id"]].per_day,
            month_used=int(row["month"]),
            month_limit=limits[row["conversation__owner_id"]].per_month,
        )
        for row in spent
        if limits[row["conversation__owner_id"]].any
    ]
    return sorted(uses, key=lambda use: (-use.share, use.username))[:limit]


def budget_check(*, user_id: int, now: dt.datetime) -> None:
    """Raise QuotaExceeded unless another answer's reserve fits in each of the user's limited periods.
    Call it under the owner's lock, in the transaction that starts the run (see `services`)."""
    limits = limits_for(user_id)
    if not limits.any:
        return
    refusal: QuotaExceeded | None = None
    for period in periods(user_id=user_id, limits=limits, now=now):
        if not period.limit:
            continue
        need = min(settings.QUOTA_RUN_RESERVE_TOKENS, period.limit)
        if period.used + period.reserved + need <= period.limit:
            continue
        text = PERIOD_TEXT[period.name]
        if period.used + need > period.limit:  # spent: wait for the period to renew
            wait = max(1, ceil((period.resets_at - now).total_seconds()))
            message = EXHAUSTED.format(
                period_text=text, used=period.used, limit=period.limit, wait=_duration_text(wait)
            )
        else:  # held by answers being written: wait for them
            wait = IN_FLIGHT_RETRY_SECONDS
            message = RESERVED.format(period_text=text, limit=period.limit)
        if refusal is None or wait > refusal.retry_after:
            refusal = QuotaExceeded(message, wait)
    if refusal is not None:
        raise refusal


def budget_status(*, user_id: int, now: dt.datetime) -> dict[str, object]:
    """What `GET /api/me`, the socket's `budget` frame and the page say of the user's budget."""
    limits = limits_for(user_id)
    found = periods(user_id=user_id, limits=limits, now=now) if limits.any else _unlimited(now)
    return {period.name: period.as_dict() for period in found} | {"low": _low_notice(found)}


def _unlimited(now: dt.datetime) -> list[Period]:
    _day, next_day, _month, next_month = period_starts(now)
    return [Period(DAY, 0, 0, 0, next_day), Period(MONTH, 0, 0, 0, next_month)]


def _low_notice(found: list[Period]) -> dict[str, object] | None:
    """The period with the smallest share left when under `NOTICE_BELOW`, for the page's notice."""
    low = [period for period in found if period.low]
    if not low:
        return None
    period = min(low, key=lambda p: (p.remaining or 0) / p.limit)
    return {"period": period.name, "remaining": period.remaining, "limit": period.limit}


def _duration_text(seconds: int) -> str:
    """`3 h 12 min`, `12 min`, `40 s`, `2 days 3 h`."""
    minutes, secs = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    if days:
        return f"{days} day{'s' if days > 1 else ''} {hours} h" if hours else f"{days} day{'s' if days > 1 else ''}"
    if hours:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    if minutes:
        return f"{minutes} min"
    return f"{secs} s"
