"""Severity and status: the two ordered vocabularies of every finding, defined once.

A scan finding, a policy control and a report all rank severities the same way, and every
renderer orders statuses worst first the same way. A severity Guard does not know (a
hand-edited report) ranks above critical, so it can never hide below a gate.
"""

from __future__ import annotations

from enum import IntEnum, StrEnum


class Severity(IntEnum):
    """Ordered severities; comparing two is comparing risk."""

    INFO = 0
    LOW = 1
    MEDIUM = 2
    HIGH = 3
    CRITICAL = 4

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, text: str) -> Severity:
        try:
            return cls[text.strip().upper()]
        except KeyError:
            names = ", ".join(s.label for s in cls)
            raise ValueError(f"unknown severity {text!r}; use one of {names}") from None

    @classmethod
    def rank_of(cls, text: str) -> int:
        """The rank of a severity written as text; an unknown one ranks above critical."""
        try:
            return int(cls[str(text).strip().upper()])
        except KeyError:
            return len(cls)


class Status(StrEnum):
    """A control's verdict, in the order a reader should look at them (worst first)."""

    FAIL = "fail"
    ERROR = "error"
    WAIVED = "waived"
    NOT_ASSESSED = "not_assessed"
    PASS = "pass"

    @property
    def label(self) -> str:
        return self.value.replace("_", " ")

    @property
    def failing(self) -> bool:
        """An error fails a gate too: a control that could not be decided has not passed."""
        return self in (Status.FAIL, Status.ERROR)

    @classmethod
    def rank_of(cls, text: str) -> int:
        """Worst first; an unknown status sorts last."""
        order = list(cls)
        try:
            return order.index(cls(text))
        except ValueError:
            return len(order)


SEVERITY_ORDER: tuple[str, ...] = tuple(s.label for s in Severity)
STATUS_ORDER: tuple[str, ...] = tuple(s.value for s in Status)
FAILING: frozenset[str] = frozenset(s.value for s in Status if s.failing)
