"""Vectorised torch re-implementations of differentiable scikit-learn classifiers.

ART's scikit-learn SVC wrapper computes input gradients in Python loops over samples and
class pairs (minutes for 500 digits). Rewriting the estimator's decision function as a
torch module gives exact gradients for a whole batch in one backward pass, and lets every
gradient attack in Guard treat scikit-learn and torch models alike.

The module's output is the estimator's own ``decision_function``, except for multi-class
SVC, whose scores are votes, libsvm's tie-break and scaled confidences, so that ``argmax``
matches ``predict`` exactly (early stopping trusts it). Audits still measure final
accuracy with the estimator's own ``predict``.
Computation runs in float64 like scikit-learn.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn


def _t(a: Any) -> torch.Tensor:
    return torch.as_tensor(np.asarray(a, dtype=np.float64))


class _Affine(nn.Module):
    """x -> (x - shift) * scale, the shape of every scikit-learn scaler."""

    shift: torch.Tensor
    scale: torch.Tensor

    def __init__(self, shift: Any, scale: Any) -> None:
        super().__init__()
        self.register_buffer("shift", _t(shift))
        self.register_buffer("scale", _t(scale))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.shift) * self.scale


class _Linear(nn.Module):
    """x -> x @ weight.T + bias (PCA projections, linear classifiers)."""

    weight: torch.Tensor
    bias: torch.Tensor

    def __init__(self, weight: Any, bias: Any) -> None:
        super().__init__()
        self.register_buffer("weight", _t(weight))
        self.register_buffer("bias", _t(bias))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x @ self.weight.T + self.bias


class _BinaryScores(nn.Module):
    """A binary decision value d becomes scores [0, d]: argmax is class 1 iff d > 0."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d = self.inner(x).reshape(-1, 1)
        return torch.cat([torch.zeros_like(d), d], dim=1)


_ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "relu": torch.relu,
    "tanh": torch.tanh,
    "logistic": torch.sigmoid,
    "identity": lambda z: z,
}


class _MLP(nn.Module):
    def __init__(self, coefs: list[Any], intercepts: list[Any], activation: str) -> None:
        super().__init__()
        pairs = zip(coefs, intercepts, strict=True)
        self.layers = nn.ModuleList(_Linear(np.asarray(w).T, b) for w, b in pairs)
        self.activation = _ACTIVATIONS[activation]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers[:-1]:
            x = self.activation(layer(x))
        out: torch.Tensor = self.layers[-1](x)
        return out


