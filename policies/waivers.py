"""Waivers: an accepted risk, with who accepted it, why, for which target and until when.

A waiver turns a failing (or unassessed, or erroring) control on a matching target into
``waived``. It always expires: once ``expires`` has passed the finding fails again and its
detail says the waiver expired, so an accepted risk is reviewed rather than forgotten.
``target`` is a target name or a glob (``*`` for every target). YAML::

    waivers:
      - control: GRD-EVA-01
        target: digits-cnn
        reason: adversarial training lands in release 2.3
        approver: dpo@example.com
        expires: 2026-12-31

or TOML, one ``[[waivers]]`` table per waiver with the same keys.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from guard.policies.source import (
    LocatedDict,
    LocatedList,
    PolicyError,
    Problem,
    load_toml_text,
    load_yaml_text,
    read_text,
)

WAIVER_KEYS = ("control", "target", "reason", "approver", "expires")


@dataclass(frozen=True, slots=True)
class Waiver:
    control: str
    target: str
    reason: str
    approver: str
    expires: dt.date
    file: str = ""
    line: int | None = None

    def applies_to(self, control_id: str, target_name: str) -> bool:
        return self.control == control_id and fnmatch.fnmatchcase(target_name, self.target)

    def expired(self, today: dt.date) -> bool:
        """Valid through its expiry date; expired the day after."""
        return today > self.expires

    def to_dict(self, today: dt.date) -> dict[str, Any]:
        """The waiver as a finding records it (``finding.waiver`` in report.json)."""
        return {
            "control": self.control,
            "target": self.target,
            "reason": self.reason,
            "approver": self.approver,
            "expires": self.expires.isoformat(),
            "expired": self.expired(today),
            "source": self.file if self.line is None else f"{self.file}:{self.line}",
        }


def choose(waivers: Sequence[Waiver], control_id: str, target_name: str, today: dt.date) -> Waiver | None:
    """The waiver that governs a finding: a valid one first, then the latest expiry."""
    matching = [w for w in waivers if w.applies_to(control_id, target_name)]
    if not matching:
        return None
    return max(matching, key=lambda w: (not w.expired(today), w.expires))


def load_waivers(path: Path) -> list[Waiver]:
    """Waivers from a YAML or TOML file (by suffix), each checked with its line."""
    path = Path(path)
    file = str(path)
    text = read_text(path, file, "waivers file")
    if path.suffix.lower() == ".toml":
        doc = load_toml_text(text, file)
        entries = doc.get("waivers", doc.get("waiver"))
        headers = [n for n, line in enumerate(text.splitlines(), 1) if line.strip().startswith("[[waiver")]
        lines: list[int | None] = [*headers]
    else:
        doc = load_yaml_text(text, file)
        entries = doc.get("waivers") if isinstance(doc, dict) else doc
        lines = list(entries.lines) if isinstance(entries, LocatedList) else []
    if not isinstance(entries, list):
        raise PolicyError(Problem(file, None, "expected a list of waivers under 'waivers'"))
    problems: list[Problem] = []
    out: list[Waiver] = []
    for i, entry in enumerate(entries):
        line = lines[i] if i < len(lines) else None
        waiver = _parse(entry, file, line, problems)
        if waiver is not None:
            out.append(waiver)
    if problems:
        raise PolicyError(problems)
    return out


def _parse(entry: Any, file: str, line: int | None, problems: list[Problem]) -> Waiver | None:
    if not isinstance(entry, dict):
        problems.append(Problem(file, line, "a waiver must be a mapping of " + ", ".join(WAIVER_KEYS)))
        return None

    def where(key: str) -> int | None:
        return entry.line_of(key) if isinstance(entry, LocatedDict) else line

    found = len(problems)
    for key in sorted(set(entry) - set(WAIVER_KEYS)):
        known = ", ".join(WAIVER_KEYS)
        problems.append(Problem(file, where(key), f"unknown key '{key}' in waiver (known: {known})"))
    for key in ("control", "target", "reason", "approver"):
        value = entry.get(key)
        if not isinstance(value, str) or not value.strip():
            problems.append(Problem(file, where(key), f"waiver needs '{key}' (non-empty text)"))
    expires = _date(entry.get("expires"))
    if expires is None:
        problems.append(Problem(file, where("expires"), "waiver needs 'expires' as a date YYYY-MM-DD"))
    if len(problems) > found or expires is None:
        return None
    return Waiver(
        control=entry["control"].strip(),
        target=entry["target"].strip(),
        reason=" ".join(entry["reason"].split()),
        approver=entry["approver"].strip(),
        expires=expires,
        file=file,
        line=line,
    )


def _date(value: Any) -> dt.date | None:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value.strip())
        except ValueError:
            return None
    return None


def check_controls(waivers: Iterable[Waiver], known: Iterable[str]) -> None:
    """A waiver for a control no loaded pack has is a typo, not a silent no-op."""
    ids = set(known)
    problems = [
        Problem(w.file, w.line, f"waiver for unknown control '{w.control}'")
        for w in waivers
        if w.control not in ids
    ]
    if problems:
        raise PolicyError(problems)
