"""How well a membership score separates members from non-members, with honest intervals.

Every attack of :mod:`.membership` ends in one score per sample (higher: more likely a
member); this module turns the members' and the non-members' scores into the numbers the
evidence carries. A sample counts as flagged at threshold ``t`` when its score is ``>= t``
(scikit-learn's ``roc_curve`` convention, which the tests hold these functions to).

- **AUC** with DeLong's variance (DeLong, DeLong and Clarke-Pearson 1988, in the midrank form
  of Sun and Xu 2014), its interval taken on the logit scale so that it stays inside [0, 1];
  at a perfect separation, where DeLong's variance is 0, a score interval after Newcombe 2006
  (Statistics in Medicine 25:559, the Hanley-McNeil variance with both group sizes set to
  their mean) gives the bound a finite sample supports instead of [1, 1].
- **Advantage**, the largest TPR - FPR over thresholds (Yeom et al. 2018's membership
  advantage; a Kolmogorov-Smirnov distance). The largest of many noisy differences is biased
  upwards, and a bootstrap percentile interval of it covers the truth far less than 95% of the
  time (measured: 61-81% at 200 per group). Its interval is therefore a simultaneous band: the
  bootstrap quantiles of the largest deviation of the whole TPR - FPR curve from its estimate,
  which bound the true maximum from both sides whatever threshold attains it.
- **TPR at a fixed FPR**: the members' share flagged by the threshold that flags fewer than
  ``fpr * n`` of the ``n`` non-members. A bootstrap percentile interval of it misses the truth
  on the low side 4-12% of the time with 100-400 non-members (measured: the threshold is
  an extreme order statistic), so its interval is distribution-free instead: order
  statistics that bracket the true threshold, and Wilson bounds of the members above them.
  Only reported when ``fpr * n > 1`` (the threshold may flag at least one non-member).
"""

from __future__ import annotations

import math

import numpy as np

from guard.stats import Z95, Metric

BOOTSTRAP = 1000
"""Stratified bootstrap resamples behind the advantage and TPR intervals."""


def _midranks(x: np.ndarray) -> np.ndarray:
    """Ranks 1..n with ties given the mean of the ranks they span."""
    order = np.argsort(x, kind="mergesort")
    sorted_x = x[order]
    ranks = np.empty(len(x), dtype=np.float64)
    starts = np.flatnonzero(np.r_[True, sorted_x[1:] != sorted_x[:-1]])
    ends = np.r_[starts[1:], len(x)]
    mid = (starts + ends + 1) / 2.0  # mean of the 1-based ranks starts+1 .. ends
    ranks[order] = np.repeat(mid, ends - starts)
    return ranks


def delong(pos: np.ndarray, neg: np.ndarray) -> tuple[float, float]:
    """AUC (ties count one half) and DeLong's estimate of its variance."""
    m, n = len(pos), len(neg)
    combined = _midranks(np.concatenate([pos, neg]))
    v10 = (combined[:m] - _midranks(pos)) / n  # per member: share of non-members below it
    v01 = 1.0 - (combined[m:] - _midranks(neg)) / m  # per non-member: share of members above it
    auc = float(v10.mean())
    var = (float(np.var(v10, ddof=1)) / m if m > 1 else 0.0) + (
        float(np.var(v01, ddof=1)) / n if n > 1 else 0.0)
    return auc, var


