"""Model extraction in the reports: how faithful a copy an attacker trains from the model's
answers at each query budget, and how accurate that copy is.

Evidence ``extraction.*`` (``extraction.copycat``, ``extraction.knockoff``, any later one),
one entry per budget: ``params.budget``, ``surrogate``, ``output`` (``labels`` or
``probabilities``), ``source`` (``model`` or ``endpoint``), ``pool``; metrics ``fidelity``
(agreement with the model on held-out inputs), ``accuracy`` (the copy's own), ``queries``
and, against an endpoint, ``refused``. An entry may instead hold the whole sweep as
``fidelity`` (and ``accuracy``) curves over the budget. Entries of one probe that differ in
surrogate, output, source or pool are separate copies, each its own pair of lines.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from markupsafe import Markup

from . import svg
from .evasion import ChartView, FlagView, Measured
from .membership import Shown, shown
from .text import Estimate, count, estimate, metric_value, params_text, pct, text, value_of

EXTRACTION_PREFIX = "extraction."
COPY_KEYS = ("surrogate", "output", "source", "pool")
"""The parameters that make two entries of one probe two different copies."""
HIGH_FIDELITY = 0.9
"""The agreement the plain-words sentence reports the budget for (the baseline pack's limit)."""
OUTPUT_WORDS = {"labels": "label-only answers", "probabilities": "probability answers"}
SOURCE_WORDS = {"model": "queried in process", "endpoint": "queried over its HTTP endpoint"}
FIDELITY, ACCURACY = "fidelity", "accuracy of the copy"
FLAG_TITLES = {
    "query_refused": "The endpoint stopped answering: the copy had fewer queries than its budget",
    "answer_classes_missing": "The answers miss some of the model's classes: the copy cannot answer those",
    "endpoint_mismatch": "The endpoint's answers differ from the audited model's",
    "no_better_than_constant": "The copy learnt nothing: no better than always answering one class",
}
INTRO = ("An attacker who can query the model trains a copy from its answers alone. Fidelity is the "
         "share of held-out inputs on which the copy and the model agree; the copy's accuracy is how "
         "often the copy is right. A faithful copy is the model stolen for the price of the queries: "
         "it can be used or sold, and it lets an attacker prepare evasion attacks offline before "
         "sending them to the model. Query limits and monitoring per client belong below the budget "
         "at which the copy gets faithful; answering with labels instead of probabilities raises it.")


@dataclass(frozen=True, slots=True)
class BudgetRow:
    budget: str
    queries: str
    refused: str
    fidelity: Shown
    accuracy: Shown
    more: tuple[tuple[str, Estimate], ...]
    flags: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class CopyView:
    """One copy (a probe with one surrogate, output and source) across its budgets."""

    label: str
    settings: str
    rows: tuple[BudgetRow, ...]
    reading: str


@dataclass(frozen=True, slots=True)
class ExtractionView:
    intro: str
    copies: tuple[CopyView, ...]
    warnings: tuple[FlagView, ...]
    charts: tuple[ChartView, ...]


@dataclass(frozen=True, slots=True)
class _Copy:
    label: str
    runs: tuple[Measured, ...]
    budgets: tuple[float | None, ...]


def _budget(m: Measured) -> float | None:
    budget = m.params.get("budget")
    if isinstance(budget, (int, float)) and not isinstance(budget, bool):
        return float(budget)
    return metric_value(m.metrics, "queries")


def _copies(measured: Sequence[Measured]) -> list[_Copy]:
    """Entries grouped into copies, labelled by the probe and whatever tells its copies apart."""
    runs = [m for m in measured if in_section_table(m)]
    keys = {id(m): tuple(text(m.params.get(k)) for k in COPY_KEYS) for m in runs}
    groups: dict[tuple[str, tuple[str, ...]], list[Measured]] = {}
    for m in runs:
        groups.setdefault((m.probe, keys[id(m)]), []).append(m)
    copies = []
    for (probe, key), members in groups.items():
        siblings = [k for p, k in groups if p == probe]
        varying = [v for i, v in enumerate(key) if len({k[i] for k in siblings}) > 1]
        label = f"{probe} ({', '.join(varying)})" if varying else probe
        ordered = sorted(members, key=lambda m: (_budget(m) is None, _budget(m) or 0.0))
        copies.append(_Copy(label, tuple(ordered), tuple(_budget(m) for m in ordered)))
    return copies


def _curve(m: Measured, name: str) -> Mapping[str, Any] | None:
    for curve in m.raw.get("curves") or ():
        if isinstance(curve, Mapping) and curve.get("name") == name:
            return curve
    return None


def _row(m: Measured, budget: float | None) -> BudgetRow:
    queries, refused = metric_value(m.metrics, "queries"), metric_value(m.metrics, "refused")
    return BudgetRow(
        budget="not recorded" if budget is None else count(budget),
        queries="—" if queries is None else count(queries),
        refused="—" if refused is None else count(refused),
        fidelity=shown(m, "fidelity"),
        accuracy=shown(m, "accuracy"),
        more=tuple((k.replace("_", " "), estimate(k, v)) for k, v in m.metrics.items()
                   if k not in ("fidelity", "accuracy", "queries", "refused") and isinstance(v, Mapping)),
        flags=tuple(code for code, _ in m.flags),
    )


def _settings(copy: _Copy) -> str:
    """The copy's settings in words; of the other parameters, those every budget shares (the
    epochs, say, grow with the budget and are in report.json)."""
    first = copy.runs[0].params
    parts = []
    if first.get("surrogate") is not None:
        parts.append(f"copy {text(first['surrogate'])}")
    output, source = text(first.get("output", "")), text(first.get("source", ""))
    if output:
        parts.append(OUTPUT_WORDS.get(output, f"output {output}"))
    if source:
        parts.append(SOURCE_WORDS.get(source, f"source {source}"))
    pool, origin = first.get("pool"), first.get("pool_source")
    if pool is not None:
        sized = isinstance(pool, int) and not isinstance(pool, bool)
        words = f"query pool of {count(pool)} inputs" if sized else f"query pool {text(pool)}"
        parts.append(words + (f" ({text(origin)})" if origin is not None else ""))
    shared = {k: v for k, v in first.items() if k not in (*COPY_KEYS, "budget", "pool_source")
              and all(m.params.get(k) == v for m in copy.runs)}
    rest = params_text(shared)
    return "; ".join([*parts, rest] if rest else parts)


def _reading(copy: _Copy) -> str:
    """The budget at which the copy first reaches high fidelity, or how far it got."""
    measured = [(m, b) for m, b in zip(copy.runs, copy.budgets, strict=True)
                if b is not None and metric_value(m.metrics, "fidelity") is not None]
    if not measured:
        return f"{copy.label}: fidelity was not measured at any recorded budget."
    reached = next(((m, b) for m, b in measured if (metric_value(m.metrics, "fidelity") or 0.0)
                    >= HIGH_FIDELITY), None)
    m, budget = reached or measured[-1]
    fidelity = shown(m, "fidelity")
    ci = f" (95% CI {fidelity.interval})" if fidelity.interval else ""
    if reached:
        words = (f"{copy.label}: the copy first agrees with the model on at least {pct(HIGH_FIDELITY)} of "
                 f"held-out inputs at {count(budget)} queries: {fidelity.value}{ci}")
    else:
        words = (f"{copy.label}: within the largest budget tried, {count(budget)} queries, the copy agrees "
                 f"with the model on {fidelity.value}{ci} of held-out inputs, below {pct(HIGH_FIDELITY)}")
    accuracy, model = shown(m, "accuracy"), shown(m, "target_accuracy")
    if not accuracy.missing:
        words += f"; its own accuracy there is {accuracy.value}"
        words += f" (the model's: {model.value})" if not model.missing else ""
    refused = metric_value(m.metrics, "refused")
    if refused:
        words += f"; the endpoint refused {count(refused)} of its queries"
    return words + "."


def in_section_table(m: Measured) -> bool:
    """Whether the extraction table shows this entry (one budget of one copy); an entry holding
    a sweep as curves is drawn in the chart and listed with the other measurements."""
    return m.probe.startswith(EXTRACTION_PREFIX) and _curve(m, "fidelity") is None


def _where(copy: _Copy, budget: float | None) -> str:
    return f"{copy.label} at {'an unrecorded number of' if budget is None else count(budget)} queries"


def extraction_view(measured: Sequence[Measured]) -> ExtractionView | None:
    """The view of every extraction entry, or ``None`` when the audit ran none."""
    copies = _copies(measured)
    curves = [m for m in measured if m.probe.startswith(EXTRACTION_PREFIX) and not in_section_table(m)]
    if not copies and not curves:
        return None
    views = tuple(CopyView(c.label, _settings(c),
                           tuple(_row(m, b) for m, b in zip(c.runs, c.budgets, strict=True)), _reading(c))
                  for c in copies)
    warnings = tuple(FlagView(code, FLAG_TITLES.get(code, code.replace("_", " ")), _where(c, b), detail)
                     for c in copies for m, b in zip(c.runs, c.budgets, strict=True)
                     for code, detail in m.flags)
    return ExtractionView(INTRO, views, warnings, tuple(_chart(copies, curves)))


def _point(x: float, metric: Mapping[str, Any], where: str, what: str) -> svg.Point:
    """``extraction.copycat: 1000 queries: 76.0% fidelity (95% CI 72.1–79.5%, n=500)``."""
    est = estimate("fidelity", metric)
    note = f"{where}: {_queries(x)} queries: {est.value} {what}"
    if est.interval:
        note += f" (95% CI {est.interval}" + (f", n={est.n})" if est.n else ")")
    ci = metric.get("ci95")
    lo, hi = (float(ci[0]), float(ci[1])) if isinstance(ci, (list, tuple)) and len(ci) == 2 \
        and all(isinstance(v, (int, float)) for v in ci) else (None, None)
    return svg.Point(x, value_of(metric), lo, hi, note)


def _queries(x: float) -> str:
    return str(int(x)) if x.is_integer() and abs(x) < 1e15 else f"{x:g}"


def _curve_points(curve: Mapping[str, Any] | None, label: str, what: str) -> tuple[svg.Point, ...]:
    return tuple(_point(float(p["x"]), p, label, what) for p in (curve or {}).get("points") or ()
                 if isinstance(p, Mapping) and isinstance(p.get("x"), (int, float))
                 and isinstance(p.get("value"), (int, float)))


def _budget_points(copy: _Copy, metric: str, what: str) -> tuple[svg.Point, ...]:
    return tuple(_point(budget, m.metrics[metric], copy.label, what)
                 for m, budget in zip(copy.runs, copy.budgets, strict=True)
                 if budget is not None and metric_value(m.metrics, metric) is not None)


def _chart(copies: Sequence[_Copy], curves: Sequence[Measured]) -> list[ChartView]:
    series = []
    for m in curves:
        surrogate = m.params.get("surrogate")
        label = f"{m.probe} ({text(surrogate)})" if surrogate is not None else m.probe
        series.append(svg.Series(f"{label}: fidelity", _curve_points(_curve(m, "fidelity"), label, FIDELITY)))
        accuracy = _curve_points(_curve(m, "accuracy"), label, ACCURACY)
        if accuracy:
            series.append(svg.Series(f"{label}: copy's accuracy", accuracy))
    for c in copies:
        series.append(svg.Series(f"{c.label}: fidelity", _budget_points(c, "fidelity", FIDELITY)))
        accuracy = _budget_points(c, "accuracy", ACCURACY)
        if accuracy:
            series.append(svg.Series(f"{c.label}: copy's accuracy", accuracy))
    series = [s for s in series if s.points]
    if not series:
        return []
    budgets = [p.x for s in series for p in s.points]
    title = "Model extraction fidelity against query budget, with the copy's accuracy"
    spread = min(budgets) > 0 and max(budgets) >= 10 * min(budgets)
    if spread:
        chart = svg.log_chart(series, title=title, x_label="queries to the model (log scale)",
                              y_label="fidelity and accuracy", x_axis=svg.log_axis(budgets, percent=False))
    else:
        chart = svg.line_chart(series, title=title, x_label="queries to the model",
                               y_label="fidelity and accuracy")
    caption = ("Fidelity is the share of held-out inputs on which a copy trained only from the model's "
               "answers agrees with the model; the copy's accuracy is how often it is right. The query "
               "budget at which fidelity gets high is what an attacker would need to spend: rate limits "
               "and query monitoring belong below it. Bands and bars are 95% intervals.")
    return [ChartView(Markup(chart), caption)]  # noqa: S704 (svg.py escapes all text)
