"""View models of the HTML page: every number formatted and every choice made before rendering.

As in coverage.py's ``html.py``, the audit dicts are first turned into small frozen view
models, so the template only lays things out and the wording can be tested without parsing
HTML. The input is the plain dicts of report.json (not live objects), so ``guard report``
re-renders an old audit into the same page. The parts live beside this module:
:mod:`.evasion` (the sweep), :mod:`.membership`, :mod:`.extraction` and :mod:`.pii` (the
privacy part: numbers, plain words and charts), :mod:`.charts` (detection),
:mod:`.poisoning` (susceptibility curves, the backdoor scan's reversed trigger),
:mod:`.compliance` (summary, view by regulation, findings, waivers).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import guard
from guard.evidence import SCHEMA

from .charts import detection_charts
from .compliance import ComplianceView, SummaryView, compliance_view, summary_view
from .evasion import (
    FLAG_TITLES,
    ChartView,
    FlagView,
    Measured,
    OtherRow,
    RobustRow,
    SeriesSettings,
    flag_views,
    headline,
    ordered,
    other_row,
    parse,
    robust_row,
    robustness_charts,
    series_settings,
)
from .extraction import FLAG_TITLES as EXTRACTION_FLAG_TITLES
from .extraction import ExtractionView, extraction_view, in_section_table
from .findings import finding_records
from .membership import FLAG_TITLES as MEMBERSHIP_FLAG_TITLES
from .membership import MEMBERSHIP_PROBE, MembershipView, membership_view
from .pii import PII_PROBE, PiiView, pii_view
from .poisoning import poisoning_charts
from .text import plural, text

ENV_LABELS = {
    "guard": "Guard", "python": "Python", "torch": "PyTorch", "art": "ART",
    "sklearn": "scikit-learn", "numpy": "NumPy", "seed": "Seed", "platform": "Platform",
    "started_at": "Started", "duration_s": "Duration",
}
STABLE_ENV_KEYS = frozenset({"seed"})
"""Environment values that are the same in two identical audits (everything else is volatile:
versions, dates, the platform), which the stored expected page blanks out."""
DIGEST_LABELS = {"model": "Model file", "data": "Evaluation data", "eval": "Evaluation data",
                 "train": "Training data"}


@dataclass(frozen=True, slots=True)
class EnvRow:
    """``volatile`` marks values that differ between identical audits (versions, dates)."""

    label: str
    value: str
    volatile: bool


@dataclass(frozen=True, slots=True)
class ReproView:
    """What someone needs to repeat the audit and get the same numbers."""

    environment: tuple[EnvRow, ...]
    seeds: str
    digests: tuple[tuple[str, str], ...]
    probes: tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class TargetView:
    anchor: str
    name: str
    facts: tuple[tuple[str, str], ...]
    headline: str
    rows: tuple[RobustRow, ...]
    settings: tuple[SeriesSettings, ...]
    charts: tuple[ChartView, ...]
    evidence_charts: tuple[ChartView, ...]
    """Every chart of the privacy part, in order: membership ROC, extraction, detection."""
    membership: MembershipView | None
    extraction: ExtractionView | None
    pii: PiiView | None
    detection: tuple[ChartView, ...]
    poisoning: tuple[ChartView, ...]
    other: tuple[OtherRow, ...]
    flags: tuple[FlagView, ...]
    compliance: ComplianceView
    reproducibility: ReproView


@dataclass(frozen=True, slots=True)
class ReportView:
    title: str
    guard_version: str
    schema: str
    summary: SummaryView
    targets: tuple[TargetView, ...]


def build_report(results: Sequence[Mapping[str, Any]]) -> ReportView:
    """The page's view model for audits given as report.json dicts."""
    targets = tuple(_target_view(i, audit) for i, audit in enumerate(results, start=1))
    names = ", ".join(t.name for t in targets) or "no targets"
    summary = summary_view([(f"target-{i}", _name(audit), finding_records(audit))
                            for i, audit in enumerate(results, start=1)],
                           [audit.get("gate") for audit in results])
    return ReportView(f"Guard audit report: {names}", guard.__version__, SCHEMA, summary, targets)


def _name(audit: Mapping[str, Any]) -> str:
    target: Mapping[str, Any] = audit.get("target") or {}
    return text(target.get("name", "unnamed target"))


