"""The compliance half of the HTML page: what a data-protection officer reads and files.

Three views of the same findings, each answering a question the officer is asked:

- the executive summary: did the model pass, how badly did it fail, what is worst?
- the view by regulation: for GDPR Art. 32 (or CCPA §1798.150, EU AI Act Art. 15, ...), which
  controls evidence it, what did they find, and which measurements did they read?
- the findings and waivers: what exactly failed, how to fix it, and who accepted which risk
  until when.

Like the rest of the page these are view models with every choice made, so wording and
grouping are tested without parsing HTML.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from guard import SEVERITY_ORDER

from .findings import (
    ERROR,
    FAIL,
    NOT_ASSESSED,
    PASS,
    STATUS_LABELS,
    WAIVED,
    FindingRecord,
    WaiverRecord,
    framework_info,
    framework_order,
    severity_rank,
    status_counts,
    status_rank,
    worst_first,
)
from .text import plural

STATUS_CLASSES = {FAIL: "fail", ERROR: "fail", WAIVED: "waived", NOT_ASSESSED: "na", PASS: "pass"}
WORST_SHOWN = 5
ALARM_SEVERITIES = frozenset({"critical", "high"})
"""Severities whose failures the summary colours as alarms."""


@dataclass(frozen=True, slots=True)
class Count:
    label: str
    n: int
    css: str


@dataclass(frozen=True, slots=True)
class WaiverView:
    control: str
    title: str
    state: str
    expired: bool
    approver: str
    reason: str
    expires: str
    target: str
    source: str


@dataclass(frozen=True, slots=True)
class FindingView:
    control: str
    status: str
    status_class: str
    severity: str
    title: str
    detail: str
    evidence: str
    references: tuple[str, ...]
    remediation: str
    rationale: str
    baseline: str


@dataclass(frozen=True, slots=True)
class RegulationRow:
    """One citation of one control: ``32(1)(d)`` cited by GRD-EVA-02, which failed."""

    ref: str
    ref_title: str
    control: str
    title: str
    status: str
    status_class: str
    evidence: str


@dataclass(frozen=True, slots=True)
class ArticleView:
    label: str
    title: str
    rows: tuple[RegulationRow, ...]


@dataclass(frozen=True, slots=True)
class RegulationView:
    key: str
    name: str
    title: str
    articles: tuple[ArticleView, ...]


@dataclass(frozen=True, slots=True)
class Verdict:
    word: str
    css: str
    sentence: str


@dataclass(frozen=True, slots=True)
class ComplianceView:
    """One target's findings: the verdict, counts, the view by regulation, the waivers."""

    verdict: Verdict
    counts: tuple[Count, ...]
    findings: tuple[FindingView, ...]
    regulations: tuple[RegulationView, ...]
    waivers: tuple[WaiverView, ...]


@dataclass(frozen=True, slots=True)
class WorstView:
    anchor: str
    target: str
    control: str
    title: str
    severity: str
    status: str
    status_class: str


@dataclass(frozen=True, slots=True)
class SummaryRow:
    anchor: str
    name: str
    verdict: Verdict
    counts: tuple[Count, ...]


@dataclass(frozen=True, slots=True)
class SummaryView:
    """The executive summary over every target in the report."""

    verdict: Verdict
    statuses: tuple[Count, ...]
    severities: tuple[Count, ...]
    rows: tuple[SummaryRow, ...]
    worst: tuple[WorstView, ...]


def compliance_view(findings: Sequence[FindingRecord],
                    gate: Mapping[str, Any] | None = None) -> ComplianceView:
    ordered = worst_first(findings)
    return ComplianceView(
        verdict=gated_verdict(findings, gate),
        counts=_counts(findings),
        findings=tuple(_finding_view(f) for f in ordered),
        regulations=regulation_views(findings),
        waivers=tuple(_waiver_view(f, f.waiver) for f in ordered if f.waiver is not None),
    )


