"""Line charts as inline SVG, written in plain Python.

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

# Okabe & Ito's palette: distinguishable with the common colour-vision deficiencies.
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000")
# Dash patterns tell series apart on a grey-scale printout, where colour is lost.
DASHES = ("", "7 4", "2 3", "9 3 2 3", "4 2", "12 4 2 4 2 4")
LEGEND_LABEL_MAX = 70
BAR_LABEL_MAX = 36


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


def nice_ticks(high: float, target: int = 5) -> tuple[float, ...]:
    """Ticks from 0 to at least ``high``, stepping by 1, 2, 2.5 or 5 times a power of ten.

    Round steps are what a reader can interpolate between; 0.0437 is not.
    """
    if not math.isfinite(high) or high <= 0:
        return (0.0, 1.0)
    raw = high / target
    magnitude = 10.0 ** math.floor(math.log10(raw))
    step = 10 * magnitude
    for multiple in (1.0, 2.0, 2.5, 5.0):
        if multiple * magnitude >= raw:
            step = multiple * magnitude
            break
    count = math.ceil(high / step - 1e-9)
    return tuple(round(i * step, 12) for i in range(count + 1))


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
    chart = _Frame(layout, x_ticks[-1], len(clean) + (1 if diagonal else 0))
    parts = [
        _open(layout, chart.height, title),
        *chart.axes(x_ticks, x_label, y_label),
    ]
    if diagonal:
        parts.extend(chart.diagonal(diagonal, len(clean)))
    if not xs:
        parts.append(
            f'<text x="{layout.left + chart.plot_width / 2:.1f}" '
            f'y="{layout.top + layout.plot_height / 2:.1f}" text-anchor="middle">no data</text>'
        )
    for i, s in enumerate(clean):
        parts.extend(chart.series(s, PALETTE[i % len(PALETTE)], DASHES[i % len(DASHES)]))
        parts.extend(chart.legend_item(i, s.label))
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
    kept = (p for p in points if math.isfinite(p.x) and math.isfinite(p.y))
    return tuple(sorted(kept, key=lambda p: p.x))


class _Frame:
    """Maps data to user units and draws the pieces; one per chart."""

    def __init__(self, layout: Layout, x_max: float, n_series: int) -> None:
        self.layout = layout
        self.x_max = x_max
        self.plot_width = layout.width - layout.left - layout.right
        self.bottom = layout.top + layout.plot_height
        self.legend_top = self.bottom + 56
        self.height = self.legend_top + n_series * layout.legend_row + 6

    def px(self, x: float) -> float:
        return self.layout.left + x / self.x_max * self.plot_width

    def py(self, y: float) -> float:
        return self.layout.top + (1.0 - min(1.0, max(0.0, y))) * self.layout.plot_height

    def axes(self, x_ticks: Sequence[float], x_label: str, y_label: str) -> list[str]:
        lay = self.layout
        right = lay.left + self.plot_width
        out = ['<g class="grid" stroke="#d9d9d9" stroke-width="1">']
        y_ticks = [i / 5 for i in range(6)]
        out += [f'<line x1="{lay.left}" y1="{self.py(t):.1f}" x2="{right}" '
                f'y2="{self.py(t):.1f}"/>' for t in y_ticks[1:]]
        out.append("</g>")
        out.append(
            f'<g class="axes" stroke="#333" stroke-width="1"><line x1="{lay.left}" '
            f'y1="{self.bottom}" x2="{right}" y2="{self.bottom}"/><line x1="{lay.left}" '
            f'y1="{lay.top}" x2="{lay.left}" y2="{self.bottom}"/></g>'
        )
        out.append('<g class="ticks" fill="#333">')
        for t in y_ticks:
            out.append(f'<text x="{lay.left - 6}" y="{self.py(t) + 4:.1f}" '
                       f'text-anchor="end">{t:.0%}</text>')
        for t in x_ticks:
            x = self.px(t)
            out.append(f'<line x1="{x:.1f}" y1="{self.bottom}" x2="{x:.1f}" '
                       f'y2="{self.bottom + 5}" stroke="#333"/>')
            out.append(f'<text x="{x:.1f}" y="{self.bottom + 18}" '
                       f'text-anchor="middle">{t:g}</text>')
        out.append("</g>")
        mid_y = lay.top + lay.plot_height / 2
        out.append(
            f'<text class="axis-label" x="{lay.left + self.plot_width / 2:.1f}" '
            f'y="{self.bottom + 38}" text-anchor="middle">{escape(x_label)}</text>'
        )
        out.append(
            f'<text class="axis-label" x="14" y="{mid_y:.1f}" text-anchor="middle" '
            f'transform="rotate(-90 14 {mid_y:.1f})">{escape(y_label)}</text>'
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
        for p in s.points:
            tip = escape(p.note or f"{s.label}: x={p.x:g}, y={p.y:.1%}")
            out.append(f'<circle cx="{self.px(p.x):.1f}" cy="{self.py(p.y):.1f}" r="3.5">'
                       f"<title>{tip}</title></circle>")
        out.append("</g>")
        return out

    def diagonal(self, label: str, index: int) -> list[str]:
        """The y = x line (a ROC curve's chance level), dotted grey, with its legend entry."""
        lay = self.layout
        y = self.legend_top + index * lay.legend_row
        return [
            f'<line class="diagonal" x1="{self.px(0):.1f}" y1="{self.py(0):.1f}" '
            f'x2="{self.px(min(1.0, self.x_max)):.1f}" y2="{self.py(min(1.0, self.x_max)):.1f}" '
            'stroke="#777" stroke-width="1" stroke-dasharray="2 4"/>',
            f'<g class="legend"><line x1="{lay.left}" y1="{y}" x2="{lay.left + 30}" y2="{y}" '
            'stroke="#777" stroke-dasharray="2 4"/>'
            f'<text x="{lay.left + 38}" y="{y + 4}">{escape(label)}</text></g>',
        ]

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