class _KernelSVC(nn.Module):
    """libsvm's one-vs-one decision values turned into scores whose argmax is libsvm's vote."""

    sv: torch.Tensor
    intercept: torch.Tensor
    coef: torch.Tensor
    pair_i: torch.Tensor
    pair_j: torch.Tensor

    def __init__(self, est: Any) -> None:
        super().__init__()
        self.kernel = est.kernel
        self.gamma = float(est._gamma)
        self.coef0 = float(est.coef0)
        self.degree = int(est.degree)
        self.n_classes = len(est.classes_)
        self.register_buffer("sv", _t(est.support_vectors_))
        self.register_buffer("intercept", _t(est.intercept_))
        dual = np.asarray(est.dual_coef_, dtype=np.float64)
        n_sv = np.asarray(est.n_support_)
        starts = np.concatenate([[0], np.cumsum(n_sv)])
        pairs: list[tuple[int, int]] = []
        # coefficient matrix: (n_pairs, n_sv); the pair (i, j) uses SVs of classes i and j
        coef = np.zeros((len(est.intercept_), len(est.support_vectors_)))
        p = 0
        for i in range(self.n_classes):
            for j in range(i + 1, self.n_classes):
                si, sj = slice(starts[i], starts[i + 1]), slice(starts[j], starts[j + 1])
                coef[p, si] = dual[j - 1, si]
                coef[p, sj] = dual[i, sj]
                pairs.append((i, j))
                p += 1
        self.register_buffer("coef", _t(coef))
        self.register_buffer("pair_i", torch.tensor([a for a, _ in pairs]))
        self.register_buffer("pair_j", torch.tensor([b for _, b in pairs]))

    def _kernel(self, x: torch.Tensor) -> torch.Tensor:
        if self.kernel == "rbf":
            d2 = (x * x).sum(1, keepdim=True) - 2 * x @ self.sv.T + (self.sv * self.sv).sum(1)
            return torch.exp(-self.gamma * d2.clamp_min(0))
        dot = x @ self.sv.T
        if self.kernel == "linear":
            return dot
        if self.kernel == "poly":
            return (self.gamma * dot + self.coef0) ** self.degree
        return torch.tanh(self.gamma * dot + self.coef0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dec = self._kernel(x) @ self.coef.T + self.intercept  # (n, n_pairs), > 0: i wins
        if self.n_classes == 2:
            return torch.cat([torch.zeros_like(dec), dec], dim=1)  # public coefs: > 0 is class 1
        n = x.shape[0]
        conf = x.new_zeros((n, self.n_classes))
        conf = conf.index_add(1, self.pair_i, dec).index_add(1, self.pair_j, -dec)
        wins_i = (dec > 0).to(x.dtype)
        votes = x.new_zeros((n, self.n_classes))
        votes = votes.index_add(1, self.pair_i, wins_i).index_add(1, self.pair_j, 1 - wins_i)
        # libsvm predicts the class with most votes, ties to the lowest index. A descending
        # tie-break of tau per index and the scaled confidences (spanning less than tau)
        # keep exactly that argmax while gradients flow through the confidences; attacks
        # step on the gradient's sign or direction, so its scale does not matter.
        tau = 1.0 / (4 * self.n_classes)
        order = torch.arange(self.n_classes - 1, -1, -1, dtype=x.dtype)
        return votes + tau * order + tau * conf / (3 * (conf.abs() + 1))


class _Pipeline(nn.Module):
    """Casts inputs to float64, runs the steps, returns class scores."""

    def __init__(self, steps: list[nn.Module]) -> None:
        super().__init__()
        self.steps = nn.Sequential(*steps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.steps(x.reshape(x.shape[0], -1).to(torch.float64))
        return out


def _transformer(step: Any) -> nn.Module | None:
    name = type(step).__name__
    if name == "StandardScaler":
        mean = step.mean_ if step.with_mean else np.zeros(step.n_features_in_)
        scale = step.scale_ if step.with_std else np.ones(step.n_features_in_)
        return _Affine(mean, 1.0 / scale)
    if name == "MinMaxScaler":
        return _Affine(-step.min_ / step.scale_, step.scale_)
    if name == "MaxAbsScaler":
        return _Affine(np.zeros_like(step.scale_), 1.0 / step.scale_)
    if name == "PCA":
        w = np.asarray(step.components_)
        if step.whiten:
            w = w / np.sqrt(step.explained_variance_)[:, None]
        return _Linear(w, -w @ np.asarray(step.mean_))
    return None


def _classifier(est: Any) -> nn.Module | None:
    name = type(est).__name__
    if name in {"LogisticRegression", "LinearSVC", "RidgeClassifier", "SGDClassifier",
                "Perceptron", "LinearDiscriminantAnalysis"}:
        linear = _Linear(est.coef_, est.intercept_)
        return _BinaryScores(linear) if len(est.classes_) == 2 else linear
    if name == "SVC" and est.kernel in {"rbf", "linear", "poly", "sigmoid"}:
        return _KernelSVC(est)
    if name == "MLPClassifier":
        mlp = _MLP(est.coefs_, est.intercepts_, est.activation)
        return _BinaryScores(mlp) if len(est.classes_) == 2 else mlp
    return None


def to_torch(est: Any) -> nn.Module | None:
    """The estimator as a differentiable torch module, or None if Guard has no rewrite."""
    steps = [s for _, s in est.steps] if type(est).__name__ == "Pipeline" else [est]
    modules: list[nn.Module] = []
    for step in steps[:-1]:
        if step is None or step == "passthrough":
            continue
        module = _transformer(step)
        if module is None:
            return None
        modules.append(module)
    head = _classifier(steps[-1])
    if head is None:
        return None
    modules.append(head)
    return _Pipeline(modules).eval()
