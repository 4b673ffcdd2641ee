"""Feature squeezing (Xu, Evans & Qi, NDSS 2018, https://arxiv.org/abs/1704.01155).

A squeezer removes detail an honest input does not need and an adversarial perturbation
relies on: :class:`BitDepth` rounds every value to ``2**bits`` levels, :class:`MedianSmooth`
replaces each pixel by the median of its neighbourhood. Both compute what ART's
``FeatureSqueezing`` and ``SpatialSmoothing`` preprocessors compute (a test compares them),
without ART's estimator machinery, so a served model pays only the NumPy cost.

A squeezer says which rows it applies to (:meth:`Squeezer.unsuitable`): a 2-D median filter
has no meaning for a flat table row, so it declines those and the caller skips it.
``random`` tells an adaptive attack to average its gradient over draws (EOT); both squeezers
here are deterministic.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np

from guard.errors import ConfigError

MAX_BITS = 24
"""float32 has a 24-bit significand: more levels than that are not representable."""


@runtime_checkable
class Squeezer(Protocol):
    """One squeezing transform of a batch (rows of one shape), returning the same shape."""

    @property
    def name(self) -> str:
        """Short and stable, with its parameter: ``bit_depth(4)``, ``median(2x2)``."""
        ...

    @property
    def random(self) -> bool:
        """Whether two calls on the same input may differ (an adaptive attack then uses EOT)."""
        ...

    def unsuitable(self, row_shape: tuple[int, ...]) -> str | None:
        """Why the squeezer does not apply to rows of this shape, or None when it does."""
        ...

    def __call__(self, x: np.ndarray) -> np.ndarray: ...


def _check_range(lo: float, hi: float) -> tuple[float, float]:
    try:
        low, high = float(lo), float(hi)
    except (TypeError, ValueError):
        raise ConfigError(f"squeezing range must be two numbers, got ({lo!r}, {hi!r})") from None
    if not (math.isfinite(low) and math.isfinite(high)) or low >= high:
        raise ConfigError(f"squeezing range ({lo!r}, {hi!r}): need finite lo < hi")
    return low, high


def _float_like(x: np.ndarray) -> np.ndarray:
    arr = np.asarray(x)
    return arr if arr.dtype.kind == "f" else arr.astype(np.float64)


class BitDepth:
    """Reduce every value to ``2**bits`` evenly spaced levels within ``[lo, hi]``.

    Values are clipped to ``[lo, hi]`` first (inside it the result equals ART's
    ``FeatureSqueezing(clip_values=(lo, hi), bit_depth=bits)``), then rounded to the nearest
    level (half to even, as ``np.rint``). Applies to rows of any shape.
    """

    random = False

    def __init__(self, bits: int, lo: float = 0.0, hi: float = 1.0) -> None:
        if isinstance(bits, bool) or not isinstance(bits, int) or not 1 <= bits <= MAX_BITS:
            raise ConfigError(f"bits must be an integer from 1 to {MAX_BITS}, got {bits!r}")
        self.bits = bits
        self.lo, self.hi = _check_range(lo, hi)

    @property
    def name(self) -> str:
        return f"bit_depth({self.bits})"

    def unsuitable(self, row_shape: tuple[int, ...]) -> str | None:
        return None

    def __call__(self, x: np.ndarray) -> np.ndarray:
        arr = _float_like(x)
        span = self.hi - self.lo
        levels = float(2**self.bits - 1)
        unit = (np.clip(arr, self.lo, self.hi) - self.lo) / span
        out: np.ndarray = (np.rint(unit * levels) / levels * span + self.lo).astype(arr.dtype, copy=False)
        return out


class MedianSmooth:
    """A ``size`` x ``size`` median filter over the two spatial axes of image rows.

    Rows of shape (H, W), or (C, H, W) with ``channels_first`` (PyTorch's layout), or
    (H, W, C) without; each channel is filtered on its own, edges reflected (SciPy's
    ``median_filter``, as ART's ``SpatialSmoothing``; an even size centres the window one
    pixel down and right). Flat rows (a table) are declined: a median over neighbouring
    columns means nothing there.
    """

    random = False

    def __init__(self, size: int, *, channels_first: bool = True) -> None:
        if isinstance(size, bool) or not isinstance(size, int) or not 2 <= size <= 64:
            raise ConfigError(f"median size must be an integer from 2 to 64, got {size!r}")
        self.size = size
        self.channels_first = bool(channels_first)

    @property
    def name(self) -> str:
        return f"median({self.size}x{self.size})"

    def unsuitable(self, row_shape: tuple[int, ...]) -> str | None:
        if len(row_shape) == 1:
            return (f"{self.name} does not apply to flat rows of shape ({row_shape[0]},): a 2-D median "
                    "filter needs image rows (H, W) or (C, H, W)")
        if len(row_shape) not in (2, 3):
            return f"{self.name} applies to image rows (H, W) or (C, H, W), not rows of shape {row_shape}"
        spatial = self._spatial(len(row_shape), row_shape)
        if min(spatial) < 2:
            return f"{self.name}: rows of shape {row_shape} have a spatial side shorter than 2"
        return None

    def _spatial(self, rank: int, row_shape: tuple[int, ...]) -> tuple[int, int]:
        if rank == 2:
            return row_shape[0], row_shape[1]
        return (row_shape[1], row_shape[2]) if self.channels_first else (row_shape[0], row_shape[1])

    def __call__(self, x: np.ndarray) -> np.ndarray:
        from scipy.ndimage import median_filter

        arr = _float_like(x)
        reason = self.unsuitable(tuple(arr.shape[1:])) if arr.ndim >= 2 else "it needs a batch"
        if reason is not None:
            raise ConfigError(reason)
        k = self.size
        if arr.ndim == 3:
            size: tuple[int, ...] = (1, k, k)
        else:
            size = (1, 1, k, k) if self.channels_first else (1, k, k, 1)
        out: np.ndarray = median_filter(arr, size=size, mode="reflect")
        return out


def squeeze_all(squeezers: Sequence[Squeezer], x: np.ndarray) -> np.ndarray:
    """The squeezers applied one after the other (the identity when there are none)."""
    out = x
    for squeezer in squeezers:
        out = squeezer(out)
    return out


def check_applicable(squeezers: Sequence[Squeezer], row_shape: tuple[int, ...]) -> None:
    """Raise a ConfigError naming the first squeezer that does not apply to these rows."""
    for squeezer in squeezers:
        reason = squeezer.unsuitable(row_shape)
        if reason is not None:
            raise ConfigError(reason)


def applicable(squeezers: Sequence[Squeezer], row_shape: tuple[int, ...]) -> tuple[list[Squeezer], list[str]]:
    """The squeezers that apply to these rows, and why each of the others was skipped."""
    kept: list[Squeezer] = []
    skipped: list[str] = []
    for squeezer in squeezers:
        reason = squeezer.unsuitable(row_shape)
        if reason is None:
            kept.append(squeezer)
        else:
            skipped.append(reason)
    return kept, skipped
