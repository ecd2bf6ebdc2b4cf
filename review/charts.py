"""Small charts as inline SVG, drawn on the server: stacked columns over days, stacked bars per name.

No script and nothing fetched: the page's stylesheet colours them (classes `chart-s1`, `chart-s2`,
...), so they follow the admin's light or dark theme. Every column and bar has a `<title>` with
its exact figures, which browsers show on hover and screen readers read.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

WIDTH = 600
COLUMN_HEIGHT = 180
AXIS_LEFT = 44
AXIS_BOTTOM = 20
TOP = 8
BAR_ROW = 24
LABEL_WIDTH = 150
MAX_LABEL_CHARS = 22
MAX_X_LABELS = 8


@dataclass(frozen=True)
class Series:
    """One stacked part of every column or bar: its name (for the legend), colour class and values."""

    name: str
    css: str
    values: Sequence[int]


@dataclass(frozen=True)
class Chart:
    """A chart ready for a page: its SVG and the series, for the legend."""

    svg: SafeString
    series: Sequence[Series]


def compact_number(value: float) -> str:
    """1234 -> `1.2k`, 3400000 -> `3.4M`; small numbers as they are."""
    for size, suffix in ((1_000_000_000, "G"), (1_000_000, "M"), (1_000, "k")):
        if abs(value) >= size:
            shown = f"{value / size:.1f}".removesuffix(".0")
            return f"{shown}{suffix}"
    return f"{value:g}"


def nice_ceiling(value: float) -> float:
    """The smallest of 1, 2, 2.5, 5 times a power of ten that is at least `value` (1 for nothing)."""
    if value <= 0:
        return 1
    power = 10 ** math.floor(math.log10(value))
    return next(step * power for step in (1, 2, 2.5, 5, 10) if step * power >= value)


def column_chart(*, title: str, labels: Sequence[str], series: Sequence[Series]) -> Chart:
    """Stacked columns, one per label (a day), with a value axis and some of the labels below."""
    count = max(1, len(labels))
    totals = [sum(s.values[i] for s in series) for i in range(len(labels))]
    top = nice_ceiling(max(totals, default=0))
    plot_width, plot_height = WIDTH - AXIS_LEFT, COLUMN_HEIGHT - AXIS_BOTTOM - TOP
    slot = plot_width / count
    parts = [_grid(top, plot_height)]
    for i, label in enumerate(labels):
        x, y = AXIS_LEFT + i * slot + slot * 0.15, TOP + plot_height
        for s in series:
            height = plot_height * s.values[i] / top
            y -= height
            tip = f"{label}: {s.name} {s.values[i]:,}"
            parts.append(_rect(s.css, x, y, slot * 0.7, height, tip))
    every = math.ceil(count / MAX_X_LABELS)
    parts += [
        _text("chart-axis", AXIS_LEFT + (i + 0.5) * slot, COLUMN_HEIGHT - 5, label, anchor="middle")
        for i, label in enumerate(labels)
        if i % every == 0
    ]
    return Chart(svg=_svg(title, COLUMN_HEIGHT, parts), series=series)


def bar_chart(*, title: str, labels: Sequence[str], series: Sequence[Series]) -> Chart:
    """Stacked horizontal bars, one row per label (a user, an assistant), the total at the end."""
    totals = [sum(s.values[i] for s in series) for i in range(len(labels))]
    top = max(totals, default=0) or 1
    bar_width = WIDTH - LABEL_WIDTH - 56
    height = max(1, len(labels)) * BAR_ROW + 4
    parts: list[str] = []
    for row, label in enumerate(labels):
        y, x = 4 + row * BAR_ROW, LABEL_WIDTH
        parts.append(_text("chart-label", LABEL_WIDTH - 8, y + 14, _shorten(label), anchor="end", tip=label))
        for s in series:
            width = bar_width * s.values[row] / top
            parts.append(_rect(s.css, x, y + 3, width, BAR_ROW - 8, f"{label}: {s.name} {s.values[row]:,}"))
            x += width
        parts.append(_text("chart-value", x + 6, y + 14, compact_number(totals[row])))
    return Chart(svg=_svg(title, height, parts), series=series)


def _grid(top: float, plot_height: float) -> str:
    lines = []
    for step in range(5):
        value = top * step / 4
        y = TOP + plot_height - plot_height * step / 4
        lines.append(f'<line class="chart-grid" x1="{AXIS_LEFT}" x2="{WIDTH}" y1="{y:.1f}" y2="{y:.1f}"/>')
        lines.append(_text("chart-axis", AXIS_LEFT - 6, y + 4, compact_number(value), anchor="end"))
    return "".join(lines)


def _rect(css: str, x: float, y: float, width: float, height: float, tip: str) -> str:
    if height <= 0 or width <= 0:
        return ""
    return (
        f'<rect class="{css}" x="{x:.1f}" y="{y:.1f}" width="{width:.1f}" height="{height:.1f}" rx="2">'
        f"<title>{escape(tip)}</title></rect>"
    )


def _text(css: str, x: float, y: float, text: str, *, anchor: str = "start", tip: str | None = None) -> str:
    title = f"<title>{escape(tip)}</title>" if tip and tip != text else ""
    return f'<text class="{css}" x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}">{title}{escape(text)}</text>'


def _svg(title: str, height: int, parts: list[str]) -> SafeString:
    body = "".join(parts)
    return mark_safe(  # every text above went through escape()
        f'<svg class="chart" viewBox="0 0 {WIDTH} {height}" role="img" aria-label="{escape(title)}" '
        f'xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>{body}</svg>'
    )


def _shorten(label: str) -> str:
    return label if len(label) <= MAX_LABEL_CHARS else label[: MAX_LABEL_CHARS - 1] + "…"
