"""Reading policy data files with line numbers, and the one error type every check raises.

Pack authors fix problems in an editor, so every complaint names ``FILE:LINE``. PyYAML's
node marks give the line of each key and item; :func:`load_yaml` keeps them beside the
values (:class:`LocatedDict`, :class:`LocatedList`). It also keeps each scalar's source text:
YAML 1.1 reads ``1798.150`` as the float ``1798.15`` and ``yes`` as ``True``, and a CCPA
section or an article id must reach the catalogue exactly as written.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from guard.errors import ConfigError


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong in a policy file: where it is and what to fix."""

    file: str
    line: int | None
    message: str

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        return f"{where}: {self.message}"


class PolicyError(ConfigError):
    """A policy pack, catalogue, waivers or thresholds file that does not validate.

    Holds every problem found (not just the first), so ``guard policy check`` lists them all
    and the author fixes the file in one pass. Exit code 2, like every bad input.
    """

    def __init__(self, problems: list[Problem] | Problem) -> None:
        self.problems: tuple[Problem, ...] = (
            (problems,) if isinstance(problems, Problem) else tuple(problems)
        )
        super().__init__("\n".join(str(p) for p in self.problems))


class LocatedDict(dict[str, Any]):
    """A mapping from a YAML file, with the line of each key and each scalar's source text."""

    line: int | None = None

    def __init__(self) -> None:
        super().__init__()
        self.lines: dict[str, int] = {}
        self.raw: dict[str, str | None] = {}

    def line_of(self, key: str) -> int | None:
        """The line of ``key``, else of the mapping itself (a missing key is reported there)."""
        return self.lines.get(key, self.line)


class LocatedList(list[Any]):
    """A sequence from a YAML file, with the line and source text of each item."""

    line: int | None = None

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[int] = []
        self.raw: list[str | None] = []

    def line_of(self, index: int) -> int | None:
        return self.lines[index] if index < len(self.lines) else self.line


_BaseLoader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml's parser when built with it

YAML_TAG = "tag:yaml.org,2002:"
MAX_DEPTH = 100
"""Mappings and lists nested in one another (aliases followed): a policy file needs a
handful; libyaml's own bound is 1,000, deeper than Python's recursion can construct."""

_SCALARS = {
    "str": "text",
    "int": "an integer",
    "float": "a number",
    "bool": "true or false",
    "null": "null",
    "timestamp": "a valid date (YYYY-MM-DD)",
}
"""The scalar kinds a policy file may hold, and how an error describes each."""


class _Loader(_BaseLoader):  # type: ignore[misc]
    """SafeLoader that builds Located containers and refuses, with the line, every tag that is
    not plain data and every scalar its tag cannot read (``2026-02-30``, ``!!int x``)."""


