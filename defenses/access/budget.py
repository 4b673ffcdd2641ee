"""Query budgets per principal: a token bucket for the rate and a total, all or nothing.

State lives in the SQLite file shared by every worker; each charge is one ``BEGIN
IMMEDIATE`` transaction (the write lock taken before reading), so concurrent threads and
processes see a serial order and the total answered never exceeds the budget.
Bucket capacity is ``burst`` or ``per_minute``; it refills at ``per_minute / 60`` per second.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

from guard.defenses.access._db import connect
from guard.defenses.access.policy import Budget


@dataclass(frozen=True)
class Charge:
    allowed: bool
    remaining_total: int | None
    retry_after_s: float | None
    reason: str | None


class BudgetLedger:
    def __init__(self, db: Path) -> None:
        self.db = Path(db)

    def charge(self, principal: str, n: int, budget: Budget, now: float | None = None) -> Charge:
        t = time.time() if now is None else now
        cap = float(budget.burst if budget.burst is not None else (budget.per_minute or 0.0))
        conn = connect(self.db)
        try:
            conn.execute("BEGIN IMMEDIATE")
            row = conn.execute(
                "SELECT level, updated, used FROM buckets WHERE principal = ?", (principal,)
            ).fetchone()
            level, updated, used = (cap, t, 0) if row is None else (float(row[0]), float(row[1]), int(row[2]))
            if budget.per_minute is not None:
                level = min(cap, level + max(0.0, t - updated) * budget.per_minute / 60.0)
            remaining = None if budget.total is None else budget.total - used
            result: Charge
            if remaining is not None and n > remaining:
                result = Charge(
                    False, remaining, None, f"total budget exhausted: {remaining} queries left, {n} asked"
                )
            elif budget.per_minute is not None and n > cap:
                result = Charge(
                    False, remaining, None, f"request of {n} rows exceeds the burst of {int(cap)}"
                )
            elif budget.per_minute is not None and n > level + 1e-9:
                wait = (n - level) * 60.0 / budget.per_minute
                result = Charge(False, remaining, math.ceil(wait * 1000) / 1000, "rate limit exceeded")
            else:
                if budget.per_minute is not None:
                    level -= n
                used += n
                remaining = None if budget.total is None else budget.total - used
                result = Charge(True, remaining, None, None)
            conn.execute(
                "INSERT INTO buckets (principal, level, updated, used) VALUES (?, ?, ?, ?) "
                "ON CONFLICT(principal) DO UPDATE SET level = excluded.level, "
                "updated = excluded.updated, used = excluded.used",
                (principal, level, t, used),
            )
            conn.execute("COMMIT")
            return result
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
