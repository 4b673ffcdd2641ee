"""report.junit.xml: one test case per control, so any CI system shows the audit as tests.

JUnit XML has no standard beyond what Jenkins, GitLab, Azure DevOps and GitHub's test
reporters accept; the common ground is used: ``testsuites`` > ``testsuite`` (one per audited
target) > ``testcase`` (one per control) with ``failure`` (the control failed: message is
the finding's detail, type its severity), ``error`` (the control could not be evaluated) or
``skipped`` (not assessed for want of evidence, or waived, with the waiver's reason and
expiry). A pass is a bare test case, with the detail as ``system-out``.

Text reaches the file through :mod:`xml.etree.ElementTree`, which escapes markup; characters
XML 1.0 cannot hold at all (most control characters) are replaced first, because a target
name with an escape byte in it would otherwise make the whole file unreadable to CI.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from guard.fsio import atomic_write_text

from .findings import ERROR, FAIL, NOT_ASSESSED, PASS, WAIVED, FindingRecord, finding_records
from .text import text

_NOT_XML = re.compile("[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def clean(value: str) -> str:
    """``value`` with every character XML 1.0 forbids replaced by U+FFFD."""
    return _NOT_XML.sub("\ufffd", value)


def junit_tree(audits: Sequence[Mapping[str, Any]]) -> ET.Element:
    """The ``testsuites`` element for audits given as report.json dicts."""
    root = ET.Element("testsuites", name="Guard")
    totals = dict.fromkeys(("tests", "failures", "errors", "skipped"), 0)
    duration = 0.0
    for audit in audits:
        suite, counts, seconds = _suite(audit)
        root.append(suite)
        duration += seconds
        for key in totals:
            totals[key] += counts[key]
    for key, n in totals.items():
        root.set(key, str(n))
    root.set("time", f"{duration:.3f}")
    return root


def render_junit(audits: Sequence[Mapping[str, Any]]) -> str:
    tree = junit_tree(audits)
    ET.indent(tree)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(tree, encoding="unicode") + "\n"


def write_junit(audits: Sequence[Mapping[str, Any]], path: Path) -> None:
    """Write report.junit.xml atomically."""
    atomic_write_text(Path(path), render_junit(audits))


def _suite(audit: Mapping[str, Any]) -> tuple[ET.Element, dict[str, int], float]:
    target: Mapping[str, Any] = audit.get("target") or {}
    name = clean(text(target.get("name", "unnamed target")))
    framework = clean(text(target.get("framework") or ""))
    findings = finding_records(audit)
    counts = {
        "tests": len(findings),
        "failures": sum(1 for f in findings if f.status == FAIL),
        "errors": sum(1 for f in findings if f.status not in (FAIL, WAIVED, NOT_ASSESSED, PASS)),
        "skipped": sum(1 for f in findings if f.status in (WAIVED, NOT_ASSESSED)),
    }
    seconds = (audit.get("environment") or {}).get("duration_s")
    seconds = float(seconds) if isinstance(seconds, (int, float)) and not isinstance(seconds, bool) else 0.0
    attributes = {"name": name, **{k: str(v) for k, v in counts.items()}, "time": f"{seconds:.3f}"}
    suite = ET.Element("testsuite", attributes)
    properties = ET.SubElement(suite, "properties")
    run_id = audit.get("run_id")
    if isinstance(run_id, str):
        ET.SubElement(properties, "property", name="guard.run_id", value=clean(run_id))
    for key in ("framework", "artifact"):
        value = target.get(key)
        if value:
            ET.SubElement(properties, "property", name=f"guard.{key}", value=clean(text(value)))
    classname = f"guard.{framework}" if framework else "guard"
    for f in findings:
        suite.append(_case(f, classname))
    return suite, counts, seconds


def _case(f: FindingRecord, default_classname: str) -> ET.Element:
    case = ET.Element("testcase", classname=clean(f.pack or default_classname),
                      name=clean(f"{f.control} {f.title}".strip()))
    body = _body(f)
    if f.status == FAIL:
        ET.SubElement(case, "failure", message=clean(f.detail or f.title), type=clean(f.severity)).text = body
    elif f.status == WAIVED:
        ET.SubElement(case, "skipped", message=clean(_waived_message(f)))
    elif f.status == NOT_ASSESSED:
        detail = f.detail.removeprefix("Not assessed: ") or "no probe produced the evidence it reads"
        ET.SubElement(case, "skipped", message=clean(f"evidence missing: {detail}"))
    elif f.status == PASS:
        ET.SubElement(case, "system-out").text = body
    else:
        message = f.detail or f"unknown status {f.status!r}"
        ET.SubElement(case, "error", message=clean(message), type=clean(f.severity)).text = body
    return case


def _waived_message(f: FindingRecord) -> str:
    w = f.waiver
    if w is None:
        return "waived"
    return f"waived until {w.expires} by {w.approver}: {w.reason}"


def _body(f: FindingRecord) -> str:
    lines = [f.detail] if f.detail else []
    if f.status in (FAIL, ERROR) and f.remediation:
        lines.append(f"Remediation: {f.remediation}")
    if f.evidence:
        lines.append(f"Evidence: {', '.join(f.evidence)}")
    if f.references:
        lines.append(f"References: {'; '.join(f.reference_labels)}")
    return clean("\n".join(lines))
