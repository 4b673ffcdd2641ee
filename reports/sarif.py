"""report.sarif: findings as SARIF 2.1.0, for code-scanning dashboards and CI annotations.

Controls become rules (``tool.driver.rules``) and findings that need attention become
results: a failing or erroring control is a result at the level its severity maps to; a
waived one is a result with an external suppression carrying the waiver's justification,
so a dashboard shows the accepted risk as accepted rather than hiding it. Passing and
unassessed controls are not results (SARIF has no use for "nothing found"), but their rules
are still listed so a reader sees what was checked.

One run holds every target of the report; each result locates its target by the model
artifact's path when the audit had one, and always by the target's name as a logical
location. The document is deterministic (no timestamps) so two identical audits give the
same file and a diff of two reports shows only what changed.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any
from urllib.parse import quote

import guard
from guard.fsio import atomic_write_text

from .findings import ERROR, FAIL, WAIVED, FindingRecord, finding_records
from .json_report import run_id_of
from .text import text

SARIF_VERSION = "2.1.0"
SARIF_SCHEMA_URI = "https://json.schemastore.org/sarif-2.1.0.json"
LEVELS = {"critical": "error", "high": "error", "medium": "warning", "low": "note", "info": "note"}
SECURITY_SEVERITY = {"critical": "9.5", "high": "8.0", "medium": "5.5", "low": "3.0", "info": "0.0"}
"""GitHub code scanning ranks security results by this CVSS-like score in rule properties."""
RESULT_STATUSES = frozenset({FAIL, ERROR, WAIVED})


def sarif_document(audits: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The SARIF log for audits given as report.json dicts."""
    per_target = [(audit, finding_records(audit)) for audit in audits]
    rules: dict[str, FindingRecord] = {}
    for _, findings in per_target:
        for f in findings:
            rules.setdefault(f.control, f)
    index = {control: i for i, control in enumerate(rules)}
    results = [_result(audit, f, index[f.control])
               for audit, findings in per_target for f in findings if f.status in RESULT_STATUSES]
    driver: dict[str, Any] = {"name": "Guard", "version": _version(audits),
                              "rules": [_rule(f) for f in rules.values()]}
    run: dict[str, Any] = {"tool": {"driver": driver}, "columnKind": "unicodeCodePoints", "results": results}
    run_id = run_id_of(audits)
    if run_id:
        run = {"properties": {"guard.run_id": run_id}, **run}
    return {"$schema": SARIF_SCHEMA_URI, "version": SARIF_VERSION, "runs": [run]}


def render_sarif(audits: Sequence[Mapping[str, Any]]) -> str:
    from guard.textsafe import json_text, valid_document

    text = json.dumps(valid_document(sarif_document(audits)), indent=2, ensure_ascii=False)
    return json_text(text) + "\n"


def write_sarif(audits: Sequence[Mapping[str, Any]], path: Path) -> None:
    """Write report.sarif atomically."""
    atomic_write_text(Path(path), render_sarif(audits))


def _version(audits: Sequence[Mapping[str, Any]]) -> str:
    """The Guard that judged the findings (recorded in the audit), else this one."""
    for audit in audits:
        recorded = (audit.get("environment") or {}).get("guard")
        if isinstance(recorded, str) and recorded:
            return recorded
    return guard.__version__


def _rule(f: FindingRecord) -> dict[str, Any]:
    rule: dict[str, Any] = {
        "id": f.control,
        "name": _rule_name(f.title or f.control),
        "shortDescription": {"text": f.title or f.control},
    }
    if f.rationale:
        rule["fullDescription"] = {"text": f.rationale}
    if f.remediation:
        rule["help"] = {"text": f.remediation}
    rule["defaultConfiguration"] = {"level": LEVELS.get(f.severity, "warning")}
    rule["properties"] = {
        "severity": f.severity,
        "security-severity": SECURITY_SEVERITY.get(f.severity, "5.5"),
        "tags": ["security", *f.reference_labels],
    }
    return rule


def _rule_name(title: str) -> str:
    """SARIF's convention for ``name``: a readable identifier, ``RobustAccuracyMeetsThreshold``."""
    words = re.findall(r"[A-Za-z0-9]+", title)
    return "".join(w[:1].upper() + w[1:] for w in words) or "GuardControl"


def _result(audit: Mapping[str, Any], f: FindingRecord, rule_index: int) -> dict[str, Any]:
    target: Mapping[str, Any] = audit.get("target") or {}
    name = text(target.get("name", "unnamed target"))
    prefix = "Could not evaluate" if f.status == ERROR else f.title or f.control
    message = f"{prefix}: {f.detail}" if f.detail else prefix
    result: dict[str, Any] = {
        "ruleId": f.control,
        "ruleIndex": rule_index,
        "kind": "fail",
        "level": LEVELS.get(f.severity, "warning"),
        "message": {"text": f"[{name}] {message}"},
        "locations": [_location(target, name)],
        "partialFingerprints": {"guardControlTarget/v1": _fingerprint(f.control, name)},
        "properties": {"status": f.status, "severity": f.severity, "target": name,
                       "evidence": list(f.evidence)},
    }
    if f.baseline in ("new", "known"):
        result["baselineState"] = "new" if f.baseline == "new" else "unchanged"
    if f.waiver is not None:
        result["properties"]["waiver"] = {"approver": f.waiver.approver, "expires": f.waiver.expires,
                                          "expired": f.waiver.expired, "reason": f.waiver.reason}
    if f.status == WAIVED and f.waiver is not None:
        w = f.waiver
        result["suppressions"] = [{
            "kind": "external",
            "status": "accepted",
            "justification": f"{w.reason} (approved by {w.approver}; expires {w.expires})",
        }]
    elif f.status == WAIVED:
        result["suppressions"] = [{"kind": "external", "status": "accepted",
                                   "justification": "waived (no waiver details recorded)"}]
    return result


def _location(target: Mapping[str, Any], name: str) -> dict[str, Any]:
    location: dict[str, Any] = {}
    artifact = target.get("artifact")
    if isinstance(artifact, str) and artifact:
        location["physicalLocation"] = {"artifactLocation": {"uri": artifact_uri(artifact)}}
    location["logicalLocations"] = [{"name": name, "fullyQualifiedName": name, "kind": "module"}]
    return location


def artifact_uri(path: str) -> str:
    """A URI reference for a file path: relative paths stay relative (a dashboard resolves
    them against the repository), absolute ones become ``file://`` URIs."""
    if PureWindowsPath(path).drive:
        return PureWindowsPath(path).as_uri()
    posix = PurePosixPath(path.replace("\\", "/"))
    if posix.is_absolute():
        return posix.as_uri()
    return quote(str(posix), safe="/")


def _fingerprint(control: str, target: str) -> str:
    """Stable across runs, so a dashboard tracks one finding through time."""
    return hashlib.sha256(f"{control}\0{target}".encode()).hexdigest()[:32]


__all__ = ["LEVELS", "artifact_uri", "render_sarif", "sarif_document", "write_sarif"]