class _LineProblem(Exception):
    def __init__(self, line: int | None, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.message = message


def _line(node: Any) -> int:
    return int(node.start_mark.line) + 1


def _raw(node: Any) -> str | None:
    return str(node.value) if isinstance(node, yaml.ScalarNode) else None


def _shown(node: Any) -> str:
    text = str(node.value)
    if len(text) > 40:
        return f"'{text[:20]}...' ({len(text)} characters)"
    return repr(text)


def _short_tag(tag: str) -> str:
    return "!!" + tag[len(YAML_TAG):] if tag.startswith(YAML_TAG) else tag


def _construct_map(loader: _Loader, node: Any) -> LocatedDict:
    """A mapping whose own keys are unique; keys merged in with ``<<: *anchor`` yield to them."""
    own = {id(key) for key, _ in node.value if key.tag != YAML_TAG + "merge"}
    loader.flatten_mapping(node)
    out = LocatedDict()
    out.line = _line(node)
    own_lines: dict[str, int] = {}
    for key_node, value_node in node.value:
        line = _line(key_node)
        if not isinstance(key_node, yaml.ScalarNode):
            raise _LineProblem(line, "a mapping key must be a plain name")
        key = str(key_node.value)
        if id(key_node) in own:
            if key in own_lines:
                raise _LineProblem(line, f"duplicate key '{key}' (first on line {own_lines[key]})")
            own_lines[key] = line
        out[key] = loader.construct_object(value_node, deep=True)
        out.lines[key] = line
        out.raw[key] = _raw(value_node)
    return out


def _construct_seq(loader: _Loader, node: Any) -> LocatedList:
    out = LocatedList()
    out.line = _line(node)
    for item in node.value:
        out.append(loader.construct_object(item, deep=True))
        out.lines.append(_line(item))
        out.raw.append(_raw(item))
    return out


def _scalar(kind: str) -> Any:
    base = _BaseLoader.yaml_constructors[YAML_TAG + kind]

    def construct(loader: _Loader, node: Any) -> Any:
        if not isinstance(node, yaml.ScalarNode):
            raise _LineProblem(_line(node), f"{_short_tag(node.tag)} needs {_SCALARS[kind]}, "
                                            "not a list or mapping")
        try:
            return base(loader, node)
        except (ValueError, TypeError, KeyError, AttributeError, OverflowError) as exc:
            # PyYAML's own errors for 2026-02-30, !!int x, !!bool x, a 5,000-digit integer
            implicit = not node.style and loader.resolve(yaml.ScalarNode, node.value,
                                                         (True, False)) == node.tag
            hint = "quote it to mean text" if implicit else f"as its tag {_short_tag(node.tag)} says"
            wrong = f"is not {_SCALARS[kind]}"
            if kind == "int" and "digits" in str(exc):
                wrong = f"has more digits than an integer Guard reads ({sys.get_int_max_str_digits()})"
            raise _LineProblem(_line(node), f"{_shown(node)} {wrong} ({hint})") from None

    return construct


def _refuse(loader: _Loader, node: Any) -> Any:
    raise _LineProblem(_line(node), f"the tag {_short_tag(node.tag)} is not allowed: a policy file "
                                    "holds text, numbers, true/false, dates, lists and mappings")


_Loader.add_constructor(YAML_TAG + "map", _construct_map)
_Loader.add_constructor(YAML_TAG + "seq", _construct_seq)
for _kind in _SCALARS:
    _Loader.add_constructor(YAML_TAG + _kind, _scalar(_kind))
for _tag in ("binary", "set", "omap", "pairs"):
    _Loader.add_constructor(YAML_TAG + _tag, _refuse)
_Loader.add_constructor(None, _refuse)  # !!python/..., !custom, any tag not listed above


def _too_many(line: int | None) -> _LineProblem:
    from guard.limits import describe

    return _LineProblem(line, "the document has more YAML nodes, with every alias expanded, than "
                              f"the limit of {describe('yaml_nodes')}")


def _count_events(text: str) -> None:
    """Refuse a document of more nodes than the limit before any node is built: composing
    a 4 MiB flow list would cost seconds and hundreds of MiB."""
    from guard.limits import limit

    cap, count = limit("yaml_nodes"), 0
    kinds = (yaml.ScalarEvent, yaml.AliasEvent, yaml.SequenceStartEvent, yaml.MappingStartEvent)
    for event in yaml.parse(text, Loader=_BaseLoader):
        if isinstance(event, kinds):
            count += 1
            if count > cap:
                raise _too_many(_line(event))


def _children(node: Any) -> list[Any]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def check_graph(root: Any) -> None:
    """Refuse a composed document that is too big or too deep once its aliases are expanded
    (a billion-laughs bomb: ten anchors, each listing the previous one ten times), or whose
    aliases form a cycle, before anything is constructed. Each node is sized once (the sizes
    of shared nodes are kept), so the check is linear in the composed graph.
    """
    from guard.limits import limit

    cap = limit("yaml_nodes")
    size: dict[int, int] = {}
    depth: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[Any, bool]] = [(root, False)]
    while stack:
        node, finished = stack.pop()
        key = id(node)
        if finished:
            children = _children(node)
            size[key] = min(cap + 1, 1 + sum(size[id(c)] for c in children))
            depth[key] = 1 + max((depth[id(c)] for c in children), default=0)
            on_path.discard(key)
            if size[key] > cap:
                raise _too_many(_line(node))
            if depth[key] > MAX_DEPTH:
                raise _LineProblem(_line(node), f"lists and mappings nested more than {MAX_DEPTH} deep")
            continue
        if key in size:
            continue
        if key in on_path:
            raise _LineProblem(_line(node), "an alias refers to a node that contains it (a cycle)")
        on_path.add(key)
        stack.append((node, True))
        stack.extend((child, False) for child in _children(node))


