"""Input validation: the first thing a served model's inputs meet, before any model call.

A request's inputs arrive as a NumPy array or as JSON (lists of lists). :class:`InputValidator`
turns them into one float batch of the declared row shape, or refuses them with a one-line
reason that names the problem and the row (the server answers 422 with it):

* not numbers (text, ``None``, booleans, complex values), ragged or too deeply nested lists;
* a batch of the wrong rank, or rows of the wrong shape;
* an empty batch, or more rows than one request may hold (checked before the whole request
  is converted, so a huge list is refused cheaply);
* NaN or infinity (naming the row), values outside the declared range, values that do not
  fit the dtype the model computes in.

The range is the model's declared input range (``clip``), one (lo, hi) for every feature,
or for tables whose features have no declared range, per-feature ranges learned from
reference data with a margin (:meth:`InputValidator.from_data`).
Rows are numbered from 0, as in the request.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from guard.defenses.access.guarded import InputRejected
from guard.errors import ConfigError, DataError

DEFAULT_MAX_ROWS = 10_000
"""Rows one request may hold unless the validator is told otherwise."""

_FLOAT_DTYPES = ("float16", "float32", "float64")
_NUMERIC_KINDS = "iuf"

Bound = float | np.ndarray | None


def _describe_shape(shape: tuple[int, ...]) -> str:
    return "(" + ", ".join(str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"


def _number(value: Any) -> str:
    return f"{float(value):.4g}"


class InputValidator:
    """Checks one batch of inputs against the declared row shape, dtype and range.

    ``shape`` is the shape of one row (``(64,)`` for a table of 64 features, ``(1, 8, 8)``
    for a one-channel 8x8 image); ``dtype`` the floating dtype the batch is returned in;
    ``lo`` and ``hi`` the declared range, each a number for every feature or an array of the
    row's shape (per-feature bounds), or None for no bound on that side; ``max_rows`` the
    most rows one call accepts. ``feature_names`` name the columns of flat rows in messages.
    """

    def __init__(
        self,
        shape: Sequence[int],
        dtype: str = "float32",
        lo: Bound = None,
        hi: Bound = None,
        max_rows: int = DEFAULT_MAX_ROWS,
        *,
        feature_names: Sequence[str] | None = None,
    ) -> None:
        self.shape = self._checked_shape(shape)
        if not isinstance(dtype, str) or dtype not in _FLOAT_DTYPES:
            raise ConfigError(f"dtype must be one of {', '.join(_FLOAT_DTYPES)}, got {dtype!r}")
        self.dtype = dtype
        if isinstance(max_rows, bool) or not isinstance(max_rows, int) or max_rows < 1:
            raise ConfigError(f"max_rows must be a positive integer, got {max_rows!r}")
        self.max_rows = max_rows
        self.lo = self._checked_bound("lo", lo)
        self.hi = self._checked_bound("hi", hi)
        if self.lo is not None and self.hi is not None and np.any(np.asarray(self.lo) > np.asarray(self.hi)):
            raise ConfigError("lo must not exceed hi (for any feature)")
        names = None if feature_names is None else tuple(str(n) for n in feature_names)
        if names is not None and (len(self.shape) != 1 or len(names) != self.shape[0]):
            raise ConfigError(f"feature_names: expected {math.prod(self.shape)} names for flat rows of "
                              f"shape {_describe_shape(self.shape)}, got {len(names)}")
        self.feature_names = names

    @staticmethod
    def _checked_shape(shape: Sequence[int]) -> tuple[int, ...]:
        try:
            dims = tuple(shape)
        except TypeError:
            raise ConfigError(f"shape must be a tuple of positive integers, got {shape!r}") from None
        if not dims or any(isinstance(d, bool) or not isinstance(d, int | np.integer) or d < 1 for d in dims):
            raise ConfigError(f"shape must be a tuple of positive integers (one row's shape), got {shape!r}")
        return tuple(int(d) for d in dims)

    def _checked_bound(self, name: str, value: Bound) -> float | np.ndarray | None:
        if value is None:
            return None
        if isinstance(value, np.ndarray):
            arr = np.asarray(value, dtype=np.float64)
            if arr.shape != self.shape:
                raise ConfigError(f"{name}: per-feature bounds must have the row shape "
                                  f"{_describe_shape(self.shape)}, got {_describe_shape(arr.shape)}")
            if not np.isfinite(arr).all():
                raise ConfigError(f"{name}: bounds must be finite; give None for no bound")
            return arr
        if isinstance(value, bool) or not isinstance(value, int | float | np.floating | np.integer):
            raise ConfigError(f"{name} must be a number, an array of the row shape or None, got {value!r}")
        if not math.isfinite(float(value)):
            raise ConfigError(f"{name} must be finite, got {value!r}; give None for no bound")
        return float(value)

    @classmethod
    def from_data(
        cls,
        x: np.ndarray,
        clip: tuple[float, float] | None = None,
        *,
        margin: float | None = None,
        dtype: str = "float32",
        max_rows: int = DEFAULT_MAX_ROWS,
        feature_names: Sequence[str] | None = None,
    ) -> InputValidator:
        """A validator for inputs like ``x`` (reference data: rows of one shape).

        With ``clip`` (the model's declared input range), every value must lie in it. Without,
        a ``margin`` learns one range per feature from ``x``: its minimum and maximum widened
        by ``margin`` times the feature's spread (a constant feature by ``margin`` times its
        magnitude, at least ``margin``). With neither, values are not range-checked.
        """
        data = np.asarray(x)
        if data.ndim < 2 or len(data) == 0 or data.dtype.kind not in _NUMERIC_KINDS:
            raise DataError(f"reference data must be a non-empty numeric batch, got shape {data.shape} "
                            f"of dtype {data.dtype}")
        data = data.astype(np.float64)
        if not np.isfinite(data).all():
            raise DataError("reference data holds NaN or infinity")
        shape = tuple(int(d) for d in data.shape[1:])
        if clip is not None:
            if margin is not None:
                raise ConfigError("give clip (a declared range) or margin (a learned one), not both")
            return cls(shape, dtype, float(clip[0]), float(clip[1]), max_rows, feature_names=feature_names)
        if margin is None:
            return cls(shape, dtype, None, None, max_rows, feature_names=feature_names)
        if isinstance(margin, bool) or not isinstance(margin, int | float) or not 0 <= margin <= 1e6:
            raise ConfigError(f"margin must be a number from 0 to 1e6 (a share of each feature's spread), "
                              f"got {margin!r}")
        low, high = data.min(axis=0), data.max(axis=0)
        spread = high - low
        fallback = np.maximum(np.maximum(np.abs(low), np.abs(high)), 1.0)
        pad = margin * np.where(spread > 0, spread, fallback)
        return cls(shape, dtype, low - pad, high + pad, max_rows, feature_names=feature_names)

    def describe(self) -> dict[str, Any]:
        """What the validator enforces, for a report or a server's status page."""

        def bound(b: float | np.ndarray | None) -> Any:
            return b.tolist() if isinstance(b, np.ndarray) else b

        return {"shape": list(self.shape), "dtype": self.dtype, "lo": bound(self.lo), "hi": bound(self.hi),
                "max_rows": self.max_rows}

    # -- the check ---------------------------------------------------------------------------

    def check(self, x: Any) -> np.ndarray:
        """The batch as a contiguous array of ``dtype``; raises :class:`InputRejected`."""
        self._check_rows_cheaply(x)
        arr = self._as_numeric_array(x)
        rank = len(self.shape) + 1
        if arr.ndim >= 1 and arr.shape[0] == 0:
            raise InputRejected("the batch is empty: send at least one row")
        if arr.ndim != rank:
            if arr.shape == self.shape:
                raise InputRejected(f"expected a batch of rows of shape {_describe_shape(self.shape)}, got "
                                    "one row without the batch dimension: wrap it in a list")
            raise InputRejected(f"expected a batch of rows of shape {_describe_shape(self.shape)} (an array "
                                f"of rank {rank}), got an array of shape {_describe_shape(arr.shape)}")
        if arr.shape[1:] != self.shape:
            raise InputRejected(f"expected rows of shape {_describe_shape(self.shape)}, got "
                                f"{_describe_shape(arr.shape[1:])}")
        values = arr.astype(np.float64, copy=False)
        flat = values.reshape(len(values), -1)
        self._check_finite(flat)
        self._check_range(flat)
        with np.errstate(over="ignore"):  # an overflow becomes inf, refused just below
            out = np.ascontiguousarray(values, dtype=self.dtype)
        bad = ~np.isfinite(out.reshape(len(out), -1)).all(axis=1)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise InputRejected(f"row {row} has values too large for {self.dtype} "
                                f"(largest magnitude {_number(np.abs(flat[row]).max())})")
        return out

    def _check_rows_cheaply(self, x: Any) -> None:
        """Refuse an oversized request before converting it (a list of a million rows)."""
        if isinstance(x, list | tuple) or (isinstance(x, np.ndarray) and x.ndim >= 1):
            if len(x) > self.max_rows:
                raise InputRejected(f"the batch has {len(x)} rows; at most {self.max_rows} are accepted "
                                    "per request")
        if isinstance(x, list | tuple):
            depth, item = 0, x
            while isinstance(item, list | tuple):
                depth += 1
                if depth > len(self.shape) + 1:
                    raise InputRejected(f"expected rows of shape {_describe_shape(self.shape)} (lists nested "
                                        f"{len(self.shape) + 1} deep), got lists nested deeper")
                if not item:
                    break
                item = item[0]

    @staticmethod
    def _as_numeric_array(x: Any) -> np.ndarray:
        try:
            arr = np.asarray(x)
        except ValueError:
            raise InputRejected("inputs are ragged: the rows (or nested lists) have different lengths; "
                                "a batch must be rectangular") from None
        kind = arr.dtype.kind
        if kind in _NUMERIC_KINDS:
            return arr
        if kind == "b":
            raise InputRejected("inputs are booleans, not numbers")
        if kind == "c":
            raise InputRejected("inputs are complex numbers; expected real numbers")
        if kind in "USa":
            raise InputRejected("inputs are not numeric: they hold text")
        if kind == "O":
            for item in arr.flat:
                if isinstance(item, bool) or not isinstance(item, int | float | np.integer | np.floating):
                    what = "None" if item is None else f"a {type(item).__name__}"
                    raise InputRejected(f"inputs are not numeric: they hold {what}")
            try:
                return arr.astype(np.float64)
            except OverflowError:
                raise InputRejected("inputs hold an integer too large for a floating-point number") from None
        raise InputRejected(f"inputs are not numeric (dtype {arr.dtype})")

    @staticmethod
    def _check_finite(flat: np.ndarray) -> None:
        finite = np.isfinite(flat)
        bad_rows = np.flatnonzero(~finite.all(axis=1))
        if not len(bad_rows):
            return
        row = int(bad_rows[0])
        what = "NaN" if np.isnan(flat[row]).any() else "infinity"
        more = f" ({len(bad_rows) - 1} more rows hold NaN or infinity)" if len(bad_rows) > 1 else ""
        raise InputRejected(f"row {row} contains {what}{more}")

    def _check_range(self, flat: np.ndarray) -> None:
        for side, bound in (("lo", self.lo), ("hi", self.hi)):
            if bound is None:
                continue
            limit = np.asarray(bound, dtype=np.float64).reshape(-1)
            outside = flat < limit if side == "lo" else flat > limit
            rows = np.flatnonzero(outside.any(axis=1))
            if not len(rows):
                continue
            row = int(rows[0])
            if isinstance(bound, np.ndarray):
                col = int(np.flatnonzero(outside[row])[0])
                raise InputRejected(f"row {row} has a value outside the accepted range of "
                                    f"{self._feature(col)}: {_number(flat[row, col])} is "
                                    f"{'below' if side == 'lo' else 'above'} {_number(limit[col])}")
            extreme = ("min", flat[row].min()) if side == "lo" else ("max", flat[row].max())
            raise InputRejected(f"row {row} has values outside {self._range_text()}: "
                                f"{extreme[0]} {_number(extreme[1])}")

    def _range_text(self) -> str:
        lo = "-inf" if self.lo is None else _number(self.lo)
        hi = "inf" if self.hi is None else _number(self.hi)
        return f"[{lo}, {hi}]"

    def _feature(self, col: int) -> str:
        if self.feature_names is not None:
            return f"feature {self.feature_names[col]!r} (column {col})"
        if len(self.shape) == 1:
            return f"feature {col}"
        return f"feature at {tuple(int(i) for i in np.unravel_index(col, self.shape))}"
