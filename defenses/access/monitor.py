"""Extraction monitoring at serving time: PRADA (Juuti et al. 2019, https://arxiv.org/abs/1805.02628).

An extraction attack that synthesises its queries (Jacobian-based augmentation, small
perturbations of a few seeds, noise) asks inputs whose distances to the inputs it asked
before are not distributed like those of natural traffic. PRADA keeps, for each principal
and each predicted class ``c``, a *growing set* ``G_c`` of past queries. For a new query
``x`` predicted as ``c`` (Algorithm 1 of the paper):

* the first query of a class starts ``G_c`` and records no distance;
* otherwise ``d = min ||x - g||_2`` over ``g`` in ``G_c`` (inputs flattened, float32) is
  appended to the principal's distances ``D``; when ``d > T_c``, ``x`` joins ``G_c`` and
  ``T_c = max(T_c, mean - std)`` of the distances that made ``G_c`` grow.

Once ``D`` holds :attr:`MonitorSettings.min_queries` distances, each call tests the most
recent :attr:`MonitorSettings.max_history` of them, less those beyond three standard
deviations of their mean (the paper's outlier removal), with Shapiro-Wilk: a statistic ``W``
below :attr:`MonitorSettings.threshold` raises an :class:`Alert`. Natural traffic gives
roughly normal distances, synthetic queries do not. The test runs once per call, after all
of its rows.

What it does not see: an attacker who queries natural, in-distribution inputs (Guard's own
``extraction.copycat`` and ``extraction.knockoff`` do, from their query pool) looks like any
other client, and one who first pads its history with natural inputs (200 digits before
JbDA) is mostly missed too; ``benchmarks/monitor_detection.py`` measures these beside the
synthetic attacks it does catch.

``W`` is computed here with Royston's (1992) coefficients exactly as ``scipy.stats.shapiro``
computes them (its ``swilk``), the coefficients cached per sample size: the same statistic
(``tests/test_access_monitor.py`` compares the two) at about a tenth of the cost, and without
the warnings scipy raises from inside a request.

State is per process and in memory: each server worker holds its own monitor, so a client
whose requests are spread over ``k`` workers is seen ``k`` times with a ``k``-th of its
queries each, and a restart forgets everything. Memory is bounded per principal: at most
``max_history`` distances and ``max_history`` growing-set rows across its classes (the oldest
row is evicted first), that is about ``max_history * (4 * features + 20)`` bytes, plus buffer
slack of at most as much again and one row per class: 25 MB per principal for 3,072 features
at the default 2,000. Principals come from the access policy, so their number is bounded
too. :meth:`ExtractionMonitor.reset` applies to the calls that start after it.
"""

from __future__ import annotations

import logging
import math
import threading
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

ACTIONS = ("alert", "block")
MAX_HISTORY_LIMIT = 5000
"""Royston's approximation of the Shapiro-Wilk coefficients holds for 3 to 5,000 values."""
OUTLIER_SIGMAS = 3.0

_log = logging.getLogger(__name__)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True, slots=True, kw_only=True)
class MonitorSettings:
    """``threshold``: alert when Shapiro-Wilk's ``W`` falls below it (0 to 1). ``min_queries``:
    distances recorded before the first test (at least 3). ``max_history``: the most recent
    distances tested, and the most growing-set rows kept per principal (``min_queries`` to
    5,000). ``action``: ``alert`` reports, ``block`` also refuses the principal's requests
    (403 ``extraction_suspected``) until :meth:`ExtractionMonitor.reset`.

    The defaults come from ``benchmarks/monitor_detection.py`` on the digits (seed 0 chose
    them, seeds 1 and 2 confirmed): 1 of 1,200 benign clients (held-out digits, 500 queries
    each) alerted, and 87% of 450 synthetic attackers (JbDA, T-RND, seed perturbations) within
    about 60 queries. A threshold of 0.925, or 30 queries instead of 50, raises false alarms
    to 1-10%; 100 instead of 50 loses a third of the detections, because synthetic streams
    look least normal in their first queries. ``max_history`` bounds memory and the test's
    cost (about 20 microseconds for 2,000 distances); the streams measured never filled it."""

    threshold: float = 0.9
    min_queries: int = 50
    max_history: int = 2000
    action: str = "alert"

    def __post_init__(self) -> None:
        t = self.threshold
        if isinstance(t, bool) or not isinstance(t, int | float) or not 0 < t < 1:
            raise ValueError(f"threshold must be a number strictly between 0 and 1, got {t!r}")
        if not _is_int(self.min_queries) or self.min_queries < 3:
            raise ValueError(f"min_queries must be an integer of at least 3, got {self.min_queries!r}")
        h = self.max_history
        if not _is_int(h) or not self.min_queries <= h <= MAX_HISTORY_LIMIT:
            raise ValueError(f"max_history must be an integer from min_queries ({self.min_queries}) "
                             f"to {MAX_HISTORY_LIMIT}, got {h!r}")
        if self.action not in ACTIONS:
            raise ValueError(f"action must be 'alert' or 'block', got {self.action!r}")
        object.__setattr__(self, "threshold", float(t))


