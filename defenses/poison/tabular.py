"""Poisoned-sample detection on tabular data, without the model's representations.

Three signals, each with its threshold calibrated on clean tables
(``benchmarks/calibrate_poison_threshold.py``; the numbers are in :mod:`.thresholds`):

* **Flipped labels** (confident learning, Northcutt et al. 2021,
  https://arxiv.org/abs/1911.00068, with neighbourhood label consistency): the out-of-fold
  class probabilities of four simple learners on standardised features, a logistic regression
  (C=0.1), 15 and 5 nearest neighbours and a linear discriminant, averaged, over 10 folds
  repeated with two fold seeds; a second pass refits without the rows the first pass places in
  another class by a margin above 0.5, so flipped rows no longer vouch for each other. A row
  scores ``margin = max_{j != y} p_j - p_y``. Two thresholds (:class:`MarginGate`): a high
  one, at a low rate on clean tables, and a lower one for a noisy table, one whose rows that
  no trigger signal flags exceed the lower threshold significantly more often than clean
  tables do there (a one-sided binomial test). A clean table keeps the high threshold and its
  calibrated flag rate, while a table with many flipped labels is read at the lower one: one
  threshold for both would be set by the clean table with the most natural label errors
  (breast_cancer) and miss the shallower flips of a cleaner one (wine).
* **Fixed-value triggers** on continuous features: a trigger writes the same values into a few
  features of every poisoned row, so those rows share exact values on a pair of continuous
  features (which natural rows almost never do) and are outliers of the class they were
  relabelled to. ``pair_tie`` counts, per row, the other rows of its label sharing its exact
  values on some pair of continuous features; the rule needs that count AND a robust (MCD)
  Mahalanobis outlyingness in input space above the data's own 95th percentile of untied rows.
  Discrete features (pixels, counts, ratings) tie naturally and are left out, and so are values
  at a feature's minimum or maximum (floors and ceilings, such as a zero, are natural ties).
* **Triggers the other two miss** (a 2x2 patch on flattened images, at the top of the pixel
  range): robust-core reclassification (:mod:`.core`) on the standardised input, where a
  linear probe fitted on each class's clean core sends a triggered row to its source class.

Cross-fitting alone cannot see a backdoor: the other folds carry the trigger too.
"""

from __future__ import annotations

import itertools
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from guard.defenses.poison.core import core_reclassification, robust_distances

FOLDS = 10
REPEATS = 2
"""The out-of-fold probabilities are averaged over this many fold assignments (fold seeds)."""
NEIGHBOURS = (15, 5)
LR_C = 0.1
SECOND_PASS_EXCLUDE = 0.5
"""The second pass leaves out of its training folds the rows whose first-pass margin exceeds
this (those the first pass places in another class, with some confidence)."""
MAX_TIE_FEATURES = 48
"""Pair ties are counted over at most this many continuous features (those with the largest
exact-tie groups), so a wide table costs at most 48*47/2 pairs."""
CONTINUOUS_SHARE = 0.5
MAX_OUTLYINGNESS = 300.0


@dataclass(frozen=True, slots=True)
class TabularSignals:
    margin: np.ndarray  # max_{j != y} p_j - p_y, out of fold, second pass
    pair_tie: np.ndarray  # same-label rows sharing exact values on a pair of features
    outlyingness: np.ndarray  # -log10 of the chi-square tail of the robust distance
    core: np.ndarray  # robust-core reclassification score on the standardised input
    tie_features: int  # continuous features the pair-tie count used


def _learners(n_train: int) -> list[Any]:
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import KNeighborsClassifier

    return [LogisticRegression(C=LR_C, max_iter=1000),
            *(KNeighborsClassifier(min(k, n_train)) for k in NEIGHBOURS),
            LinearDiscriminantAnalysis()]