def verdict(findings: Sequence[FindingRecord]) -> Verdict:
    """One word and one sentence; a failing or erroring control outweighs everything else.

    ``error`` counts as failing: a control that could not be decided has not passed.
    """
    counts = status_counts(findings)
    failing = counts[FAIL] + counts[ERROR]
    if not findings:
        return Verdict("not judged", "na", "No policy was applied: the evidence has not been judged "
                                           "against any control.")
    extra = []
    if counts[WAIVED]:
        extra.append(f"{plural(counts[WAIVED], 'control')} waived")
    if counts[NOT_ASSESSED]:
        extra.append(f"{plural(counts[NOT_ASSESSED], 'control')} not assessed for want of evidence")
    tail = f" ({'; '.join(extra)})" if extra else ""
    if failing:
        worst = max((f for f in findings if f.failing), key=lambda f: severity_rank(f.severity))
        errors = f", {counts[ERROR]} of them could not be evaluated" if counts[ERROR] else ""
        return Verdict("fail", "fail", f"{plural(failing, 'control')} failed{errors}, the most severe "
                                       f"rated {worst.severity}{tail}.")
    if counts[PASS] == 0 and counts[WAIVED] == 0:
        return Verdict("not assessed", "na", f"No control could be assessed{tail}.")
    word = "pass with waivers" if counts[WAIVED] else "pass"
    return Verdict(word, "pass" if not extra else "waived",
                   f"{plural(counts[PASS], 'control')} passed{tail}.")


def gated_verdict(findings: Sequence[FindingRecord], gate: Mapping[str, Any] | None) -> Verdict:
    """The verdict the audit service's gate decided (report.json's ``gate``): the same
    decision as the exit code. Without a recorded gate (an older report), the findings'."""
    plain = verdict(findings)
    if not gate or not findings:
        return plain
    level = str(gate.get("fail_on", "high"))
    if level == "never":
        return Verdict("not gated", plain.css, f"{plain.sentence} Not gated: this run was asked "
                                               "not to fail on findings (--fail-on never).")
    gating = [str(c) for c in gate.get("failing") or ()]
    if gating:
        shown = ", ".join(gating[:5]) + (f" and {len(gating) - 5} more" if len(gating) > 5 else "")
        return Verdict("fail", "fail", f"{plural(len(gating), 'control')} fail the gate at --fail-on "
                                       f"{level}: {shown}. {plain.sentence}")
    below = [f for f in findings if f.failing]
    if below:
        return Verdict("pass", "waived", f"No control fails the gate at --fail-on {level}; "
                                         f"{plural(len(below), 'control')} failed below that severity "
                                         "or were known from the baseline report.")
    return plain


def summary_view(targets: Sequence[tuple[str, str, Sequence[FindingRecord]]],
                 gates: Sequence[Mapping[str, Any] | None] | None = None) -> SummaryView:
    """The executive summary of ``(anchor, name, findings)`` for each target."""
    everything = [f for _, _, findings in targets for f in findings]
    failing = [f for f in everything if f.failing]
    severities = tuple(Count(s, sum(1 for f in failing if f.severity == s),
                             "fail" if s in ALARM_SEVERITIES else "na") for s in reversed(SEVERITY_ORDER))
    worst = sorted(((anchor, name, f) for anchor, name, findings in targets for f in findings if f.failing),
                   key=lambda t: (-severity_rank(t[2].severity), status_rank(t[2].status), t[2].control))
    gate_of = list(gates) if gates is not None else [None] * len(targets)
    verdicts = [gated_verdict(findings, g) for (_, _, findings), g in zip(targets, gate_of, strict=True)]
    return SummaryView(
        verdict=_overall(targets, verdicts),
        statuses=_counts(everything),
        severities=severities,
        rows=tuple(SummaryRow(anchor, name, v, _counts(findings))
                   for (anchor, name, findings), v in zip(targets, verdicts, strict=True)),
        worst=tuple(WorstView(anchor, name, f.control, f.title, f.severity, f.status_label,
                              STATUS_CLASSES.get(f.status, "other"))
                    for anchor, name, f in worst[:WORST_SHOWN]),
    )


