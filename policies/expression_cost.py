"""What a CEL condition can cost, known before it runs.

CEL always terminates, but not quickly: eight nested ``map`` calls over a ten-item list make
10^8 steps, and ``map`` copies its whole result so far at every element, so three nested
maps over 100-item list literals take 14 s (``common-expression-language`` offers no cost
limit, and holds the GIL while it runs). A condition is therefore parsed here into a small
tree and walked once with the *shape* of the data it reads (how many items, values and
characters each part can hold), which bounds

* ``nesting``: comprehensions (``map``, ``filter``, ``all``, ``exists``, ``exists_one``)
  nested in one another's bodies, and
* ``steps``: the values one evaluation can build, copy or read (about 0.1 to 0.4 us each).

When a pack loads, the data is nominal evidence (:data:`NOMINAL_ITEMS`, :data:`NOMINAL_NODES`;
list literals in the condition count as written); when a condition runs, the evidence it is
given is measured, so a condition that passed its check still refuses evidence far larger
than the nominal.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeAlias

MACROS = frozenset({"all", "exists", "exists_one", "map", "filter"})
NOMINAL_ITEMS = 32
NOMINAL_NODES = 512
"""Nominal evidence, for the check when a pack loads: every list and map of 32 items, every
value of 512 nodes (an audit's evidence for one control is usually a few dozen entries)."""
MAX_STEPS = 2_000_000
"""A step is one value CEL builds, copies or reads, about 0.1 to 0.4 us: the bound is under a
second, far above any condition Guard ships (the costliest, a flag check over a literal
list, is about a thousand steps on nominal evidence)."""
MAP_NODES = 10
"""A map counts as this many values: CEL copies one about ten times slower than a number."""
_CAP = 10**18  # sums and products saturate here: a bound past it is refused all the same

TOKEN = re.compile(
    r"""(?P<ws>\s+|//[^\n]*)
    |(?P<str>(?:[rR][bB]?|[bB][rR]?)?(?:'''.*?'''|\"\"\".*?\"\"\"|'(?:\\.|[^'\\\n])*'|"(?:\\.|[^"\\\n])*"))
    |(?P<num>0[xX][0-9a-fA-F]+[uU]?|\d+(?:\.\d+)?(?:[eE][+-]?\d+)?[uU]?|\.\d+(?:[eE][+-]?\d+)?)
    |(?P<id>[_a-zA-Z][_a-zA-Z0-9]*|`[^`\n]*`)
    |(?P<op>&&|\|\||==|!=|<=|>=|.)""",
    re.VERBOSE | re.DOTALL,
)
_LEVELS = {"||": 0, "&&": 1, "==": 2, "!=": 2, "<": 2, "<=": 2, ">": 2, ">=": 2, "in": 2,
           "+": 3, "-": 3, "*": 4, "/": 4, "%": 4}
_LITERALS = frozenset({"true", "false", "null"})


@dataclass(frozen=True, slots=True)
class Token:
    kind: str
    text: str
    column: int


def tokens(source: str) -> list[Token]:
    """CEL's tokens with their 1-based columns; whitespace and ``//`` comments dropped."""
    out = []
    for match in TOKEN.finditer(source):
        kind = match.lastgroup or "op"
        if kind != "ws":
            out.append(Token(kind, match.group(), match.start() + 1))
    return out


def unquote(text: str) -> str:
    body = text.lstrip("rRbB")
    quote = body[:3] if body[:3] in ("'''", '"""') else body[0]
    return body[len(quote):-len(quote)]


# -- the tree ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Leaf:
    size: int


@dataclass(frozen=True, slots=True)
class Name:
    name: str


@dataclass(frozen=True, slots=True)
class Items:
    """A list literal, or a map or message literal (``names`` for its literal keys)."""

    values: tuple[Node, ...]
    keys: tuple[Node, ...] = ()
    names: tuple[str | None, ...] = ()
    mapping: bool = False


@dataclass(frozen=True, slots=True)
class Chain:
    """Operands of one precedence level, flat (``a + b + c``), so a long sum is not deep."""

    operands: tuple[Node, ...]
    ops: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Prefix:
    operand: Node


@dataclass(frozen=True, slots=True)
class Choice:
    test: Node
    then: Node
    other: Node


@dataclass(frozen=True, slots=True)
class Call:
    name: str
    args: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Select:
    """``base.field``, ``base[index]`` and ``base.method(args)`` steps, flat."""

    base: Node
    steps: tuple[Step, ...]


@dataclass(frozen=True, slots=True)
class Step:
    kind: str  # "field", "index" or "method"
    name: str = ""
    args: tuple[Node, ...] = ()


Node: TypeAlias = Leaf | Name | Items | Chain | Prefix | Choice | Call | Select


class Unparsed(ValueError):
    """An expression CEL accepted but this reading of its grammar does not."""


class _Parser:
    """Precedence climbing over CEL's grammar: five Python frames per nested parenthesis,
    and CEL's own parser stops at 96 levels, so the recursion here stays bounded."""

    def __init__(self, toks: list[Token]) -> None:
        self.toks = toks
        self.i = 0

    def at(self, text: str) -> bool:
        return self.i < len(self.toks) and self.toks[self.i].text == text and self.toks[self.i].kind != "str"

    def take(self, text: str | None = None) -> Token:
        if self.i >= len(self.toks) or (text is not None and not self.at(text)):
            where = self.toks[self.i].column if self.i < len(self.toks) else "the end"
            raise Unparsed(f"expected {text or 'more'} at column {where}")
        self.i += 1
        return self.toks[self.i - 1]

    def parse(self) -> Node:
        node = self.expr()
        if self.i != len(self.toks):
            raise Unparsed(f"unexpected {self.toks[self.i].text!r} at column {self.toks[self.i].column}")
        return node

    def expr(self) -> Node:
        test = self.binary(0)
        if not self.at("?"):
            return test
        self.take("?")
        then = self.binary(0)
        self.take(":")
        return Choice(test, then, self.expr())

    def _level(self) -> int | None:
        if self.i >= len(self.toks) or self.toks[self.i].kind not in ("op", "id"):
            return None
        return _LEVELS.get(self.toks[self.i].text)

    def binary(self, floor: int) -> Node:
        left = self.unary()
        while (level := self._level()) is not None and level >= floor:
            operands, ops = [left], []
            while self._level() == level:
                ops.append(self.take().text)
                operands.append(self.binary(level + 1))
            left = Chain(tuple(operands), tuple(ops))
        return left

    def unary(self) -> Node:
        negated = False
        while self.at("!") or self.at("-"):
            self.take()
            negated = True
        node = self.postfix()
        return Prefix(node) if negated else node

    def postfix(self) -> Node:
        base = self.primary()
        steps: list[Step] = []
        while True:
            if self.at("."):
                self.take(".")
                name = self.take().text
                if self.at("("):
                    steps.append(Step("method", name, self.args(")")))
                else:
                    steps.append(Step("field", name))
            elif self.at("["):
                self.take("[")
                steps.append(Step("index", args=(self.expr(),)))
                self.take("]")
            elif self.at("{") and isinstance(base, Name) and all(s.kind == "field" for s in steps):
                base, steps = self.record("}"), []  # a message literal: pkg.Type{field: value}
            else:
                return Select(base, tuple(steps)) if steps else base

    def args(self, close: str) -> tuple[Node, ...]:
        self.take("(" if close == ")" else "[")
        out: list[Node] = []
        while not self.at(close):
            if self.at(","):  # CEL reads [,] as an empty list
                self.take(",")
                continue
            out.append(self.expr())
            if not self.at(","):
                break
            self.take(",")
        self.take(close)
        return tuple(out)

    def record(self, close: str) -> Items:
        self.take("{")
        keys: list[Node] = []
        values: list[Node] = []
        names: list[str | None] = []
        while not self.at(close):
            if self.at(","):
                self.take(",")
                continue
            key = self.expr()
            keys.append(key)
            names.append(_literal_name(key, self.toks[self.i - 1]))
            self.take(":")
            values.append(self.expr())
            if not self.at(","):
                break
            self.take(",")
        self.take(close)
        return Items(tuple(values), tuple(keys), tuple(names), mapping=True)

    def primary(self) -> Node:
        tok = self.take()
        if tok.kind == "str":
            return Leaf(max(1, len(unquote(tok.text))))
        if tok.kind == "num" or tok.text in _LITERALS:
            return Leaf(1)
        if tok.kind == "id":
            if self.at("("):
                return Call(tok.text, self.args(")"))
            return Name(tok.text)
        if tok.text == "." and self.i < len(self.toks) and self.toks[self.i].kind == "id":
            return self.primary()  # a name from the root: .metrics
        if tok.text == "(":
            node = self.expr()
            self.take(")")
            return node
        if tok.text == "[":
            self.i -= 1
            return Items(self.args("]"))
        if tok.text == "{":
            self.i -= 1
            return self.record("}")
        raise Unparsed(f"unexpected {tok.text!r} at column {tok.column}")


def _literal_name(key: Node, last: Token) -> str | None:
    if isinstance(key, Leaf) and last.kind == "str":
        return unquote(last.text)
    if isinstance(key, Name):
        return key.name
    return None


def parse(source: str) -> Node:
    """The tree of an expression CEL has accepted; :class:`Unparsed` if this grammar differs."""
    try:
        return _Parser(tokens(source)).parse()
    except RecursionError:
        raise Unparsed("nested too deeply to analyse") from None


# -- shapes and cost -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Shape:
    """How big a value can be: ``n`` elements of a list or map, or characters of a string;
    ``nodes`` the values it holds, itself included (CEL copies them all where a ``map`` grows
    its result); ``fields`` a map's known members and ``item`` any element, key or value. An
    ``open`` shape is data not measured: ``n`` items at every level, ``nodes`` shared out."""

    n: int
    nodes: int = 1
    fields: Mapping[str, Shape] | None = None
    item: Shape | None = None
    open: bool = False

    def member(self, name: str) -> Shape:
        if self.open:
            return self.element()
        if self.fields is not None and name in self.fields:
            return self.fields[name]
        return self.item or SCALAR

    def element(self) -> Shape:
        """Any element; of open data, one of ``n`` parts sharing its nodes."""
        if self.open:
            return Shape(self.n, max(1, self.nodes // self.n), open=True)
        return self.item or SCALAR


SCALAR = Shape(1)


def join(a: Shape | None, b: Shape | None) -> Shape | None:
    """A shape that bounds both."""
    if a is None or b is None:
        return a or b
    n, nodes = max(a.n, b.n), max(a.nodes, b.nodes)
    if a.open or b.open:
        return Shape(n, nodes, open=True)
    fields: dict[str, Shape] | None = None
    if a.fields is not None or b.fields is not None:
        fields = dict(a.fields or {})
        for name, shape in (b.fields or {}).items():
            fields[name] = join(fields.get(name), shape) or shape
    return Shape(n, nodes, fields, join(a.item, b.item))


def shape_of(value: Any) -> Shape:
    """The shape of bound data (evidence, thresholds, target): measured, in one pass."""
    if isinstance(value, Mapping):
        fields = {str(k): shape_of(v) for k, v in value.items()}
        item: Shape | None = None
        for key, shape in fields.items():
            item = join(join(item, shape), Shape(max(1, len(key))))
        nodes = _add(MAP_NODES, *(f.nodes + 1 for f in fields.values()))
        return Shape(max(1, len(value)), nodes, fields, item)
    if isinstance(value, list | tuple):
        item = None
        nodes = 1
        for element in value:
            shape = shape_of(element)
            item, nodes = join(item, shape), _add(nodes, shape.nodes)
        return Shape(max(1, len(value)), nodes, None, item)
    if isinstance(value, str | bytes):
        return Shape(max(1, len(value)))
    return SCALAR


def nominal(variables: frozenset[str] | set[str]) -> dict[str, Shape]:
    """Evidence of the nominal size, for the check when a pack loads."""
    return {name: Shape(NOMINAL_ITEMS, NOMINAL_NODES, open=True) for name in variables}


@dataclass(frozen=True, slots=True)
class Cost:
    shape: Shape
    steps: int
    nesting: int = 0


def _add(*values: int) -> int:
    return min(_CAP, sum(values))


def _mul(*values: int) -> int:
    out = 1
    for value in values:
        out = min(_CAP, out * value)
    return out


def _touch(shape: Shape) -> int:
    """Reading a whole value (comparing, concatenating, converting, matching): its nodes, and
    its characters at about a hundredth of a step each."""
    return _add(shape.nodes, shape.n // 100)


@dataclass(slots=True)
class _Walk:
    data: Mapping[str, Shape]
    scope: dict[str, Shape] = field(default_factory=dict)

    def cost(self, node: Node) -> Cost:  # noqa: PLR0911 (one branch per kind of node)
        if isinstance(node, Leaf):
            return Cost(Shape(node.size), 1)
        if isinstance(node, Name):
            return Cost(self.scope.get(node.name) or self.data.get(node.name) or SCALAR, 1)
        if isinstance(node, Items):
            return self._items(node)
        if isinstance(node, Chain):
            return self._chain(node)
        if isinstance(node, Prefix):
            inner = self.cost(node.operand)
            return Cost(SCALAR, _add(inner.steps, 1), inner.nesting)
        if isinstance(node, Choice):
            parts = [self.cost(n) for n in (node.test, node.then, node.other)]
            shape = join(parts[1].shape, parts[2].shape) or SCALAR
            return Cost(shape, _add(1, *(p.steps for p in parts)), max(p.nesting for p in parts))
        if isinstance(node, Call):
            args = [self.cost(a) for a in node.args]
            shape = SCALAR
            if node.name == "dyn" and args:
                shape = args[0].shape
            elif node.name == "string" and args:
                shape = Shape(max(32, args[0].shape.n))
            steps = _add(1, *(a.steps for a in args), *(_touch(a.shape) for a in args))
            return Cost(shape, steps, max((a.nesting for a in args), default=0))
        return self._select(node)

    def _items(self, node: Items) -> Cost:
        parts = [self.cost(n) for n in (*node.keys, *node.values)]
        item: Shape | None = None
        for part in parts:
            item = join(item, part.shape)
        fields = None
        if node.mapping:
            values = parts[len(node.keys):]
            fields = {name: v.shape for name, v in zip(node.names, values, strict=True) if name is not None}
        nodes = _add(MAP_NODES if node.mapping else 1, *(p.shape.nodes for p in parts))
        shape = Shape(max(1, len(node.values)), nodes, fields, item)
        steps = _add(1, *(p.steps for p in parts), *(p.shape.nodes for p in parts))
        return Cost(shape, steps, max((p.nesting for p in parts), default=0))

    def _chain(self, node: Chain) -> Cost:
        first = self.cost(node.operands[0])
        shape, steps, nesting = first.shape, first.steps, first.nesting
        for op, operand in zip(node.ops, node.operands[1:], strict=True):
            right = self.cost(operand)
            nesting = max(nesting, right.nesting)
            steps = _add(steps, right.steps, 1)
            if op == "+":  # lists and strings concatenate: a copy of both
                steps = _add(steps, _touch(shape), _touch(right.shape))
                item = join(shape.element(), right.shape.element())
                shape = Shape(_add(shape.n, right.shape.n), _add(shape.nodes, right.shape.nodes), None, item)
            elif op in ("in", "==", "!="):
                steps = _add(steps, _touch(shape), _touch(right.shape))
                shape = SCALAR
            else:
                shape = SCALAR
        return Cost(shape, steps, nesting)

    def _select(self, node: Select) -> Cost:
        base = self.cost(node.base)
        shape, steps, nesting = base.shape, base.steps, base.nesting
        for step in node.steps:
            if step.kind == "field":
                shape, steps = shape.member(step.name), _add(steps, 1)
            elif step.kind == "index":
                index = self.cost(step.args[0])
                shape, steps = shape.element(), _add(steps, index.steps, 1)
                nesting = max(nesting, index.nesting)
            elif step.name in MACROS and step.args and isinstance(step.args[0], Name):
                done = self._comprehension(step.name, step.args[0].name, step.args[1:], shape)
                shape, steps, nesting = done.shape, _add(steps, done.steps), max(nesting, done.nesting)
            else:
                args = [self.cost(a) for a in step.args]
                steps = _add(steps, _touch(shape), *(a.steps for a in args), *(_touch(a.shape) for a in args))
                nesting = max(nesting, *(a.nesting for a in args), 0)
                shape = SCALAR
        return Cost(shape, steps, nesting)

    def _comprehension(self, macro: str, var: str, body: tuple[Node, ...], over: Shape) -> Cost:
        """``range.macro(var, body...)``: the bodies run once per element; ``map`` and
        ``filter`` also copy their whole result so far at every element."""
        rounds = over.n
        saved = self.scope.get(var)
        self.scope[var] = over.element()
        try:
            bodies = [self.cost(part) for part in body]
        finally:
            if saved is None:
                self.scope.pop(var, None)
            else:
                self.scope[var] = saved
        steps = _mul(rounds, _add(1, *(b.steps for b in bodies)))
        shape = SCALAR
        if macro in ("map", "filter"):
            item = bodies[-1].shape if macro == "map" and bodies else over.element()
            steps = _add(steps, _mul(rounds, rounds, item.nodes))
            shape = Shape(rounds, _add(1, _mul(rounds, item.nodes)), None, item)
        return Cost(shape, steps, 1 + max((b.nesting for b in bodies), default=0))


def estimate(tree: Node, data: Mapping[str, Shape]) -> Cost:
    """The nesting and the bound on the steps of ``tree`` evaluated on data of these shapes."""
    return _Walk(data).cost(tree)
