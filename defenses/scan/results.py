"""What a scan found, and the limits it ran under.

A scan reports facts about bytes (this stream imports ``os.system``; this zip entry's CRC is
wrong); it never unpickles. Severity is Guard's one ranked vocabulary (:class:`guard.levels.Severity`), so
``--fail-on`` and the policy engine compare the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from guard.levels import Severity as Severity  # re-exported: the scan's findings use it

Status = Literal["clean", "unsafe", "error"]


# Rules that say "the scan could not look at everything": with nothing worse beside them the
# file's status is "error", not "unsafe", because the scanner cannot vouch for it either way.
INCOMPLETE_RULES = frozenset(
    {"scan-error", "malformed-pickle", "malformed-archive", "resource-limit", "zip-corrupt",
     "unsupported-compression"}
)


@dataclass(frozen=True, slots=True)
class ScanFinding:
    """One fact about a file: a rated import, a container anomaly, a limit reached.

    ``global_name`` is ``module.name`` for imports and empty for container findings;
    ``offset`` is the byte offset of the opcode (or zip record) within ``member``, the
    archive entry or nested stream that holds it (empty for the file itself).
    """

    severity: Severity
    rule: str
    global_name: str
    detail: str
    offset: int
    member: str = ""

    def to_dict(self) -> dict[str, Any]:
        where = f"in {self.member}: " if self.member else ""
        return {
            "severity": self.severity.label,
            "rule": self.rule,
            "global": self.global_name,
            "detail": where + self.detail,
            "offset": self.offset,
        }


@dataclass(frozen=True, slots=True)
class ScanResult:
    """Everything the scan of one file found; ``format`` names what the bytes turned out to be."""

    path: str
    format: str
    findings: tuple[ScanFinding, ...] = ()
    duration_s: float = 0.0

    @property
    def worst(self) -> ScanFinding | None:
        """The most severe finding (the first one among equals), or None."""
        best: ScanFinding | None = None
        for f in self.findings:
            if best is None or f.severity > best.severity:
                best = f
        return best

    @property
    def status(self) -> Status:
        """``unsafe`` for a risky import or anomaly, ``error`` for a scan that could not finish."""
        risky = [f for f in self.findings if f.rule not in INCOMPLETE_RULES]
        if any(f.severity >= Severity.MEDIUM for f in risky):
            return "unsafe"
        if len(risky) < len(self.findings):
            return "error"
        return "clean"

    def fails(self, threshold: Severity) -> bool:
        return any(f.severity >= threshold for f in self.findings)

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "status": self.status,
            "format": self.format,
            "findings": [f.to_dict() for f in self.findings],
        }


@dataclass(frozen=True, slots=True)
class ScanLimits:
    """Bounds that keep a hostile file from costing unbounded time or memory.

    Reaching one is itself a ``resource-limit`` finding (high): a file built to exhaust a
    scanner is built to exhaust a loader too.
    """

    max_opcodes: int = 20_000_000
    max_memo: int = 2_000_000
    max_stack: int = 100_000
    max_depth: int = 8
    max_inflated_bytes: int = 2 << 30
    max_member_bytes: int = 1 << 30
    max_streams: int = 1_000
    timeout_s: float = 120.0
    tracked_items: int = 32

    def __post_init__(self) -> None:
        for name in ("max_opcodes", "max_memo", "max_stack", "max_depth", "max_inflated_bytes",
                     "max_member_bytes", "max_streams", "tracked_items"):
            if getattr(self, name) < 1:
                raise ValueError(f"ScanLimits.{name} must be at least 1")
        if not self.timeout_s > 0:
            raise ValueError("ScanLimits.timeout_s must be positive")