@dataclass(frozen=True, slots=True, kw_only=True)
class Alert:
    """A principal whose query distances fail the normality test: ``statistic`` is ``W``,
    ``n`` the distances recorded when it fell, ``blocked`` whether its requests are refused."""

    principal: str
    statistic: float
    n: int
    blocked: bool
    reason: str


# Royston (1992), AS R94: the polynomial corrections of the two most extreme coefficients.
_C1 = (0.0, 0.221157, -0.147981, -2.071190, 4.434685, -2.706056)
_C2 = (0.0, 0.042981, -0.293762, -1.752461, 5.682633, -3.582633)


def _poly(c: tuple[float, ...], x: float) -> float:
    return sum(ci * x**i for i, ci in enumerate(c))


@lru_cache(maxsize=64)
def _coefficients(n: int) -> np.ndarray:
    """The Shapiro-Wilk coefficients for ``n`` sorted values, ascending (antisymmetric, unit
    norm), computed as scipy's ``swilk`` does."""
    from scipy.special import ndtri

    half_n = n // 2
    if n == 3:
        half = np.array([math.sqrt(0.5)])
    else:
        m = ndtri((np.arange(1, half_n + 1) - 0.375) / (n + 0.25))
        summ2 = 2.0 * float(m @ m)
        rsn = 1.0 / math.sqrt(n)
        a1 = _poly(_C1, rsn) - float(m[0]) / math.sqrt(summ2)
        half = -m
        if n > 5:
            a2 = _poly(_C2, rsn) - float(m[1]) / math.sqrt(summ2)
            fac = math.sqrt((summ2 - 2 * m[0] ** 2 - 2 * m[1] ** 2) / (1 - 2 * a1**2 - 2 * a2**2))
            half = half / fac
            half[1] = a2
        else:
            fac = math.sqrt((summ2 - 2 * m[0] ** 2) / (1 - 2 * a1**2))
            half = half / fac
        half[0] = a1
    full = np.zeros(n)
    full[:half_n] = -half
    full[n - half_n:] = half[::-1]
    full.setflags(write=False)
    return full


def shapiro_w(values: np.ndarray) -> float | None:
    """Shapiro-Wilk's ``W`` of 3 to 5,000 values (``scipy.stats.shapiro``'s statistic), or
    None when they are all equal (W is undefined)."""
    return _sorted_w(np.sort(np.asarray(values, dtype=np.float64).ravel()))


def _sorted_w(y: np.ndarray) -> float | None:
    n = len(y)
    if not 3 <= n <= MAX_HISTORY_LIMIT:
        raise ValueError(f"Shapiro-Wilk needs 3 to {MAX_HISTORY_LIMIT} values, got {n}")
    if y[-1] - y[0] <= 1e-12 * max(abs(y[-1]), abs(y[0]), 1e-300):
        return None
    yc = y - float(y.sum()) / n
    a = _coefficients(n)
    sax = float(a @ yc)
    return sax * sax / (float(a @ a) * float(yc @ yc))


def _without_outliers(y: np.ndarray) -> np.ndarray:
    """The sorted values ``y`` less those beyond :data:`OUTLIER_SIGMAS` standard deviations
    of their mean (a slice, as they are sorted)."""
    mean = float(y.sum()) / len(y)
    centred = y - mean
    std = math.sqrt(float(centred @ centred) / len(y))
    if std == 0:
        return y
    lo = int(np.searchsorted(y, mean - OUTLIER_SIGMAS * std, side="left"))
    hi = int(np.searchsorted(y, mean + OUTLIER_SIGMAS * std, side="right"))
    return y[lo:hi]


