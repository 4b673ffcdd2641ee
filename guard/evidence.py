"""The currency that crosses every boundary: Evidence in, Finding out, AuditResult to reports.

Probes return :class:`Evidence` (measurements, never verdicts). The policy engine turns
evidence into :class:`Finding` objects. Reports render an :class:`AuditResult`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from guard.stats import Metric

SCHEMA = "guard.audit/1"


@dataclass(frozen=True, slots=True)
class Flag:
    """A validity warning about a measurement (AutoAttack's idea): the number may be wrong.

    ``code`` is stable (``non_monotone``, ``blackbox_beats_whitebox``, ``gradient_masking``,
    ...); ``detail`` is a sentence for people.
    """

    code: str
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "detail": self.detail}


@dataclass(frozen=True, slots=True)
class Curve:
    """A series such as robust accuracy against epsilon; points share the curve's n."""

    name: str
    x_label: str
    y_label: str
    points: tuple[tuple[float, Metric], ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "x": self.x_label,
            "y": self.y_label,
            "points": [{"x": x, **m.to_dict()} for x, m in self.points],
        }


@dataclass(slots=True)
class Evidence:
    """What one probe measured at one setting. Never a pass/fail verdict."""

    probe: str
    params: dict[str, Any]
    metrics: dict[str, Metric]
    flags: list[Flag] = field(default_factory=list)
    curves: list[Curve] = field(default_factory=list)
    seed: int | None = None
    duration_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "probe": self.probe,
            "params": dict(self.params),
            "metrics": {k: m.to_dict() for k, m in self.metrics.items()},
            "flags": [f.to_dict() for f in self.flags],
            "duration_s": round(self.duration_s, 4),
        }
        if self.curves:
            out["curves"] = [c.to_dict() for c in self.curves]
        if self.seed is not None:
            out["seed"] = self.seed
        return out


@dataclass(frozen=True, slots=True)
class Finding:
    """A control's verdict on the evidence (filled by the policy engine).

    ``status`` is pass, fail, waived, not_assessed or error. ``waiver`` is the waiver that
    governed the finding (with ``expired``), if any. ``baseline`` is set only for a failing
    finding judged against a baseline report: ``"known"`` (failed there too, not counted
    toward the exit code) or ``"new"``.
    """

    control: str
    status: str
    severity: str
    title: str
    detail: str = ""
    evidence: tuple[str, ...] = ()
    references: dict[str, list[str]] = field(default_factory=dict)
    remediation: str = ""
    waiver: dict[str, Any] | None = None
    baseline: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "control": self.control,
            "status": self.status,
            "severity": self.severity,
            "title": self.title,
            "references": self.references,
            "evidence": list(self.evidence),
            "detail": self.detail,
            "remediation": self.remediation,
            "waiver": self.waiver,
        }
        if self.baseline is not None:
            out["baseline"] = self.baseline
        return out


@dataclass(slots=True)
class AuditResult:
    """Everything one audit of one target produced; rendered by guard.reports."""

    target: dict[str, Any]
    evidence: list[Evidence]
    environment: dict[str, Any]
    findings: list[Finding] = field(default_factory=list)
    gate: dict[str, Any] | None = None
    """The audit service's gate decision (fail_on, passed, failing control ids), set once
    the findings are judged: what the verdict in every report shows."""

    def to_dict(self) -> dict[str, Any]:
        out = {
            "schema": SCHEMA,
            "target": self.target,
            "evidence": [e.to_dict() for e in self.evidence],
            "findings": [f.to_dict() for f in self.findings],
            "environment": self.environment,
        }
        if self.gate is not None:
            out["gate"] = dict(self.gate)
        return out
