"""Control conditions in CEL, the Common Expression Language (https://cel.dev).

CEL is the language of Kubernetes admission policies and Google Cloud IAM conditions: side
effect free, always terminating, with no access to the host language. Conditions never go
near Python's ``eval``; they are parsed and run by ``common-expression-language`` (Rust).

On top of CEL's own parse, :func:`analyse` scans a condition's tokens so a pack can be
checked before any audit runs: the variables it uses, the metrics it reads
(``metrics.robust_accuracy``), the thresholds it names and the functions it calls. A
misspelt metric is then an error naming the file and line, not a control that errors in CI.

What a condition sees (``scope: each``, evaluated once per piece of evidence)::

    probe       "evasion.pgd"
    params      {"eps": 0.1, "norm": "inf", ...}
    metrics     {"robust_accuracy": {"value", "n", "ci95": [lo, hi], "lower", "upper"}, ...}
    flags       ["gradient_masking", ...]          validity flag codes
    thresholds  {"min_robust_accuracy": 0.5, ...}  the control's, after overrides
    target      the audited target's description (name, framework, deployment, ...)

With ``scope: all`` it sees ``evidence`` (a list of the above, without thresholds and target),
``thresholds`` and ``target``, and is evaluated once. ``lower``/``upper`` are the 95%
interval's bounds, or the value itself for a metric without an interval, so a condition such
as ``metrics.robust_accuracy.upper >= thresholds.min_robust_accuracy`` fails only when the
whole interval lies below the threshold. Numbers are doubles, so arithmetic never trips over
CEL's refusal to mix int and double.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

EACH_VARIABLES = frozenset({"probe", "params", "metrics", "flags", "thresholds", "target"})
ALL_VARIABLES = frozenset({"evidence", "thresholds", "target"})

FUNCTIONS = frozenset({
    "all", "exists", "exists_one", "map", "filter", "has", "size", "contains", "startsWith",
    "endsWith", "matches", "int", "uint", "double", "string", "bool", "dyn", "type",
})
"""CEL's standard functions and macros that conditions may call (all pure)."""

_MACROS = frozenset({"all", "exists", "exists_one", "map", "filter"})
_KEYWORDS = frozenset({"true", "false", "null", "in"})

_TOKEN = re.compile(
    r"""(?P<ws>\s+)
    |(?P<str>(?:[rR][bB]?|[bB][rR]?)?(?:'''.*?'''|\"\"\".*?\"\"\"|'(?:\\.|[^'\\\n])*'|"(?:\\.|[^"\\\n])*"))
    |(?P<num>0[xX][0-9a-fA-F]+[uU]?|\d+(?:\.\d*)?(?:[eE][+-]?\d+)?[uU]?|\.\d+(?:[eE][+-]?\d+)?)
    |(?P<id>[_a-zA-Z][_a-zA-Z0-9]*)
    |(?P<op>.)""",
    re.VERBOSE | re.DOTALL,
)


class ExpressionError(ValueError):
    """A condition that does not parse; the message says where in the expression."""


class EvaluationError(ValueError):
    """A condition that parsed but could not be evaluated on this evidence."""


@dataclass(frozen=True, slots=True)
class Analysis:
    """What a condition refers to; each name with its 1-based column in the expression."""

    variables: frozenset[str]
    metrics: tuple[tuple[str, int], ...]
    thresholds: tuple[tuple[str, int], ...]
    functions: tuple[tuple[str, int], ...]


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str
    text: str
    column: int


def _tokens(source: str) -> list[_Token]:
    out = []
    for match in _TOKEN.finditer(source):
        kind = match.lastgroup or "op"
        if kind != "ws":
            out.append(_Token(kind, match.group(), match.start() + 1))
    return out


def _unquote(text: str) -> str:
    body = text.lstrip("rRbB")
    quote = body[:3] if body[:3] in ("'''", '"""') else body[0]
    return body[len(quote):-len(quote)]


def analyse(source: str) -> Analysis:
    """Scan a condition that CEL has parsed for the names it uses (strings skipped)."""
    toks = _tokens(source)
    variables: set[str] = set()
    bound: set[str] = set()
    metrics: list[tuple[str, int]] = []
    thresholds: list[tuple[str, int]] = []
    functions: list[tuple[str, int]] = []

    def at(i: int, kind: str, text: str | None = None) -> bool:
        return 0 <= i < len(toks) and toks[i].kind == kind and (text is None or toks[i].text == text)

    for i, tok in enumerate(toks):
        if tok.kind != "id" or tok.text in _KEYWORDS:
            continue
        member = at(i - 1, "op", ".")
        if at(i + 1, "op", "("):
            functions.append((tok.text, tok.column))
            if tok.text in _MACROS and member and at(i + 2, "id") and at(i + 3, "op", ","):
                bound.add(toks[i + 2].text)
            continue
        if not member:
            variables.add(tok.text)
        if tok.text in ("metrics", "thresholds"):
            found = metrics if tok.text == "metrics" else thresholds
            if tok.text == "thresholds" and member:
                continue
            if at(i + 1, "op", ".") and at(i + 2, "id"):
                found.append((toks[i + 2].text, toks[i + 2].column))
            elif at(i + 1, "op", "[") and at(i + 2, "str") and at(i + 3, "op", "]"):
                found.append((_unquote(toks[i + 2].text), toks[i + 2].column))
    return Analysis(
        variables=frozenset(variables - bound),
        metrics=tuple(metrics),
        thresholds=tuple(thresholds),
        functions=tuple(functions),
    )


