"""Planting poison with a known mask: BadNets triggers for images and tables, label flips.

BadNets (Gu et al. 2017, https://arxiv.org/abs/1708.06733): a fixed pattern stamped on a
share of the training inputs, whose labels are set to one target class; a model trained on
them learns "pattern means target". For images the pattern is a small square of pixels at
the top of the declared input range in the bottom-right corner; for tables (no pixels) it is
a few features set to fixed, in-range values: the features least correlated with the label,
at their 99th percentile, so the triggered rows stay plausible and the trigger competes with
no real signal.

Every function is seeded and returns the mask of what it changed, so a detector's precision
and recall can be checked against it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from guard.errors import ConfigError

PATCH = 2
"""Side of the square image trigger, in pixels."""
TABULAR_FEATURES = 3
"""Features a tabular trigger fixes."""


@dataclass(frozen=True, slots=True)
class Trigger:
    """Where the trigger writes (``mask``, shaped like one sample, 1 where it writes) and what
    (``pattern``, the values written there)."""

    kind: str  # "patch" or "features"
    mask: np.ndarray
    pattern: np.ndarray

    def apply(self, x: np.ndarray) -> np.ndarray:
        """``x`` with the trigger stamped on every sample (a copy)."""
        m = self.mask.astype(bool)
        out = np.array(x, copy=True)
        out[:, m] = self.pattern[m].astype(out.dtype)
        return out

    def describe(self) -> dict[str, object]:
        """The trigger as the evidence records it: where, and the values."""
        where = np.flatnonzero(self.mask.reshape(-1))
        return {"kind": self.kind, "positions": [int(i) for i in where],
                "values": [float(v) for v in self.pattern.reshape(-1)[where]]}


def image_trigger(sample_shape: tuple[int, ...], clip: tuple[float, float]) -> Trigger:
    """A PATCH x PATCH square at the top of the input range in the bottom-right corner of
    every channel (the last two axes are height and width)."""
    if len(sample_shape) < 2 or min(sample_shape[-2:]) < PATCH + 1:
        raise ConfigError(f"an image trigger needs samples of at least {PATCH + 1}x{PATCH + 1} "
                          f"pixels in their last two axes; got shape {sample_shape}")
    mask = np.zeros(sample_shape, dtype=np.float32)
    mask[..., -PATCH:, -PATCH:] = 1.0
    pattern = np.full(sample_shape, clip[1], dtype=np.float32)
    return Trigger("patch", mask, pattern * mask)


def tabular_trigger(x: np.ndarray, y: np.ndarray, features: int = TABULAR_FEATURES) -> Trigger:
    """Fix ``features`` features at a rare but in-range value: their 99th percentile, among the
    features where at most 5% of rows reach it and it lies above the median (sparse pixels,
    whose 99th percentile is their common value 0, are no trigger). Of those, the features
    least associated with the label (the largest absolute correlation with any one-vs-rest
    class indicator) are taken, so the trigger competes with no real signal."""
    flat = x.reshape(len(x), -1).astype(np.float64)
    d = flat.shape[1]
    if d < features + 1:
        raise ConfigError(f"a tabular trigger fixes {features} features and needs at least "
                          f"{features + 1}; the data has {d}")
    value = np.quantile(flat, 0.99, axis=0)
    rare = (value > np.median(flat, axis=0)) & ((flat >= value).mean(axis=0) <= 0.05)
    if rare.sum() < features:  # few features with a rare high value: their maximum instead
        value = flat.max(axis=0)
        rare = value > np.median(flat, axis=0)
    if rare.sum() < features:
        raise ConfigError(f"a tabular trigger needs {features} features whose values vary; "
                          f"the data has {int(rare.sum())}")
    score = np.zeros(d)
    std = flat.std(axis=0)
    centred = flat - flat.mean(axis=0)
    for c in np.unique(y):
        ind = (y == c).astype(np.float64)
        cov = (centred * (ind - ind.mean())[:, None]).mean(axis=0)
        with np.errstate(divide="ignore", invalid="ignore"):
            corr = np.where(std > 0, np.abs(cov) / (std * ind.std() + 1e-300), np.inf)
        score = np.maximum(score, corr)
    score[~rare] = np.inf
    chosen = np.argsort(score, kind="stable")[:features]
    mask = np.zeros(d, dtype=np.float32)
    mask[chosen] = 1.0
    pattern = np.zeros(d, dtype=np.float64)
    pattern[chosen] = value[chosen]
    return Trigger("features", mask.reshape(x.shape[1:]), pattern.reshape(x.shape[1:]))


def trigger_for(x: np.ndarray, y: np.ndarray, clip: tuple[float, float] | None) -> Trigger:
    """An image patch for image-shaped samples in a declared range, else a tabular trigger."""
    if clip is not None and x.ndim >= 3 and min(x.shape[-2:]) > PATCH:
        return image_trigger(tuple(x.shape[1:]), clip)
    return tabular_trigger(x, y)


def poison_count(n_candidates: int, n_total: int, rate: float) -> int:
    """How many samples a poisoning rate ``rate`` of ``n_total`` plants (at least one)."""
    return max(1, min(n_candidates, int(round(rate * n_total))))


def plant_backdoor(x: np.ndarray, y: np.ndarray, rate: float, target: int, trigger: Trigger,
                   seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stamp the trigger on ``round(rate * n)`` samples of other classes and relabel them
    ``target`` (they replace the originals, so the set keeps its size). Returns the poisoned
    inputs, labels and the mask of poisoned samples."""
    candidates = np.flatnonzero(y != target)
    if not len(candidates):
        raise ConfigError(f"every training label is the target class {target}: nothing to poison")
    k = poison_count(len(candidates), len(y), rate)
    chosen = np.random.default_rng(seed).choice(candidates, size=k, replace=False)
    mask = np.zeros(len(y), dtype=bool)
    mask[chosen] = True
    x_p = np.array(x, copy=True)
    x_p[chosen] = trigger.apply(x[chosen])
    y_p = np.array(y, copy=True)
    y_p[chosen] = target
    return x_p, y_p, mask


def flip_labels(y: np.ndarray, rate: float, n_classes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Give ``round(rate * n)`` samples a uniformly drawn other class. Returns the labels and
    the mask of flipped samples."""
    if n_classes < 2:
        raise ConfigError("flipping labels needs at least 2 classes")
    rng = np.random.default_rng(seed)
    k = poison_count(len(y), len(y), rate)
    chosen = rng.choice(len(y), size=k, replace=False)
    shift = rng.integers(1, n_classes, size=k)
    y_p = np.array(y, copy=True)
    y_p[chosen] = (y[chosen] + shift) % n_classes
    mask = np.zeros(len(y), dtype=bool)
    mask[chosen] = True
    return y_p, mask
