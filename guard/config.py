"""Audit options from a spec file (guard.toml or ``[tool.guard]`` in pyproject.toml).

Command-line flags win over the file. Every key is checked here, once, with the file and
key named in the error, so a typo never silently falls back to a default. The file is read
through the bounded reader (``config_bytes``; a FIFO or ``/dev/zero`` is refused at once), and
TOML that would cost far more to parse than its size suggests is refused before parsing: a
dotted key of thousands of parts (``a.a.a...``) costs memory quadratic in its length, and
arrays nested thousands deep exhaust the parser's recursion. The numbers (``steps``, ``eps``,
``seed``...) are checked against the ranges their probe settings declare, before any work.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from guard.errors import ConfigError, InputFileError
from guard.fsio import read_input_text

MAX_DOTS_PER_LINE = 1_000
MAX_DOTS = 20_000
_STRINGS_AND_COMMENTS = re.compile(
    r'"""(?:\\[\s\S]|[^\\])*?"""|\'\'\'[\s\S]*?\'\'\'|"(?:\\.|[^"\\\n])*"|\'[^\'\n]*\'|#[^\n]*'
)


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditOptions:
    """Everything ``guard audit`` accepts; None means 'not given here'."""

    model: str | None = None
    arch: str | None = None
    data: str | None = None
    clip: str | None = None
    label_column: str | None = None
    attacks: tuple[str, ...] | None = None
    eps: tuple[float, ...] | None = None
    norm: str | None = None
    steps: int | None = None
    step_size: float | None = None
    samples: int | None = None
    batch_size: int | None = None
    seed: int | None = None
    out: str | None = None
    format: tuple[str, ...] | None = None
    unsafe_allow_pickle: bool | None = None
    name: str | None = None
    policy: tuple[str, ...] | None = None
    waivers: str | None = None
    baseline: str | None = None
    fail_on: str | None = None
    key: str | None = None
    key_env: str | None = None
    passphrase_env: str | None = None
    verify_with: str | None = None
    manifest: str | None = None
    train_data: str | None = None
    trainer: str | None = None
    data_manifest: str | None = None
    data_manifest_key: str | None = None
    profile: str | None = None
    budgets: tuple[int, ...] | None = None
    endpoint: str | None = None
    token_env: str | None = None
    pii_data: tuple[str, ...] | None = None
    quasi_identifiers: tuple[str, ...] | None = None
    sensitive: str | None = None
    access_policy: str | None = None
    audit_log: str | None = None
    audit_log_key_env: str | None = None
    probes: dict[str, dict[str, Any]] | None = None
    """``[probes.<id or alias>]`` tables: one probe's settings (checked when the plan is built)."""

    def merged_over(self, base: AuditOptions) -> AuditOptions:
        """These options, falling back to ``base`` where not given."""
        changes = {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}
        return replace(base, **changes)


_STR_KEYS = {"model", "arch", "data", "label_column", "norm", "out", "name", "waivers", "baseline",
             "fail_on", "key", "key_env", "passphrase_env", "verify_with", "manifest",
             "train_data", "trainer", "data_manifest", "data_manifest_key", "profile",
             "endpoint", "token_env", "sensitive", "access_policy", "audit_log", "audit_log_key_env"}
_INT_KEYS = {"steps", "samples", "batch_size", "seed"}
_LIST_STR_KEYS = {"attacks", "format", "policy", "pii_data", "quasi_identifiers"}


