"""State shared by everything that scans one file: the budget, and the findings so far.

One file may hold many streams (zip entries, nested pickles, joblib's inner pickles); they
share one :class:`Budget` so that a thousand small bombs cost no more than one large one.
Findings go to a :class:`Findings` collector; a caller that is only guessing whether some
bytes are a pickle at all collects into a scratch one and merges it only if they were.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from guard.defenses.scan.results import ScanFinding, ScanLimits, Severity


class LimitReached(Exception):
    """A bound in :class:`ScanLimits` was reached; the message says which."""


class MalformedPickle(Exception):
    """The opcode stream cannot be followed past ``offset`` (the unpickler would stop there too)."""

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(message)
        self.offset = offset


class Budget:
    """Opcodes, inflated bytes and wall time one file may cost, counted across its streams."""

    def __init__(self, limits: ScanLimits) -> None:
        self.limits = limits
        self.deadline = time.monotonic() + limits.timeout_s
        self.opcodes = 0
        self.inflated = 0

    def charge_opcodes(self, n: int) -> None:
        self.opcodes += n
        if self.opcodes > self.limits.max_opcodes:
            raise LimitReached(f"more than {self.limits.max_opcodes} opcodes")
        if time.monotonic() > self.deadline:
            raise LimitReached(f"scan took longer than {self.limits.timeout_s:g} s")

    def charge_inflated(self, n: int) -> None:
        self.inflated += n
        if self.inflated > self.limits.max_inflated_bytes:
            raise LimitReached(f"archive inflates past {self.limits.max_inflated_bytes} bytes")
        if time.monotonic() > self.deadline:
            raise LimitReached(f"scan took longer than {self.limits.timeout_s:g} s")


@dataclass(slots=True)
class _Pending:
    severity: Severity
    rule: str
    global_name: str
    detail: str
    offset: int
    member: str
    count: int = 1
    called: bool = False


class Findings:
    """One finding per rule, import and member, with a count of repeats."""

    def __init__(self) -> None:
        self._found: dict[tuple[str, str, str], _Pending] = {}
        self._by_global: dict[tuple[str, str], _Pending] = {}

    def __len__(self) -> int:
        return len(self._found)

    def report(self, severity: Severity, rule: str, global_name: str, detail: str,
               offset: int, member: str) -> None:
        key = (rule, global_name, member)
        seen = self._found.get(key)
        if seen is None:
            seen = self._found[key] = _Pending(severity, rule, global_name, detail, offset, member)
            if global_name:
                self._by_global.setdefault((global_name, member), seen)
        else:
            seen.count += 1

    def awaits_call(self, global_name: str, member: str) -> bool:
        """True if ``global_name`` was reported in ``member`` and no call was noted yet."""
        pending = self._by_global.get((global_name, member))
        return pending is not None and not pending.called

    def note_call(self, global_name: str, member: str, how: str) -> None:
        """Add "called with ..." to the first call of an import already reported in ``member``."""
        pending = self._by_global.get((global_name, member))
        if pending is not None and not pending.called:
            pending.called = True
            pending.detail += f"; {how}"

    def merge(self, other: Findings, *, min_severity: Severity = Severity.INFO,
              rules: frozenset[str] | None = None, only_new: bool = False) -> None:
        """Take ``other``'s findings at or above ``min_severity`` whose rule is in ``rules``
        (all rules when None); ``only_new``: those not reported yet."""
        for key, p in other._found.items():
            if p.severity < min_severity or (rules is not None and p.rule not in rules):
                continue
            seen = self._found.get(key)
            if seen is None:
                self._found[key] = p
                if p.global_name:
                    self._by_global.setdefault((p.global_name, p.member), p)
            elif not only_new:
                seen.count += p.count

    def as_tuple(self) -> tuple[ScanFinding, ...]:
        out = []
        for p in self._found.values():
            detail = p.detail if p.count == 1 else f"{p.detail} ({p.count} times)"
            out.append(ScanFinding(p.severity, p.rule, p.global_name, detail, p.offset, p.member))
        out.sort(key=lambda f: (-f.severity, f.member, f.offset))
        return tuple(out)