class _GrowingSet:
    """One class's growing set, oldest row first: a buffer that doubles when full and is
    compacted in place when rows were evicted from its front, back to one row when emptied
    (so a class costs at most about twice its rows, and at least one). ``half_norms`` caches
    ``||g||^2 / 2``."""

    __slots__ = ("end", "features", "half_norms", "rows", "seq", "start")

    def __init__(self, features: int) -> None:
        self.features = features
        self._allocate()

    def _allocate(self) -> None:
        self.rows = np.empty((1, self.features), dtype=np.float32)
        self.half_norms = np.empty(1, dtype=np.float32)
        self.seq = np.empty(1, dtype=np.int64)
        self.start = 0
        self.end = 0

    def __len__(self) -> int:
        return self.end - self.start

    def oldest(self) -> int:
        return int(self.seq[self.start])

    def nearest(self, x: np.ndarray) -> float:
        """The L2 distance from ``x`` to its nearest row: the nearest by ``||g||^2 / 2 - g.x``
        (one matrix-vector product), its distance recomputed exactly (no cancellation)."""
        rows = self.rows[self.start:self.end]
        j = int(np.argmin(self.half_norms[self.start:self.end] - rows @ x))
        diff = rows[j] - x
        return math.sqrt(float(diff @ diff))

    def append(self, x: np.ndarray, half_norm: float, seq: int) -> None:
        if self.end == len(self.rows):
            live = len(self)
            capacity = len(self.rows) * 2 if live * 2 > len(self.rows) else len(self.rows)
            for name in ("rows", "half_norms", "seq"):
                old = getattr(self, name)
                new = np.empty((capacity, *old.shape[1:]), dtype=old.dtype) if capacity != len(old) else old
                new[:live] = old[self.start:self.end]
                setattr(self, name, new)
            self.start, self.end = 0, live
        self.rows[self.end] = x
        self.half_norms[self.end] = half_norm
        self.seq[self.end] = seq
        self.end += 1

    def evict_oldest(self) -> None:
        self.start += 1
        if self.start == self.end:
            self._allocate()


class _Class:
    """A class's growing set and its threshold ``T_c`` over the distances that grew it."""

    __slots__ = ("added", "grow", "m2", "mean", "threshold")

    def __init__(self, features: int) -> None:
        self.grow = _GrowingSet(features)
        self.added = 0
        self.mean = 0.0
        self.m2 = 0.0
        self.threshold = 0.0

    def grew(self, d: float) -> None:
        self.added += 1
        delta = d - self.mean
        self.mean += delta / self.added
        self.m2 += delta * (d - self.mean)
        std = math.sqrt(max(self.m2 / self.added, 0.0))
        self.threshold = max(self.threshold, self.mean - std)


class _Principal:
    __slots__ = ("alert", "classes", "distances", "features", "lock", "n", "rows", "seq", "statistic")

    def __init__(self, history: int) -> None:
        self.lock = threading.Lock()
        self.features: int | None = None
        self.classes: dict[int, _Class] = {}
        self.distances = np.zeros(history, dtype=np.float64)
        self.n = 0
        self.rows = 0
        self.seq = 0
        self.statistic: float | None = None
        self.alert: Alert | None = None


