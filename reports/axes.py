"""Axes of the SVG charts: linear from zero, or base 10 in whole decades.

Kept apart from the drawing (:mod:`.svg`) because the choice of ticks is the part worth
testing on its own: round steps a reader can interpolate between (0.05, not 0.0437) on a
linear axis, powers of ten on a log one, and a floor for values a logarithm cannot place.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


def nice_ticks(high: float, target: int = 5) -> tuple[float, ...]:
    """Ticks from 0 to at least ``high``, stepping by 1, 2, 2.5 or 5 times a power of ten.

    Round steps are what a reader can interpolate between; 0.0437 is not.
    """
    if not math.isfinite(high) or high <= 0:
        return (0.0, 1.0)
    raw = high / target
    if raw <= 0:  # high is a denormal: no power of ten steps below it
        return (0.0, high)
    magnitude = 10.0 ** math.floor(math.log10(raw))
    step = 10 * magnitude
    for multiple in (1.0, 2.0, 2.5, 5.0):
        if multiple * magnitude >= raw:
            step = multiple * magnitude
            break
    count = math.ceil(high / step - 1e-9)
    ticks = (float(f"{i * step:.12g}") for i in range(count + 1))  # 0.30000000000000004 is 0.3
    return tuple(t for t in ticks if math.isfinite(t))  # near the largest float, the last tick overflows


MAX_DECADES = 12


@dataclass(frozen=True, slots=True)
class LogAxis:
    """A base-10 axis from 10**``low_exp`` to 10**``high_exp``: whole decades, so every
    labelled tick is a power of ten. ``percent`` labels them as rates (0.1%, 1%, 100%),
    otherwise as counts (10, 100, 1,000)."""

    low_exp: int
    high_exp: int
    percent: bool = True

    def __post_init__(self) -> None:
        if self.high_exp <= self.low_exp:
            raise ValueError(f"a log axis needs high_exp above low_exp (got {self.low_exp}, {self.high_exp})")

    @property
    def low(self) -> float:
        return 10.0 ** self.low_exp

    @property
    def high(self) -> float:
        return 10.0 ** self.high_exp


def log_axis(values: Sequence[float], *, percent: bool, floor_exp: int = -6) -> LogAxis:
    """The whole decades that hold every positive finite value: at least one decade, at most
    :data:`MAX_DECADES` (a hostile budget of 1e300 must not draw thousands of ticks; values
    below the span are drawn on its floor), never starting below 10**``floor_exp``."""
    kept = [v for v in values if math.isfinite(v) and v > 0]
    if not kept:
        return LogAxis(0, 1, percent)
    high = max(floor_exp + 1, min(300, math.ceil(math.log10(max(kept)))))
    low = min(high - 1, max(floor_exp, high - MAX_DECADES, math.floor(math.log10(min(kept)))))
    return LogAxis(low, high, percent)


def decade_label(exp: int, percent: bool) -> str:
    """10**``exp`` as a tick label: ``0.1%`` for a rate, ``1,000`` for a count."""
    if percent:
        return f"{10.0 ** (exp + 2):g}%" if exp + 2 < 0 else f"{10 ** (exp + 2):,}%"
    if exp < 0:
        return f"{10.0 ** exp:g}"
    return f"{10 ** exp:,}" if exp < 7 else f"1e{exp}"


class Linear:
    """A linear axis from 0 to its last tick; ``grid`` ticks get a grid line across the plot."""

    def __init__(self, ticks: Sequence[float], labels: Sequence[str], grid: bool = False) -> None:
        self.ticks = tuple(zip(ticks, labels, strict=True))
        self.low, self.high = 0.0, ticks[-1] if ticks[-1] > 0 else 1.0
        self.grid = tuple(ticks[1:]) if grid else ()
        self.minor: tuple[float, ...] = ()

    def fraction(self, value: float) -> float:
        return min(1.0, max(0.0, value / self.high))

    def below(self, value: float) -> bool:
        return False


class Log:
    """A base-10 axis; values at or below its floor are drawn on it (:meth:`below`)."""

    def __init__(self, axis: LogAxis) -> None:
        exps = range(axis.low_exp, axis.high_exp + 1)
        self.ticks = tuple((10.0 ** e, decade_label(e, axis.percent)) for e in exps)
        self.low, self.high = axis.low, axis.high
        self.grid = tuple(t for t, _ in self.ticks[1:])
        self.minor = tuple(m * 10.0 ** e for e in exps[:-1] for m in range(2, 10))
        self._span = axis.high_exp - axis.low_exp

    def fraction(self, value: float) -> float:
        if not value > self.low:
            return 0.0
        return min(1.0, (math.log10(value) - math.log10(self.low)) / self._span)

    def below(self, value: float) -> bool:
        return not value >= self.low


RATE_AXIS = Linear([i / 5 for i in range(6)], [f"{i / 5:.0%}" for i in range(6)], grid=True)
"""The y axis of every rate chart: 0 to 100% in steps of 20 points."""