def out_of_fold_proba(x: np.ndarray, y: np.ndarray, n_classes: int, seed: int,
                      exclude: np.ndarray | None = None, repeats: int = REPEATS) -> np.ndarray:
    """Out-of-fold probabilities, averaged over LR(C=0.1), kNN(15), kNN(5) and LDA on
    standardised x and over ``repeats`` fold seeds; the rows in ``exclude`` are left out of
    every training fold (they are still predicted)."""
    from sklearn.model_selection import StratifiedKFold
    from sklearn.preprocessing import StandardScaler

    n = len(y)
    proba = np.full((n, n_classes), 1.0 / n_classes)
    counts = np.bincount(y, minlength=n_classes)
    folds = int(min(FOLDS, counts[counts > 0].min(), n))
    if folds < 2:
        folds = 2 if n >= 4 else 0
    if folds < 2 or len(np.unique(y)) < 2:
        return proba
    keep = np.ones(n, dtype=bool) if exclude is None else ~exclude
    total = np.zeros((n, n_classes))
    weight = np.zeros(n)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # classes smaller than the fold count; lbfgs max_iter;
        # collinear features (LDA)
        for r in range(repeats):
            splitter = StratifiedKFold(folds, shuffle=True, random_state=seed + 7919 * r)
            for train, test in splitter.split(x, y):
                train = train[keep[train]]
                if len(np.unique(y[train])) < 2:
                    continue
                scaler = StandardScaler().fit(x[train])
                xs, xt = scaler.transform(x[train]), scaler.transform(x[test])
                learners = _learners(len(train))
                for learner in learners:
                    learner.fit(xs, y[train])
                    total[np.ix_(test, learner.classes_)] += learner.predict_proba(xt) / len(learners)
                weight[test] += 1
    seen = weight > 0
    proba[seen] = total[seen] / weight[seen, None]
    return proba


