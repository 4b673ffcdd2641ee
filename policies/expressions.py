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

from guard.policies.expression_cost import (
    MAX_STEPS,
    NOMINAL_ITEMS,
    Node,
    Unparsed,
    estimate,
    nominal,
    parse,
    shape_of,
    tokens,
    unquote,
)

EACH_VARIABLES = frozenset({"probe", "params", "metrics", "flags", "thresholds", "target"})
ALL_VARIABLES = frozenset({"evidence", "thresholds", "target"})

FUNCTIONS = frozenset({
    "all", "exists", "exists_one", "map", "filter", "has", "size", "contains", "startsWith",
    "endsWith", "matches", "int", "uint", "double", "string", "bool", "dyn", "type",
})
"""CEL's standard functions and macros that conditions may call (all pure)."""

_MACROS = frozenset({"all", "exists", "exists_one", "map", "filter"})
_KEYWORDS = frozenset({"true", "false", "null", "in"})


CEL_PARSER_CHARS = 65_535
"""Past this, a syntax error makes CEL's parser panic while it formats the column: a
condition this long is refused however far ``GUARD_LIMIT_CEL_CHARS`` is raised."""


class ExpressionError(ValueError):
    """A condition that does not parse; the message says where in the expression."""


class ExpressionLimit(ExpressionError):
    """A condition that parses but is refused before it runs: too long, comprehensions
    nested too deep, or a bound on its work past :data:`MAX_STEPS`."""


class EvaluationError(ValueError):
    """A condition that parsed but could not be evaluated on this evidence."""


@dataclass(frozen=True, slots=True)
class Analysis:
    """What a condition refers to, each name with its 1-based column in the expression, and
    what it costs: comprehensions nested ``nesting`` deep, at most ``steps`` on nominal
    evidence (see :mod:`guard.policies.expression_cost`)."""

    variables: frozenset[str]
    metrics: tuple[tuple[str, int], ...]
    thresholds: tuple[tuple[str, int], ...]
    functions: tuple[tuple[str, int], ...]
    nesting: int = 0
    steps: int = 0
    tree: Node | None = field(default=None, compare=False, repr=False)


def check_length(source: str) -> None:
    """Refuse a condition over ``cel_chars`` before CEL's parser sees it (past 65,535
    characters that parser panics)."""
    from guard.limits import describe, limit

    if len(source) > limit("cel_chars"):
        raise ExpressionLimit(f"the expression is {len(source):,} characters long, more than the "
                              f"limit of {describe('cel_chars')}")
    if len(source) > CEL_PARSER_CHARS:
        raise ExpressionLimit(f"the expression is {len(source):,} characters long, more than the "
                              f"{CEL_PARSER_CHARS:,} characters CEL's parser reads")


def _check_cost(nesting: int, steps: int) -> None:
    from guard.limits import describe, limit

    if nesting > limit("cel_nesting"):
        raise ExpressionLimit(f"comprehensions (map, filter, all, exists, exists_one) nested {nesting} "
                              f"deep, more than the limit of {describe('cel_nesting')}")
    if steps > MAX_STEPS:
        raise ExpressionLimit(f"evaluating it could take about {steps:.1e} steps on evidence of "
                              f"{NOMINAL_ITEMS} items per list, more than Guard's bound of {MAX_STEPS:,} "
                              "(comprehensions over long lists multiply, and map copies its result)")


def analyse(source: str) -> Analysis:
    """Scan a condition that CEL has parsed for the names it uses (strings skipped), and
    bound what it costs: :class:`ExpressionLimit` for one that is too long, nests its
    comprehensions past ``cel_nesting`` or could run past :data:`MAX_STEPS`, so
    ``guard policy check`` refuses what evaluation would refuse."""
    check_length(source)
    try:
        tree = parse(source)
    except Unparsed as exc:
        raise ExpressionError(f"Guard cannot bound this expression: {exc}") from None
    cost = estimate(tree, nominal(EACH_VARIABLES | ALL_VARIABLES))
    _check_cost(cost.nesting, cost.steps)
    toks = tokens(source)
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
                found.append((unquote(toks[i + 2].text), toks[i + 2].column))
    return Analysis(
        variables=frozenset(variables - bound),
        metrics=tuple(metrics),
        thresholds=tuple(thresholds),
        functions=tuple(functions),
        nesting=cost.nesting,
        steps=cost.steps,
        tree=tree,
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


def _is_panic(exc: BaseException) -> bool:
    """A Rust panic in CEL: pyo3's ``PanicException`` derives from BaseException, so it would
    pass every ``except Exception``. Everything but the interpreter's own exits counts."""
    return not isinstance(exc, KeyboardInterrupt | SystemExit | GeneratorExit)


def compile_program(source: str) -> Any:
    """CEL's compiled program for ``source``; :class:`ExpressionError` if it does not parse,
    is too long, or makes CEL's parser panic."""
    import cel  # imported here: only policy evaluation needs it, `guard --help` does not

    if not source.strip():
        raise ExpressionError("the expression is empty")
    check_length(source)
    try:
        return cel.compile(source)
    except (ValueError, TypeError, RuntimeError) as exc:
        raise ExpressionError(_parse_message(exc)) from None
    except BaseException as exc:
        if not _is_panic(exc):
            raise
        raise ExpressionError(f"CEL's parser failed on it ({type(exc).__name__}: "
                              f"{str(exc)[:120]})") from None


@dataclass(frozen=True, slots=True)
class Condition:
    """A compiled condition with the names it reads; evaluate with :meth:`holds`."""

    source: str
    analysis: Analysis
    program: Any = field(compare=False, repr=False)

    @classmethod
    def parse(cls, source: str) -> Condition:
        """Compile and analyse ``source``: :class:`ExpressionError` for one that does not
        parse, :class:`ExpressionLimit` for one over a limit."""
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
        """True or False on these bindings; :class:`EvaluationError` when CEL cannot decide,
        or when on this evidence the condition could run past :data:`MAX_STEPS`."""
        if self.analysis.tree is not None:
            cost = estimate(self.analysis.tree, {k: shape_of(v) for k, v in bindings.items()})
            if cost.steps > MAX_STEPS:
                raise EvaluationError(f"on this evidence the condition could take about {cost.steps:.1e} "
                                      f"steps, more than Guard's bound of {MAX_STEPS:,}")
        try:
            result = self.program.execute(dict(bindings))
        except KeyError as exc:
            raise EvaluationError(f"no key {exc.args[0]!r} in the evidence") from None
        except IndexError as exc:
            raise EvaluationError(f"index out of range: {exc}") from None
        except (TypeError, ValueError, RuntimeError, ArithmeticError) as exc:
            raise EvaluationError(_first_line(exc)) from None
        except BaseException as exc:
            if not _is_panic(exc):
                raise
            raise EvaluationError(f"CEL failed on it ({type(exc).__name__}: {_first_line(exc)})") from None
        if not isinstance(result, bool):
            raise EvaluationError(f"the condition gave {type(result).__name__} {result!r}, not true or false")
        return result


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:240] if text else type(exc).__name__


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
