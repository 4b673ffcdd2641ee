"""The scan as audit evidence, and the gate the model loader calls before loading anything.

Evidence counts findings by severity (a measurement, not a verdict: the policy engine decides
what fails). The gate is stricter than the report: a file with a critical or high finding is
never loaded; with ``allow_pickle`` the user asked for a full unpickler, so the scan must also
have finished (status not ``error``) before Guard hands the bytes to one.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from guard.defenses.scan.results import ScanLimits, ScanResult, Severity
from guard.defenses.scan.scanner import scan_bytes, scan_file
from guard.errors import UnsafeModelError
from guard.evidence import Evidence, Flag
from guard.stats import Metric

PROBE_ID = "supply_chain.scan"
_MAX_LISTED = 200


def scan_evidence(results: Sequence[ScanResult]) -> Evidence:
    """Evidence ``supply_chain.scan``: counts per severity, files per status, findings listed."""
    counts = {s.label: 0 for s in Severity}
    statuses = {"clean": 0, "unsafe": 0, "error": 0}
    listed: list[dict[str, object]] = []
    for r in results:
        statuses[r.status] += 1
        for f in r.findings:
            counts[f.severity.label] += 1
            if len(listed) < _MAX_LISTED:
                listed.append({"path": r.path, **f.to_dict()})
    metrics = {label: Metric(value=float(n)) for label, n in counts.items()}
    metrics["files"] = Metric(value=float(len(results)))
    metrics.update({f"files_{k}": Metric(value=float(v)) for k, v in statuses.items()})
    flags = [Flag("scan_incomplete", f"{r.path}: the scan could not finish; its verdict is unknown")
             for r in results if r.status == "error"]
    return Evidence(
        probe=PROBE_ID,
        params={
            "paths": [r.path for r in results],
            "formats": {r.path: r.format for r in results},
            "findings": listed,
            "findings_truncated": sum(len(r.findings) for r in results) > len(listed),
        },
        metrics=metrics,
        flags=flags,
        duration_s=sum(r.duration_s for r in results),
    )


def assert_loadable(path: Path, allow_pickle: bool, *, data: bytes | None = None,
                    limits: ScanLimits | None = None) -> ScanResult:
    """Scan ``path`` (or ``data``, the bytes about to be loaded) and refuse a dangerous file.

    Raises :class:`UnsafeModelError` naming the worst finding (rule, import, severity) when
    any finding is critical or high, or, with ``allow_pickle``, when the scan could not finish.
    Returns the scan, for the audit's evidence.
    """
    result = scan_file(path, limits) if data is None else scan_bytes(data, str(path), limits)
    worst = result.worst
    if worst is not None and worst.severity >= Severity.HIGH:
        where = f" in {worst.member}" if worst.member else ""
        what = f" {worst.global_name}" if worst.global_name else ""
        raise UnsafeModelError(
            f"{path}: refused by the scan: {worst.severity.label} {worst.rule}{what}{where} "
            f"({worst.detail}); run `guard scan {path}` for every finding"
        )
    if allow_pickle and result.status == "error":
        raise UnsafeModelError(
            f"{path}: refused: the scan could not finish, so it cannot vouch for unpickling it; "
            f"run `guard scan {path}` for details"
        )
    return result
