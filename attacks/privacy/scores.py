"""The membership scores: one number per sample, higher meaning "more likely a member".

- **Loss threshold** (Yeom et al. 2018, https://arxiv.org/abs/1709.01604): the model's
  log-probability of the true label, i.e. minus its cross-entropy loss. Training samples
  have lower loss; sweeping the threshold gives the ROC curve.
- **RMIA**, offline (Zarifzadeh, Liu and Shokri 2024, "Low-Cost High-Power Membership
  Inference Attacks", https://arxiv.org/abs/2312.03262): ``Pr(x|theta)`` is the target's
  probability of the true label; ``Pr(x)``, what a model trained without ``x`` would give,
  comes from reference models trained by the same recipe on population data that excludes
  every scored sample. With OUT models only, their mean underestimates ``Pr(x)`` (which
  averages models trained with and without ``x``); the paper corrects it linearly,
  ``Pr(x) = (1 + a)/2 * mean_out + (1 - a)/2``, i.e. ``Pr_in ~= a * Pr_out + (1 - a)``, with
  ``a`` chosen by a simulated attack on a model whose training set is known (here the
  first reference model, the other models as its references). RMIA's score is the share of
  population samples ``z`` with ``LR(x, z) >= gamma``, where
  ``LR(x, z) = (Pr(x|theta)/Pr(x)) / (Pr(z|theta)/Pr(z))``; for one target model and one
  population that share is a non-decreasing function of ``Pr(x|theta)/Pr(x)`` alone, whatever
  ``gamma``, so the ROC curve, the AUC and every TPR at a fixed FPR are those of the ratio
  (:func:`rmia_pairwise` computes the paper's form, which the tests compare with).
- **ART's black-box attack** (Shokri et al. 2017's learned attack, as implemented by
  ``art.attacks.inference.membership_inference.MembershipInferenceBlackBox``): a small
  network trained on the target's probability vectors and labels of known members and
  non-members, applied to the scored samples. ART is given probabilities (a softmax of the
  logits, never the logits its PyTorch wrapper would return).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

A_GRID = tuple(round(0.1 * i, 1) for i in range(11))
"""The values of RMIA's ``a`` tried by the simulated attack (as ML Privacy Meter does)."""
DEFAULT_A = 0.3
"""ML Privacy Meter's default ``a``, used when the simulation has too few samples."""
_TINY = 1e-300


def true_label_probability(proba: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Each row's probability of its own label, ``Pr(x|theta)`` in RMIA's notation."""
    out: np.ndarray = np.asarray(proba, dtype=np.float64)[np.arange(len(y)), y]
    return out


def loss_scores(p_true: np.ndarray) -> np.ndarray:
    """Minus the cross-entropy loss: log Pr(y|x), floored so that a probability of 0 is finite."""
    out: np.ndarray = np.log(np.maximum(p_true, _TINY))
    return out


def rmia_ratio(p_target: np.ndarray, p_out: np.ndarray, a: float) -> np.ndarray:
    """``Pr(x|theta) / Pr(x)`` with ``Pr(x) = (1+a)/2 * mean_out + (1-a)/2``; ``p_out`` holds
    the reference models' probabilities, one column per model, NaN where a model saw ``x``."""
    mean_out = np.nanmean(p_out, axis=1)
    marginal = (1 + a) / 2 * mean_out + (1 - a) / 2
    out: np.ndarray = p_target / np.maximum(marginal, _TINY)
    return out


def rmia_pairwise(p_x: np.ndarray, p_out_x: np.ndarray, p_z: np.ndarray, p_out_z: np.ndarray, a: float,
                  gamma: float = 1.0) -> np.ndarray:
    """RMIA's score as the paper writes it: for each ``x``, the share of population samples
    ``z`` with ``LR(x, z) >= gamma``. (The probe ranks by :func:`rmia_ratio`, which orders
    samples the same way; this form is here so that tests can check that claim.)"""
    ratio_x = rmia_ratio(p_x, p_out_x, a)
    ratio_z = rmia_ratio(p_z, p_out_z, a)
    out: np.ndarray = np.mean(ratio_x[:, None] / ratio_z[None, :] >= gamma, axis=1)
    return out


def tune_a(p_sim: np.ndarray, p_out: np.ndarray, member: np.ndarray, min_each: int = 10) -> float | None:
    """RMIA's ``a`` from a simulated attack: ``p_sim`` are a model's probabilities of samples
    whose membership in its training set is ``member``, ``p_out`` the reference models'
    (NaN where a reference model saw the sample; rows with no OUT model are left out). The
    ``a`` of :data:`A_GRID` with the highest AUC wins (the smallest on a tie); None when
    either group has fewer than ``min_each`` samples."""
    from guard.attacks.privacy.roc import delong

    usable = ~np.all(np.isnan(p_out), axis=1)
    pos, neg = usable & member, usable & ~member
    if pos.sum() < min_each or neg.sum() < min_each:
        return None
    best, best_auc = A_GRID[0], -1.0
    for a in A_GRID:
        ratio = rmia_ratio(p_sim[usable], p_out[usable], a)
        auc, _ = delong(ratio[member[usable]], ratio[~member[usable]])
        if auc > best_auc + 1e-12:
            best, best_auc = a, auc
    return best


# -- ART ------------------------------------------------------------------------------------------


@contextmanager
def art_session(seed: int) -> Iterator[None]:
    """Where ART's attack trains and infers: torch's global generator seeded (ART draws its
    attack model's weights and batches from it) and one torch thread (its attack model is
    small: measured 2.2 s on one thread against 6.4 s on two on a busy 2-core machine); the
    caller's generators and thread count are given back afterwards."""
    import torch

    from guard.audit import seeded

    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        with seeded(seed):
            yield
    finally:
        torch.set_num_threads(threads)


def art_attack(n_classes: int, n_features: int) -> Any:
    """ART's black-box membership attack with its defaults (a neural attack model on the
    probability vector and the one-hot label: 100 epochs, batch 100, Adam at 1e-4). The
    estimator is a stand-in: the probe hands ART the predictions, so ART never calls it."""
    from art.attacks.inference.membership_inference import MembershipInferenceBlackBox
    from art.estimators.classification import BlackBoxClassifier

    def never_called(x: np.ndarray) -> np.ndarray:  # pragma: no cover  (ART gets pred= instead)
        raise RuntimeError("the membership probe passes predictions to ART")

    estimator = BlackBoxClassifier(never_called, input_shape=(n_features,), nb_classes=n_classes)
    return MembershipInferenceBlackBox(estimator, input_type="prediction", attack_model_type="nn")


def art_fit(attack: Any, p_members: np.ndarray, y_members: np.ndarray, p_non: np.ndarray,
            y_non: np.ndarray) -> None:
    """Train ART's attack model on known members' and non-members' probability vectors."""
    attack.fit(y=y_members, pred=p_members.astype(np.float32), test_y=y_non,
               test_pred=p_non.astype(np.float32))


def art_scores(attack: Any, proba: np.ndarray, y: np.ndarray) -> np.ndarray:
    """ART's membership probability for each sample."""
    out = attack.infer(None, y, pred=proba.astype(np.float32), probabilities=True)
    scores: np.ndarray = np.asarray(out, dtype=np.float64).reshape(-1)
    return scores
