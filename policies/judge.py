"""One control against one audit's evidence: the verdict and a sentence that explains it.

Evidence arrives as the typed record (:class:`~guard.evidence.AuditResult`); a stored report
is read back into the same objects first, so a live audit and a re-evaluation of an old
report are judged by the same code. A control
with ``scope: each`` is evaluated on every matching measurement (each attack at each
epsilon) and fails if any one fails; the detail names the failing measurements with the
numbers the condition read, so a reader sees *why* without opening the evidence.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from guard.evidence import AuditResult, Evidence
from guard.levels import Status
from guard.policies.catalogue import load_catalogue
from guard.policies.controls import Control
from guard.policies.expressions import EvaluationError, metric_binding, plain_binding

PASS, FAIL, WAIVED, NOT_ASSESSED, ERROR = (Status.PASS, Status.FAIL, Status.WAIVED, Status.NOT_ASSESSED,
                                          Status.ERROR)
STATUSES = tuple(Status)
# FAILING (fail and error): an error means the control could not be decided, and a gate that
# passed because its condition broke would be exactly the silent pass Guard refuses.

_SHOWN_ITEMS = 5


@dataclass(frozen=True, slots=True)
class Outcome:
    """A control's verdict on one audit; ``failing`` names the measurements that failed
    or errored (``"*"`` for a ``scope: all`` control), which is what a baseline compares."""

    status: str
    detail: str
    evidence: tuple[str, ...]
    failing: frozenset[str]


@dataclass(frozen=True, slots=True)
class _Item:
    label: str
    binding: dict[str, Any]


def _label(entry: Evidence) -> str:
    probe = entry.probe
    spec = load_catalogue().evidence.get(probe)
    params = entry.params
    shown = [f"{k}={_fmt(params[k])}" for k in (spec.key if spec else ()) if k in params]
    return f"{probe} ({', '.join(shown)})" if shown else probe


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _items(control: Control, audit: AuditResult) -> list[_Item]:
    items = []
    wanted = set(control.evidence)
    for entry in audit.evidence:
        if entry.probe not in wanted:
            continue
        binding = {
            "probe": entry.probe,
            "params": plain_binding(entry.params),
            "metrics": {k: metric_binding(_finite(m.to_dict())) for k, m in entry.metrics.items()},
            "flags": [f.code for f in entry.flags],
        }
        items.append(_Item(_label(entry), binding))
    return items


def _finite(metric: dict[str, Any]) -> dict[str, Any]:
    """A non-finite value reads as null, as report.json stores it: a condition on it errors."""
    value = metric.get("value")
    if isinstance(value, float) and not math.isfinite(value):
        metric["value"] = None
    return metric


def _null_metrics(control: Control, binding: Mapping[str, Any]) -> list[str]:
    metrics = binding["metrics"]
    names = {name for name, _ in control.condition.analysis.metrics}
    return sorted(n for n in names if n in metrics and metrics[n]["value"] is None)


def _numbers(control: Control, binding: Mapping[str, Any]) -> str:
    """The metrics the condition reads, as 'name value [lo, hi] n=N'."""
    parts = []
    seen: set[str] = set()
    for name, _ in control.condition.analysis.metrics:
        metric = binding["metrics"].get(name)
        if name in seen or metric is None or metric["value"] is None:
            continue
        seen.add(name)
        text = f"{name} {_fmt(metric['value'])}"
        if metric["lower"] != metric["upper"]:
            text += f" [{_fmt(metric['lower'])}, {_fmt(metric['upper'])}]"
        if metric["n"] is not None:
            text += f" n={metric['n']}"
        parts.append(text)
    flags = binding["flags"]
    if "flags" in control.condition.analysis.variables and flags:
        parts.append("flags " + ", ".join(flags))
    return "; ".join(parts)


def _listing(entries: Sequence[str]) -> str:
    shown = list(entries[:_SHOWN_ITEMS])
    if len(entries) > _SHOWN_ITEMS:
        shown.append(f"and {len(entries) - _SHOWN_ITEMS} more")
    return "; ".join(shown)


def _missing(control: Control, required: str) -> Outcome:
    names = ", ".join(control.evidence)
    if control.when_missing == FAIL:
        return Outcome(FAIL, f"Required: {required}. No evidence from {names}: the audit did not run these "
                             "probes, and this control fails without them.", (), frozenset({"*"}))
    return Outcome(NOT_ASSESSED, f"Not assessed: no evidence from {names}. Run a probe that produces it "
                                 "to assess this control.", (), frozenset())


def judge(control: Control, audit: AuditResult, thresholds: Mapping[str, Any]) -> Outcome:
    """The control's verdict on one audit."""
    required = control.describe_check(thresholds)
    context = {"thresholds": plain_binding(thresholds), "target": plain_binding(audit.target)}
    items = _items(control, audit)
    errors: list[str] = []
    failing: set[str] = set()
    if control.where is not None and items:
        before = len(items)
        kept = []
        for item in items:
            try:
                if control.where.holds({**item.binding, **context}):
                    kept.append(item)
            except EvaluationError as exc:
                errors.append(f"{item.label}: 'where' could not be evaluated: {exc}")
                failing.add(item.label)
        items = kept
        if not items and not errors:
            return Outcome(NOT_ASSESSED, f"Not assessed: none of the {before} measurements from "
                                         f"{', '.join(control.evidence)} matched the control's 'where' "
                                         f"({control.where.source.strip()}).", (), frozenset())
    probes = tuple(dict.fromkeys(item.binding["probe"] for item in items))
    if not items and not errors:
        return _missing(control, required)
    if control.scope == "all":
        binding = {"evidence": [item.binding for item in items], **context}
        try:
            ok = control.condition.holds(binding)
        except EvaluationError as exc:
            detail = f"Could not evaluate: {exc}. Required: {required}."
            return Outcome(ERROR, detail, probes, frozenset({"*"}))
        if ok:
            return Outcome(PASS, f"Met: {required} ({len(items)} measurements).", probes, frozenset())
        return Outcome(FAIL, f"Not met: {required} ({len(items)} measurements).", probes, frozenset({"*"}))
    total = len(items) + len(errors)
    failed: list[str] = []
    for item in items:
        binding = {**item.binding, **context}
        null = _null_metrics(control, binding)
        try:
            if null:
                raise EvaluationError(f"metric {', '.join(null)} is null (not a finite number)")
            ok = control.condition.holds(binding)
        except EvaluationError as exc:
            errors.append(f"{item.label}: {exc}")
            failing.add(item.label)
            continue
        if not ok:
            numbers = _numbers(control, binding)
            failed.append(f"{item.label}: {numbers}" if numbers else item.label)
            failing.add(item.label)
    if failed:
        detail = (f"Required: {required}. Not met by {len(failed)} of {total} measurements: "
                  f"{_listing(failed)}.")
        if errors:
            detail += f" Could not evaluate {len(errors)}: {_listing(errors)}."
        return Outcome(FAIL, detail, probes, frozenset(failing))
    if errors:
        detail = (f"Could not evaluate {len(errors)} of {total} measurements: {_listing(errors)}. "
                  f"Required: {required}.")
        return Outcome(ERROR, detail, probes, frozenset(failing))
    detail = f"Met: {required} (all {total} measurements from {', '.join(probes)})."
    return Outcome(PASS, detail, probes, frozenset())
