"""Render scan results: a terminal table, JSON, and SARIF 2.1.0 for code scanning.

Reports show attacker-chosen text (file names, import names, zip entry names), so the table
spells out control and bidi characters (:func:`guard.textsafe.visible`) and reads no rich markup
in them, while JSON and SARIF carry the exact strings (those characters as ``\\u`` escapes).
"""

from __future__ import annotations

import json
from pathlib import PurePath
from typing import Any
from urllib.parse import quote

from rich.table import Table
from rich.text import Text

from guard import __version__
from guard.defenses.scan import keras, onnx, rules, savedmodel
from guard.defenses.scan.results import ScanFinding, ScanResult, Severity
from guard.textsafe import json_text, plain, visible

RULE_HELP: dict[str, str] = {**rules.RULE_HELP, **keras.RULE_HELP, **onnx.RULE_HELP,
                             **savedmodel.RULE_HELP}
"""Every rule's explanation, whichever format's scanner raises it."""

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
_LEVEL = {Severity.CRITICAL: "error", Severity.HIGH: "error", Severity.MEDIUM: "warning",
          Severity.LOW: "note", Severity.INFO: "note"}
# GitHub code scanning buckets: >= 9 critical, >= 7 high, >= 4 medium, else low.
_SECURITY_SEVERITY = {Severity.CRITICAL: "9.5", Severity.HIGH: "8.0", Severity.MEDIUM: "5.5",
                      Severity.LOW: "3.0", Severity.INFO: "0.0"}
_STYLE = {"clean": "green", "unsafe": "bold red", "error": "yellow"}


def to_json(results: list[ScanResult]) -> dict[str, Any]:
    return {"files": [r.to_dict() for r in results]}


def render_json(results: list[ScanResult]) -> str:
    """The exact strings; control and bidi characters spelled as JSON's ``\\u`` escapes."""
    return json_text(json.dumps(to_json(results), indent=2, ensure_ascii=False))


def table(results: list[ScanResult]) -> Table:
    """One row per finding (one per clean file), worst first within each file."""
    out = Table(title="guard scan", title_justify="left")
    for col in ("file", "status", "severity", "rule", "import / detail"):
        out.add_column(col, overflow="fold")
    for r in results:
        status = Text(r.status, style=_STYLE[r.status])
        if not r.findings:
            out.add_row(plain(r.path), status, "-", "-", plain(r.format))
            continue
        for i, f in enumerate(r.findings):
            what = plain(f.global_name or f.to_dict()["detail"])
            if f.member and f.global_name:
                what.append(" ").append(visible(f"(in {f.member})"), style="dim")
            out.add_row(plain(r.path) if i == 0 else "", status if i == 0 else "", f.severity.label,
                        plain(f.rule), what)
    return out


def render_sarif(results: list[ScanResult]) -> str:
    return json_text(json.dumps(to_sarif(results), indent=2, ensure_ascii=False))


def to_sarif(results: list[ScanResult]) -> dict[str, Any]:
    """A SARIF 2.1.0 log: one run, one rule per rule id used, one result per finding."""
    used = sorted({f.rule for r in results for f in r.findings})
    index = {rule: i for i, rule in enumerate(used)}
    worst: dict[str, Severity] = {}
    for r in results:
        for f in r.findings:
            worst[f.rule] = max(worst.get(f.rule, f.severity), f.severity)
    rules = [_rule(rule, worst[rule]) for rule in used]
    sarif_results = [_result(r, f, index[f.rule]) for r in results for f in r.findings]
    return {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "guard",
                "semanticVersion": __version__,
                "version": __version__,
                "rules": rules,
            }},
            "artifacts": [{"location": {"uri": uri}} for uri in dict.fromkeys(_uri(r.path) for r in results)],
            "results": sarif_results,
            "columnKind": "unicodeCodePoints",
        }],
    }


def _rule(rule: str, severity: Severity) -> dict[str, Any]:
    text = RULE_HELP.get(rule, rule)
    return {
        "id": rule,
        "name": "".join(part.capitalize() for part in rule.split("-")),
        "shortDescription": {"text": text.split(": ")[0].split(". ")[0]},
        "fullDescription": {"text": text},
        "help": {"text": text},
        "defaultConfiguration": {"level": _LEVEL[severity]},
        "properties": {"security-severity": _SECURITY_SEVERITY[severity],
                       "tags": ["security", "supply-chain", "pickle"]},
    }


def _result(r: ScanResult, f: ScanFinding, rule_index: int) -> dict[str, Any]:
    region: dict[str, Any] = {"startLine": 1}
    if not f.member:
        region["byteOffset"] = f.offset
    location: dict[str, Any] = {
        "physicalLocation": {"artifactLocation": {"uri": _uri(r.path)}, "region": region},
    }
    if f.member:
        location["logicalLocations"] = [{"fullyQualifiedName": f.member, "kind": "member"}]
    subject = f"{f.global_name}: " if f.global_name else ""
    return {
        "ruleId": f.rule,
        "ruleIndex": rule_index,
        "level": _LEVEL[f.severity],
        "message": {"text": f"{subject}{f.to_dict()['detail']}"},
        "locations": [location],
        "partialFingerprints": {"guardFinding/v1": f"{f.rule}:{f.global_name}:{f.member}"},
        "properties": {"severity": f.severity.label, "global": f.global_name, "offset": f.offset,
                       "security-severity": _SECURITY_SEVERITY[f.severity]},
    }


def _uri(path: str) -> str:
    return quote(PurePath(path).as_posix(), safe="/:._-~")
