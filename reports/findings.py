"""Findings as every format reads them: parsed once, tolerant of what an older report lacks.

The policy engine writes findings into report.json; the renderers (HTML, SARIF, JUnit,
Markdown) read them back from those plain dicts. Parsing them here, once, means a finding
without ``waiver`` or ``rationale`` (an older ``guard.audit/1`` report, or a newer field not
yet written) reads the same way everywhere, and every format orders statuses and
severities alike and cites an article the same way (``GDPR Art. 32(1)(d)``).

Article titles come from the policy catalogue that the packs were validated against, so a
report names the article a control cites without keeping a second copy of the regulation.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from guard.levels import FAILING, STATUS_ORDER, Severity, Status

from .text import text

FAIL, ERROR, WAIVED, NOT_ASSESSED, PASS = (s.value for s in Status)
STATUS_LABELS = {s.value: s.label for s in Status}



@dataclass(frozen=True, slots=True)
class WaiverRecord:
    """The waiver that governed a finding: who accepted the risk, why, and until when."""

    reason: str
    approver: str
    expires: str
    expired: bool
    target: str
    source: str


@dataclass(frozen=True, slots=True)
class FindingRecord:
    """One finding with every field present; ``references`` keeps only cited frameworks."""

    control: str
    status: str
    severity: str
    title: str
    detail: str
    evidence: tuple[str, ...]
    references: tuple[tuple[str, tuple[str, ...]], ...]
    remediation: str
    rationale: str
    pack: str
    waiver: WaiverRecord | None
    baseline: str

    @property
    def status_label(self) -> str:
        return STATUS_LABELS.get(self.status, self.status)

    @property
    def failing(self) -> bool:
        return self.status in FAILING

    @property
    def reference_labels(self) -> tuple[str, ...]:
        return tuple(reference_label(key, ref) for key, refs in self.references for ref in refs)


def finding_records(audit: Mapping[str, Any]) -> tuple[FindingRecord, ...]:
    """The audit's findings in the order the engine wrote them."""
    return tuple(finding_record(f) for f in audit.get("findings") or () if isinstance(f, Mapping))


def finding_record(f: Mapping[str, Any]) -> FindingRecord:
    status = text(f.get("status") or "")
    status = NOT_ASSESSED if status == "not assessed" else status
    waiver = f.get("waiver")
    return FindingRecord(
        control=text(f.get("control", "")),
        status=status,
        severity=text(f.get("severity") or "info"),
        title=text(f.get("title") or ""),
        detail=text(f.get("detail") or ""),
        evidence=tuple(text(e) for e in f.get("evidence") or ()),
        references=_references(f.get("references")),
        remediation=text(f.get("remediation") or ""),
        rationale=text(f.get("rationale") or ""),
        pack=text(f.get("pack") or ""),
        waiver=_waiver(waiver) if isinstance(waiver, Mapping) else None,
        baseline=text(f.get("baseline") or ""),
    )


def _references(refs: Any) -> tuple[tuple[str, tuple[str, ...]], ...]:
    if not isinstance(refs, Mapping):
        return ()
    cited = {text(k): tuple(text(r) for r in v) for k, v in refs.items()
             if isinstance(v, (list, tuple)) and v}
    return tuple((k, cited[k]) for k in framework_order(cited))


def _waiver(w: Mapping[str, Any]) -> WaiverRecord:
    return WaiverRecord(
        reason=text(w.get("reason") or ""),
        approver=text(w.get("approver") or ""),
        expires=text(w.get("expires") or ""),
        expired=w.get("expired") is True,
        target=text(w.get("target") or ""),
        source=text(w.get("source") or ""),
    )


def severity_rank(severity: str) -> int:
    """Higher is worse, in the engine's one order (an unknown severity ranks highest, as
    the gate ranks it)."""
    return Severity.rank_of(severity)


def status_rank(status: str) -> int:
    """Lower is worse (``fail`` first)."""
    return Status.rank_of(status)


def worst_first(findings: Sequence[FindingRecord]) -> list[FindingRecord]:
    """By status (fail, error, waived, ...), then severity (critical first), then control id."""
    return sorted(findings, key=lambda f: (status_rank(f.status), -severity_rank(f.severity), f.control))


def status_counts(findings: Sequence[FindingRecord]) -> dict[str, int]:
    """Count of each status, every known status present (zero included) in worst-first order."""
    counts = dict.fromkeys(STATUS_ORDER, 0)
    for f in findings:
        counts[f.status] = counts.get(f.status, 0) + 1
    return counts


def reference_label(framework: str, ref: str) -> str:
    """A citation a reader recognises: ``GDPR Art. 32(1)(d)``, ``CCPA §1798.150(a)(1)``,
    ``OWASP-ML ML01``, ``ATLAS AML.T0015``, ``NIST AI RMF MEASURE 2.7``."""
    known = _catalogue()
    fw = known.get(framework)
    return fw.cite(ref) if fw is not None else f"{framework} {ref}"


def framework_order(keys: Any) -> list[str]:
    """Framework keys in the catalogue's order; ones it does not list after, by name."""
    order = list(_catalogue())
    chosen = set(keys)
    return [k for k in order if k in chosen] + sorted(k for k in chosen if k not in order)


@functools.cache
def _catalogue() -> dict[str, Any]:
    from guard.policies.catalogue import load_catalogue

    return dict(load_catalogue().frameworks)


# ---------------------------------------------------------------- the catalogue's titles


@dataclass(frozen=True, slots=True)
class FrameworkInfo:
    """What a report shows of a framework: its title, its ids' titles and how ids group."""

    key: str
    name: str
    title: str
    ids: Mapping[str, str]
    group_pattern: str
    positions: Mapping[str, int]

    def group(self, ref: str) -> str:
        """The article (section, technique) a cited id belongs to: ``32(1)(d)`` -> ``32``."""
        match = re.match(self.group_pattern, ref) if self.group_pattern else None
        return match.group(1) if match else ref

    def group_label(self, group: str) -> str:
        return reference_label(self.key, group)

    def order(self, ref: str) -> tuple[int, tuple[Any, ...]]:
        """The catalogue's order (the regulation's own) for an id or an article that holds
        catalogued ids; after those, numbers compared as numbers (Art. 5 before Art. 32).

        ``re.split`` with a group alternates text and digits, so positions never mix types.
        """
        positions = self.positions
        natural = tuple(int(p) if i % 2 else p for i, p in enumerate(re.split(r"(\d+)", ref)))
        return (positions.get(ref, len(positions)), natural)


def framework_info(key: str) -> FrameworkInfo:
    """The catalogue's entry for ``key``, or a bare one for a framework it does not list."""
    known = _catalogue_frameworks()
    if key in known:
        return known[key]
    return FrameworkInfo(key, key, key, {}, "", {})


@functools.cache
def _catalogue_frameworks() -> dict[str, FrameworkInfo]:
    # Imported here: the catalogue is only needed when a report shows findings.
    from guard.policies.catalogue import load_catalogue

    out = {}
    for key, fw in load_catalogue().frameworks.items():
        positions: dict[str, int] = {}
        for i, ref in enumerate(fw.ids):
            positions.setdefault(fw.group(ref), i)  # an article sits where its first id does
            positions.setdefault(ref, i)
        out[key] = FrameworkInfo(key, fw.name or key, fw.title, dict(fw.ids),
                                 fw.group_pattern, positions)
    return out
