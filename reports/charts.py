"""Charts beyond the evasion sweep, each drawn only when the audit holds its evidence.

A chart hook looks for evidence by probe id and curve name, never by the probe's code, so a
probe added later (a new extraction attack, a new detector) gets its chart by producing the
evidence the hook reads:

- membership inference (``privacy.membership_inference``): its ``roc`` curve, points
  ``x`` = false-positive rate and ``value`` = true-positive rate, against the chance diagonal;
- model extraction (``extraction.*``): a ``fidelity`` curve against the query budget, or
  one evidence entry per budget (``params.budget``, ``metrics.fidelity``);
- detection (``detection.*``): every rate among its metrics, as bars with intervals.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from markupsafe import Markup

from . import svg
from .evasion import ChartView, Measured, chart_point
from .text import estimate, text, value_of

MEMBERSHIP_PROBE = "privacy.membership_inference"
EXTRACTION_PREFIX = "extraction."
DETECTION_PREFIX = "detection."


def evidence_charts(measured: Sequence[Measured]) -> tuple[ChartView, ...]:
    """Every chart hook's charts, in a fixed order: privacy, extraction, detection."""
    return (*_roc(measured), *_extraction(measured), *_detection(measured))


def _curve(m: Measured, name: str) -> Mapping[str, Any] | None:
    for curve in m.raw.get("curves") or ():
        if isinstance(curve, Mapping) and curve.get("name") == name:
            return curve
    return None


def _label(m: Measured, key: str) -> str:
    """The probe id, with the parameter that tells two runs of it apart."""
    detail = m.params.get(key)
    return f"{m.probe} ({text(detail)})" if detail is not None else m.probe


def _curve_points(curve: Mapping[str, Any], label: str, what: str) -> tuple[svg.Point, ...]:
    points = []
    for p in curve.get("points") or ():
        if isinstance(p, Mapping) and isinstance(p.get("x"), (int, float)) and p.get("value") is not None:
            x = float(p["x"])
            points.append(chart_point(x, p, f"{label}: {what} {x:g}"))
    return tuple(points)


def _roc(measured: Sequence[Measured]) -> list[ChartView]:
    series = []
    aucs = []
    for m in measured:
        curve = _curve(m, "roc") if m.probe == MEMBERSHIP_PROBE else None
        if curve is None:
            continue
        label = _label(m, "attack")
        series.append(svg.Series(label, _curve_points(curve, label, "false-positive rate")))
        auc = m.metrics.get("auc")
        if auc is not None and auc.get("value") is not None:
            est = estimate("auc", auc)
            interval = f" [95% CI {est.interval}]" if est.interval else ""
            aucs.append(f"{label}: AUC {est.value}{interval}")
    if not series:
        return []
    chart = svg.line_chart(series, title="Membership inference ROC curve",
                           x_label="false-positive rate", y_label="true-positive rate",
                           x_max=1.0, diagonal="chance (an attacker who guesses)")
    caption = ("How well an attacker tells training samples from unseen ones: each point trades "
               "true positives (members found) against false positives. A curve on the dotted "
               "diagonal means the model leaks nothing this attack can use; the further above it, "
               "the more it leaks, and the left end (few false positives) matters most. ")
    caption += "; ".join(aucs) + ("." if aucs else "")
    return [ChartView(Markup(chart), caption.strip())]  # noqa: S704 (svg.py escapes all text)


def _extraction(measured: Sequence[Measured]) -> list[ChartView]:
    series = []
    by_budget: dict[str, list[svg.Point]] = {}
    for m in measured:
        if not m.probe.startswith(EXTRACTION_PREFIX):
            continue
        curve = _curve(m, "fidelity")
        if curve is not None:
            label = _label(m, "surrogate")
            series.append(svg.Series(label, _curve_points(curve, label, "queries")))
            continue
        budget = m.params.get("budget")
        fidelity = m.metrics.get("fidelity")
        if isinstance(budget, (int, float)) and fidelity is not None and fidelity.get("value") is not None:
            point = chart_point(float(budget), fidelity, f"{m.probe}: {float(budget):g} queries")
            by_budget.setdefault(m.probe, []).append(point)
    series += [svg.Series(probe, tuple(points)) for probe, points in by_budget.items()]
    if not series:
        return []
    chart = svg.line_chart(series, title="Model extraction fidelity against query budget",
                           x_label="queries to the model", y_label="fidelity (agreement)")
    caption = ("Fidelity is the share of inputs on which a copy trained only from the model's "
               "answers agrees with the model. The query budget at which it gets high is what an "
               "attacker would need to spend: rate limits and query monitoring belong below it.")
    return [ChartView(Markup(chart), caption)]  # noqa: S704 (svg.py escapes all text)


def _detection(measured: Sequence[Measured]) -> list[ChartView]:
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
