"""Evasion results as the reports lay them out: the sweep table, the headline, the charts.

Evidence with an ``eps`` and a robust accuracy is one point of a sweep (one attack at one
budget); everything else is shown as measured. The HTML page and the Markdown comment both
read these view models, so the sentence a pull request shows is the one the page shows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from markupsafe import Markup

from . import svg
from .text import Estimate, estimate, params_text, pct, pct_range, text, value_of

NORM_LABELS = {"inf": "L-inf", "2": "L2", "1": "L1", "0": "L0"}
ATTACK_NAMES = {
    "pgd": "PGD", "fgsm": "FGSM", "bim": "BIM", "apgd": "APGD", "apgd_ce": "APGD-CE",
    "apgd_dlr": "APGD-DLR", "autoattack": "AutoAttack", "cw": "C&W", "deepfool": "DeepFool",
    "hopskipjump": "HopSkipJump", "square": "Square", "boundary": "Boundary",
}
FLAG_TITLES = {
    "non_monotone": "Robust accuracy rises with a larger budget",
    "blackbox_beats_whitebox": "A black-box attack beat the white-box attacks",
    "gradient_masking": "Signs of gradient masking",
    "single_step_beats_iterative": "A single-step attack beat an iterative one",
    "no_correct_samples": "The model got every sampled input wrong: nothing was left to attack",
}
HEADLINE_METRICS = ("clean_accuracy", "robust_accuracy")
SERIES_HIDDEN_PARAMS = ("eps", "norm", "step_size")


@dataclass(frozen=True, slots=True)
class Measured:
    """One evidence entry, parsed once."""

    probe: str
    attack: str
    norm: str
    eps: float | None
    params: Mapping[str, Any]
    metrics: Mapping[str, Mapping[str, Any]]
    flags: tuple[tuple[str, str], ...]
    raw: Mapping[str, Any]

    @property
    def where(self) -> str:
        if self.eps is None:
            return self.probe
        return f"{self.attack} {self.norm}, eps {self.eps:g}"


@dataclass(frozen=True, slots=True)
class FlagView:
    code: str
    title: str
    where: str
    detail: str


@dataclass(frozen=True, slots=True)
class RobustRow:
    """One attack at one epsilon in the summary table."""

    attack: str
    norm: str
    eps: str
    clean: Estimate
    robust: Estimate
    n: str
    flags: tuple[str, ...]
    more: tuple[tuple[str, Estimate], ...]


@dataclass(frozen=True, slots=True)
class SeriesSettings:
    attack: str
    norm: str
    settings: str


@dataclass(frozen=True, slots=True)
class ChartView:
    """An inline SVG chart and the sentence under it that says how to read it."""

    svg: Markup
    caption: str


@dataclass(frozen=True, slots=True)
class OtherRow:
    """Evidence with no epsilon sweep (privacy, poisoning, scans): shown as measured."""

    probe: str
    params: str
    metrics: tuple[tuple[str, Estimate], ...]
    flags: tuple[str, ...]


def parse(ev: Mapping[str, Any]) -> Measured:
    params: Mapping[str, Any] = ev.get("params") or {}
    metrics: Mapping[str, Mapping[str, Any]] = ev.get("metrics") or {}
    eps: Any = params.get("eps")
    robust = metrics.get("robust_accuracy") or {}
    swept = (isinstance(eps, (int, float)) and not isinstance(eps, bool)
             and robust.get("value") is not None)
    probe = text(ev["probe"])
    short = probe.rsplit(".", 1)[-1]
    norm = text(params.get("norm", "inf"))
    return Measured(
        probe=probe,
        attack=ATTACK_NAMES.get(short, short),
        norm=NORM_LABELS.get(norm, f"L{norm}"),
        eps=float(eps) if swept else None,
        params=params,
        metrics=metrics,
        flags=tuple((text(f["code"]), text(f.get("detail", ""))) for f in ev.get("flags", [])),
        raw=ev,
    )


def ordered(sweeps: Sequence[Measured]) -> list[Measured]:
    """Series in the order the audit ran them, each by increasing epsilon."""
    keys = list(dict.fromkeys((m.probe, m.norm) for m in sweeps))
    return sorted(sweeps, key=lambda m: (keys.index((m.probe, m.norm)), m.eps or 0.0))


def headline(sweeps: Sequence[Measured]) -> str:
    """One plain sentence: the worst accuracy at a middle budget, with its interval and n.

    The worst attack is the honest robust accuracy (any attack that works is a threat);
    the middle epsilon avoids both the trivial smallest and the extreme largest budget.
    """
    if not sweeps:
        return "No evasion attack was measured on this target."
    norm = sweeps[0].norm
    in_norm = [m for m in sweeps if m.norm == norm]
    budgets = sorted({m.eps or 0.0 for m in in_norm})
    eps = budgets[(len(budgets) - 1) // 2]
    at_eps = [m for m in in_norm if m.eps == eps]
    worst = min(at_eps, key=lambda m: value_of(m.metrics["robust_accuracy"]))
    robust = worst.metrics["robust_accuracy"]
    clean = worst.metrics.get("clean_accuracy")
    strongest = f" (the strongest of {len(at_eps)} attacks)" if len(at_eps) > 1 else ""
    start = f"Under {norm} {worst.attack} with eps {eps:g}{strongest}, accuracy"
    facts = []
    if robust.get("ci95"):
        facts.append(f"95% CI {pct_range(*robust['ci95'])}")
    if robust.get("n") is not None:
        facts.append(f"n={robust['n']}")
    detail = f" ({', '.join(facts)})" if facts else ""
    if clean is None or clean.get("value") is None:
        return f"{start} under attack is {pct(value_of(robust))}{detail}."
    if value_of(robust) >= value_of(clean):
        return f"{start} stays at {pct(value_of(robust))}{detail}."
    return f"{start} falls from {pct(value_of(clean))} to {pct(value_of(robust))}{detail}."


def robust_row(m: Measured) -> RobustRow:
    robust = m.metrics["robust_accuracy"]
    more = tuple((name.replace("_", " "), estimate(name, metric))
                 for name, metric in m.metrics.items() if name not in HEADLINE_METRICS)
    clean = m.metrics.get("clean_accuracy")
    return RobustRow(
        attack=m.attack,
        norm=m.norm,
        eps=f"{m.eps:g}",
        clean=estimate("clean_accuracy", clean) if clean is not None else Estimate("—"),
        robust=estimate("robust_accuracy", robust),
        n=str(robust.get("n", "—")),
        flags=tuple(code for code, _ in m.flags),
        more=more,
    )


def series_settings(sweeps: Sequence[Measured]) -> tuple[SeriesSettings, ...]:
    """The parameters each attack used at every epsilon (those that vary are left out)."""
    out = []
    for key in dict.fromkeys((m.probe, m.norm) for m in sweeps):
        runs = [m for m in sweeps if (m.probe, m.norm) == key]
        shared = {k: v for k, v in runs[0].params.items()
                  if k not in SERIES_HIDDEN_PARAMS and all(r.params.get(k) == v for r in runs)}
        out.append(SeriesSettings(runs[0].attack, runs[0].norm, params_text(shared)))
    return tuple(out)


def robustness_charts(sweeps: Sequence[Measured]) -> tuple[ChartView, ...]:
    """One chart per norm: epsilons under different norms are not on one scale."""
    charts = []
    for norm in dict.fromkeys(m.norm for m in sweeps):
        series = []
        for probe in dict.fromkeys(m.probe for m in sweeps if m.norm == norm):
            runs = sorted((m for m in sweeps if (m.probe, m.norm) == (probe, norm)),
                          key=lambda m: m.eps or 0.0)
            label = f"{runs[0].attack} ({probe})" if runs[0].attack != probe else probe
            series.append(svg.Series(label, _chart_points(runs, label)))
        chart = svg.line_chart(series, title=f"Robust accuracy against {norm} epsilon",
                               x_label=f"epsilon ({norm})", y_label="robust accuracy")
        caption = (f"Robust accuracy against the {norm} budget epsilon, one line per attack; "
                   "the shaded band (or bar) is the 95% interval. The point at epsilon 0 is clean "
                   "accuracy. Lower is worse for the model; the lowest line is the best estimate "
                   "of its robustness.")
        charts.append(ChartView(Markup(chart), caption))  # noqa: S704 (svg.py escapes all text)
    return tuple(charts)


def _chart_points(runs: Sequence[Measured], label: str) -> tuple[svg.Point, ...]:
    """The sweep, starting at eps 0 with clean accuracy (no budget means no attack)."""
    points = []
    clean = runs[0].metrics.get("clean_accuracy")
    if clean is not None and clean.get("value") is not None:
        points.append(chart_point(0.0, clean, f"{label}: clean accuracy"))
    for m in runs:
        robust = m.metrics["robust_accuracy"]
        if robust.get("value") is not None:
            points.append(chart_point(m.eps or 0.0, robust, f"{label}: eps {m.eps:g}"))
    return tuple(points)


def chart_point(x: float, metric: Mapping[str, Any], what: str) -> svg.Point:
    """A rate with its interval as a chart point whose tooltip repeats the numbers."""
    ci = metric.get("ci95")
    est = estimate("accuracy", metric)
    note = f"{what}: {est.value}"
    if ci:
        note += f" (95% CI {est.interval}" + (f", n={est.n})" if est.n else ")")
    lo, hi = (float(ci[0]), float(ci[1])) if ci else (None, None)
    return svg.Point(x, value_of(metric), lo, hi, note)


def other_row(m: Measured) -> OtherRow:
    return OtherRow(
        probe=m.probe,
        params=params_text(m.params),
        metrics=tuple((k.replace("_", " "), estimate(k, v)) for k, v in m.metrics.items()),
        flags=tuple(code for code, _ in m.flags),
    )


def flag_views(measured: Sequence[Measured], titles: Mapping[str, str] = FLAG_TITLES) -> tuple[FlagView, ...]:
    return tuple(FlagView(c, titles.get(c, c.replace("_", " ")), m.where, d)
                 for m in measured for c, d in m.flags)
