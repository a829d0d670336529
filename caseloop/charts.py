"""Server-made SVG charts: line charts with axes and a legend, and horizontal grouped bars.

Pure Python (no Django): each function returns an SVG string whose every piece of text is
escaped, so a view may mark it safe. The charts are images with a title and a description
(``role="img"``, ``aria-labelledby``) that states the numbers, so they read without sight too;
pages that show one should show the same numbers in a table nearby.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

__all__ = ["Bar", "Series", "bar_chart", "line_chart", "nice_ticks"]

# Colour-blind-safe palette (Okabe-Ito), dark enough on white for lines and bars.
PALETTE = ("#0b5cad", "#d55e00", "#009e73", "#cc79a7", "#56b4e9", "#e69f00", "#000000", "#7a5195")
_ids = itertools.count(1)


@dataclass(frozen=True, slots=True)
class Series:
    """A named line: (x, y) points in x order. Non-finite y values are skipped."""

    label: str
    points: Sequence[tuple[float, float]]


@dataclass(frozen=True, slots=True)
class Bar:
    """One row of a bar chart: a label and one value per series (None: no bar)."""

    label: str
    values: Sequence[float | None]


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """About ``count`` round tick values covering [low, high] (1, 2, 2.5 or 5 times a power of ten)."""
    if not (math.isfinite(low) and math.isfinite(high)):
        raise ValueError("tick bounds must be finite")
    if high < low:
        low, high = high, low
    if high == low:
        pad = abs(high) * 0.1 or 1.0
        low, high = low - pad, high + pad
    raw = (high - low) / max(1, count)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    start = math.floor(low / step) * step
    ticks = []
    value = start
    while value < high + step * 0.5:
        ticks.append(round(value, 10))
        value += step
    if ticks[-1] < high:
        ticks.append(round(value, 10))
    return ticks


def _fmt(value: float) -> str:
    if value == 0:
        return "0"
    magnitude = abs(value)
    if magnitude >= 10_000:
        return f"{value:,.0f}"
    if magnitude >= 100:
        return f"{value:.0f}"
    if magnitude >= 1:
        return f"{value:.2f}".rstrip("0").rstrip(".")
    return f"{value:.3f}".rstrip("0").rstrip(".")


def _open(width: int, height: int, title: str, description: str, css_class: str) -> str:
    uid = f"chart{next(_ids)}"
    return (
        f'<svg class="{escape(css_class)}" viewBox="0 0 {width} {height}" role="img" '
        f'aria-labelledby="{uid}-t {uid}-d" xmlns="http://www.w3.org/2000/svg">'
        f'<title id="{uid}-t">{escape(title)}</title><desc id="{uid}-d">{escape(description)}</desc>'
    )


def _legend(labels: Sequence[str], x: float, y: float, max_width: float) -> list[str]:
    parts, cx, cy = [], x, y
    for index, label in enumerate(labels):
        text_width = 7 * len(label) + 26
        if cx + text_width > x + max_width and cx > x:
            cx, cy = x, cy + 16
        colour = PALETTE[index % len(PALETTE)]
        parts.append(f'<rect x="{cx:.1f}" y="{cy - 9:.1f}" width="12" height="10" fill="{colour}"/>')
        parts.append(f'<text x="{cx + 16:.1f}" y="{cy:.1f}">{escape(label)}</text>')
        cx += text_width
    return parts


def _legend_rows(labels: Sequence[str], max_width: float) -> int:
    rows, used = 1, 0.0
    for label in labels:
        text_width = 7 * len(label) + 26
        if used + text_width > max_width and used > 0:
            rows, used = rows + 1, 0.0
        used += text_width
    return rows


def line_chart(
    series: Sequence[Series],
    *,
    title: str,
    x_label: str,
    y_label: str,
    width: int = 720,
    height: int = 280,
    y_min: float | None = None,
    y_max: float | None = None,
) -> str:
    """A line chart of ``series`` with x and y axes, round ticks, axis labels and a legend.

    ``y_min``/``y_max`` widen the y range (e.g. 0..1 for rates); the data always fit inside.
    With no finite point the chart says so instead of drawing axes over nothing."""
    clean = [
        Series(s.label, [(float(x), float(y)) for x, y in s.points if math.isfinite(x) and math.isfinite(y)])
        for s in series
    ]
    points = [p for s in clean for p in s.points]
    labels = [s.label for s in clean]
    summary = "; ".join(
        f"{s.label}: {len(s.points)} points"
        + (f", last {_fmt(s.points[-1][1])} at {x_label} {_fmt(s.points[-1][0])}" if s.points else "")
        for s in clean
    )
    head = _open(width, height, title, f"{y_label} by {x_label}. {summary}", "chart line-chart")
    if not points:
        return (
            head + f'<text x="{width / 2:.0f}" y="{height / 2:.0f}" text-anchor="middle">'
            "No data yet</text></svg>"
        )
    left, right, top = 58, 16, 12
    legend_rows = _legend_rows(labels, width - left - right)
    bottom = 40 + 16 * legend_rows
    plot_w, plot_h = width - left - right, height - top - bottom
    xs, ys = [x for x, _ in points], [y for _, y in points]
    low_y = min(ys) if y_min is None else min(y_min, min(ys))
    high_y = max(ys) if y_max is None else max(y_max, max(ys))
    y_ticks = nice_ticks(low_y, high_y)
    x_ticks = nice_ticks(min(xs), max(xs), count=6)
    if all(float(x).is_integer() for x in xs):
        x_ticks = [t for t in x_ticks if float(t).is_integer()] or x_ticks
    y0, y1, x0, x1 = y_ticks[0], y_ticks[-1], x_ticks[0], x_ticks[-1]

    def sx(x: float) -> float:
        return left + (x - x0) / ((x1 - x0) or 1) * plot_w

    def sy(y: float) -> float:
        return top + plot_h - (y - y0) / ((y1 - y0) or 1) * plot_h

    parts = [head, '<g class="grid" stroke="#e4e7eb" stroke-width="1">']
    parts += [f'<line x1="{left}" x2="{left + plot_w}" y1="{sy(t):.1f}" y2="{sy(t):.1f}"/>' for t in y_ticks]
    parts.append("</g>")
    parts.append(
        f'<g class="axes" stroke="#545c66" stroke-width="1">'
        f'<line x1="{left}" x2="{left}" y1="{top}" y2="{top + plot_h}"/>'
        f'<line x1="{left}" x2="{left + plot_w}" y1="{top + plot_h}" y2="{top + plot_h}"/></g>'
    )
    for t in y_ticks:
        parts.append(f'<text x="{left - 6}" y="{sy(t) + 4:.1f}" text-anchor="end">{escape(_fmt(t))}</text>')
    for t in x_ticks:
        parts.append(
            f'<text x="{sx(t):.1f}" y="{top + plot_h + 15}" text-anchor="middle">{escape(_fmt(t))}</text>'
        )
    parts.append(
        f'<text x="{left + plot_w / 2:.0f}" y="{top + plot_h + 30}" text-anchor="middle" '
        f'class="axis-label">{escape(x_label)}</text>'
    )
    parts.append(
        f'<text transform="translate(14 {top + plot_h / 2:.0f}) rotate(-90)" text-anchor="middle" '
        f'class="axis-label">{escape(y_label)}</text>'
    )
    for index, s in enumerate(clean):
        if not s.points:
            continue
        colour = PALETTE[index % len(PALETTE)]
        path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in s.points)
        width_px = 2.5 if index == 0 else 1.75
        parts.append(
            f'<polyline fill="none" stroke="{colour}" stroke-width="{width_px}" points="{path}">'
            f"<title>{escape(s.label)}</title></polyline>"
        )
        if len(s.points) == 1:
            x, y = s.points[0]
            parts.append(f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="3" fill="{colour}"/>')
    parts += _legend(labels, left, top + plot_h + 48, plot_w)
    parts.append("</svg>")
    return "".join(parts)


def bar_chart(
    bars: Sequence[Bar],
    *,
    series: Sequence[str],
    title: str,
    value_label: str,
    width: int = 720,
    value_min: float | None = None,
    value_max: float | None = None,
    highlight: str | None = None,
) -> str:
    """Horizontal grouped bars: one row per :class:`Bar`, one bar per series within the row, a value
    axis with round ticks, the value printed at each bar's end, and a legend when there are several
    series. ``highlight`` names a row label drawn in bold (e.g. the version under evaluation)."""
    values = [v for bar in bars for v in bar.values if v is not None and math.isfinite(v)]
    summary = "; ".join(
        f"{bar.label}: "
        + ", ".join(f"{name} {_fmt(v)}" for name, v in zip(series, bar.values, strict=False) if v is not None)
        for bar in bars
    )
    description = f"{value_label}. {summary}"
    if not values:
        return _open(width, 60, title, description, "chart bar-chart") + (
            f'<text x="{width / 2:.0f}" y="30" text-anchor="middle">No data</text></svg>'
        )
    label_w = min(260, 12 + 7 * max(len(bar.label) for bar in bars))
    left, right, top = label_w, 52, 8
    n_series = max(1, len(series))
    bar_h, gap = 14, 10
    row_h = n_series * bar_h + gap
    legend_rows = _legend_rows(series, width - left - right) if n_series > 1 else 0
    plot_h = row_h * len(bars)
    height = top + plot_h + 36 + 16 * legend_rows
    head = _open(width, height, title, description, "chart bar-chart")
    low = min(values) if value_min is None else min(value_min, min(values))
    high = max(values) if value_max is None else max(value_max, max(values))
    ticks = nice_ticks(min(low, 0.0), max(high, 0.0))
    v0, v1 = ticks[0], ticks[-1]
    plot_w = width - left - right

    def sx(v: float) -> float:
        return left + (v - v0) / ((v1 - v0) or 1) * plot_w

    parts = [head, '<g class="grid" stroke="#e4e7eb" stroke-width="1">']
    parts += [f'<line x1="{sx(t):.1f}" x2="{sx(t):.1f}" y1="{top}" y2="{top + plot_h}"/>' for t in ticks]
    parts.append("</g>")
    zero = sx(0.0)
    parts.append(
        f'<line x1="{zero:.1f}" x2="{zero:.1f}" y1="{top}" y2="{top + plot_h}" '
        'stroke="#545c66" stroke-width="1"/>'
    )
    for t in ticks:
        parts.append(
            f'<text x="{sx(t):.1f}" y="{top + plot_h + 14}" text-anchor="middle">{escape(_fmt(t))}</text>'
        )
    parts.append(
        f'<text x="{left + plot_w / 2:.0f}" y="{top + plot_h + 29}" text-anchor="middle" '
        f'class="axis-label">{escape(value_label)}</text>'
    )
    for row, bar in enumerate(bars):
        y = top + row * row_h + gap / 2
        weight = ' font-weight="700"' if highlight is not None and bar.label == highlight else ""
        parts.append(
            f'<text x="{left - 6}" y="{y + n_series * bar_h / 2 + 4:.1f}" text-anchor="end"{weight}>'
            f"{escape(bar.label)}</text>"
        )
        for index, value in enumerate(bar.values):
            if value is None or not math.isfinite(value):
                continue
            colour = PALETTE[index % len(PALETTE)]
            x_start, x_end = sorted((zero, sx(value)))
            by = y + index * bar_h
            name = series[index] if index < len(series) else ""
            parts.append(
                f'<rect x="{x_start:.1f}" y="{by:.1f}" width="{max(1.0, x_end - x_start):.1f}" '
                f'height="{bar_h - 2}" fill="{colour}"><title>{escape(bar.label)} · {escape(name)}: '
                f"{escape(_fmt(value))}</title></rect>"
            )
            anchor, text_x = ("end", x_start - 4) if value < 0 else ("start", x_end + 4)
            parts.append(
                f'<text x="{text_x:.1f}" y="{by + bar_h - 4:.1f}" text-anchor="{anchor}">'
                f"{escape(_fmt(value))}</text>"
            )
    if n_series > 1:
        parts += _legend(series, left, top + plot_h + 48, plot_w)
    parts.append("</svg>")
    return "".join(parts)
