"""Poisoning in the HTML report: the susceptibility curves, and the model-level backdoor scan
with its reversed trigger drawn as a small image beside the anomaly index of every class.

Like :mod:`.charts`, every hook reads evidence by probe id and parameter names, never the
probe's code: ``poisoning.backdoor`` and ``poisoning.label_flip`` give one entry per rate
(``params.rate``; ``attack_success_rate``, ``clean_accuracy``), ``poisoning.model_scan`` one
entry with ``params.anomaly_indices``, ``params.threshold``, ``params.suspected_target`` and
``params.trigger`` (``shape``, flat ``mask`` and ``pattern``). Every text reaching the
markup goes through :func:`.svg.escape`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from markupsafe import Markup

from . import svg
from .evasion import ChartView, Measured, chart_point
from .text import text

BACKDOOR = "poisoning.backdoor"
LABEL_FLIP = "poisoning.label_flip"
MODEL_SCAN = "poisoning.model_scan"
CELL = 12
STRIP = 32
"""Cells per row when a trigger over flat features is drawn."""


def poisoning_charts(measured: Sequence[Measured]) -> tuple[ChartView, ...]:
    """The susceptibility curve (when simulated) and each model scan's figure."""
    out = _susceptibility(measured)
    out += [view for m in measured if m.probe == MODEL_SCAN for view in _model_scan(m)]
    return tuple(out)


def _rate_points(measured: Sequence[Measured], probe: str, metric: str, what: str) -> tuple[svg.Point, ...]:
    points = []
    for m in measured:
        rate, value = m.params.get("rate"), m.metrics.get(metric)
        if m.probe == probe and isinstance(rate, int | float) and value and value.get("value") is not None:
            points.append(chart_point(float(rate), value, f"{what} at {float(rate):.1%} poisoned"))
    return tuple(sorted(points, key=lambda p: p.x))


def _susceptibility(measured: Sequence[Measured]) -> list[ChartView]:
    series = [svg.Series(label, points) for label, points in (
        ("backdoor: attack success", _rate_points(measured, BACKDOOR, "attack_success_rate",
                                                  "backdoor attack success")),
        ("backdoor: clean accuracy", _rate_points(measured, BACKDOOR, "clean_accuracy", "clean accuracy")),
        ("label flips: clean accuracy", _rate_points(measured, LABEL_FLIP, "clean_accuracy",
                                                     "clean accuracy with flipped labels")),
    ) if points]
    if not series:
        return []
    top = max(p.x for s in series for p in s.points)
    chart = svg.line_chart(series, title="Poisoning susceptibility against the poisoned share",
                           x_label="share of the training set poisoned", y_label="rate",
                           x_max=top * 1.05)
    caption = ("The model's own training recipe, retrained on training data an attacker partly "
               "controls. Attack success is the share of triggered inputs of other classes that "
               "land in the attacker's class; clean accuracy is measured on the untouched "
               "evaluation data. The poisoned share at which attack success gets high is how much "
               "data an attacker must contribute; clean accuracy barely moving is why such a "
               "backdoor goes unnoticed.")
    return [ChartView(Markup(chart), caption)]  # noqa: S704 (svg.py escapes all text)


def _numbers(value: Any) -> list[float] | None:
    if not isinstance(value, list | tuple) or not value:
        return None
    if not all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in value):
        return None
    return [float(v) for v in value]


def _model_scan(m: Measured) -> list[ChartView]:
    indices = _numbers(m.params.get("anomaly_indices"))
    threshold = m.params.get("threshold")
    if indices is None or not isinstance(threshold, int | float) or not math.isfinite(threshold):
        return []
    suspected = m.params.get("suspected_target")
    trigger = m.params.get("trigger")
    image = _trigger_image(trigger) if isinstance(trigger, Mapping) else ""
    bars = _index_chart(indices, float(threshold), suspected if isinstance(suspected, int) else None)
    figure = (f'<div class="scan-figure" style="display:flex;gap:1.5em;align-items:flex-start;'
              f'flex-wrap:wrap">{bars}{image}</div>')
    if isinstance(suspected, int):
        verdict = (f"Class {suspected} stands out (anomaly index above {float(threshold):g}): a much "
                   "smaller input change sends clean inputs there than to any other class, the mark "
                   "of a planted trigger. The image is that reversed trigger.")
    else:
        verdict = (f"No class stands out (every anomaly index at most {float(threshold):g}). The image "
                   "is the smallest reversed trigger found, shown for comparison.")
    caption = ("Model-level backdoor scan (Neural Cleanse): for each class, the smallest mask and "
               "pattern that send clean inputs to it; the anomaly index measures how far below the "
               "other classes' a class's mask size lies, in robust standard deviations. " + verdict)
    return [ChartView(Markup(figure), caption)]  # noqa: S704 (every text below is escaped)