def _coerce(key: str, value: Any, where: str) -> Any:
    def bad(expected: str) -> ConfigError:
        return ConfigError(f"{where}: '{key}' must be {expected}, got {value!r}")

    if key == "profile":
        if value not in ("quick", "thorough"):
            raise bad('"quick" or "thorough"')
        return value
    if key in _STR_KEYS:
        if not isinstance(value, str):
            raise bad("a string")
        return value
    if key in _INT_KEYS:
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad("an integer")
        return value
    if key == "step_size":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise bad("a number")
        return float(value)
    if key == "unsafe_allow_pickle":
        if not isinstance(value, bool):
            raise bad("true or false")
        return value
    if key == "clip":
        if isinstance(value, str):
            return value
        if isinstance(value, list) and len(value) == 2 and all(
            isinstance(v, int | float) and not isinstance(v, bool) for v in value
        ):
            return f"{value[0]},{value[1]}"
        raise bad('"none", "LO,HI" or [LO, HI]')
    if key == "eps":
        items = value if isinstance(value, list) else [value]
        if not items or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in items):
            raise bad("a number or a list of numbers")
        return tuple(float(v) for v in items)
    if key == "budgets":
        items = value if isinstance(value, list) else [value]
        if not items or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in items):
            raise bad("a positive whole number or a list of them")
        return tuple(items)
    if key == "probes":
        if not isinstance(value, dict) or not all(isinstance(v, dict) for v in value.values()):
            raise bad("a table of tables, e.g. [tool.guard.probes.pgd] with steps = 100")
        return {str(k): dict(v) for k, v in value.items()}
    if key in _LIST_STR_KEYS:
        items = value if isinstance(value, list) else [value]
        if not all(isinstance(v, str) for v in items):
            raise bad("a string or a list of strings")
        return tuple(items)
    raise ConfigError(f"{where}: unknown key '{key}'")


def options_from_table(table: dict[str, Any], where: str) -> AuditOptions:
    known = {f.name for f in fields(AuditOptions)}
    values: dict[str, Any] = {}
    for raw_key, value in table.items():
        key = raw_key.replace("-", "_")
        if key in {"thresholds", "report", "strictness"}:  # policy engine, pytest plugin
            continue
        if key not in known:
            raise ConfigError(f"{where}: unknown key '{raw_key}' (known: {', '.join(sorted(known))})")
        values[key] = _coerce(key, value, where)
    return AuditOptions(**values)


def parse_toml(text: str, where: str) -> dict[str, Any]:
    """A TOML document, or one ConfigError naming ``where``; refused before parsing when it
    holds more dotted-key parts than a spec file ever needs (see the module's docstring)."""
    outside = _STRINGS_AND_COMMENTS.sub(lambda m: "\n" * m.group().count("\n"), text)
    total = 0
    for number, line in enumerate(outside.split("\n"), start=1):
        dots = line.count(".")
        if dots > MAX_DOTS_PER_LINE:
            raise ConfigError(f"{where}: line {number} has {dots} dots outside strings, over the "
                              f"{MAX_DOTS_PER_LINE} a spec file may use (a dotted key that long is refused)")
        total += dots
    if total > MAX_DOTS:
        raise ConfigError(f"{where}: {total} dots outside strings, over the {MAX_DOTS} a spec file may use")
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{where}: not valid TOML: {exc}") from None
    except RecursionError:
        raise ConfigError(f"{where}: arrays or tables nested too deeply") from None


def read_toml(path: Path, what: str = "config file") -> dict[str, Any]:
    """A TOML file read through the bounded reader (``config_bytes``) and :func:`parse_toml`."""
    return parse_toml(read_input_text(path, what, "config_bytes"), str(path))


def tool_table(doc: dict[str, Any], path: Path) -> Any:
    """A pyproject's ``[tool.guard]`` (None without one), or a ConfigError when ``tool`` is
    not a table."""
    tool = doc.get("tool", {})
    if not isinstance(tool, dict):
        raise ConfigError(f"{path}: 'tool' must be a table, got {type(tool).__name__}")
    return tool.get("guard")


def load_spec(path: Path) -> AuditOptions:
    """Options from a guard.toml (top level or ``[guard]``) or a pyproject's ``[tool.guard]``."""
    doc = read_toml(path)
    if path.name == "pyproject.toml":
        table = tool_table(doc, path)
        table = {} if table is None else table
        where = f"{path} [tool.guard]"
    else:
        table = doc.get("guard", doc)
        where = str(path)
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: expected a table, got {type(table).__name__}")
    return options_from_table(table, where)


def discover_pyproject(start: Path) -> Path | None:
    """The nearest pyproject.toml with a ``[tool.guard]`` table, from start upwards (None
    when the nearest one has none, or cannot be read as TOML: it is not Guard's file)."""
    for folder in [start, *start.parents]:
        candidate = folder / "pyproject.toml"
        if candidate.is_file():
            try:
                table = tool_table(read_toml(candidate, "pyproject"), candidate)
            except (ConfigError, InputFileError):
                return None
            return candidate if table is not None else None
    return None
