"""JSON a user hands Guard, read without letting it cost unbounded time or a crash, and the
typed record rebuilt from it.

:func:`parse_json` is the one JSON reader for files from outside (report.json, baselines,
signature manifests). Before parsing it measures the nesting depth with a linear scan (the
parser recurses, so 100,000 nested brackets would be a RecursionError); while parsing it
refuses NaN, Infinity and numbers beyond float range (``1e400`` would parse to inf); after,
it refuses a lone surrogate (``"\\ud800"``), a string that no UTF-8 file can hold and that
every writer chokes on.

The ``*_from_dict`` functions rebuild Evidence, Findings and AuditResults from report.json
dicts, to merge audits done in other processes (pytest-xdist workers) and to re-render
reports without re-running attacks. A stored report reaches them only once it has passed
the shipped JSON Schema (:func:`guard.reports.json_report.read_json`), so they trust its
shape. Unknown keys are ignored so newer documents of the same schema still read.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import sys
from collections.abc import Iterable, Iterator
from itertools import accumulate
from typing import Any

from guard.evidence import AuditResult, Curve, Evidence, Finding, Flag
from guard.stats import Metric


class UnsafeJSON(ValueError):
    """JSON that :func:`parse_json` refuses; the message says what and where, in one line."""


_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"?', re.DOTALL)  # an unterminated one runs to the end
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_SURROGATE = re.compile("[\ud800-\udfff]")
_FLOAT_DIGITS = len(str(int(sys.float_info.max)))  # 309: an integer with more is beyond float range


def nesting_depth(text: str) -> int:
    """The deepest nesting of arrays and objects in JSON ``text``, without parsing it.

    Strings are cut out first, so a bracket inside one does not count; what remains is summed
    as +1 per opening and -1 per closing bracket. Linear in the length, no recursion, and
    every loop runs in C (a regular expression, ``map``, ``accumulate``).
    """
    structure = _NOT_BRACKET.sub("", _STRING.sub("", text))
    return max(accumulate(map(_STEP.__getitem__, structure)), default=0)


def parse_json(data: str | bytes) -> Any:
    """``json.loads`` for a file from outside Guard; see the module docstring for what it refuses.

    Raises :class:`UnsafeJSON` or ``json.JSONDecodeError`` (both ``ValueError``), or
    ``UnicodeDecodeError`` for bytes that are not UTF-8.
    """
    from guard.limits import describe, limit

    text = data.decode("utf-8") if isinstance(data, bytes) else data
    if nesting_depth(text) > limit("json_depth"):
        raise UnsafeJSON(f"arrays and objects nested deeper than the limit of {describe('json_depth')}")
    try:
        document = json.loads(text, parse_constant=_constant, parse_float=_float, parse_int=_int)
    except RecursionError:  # only when the depth limit was raised past what the parser can take
        raise UnsafeJSON("arrays and objects nested too deep to parse") from None
    if _SURROGATE_ESCAPE.search(text):
        where = next(_lone_surrogates(document), None)
        if where is not None:
            raise UnsafeJSON(f"{where} holds a lone surrogate (a \\ud800-\\udfff escape without its pair), "
                             "which is not text")
    return document


def _constant(name: str) -> Any:
    raise UnsafeJSON(f"{name} is not a number JSON allows")


def _float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise UnsafeJSON(f"the number {_short(text)} is beyond the range of a float")
    return value


def _int(text: str) -> int:
    digits = len(text.lstrip("-"))
    if digits > _FLOAT_DIGITS or (digits == _FLOAT_DIGITS and abs(int(text)) > sys.float_info.max):
        raise UnsafeJSON(f"the number {_short(text)} is beyond the range of a float")
    return int(text)


def _short(text: str) -> str:
    return text if len(text) <= 24 else f"{text[:12]}...{text[-6:]} ({len(text)} characters)"


def json_path(steps: Iterable[str | int]) -> str:
    """``$.audits[0].target.name``: where a value sits, for an error message. A key that is
    not a plain name is quoted as Python would (``$.params['a\\nb']``), so a message stays one
    line of visible characters whatever keys the document has."""
    path = "$"
    for step in steps:
        if isinstance(step, int):
            path += f"[{step}]"
        elif step.isidentifier() and step.isascii():
            path += f".{step}"
        else:
            shown = repr(step) if len(step) <= 40 else repr(step[:30]) + "..."
            path += f"[{_SURROGATE.sub('?', shown)}]"
    return path


def _lone_surrogates(document: Any) -> Iterator[str]:
    """The JSON paths (``$.target.name``) of strings and keys holding a lone surrogate."""
    stack: list[tuple[tuple[str | int, ...], Any]] = [((), document)]
    while stack:
        steps, value = stack.pop()
        if isinstance(value, str):
            if _SURROGATE.search(value):
                yield json_path(steps)
        elif isinstance(value, dict):
            for key, item in value.items():
                if _SURROGATE.search(key):
                    yield f"{json_path(steps)} (a key)"
                stack.append(((*steps, key), item))
        elif isinstance(value, list):
            stack.extend(((*steps, i), item) for i, item in enumerate(value))


def evidence_from_dict(data: dict[str, Any]) -> Evidence:
    curves = [
        Curve(
            name=c["name"],
            x_label=c["x"],
            y_label=c["y"],
            points=tuple((float(p["x"]), Metric.from_dict(p)) for p in c["points"]),
        )
        for c in data.get("curves", [])
    ]
    return Evidence(
        probe=data["probe"],
        params=dict(data.get("params") or {}),
        metrics={k: Metric.from_dict(v) for k, v in (data.get("metrics") or {}).items()},
        flags=[Flag(f["code"], f.get("detail", "")) for f in data.get("flags") or []],
        curves=curves,
        seed=data.get("seed"),
        duration_s=float(data.get("duration_s", 0.0)),
    )


def finding_from_dict(data: dict[str, Any]) -> Finding:
    known = {f.name for f in dataclasses.fields(Finding)}
    values = {k: v for k, v in data.items() if k in known}
    if "evidence" in values:
        values["evidence"] = tuple(values["evidence"])
    return Finding(**values)


def audit_result_from_dict(data: dict[str, Any]) -> AuditResult:
    return AuditResult(
        target=dict(data.get("target") or {}),
        evidence=[evidence_from_dict(e) for e in data.get("evidence", [])],
        environment=dict(data.get("environment", {})),
        findings=[finding_from_dict(f) for f in data.get("findings", [])],
        gate=dict(data["gate"]) if isinstance(data.get("gate"), dict) else None,
    )
