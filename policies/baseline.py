"""Baselines: gate on what got worse since a stored report, not on debt already known.

A project adopting Guard on an existing model usually starts with failures it cannot fix
this week. ``--baseline report.json`` keeps them visible but stops them failing CI. Each
failing finding is marked (``Finding.baseline``):

* ``"known"`` - the control also failed for the same target in the baseline, and nothing
  new fails: every measurement failing now (e.g. ``evasion.pgd (eps=0.1, norm=inf)``) failed
  then too. Still reported as ``fail``; does not count toward the exit code.
* ``"new"`` - anything else: the target or the control is new, it passed before, or a
  measurement fails now that did not (worse than the baseline). Counts as usual.

The baseline's evidence is re-judged with today's control and thresholds, so a stricter
threshold shows up as new failures rather than hiding behind an old verdict. Where the
baseline holds no evidence for the control, its recorded finding status is used instead.
Passing findings carry no mark; one that failed in the baseline says "fixed" in its detail.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from guard.evidence import AuditResult
from guard.levels import FAILING
from guard.policies.controls import Control
from guard.policies.judge import NOT_ASSESSED, PASS, Outcome, judge

NEW, KNOWN = "new", "known"


@dataclass(frozen=True, slots=True)
class Baseline:
    """Audits of a stored report, by target name."""

    audits: Mapping[str, AuditResult]
    file: str = "baseline"

    @classmethod
    def from_audits(cls, audits: Sequence[Mapping[str, Any] | AuditResult],
                    file: str = "baseline") -> Baseline:
        """The earlier audits by target name, read into the typed record."""
        from guard.serialization import audit_result_from_dict

        read = [a if isinstance(a, AuditResult) else audit_result_from_dict(dict(a)) for a in audits]
        return cls(audits={str(a.target.get("name", "")): a for a in read}, file=file)

    def _recorded(self, audit: AuditResult, control_id: str) -> str | None:
        for finding in audit.findings:
            if finding.control == control_id:
                return str(finding.status)
        return None

    def classify(
        self, control: Control, now: Outcome, target: str, thresholds: Mapping[str, Any]
    ) -> tuple[str | None, str]:
        """(mark, sentence) for a finding; mark is None for a passing one."""
        audit = self.audits.get(target)
        if audit is None:
            if now.status not in FAILING:
                return None, ""
            return NEW, f"New: target '{target}' is not in the baseline {self.file}."
        before = judge(control, audit, thresholds)
        failed_before = before.status in FAILING or (
            before.status == NOT_ASSESSED and self._recorded(audit, control.id) in FAILING
        )
        if now.status not in FAILING:
            fixed = failed_before and now.status == PASS
            return (None, f"Fixed since the baseline {self.file}.") if fixed else (None, "")
        if not failed_before:
            return NEW, f"New since the baseline {self.file}."
        worse = sorted(now.failing - before.failing) if before.status in FAILING else []
        if worse:
            return NEW, f"Worse than the baseline {self.file}: newly failing {', '.join(worse)}."
        return KNOWN, f"Known: also failing in the baseline {self.file}; not counted toward the exit code."


def load_baseline(path: Path) -> Baseline:
    """A baseline from a report.json (either shape), read as ``guard report`` reads one: bounded,
    validated against the shipped schema; a bad file fails with the reader's one-line message."""
    from guard.reports.json_report import read_json

    return Baseline.from_audits(read_json(Path(path), what="baseline"), file=str(path))


def as_baseline(baseline: Baseline | Path | str | Sequence[Mapping[str, Any]] | None) -> Baseline | None:
    if baseline is None or isinstance(baseline, Baseline):
        return baseline
    if isinstance(baseline, str | Path):
        return load_baseline(Path(baseline))
    return Baseline.from_audits(baseline)
