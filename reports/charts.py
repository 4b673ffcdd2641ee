"""Charts beyond the evasion sweep, each drawn only when the audit holds its evidence.

A chart hook looks for evidence by probe id and curve name, never by the probe's code, so a
probe added later (a new extraction attack, a new detector) gets its chart by producing the
evidence the hook reads:

- membership inference (``privacy.membership_inference``): its ``roc`` curve on log-log axes
  against the chance diagonal (:mod:`.membership`);
- model extraction (``extraction.*``): fidelity and the copy's accuracy against the query
  budget, from one entry per budget or a ``fidelity`` curve (:mod:`.extraction`);
- detection (``detection.*``): every rate among its metrics, as bars with intervals (here).
"""

from __future__ import annotations

from collections.abc import Sequence

from markupsafe import Markup

from . import svg
from .evasion import ChartView, Measured
from .text import estimate, value_of

DETECTION_PREFIX = "detection."


def detection_charts(measured: Sequence[Measured]) -> list[ChartView]:
    """Each detector's rates as bars with their intervals."""
    bars = []
    for m in measured:
        if not m.probe.startswith(DETECTION_PREFIX):
            continue
        for name, metric in m.metrics.items():
            value = value_of(metric)
            if not 0.0 <= value <= 1.0:
                continue  # counts and scores are in the measurements table, not on a rate axis
            ci = metric.get("ci95")
            est = estimate(name, metric)
            label = f"{m.probe.removeprefix(DETECTION_PREFIX)}: {name.replace('_', ' ')}"
            note = f"{m.probe} {name}: {est.value}" + (f" (95% CI {est.interval})" if est.interval else "")
            lo, hi = (float(ci[0]), float(ci[1])) if ci else (None, None)
            bars.append(svg.Bar(label, value, lo, hi, note))
    if not bars:
        return []
    chart = svg.bar_chart(bars, title="Detection results", x_label="rate")
    caption = ("Each detector's rates with their 95% intervals: a detection rate says how many "
               "attacks it caught, a false-positive rate how many honest inputs it flagged. A "
               "detector is only as good as the adaptive attack it was tested against.")
    return [ChartView(Markup(chart), caption)]  # noqa: S704 (svg.py escapes all text)
