"""Output hardening per role: top-k, rounding, reverse sigmoid (label only is GuardedModel's).

Reverse sigmoid follows Lee et al. 2019 (https://arxiv.org/abs/1806.00054). We compute ART's
``ReverseSigmoid`` formula in numpy rather than calling ART on the serving path (importing ART
costs seconds and its postprocessors work on whole float arrays only); a test checks our
result equals ART's to 1e-9. Top-k and rounding are applied after it, in that order (ART's
``HighConfidence``/``Rounded`` do the same thing but without renormalising after top-k).
"""

from __future__ import annotations

import numpy as np

from guard.defenses.access.policy import OutputRule


def _reverse_sigmoid(p: np.ndarray, beta: float, gamma: float) -> np.ndarray:
    eps = 1e-6
    q = np.clip(p, eps, 1 - eps)
    logit = np.log(q / (1 - q))
    sig = 1.0 / (1.0 + np.exp(-gamma * logit))
    r = q - beta * (sig - 0.5)
    r = np.clip(r, 0.0, None)
    s = r.sum(axis=1, keepdims=True)
    s[s == 0] = 1.0
    out: np.ndarray = r / s
    return out


def harden(proba: np.ndarray, rule: OutputRule) -> np.ndarray:
    """Probabilities after the rule: reverse sigmoid, then top-k (others zeroed, renormalised),
    then rounding to ``rule.round`` decimals."""
    p = np.asarray(proba, dtype=np.float64).copy()
    if rule.reverse_sigmoid is not None:
        p = _reverse_sigmoid(p, rule.reverse_sigmoid.beta, rule.reverse_sigmoid.gamma)
    if rule.top_k is not None and rule.top_k < p.shape[1]:
        idx = np.argsort(-p, axis=1, kind="stable")[:, rule.top_k :]
        np.put_along_axis(p, idx, 0.0, axis=1)
        p /= p.sum(axis=1, keepdims=True)
    if rule.round is not None:
        p = np.round(p, rule.round)
    return p.astype(np.float32)
