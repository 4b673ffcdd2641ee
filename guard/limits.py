"""Every limit Guard puts on its input, in one table.

A limit keeps bad or hostile input from costing unbounded memory or time: a file over its
size, a YAML document that expands past its node count, a CEL condition nested too deep.
Each has a default that ordinary use never meets, and an environment variable that raises
(or lowers) it for one run::

    GUARD_LIMIT_DATA_BYTES=8GiB guard audit ...

``docs/limits.md`` lists them; a test checks that it lists every entry of :data:`LIMITS`.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from guard.errors import ConfigError

KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30


@dataclass(frozen=True, slots=True)
class Limit:
    """One limit: its name, default, unit and what it bounds."""

    name: str
    default: int
    unit: str  # "bytes" or "count"
    bounds: str

    @property
    def env(self) -> str:
        return f"GUARD_LIMIT_{self.name.upper()}"


LIMITS: dict[str, Limit] = {
    limit.name: limit
    for limit in (
        Limit("model_bytes", 64 * GiB, "bytes", "a model file, read into memory once before it is scanned"),
        Limit("data_bytes", 4 * GiB, "bytes", "a data file (.npz, .npy, .csv) on disk"),
        Limit("array_bytes", 2 * GiB, "bytes",
              "the decoded arrays of one data file, checked against the headers before allocating"),
        Limit("policy_bytes", 4 * MiB, "bytes",
              "a policy pack, catalogue, waivers or thresholds file, and any file a pack selects"),
        Limit("config_bytes", 4 * MiB, "bytes", "a --config file or the pyproject.toml Guard reads"),
        Limit("report_bytes", 256 * MiB, "bytes", "a report.json read back (guard report, --baseline)"),
        Limit("manifest_bytes", 64 * MiB, "bytes", "a signature or data manifest"),
        Limit("key_bytes", 64 * KiB, "bytes", "a key file (guard keygen's, or a signing key)"),
        Limit("yaml_nodes", 200_000, "count",
              "the nodes of one YAML document with every alias expanded (a billion-laughs bomb)"),
        Limit("json_depth", 64, "count", "the nesting depth of a JSON document Guard reads"),
        Limit("cel_chars", 8_192, "count", "the length of one CEL condition"),
        Limit("cel_nesting", 3, "count",
              "comprehensions (map, filter, all, exists) nested inside one another in a CEL condition"),
        Limit("table_columns", 20_000, "count",
              "the columns of one table the personal-data scan reads (a JSON-lines file whose every "
              "line names new keys grows toward it)"),
    )
}

_SIZE = re.compile(r"^\s*(\d+)\s*([kmgt]i?b?|b)?\s*$", re.IGNORECASE)
_FACTOR = {"": 1, "b": 1, "k": KiB, "m": MiB, "g": GiB, "t": 1 << 40}


def parse_size(text: str) -> int:
    """``"4096"``, ``"64MiB"``, ``"2G"`` -> bytes; a ConfigError for anything else."""
    match = _SIZE.match(text)
    if match is None:
        raise ConfigError(f"{text!r} is not a size (write e.g. 4096, 64MiB or 2GiB)")
    unit = (match.group(2) or "").lower()[:1]
    return int(match.group(1)) * _FACTOR[unit]


def limit(name: str) -> int:
    """The limit in force: the environment's override, else the default."""
    entry = LIMITS[name]
    raw = os.environ.get(entry.env)
    if raw is None or not raw.strip():
        return entry.default
    try:
        value = parse_size(raw) if entry.unit == "bytes" else int(raw)
    except (ConfigError, ValueError):
        raise ConfigError(f"{entry.env}={raw!r}: not a whole number") from None
    if value <= 0:
        raise ConfigError(f"{entry.env}={raw!r}: must be positive")
    return value


def describe(name: str) -> str:
    """``"4 MiB (GUARD_LIMIT_POLICY_BYTES)"``: for error messages that say how to raise it."""
    entry = LIMITS[name]
    value = limit(name)
    shown = human_bytes(value) if entry.unit == "bytes" else str(value)
    return f"{shown} (raise it with {entry.env})"


def human_bytes(n: int) -> str:
    for unit, size in (("GiB", GiB), ("MiB", MiB), ("KiB", KiB)):
        if n >= size and n % size == 0:
            return f"{n // size} {unit}"
    for unit, size in (("GiB", GiB), ("MiB", MiB), ("KiB", KiB)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} bytes"
