"""Reading policy data files with line numbers, and the one error type every check raises.

Pack authors fix problems in an editor, so every complaint names ``FILE:LINE``. PyYAML's
node marks give the line of each key and item; :func:`load_yaml` keeps them beside the
values (:class:`LocatedDict`, :class:`LocatedList`). It also keeps each scalar's source text:
YAML 1.1 reads ``1798.150`` as the float ``1798.15`` and ``yes`` as ``True``, and a CCPA
section or an article id must reach the catalogue exactly as written.
"""

from __future__ import annotations

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


class _Loader(_BaseLoader):  # type: ignore[misc]
    """SafeLoader (no Python object tags) that builds Located containers."""


def _raw(node: Any) -> str | None:
    return str(node.value) if isinstance(node, yaml.ScalarNode) else None


def _construct_map(loader: _Loader, node: Any) -> LocatedDict:
    loader.flatten_mapping(node)
    out = LocatedDict()
    out.line = node.start_mark.line + 1
    for key_node, value_node in node.value:
        line = key_node.start_mark.line + 1
        if not isinstance(key_node, yaml.ScalarNode):
            raise _KeyProblem(line, "a mapping key must be a plain name")
        key = str(key_node.value)
        if key in out:
            raise _KeyProblem(line, f"duplicate key '{key}' (first on line {out.lines[key]})")
        out[key] = loader.construct_object(value_node, deep=True)
        out.lines[key] = line
        out.raw[key] = _raw(value_node)
    return out


def _construct_seq(loader: _Loader, node: Any) -> LocatedList:
    out = LocatedList()
    out.line = node.start_mark.line + 1
    for item in node.value:
        out.append(loader.construct_object(item, deep=True))
        out.lines.append(item.start_mark.line + 1)
        out.raw.append(_raw(item))
    return out


_Loader.add_constructor("tag:yaml.org,2002:map", _construct_map)
_Loader.add_constructor("tag:yaml.org,2002:seq", _construct_seq)


class _KeyProblem(Exception):
    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.message = message


def load_yaml_text(text: str, file: str) -> Any:
    """Parse YAML text into Located containers; a syntax error names file and line."""
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 (a SafeLoader subclass)
    except _KeyProblem as exc:
        raise PolicyError(Problem(file, exc.line, exc.message)) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = None if mark is None else mark.line + 1
        raise PolicyError(Problem(file, line, f"not valid YAML: {exc.problem or exc}")) from None
    except yaml.YAMLError as exc:
        raise PolicyError(Problem(file, None, f"not valid YAML: {exc}")) from None


def read_text(path: Path | Any, file: str) -> str:
    """A data file's text (``path`` may be a package resource); unreadable is a PolicyError."""
    try:
        return str(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PolicyError(Problem(file, None, "file not found")) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyError(Problem(file, None, f"cannot read: {exc}")) from None


def load_yaml(path: Path | Any) -> Any:
    """Parse a YAML file (or package resource) into Located containers."""
    file = str(path)
    return load_yaml_text(read_text(path, file), file)


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
