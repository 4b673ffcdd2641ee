"""report.json: the machine-readable record of an audit, and the source of every re-render.

The document is versioned (``"schema": "guard.audit/1"``) so that a later Guard can refuse,
rather than misread, a report it does not understand. One target gives exactly
:meth:`AuditResult.to_dict`; several give ``{"schema": ..., "audits": [...]}``. Its JSON
Schema ships in the package (:func:`report_schema`).

Floats are rounded to six significant digits before writing: a Wilson bound printed to 17
digits claims a precision the measurement does not have, and rounding once here means the
HTML rendered during the audit and the HTML re-rendered from report.json are identical.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from guard.errors import GuardInputError
from guard.evidence import SCHEMA, AuditResult
from guard.fsio import atomic_write_text

SIGNIFICANT_DIGITS = 6


def plain(value: Any) -> Any:
    """A JSON-ready copy of ``value``: floats rounded, tuples as lists, numpy scalars unwrapped.

    Non-finite floats become ``None``: strict JSON has no NaN, and a reader that chokes on
    ``NaN`` would lose the whole report rather than one number.
    """
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        return float(f"{value:.{SIGNIFICANT_DIGITS}g}")
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    item = getattr(value, "item", None)  # numpy scalars and 0-d arrays, without importing numpy
    if callable(item) and getattr(value, "ndim", 0) == 0:
        return plain(item())
    tolist = getattr(value, "tolist", None)
    if callable(tolist):
        return plain(tolist())
    raise TypeError(f"cannot write a {type(value).__name__} to report.json: {value!r}")


def audit_dicts(results: Sequence[AuditResult]) -> list[dict[str, Any]]:
    """The audits as plain, rounded dicts: what report.json holds and what the HTML renders."""
    return [plain(r.to_dict()) for r in results]


def json_document(results: Sequence[AuditResult]) -> dict[str, Any]:
    """The report.json document: one audit as is, several under ``audits``."""
    audits = audit_dicts(results)
    if len(audits) == 1:
        return audits[0]
    return {"schema": SCHEMA, "audits": audits}


def dumps(document: Mapping[str, Any]) -> str:
    """Deterministic text: keys in the order the contracts define them, two-space indent."""
    return json.dumps(document, indent=2, ensure_ascii=False, allow_nan=False) + "\n"


def write_json(results: Sequence[AuditResult], path: Path) -> None:
    """Write report.json atomically, so an interrupted run never leaves half a report."""
    atomic_write_text(Path(path), dumps(json_document(results)))


def report_schema() -> dict[str, Any]:
    """The JSON Schema of report.json (``reports/data/report.schema.json``, shipped in the
    package) for anyone who consumes reports: CI tooling, dashboards, our own tests.

    :func:`read_json` checks only what rendering needs, so it stays lenient with older files;
    the schema states the full contract of what Guard writes.
    """
    text = resources.files("guard.reports").joinpath("data", "report.schema.json").read_text(encoding="utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


def read_json(path: Path) -> list[dict[str, Any]]:
    """The audits in a report.json of either shape, checked enough to render safely.

    Raises :class:`GuardInputError` naming the file and the problem for an unreadable file,
    invalid JSON, an unknown schema, or an audit missing the parts a report needs.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise GuardInputError(f"cannot read report {path}: {exc}") from exc
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise GuardInputError(
            f"{path} is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})"
        ) from exc
    if not isinstance(document, dict):
        raise GuardInputError(f"{path} is not a Guard report: expected a JSON object")
    _check_schema(document, path, "the document")
    if "audits" in document:
        audits = document["audits"]
        if not isinstance(audits, list):
            raise GuardInputError(f"{path}: 'audits' must be a list")
        for i, audit in enumerate(audits):
            where = f"audits[{i}]"
            if not isinstance(audit, dict):
                raise GuardInputError(f"{path}: {where} must be an object")
            if "schema" in audit:
                _check_schema(audit, path, where)
            _check_audit(audit, path, where)
        return audits
    _check_audit(document, path, "the document")
    return [document]


def _check_schema(document: Mapping[str, Any], path: Path, where: str) -> None:
    schema = document.get("schema")
    if schema is None:
        raise GuardInputError(f"{path} is not a Guard report: {where} has no 'schema' field")
    if schema != SCHEMA:
        raise GuardInputError(
            f"{path}: unknown report schema {schema!r} in {where}; this Guard reads {SCHEMA!r}"
        )


def _check_audit(audit: Mapping[str, Any], path: Path, where: str) -> None:
    """Check the parts the renderers index into, so a damaged file fails with a message."""

    def fail(part: str, expected: str) -> GuardInputError:
        return GuardInputError(f"{path}: {where}.{part} must be {expected}")

    if not isinstance(audit.get("target"), dict):
        raise fail("target", "an object")
    for key in ("evidence", "findings"):
        if not isinstance(audit.get(key, []), list):
            raise fail(key, "a list")
    if not isinstance(audit.get("environment", {}), dict):
        raise fail("environment", "an object")
    for i, ev in enumerate(audit.get("evidence", [])):
        part = f"evidence[{i}]"
        if not isinstance(ev, dict) or not isinstance(ev.get("probe"), str):
            raise fail(f"{part}.probe", "a string")
        if not isinstance(ev.get("params", {}), dict):
            raise fail(f"{part}.params", "an object")
        metrics = ev.get("metrics", {})
        if not isinstance(metrics, dict):
            raise fail(f"{part}.metrics", "an object")
        for name, metric in metrics.items():
            _check_metric(metric, path, f"{where}.{part}.metrics.{name}")
        flags = ev.get("flags", [])
        if not isinstance(flags, list) or not all(
            isinstance(f, dict) and isinstance(f.get("code"), str) for f in flags
        ):
            raise fail(f"{part}.flags", "a list of objects with a 'code'")
    for i, finding in enumerate(audit.get("findings", [])):
        if not isinstance(finding, dict) or not isinstance(finding.get("control"), str):
            raise fail(f"findings[{i}].control", "a string")


def _check_metric(metric: Any, path: Path, where: str) -> None:
    """A metric is ``{"value": number or null, "n"?: int, "ci95"?: [lo, hi]}``.

    ``value`` may be null because :func:`plain` writes a non-finite float as null.
    """
    if not isinstance(metric, dict) or not (
        "value" in metric and (metric["value"] is None or _is_number(metric["value"]))
    ):
        raise GuardInputError(f"{path}: {where} must be an object with a numeric 'value'")
    n = metric.get("n")
    if n is not None and (isinstance(n, bool) or not isinstance(n, int)):
        raise GuardInputError(f"{path}: {where}.n must be an integer")
    ci = metric.get("ci95")
    if ci is not None and not (
        isinstance(ci, list) and len(ci) == 2 and all(_is_number(v) for v in ci)
    ):
        raise GuardInputError(f"{path}: {where}.ci95 must be a pair of numbers")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