def load_yaml_text(text: str, file: str) -> Any:
    """Parse YAML text into Located containers; every problem names file and line.

    The node count is checked on the event stream, then the composed graph is checked for
    size and depth with aliases expanded, and only then are values constructed.
    """
    loader = _Loader(text)
    try:
        _count_events(text)
        root = loader.get_single_node()
        if root is None:
            return None
        check_graph(root)
        return loader.construct_document(root)
    except _LineProblem as exc:
        raise PolicyError(Problem(file, exc.line, exc.message)) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = None if mark is None else mark.line + 1
        raise PolicyError(Problem(file, line, f"not valid YAML: {exc.problem or exc}")) from None
    except yaml.YAMLError as exc:
        raise PolicyError(Problem(file, None, f"not valid YAML: {exc}")) from None
    except RecursionError:  # the pure-Python parser, where libyaml is missing
        raise PolicyError(Problem(file, None, f"nested more than {MAX_DEPTH} deep")) from None
    finally:
        loader.dispose()


def read_text(path: Path | Any, file: str, what: str = "policy file") -> str:
    """A data file's text, read within the ``policy_bytes`` limit without blocking (a FIFO,
    ``/dev/zero``, a folder and an oversized file are refused at once); ``path`` may be a
    package resource. Anything unreadable is a PolicyError naming the file."""
    from guard.errors import InputFileError
    from guard.fsio import read_input_text

    if not isinstance(path, str | Path):
        try:  # a resource inside an installed package (a zip): Guard's own data
            return str(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as exc:
            raise PolicyError(Problem(file, None, f"cannot read this {what}: {exc}")) from None
    try:
        return read_input_text(path, what, "policy_bytes")
    except InputFileError as exc:
        message = str(exc)
        prefix = f"{what} {Path(path)}: "
        reason = message[len(prefix):] if message.startswith(prefix) else message
        raise PolicyError(Problem(file, None, f"cannot read this {what}: {reason}")) from None
    except ValueError as exc:  # a NUL byte in the path
        raise PolicyError(Problem(file, None, f"cannot read this {what}: {exc}")) from None


def load_yaml(path: Path | Any, what: str = "policy file") -> Any:
    """Parse a YAML file (or package resource) into Located containers."""
    file = str(path)
    return load_yaml_text(read_text(path, file, what), file)


def load_toml_text(text: str, file: str) -> dict[str, Any]:
    """Parse TOML text; a syntax error, a number of too many digits or tables nested past
    :data:`MAX_DEPTH` is a PolicyError naming the file (and the line, where tomllib says it)."""
    import tomllib

    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        found = re.search(r"\(at line (\d+), column \d+\)", str(exc))
        line = int(found.group(1)) if found else None
        raise PolicyError(Problem(file, line, f"not valid TOML: {exc}")) from None
    except ValueError as exc:  # an integer past Python's int-str conversion limit
        raise PolicyError(Problem(file, None, f"not valid TOML: {str(exc).split(';')[0]}")) from None
    except RecursionError:
        raise PolicyError(Problem(file, None, "not valid TOML: arrays nested too deeply")) from None
    stack: list[tuple[Any, int]] = [(doc, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise PolicyError(Problem(file, None, f"tables and arrays nested more than {MAX_DEPTH} deep"))
        children = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return doc


def toml_line(text: str, key: str) -> int | None:
    """The first line assigning ``key`` in TOML text: tomllib keeps no positions.

    Good enough to point at a misspelt threshold; None when the key is not found verbatim.
    """
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if stripped.startswith("[") and stripped.strip("[] ").split(".")[-1].strip("\"' ") == key:
            return number
        for spelling in (key, f'"{key}"', f"'{key}'"):
            if stripped.startswith(spelling) and stripped[len(spelling):].lstrip().startswith("="):
                return number
    return None
