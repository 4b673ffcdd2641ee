"""Threshold overrides: a project's own limits, from ``[tool.guard.thresholds]``.

Each control declares its thresholds with defaults; a project overrides them by name for
every control that declares the name, or for one control in a sub-table named by its id::

    [tool.guard.thresholds]
    min_robust_accuracy = 0.6            # every control declaring min_robust_accuracy

    [tool.guard.thresholds.GRD-EVA-01]
    min_robust_accuracy = 0.7            # this control only (wins over the line above)

A name that no loaded control declares is an error naming the file and line: a misspelt
override must not silently leave the default in force. So is a value out of its range (a
rate outside [0, 1], a count below 0, any number not finite; see
:data:`~guard.policies.controls.THRESHOLD_RANGES`), checked when the overrides load, before
any attack runs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from guard.policies.controls import Control, threshold_problem
from guard.policies.source import PolicyError, Problem, load_toml_text, read_text, toml_line


@dataclass(frozen=True, slots=True)
class ThresholdOverrides:
    """Overrides by name, and by control id then name; ``file``/``text`` for error lines."""

    values: Mapping[str, Any] = field(default_factory=dict)
    per_control: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    file: str = "thresholds"
    text: str = ""

    @classmethod
    def from_mapping(
        cls, table: Mapping[str, Any], file: str = "thresholds", text: str = ""
    ) -> ThresholdOverrides:
        """``{name: value}`` entries plus ``{control_id: {name: value}}`` sub-tables."""
        values = {k: v for k, v in table.items() if not isinstance(v, Mapping)}
        per_control = {k: dict(v) for k, v in table.items() if isinstance(v, Mapping)}
        return cls(values=values, per_control=per_control, file=file, text=text)

    def _line(self, key: str) -> int | None:
        return toml_line(self.text, key) if self.text else None

    def validate(self, controls: Iterable[Control]) -> None:
        """Every override names a threshold some control declares, with a value of its type."""
        by_id = {c.id: c for c in controls}
        declared: dict[str, Any] = {}
        for control in by_id.values():
            for name, default in control.thresholds.items():
                declared.setdefault(name, default)
        problems: list[Problem] = []
        for name, value in self.values.items():
            problems.extend(self._check(name, value, declared, "any loaded control"))
        for control_id, table in self.per_control.items():
            owner = by_id.get(control_id)
            if owner is None:
                problems.append(Problem(self.file, self._line(control_id),
                                        f"thresholds for unknown control '{control_id}'"))
                continue
            for name, value in table.items():
                problems.extend(self._check(name, value, owner.thresholds, f"control {control_id}"))
        if problems:
            raise PolicyError(problems)

    def _check(self, name: str, value: Any, declared: Mapping[str, Any], owner: str) -> list[Problem]:
        if name not in declared:
            known = ", ".join(sorted(declared)) or "none"
            message = f"unknown threshold '{name}': not declared by {owner} (known: {known})"
            return [Problem(self.file, self._line(name), message)]
        if not _same_kind(declared[name], value):
            return [Problem(self.file, self._line(name), f"threshold '{name}' must be like its default "
                                                         f"{declared[name]!r}, got {_shown(value)}")]
        wrong = threshold_problem(name, value)
        if wrong is not None:
            return [Problem(self.file, self._line(name), f"threshold '{name}' {wrong}")]
        return []

    def for_control(self, control: Control) -> dict[str, Any]:
        """The control's thresholds: defaults, then overrides by name, then by control id."""
        out = dict(control.thresholds)
        out.update({k: v for k, v in self.values.items() if k in out})
        out.update(self.per_control.get(control.id, {}))
        return out


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    return type(value).__name__


def _same_kind(default: Any, value: Any) -> bool:
    return _kind(default) == _kind(value)


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:40]}... ({_kind(value)})"


def load_thresholds(path: Path) -> ThresholdOverrides:
    """Overrides from a pyproject.toml (``[tool.guard.thresholds]``) or a guard.toml
    (``[guard.thresholds]`` or a top-level ``[thresholds]``); none there is no override."""
    file = str(path)
    text = read_text(Path(path), file, "thresholds file")
    doc = load_toml_text(text, file)
    keys = ("tool", "guard", "thresholds") if Path(path).name == "pyproject.toml" else (
        ("guard", "thresholds") if isinstance(doc.get("guard"), dict) else ("thresholds",))
    table: Any = doc
    for key in keys:
        table = table.get(key, {})
        if not isinstance(table, dict):
            raise PolicyError(Problem(file, toml_line(text, key), f"'{key}' must be a table"))
    return ThresholdOverrides.from_mapping(table, file=file, text=text)


def as_overrides(thresholds: ThresholdOverrides | Mapping[str, Any] | None) -> ThresholdOverrides:
    if thresholds is None:
        return ThresholdOverrides()
    if isinstance(thresholds, ThresholdOverrides):
        return thresholds
    return ThresholdOverrides.from_mapping(thresholds)
