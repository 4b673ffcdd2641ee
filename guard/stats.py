"""Estimates with their uncertainty: every rate Guard reports carries n and a 95% interval."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

Z95 = 1.959963984540054


def wilson_interval(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (Wilson 1927).

    Unlike the normal approximation it stays inside [0, 1] and behaves at 0 and n.
    """
    if n <= 0:
        raise ValueError("wilson_interval needs n > 0")
    if not 0 <= successes <= n:
        raise ValueError(f"successes must lie in [0, n], got {successes} of {n}")
    p = successes / n
    z2 = z * z
    denom = 1.0 + z2 / n
    centre = (p + z2 / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / denom
    lo = 0.0 if successes == 0 else max(0.0, centre - half)
    hi = 1.0 if successes == n else min(1.0, centre + half)
    return lo, hi


@dataclass(frozen=True, slots=True)
class Metric:
    """A measured value; ``ci95`` is set when the value is an estimate from ``n`` samples."""

    value: float
    n: int | None = None
    ci95: tuple[float, float] | None = None

    @classmethod
    def proportion(cls, successes: int, n: int) -> Metric:
        lo, hi = wilson_interval(successes, n)
        return cls(value=successes / n, n=n, ci95=(lo, hi))

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"value": self.value}
        if self.n is not None:
            out["n"] = self.n
        if self.ci95 is not None:
            out["ci95"] = [self.ci95[0], self.ci95[1]]
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Metric:
        """Read back what :meth:`to_dict` wrote; ``null`` (a non-finite value, as report.json
        stores it) reads as NaN, so a re-render shows it as not available."""
        ci = data.get("ci95")
        return cls(
            value=_number(data.get("value")),
            n=None if data.get("n") is None else int(data["n"]),
            ci95=None if ci is None else (_number(ci[0]), _number(ci[1])),
        )


def _number(value: Any) -> float:
    return math.nan if value is None else float(value)


def format_rate(metric: Mapping[str, Any] | None) -> str:
    """A proportion from report.json as ``41.0% [36.8%, 45.4%]`` (the interval when it has one)."""
    if not metric:
        return "-"
    if metric.get("value") is None:
        return "n/a"
    value = float(metric["value"])
    ci = metric.get("ci95")
    if isinstance(ci, list | tuple) and len(ci) == 2:
        return f"{value:.1%} [{float(ci[0]):.1%}, {float(ci[1]):.1%}]"
    return f"{value:.1%}"


def paired_difference(first: Any, second: Any, z: float = Z95) -> Metric:
    """The difference of two proportions measured on the same samples (``first`` and
    ``second`` are per-sample booleans, e.g. "model A was right", "model B was right"), with
    Newcombe's hybrid score interval for paired data (Newcombe 1998, Statistics in Medicine
    17:2635, method 10, with its continuity-corrected phi): each proportion's Wilson
    interval, combined through the correlation of the pairs."""
    import numpy as np

    a_ok = np.asarray(first, dtype=bool)
    b_ok = np.asarray(second, dtype=bool)
    if a_ok.shape != b_ok.shape or a_ok.ndim != 1:
        raise ValueError("paired_difference needs two 1-D boolean arrays of the same length")
    n = len(a_ok)
    if n == 0:
        raise ValueError("paired_difference needs n > 0")
    both = int(np.sum(a_ok & b_ok))
    only_a = int(np.sum(a_ok & ~b_ok))
    only_b = int(np.sum(~a_ok & b_ok))
    neither = n - both - only_a - only_b
    p1, p2 = (both + only_a) / n, (both + only_b) / n
    l1, u1 = wilson_interval(both + only_a, n, z)
    l2, u2 = wilson_interval(both + only_b, n, z)
    denom = (both + only_a) * (only_b + neither) * (both + only_b) * (only_a + neither)
    cross = both * neither - only_a * only_b
    if denom == 0:
        phi = 0.0
    else:
        corrected = max(cross - n / 2, 0.0) if cross > 0 else cross
        phi = corrected / math.sqrt(denom)
    theta = p1 - p2
    delta = math.sqrt(max((p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2, 0.0))
    eps = math.sqrt(max((u1 - p1) ** 2 - 2 * phi * (u1 - p1) * (p2 - l2) + (p2 - l2) ** 2, 0.0))
    return Metric(value=theta, n=n, ci95=(max(-1.0, theta - delta), min(1.0, theta + eps)))
