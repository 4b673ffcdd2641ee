"""The policy engine: controls from packs, evidence from an audit, findings out.

Policies never run models and attacks never decide pass or fail: this module only reads an
audit's evidence (an :class:`AuditResult` or its report.json dict) and applies, in order,
the control's condition (:mod:`guard.policies.judge`), the baseline
(:mod:`guard.policies.baseline`) and the waivers (:mod:`guard.policies.waivers`). The exit
code is data computed in one place, :func:`exit_code_for`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeAlias

from guard import SEVERITY_ORDER
from guard.errors import ConfigError
from guard.evidence import AuditResult, Finding
from guard.levels import FAILING, Severity
from guard.policies.baseline import KNOWN, Baseline, as_baseline
from guard.policies.catalogue import load_catalogue
from guard.policies.controls import Control
from guard.policies.judge import ERROR, FAIL, PASS, WAIVED, judge
from guard.policies.packs import Pack, available_packs, load_pack
from guard.policies.source import PolicyError, Problem
from guard.policies.thresholds import ThresholdOverrides, as_overrides
from guard.policies.waivers import Waiver, check_controls, choose, load_waivers

PackSpec: TypeAlias = Pack | str | Path
FAIL_ON_NEVER = "none"


def resolve_packs(packs: PackSpec | Sequence[PackSpec]) -> list[Pack]:
    """Pack objects from names, paths or packs (one or several)."""
    items = [packs] if isinstance(packs, Pack | str | Path) else list(packs)
    return [p if isinstance(p, Pack) else load_pack(p) for p in items]


def controls_of(packs: Iterable[Pack]) -> list[Control]:
    """Each control once, in pack order; one id with two definitions is an error."""
    seen: dict[str, Control] = {}
    for pack in packs:
        for control in pack.controls:
            first = seen.get(control.id)
            if first is None:
                seen[control.id] = control
            elif first.location != control.location:
                raise PolicyError(Problem(control.file, control.line,
                                          f"control id '{control.id}' is also defined at {first.location}"))
    return list(seen.values())


def _references(control: Control) -> dict[str, list[str]]:
    """Every framework of the catalogue, in order: a report can rely on the keys."""
    return {key: list(control.references.get(key, ())) for key in load_catalogue().frameworks}


def _known(controls: Sequence[Control]) -> list[Control]:
    """The controls a project-wide file (waivers, thresholds) may name: this run's and
    Guard's own. A project keeps one such file while runs pick different packs, so naming a
    baseline control this run does not load is fine; naming one that exists nowhere is a typo."""
    loaded = {c.id for c in controls}
    return [*controls, *(c for c in load_pack("baseline").controls if c.id not in loaded)]


def _waivers(waivers: Sequence[Waiver] | Path | str | None, controls: Sequence[Control]) -> list[Waiver]:
    if waivers is None:
        return []
    loaded = load_waivers(Path(waivers)) if isinstance(waivers, str | Path) else list(waivers)
    check_controls(loaded, {c.id for c in _known(controls)})
    return loaded


def check_inputs(
    packs: PackSpec | Sequence[PackSpec],
    *,
    thresholds: ThresholdOverrides | Mapping[str, Any] | None = None,
    waivers: Sequence[Waiver] | Path | str | None = None,
) -> ThresholdOverrides:
    """Check threshold overrides (names, kinds and ranges) and waivers against the packs'
    controls, and return the overrides: what :func:`evaluate` checks, callable before any
    audit runs so that a bad ``[thresholds]`` value fails in a second, not after the attacks."""
    controls = controls_of(resolve_packs(packs))
    overrides = as_overrides(thresholds)
    overrides.validate(_known(controls))
    _waivers(waivers, controls)
    return overrides


def evaluate(
    result: AuditResult | Mapping[str, Any],
    packs: PackSpec | Sequence[PackSpec],
    *,
    thresholds: ThresholdOverrides | Mapping[str, Any] | None = None,
    waivers: Sequence[Waiver] | Path | str | None = None,
    baseline: Baseline | Path | str | Sequence[Mapping[str, Any]] | None = None,
    today: dt.date | None = None,
) -> list[Finding]:
    """One finding per control of the packs (deduplicated by id), for one audited target.

    ``thresholds`` overrides control defaults (see :mod:`guard.policies.thresholds`);
    ``waivers`` and ``baseline`` may be given loaded or as file paths. Raises
    :class:`PolicyError` for a threshold or waiver naming something no loaded or shipped
    control declares.
    """
    from guard.serialization import audit_result_from_dict

    audit = result if isinstance(result, AuditResult) else audit_result_from_dict(dict(result))
    controls = controls_of(resolve_packs(packs))
    overrides = as_overrides(thresholds)
    overrides.validate(_known(controls))
    waiver_list = _waivers(waivers, controls)
    base = as_baseline(baseline)
    today = today or dt.date.today()
    target = str(audit.target.get("name", ""))
    return [_finding(c, audit, target, overrides, waiver_list, base, today) for c in controls]


def _finding(
    control: Control,
    audit: AuditResult,
    target: str,
    overrides: ThresholdOverrides,
    waivers: Sequence[Waiver],
    base: Baseline | None,
    today: dt.date,
) -> Finding:
    thresholds = overrides.for_control(control)
    outcome = judge(control, audit, thresholds)
    status, notes = outcome.status, [outcome.detail]
    mark = None
    if base is not None:
        mark, sentence = base.classify(control, outcome, target, thresholds)
        if sentence:
            notes.append(sentence)
    waiver_dict = None
    if status != PASS:
        waiver = choose(waivers, control.id, target, today)
        if waiver is not None:
            waiver_dict = waiver.to_dict(today)
            if waiver.expired(today):
                status = FAIL
                notes.append(f"Waiver expired on {waiver.expires.isoformat()} (approved by "
                             f"{waiver.approver}: {waiver.reason}); the control fails until the "
                             "waiver is renewed or the issue is fixed.")
            else:
                status = WAIVED
                notes.append(f"Waived until {waiver.expires.isoformat()} by {waiver.approver}: "
                             f"{waiver.reason}")
    return Finding(
        control=control.id,
        status=status,
        severity=control.severity,
        title=control.title,
        detail=" ".join(notes),
        evidence=outcome.evidence,
        references=_references(control),
        remediation=control.remediation,
        waiver=waiver_dict,
        baseline=mark if status in FAILING else None,
    )


def counts_against(finding: Finding) -> bool:
    """Whether a finding fails the gate: failing or erroring, and neither waived nor known
    from the baseline. An expired waiver always counts: the accepted risk needs review."""
    if finding.status not in FAILING:
        return False
    if finding.waiver is not None and finding.waiver.get("expired") is True:
        return True
    return finding.baseline != KNOWN


def exit_code_for(findings: Iterable[Finding], fail_on: str) -> int:
    """1 when a finding at or above severity ``fail_on`` counts against the gate, else 0.

    ``fail_on`` is a severity (info, low, medium, high, critical) or ``none`` (never fail).
    """
    return int(bool(gating_findings(findings, fail_on)))


def gating_findings(findings: Iterable[Finding], fail_on: str) -> list[Finding]:
    """The findings that fail the gate at ``fail_on``, most severe first: what
    :func:`exit_code_for` decides on, for messages and tables that must list them."""
    if fail_on in (FAIL_ON_NEVER, "never"):
        return []
    if fail_on not in SEVERITY_ORDER:
        raise ConfigError(f"fail-on must be one of {', '.join(SEVERITY_ORDER)} or never, got {fail_on!r}")
    floor = Severity.rank_of(fail_on)
    gating = [f for f in findings if counts_against(f) and Severity.rank_of(f.severity) >= floor]
    return sorted(gating, key=lambda f: -Severity.rank_of(f.severity))


__all__ = ["ERROR", "FAIL", "PASS", "WAIVED", "available_packs", "check_inputs", "controls_of",
           "counts_against", "evaluate", "exit_code_for", "gating_findings", "resolve_packs"]
