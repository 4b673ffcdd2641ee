"""Adversarial-input detection by feature squeezing (Xu, Evans & Qi, NDSS 2018,
https://arxiv.org/abs/1704.01155).

An honest input and its squeezed copy get nearly the same prediction; an adversarial
perturbation that squeezing partly removes does not. The score of an input is the largest,
over the squeezers, L1 distance between the model's class probabilities on the input and on
its squeezed copy (between 0 and 2). The threshold is calibrated on clean inputs so that a
chosen share of them (the false-positive rate) would be flagged: the
``ceil((n + 1) (1 - fpr))``-th smallest of ``n`` clean scores, the split-conformal quantile,
so a new clean input exchangeable with the calibration ones is flagged with probability at
most ``fpr``. Calibrate on inputs disjoint from those the detector is measured on.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

from guard.defenses.sanitize.squeeze import Squeezer, check_applicable
from guard.errors import ConfigError, DataError


class ProbabilityModel(Protocol):
    """What the detector needs of a model (every :class:`guard.target.ModelAdapter` has it)."""

    def predict_proba(self, x: np.ndarray) -> np.ndarray: ...


def calibration_minimum(fpr: float) -> int:
    """The fewest clean scores whose conformal (1 - fpr) quantile is one of them."""
    return max(1, math.ceil((1 - fpr) / fpr - 1e-9))


def conformal_threshold(scores: np.ndarray, fpr: float) -> float:
    """The ``ceil((n + 1)(1 - fpr))``-th smallest score: flagging above it flags a new
    exchangeable clean score with probability at most ``fpr``."""
    n = len(scores)
    rank = math.ceil((n + 1) * (1 - fpr) - 1e-9)
    if rank > n:
        raise DataError(f"calibrating at fpr {fpr:g} needs at least {calibration_minimum(fpr)} clean "
                        f"inputs, got {n}")
    return float(np.sort(scores)[rank - 1])


class SqueezeDetector:
    """Flags inputs whose prediction changes too much when squeezed.

    ``model`` gives class probabilities; ``squeezers`` must all apply to the rows scored;
    ``fpr`` is the share of clean inputs :meth:`calibrate` lets through as flagged. A
    ``threshold`` given here (one calibrated earlier) replaces calibration.
    Scoring costs one model call on the batch and one per squeezer.
    """

    def __init__(self, model: ProbabilityModel, squeezers: Sequence[Squeezer], fpr: float = 0.05, *,
                 threshold: float | None = None) -> None:
        if not hasattr(model, "predict_proba"):
            raise ConfigError("the detector's model must offer predict_proba")
        self.model = model
        self.squeezers = tuple(squeezers)
        if not self.squeezers:
            raise ConfigError("the detector needs at least one squeezer")
        for squeezer in self.squeezers:
            if not isinstance(squeezer, Squeezer):
                raise ConfigError(f"{squeezer!r} is not a squeezer (name, random, unsuitable, __call__)")
        if isinstance(fpr, bool) or not isinstance(fpr, int | float) or not 0 < fpr < 1:
            raise ConfigError(f"fpr must be a number between 0 and 1 (exclusive), got {fpr!r}")
        self.fpr = float(fpr)
        self.threshold: float | None = None
        self.calibration_n = 0
        if threshold is not None:
            if isinstance(threshold, bool) or not isinstance(threshold, int | float) \
                    or not 0 <= threshold <= 2:
                raise ConfigError(f"threshold must be a number from 0 to 2 (an L1 distance of "
                                  f"probabilities), got {threshold!r}")
            self.threshold = float(threshold)

    def gaps(self, x: np.ndarray) -> np.ndarray:
        """L1 distance of the probabilities on x and on each squeezed x: shape (n, squeezers)."""
        arr = np.asarray(x)
        if arr.ndim < 2:
            raise DataError(f"the detector scores a batch of rows, got shape {arr.shape}")
        check_applicable(self.squeezers, tuple(arr.shape[1:]))
        if len(arr) == 0:
            return np.zeros((0, len(self.squeezers)))
        base = np.asarray(self.model.predict_proba(arr), dtype=np.float64)
        out = np.empty((len(arr), len(self.squeezers)))
        for j, squeezer in enumerate(self.squeezers):
            squeezed = np.asarray(self.model.predict_proba(squeezer(arr)), dtype=np.float64)
            out[:, j] = np.abs(base - squeezed).sum(axis=1)
        return out

    def score(self, x: np.ndarray) -> np.ndarray:
        """The detection score of every row: the largest gap over the squeezers."""
        gaps = self.gaps(x)
        scores: np.ndarray = gaps.max(axis=1) if len(gaps) else np.zeros(0)
        return scores

    def calibrate(self, x_clean: np.ndarray) -> SqueezeDetector:
        """Set the threshold from clean inputs (not those the detector is measured on)."""
        scores = self.score(x_clean)
        if not np.isfinite(scores).all():
            raise DataError("the model's probabilities on the calibration inputs are not finite")
        self.threshold = conformal_threshold(scores, self.fpr)
        self.calibration_n = int(len(scores))
        return self

    def flags(self, x: np.ndarray, scores: np.ndarray | None = None) -> np.ndarray:
        """Which rows score above the threshold (``scores``: already computed for ``x``)."""
        threshold = self._threshold()
        values = self.score(x) if scores is None else scores
        flagged: np.ndarray = values > threshold
        return flagged

    def _threshold(self) -> float:
        if self.threshold is None:
            raise ConfigError("the squeezing detector has no threshold: call calibrate(x_clean) first, or "
                              "give the threshold calibrated earlier")
        return self.threshold

    def describe(self) -> dict[str, Any]:
        return {"squeezers": [s.name for s in self.squeezers], "fpr": self.fpr, "threshold": self.threshold,
                "calibration_samples": self.calibration_n}
