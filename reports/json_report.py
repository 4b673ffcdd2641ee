"""report.json: the machine-readable record of an audit, and the source of every re-render.

The document is versioned (``"schema": "guard.audit/1"``) so that a later Guard can refuse,
rather than misread, a report it does not understand. One target gives exactly
:meth:`AuditResult.to_dict`; several give ``{"schema": ..., "audits": [...]}``. Its JSON
Schema ships in the package (:func:`report_schema`); every report.json and baseline Guard
reads is validated against it first (:func:`read_json`), then trusted.

Every report file of one set carries the same run id (``run_id`` here): a set that a killed
run left half old, half new is told apart (:func:`check_set`) instead of read as one report.

Floats are rounded to six significant digits before writing: a Wilson bound printed to 17
digits claims a precision the measurement does not have, and rounding once here means the
HTML rendered during the audit and the HTML re-rendered from report.json are identical.
"""

from __future__ import annotations

import functools
import json
import math
import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from importlib import resources
from itertools import islice
from pathlib import Path
from typing import Any

from guard.errors import GuardInputError
from guard.evidence import SCHEMA, AuditResult
from guard.fsio import atomic_write_text, read_input, read_input_text
from guard.serialization import json_path, parse_json

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
    return audits_document(audit_dicts(results))


def audits_document(audits: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The report.json document of audits already made plain (:func:`audit_dicts`)."""
    if len(audits) == 1:
        return dict(audits[0])
    return {"schema": SCHEMA, "audits": list(audits)}


def dumps(document: Mapping[str, Any]) -> str:
    """Deterministic text: keys in the order the contracts define them, two-space indent."""
    from guard.textsafe import json_text, valid_document

    text = json.dumps(valid_document(document), indent=2, ensure_ascii=False, allow_nan=False)
    return json_text(text) + "\n"


def write_json(results: Sequence[AuditResult], path: Path) -> None:
    """Write report.json atomically, so an interrupted run never leaves half a report."""
    atomic_write_text(Path(path), dumps(json_document(results)))


def write_json_audits(audits: Sequence[Mapping[str, Any]], path: Path) -> None:
    """:func:`write_json` for audits already made plain, as the other formats get them."""
    atomic_write_text(Path(path), dumps(audits_document(audits)))


def report_schema() -> dict[str, Any]:
    """The JSON Schema of report.json (``reports/data/report.schema.json``, shipped in the
    package): what :func:`read_json` checks every report and baseline against, and the
    contract for anyone else who consumes reports (CI tooling, dashboards, our own tests)."""
    text = resources.files("guard.reports").joinpath("data", "report.schema.json").read_text(encoding="utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


def read_json(path: Path, what: str = "report") -> list[dict[str, Any]]:
    """The audits in a report.json of either shape, valid against :func:`report_schema`.

    Read whole within the ``report_bytes`` limit and parsed by
    :func:`~guard.serialization.parse_json` (bounded nesting, finite numbers, no lone
    surrogate); then the document must name this schema and validate against it, so the
    typed record built from it (:mod:`guard.serialization`) can trust its shape. Every
    refusal is one :class:`GuardInputError` line naming the file and, for a schema error,
    the JSON path of the first problem. ``what`` names the file in them ("baseline").
    """
    path = Path(path)
    label = str(path) if what == "report" else f"{what} {path}"
    text = read_input_text(path, f"cannot read {what}", "report_bytes")
    try:
        document = parse_json(text)
    except json.JSONDecodeError as exc:
        raise GuardInputError(
            f"{label} is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})"
        ) from None
    except ValueError as exc:  # UnsafeJSON, or an integer over Python's 4300-digit limit
        raise GuardInputError(f"{label}: {exc}") from None
    if not isinstance(document, dict):
        raise GuardInputError(f"{label} is not a Guard report: expected a JSON object")
    _check_schema(document, label, "the document")
    audits = document.get("audits")
    for i, audit in enumerate(audits if isinstance(audits, list) else ()):
        if isinstance(audit, dict) and "schema" in audit:
            _check_schema(audit, label, f"audits[{i}]")
    _validate(document, label)
    found: list[dict[str, Any]] = document["audits"] if "audits" in document else [document]
    return found


def _check_schema(document: Mapping[str, Any], label: str, where: str) -> None:
    """The schema name first: a report of another version deserves that message, not a list
    of the fields it names differently."""
    schema = document.get("schema")
    if schema is None:
        raise GuardInputError(f"{label} is not a Guard report: {where} has no 'schema' field")
    if schema != SCHEMA:
        raise GuardInputError(
            f"{label}: unknown report schema {_shown(schema)} in {where}; this Guard reads {SCHEMA!r}"
        )


_ERRORS_COUNTED = 1000


def _validate(document: Mapping[str, Any], label: str) -> None:
    from jsonschema.exceptions import relevance

    errors = list(islice(_validator().iter_errors(document), _ERRORS_COUNTED))
    if not errors:
        return
    first = max(errors, key=relevance)  # the shallowest: it says the most about what is wrong
    more = len(errors) - 1
    tail = f"; and {more}{'+' if len(errors) == _ERRORS_COUNTED else ''} more" if more else ""
    raise GuardInputError(f"{label}: {_problem(first)}{tail}")


@functools.cache
def _validator() -> Any:
    from jsonschema import Draft202012Validator

    return Draft202012Validator(report_schema())


_NAMES = {"object": "an object", "array": "a list", "string": "a string", "number": "a number",
          "integer": "an integer", "boolean": "true or false", "null": "null"}


def _problem(error: Any) -> str:
    """One schema error as a sentence: ``$.audits[0].target.model must be an object or null
    (it is a string)``."""
    where, kind, schema = json_path(error.absolute_path), error.validator, error.schema
    if kind == "required":
        missing = next(name for name in error.validator_value if name not in error.instance)
        expected = _expected(schema.get("properties", {}).get(missing, {}))
        return f"{json_path([*error.absolute_path, missing])} must be {expected} (it is missing)"
    found = _kind_of(error.instance)
    if kind in ("type", "oneOf", "anyOf", "allOf", "const", "enum", "minItems", "maxItems"):
        return f"{where} must be {_expected(schema)} (it is {found})"
    if kind == "minLength":
        return f"{where} must not be empty"
    if kind == "minimum":
        return f"{where} must be at least {error.validator_value} (it is {found})"
    if kind == "pattern":
        return f"{where} must match {error.validator_value} (it is {found})"
    return f"{where} is not valid: {kind} {_shown(error.validator_value)}"


def _expected(schema: Mapping[str, Any]) -> str:
    schema = _resolve(schema)
    if "const" in schema:
        return repr(schema["const"])
    if "enum" in schema:
        return "one of " + ", ".join(repr(v) for v in schema["enum"])
    for combined in ("oneOf", "anyOf"):
        if combined in schema:
            return " or ".join(_expected(option) for option in schema[combined])
    if "allOf" in schema:
        return _expected(schema["allOf"][0])
    if schema.get("type") == "array" and schema.get("minItems") == schema.get("maxItems") == 2:
        return "a pair of numbers"
    types = schema.get("type", [])
    return " or ".join(_NAMES[t] for t in ([types] if isinstance(types, str) else types)) or "present"


def _resolve(schema: Mapping[str, Any]) -> Mapping[str, Any]:
    while isinstance(schema.get("$ref"), str) and schema["$ref"].startswith("#/$defs/"):
        schema = _schema_defs()[schema["$ref"].removeprefix("#/$defs/")]
    return schema


@functools.cache
def _schema_defs() -> dict[str, Any]:
    defs: dict[str, Any] = report_schema()["$defs"]
    return defs


def _kind_of(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return f"the number {_shown(value)}"
    if isinstance(value, str):
        return f"the string {_shown(value)}"
    return "a list" if isinstance(value, list) else "an object"


def _shown(value: Any) -> str:
    shown = repr(value)
    return shown if len(shown) <= 40 else shown[:30] + "..." + shown[-6:]


# -- run ids: one per set of report files ----------------------------------------------------------

RUN_ID_MARKERS = {
    "report.html": re.compile(rb'<meta name="guard-run-id" content="([0-9a-f-]{36})">'),
    "report.md": re.compile(rb"\A<!-- guard-run-id: ([0-9a-f-]{36}) -->"),
    "report.sarif": re.compile(rb'"guard\.run_id": "([0-9a-f-]{36})"'),
    "report.junit.xml": re.compile(rb'<property name="guard\.run_id" value="([0-9a-f-]{36})"'),
}
"""How each format beside report.json carries the run id, as its writer puts it (before any
string an audit chose, and in a form such a string cannot take once escaped). Searched in
the bytes, so a sibling that is not UTF-8 is simply one without a run id. The PDF is the
HTML printed, and carries none."""


def new_run_id() -> str:
    return str(uuid.uuid4())


def run_id_of(audits: Sequence[Mapping[str, Any]]) -> str | None:
    """The run id the audits were written with (``None`` for a report from before run ids)."""
    run_id = audits[0].get("run_id") if audits else None
    return run_id if isinstance(run_id, str) else None


def check_set(report: Path, run_id: str | None, rewritten: Iterable[Path] = ()) -> None:
    """Refuse a report.json whose sibling report files come from another run.

    ``guard audit`` writes the formats one after another, each atomically; a run killed
    between two leaves a folder where report.json and report.html show different audits.
    Each file names its run (:data:`RUN_ID_MARKERS`), so the pair is told apart here rather
    than read as one report. Files in ``rewritten`` (the ones this run is about to replace)
    are not checked; nor is anything beside a report.json written before run ids.
    """
    report = Path(report)
    if run_id is None or report.name != "report.json":
        return
    replaced = {Path(p).resolve() for p in rewritten}
    for name, marker in RUN_ID_MARKERS.items():
        sibling = report.parent / name
        if sibling.resolve() in replaced or not sibling.is_file():
            continue
        match = marker.search(read_input(sibling, "cannot read report", "report_bytes"))
        other = match.group(1).decode("ascii") if match else None
        if other != run_id:
            shown = f"run {other}" if other else "a run before run ids"
            raise GuardInputError(
                f"{sibling} is from {shown}, {report} from run {run_id}: a run was interrupted "
                f"while writing the set; run the audit again, or delete {sibling.name}"
            )
