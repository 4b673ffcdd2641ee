"""Controls as data: one YAML mapping per control, checked field by field when it loads.

Like Chef InSpec's controls, each carries severity (impact), rationale, remediation and
its tags per framework; like Prowler's check metadata it is validated by a schema, but
stricter: an unknown key, an unknown evidence name or metric, an undeclared threshold, a
citation missing from the catalogue and a control citing nothing are all errors naming the
file and line.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from guard import SEVERITY_ORDER
from guard.policies.catalogue import Catalogue, check_references
from guard.policies.expressions import (
    ALL_VARIABLES,
    EACH_VARIABLES,
    Condition,
    ExpressionError,
    ExpressionLimit,
)
from guard.policies.source import LocatedDict, LocatedList, Problem

SCOPES = ("each", "all")
WHEN_MISSING = ("not_assessed", "fail")
REQUIRED = ("id", "title", "severity", "rationale", "remediation", "evidence", "condition", "references")
OPTIONAL = ("check", "scope", "where", "when_missing", "thresholds")
_ID = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]*$")
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass(frozen=True, slots=True)
class Control:
    """A rule that turns evidence into a finding. Never code: every field is data.

    ``evidence`` holds concrete probe ids (globs such as ``evasion.*`` are expanded against
    the catalogue when the control loads). ``check`` says in words what the condition
    requires; ``{name}`` in it is replaced by the threshold's value in findings.
    """

    id: str
    title: str
    severity: str
    rationale: str
    remediation: str
    evidence: tuple[str, ...]
    condition: Condition
    references: Mapping[str, tuple[str, ...]]
    thresholds: Mapping[str, Any]
    check: str = ""
    scope: str = "each"
    where: Condition | None = None
    when_missing: str = "not_assessed"
    file: str = ""
    line: int | None = None

    @property
    def location(self) -> str:
        return self.file if self.line is None else f"{self.file}:{self.line}"

    def describe_check(self, thresholds: Mapping[str, Any]) -> str:
        """The ``check`` sentence with threshold values filled in (only names, no format spec)."""
        text = self.check or f"the condition holds: {self.condition.source.strip()}"
        return _PLACEHOLDER.sub(lambda m: _show(thresholds.get(m.group(1), m.group(0))), text)

    def to_dict(self) -> dict[str, Any]:
        """The control as plain data (``guard policy show --json``)."""
        out: dict[str, Any] = {
            "id": self.id,
            "title": self.title,
            "severity": self.severity,
            "rationale": self.rationale,
            "remediation": self.remediation,
            "evidence": list(self.evidence),
            "scope": self.scope,
            "condition": self.condition.source.strip(),
            "check": self.describe_check(self.thresholds),
            "thresholds": dict(self.thresholds),
            "when_missing": self.when_missing,
            "references": {k: list(v) for k, v in self.references.items()},
            "source": self.location,
        }
        if self.where is not None:
            out["where"] = self.where.source.strip()
        return out


def _show(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _text(entry: LocatedDict, key: str, file: str, problems: list[Problem]) -> str:
    value = entry.get(key)
    if not isinstance(value, str) or not value.strip():
        problems.append(Problem(file, entry.line_of(key), f"'{key}' must be non-empty text"))
        return ""
    return " ".join(value.split())


@dataclass(frozen=True, slots=True)
class ThresholdRange:
    """The values a threshold of a kind may take, known from how its name ends."""

    what: str
    suffixes: tuple[str, ...]
    low: float
    high: float = math.inf
    whole: bool = False

    def problem(self, value: float, written: Any) -> str | None:
        if self.whole and not value.is_integer():
            return f"is {self.what}: a whole number, got {written!r}"
        if not self.low <= value <= self.high:
            span = f"from {self.low:g} to {self.high:g}" if self.high < math.inf else f"at least {self.low:g}"
            return f"is {self.what}: {span}, got {written!r}"
        return None


THRESHOLD_RANGES = (
    ThresholdRange("a rate or share", ("accuracy", "share", "fraction", "rate", "fidelity", "advantage",
                                       "auc", "probability"), 0.0, 1.0),
    ThresholdRange("a count", ("samples", "issues", "findings", "queries", "count", "files"), 0,
                   whole=True),
)
"""Ranges by the name's last word (``min_robust_accuracy`` is a rate, ``max_high_issues`` a
count), checked on a pack's defaults and on every override when they load. Any other
numeric threshold must be finite."""


def threshold_problem(name: str, value: Any) -> str | None:
    """What is wrong with a threshold's value, a pack's default or an override; None if fine."""
    scalar = (bool, int, float, str)
    items = value if isinstance(value, list) else [value]
    if not all(isinstance(v, scalar) for v in items):
        return "needs a number, text, true/false or a list of them"
    for item in items:
        if isinstance(item, bool) or not isinstance(item, int | float):
            continue
        try:
            number = float(item)  # conditions compare doubles
        except OverflowError:
            return f"must be a finite number, got an integer of {len(str(abs(item)))} digits"
        if not math.isfinite(number):
            return f"must be a finite number, got {item!r}"
        for kind in THRESHOLD_RANGES:
            wrong = kind.problem(number, item) if name.rsplit("_", 1)[-1] in kind.suffixes else None
            if wrong is not None:
                return wrong
    return None


def parse_control(
    entry: Any, file: str, line: int | None, catalogue: Catalogue
) -> tuple[Control | None, list[Problem]]:
    """One control from its YAML mapping, with every problem found (not just the first)."""
    if not isinstance(entry, LocatedDict):
        return None, [Problem(file, line, "a control must be a mapping")]
    problems: list[Problem] = []
    for key in sorted(set(entry) - set(REQUIRED) - set(OPTIONAL)):
        known = ", ".join(REQUIRED + OPTIONAL)
        problems.append(Problem(file, entry.line_of(key), f"unknown key '{key}' (known: {known})"))
    for key in REQUIRED:
        if key not in entry:
            problems.append(Problem(file, entry.line, f"control is missing '{key}'"))
    control_id = entry.get("id")
    if "id" in entry and (not isinstance(control_id, str) or not _ID.match(control_id)):
        problems.append(Problem(file, entry.line_of("id"),
                                f"id {control_id!r} must be a name like GRD-EVA-01"))
    texts = {k: _text(entry, k, file, problems) for k in ("title", "rationale", "remediation") if k in entry}
    severity = entry.get("severity")
    if "severity" in entry and severity not in SEVERITY_ORDER:
        problems.append(Problem(file, entry.line_of("severity"),
                                f"severity {severity!r} must be one of {', '.join(SEVERITY_ORDER)}"))
    scope = entry.get("scope", "each")
    if scope not in SCOPES:
        problems.append(Problem(file, entry.line_of("scope"), f"scope {scope!r} must be 'each' or 'all'"))
    when_missing = entry.get("when_missing", "not_assessed")
    if when_missing not in WHEN_MISSING:
        problems.append(Problem(file, entry.line_of("when_missing"),
                                f"when_missing {when_missing!r} must be 'not_assessed' or 'fail'"))
    evidence = _evidence(entry, file, catalogue, problems)
    thresholds = _thresholds(entry, file, problems)
    references: dict[str, tuple[str, ...]] = {}
    if "references" in entry:
        references, ref_problems = check_references(
            entry["references"], catalogue, file, entry.line_of("references")
        )
        problems.extend(ref_problems)
    metrics = None
    if evidence:
        metrics = frozenset(m for name in evidence for m in catalogue.evidence[name].metrics)
    variables = EACH_VARIABLES if scope == "each" else ALL_VARIABLES
    condition = _condition(entry, "condition", file, variables, metrics, thresholds, problems)
    where = None
    if "where" in entry:
        if scope != "each":
            problems.append(Problem(file, entry.line_of("where"),
                                    "'where' filters evidence: only with scope 'each'"))
        where = _condition(entry, "where", file, EACH_VARIABLES, metrics, thresholds, problems)
    check = ""
    if "check" in entry:
        check = _text(entry, "check", file, problems)
        for name in _PLACEHOLDER.findall(check):
            if name not in thresholds:
                problems.append(Problem(file, entry.line_of("check"),
                                        f"check text names unknown threshold '{name}'"))
    if problems or condition is None or not isinstance(control_id, str):
        return None, problems
    return Control(
        id=control_id,
        title=texts["title"],
        severity=str(severity),
        rationale=texts["rationale"],
        remediation=texts["remediation"],
        evidence=evidence,
        condition=condition,
        references=references,
        thresholds=thresholds,
        check=check,
        scope=str(scope),
        where=where,
        when_missing=str(when_missing),
        file=file,
        line=entry.line,
    ), []


def _evidence(
    entry: LocatedDict, file: str, catalogue: Catalogue, problems: list[Problem]
) -> tuple[str, ...]:
    names = entry.get("evidence")
    if "evidence" not in entry:
        return ()
    if isinstance(names, str):
        holder = LocatedList()
        holder.append(names)
        holder.lines.append(entry.line_of("evidence") or 0)
        names = holder
    if not isinstance(names, LocatedList) or not names or not all(isinstance(n, str) for n in names):
        problems.append(Problem(file, entry.line_of("evidence"),
                                "'evidence' must list probe ids (globs allowed)"))
        return ()
    out: list[str] = []
    for i, pattern in enumerate(names):
        matched = catalogue.match(pattern)
        if not matched:
            known = ", ".join(catalogue.evidence)
            problems.append(Problem(file, names.line_of(i),
                                    f"unknown evidence name '{pattern}' (not in Guard's catalogue: "
                                    f"{known}; a probe plug-in adds its own when installed)"))
        out.extend(m for m in matched if m not in out)
    return tuple(out)


def _thresholds(entry: LocatedDict, file: str, problems: list[Problem]) -> dict[str, Any]:
    table = entry.get("thresholds", {})
    if not isinstance(table, dict):
        problems.append(Problem(file, entry.line_of("thresholds"),
                                "'thresholds' must map names to default values"))
        return {}
    out: dict[str, Any] = {}
    for name, value in table.items():
        line = table.line_of(name) if isinstance(table, LocatedDict) else entry.line_of("thresholds")
        if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", name):
            problems.append(Problem(file, line, f"threshold name '{name}' must be an identifier"))
        elif (wrong := threshold_problem(name, value)) is not None:
            problems.append(Problem(file, line, f"threshold '{name}' {wrong}"))
        else:
            out[name] = value
    return out


def _condition(
    entry: LocatedDict,
    key: str,
    file: str,
    variables: frozenset[str],
    metrics: frozenset[str] | None,
    thresholds: Mapping[str, Any],
    problems: list[Problem],
) -> Condition | None:
    source = entry.get(key)
    line = entry.line_of(key)
    if key not in entry:
        return None
    if not isinstance(source, str):
        problems.append(Problem(file, line, f"'{key}' must be a CEL expression in a string"))
        return None
    try:
        condition = Condition.parse(source)
    except ExpressionLimit as exc:
        problems.append(Problem(file, line, f"{key} refused: {exc}"))
        return None
    except ExpressionError as exc:
        problems.append(Problem(file, line, f"malformed {key}: {exc}"))
        return None
    for message in condition.check(variables, metrics, frozenset(thresholds)):
        problems.append(Problem(file, line, f"{key}: {message}"))
    return condition