def _parse_message(exc: Exception) -> str:
    """CEL's parse error, reduced to 'column N: what is wrong'."""
    text = str(exc)
    match = re.search(r"ERROR: <input>:(\d+):(\d+): ([^\n|]*)", text)
    if not match:
        return text.splitlines()[0] if text else type(exc).__name__
    line, column, what = match.groups()
    what = re.sub(r" expecting \{.*", "", what.strip())
    where = f"column {column}" if line == "1" else f"line {line}, column {column}"
    return f"{where} of the expression: {what}"


def compile_program(source: str) -> Any:
    """CEL's compiled program for ``source``; :class:`ExpressionError` if it does not parse."""
    import cel  # imported here: only policy evaluation needs it, `guard --help` does not

    if not source.strip():
        raise ExpressionError("the expression is empty")
    try:
        return cel.compile(source)
    except (ValueError, TypeError, RuntimeError) as exc:
        raise ExpressionError(_parse_message(exc)) from None


@dataclass(frozen=True, slots=True)
class Condition:
    """A compiled condition with the names it reads; evaluate with :meth:`holds`."""

    source: str
    analysis: Analysis
    program: Any = field(compare=False, repr=False)

    @classmethod
    def parse(cls, source: str) -> Condition:
        program = compile_program(source)
        return cls(source=source, analysis=analyse(source), program=program)

    def check(
        self,
        variables: frozenset[str],
        metrics: frozenset[str] | None = None,
        thresholds: frozenset[str] = frozenset(),
    ) -> list[str]:
        """Problems with the names this condition uses; ``metrics`` None skips that check."""
        problems = []
        a = self.analysis
        for name in sorted(a.variables - variables):
            problems.append(f"unknown variable '{name}' (available: {', '.join(sorted(variables))})")
        for name, column in a.functions:
            if name not in FUNCTIONS:
                problems.append(f"column {column}: unknown function '{name}'")
        if metrics is not None:
            for name, column in a.metrics:
                if name not in metrics:
                    known = ", ".join(sorted(metrics))
                    problems.append(f"column {column}: unknown metric '{name}' for this evidence "
                                    f"(known: {known})")
        for name, column in a.thresholds:
            if name not in thresholds:
                declared = ", ".join(sorted(thresholds)) or "none"
                problems.append(f"column {column}: unknown threshold '{name}' "
                                f"(declared in this control: {declared})")
        return problems

    def holds(self, bindings: Mapping[str, Any]) -> bool:
        """True or False on these bindings; :class:`EvaluationError` when CEL cannot decide."""
        try:
            result = self.program.execute(dict(bindings))
        except KeyError as exc:
            raise EvaluationError(f"no key {exc.args[0]!r} in the evidence") from None
        except IndexError as exc:
            raise EvaluationError(f"index out of range: {exc}") from None
        except (TypeError, ValueError, RuntimeError, ArithmeticError) as exc:
            raise EvaluationError(str(exc).splitlines()[0][:240]) from None
        if not isinstance(result, bool):
            raise EvaluationError(f"the condition gave {type(result).__name__} {result!r}, not true or false")
        return result


def metric_binding(metric: Mapping[str, Any]) -> dict[str, Any]:
    """One metric as a condition sees it: value, n, ci95, and the interval's lower/upper."""
    value = _number(metric.get("value"))
    ci = metric.get("ci95")
    lower, upper = (value, value) if ci is None else (_number(ci[0]), _number(ci[1]))
    return {
        "value": value,
        "n": metric.get("n"),
        "ci95": [lower, upper],
        "lower": lower,
        "upper": upper,
    }


def _number(value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def plain_binding(value: Any) -> Any:
    """Parameters and thresholds for CEL: numbers as doubles, tuples as lists, dates as text."""
    if isinstance(value, Mapping):
        return {str(k): plain_binding(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain_binding(v) for v in value]
    if value is None or isinstance(value, bool | str | float):
        return value
    if isinstance(value, int):
        return float(value)
    return str(value)
