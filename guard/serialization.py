"""Rebuild Evidence, Findings and AuditResults from report.json dicts.

Used to merge audits done in other processes (pytest-xdist workers) and to re-render
reports without re-running attacks. Unknown keys are ignored so newer documents of the same
schema still read.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from guard.evidence import AuditResult, Curve, Evidence, Finding, Flag
from guard.stats import Metric


def evidence_from_dict(data: dict[str, Any]) -> Evidence:
    curves = [
        Curve(
            name=c["name"],
            x_label=c["x"],
            y_label=c["y"],
            points=tuple((float(p["x"]), Metric.from_dict(p)) for p in c["points"]),
        )
        for c in data.get("curves", [])
    ]
    return Evidence(
        probe=data["probe"],
        params=dict(data.get("params") or {}),
        metrics={k: Metric.from_dict(v) for k, v in (data.get("metrics") or {}).items()
                 if isinstance(v, dict)},
        flags=[Flag(str(f.get("code")), str(f.get("detail", ""))) for f in data.get("flags") or []
               if isinstance(f, dict)],
        curves=curves,
        seed=data.get("seed"),
        duration_s=float(data.get("duration_s", 0.0)),
    )


def finding_from_dict(data: dict[str, Any]) -> Finding:
    known = {f.name for f in dataclasses.fields(Finding)}
    values = {k: v for k, v in data.items() if k in known}
    if "evidence" in values:
        values["evidence"] = tuple(values["evidence"])
    return Finding(**values)


def audit_result_from_dict(data: dict[str, Any]) -> AuditResult:
    return AuditResult(
        target=dict(data.get("target") or {}),
        evidence=[evidence_from_dict(e) for e in data.get("evidence", [])],
        environment=dict(data.get("environment", {})),
        findings=[finding_from_dict(f) for f in data.get("findings", [])],
        gate=dict(data["gate"]) if isinstance(data.get("gate"), dict) else None,
    )