def _overall(targets: Sequence[tuple[str, str, Sequence[FindingRecord]]],
             verdicts: Sequence[Verdict]) -> Verdict:
    judged = [(name, v) for (_, name, findings), v in zip(targets, verdicts, strict=True) if findings]
    if not judged:
        return Verdict("not judged", "na", "No policy was applied to any target: this report holds "
                                           "evidence only.")
    failed = [name for name, v in judged if v.word == "fail"]
    if failed:
        return Verdict("fail", "fail", f"{len(failed)} of {plural(len(targets), 'target')} failed at "
                                       "least one control.")
    if all(v.word == "not gated" for _, v in judged):
        return Verdict("not gated", "na", "Findings are shown but this run was asked not to fail on "
                                          "them (--fail-on never).")
    if all(v.word == "not assessed" for _, v in judged):
        return Verdict("not assessed", "na", "No control could be assessed on any target.")
    waived = any(v.word == "pass with waivers" for _, v in judged)
    unjudged = len(targets) - len(judged)
    tail = f" ({plural(unjudged, 'target')} not judged)" if unjudged else ""
    if waived:
        return Verdict("pass with waivers", "waived",
                       f"No control failed; some passed only because a risk was accepted{tail}.")
    return Verdict("pass", "pass", f"No control failed on {plural(len(judged), 'target')}{tail}.")


def _counts(findings: Sequence[FindingRecord]) -> tuple[Count, ...]:
    return tuple(Count(STATUS_LABELS.get(s, s), n, STATUS_CLASSES.get(s, "other"))
                 for s, n in status_counts(findings).items())


def _finding_view(f: FindingRecord) -> FindingView:
    baseline = {"known": "known from the baseline report", "new": "new since the baseline report"}
    return FindingView(
        control=f.control,
        status=f.status_label,
        status_class=STATUS_CLASSES.get(f.status, "other"),
        severity=f.severity,
        title=f.title,
        detail=f.detail,
        evidence=", ".join(f.evidence),
        references=f.reference_labels,
        remediation=f.remediation,
        rationale=f.rationale,
        baseline=baseline.get(f.baseline, f.baseline),
    )


def _waiver_view(f: FindingRecord, w: WaiverRecord) -> WaiverView:
    state = f"expired on {w.expires}: the control fails again" if w.expired else f"valid until {w.expires}"
    return WaiverView(f.control, f.title, state, w.expired, w.approver, w.reason, w.expires, w.target,
                      w.source)


def regulation_views(findings: Sequence[FindingRecord]) -> tuple[RegulationView, ...]:
    """Framework, then article (or section, technique), then each control citing it.

    Only frameworks some finding cites appear; articles follow the regulation's own order.
    """
    cited = {key for f in findings for key, _ in f.references}
    keys = framework_order(cited)
    out = []
    for key in keys:
        info = framework_info(key)
        cites = [(ref, f) for f in findings for k, refs in f.references if k == key for ref in refs]
        groups: dict[str, list[tuple[str, FindingRecord]]] = {}
        for ref, f in sorted(cites, key=lambda c: (info.order(info.group(c[0])), info.order(c[0]),
                                                   status_rank(c[1].status), -severity_rank(c[1].severity),
                                                   c[1].control)):
            groups.setdefault(info.group(ref), []).append((ref, f))
        articles = tuple(
            ArticleView(info.group_label(group), info.ids.get(group, ""), tuple(
                RegulationRow(ref, info.ids.get(ref, "") if ref != group else "", f.control, f.title,
                              f.status_label, STATUS_CLASSES.get(f.status, "other"),
                              ", ".join(f.evidence) or "none")
                for ref, f in rows))
            for group, rows in groups.items()
        )
        out.append(RegulationView(key, info.name, info.title, articles))
    return tuple(out)

