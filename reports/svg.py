"""Line and bar charts as inline SVG, written in plain Python, on linear or log axes (:mod:`.axes`).

The HTML report must be one file that opens offline years from now and prints cleanly, so
charts cannot come from a CDN or a JavaScript library, and pulling in a plotting stack to
draw a few polylines is not worth the dependency. Every string that reaches the markup
passes through :func:`escape`: series labels come from probe ids and model names, which
whoever supplied the model may choose, so markup is escaped and control and bidi characters
are spelled out (:func:`guard.textsafe.visible`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape as html_escape

from guard.textsafe import visible

from .axes import RATE_AXIS, Linear, Log, LogAxis, log_axis, nice_ticks

__all__ = ["Bar", "Layout", "LogAxis", "Point", "Series", "bar_chart", "escape", "line_chart", "log_axis",
           "log_chart", "nice_ticks", "shortened"]

# Okabe & Ito's palette: distinguishable with the common colour-vision deficiencies.
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000")
# Dash patterns tell series apart on a grey-scale printout, where colour is lost.
DASHES = ("", "7 4", "2 3", "9 3 2 3", "4 2", "12 4 2 4 2 4")
LEGEND_LABEL_MAX = 70
BAR_LABEL_MAX = 36
DENSE_POINTS = 40
"""More points than this in a series (a ROC curve) are drawn smaller."""


def escape(text: str) -> str:
    """Text for SVG markup: invisible characters spelled out (``<U+202E>``), then escaped."""
    return html_escape(visible(text))


def shortened(label: str, limit: int) -> str:
    """``label`` as shown, cut to ``limit`` characters with an ellipsis (the escapes count)."""
    shown = visible(label)
    return shown if len(shown) <= limit else shown[: limit - 1] + "…"


@dataclass(frozen=True, slots=True)
class Point:
    """One measurement; ``lo``/``hi`` is its 95% interval when it is an estimate."""

    x: float
    y: float
    lo: float | None = None
    hi: float | None = None
    note: str = ""


@dataclass(frozen=True, slots=True)
class Series:
    label: str
    points: tuple[Point, ...]


@dataclass(frozen=True, slots=True)
class Layout:
    """Sizes in SVG user units; the chart scales to its container through ``viewBox``."""

    width: int = 640
    plot_height: int = 250
    left: int = 60
    right: int = 20
    top: int = 30
    legend_row: int = 20


def line_chart(
    series: Sequence[Series],
    *,
    title: str,
    x_label: str,
    y_label: str,
    x_max: float | None = None,
    diagonal: str = "",
    layout: Layout = Layout(),
) -> str:
    """An SVG chart of rates in [0, 1] against x >= 0, one polyline per series.

    The 95% interval is a shaded band when every point of a series has one, otherwise an
    error bar on each point that has one. Each point carries a ``<title>`` (a native
    tooltip, no script) with its exact value. ``x_max`` fixes the x axis (a ROC curve's
    false-positive rate always spans [0, 1]); ``diagonal`` labels a dotted y = x line, the
    chance level of a ROC curve.
    """
    clean = [Series(s.label, _finite_sorted(s.points)) for s in series]
    xs = [p.x for s in clean for p in s.points]
    x_ticks = nice_ticks(x_max if x_max is not None else max(xs, default=0.0))
    x_scale = Linear(x_ticks, tuple(f"{t:g}" for t in x_ticks))
    return _chart(clean, title, x_label, y_label, x_scale, RATE_AXIS, diagonal, layout)


def log_chart(
    series: Sequence[Series],
    *,
    title: str,
    x_label: str,
    y_label: str,
    x_axis: LogAxis,
    y_axis: LogAxis | None = None,
    diagonal: str = "",
    layout: Layout = Layout(),
) -> str:
    """:func:`line_chart` with a base-10 x axis, and a base-10 y axis when ``y_axis`` is given
    (otherwise rates from 0 to 100%).

    A log scale spreads the small values a linear one crushes into its corner: a ROC curve's
    true-positive rate at 0.1% false positives, a query budget of 50 beside one of 10,000.
    A value at or below an axis floor (a rate of 0 has no logarithm) is drawn on the floor as a
    hollow point, its tooltip says so, and a line under the legend says how many there are.
    """
    clean = [Series(s.label, _finite_sorted(s.points)) for s in series]
    y_scale: Linear | Log = Log(y_axis) if y_axis is not None else RATE_AXIS
    return _chart(clean, title, x_label, y_label, Log(x_axis), y_scale, diagonal, layout)


def _chart(series: Sequence[Series], title: str, x_label: str, y_label: str, x_scale: Linear | Log,
           y_scale: Linear | Log, diagonal: str, layout: Layout) -> str:
    clipped = sum(1 for s in series for p in s.points if x_scale.below(p.x) or y_scale.below(p.y))
    rows = len(series) + (1 if diagonal else 0) + (1 if clipped else 0)
    chart = _Frame(layout, (x_scale, x_label), (y_scale, y_label), rows)
    parts = [_open(layout, chart.height, title), *chart.axes()]
    if diagonal:
        parts.extend(chart.diagonal(diagonal, len(series)))
    if not any(s.points for s in series):
        parts.append(
            f'<text x="{layout.left + chart.plot_width / 2:.1f}" '
            f'y="{layout.top + layout.plot_height / 2:.1f}" text-anchor="middle">no data</text>'
        )
    for i, s in enumerate(series):
        parts.extend(chart.series(s, PALETTE[i % len(PALETTE)], DASHES[i % len(DASHES)]))
        parts.extend(chart.legend_item(i, s.label))
    if clipped:
        parts.extend(chart.clip_note(rows - 1, clipped))
    parts.append("</svg>")
    return "\n".join(parts)


def _open(layout: Layout, height: float, title: str) -> str:
    return (f'<svg class="chart" viewBox="0 0 {layout.width} {height}" '
            f'width="{layout.width}" height="{height}" role="img" '
            f'aria-label="{escape(title)}" font-size="12">\n<title>{escape(title)}</title>')


@dataclass(frozen=True, slots=True)
class Bar:
    """One rate in a bar chart, with its 95% interval where it is an estimate."""

    label: str
    value: float
    lo: float | None = None
    hi: float | None = None
    note: str = ""


def bar_chart(bars: Sequence[Bar], *, title: str, x_label: str, width: int = 640) -> str:
    """Horizontal bars of rates in [0, 1], one row per bar, with interval whiskers.

    Used for measurements that are not a sweep (a detector's detection and false-positive
    rates): a bar per number reads faster than a table when there are several.
    """
    label_width, row, top = 230, 24, 12
    kept = [b for b in bars if math.isfinite(b.value)]
    plot = width - label_width - 20
    bottom = top + max(1, len(kept)) * row
    height = bottom + 40

    def px(v: float) -> float:
        return label_width + min(1.0, max(0.0, v)) * plot

    parts = [_open(Layout(width=width), height, title), '<g class="grid" stroke="#d9d9d9">']
    parts += [f'<line x1="{px(t):.1f}" y1="{top}" x2="{px(t):.1f}" y2="{bottom}"/>'
              for t in (0.2, 0.4, 0.6, 0.8, 1.0)]
    parts.append("</g>")
    parts.append('<g class="ticks" fill="#333">')
    parts += [f'<text x="{px(t):.1f}" y="{bottom + 16}" text-anchor="middle">{t:.0%}</text>'
              for t in (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)]
    parts.append(f'<text class="axis-label" x="{label_width + plot / 2:.1f}" y="{bottom + 34}" '
                 f'text-anchor="middle">{escape(x_label)}</text></g>')
    if not kept:
        parts.append(f'<text x="{label_width + plot / 2:.1f}" y="{top + row / 2 + 4}" '
                     'text-anchor="middle">no data</text>')
    for i, b in enumerate(kept):
        y = top + i * row
        text = shortened(b.label, BAR_LABEL_MAX)
        tip = escape(b.note or f"{b.label}: {b.value:.1%}")
        parts.append(f'<g class="bar"><text x="{label_width - 8}" y="{y + row / 2 + 4:.1f}" '
                     f'text-anchor="end">{escape(text)}</text>')
        parts.append(f'<rect x="{label_width}" y="{y + 4}" width="{px(b.value) - label_width:.1f}" '
                     f'height="{row - 8}" fill="{PALETTE[0]}" fill-opacity="0.75">'
                     f"<title>{tip}</title></rect>")
        if b.lo is not None and b.hi is not None:
            mid = y + row / 2
            parts.append(f'<path class="error-bar" d="M{px(b.lo):.1f},{mid:.1f}H{px(b.hi):.1f}'
                         f'M{px(b.lo):.1f},{mid - 5:.1f}V{mid + 5:.1f}M{px(b.hi):.1f},{mid - 5:.1f}'
                         f'V{mid + 5:.1f}" stroke="#000" fill="none"/>')
        parts.append("</g>")
    parts.append("</svg>")
    return "\n".join(parts)


def _finite_sorted(points: Sequence[Point]) -> tuple[Point, ...]:
    """The points with finite coordinates, by x; an interval that is not finite is dropped."""
    kept = [p if _finite(p.lo) and _finite(p.hi) else Point(p.x, p.y, None, None, p.note)
            for p in points if math.isfinite(p.x) and math.isfinite(p.y)]
    return tuple(sorted(kept, key=lambda p: p.x))


def _finite(value: float | None) -> bool:
    return value is None or math.isfinite(value)


class _Frame:
    """Maps data to user units and draws the pieces; one per chart."""

    def __init__(self, layout: Layout, x: tuple[Linear | Log, str], y: tuple[Linear | Log, str],
                 legend_rows: int) -> None:
        self.layout = layout
        (self.x, self.x_label), (self.y, self.y_label) = x, y
        self.plot_width = layout.width - layout.left - layout.right
        self.bottom = layout.top + layout.plot_height
        self.legend_top = self.bottom + 56
        self.height = self.legend_top + legend_rows * layout.legend_row + 6

    def px(self, x: float) -> float:
        return self.layout.left + self.x.fraction(x) * self.plot_width

    def py(self, y: float) -> float:
        return self.layout.top + (1.0 - self.y.fraction(y)) * self.layout.plot_height

    def axes(self) -> list[str]:
        lay = self.layout
        right = lay.left + self.plot_width
        out = []
        if self.x.minor or self.y.minor:
            out.append('<g class="grid minor" stroke="#efefef" stroke-width="1">')
            out += [f'<line x1="{self.px(t):.1f}" y1="{lay.top}" x2="{self.px(t):.1f}" '
                    f'y2="{self.bottom}"/>' for t in self.x.minor]
            out += [f'<line x1="{lay.left}" y1="{self.py(t):.1f}" x2="{right}" '
                    f'y2="{self.py(t):.1f}"/>' for t in self.y.minor]
            out.append("</g>")
        out.append('<g class="grid" stroke="#d9d9d9" stroke-width="1">')
        out += [f'<line x1="{lay.left}" y1="{self.py(t):.1f}" x2="{right}" '
                f'y2="{self.py(t):.1f}"/>' for t in self.y.grid]
        out += [f'<line x1="{self.px(t):.1f}" y1="{lay.top}" x2="{self.px(t):.1f}" '
                f'y2="{self.bottom}"/>' for t in self.x.grid]
        out.append("</g>")
        out.append(
            f'<g class="axes" stroke="#333" stroke-width="1"><line x1="{lay.left}" '
            f'y1="{self.bottom}" x2="{right}" y2="{self.bottom}"/><line x1="{lay.left}" '
            f'y1="{lay.top}" x2="{lay.left}" y2="{self.bottom}"/></g>'
        )
        out.append('<g class="ticks" fill="#333">')
        for t, label in self.y.ticks:
            out.append(f'<text x="{lay.left - 6}" y="{self.py(t) + 4:.1f}" '
                       f'text-anchor="end">{escape(label)}</text>')
        for t, label in self.x.ticks:
            x = self.px(t)
            out.append(f'<line x1="{x:.1f}" y1="{self.bottom}" x2="{x:.1f}" '
                       f'y2="{self.bottom + 5}" stroke="#333"/>')
            out.append(f'<text x="{x:.1f}" y="{self.bottom + 18}" '
                       f'text-anchor="middle">{escape(label)}</text>')
        out.append("</g>")
        mid_y = lay.top + lay.plot_height / 2
        out.append(
            f'<text class="axis-label" x="{lay.left + self.plot_width / 2:.1f}" '
            f'y="{self.bottom + 38}" text-anchor="middle">{escape(self.x_label)}</text>'
        )
        out.append(
            f'<text class="axis-label" x="14" y="{mid_y:.1f}" text-anchor="middle" '
            f'transform="rotate(-90 14 {mid_y:.1f})">{escape(self.y_label)}</text>'
        )
        return out

    def series(self, s: Series, colour: str, dash: str) -> list[str]:
        out = [f'<g class="series" stroke="{colour}" fill="{colour}">']
        banded = bool(s.points) and all(p.lo is not None and p.hi is not None for p in s.points)
        if banded and len(s.points) > 1:
            upper = [f"{self.px(p.x):.1f},{self.py(p.hi or 0.0):.1f}" for p in s.points]
            lower = [f"{self.px(p.x):.1f},{self.py(p.lo or 0.0):.1f}" for p in s.points]
            out.append(f'<polygon class="band" points="{" ".join(upper + lower[::-1])}" '
                       'fill-opacity="0.15" stroke="none"/>')
        else:
            for p in s.points:
                if p.lo is not None and p.hi is not None:
                    out.append(self._error_bar(p))
        line = " ".join(f"{self.px(p.x):.1f},{self.py(p.y):.1f}" for p in s.points)
        dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
        out.append(f'<polyline points="{line}" fill="none" stroke-width="2"{dash_attr}/>')
        radius = 3.5 if len(s.points) <= DENSE_POINTS else 2
        for p in s.points:
            tip = p.note or f"{s.label}: x={p.x:g}, y={p.y:.1%}"
            hollow = ""
            if self.x.below(p.x) or self.y.below(p.y):
                tip += f" ({self._floor_words(p)})"
                hollow = ' fill="#fff" stroke-width="1.5"'
            out.append(f'<circle cx="{self.px(p.x):.1f}" cy="{self.py(p.y):.1f}" r="{radius}"{hollow}>'
                       f"<title>{escape(tip)}</title></circle>")
        out.append("</g>")
        return out

    def diagonal(self, label: str, index: int) -> list[str]:
        """The y = x line (a ROC curve's chance level), dotted grey, with its legend entry."""
        lay = self.layout
        y = self.legend_top + index * lay.legend_row
        start, end = max(self.x.low, self.y.low), min(self.x.high, self.y.high)
        return [
            f'<line class="diagonal" x1="{self.px(start):.1f}" y1="{self.py(start):.1f}" '
            f'x2="{self.px(end):.1f}" y2="{self.py(end):.1f}" '
            'stroke="#777" stroke-width="1" stroke-dasharray="2 4"/>',
            f'<g class="legend"><line x1="{lay.left}" y1="{y}" x2="{lay.left + 30}" y2="{y}" '
            'stroke="#777" stroke-dasharray="2 4"/>'
            f'<text x="{lay.left + 38}" y="{y + 4}">{escape(label)}</text></g>',
        ]

    def clip_note(self, index: int, count: int) -> list[str]:
        """The legend's last line: how many points lie below an axis floor, drawn on it."""
        lay = self.layout
        y = self.legend_top + index * lay.legend_row
        words = (f"{count} hollow point{'' if count == 1 else 's'}: below the axis floor "
                 "(a rate of 0 has no logarithm), drawn on it")
        return [f'<g class="legend clipped"><text x="{lay.left}" y="{y + 4}">{escape(words)}</text></g>']

    def _floor_words(self, p: Point) -> str:
        """``false-positive rate 0 drawn at the axis floor 0.1%``, for each axis it is below."""
        return "; ".join(f"{label} {value:g} drawn at the axis floor {scale.ticks[0][1]}"
                         for scale, label, value in ((self.x, self.x_label, p.x), (self.y, self.y_label, p.y))
                         if scale.below(value))

    def _error_bar(self, p: Point) -> str:
        x, lo, hi = self.px(p.x), self.py(p.lo or 0.0), self.py(p.hi or 0.0)
        return (f'<path class="error-bar" d="M{x - 4:.1f},{hi:.1f}H{x + 4:.1f}M{x:.1f},'
                f'{hi:.1f}V{lo:.1f}M{x - 4:.1f},{lo:.1f}H{x + 4:.1f}" fill="none"/>')

    def legend_item(self, index: int, label: str) -> list[str]:
        lay = self.layout
        y = self.legend_top + index * lay.legend_row
        colour, dash = PALETTE[index % len(PALETTE)], DASHES[index % len(DASHES)]
        dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
        text = shortened(label, LEGEND_LABEL_MAX)
        return [
            f'<g class="legend"><line x1="{lay.left}" y1="{y}" x2="{lay.left + 30}" y2="{y}" '
            f'stroke="{colour}" stroke-width="2"{dash_attr}/>'
            f'<circle cx="{lay.left + 15}" cy="{y}" r="3.5" fill="{colour}"/>'
            f'<text x="{lay.left + 38}" y="{y + 4}">{escape(text)}</text></g>'
        ]

