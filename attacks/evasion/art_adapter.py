"""The one place Guard touches ART's estimator classes.

Wrapping happens here and nowhere else: probes ask for an ART classifier built around a
target (its differentiable torch module, or only its predictions for black-box attacks)
and never subclass ART's hierarchy. ART is imported lazily so ``guard --help`` stays fast.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from guard.target import Target


class QueryCounter:
    """Counts how many inputs a black-box attack sends to the model."""

    def __init__(self, target: Target) -> None:
        self._target = target
        self.queries = 0

    def __call__(self, x: np.ndarray) -> np.ndarray:
        self.queries += len(x)
        labels = self._target.model.predict(np.asarray(x, dtype=np.float32))
        onehot: np.ndarray = np.eye(self._target.model.n_classes, dtype=np.float32)[labels]
        return onehot


def torch_classifier(target: Target, batch_size: int) -> Any:
    """ART's PyTorchClassifier around the target's differentiable module (CE loss)."""
    import torch
    from art.estimators.classification import PyTorchClassifier

    module = target.model.torch_module()
    if module is None:
        raise ValueError(f"target {target.name!r} has no differentiable module")
    return PyTorchClassifier(
        model=module,
        loss=torch.nn.CrossEntropyLoss(),
        input_shape=tuple(target.input_spec.shape),
        nb_classes=target.model.n_classes,
        clip_values=target.input_spec.clip,
        device_type="cpu",
    )


def blackbox_classifier(target: Target, counter: QueryCounter, clip: tuple[float, float]) -> Any:
    """ART's BlackBoxClassifier that sees only the target's predicted labels."""
    from art.estimators.classification import BlackBoxClassifier

    return BlackBoxClassifier(
        predict_fn=counter,
        input_shape=tuple(target.input_spec.shape),
        nb_classes=target.model.n_classes,
        clip_values=clip,
    )
