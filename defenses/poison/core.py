"""Robust-core reclassification: find poisoned samples from a clean core of each class.

The method (``benchmarks/poisoning_research/RESULTS.md``, where it is compared with spectral
signatures, activation clustering, SPECTRE-style whitening and cross-fitting):

1. Per label class, centre the representation on its median, reduce it to 8 principal
   components and fit a Minimum Covariance Determinant estimate (Rousseeuw 1984; sklearn's
   ``MinCovDet``). The 40% of the class nearest its robust centre are the initial core. MCD
   locks onto the tighter mode, and for a backdoor's target class that is the clean one: the
   poisoned samples come from every other class and are spread out.
2. Fit a linear probe (standardise, logistic regression, C=1) on the core: it holds no
   triggered samples, so it has no backdoor, and sends a triggered input to its source class.
3. Split the core into 3 random parts and fit 3 probes, each without one part; p(label) is
   the smallest of the 3, so a poisoned sample that slipped into the core is missing from at
   least one probe's training set and cannot vouch for its copies.
4. Add every sample with p(label) >= 0.5 to the core and refit, at most 4 rounds.
5. Score = -log10 p(label) outside the final core, 0 inside.

Assumption: in every class the clean samples are the majority and the more compact mode of
the representation. It fails when a class is mostly poison (20% poisoning of a 10-class set
makes the target class ~70% poison), and on a multi-modal target class.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

PCA_DIMS = 8
KEEP = 0.4
PARTS = 3
EXPAND = 0.5
ROUNDS = 4
PROBE_C = 1.0
P_FLOOR = 1e-12
MIN_CLASS = 5
"""A class with fewer samples is kept whole in the core: too few to tell a mode apart."""


@dataclass(frozen=True, slots=True)
class CoreResult:
    scores: np.ndarray  # -log10 p(label), 0 inside the core
    core: np.ndarray  # bool: the final clean core
    rounds: int


def robust_distances(features: np.ndarray, seed: int, dims: int = PCA_DIMS) -> tuple[np.ndarray, int]:
    """Squared robust Mahalanobis distance of each row from the MCD centre of its first
    principal components (``dims``, fewer for a small or narrow class), and how many."""
    from sklearn.covariance import MinCovDet
    from sklearn.decomposition import PCA

    n = len(features)
    k = max(1, min(dims, features.shape[1], (n - 1) // 2))
    if n < 3 or np.ptp(features, axis=0).max(initial=0.0) == 0:
        return np.zeros(n), k
    centred = features - np.median(features, axis=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # MCD on a rank-deficient class warns; handled below
        z = PCA(k, random_state=seed).fit_transform(centred)
        mcd = MinCovDet(random_state=seed).fit(z)
    w, v = np.linalg.eigh(mcd.covariance_)
    whiten = v @ np.diag(np.clip(w, 1e-9 * max(float(w.max()), 1e-12), None) ** -0.5) @ v.T
    d: np.ndarray = (((z - mcd.location_) @ whiten) ** 2).sum(axis=1)
    return d, k


def initial_core(features: np.ndarray, y: np.ndarray, seed: int, keep: float = KEEP) -> np.ndarray:
    """Per class, the ``keep`` share nearest the robust centre."""
    core = np.zeros(len(y), dtype=bool)
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        if len(idx) < MIN_CLASS:
            core[idx] = True
            continue
        d, _ = robust_distances(features[idx], seed)
        core[idx[np.argsort(d, kind="stable")[: max(1, int(round(keep * len(idx))))]]] = True
    return core


def _label_proba(features: np.ndarray, y: np.ndarray, train: np.ndarray) -> np.ndarray:
    """p(label) of every sample under a linear probe fitted on ``train``; NaN where the label
    class is missing from ``train`` (that probe cannot judge it)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    out = np.full(len(y), np.nan)
    classes = np.unique(y[train])
    if len(classes) < 2:
        out[np.isin(y, classes)] = 1.0
        return out
    scaler = StandardScaler().fit(features[train])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # lbfgs may stop at max_iter: the ranking is what counts
        probe = LogisticRegression(C=PROBE_C, max_iter=300).fit(scaler.transform(features[train]), y[train])
    proba = probe.predict_proba(scaler.transform(features))
    col = np.searchsorted(probe.classes_, y)
    known = np.isin(y, probe.classes_)
    rows = np.flatnonzero(known)
    out[rows] = proba[rows, col[rows]]
    return out


def core_reclassification(features: np.ndarray, y: np.ndarray, seed: int = 0) -> CoreResult:
    """Score every sample (higher: more likely poisoned) by robust-core reclassification."""
    n = len(y)
    if n == 0:
        return CoreResult(np.zeros(0), np.zeros(0, dtype=bool), 0)
    core = initial_core(features, y, seed)
    rng = np.random.default_rng(seed)
    p_label = np.ones(n)
    rounds = 0
    for rounds in range(1, ROUNDS + 1):  # noqa: B007  (the count is reported)
        idx = np.flatnonzero(core)
        part = rng.permutation(len(idx)) % PARTS
        probas = []
        for j in range(PARTS):
            train = np.zeros(n, dtype=bool)
            train[idx[part != j]] = True
            probas.append(_label_proba(features, y, train))
        stacked = np.stack(probas)
        seen = ~np.isnan(stacked)
        p_label = np.where(seen.any(axis=0), np.where(seen, stacked, np.inf).min(axis=0), 1.0)
        grown = core | (p_label >= EXPAND)
        if np.array_equal(grown, core):
            break
        core = grown
    scores = np.where(core, 0.0, -np.log10(np.clip(p_label, P_FLOOR, 1.0)))
    return CoreResult(scores, core, rounds)