def _index_chart(indices: list[float], threshold: float, suspected: int | None) -> str:
    width, height, left, top, bottom = 360, 220, 44, 28, 180
    low = min(0.0, *indices)
    high = max(threshold * 1.25, *indices, 1.0)
    span = high - low
    step = (width - left - 10) / len(indices)

    def py(v: float) -> float:
        return bottom - (v - low) / span * (bottom - top)

    title = "Anomaly index per class"
    parts = [f'<svg class="chart" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
             f'role="img" aria-label="{svg.escape(title)}" font-size="11">',
             f"<title>{svg.escape(title)}</title>",
             f'<text x="{left}" y="14" font-weight="bold">{svg.escape(title)}</text>',
             f'<line x1="{left}" y1="{py(0):.1f}" x2="{width - 10}" y2="{py(0):.1f}" stroke="#999"/>']
    for i, value in enumerate(indices):
        x = left + i * step + step * 0.15
        y0, y1 = sorted((py(0), py(value)))
        colour = svg.PALETTE[1] if i == suspected else svg.PALETTE[0]
        tip = svg.escape(f"class {i}: anomaly index {value:.2f}")
        parts.append(f'<rect x="{x:.1f}" y="{y0:.1f}" width="{step * 0.7:.1f}" '
                     f'height="{max(y1 - y0, 0.5):.1f}" fill="{colour}" fill-opacity="0.8">'
                     f"<title>{tip}</title></rect>")
        parts.append(f'<text x="{x + step * 0.35:.1f}" y="{bottom + 14}" text-anchor="middle">{i}</text>')
    parts.append(f'<line x1="{left}" y1="{py(threshold):.1f}" x2="{width - 10}" y2="{py(threshold):.1f}" '
                 f'stroke="{svg.PALETTE[1]}" stroke-dasharray="5 3"/>')
    parts.append(f'<text x="{width - 10}" y="{py(threshold) - 4:.1f}" text-anchor="end">'
                 f'{svg.escape(f"threshold {threshold:g}")}</text>')
    parts.append(f'<text x="{left + (width - left) / 2:.1f}" y="{bottom + 32}" '
                 'text-anchor="middle">class</text>')
    for tick in (low, 0.0, high):
        parts.append(f'<text x="{left - 6}" y="{py(tick) + 4:.1f}" text-anchor="end">{tick:.1f}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _trigger_image(trigger: Mapping[str, Any]) -> str:
    """The reversed trigger as grey cells: dark where the mask writes a high value."""
    mask, pattern = _numbers(trigger.get("mask")), _numbers(trigger.get("pattern"))
    shape = _numbers(trigger.get("shape"))
    if mask is None or pattern is None or shape is None or len(mask) != len(pattern):
        return ""
    if len(shape) == 2 and int(shape[0]) * int(shape[1]) == len(mask):
        rows, cols = int(shape[0]), int(shape[1])
    else:
        cols = min(STRIP, len(mask))
        rows = math.ceil(len(mask) / cols)
    top_value = max((abs(p) for p in pattern), default=1.0) or 1.0
    width, height = cols * CELL + 2, rows * CELL + 34
    title = f"Reversed trigger of class {text(trigger.get('class', '?'))}"
    parts = [f'<svg class="chart trigger" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
             f'role="img" aria-label="{svg.escape(title)}" font-size="11">',
             f"<title>{svg.escape(title)}</title>",
             f'<text x="1" y="14" font-weight="bold">{svg.escape(title)}</text>']
    for k, (weight, value) in enumerate(zip(mask, pattern, strict=True)):
        r, c = divmod(k, cols)
        ink = min(1.0, max(0.0, weight)) * min(1.0, abs(value) / top_value)
        grey = round(255 * (1 - ink))
        tip = svg.escape(f"position {k}: mask {weight:.2f}, value {value:.2f}")
        parts.append(f'<rect x="{1 + c * CELL}" y="{20 + r * CELL}" width="{CELL}" height="{CELL}" '
                     f'fill="rgb({grey},{grey},{grey})" stroke="#ccc" stroke-width="0.5">'
                     f"<title>{tip}</title></rect>")
    parts.append("</svg>")
    return "".join(parts)