def _newcombe_score_interval(auc: float, m: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The AUCs theta with (auc - theta)^2 <= z^2 var(theta), var the Hanley-McNeil variance
    with both sizes set to their mean (Newcombe 2006): a Wilson-like interval, finite at 0 and 1."""
    half = (m + n) / 2.0

    def outside(theta: float) -> float:
        if theta <= 0.0 or theta >= 1.0:
            return (auc - theta) ** 2
        var = theta * (1 - theta) / (half * half) * (
            1 + (half - 1) * ((1 - theta) / (2 - theta) + theta / (1 + theta)))
        return (auc - theta) ** 2 - z * z * var

    def boundary(inside: float, beyond: float) -> float:
        for _ in range(80):  # bisection: ``inside`` satisfies the inequality, ``beyond`` does not
            mid = (inside + beyond) / 2
            if outside(mid) <= 0:
                inside = mid
            else:
                beyond = mid
        return inside

    probe = min(max(auc, 1e-12), 1 - 1e-12)
    lo = 0.0 if outside(0.0) <= 0 else boundary(probe, 0.0)
    hi = 1.0 if outside(1.0) <= 0 else boundary(probe, 1.0)
    return min(lo, auc), max(hi, auc)


def auc_metric(pos: np.ndarray, neg: np.ndarray, z: float = Z95) -> Metric:
    """The AUC with its 95% interval (DeLong on the logit scale; Newcombe's score interval at
    a perfect separation). ``n`` counts members and non-members."""
    auc, var = delong(pos, neg)
    n = len(pos) + len(neg)
    if 0.0 < auc < 1.0:
        se = math.sqrt(var) / (auc * (1 - auc))
        logit = math.log(auc / (1 - auc))
        lo, hi = (1 / (1 + math.exp(-(logit + s * z * se))) for s in (-1, 1))
        return Metric(auc, n=n, ci95=(min(lo, auc), max(hi, auc)))
    return Metric(auc, n=n, ci95=_newcombe_score_interval(auc, len(pos), len(neg), z))


# -- the ROC curve --------------------------------------------------------------------------------


def roc_points(pos: np.ndarray, neg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every vertex of the empirical ROC curve, from (0, 0) to (1, 1): one per distinct score
    (``roc_curve(..., drop_intermediate=False)`` of scikit-learn)."""
    scores = np.concatenate([pos, neg])
    is_pos = np.r_[np.ones(len(pos)), np.zeros(len(neg))]
    order = np.argsort(-scores, kind="mergesort")
    s, lab = scores[order], is_pos[order]
    ends = np.r_[s[1:] != s[:-1], True]  # last sample of each group of tied scores
    tp = np.cumsum(lab)[ends]
    fp = np.cumsum(1 - lab)[ends]
    return np.r_[0.0, fp / len(neg)], np.r_[0.0, tp / len(pos)]


def false_positives_allowed(fpr: float, non_members: int) -> int:
    """How many non-members a threshold for ``fpr`` may flag: fewer than ``fpr * n`` (the
    empirical FPR strictly below ``fpr``, Carlini et al. 2022's convention). The threshold is
    then the k+1-th highest non-member score, whose expected FPR on new non-members,
    (k+1)/(n+1), stays at or below ``fpr``; allowing ``floor(fpr * n)`` instead would measure
    the TPR at up to twice the FPR when ``fpr * n`` is small."""
    return max(math.ceil(fpr * non_members - 1e-9) - 1, 0)


def tpr_at_fpr(pos: np.ndarray, neg: np.ndarray, fpr: float) -> float:
    """The members' share flagged by the most permissive threshold that flags no more than
    :func:`false_positives_allowed` non-members."""
    fprs, tprs = roc_points(pos, neg)
    return float(tprs[fprs <= false_positives_allowed(fpr, len(neg)) / len(neg) + 1e-12].max())


def advantage(pos: np.ndarray, neg: np.ndarray) -> float:
    """max over thresholds of TPR - FPR (0 when no threshold flags members more often)."""
    fprs, tprs = roc_points(pos, neg)
    return float(np.max(tprs - fprs))


def supported(fpr: float, non_members: int) -> bool:
    """Whether ``non_members`` are enough to report the TPR at ``fpr``: its threshold must be
    allowed to flag at least one of them. With none allowed the threshold is the highest
    non-member score, an extreme whose bootstrap interval misses the truth about one time in
    ten (measured), and the number would really be the TPR at 0 observed false positives."""
    return false_positives_allowed(fpr, non_members) >= 1


def curve(pos: np.ndarray, neg: np.ndarray, max_points: int = 200) -> tuple[tuple[float, Metric], ...]:
    """The ROC curve at most ``max_points`` FPRs, spaced evenly on a log scale from the
    smallest FPR the non-members resolve (1/n) to 1, so the low-FPR end, which a log-log plot
    shows and which matters most, keeps its detail. Each point is the TPR at FPR <= x."""
    fprs, tprs = roc_points(pos, neg)
    n = len(neg)
    grid = np.unique(np.ceil(np.geomspace(1.0, n, max_points) - 1e-9)) / n  # multiples of 1/n
    # the best TPR at FPR <= g: the ROC's vertices are sorted by FPR and TPR alike
    idx = np.searchsorted(fprs, grid + 1e-12, side="right") - 1
    m = len(pos)
    return tuple((float(g), Metric(float(tprs[i]), n=m)) for g, i in zip(grid, idx, strict=True))


# -- bootstrap intervals --------------------------------------------------------------------------


def advantage_metric(pos: np.ndarray, neg: np.ndarray, rng: np.random.Generator,
                     resamples: int = BOOTSTRAP) -> Metric:
    """The advantage with a simultaneous bootstrap band as its 95% interval. Members and
    non-members are resampled separately (stratified), as multinomial weights on the
    original samples, so the band is evaluated at the original thresholds."""
    m, n = len(pos), len(neg)
    scores = np.concatenate([pos, neg])
    order = np.argsort(-scores, kind="mergesort")
    s = scores[order]
    is_pos = order < m
    ends = np.r_[s[1:] != s[:-1], True]  # a threshold can only cut after a group of tied scores
    weights = np.empty((resamples, m + n))
    weights[:, is_pos] = rng.multinomial(m, np.full(m, 1.0 / m), size=resamples)[:, order[is_pos]]
    weights[:, ~is_pos] = rng.multinomial(n, np.full(n, 1.0 / n), size=resamples)[:, order[~is_pos] - m]
    tp = np.cumsum(np.where(is_pos, weights, 0.0), axis=1)[:, ends] / m  # (B, cuts): TPR* at each cut
    fp = np.cumsum(np.where(is_pos, 0.0, weights), axis=1)[:, ends] / n
    tp0 = np.cumsum(is_pos)[ends] / m  # the original sample's TPR and FPR at the same cuts
    fp0 = np.cumsum(~is_pos)[ends] / n
    value = max(float(np.max(tp0 - fp0)), 0.0)
    error = (tp - fp) - (tp0 - fp0)  # the bootstrap's error process along the curve
    # D_hat <= D + sup(error) and D_hat >= D + error(t*) at the true maximiser t*, so
    # [D_hat - over, D_hat + under] misses D only when one of the two one-sided sups passes
    # its 97.5% quantile: at most 5% of the time
    over = float(np.quantile(np.maximum(error.max(axis=1), 0.0), 0.975))
    under = float(np.quantile(np.maximum((-error).max(axis=1), 0.0), 0.975))
    return Metric(value, n=m + n, ci95=(max(0.0, value - over), min(1.0, value + under)))


_Z_9875 = 2.241402727604947
"""z of a one-sided 98.75% bound: four such bounds make one 95% interval (Bonferroni)."""


def tpr_metric(pos: np.ndarray, neg: np.ndarray, fpr: float) -> Metric:
    """The TPR at ``fpr`` with a distribution-free interval of at least 95%. The threshold
    with a true FPR of exactly ``fpr`` lies, with probability 98.75% on each side, between
    two order statistics of the non-member scores (the count of non-members above it is
    Binomial(n, fpr)); the members above each of those two thresholds give a Wilson bound
    (98.75% one-sided each). With few non-members no order statistic is high enough to be
    sure of an FPR at most ``fpr`` and the lower bound is 0: what the data can support."""
    from scipy.stats import binom

    from guard.stats import wilson_interval

    m, n = len(pos), len(neg)
    point = tpr_at_fpr(pos, neg, fpr)
    v = np.sort(neg)[::-1]  # v[k - 1]: the k-th highest non-member score
    beta = 1 - 0.9875
    k = np.arange(1, n + 1)
    # a threshold above v[k-1] has FPR > fpr only if fewer than k non-members pass the true one
    safe = k[binom.cdf(k - 1, n, fpr) <= beta]
    lo = 0.0
    if len(safe):
        above = int(np.sum(pos > v[safe[-1] - 1]))
        lo = wilson_interval(above, m, _Z_9875)[0]
    # one at or below v[k-1] has FPR < fpr only if at least k non-members pass the true one
    reach = k[binom.sf(k - 1, n, fpr) <= beta]
    hi = 1.0
    if len(reach):
        above = int(np.sum(pos >= v[reach[0] - 1]))
        hi = wilson_interval(above, m, _Z_9875)[1]
    return Metric(point, n=m, ci95=(min(lo, point), max(hi, point)))
