"""``data.pii_scan``: personal data, GDPR Art. 9 special-category data and re-identification
risk in the training data's raw table.

It scans the files of its ``paths`` setting (``guard audit --pii-data FILE``), else the
target's own data files (``target.files``: ``data``, ``train_data``) when they are tables:
CSV, JSON lines or Parquet. An ``.npz`` is numeric arrays, whose columns carry no names and
whose values no text, so it is not scanned: give the raw table the arrays were made from.
One Evidence per file; counts of cells, never values (the examples are masked).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from guard.errors import ConfigError, DataError
from guard.evidence import Evidence
from guard.probes import EmittedEvidence, Probe, RunContext, register
from guard.stats import Metric
from guard.target import Target

PROBE_ID = "data.pii_scan"
ROLES = ("train_data", "data")
TABLE_SUFFIXES = (".csv", ".jsonl", ".ndjson", ".parquet", ".pq")
ASK_FOR_TABLE = "give the raw table (CSV, JSON lines or Parquet) with --pii-data FILE"


@dataclass(frozen=True, slots=True, kw_only=True)
class PiiScanSettings:
    """The tables to scan (default: the target's data files that are tables), the columns
    that are quasi-identifiers (default: detected), and a sensitive column for l-diversity."""

    paths: tuple[str, ...] = ()
    quasi_identifiers: tuple[str, ...] = ()
    sensitive: str | None = None

    def __post_init__(self) -> None:
        for name, values in (("paths", self.paths), ("quasi_identifiers", self.quasi_identifiers)):
            if any(not v.strip() for v in values):
                raise ConfigError(f"{name} must not hold an empty string")
        if self.sensitive is not None and not self.sensitive.strip():
            raise ConfigError("sensitive must name a column, got an empty string")


@register
class PiiScan(Probe):
    """Scan the training data's table for personal data; report counts, never a verdict."""

    id: ClassVar[str] = PROBE_ID
    category: ClassVar[str] = "data"
    aliases: ClassVar[tuple[str, ...]] = ("pii-scan",)
    settings_type: ClassVar[type[Any]] = PiiScanSettings
    settings: PiiScanSettings
    default: ClassVar[bool] = True
    emits: ClassVar[EmittedEvidence] = EmittedEvidence(
        title="Scan of the training data for personal and special-category data",
        metrics=("pii_findings", "special_category_findings", "rows_scanned", "columns_with_pii",
                 "k_anonymity", "unique_share", "l_diversity"),
        params=("path", "columns", "quasi_identifiers", "sensitive", "kinds"),
        key=("path",),
    )

    def files(self, target: Target) -> list[Path]:
        """The tables to scan: the ``paths`` setting, else the target's data files that are tables."""
        if self.settings.paths:
            chosen = [Path(p) for p in self.settings.paths]
        else:
            found = getattr(target, "files", {}) or {}
            chosen = [Path(found[r]) for r in ROLES
                      if r in found and Path(found[r]).suffix.lower() in TABLE_SUFFIXES]
        unique: dict[str, Path] = {}
        for path in chosen:
            unique.setdefault(str(path.resolve()), path)
        return list(unique.values())

    def applies_to(self, target: Target) -> bool:
        return bool(self.files(target))

    def check(self, target: Target) -> None:
        """Before any probe of the audit runs: each table can be opened, and the columns the
        settings name are in it (a CSV's header, a Parquet schema; JSON lines are checked by
        the scan, since any line may add a key)."""
        from guard.defenses.pii.table import known_columns
        from guard.textsafe import visible

        super().check(target)
        s = self.settings
        if s.sensitive is not None and s.sensitive in s.quasi_identifiers:
            raise ConfigError(f"{PROBE_ID}: sensitive {visible(s.sensitive)!r} is also among the "
                              "quasi_identifiers; its l-diversity would be 1 by definition")
        named = [("quasi_identifiers", c) for c in s.quasi_identifiers]
        named += [("sensitive", s.sensitive)] if s.sensitive is not None else []
        for path in self.files(target):
            columns = known_columns(path)
            if columns is None:
                continue
            for setting, column in named:
                if column not in columns:
                    shown = ", ".join(visible(c) for c in columns[:12])
                    more = f" and {len(columns) - 12} more" if len(columns) > 12 else ""
                    flag = "--" + setting.replace("_", "-")
                    raise DataError(f"{visible(str(path))}: {PROBE_ID} setting {setting} ({flag}) names no "
                                    f"column {visible(column)!r}; columns are {shown}{more}")

    def why_not(self, target: Target) -> str:
        found = getattr(target, "files", {}) or {}
        arrays = [Path(p).name for p in found.values() if Path(p).suffix.lower() == ".npz"]
        if arrays:
            return (f"{', '.join(arrays)} holds numeric arrays, not the raw table: {ASK_FOR_TABLE}")
        return f"no table to scan: {ASK_FOR_TABLE}"

    def run(self, target: Target, ctx: RunContext) -> list[Evidence]:
        from guard.defenses.pii.scan import scan_file

        files = self.files(target)
        if not files:
            raise ConfigError(f"{PROBE_ID}: {self.why_not(target)}")
        names = [p.name for p in files]
        out = []
        for i, path in enumerate(files):
            ctx.progress(PROBE_ID, i, len(files))
            start = time.perf_counter()
            s = self.settings
            report = scan_file(path, quasi_identifiers=list(s.quasi_identifiers) or None,
                               sensitive=s.sensitive)
            shown = path.name if names.count(path.name) == 1 else str(path)
            out.append(evidence_of(report, shown, seed=ctx.seed, duration_s=time.perf_counter() - start))
        ctx.progress(PROBE_ID, len(files), len(files))
        return out


def evidence_of(report: Any, shown: str, *, seed: int | None = None, duration_s: float = 0.0) -> Evidence:
    """The Evidence of one scanned table (:class:`guard.defenses.pii.scan.ScanReport`)."""
    a = report.anonymity
    rows = report.rows
    metrics = {
        "pii_findings": Metric(float(report.pii_findings)),
        "special_category_findings": Metric(float(report.special_category_findings)),
        "rows_scanned": Metric(float(rows)),
        "columns_with_pii": Metric(float(len(report.columns_with_pii))),
        "k_anonymity": Metric(float(a.k)),
        "unique_share": Metric.proportion(a.unique_rows, rows) if rows else Metric(0.0, n=0),
    }
    if report.sensitive is not None and a.l is not None:
        metrics["l_diversity"] = Metric(float(a.l))
    return Evidence(
        probe=PROBE_ID,
        params={
            "path": shown,
            "columns": [c.to_dict(rows) for c in report.scans if c.flagged()],
            "quasi_identifiers": list(report.quasi_identifiers),
            "sensitive": report.sensitive,
            "kinds": report.kinds(),
        },
        metrics=metrics,
        seed=seed,
        duration_s=duration_s,
    )
