"""One entry point: score every training sample for signs of poisoning, flag and summarise.

The method follows the model (:func:`detect_poison`):

* a PyTorch model: robust-core reclassification (:mod:`.core`) on the representation the
  model computes before its first fully connected layer (:mod:`.representation`), flagged
  above a threshold calibrated to a 0.1% false-positive rate on clean runs;
* any other model (scikit-learn): the model-free tabular rule (:mod:`.tabular`), whose
  scores are in units of the thresholds (a sample is flagged when its score exceeds 1).

Classes holding more flags than the calibrated false-positive rate explains are the
suspected backdoor targets (:func:`suspected_targets`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from guard.defenses.poison import thresholds as T
from guard.errors import ConfigError, DataError
from guard.stats import Metric
from guard.target import ModelAdapter

if TYPE_CHECKING:
    from guard.defenses.poison.tabular import TableScores

TORCH_METHOD = "robust-core reclassification"
TABLE_METHOD = "label consistency and trigger ties"
TABLE_RULE = (
    "flagged when any one holds: the out-of-fold label margin exceeds {margin:g} (the threshold "
    "of a {state} table: {low:g} when the rows that no trigger signal flags exceed {low:g} "
    "significantly more often than a clean rate of {rate:.1%} explains, one-sided binomial test "
    "at {alpha:g}, else {high:g}; here p = {p:.2g}); or the row shares exact values on two "
    "continuous features with at least {tie} other rows of its label and is more outlying than "
    "{q:.0%} of the untied rows; or the robust-core reclassification score on the standardised "
    "input exceeds {core:g}. Score = the largest of the three, each divided by its threshold "
    "(flagged above 1)"
)


@dataclass(frozen=True, slots=True)
class ClassCount:
    """Flags in one label class: all of them, those the target test counts (for the tabular
    rule, its trigger signals'), and the binomial tail of that many at the calibrated rate."""

    label: int
    samples: int
    flagged: int
    tested: int
    p_value: float


@dataclass(frozen=True, slots=True)
class DetectionResult:
    """Per-sample scores (higher: more suspicious), the flagged samples and the summary."""

    scores: np.ndarray
    flagged: np.ndarray  # indices, ascending
    threshold: float
    fpr: float | None  # None when a given threshold replaced the calibrated one
    calibration: str
    method: str
    representation: str
    rule: str
    suspected_targets: tuple[int, ...]
    per_class: tuple[ClassCount, ...]
    target_rule: str
    seconds: float

    @property
    def n(self) -> int:
        return int(len(self.scores))

    @property
    def flagged_fraction(self) -> Metric:
        return Metric.proportion(int(len(self.flagged)), self.n)

    def ranked_flags(self, limit: int | None = None) -> list[int]:
        """Flagged indices, most suspicious first (ties by index)."""
        order = self.flagged[np.argsort(-self.scores[self.flagged], kind="stable")]
        return [int(i) for i in order[:limit]]

    def to_dict(self) -> dict[str, Any]:
        """The whole result as JSON-ready values (finite numbers only)."""
        frac = self.flagged_fraction
        return {
            "n": self.n,
            "flagged": [int(i) for i in self.flagged],
            "flagged_fraction": frac.to_dict(),
            "scores": [round(float(s), 6) for s in self.scores],
            "threshold": self.threshold,
            "fpr": self.fpr,
            "calibration": self.calibration,
            "method": self.method,
            "representation": self.representation,
            "rule": self.rule,
            "suspected_targets": list(self.suspected_targets),
            "target_rule": self.target_rule,
            "per_class": [{"label": c.label, "samples": c.samples, "flagged": c.flagged,
                           "tested": c.tested, "p_value": c.p_value} for c in self.per_class],
            "seconds": round(self.seconds, 4),
        }


@dataclass(frozen=True, slots=True)
class _Scored:
    """What one method produced, and how its threshold was calibrated."""

    scores: np.ndarray
    trigger: np.ndarray  # the scores the suspected-target test counts
    method: str
    representation: str
    rule: str
    threshold: float
    fpr: float
    target_fpr: float
    calibration: str
    min_flags: int
    counted: str  # what the target test counts, in words


def detect_poison(model: ModelAdapter, x_train: np.ndarray, y_train: np.ndarray, *, seed: int = 0,
                  layer: str | None = None, threshold: float | None = None,
                  alpha: float = T.TARGET_ALPHA) -> DetectionResult:
    """Score, flag and summarise ``x_train``/``y_train`` (class indices) for ``model``.

    ``layer`` names the module whose input is the representation (PyTorch models only);
    ``threshold`` replaces the calibrated one (then no false-positive rate is stated)."""
    start = time.perf_counter()
    x, y = _checked(x_train, y_train, model.n_classes)
    module = model.torch_module() if model.framework == "torch" else None
    if module is not None:
        scored = _robust_core(module, x, y, seed, layer)
    elif layer is not None:
        raise ConfigError(f"layer {layer!r}: only a PyTorch model has layers; this is a "
                          f"{model.framework} model")
    else:
        scored = _tabular(x, y, model.n_classes, seed)
    cut = scored.threshold if threshold is None else float(threshold)
    flags = scored.scores > cut
    targets, per_class = suspected_targets(y, scored.trigger > cut, model.n_classes, scored.target_fpr,
                                           scored.min_flags, alpha, flags=flags)
    return DetectionResult(
        scores=scored.scores, flagged=np.flatnonzero(flags), threshold=cut,
        fpr=scored.fpr if threshold is None else None,
        calibration=scored.calibration if threshold is None else "a threshold given by the user",
        method=scored.method, representation=scored.representation, rule=scored.rule,
        suspected_targets=targets, per_class=per_class, target_rule=(
            f"a class with at least {scored.min_flags} {scored.counted} whose count a one-sided "
            f"binomial test at the rate {scored.target_fpr:g} rejects at {alpha:g} (Bonferroni over "
            "the classes) and, with 3 or more classes, that holds more of them than its share of "
            "the samples; none when every class is rejected (flags everywhere are label noise)"),
        seconds=time.perf_counter() - start,
    )


def _robust_core(module: Any, x: np.ndarray, y: np.ndarray, seed: int, layer: str | None) -> _Scored:
    from guard.defenses.poison.core import core_reclassification
    from guard.defenses.poison.representation import representation

    rep = representation(module, x, layer)
    scores = core_reclassification(rep.features, y, seed).scores
    # on the raw input the threshold is the one calibrated in input space (the tabular rule's)
    threshold, calibration = ((T.INPUT_CORE_THRESHOLD, T.INPUT_CORE_CALIBRATION) if rep.raw
                              else (T.CORE_THRESHOLD, T.CORE_CALIBRATION))
    return _Scored(
        scores=scores, trigger=scores, method=TORCH_METHOD, representation=rep.description,
        rule=("per class: the 40% nearest the robust (MCD, 8 principal components) centre are a "
              "core; linear probes fitted on the core without one of 3 parts, grown by p(label) >= "
              "0.5 up to 4 rounds; score = -log10 of the smallest p(label), 0 in the core"),
        threshold=threshold, fpr=T.CORE_FPR, target_fpr=T.CORE_FPR,
        calibration=calibration, min_flags=T.CORE_MIN_TARGET_FLAGS, counted="flags")


def _tabular(x: np.ndarray, y: np.ndarray, n_classes: int, seed: int) -> _Scored:
    table = table_scores(x, y, n_classes, seed)
    return _Scored(
        scores=table.scores, trigger=table.trigger, method=TABLE_METHOD,
        representation="the standardised input features (the model is not used)",
        rule=TABLE_RULE.format(margin=table.margin_threshold, high=T.MARGIN_THRESHOLD,
                               state="noisy" if table.noisy else "clean-looking",
                               low=T.MARGIN_LOW, rate=T.MARGIN_LOW_RATE, alpha=T.MARGIN_GATE_ALPHA,
                               p=table.gate_p, tie=T.TIE_MIN, q=T.OUTLYING_QUANTILE,
                               core=T.INPUT_CORE_THRESHOLD),
        threshold=1.0, fpr=T.TABLE_FPR, target_fpr=T.TRIGGER_FPR, calibration=T.TABLE_CALIBRATION,
        min_flags=T.TABLE_MIN_TARGET_FLAGS,
        counted="trigger-signal flags (pair ties, input-space core) on rows whose label the "
                "out-of-fold learners accept")


def table_scores(x: np.ndarray, y: np.ndarray, n_classes: int, seed: int) -> TableScores:
    """The tabular rule (:class:`~.tabular.TableScores`): one score per row in threshold units
    (flagged above 1), the score of its trigger signals alone and the margin threshold applied
    (see :func:`~.tabular.combine_signals`)."""
    from guard.defenses.poison.tabular import MarginGate, combine_signals, tabular_signals

    gate = MarginGate(high=T.MARGIN_THRESHOLD, low=T.MARGIN_LOW, low_rate=T.MARGIN_LOW_RATE,
                      alpha=T.MARGIN_GATE_ALPHA)
    return combine_signals(tabular_signals(x, y, n_classes, seed), gate=gate, tie_min=T.TIE_MIN,
                           quantile=T.OUTLYING_QUANTILE, core=T.INPUT_CORE_THRESHOLD)


def suspected_targets(y: np.ndarray, tested: np.ndarray, n_classes: int, fpr: float, min_flags: int,
                      alpha: float = T.TARGET_ALPHA, *, flags: np.ndarray | None = None
                      ) -> tuple[tuple[int, ...], tuple[ClassCount, ...]]:
    """Classes holding significantly more flags than ``fpr`` explains (one-sided binomial,
    Bonferroni over the classes present, at least ``min_flags``) and, with 3 or more classes,
    significantly more of all flags than their share of the samples; none when every class
    exceeds the rate (random label noise flags every class, a backdoor its target). ``tested``
    are the flags the test counts; ``flags`` all of them (default: the same)."""
    from scipy.stats import binom

    every = tested if flags is None else flags
    present = [c for c in range(n_classes) if np.any(y == c)]
    counts = []
    for c in present:
        in_class = y == c
        k, n_c = int(np.sum(tested & in_class)), int(np.sum(in_class))
        p = float(binom.sf(k - 1, n_c, fpr)) if k else 1.0
        counts.append(ClassCount(c, n_c, int(np.sum(every & in_class)), k, p))
    level = alpha / max(len(present), 1)
    hit = [c.label for c in counts if c.tested >= min_flags and c.p_value < level]
    if len(present) >= 2 and len(hit) == len(present):
        return (), tuple(counts)
    total = int(np.sum(tested))
    if len(present) >= 3:  # flags spread like label noise are no target's: a target holds more
        # of all flags than its share of the samples
        hit = [c.label for c in counts if c.label in hit
               and float(binom.sf(c.tested - 1, total, c.samples / len(y))) < level]
    return tuple(hit), tuple(counts)


def _checked(x_train: Any, y_train: Any, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(x_train)
    y = np.asarray(y_train)
    if x.ndim < 2 or not len(x):
        raise DataError(f"x_train must hold at least one sample with features; got shape {x.shape}")
    if y.ndim != 1 or len(y) != len(x):
        raise DataError(f"y_train must be one label per sample: {len(x)} samples in x_train, "
                        f"y_train has shape {y.shape}")
    if y.dtype.kind not in "iu":
        raise DataError(f"y_train must hold class indices (integers), got {y.dtype}")
    if x.dtype.kind not in "fiub" or not np.isfinite(x).all():
        raise DataError("x_train must be finite numbers")
    if y.min() < 0 or y.max() >= n_classes:
        raise DataError(f"y_train holds labels outside 0..{n_classes - 1} (the model's classes)")
    return x, y.astype(np.int64)
