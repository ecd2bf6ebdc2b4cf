"""Filters for the staff review pages: durations, rates and large numbers as people read them."""

from __future__ import annotations

from django import template

from review.charts import compact_number

register = template.Library()


@register.filter
def seconds(milliseconds: int | float | None) -> str:
    """1234 -> `1.23 s`, 61000 -> `1 min 1 s`; `—` when unknown."""
    if milliseconds is None:
        return "—"
    value = milliseconds / 1000
    if value < 60:
        return f"{value:.2f} s"
    minutes, rest = divmod(round(value), 60)
    return f"{minutes} min {rest} s"


@register.filter
def percent(rate: float | None) -> str:
    """0.0123 -> `1.2%`."""
    return "—" if rate is None else f"{rate * 100:.1f}%"


@register.filter
def compact(value: int | float | None) -> str:
    """1234 -> `1.2k`."""
    return "—" if value is None else compact_number(value)


@register.filter
def grouped(value: int | None) -> str:
    """1234 -> `1,234`."""
    return "—" if value is None else f"{value:,}"