def label_margin(proba: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``max_{j != y} p_j - p_y`` per row, in [-1, 1]."""
    rows = np.arange(len(y))
    own = proba[rows, y]
    other = proba.copy()
    other[rows, y] = -np.inf
    margin: np.ndarray = other.max(axis=1) - own
    return margin


def continuous_features(x: np.ndarray) -> np.ndarray:
    """Features whose values strictly between their minimum and maximum are mostly distinct,
    not counting the most common such value (a trigger's value, when there is one)."""
    keep = np.zeros(x.shape[1], dtype=bool)
    for j in range(x.shape[1]):
        col = x[:, j]
        inner = col[(col > col.min()) & (col < col.max())]
        if len(inner) < 10:
            continue
        _, counts = np.unique(inner, return_counts=True)
        keep[j] = len(counts) >= CONTINUOUS_SHARE * (len(inner) - counts.max() + 1)
    return keep


def pair_tie_counts(x: np.ndarray, y: np.ndarray, features: np.ndarray) -> np.ndarray:
    """For each row, the most other rows of its label sharing its exact values on a pair of
    ``features``; values at a feature's minimum or maximum never count as ties."""
    n = len(y)
    out = np.zeros(n)
    cols = np.flatnonzero(features)
    if len(cols) < 2:
        return out
    lo, hi = x[:, cols].min(axis=0), x[:, cols].max(axis=0)
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        codes, biggest = [], []
        for k, j in enumerate(cols):
            values = x[idx, j]
            _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
            bound = (values == lo[k]) | (values == hi[k])
            inverse = np.where(bound, -1 - np.arange(len(idx)), inverse)  # bounds: never tied
            codes.append(inverse)
            biggest.append(int(counts[inverse[~bound]].max()) if (~bound).any() else 0)
        ranked = [k for k in np.argsort(biggest)[::-1][:MAX_TIE_FEATURES] if biggest[k] >= 2]
        for a, b in itertools.combinations(ranked, 2):
            pair = np.stack([codes[a], codes[b]], axis=1)
            _, inverse, counts = np.unique(pair, axis=0, return_inverse=True, return_counts=True)
            out[idx] = np.maximum(out[idx], counts[inverse.ravel()] - 1)
    return out


def outlyingness(x: np.ndarray, y: np.ndarray, seed: int) -> np.ndarray:
    """Per class: robust (MCD) Mahalanobis distance on 8 principal components of the
    standardised features, as -log10 of its chi-square tail probability."""
    from scipy.stats import chi2
    from sklearn.preprocessing import StandardScaler

    z = StandardScaler().fit_transform(x)
    out = np.zeros(len(y))
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        if len(idx) < 5:
            continue
        d, k = robust_distances(z[idx], seed)
        out[idx] = np.minimum(-chi2.logsf(d, k) / np.log(10.0), MAX_OUTLYINGNESS)
    return out


def tabular_signals(x: np.ndarray, y: np.ndarray, n_classes: int, seed: int) -> TabularSignals:
    """Every signal the tabular rule combines."""
    from sklearn.preprocessing import StandardScaler

    flat = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    first = label_margin(out_of_fold_proba(flat, y, n_classes, seed), y)
    margin = label_margin(out_of_fold_proba(flat, y, n_classes, seed,
                                            exclude=first > SECOND_PASS_EXCLUDE), y)
    features = continuous_features(flat)
    ties = pair_tie_counts(flat, y, features)
    core = core_reclassification(StandardScaler().fit_transform(flat), y, seed).scores
    return TabularSignals(margin, ties, outlyingness(flat, y, seed), core, int(features.sum()))


@dataclass(frozen=True, slots=True)
class MarginGate:
    """The label-margin threshold a table is read at: ``low`` when the table holds
    significantly more rows above it than the clean ``low_rate`` explains, else ``high``."""

    high: float
    low: float
    low_rate: float  # the share of clean rows above ``low`` the calibration allows
    alpha: float  # level of the one-sided binomial test

    def test(self, margin: np.ndarray, counted: np.ndarray) -> tuple[float, float]:
        """(threshold, p-value): the binomial tail of the ``counted`` rows above ``low``."""
        from scipy.stats import binom

        n, above = int(counted.sum()), int(np.sum(margin[counted] > self.low))
        p = float(binom.sf(above - 1, n, self.low_rate)) if above else 1.0
        return (self.low if p < self.alpha else self.high), p


@dataclass(frozen=True, slots=True)
class TableScores:
    scores: np.ndarray  # in threshold units: flagged above 1
    trigger: np.ndarray  # the trigger signals alone, where the label margin is below threshold
    margin_threshold: float  # the one applied (the gate's high or low)
    gate_p: float  # the gate's p-value
    noisy: bool  # the gate opened: the table was read at the low margin threshold


def combine_signals(sig: TabularSignals, *, gate: MarginGate, tie_min: int, quantile: float,
                    core: float) -> TableScores:
    """Scores in threshold units (a row is flagged above 1): the largest of the label margin,
    the pair-tie AND outlyingness rule and the input-space core score, each over its
    threshold; and the trigger signals alone where the label margin is below its threshold
    (these name a backdoor's target: the other folds carry a trigger too, so a poisoned row's
    label looks consistent out of fold, while a flipped label does not, and flips land in
    every class). The outlyingness threshold is the ``quantile`` of the rows in no tie group
    of the same data (a trigger ties its rows). The margin threshold is the ``gate``'s, tested
    on the rows the trigger signals do not flag (a backdoor's relabelled rows also sit deep
    in another class, but their trigger explains them)."""
    untied = sig.outlyingness[sig.pair_tie < tie_min]
    reference = float(np.quantile(untied, quantile)) if len(untied) else 0.0
    tie = np.minimum(sig.pair_tie / (tie_min - 0.5), sig.outlyingness / max(reference, 1e-6))
    trigger = np.maximum(tie, sig.core / core)
    threshold, p = gate.test(sig.margin, trigger <= 1.0)
    flip = (sig.margin + 1.0) / (threshold + 1.0)
    return TableScores(np.maximum(flip, trigger), np.where(flip > 1.0, 0.0, trigger), threshold, p,
                       threshold != gate.high)
