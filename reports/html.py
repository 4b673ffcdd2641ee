"""The self-contained HTML report: view models first, then one Jinja2 template.

As in coverage.py's ``html.py``, the audit dicts are first turned into small frozen view
models in which every number is already formatted and every choice already made, so the
template only lays things out and the wording can be tested without parsing HTML. The
input is the plain dicts of report.json (not live objects), so ``guard report`` can
re-render an old audit and get the same page.

The template ships inside the package and renders with autoescape on: target names, model
classes and flag details may be chosen by whoever supplied the model and must never become
markup. The only markup passed through unescaped is the SVG chart, which
:mod:`guard.reports.svg` escapes itself.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup

import guard
from guard.fsio import atomic_write_text

from . import svg

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
}
ENV_LABELS = {
    "guard": "Guard", "python": "Python", "torch": "PyTorch", "art": "ART",
    "sklearn": "scikit-learn", "numpy": "NumPy", "seed": "Seed", "platform": "Platform",
    "started_at": "Started", "duration_s": "Duration",
}
STATUS_CLASSES = {"pass": "pass", "fail": "fail", "waived": "waived", "not assessed": "na"}
RATE_SUFFIXES = ("_accuracy", "_rate", "_share")
HEADLINE_METRICS = ("clean_accuracy", "robust_accuracy")
SERIES_HIDDEN_PARAMS = ("eps", "norm", "step_size")


# ---------------------------------------------------------------- view models


@dataclass(frozen=True, slots=True)
class Estimate:
    """A formatted measurement: ``41.2%``, its interval ``37.0–45.6%`` and its n."""

    value: str
    interval: str = ""
    n: str = ""


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
    norm: str
    svg: Markup


@dataclass(frozen=True, slots=True)
class OtherRow:
    """Evidence with no epsilon sweep (privacy, poisoning, scans): shown as measured."""

    probe: str
    params: str
    metrics: tuple[tuple[str, Estimate], ...]
    flags: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class FindingView:
    control: str
    status: str
    status_class: str
    severity: str
    title: str
    detail: str
    evidence: str
    references: tuple[str, ...]
    remediation: str


@dataclass(frozen=True, slots=True)
class EnvRow:
    """``volatile`` marks values that differ between identical audits (versions, dates)."""

    label: str
    value: str
    volatile: bool


@dataclass(frozen=True, slots=True)
class TargetView:
    anchor: str
    name: str
    facts: tuple[tuple[str, str], ...]
    headline: str
    rows: tuple[RobustRow, ...]
    settings: tuple[SeriesSettings, ...]
    charts: tuple[ChartView, ...]
    other: tuple[OtherRow, ...]
    flags: tuple[FlagView, ...]
    findings: tuple[FindingView, ...]
    finding_counts: str
    environment: tuple[EnvRow, ...]


@dataclass(frozen=True, slots=True)
class ReportView:
    title: str
    guard_version: str
    targets: tuple[TargetView, ...]


# ---------------------------------------------------------------- entry points


def render_html(results: Sequence[Mapping[str, Any]]) -> str:
    """The report page for audits given as report.json dicts (see :func:`read_json`)."""
    template = _environment().get_template("report.html.j2")
    return template.render(report=build_report(results))


def write_html(results: Sequence[Mapping[str, Any]], path: Path) -> None:
    """Render and write atomically: a reader never sees half a page."""
    atomic_write_text(Path(path), render_html(results))


@functools.cache
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("guard.reports", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


# ---------------------------------------------------------------- building


@dataclass(frozen=True, slots=True)
class _Measured:
    """One evidence entry, parsed once."""

    probe: str
    attack: str
    norm: str
    eps: float | None
    params: Mapping[str, Any]
    metrics: Mapping[str, Mapping[str, Any]]
    flags: tuple[tuple[str, str], ...]

    @property
    def where(self) -> str:
        if self.eps is None:
            return self.probe
        return f"{self.attack} {self.norm}, eps {self.eps:g}"


def build_report(results: Sequence[Mapping[str, Any]]) -> ReportView:
    targets = tuple(_target_view(i, audit) for i, audit in enumerate(results, start=1))
    names = ", ".join(t.name for t in targets) or "no targets"
    return ReportView(f"Guard audit report: {names}", guard.__version__, targets)


def _target_view(index: int, audit: Mapping[str, Any]) -> TargetView:
    target: Mapping[str, Any] = audit.get("target", {})
    model: Mapping[str, Any] = target.get("model") or {}
    measured = [_parse(ev) for ev in audit.get("evidence", [])]
    sweeps = [m for m in measured if m.eps is not None]
    findings = tuple(_finding_view(f) for f in audit.get("findings", []))
    return TargetView(
        anchor=f"target-{index}",
        name=_text(target.get("name", "unnamed target")),
        facts=_facts(target, model),
        headline=_headline(sweeps),
        rows=tuple(_robust_row(m) for m in _ordered(sweeps)),
        settings=_series_settings(sweeps),
        charts=_charts(sweeps),
        other=tuple(_other_row(m) for m in measured if m.eps is None),
        flags=tuple(FlagView(c, FLAG_TITLES.get(c, c.replace("_", " ")), m.where, d)
                    for m in measured for c, d in m.flags),
        findings=findings,
        finding_counts=_finding_counts(findings),
        environment=_environment_rows(audit.get("environment", {})),
    )


def _parse(ev: Mapping[str, Any]) -> _Measured:
    params: Mapping[str, Any] = ev.get("params", {})
    metrics: Mapping[str, Mapping[str, Any]] = ev.get("metrics", {})
    eps: Any = params.get("eps")
    robust = metrics.get("robust_accuracy") or {}
    swept = (isinstance(eps, (int, float)) and not isinstance(eps, bool)
             and robust.get("value") is not None)
    probe = _text(ev["probe"])
    short = probe.rsplit(".", 1)[-1]
    norm = _text(params.get("norm", "inf"))
    return _Measured(
        probe=probe,
        attack=ATTACK_NAMES.get(short, short),
        norm=NORM_LABELS.get(norm, f"L{norm}"),
        eps=float(eps) if swept else None,
        params=params,
        metrics=metrics,
        flags=tuple((_text(f["code"]), _text(f.get("detail", ""))) for f in ev.get("flags", [])),
    )


def _ordered(sweeps: Sequence[_Measured]) -> list[_Measured]:
    """Series in the order the audit ran them, each by increasing epsilon."""
    keys = list(dict.fromkeys((m.probe, m.norm) for m in sweeps))
    return sorted(sweeps, key=lambda m: (keys.index((m.probe, m.norm)), m.eps or 0.0))


def _headline(sweeps: Sequence[_Measured]) -> str:
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
    worst = min(at_eps, key=lambda m: _value(m.metrics["robust_accuracy"]))
    robust = worst.metrics["robust_accuracy"]
    clean = worst.metrics.get("clean_accuracy")
    strongest = f" (the strongest of {len(at_eps)} attacks)" if len(at_eps) > 1 else ""
    start = f"Under {norm} {worst.attack} with eps {eps:g}{strongest}, accuracy"
    facts = []
    if robust.get("ci95"):
        facts.append(f"95% CI {_pct_range(*robust['ci95'])}")
    if robust.get("n") is not None:
        facts.append(f"n={robust['n']}")
    detail = f" ({', '.join(facts)})" if facts else ""
    if clean is None:
        return f"{start} under attack is {_pct(_value(robust))}{detail}."
    if _value(robust) >= _value(clean):
        return f"{start} stays at {_pct(_value(robust))}{detail}."
    return f"{start} falls from {_pct(_value(clean))} to {_pct(_value(robust))}{detail}."


def _robust_row(m: _Measured) -> RobustRow:
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


def _series_settings(sweeps: Sequence[_Measured]) -> tuple[SeriesSettings, ...]:
    """The parameters each attack used at every epsilon (those that vary are left out)."""
    out = []
    for key in dict.fromkeys((m.probe, m.norm) for m in sweeps):
        runs = [m for m in sweeps if (m.probe, m.norm) == key]
        shared = {k: v for k, v in runs[0].params.items()
                  if k not in SERIES_HIDDEN_PARAMS and all(r.params.get(k) == v for r in runs)}
        out.append(SeriesSettings(runs[0].attack, runs[0].norm, _params_text(shared)))
    return tuple(out)


def _charts(sweeps: Sequence[_Measured]) -> tuple[ChartView, ...]:
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
        charts.append(ChartView(norm, Markup(chart)))  # noqa: S704 (svg.py escapes all text)
    return tuple(charts)


def _chart_points(runs: Sequence[_Measured], label: str) -> tuple[svg.Point, ...]:
    """The sweep, starting at eps 0 with clean accuracy (no budget means no attack)."""
    points = []
    clean = runs[0].metrics.get("clean_accuracy")
    if clean is not None and clean.get("value") is not None:
        points.append(_point(0.0, clean, f"{label}: clean accuracy"))
    for m in runs:
        robust = m.metrics["robust_accuracy"]
        if robust.get("value") is not None:
            points.append(_point(m.eps or 0.0, robust, f"{label}: eps {m.eps:g}"))
    return tuple(points)


def _point(x: float, metric: Mapping[str, Any], what: str) -> svg.Point:
    ci = metric.get("ci95")
    est = estimate("accuracy", metric)
    note = f"{what}: {est.value}" + (f" (95% CI {est.interval}, n={est.n})" if ci else "")
    lo, hi = (float(ci[0]), float(ci[1])) if ci else (None, None)
    return svg.Point(x, _value(metric), lo, hi, note)


def _other_row(m: _Measured) -> OtherRow:
    return OtherRow(
        probe=m.probe,
        params=_params_text(m.params),
        metrics=tuple((k.replace("_", " "), estimate(k, v)) for k, v in m.metrics.items()),
        flags=tuple(code for code, _ in m.flags),
    )


def _finding_view(f: Mapping[str, Any]) -> FindingView:
    status = _text(f.get("status", ""))
    refs: Mapping[str, Any] = f.get("references") or {}
    return FindingView(
        control=_text(f["control"]),
        status=status,
        status_class=STATUS_CLASSES.get(status, "other"),
        severity=_text(f.get("severity", "")),
        title=_text(f.get("title", "")),
        detail=_text(f.get("detail", "")),
        evidence=", ".join(_text(e) for e in f.get("evidence", [])),
        references=tuple(f"{_text(k)}: {'; '.join(_text(r) for r in v)}" for k, v in refs.items()),
        remediation=_text(f.get("remediation", "")),
    )


def _finding_counts(findings: Sequence[FindingView]) -> str:
    counts: dict[str, int] = {}
    for f in findings:
        counts[f.status] = counts.get(f.status, 0) + 1
    return ", ".join(f"{n} {status}" for status, n in counts.items())


def _facts(target: Mapping[str, Any], model: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    spec: Mapping[str, Any] = target.get("input") or {}
    shape = spec.get("shape")
    clip = spec.get("clip")
    facts = [
        ("Framework", _text(target.get("framework", "unknown"))),
        ("Model class", _text(model.get("class", "unknown"))),
        ("Input shape", " × ".join(str(d) for d in shape) if shape else "not declared"),
        ("Input range", f"[{clip[0]:g}, {clip[1]:g}]" if clip else "unbounded (none declared)"),
        ("Evaluation samples", _text(target.get("n_eval", "unknown"))),
    ]
    if target.get("n_classes") is not None:
        facts.append(("Classes", _text(target["n_classes"])))
    if model.get("parameters") is not None:
        facts.append(("Parameters", f"{int(model['parameters']):,}"))
    if model.get("format"):
        facts.append(("Loaded from", _text(model["format"])))
    if target.get("artifact"):
        facts.append(("Artifact", _text(target["artifact"])))
    return tuple(facts)


def _environment_rows(env: Mapping[str, Any]) -> tuple[EnvRow, ...]:
    ordered = [k for k in ENV_LABELS if k in env] + [k for k in env if k not in ENV_LABELS]
    rows = []
    for key in ordered:
        value = env[key]
        shown = f"{value:.1f} s" if key == "duration_s" and isinstance(value, (int, float)) \
            else _text(value)
        rows.append(EnvRow(ENV_LABELS.get(key, key), shown, key != "seed"))
    return tuple(rows)


# ---------------------------------------------------------------- formatting


def estimate(name: str, metric: Mapping[str, Any]) -> Estimate:
    """Rates as percentages with their interval; other quantities to four digits."""
    value = metric.get("value")
    n = metric.get("n")
    ci = metric.get("ci95")
    n_text = "" if n is None else str(n)
    if value is None:
        return Estimate("not measured", "", n_text)
    if name.endswith(RATE_SUFFIXES) or name == "accuracy":
        interval = _pct_range(ci[0], ci[1], 1) if ci else ""
        return Estimate(_pct(value, 1), interval, n_text)
    interval = f"{ci[0]:.4g}–{ci[1]:.4g}" if ci else ""
    return Estimate(f"{value:.4g}", interval, n_text)


def _pct(value: float, digits: int = 0) -> str:
    """A percentage that never rounds a non-zero rate to 0% or a shortfall to 100%."""
    text = f"{value * 100:.{digits}f}"
    for extra in (1, 2):
        if not ((value > 0 and float(text) == 0) or (value < 1 and float(text) == 100)):
            break
        text = f"{value * 100:.{digits + extra}f}"
    return text + "%"


def _pct_range(lo: float, hi: float, digits: int = 0) -> str:
    """``37–45%``: one percent sign reads more easily than two."""
    return f"{_pct(lo, digits).removesuffix('%')}–{_pct(hi, digits)}"


def _value(metric: Mapping[str, Any]) -> float:
    value = metric.get("value")
    return float(value) if value is not None else float("nan")


def _params_text(params: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={_text(v)}" for k, v in params.items())


def _text(value: Any) -> str:
    """Any JSON value as display text (escaping is the template's job, not this one's)."""
    if isinstance(value, str):
        return value
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, bool) or value is None or isinstance(value, (list, dict)):
        return json.dumps(value, ensure_ascii=False)
    return str(value)