class ExtractionMonitor:
    """PRADA for every principal of one process (see the module docstring), thread-safe:
    one lock per principal, so principals are watched in parallel and one principal's calls
    one after the other, in the order they take its lock."""

    def __init__(self, settings: MonitorSettings | None = None) -> None:
        if settings is not None and not isinstance(settings, MonitorSettings):
            raise TypeError(f"settings must be MonitorSettings, got {type(settings).__name__}")
        self.settings = settings if settings is not None else MonitorSettings()
        self._lock = threading.Lock()
        self._principals: dict[str, _Principal] = {}

    def observe(self, principal: str, x: np.ndarray, labels: np.ndarray) -> Alert | None:
        """Record one request of ``principal``: ``x`` a batch ``(n, ...)``, ``labels`` the
        ``n`` predicted classes, row by row in order. Returns the principal's alert, raised
        now or earlier (until :meth:`reset`), else None. Bad input is a ValueError."""
        rows, classes = _checked(principal, x, labels)
        state = self._state(principal)
        with state.lock:
            if state.alert is not None:
                return state.alert
            if state.features is None:
                state.features = rows.shape[1]
            elif rows.shape[1] != state.features:
                raise ValueError(f"x has {rows.shape[1]} features per row; earlier queries of "
                                 f"{principal!r} had {state.features}")
            for row, c in zip(rows, classes, strict=True):
                self._record(state, state.features, row, c)
            if state.n >= self.settings.min_queries:
                self._test(principal, state)
            return state.alert

    def status(self, principal: str) -> dict[str, Any]:
        """``n`` distances recorded, the last ``statistic`` (None before the first test or when
        undefined), whether the principal ``alerted``, and its growing-set ``rows``."""
        with self._lock:
            state = self._principals.get(principal)
        if state is None:
            return {"n": 0, "statistic": None, "alerted": False, "rows": 0}
        with state.lock:
            return {"n": state.n, "statistic": state.statistic, "alerted": state.alert is not None,
                    "rows": state.rows}

    def reset(self, principal: str) -> None:
        """Forget everything about ``principal``: its alert, distances and growing sets."""
        with self._lock:
            self._principals.pop(principal, None)

    def _state(self, principal: str) -> _Principal:
        with self._lock:
            state = self._principals.get(principal)
            if state is None:
                state = self._principals[principal] = _Principal(self.settings.max_history)
            return state

    def _record(self, state: _Principal, features: int, row: np.ndarray, c: int) -> None:
        cls = state.classes.get(c)
        if cls is None:
            cls = state.classes[c] = _Class(features)
        half_norm = 0.5 * float(row @ row)
        if len(cls.grow) == 0:
            self._grow(state, cls, row, half_norm)
            return
        d = cls.grow.nearest(row)
        state.distances[state.n % len(state.distances)] = d
        state.n += 1
        if d > cls.threshold:
            cls.grew(d)
            self._grow(state, cls, row, half_norm)

    def _grow(self, state: _Principal, cls: _Class, row: np.ndarray, half_norm: float) -> None:
        cls.grow.append(row, half_norm, state.seq)
        state.seq += 1
        state.rows += 1
        if state.rows > self.settings.max_history:
            oldest = min((k for k in state.classes.values() if len(k.grow)), key=lambda k: k.grow.oldest())
            oldest.grow.evict_oldest()
            state.rows -= 1

    def _test(self, principal: str, state: _Principal) -> None:
        window = np.sort(state.distances[:min(state.n, len(state.distances))])  # ring order is irrelevant
        kept = _without_outliers(window)
        w = _sorted_w(kept) if len(kept) >= 3 else None
        state.statistic = w
        if w is None or w >= self.settings.threshold:
            return
        block = self.settings.action == "block"
        state.alert = Alert(
            principal=principal, statistic=w, n=state.n, blocked=block,
            reason=(f"query distances of {principal!r} fail Shapiro-Wilk (W = {w:.3f} < "
                    f"{self.settings.threshold:g} over {len(kept)} distances): "
                    f"extraction suspected{', requests blocked' if block else ''}"),
        )
        _log.warning("%s", state.alert.reason)


def _checked(principal: str, x: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, list[int]]:
    """``x`` as float32 rows ``(n, features)`` and ``labels`` as ``n`` ints, or a ValueError."""
    if not isinstance(principal, str):
        raise ValueError(f"principal must be a string, got {type(principal).__name__}")
    try:
        arr = np.asarray(x, dtype=np.float32)
    except (TypeError, ValueError):
        raise ValueError("x is not a numeric array") from None
    if arr.ndim < 2 or arr.shape[0] == 0:
        raise ValueError(f"x must be a non-empty batch (n, ...), got shape {arr.shape}")
    rows = np.ascontiguousarray(arr.reshape(arr.shape[0], -1))
    if rows.shape[1] == 0:
        raise ValueError(f"x has no features, got shape {arr.shape}")
    if not np.isfinite(rows).all():
        raise ValueError("x holds NaN or infinite values")
    lab = np.asarray(labels)
    if lab.ndim != 1 or not np.issubdtype(lab.dtype, np.integer):
        raise ValueError(f"labels must be a 1-D array of class indices, got {lab.dtype} of shape {lab.shape}")
    if len(lab) != len(rows):
        raise ValueError(f"{len(lab)} labels for {len(rows)} rows of x")
    return rows, [int(v) for v in lab]