def _target_view(index: int, audit: Mapping[str, Any]) -> TargetView:
    target: Mapping[str, Any] = audit.get("target") or {}
    model: Mapping[str, Any] = target.get("model") or {}
    measured = [parse(ev) for ev in audit.get("evidence") or ()]
    sweeps = [m for m in measured if m.eps is not None]
    membership, extraction = membership_view(measured), extraction_view(measured)
    detection = tuple(detection_charts(measured))
    return TargetView(
        anchor=f"target-{index}",
        name=_name(audit),
        facts=_facts(target, model),
        headline=headline(sweeps),
        rows=tuple(robust_row(m) for m in ordered(sweeps)),
        settings=series_settings(sweeps),
        charts=robustness_charts(sweeps),
        evidence_charts=(*(membership.charts if membership else ()),
                         *(extraction.charts if extraction else ()), *detection),
        membership=membership,
        extraction=extraction,
        pii=pii_view(measured),
        detection=detection,
        poisoning=poisoning_charts(measured),
        other=tuple(other_row(m) for m in measured if m.eps is None and not in_privacy_section(m)),
        flags=flag_views(measured, {**FLAG_TITLES, **MEMBERSHIP_FLAG_TITLES, **EXTRACTION_FLAG_TITLES}),
        compliance=compliance_view(finding_records(audit), audit.get("gate")),
        reproducibility=_reproducibility(audit, target),
    )


def in_privacy_section(m: Measured) -> bool:
    """Whether the privacy part of the page shows this entry in full (its table holds every
    metric and setting), so the table of other measurements need not repeat it."""
    return m.probe in (MEMBERSHIP_PROBE, PII_PROBE) or in_section_table(m)


def _facts(target: Mapping[str, Any], model: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    spec: Mapping[str, Any] = target.get("input") or {}
    shape = spec.get("shape")
    clip = spec.get("clip")
    facts = [
        ("Framework", text(target.get("framework", "unknown"))),
        ("Model class", text(model.get("class", "unknown"))),
        ("Input shape", " × ".join(str(d) for d in shape) if shape else "not declared"),
        ("Input range", f"[{clip[0]:g}, {clip[1]:g}]" if clip else "unbounded (none declared)"),
        ("Evaluation samples", text(target.get("n_eval", "unknown"))),
    ]
    if target.get("n_classes") is not None:
        facts.append(("Classes", text(target["n_classes"])))
    if model.get("parameters") is not None:
        facts.append(("Parameters", f"{int(model['parameters']):,}"))
    if model.get("format"):
        facts.append(("Loaded from", text(model["format"])))
    if target.get("artifact"):
        facts.append(("Artifact", text(target["artifact"])))
    return tuple(facts)


def _reproducibility(audit: Mapping[str, Any], target: Mapping[str, Any]) -> ReproView:
    evidence = [ev for ev in audit.get("evidence") or () if isinstance(ev, Mapping)]
    seeds = list(dict.fromkeys(text(ev["seed"]) for ev in evidence if ev.get("seed") is not None))
    digests = target.get("digests")
    digest_rows = tuple((DIGEST_LABELS.get(text(k), text(k)), text(v)) for k, v in digests.items()) \
        if isinstance(digests, Mapping) else ()
    return ReproView(
        environment=_environment_rows(audit.get("environment") or {}),
        seeds=", ".join(seeds) if seeds else "none recorded",
        digests=digest_rows,
        probes=_probe_runs(evidence),
    )


def _probe_runs(evidence: Sequence[Mapping[str, Any]]) -> tuple[tuple[str, str], ...]:
    """Each probe once, with how many measurements it made: the audit's plan, in run order."""
    counts: dict[str, int] = {}
    for ev in evidence:
        probe = text(ev.get("probe", ""))
        counts[probe] = counts.get(probe, 0) + 1
    return tuple((probe, plural(n, "measurement")) for probe, n in counts.items())


def _duration(value: Any) -> str:
    return f"{value:.1f} s" if isinstance(value, (int, float)) and not isinstance(value, bool) else ""


def _environment_rows(env: Mapping[str, Any]) -> tuple[EnvRow, ...]:
    ordered_keys = [k for k in ENV_LABELS if k in env] + [k for k in env if k not in ENV_LABELS]
    rows = []
    for key in ordered_keys:
        value = env[key]
        shown = _duration(value) if key == "duration_s" else text(value)
        rows.append(EnvRow(ENV_LABELS.get(key, text(key)), shown or text(value), key not in STABLE_ENV_KEYS))
    return tuple(rows)
