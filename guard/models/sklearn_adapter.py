"""Adapter for a fitted scikit-learn classifier (estimators and pipelines)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from guard.errors import TargetMismatchError
from guard.models.sklearn_torch import to_torch


class SklearnModel:
    """Predictions come from the estimator itself; gradients from its torch rewrite, if any."""

    framework = "sklearn"

    def __init__(self, estimator: Any, source: str = "") -> None:
        if not hasattr(estimator, "predict") or not hasattr(estimator, "classes_"):
            raise TargetMismatchError(
                f"{type(estimator).__name__} is not a fitted scikit-learn classifier "
                "(it has no classes_ or no predict)"
            )
        self.estimator = estimator
        self.classes = np.asarray(estimator.classes_)
        self.n_classes = len(self.classes)
        self._source = source
        self._module: torch.nn.Module | None = None
        self._converted = False

    def label_indices(self, labels: np.ndarray) -> np.ndarray:
        """Map the estimator's labels (any sortable values) to class indices."""
        idx = np.searchsorted(self.classes, labels)
        idx = np.clip(idx, 0, self.n_classes - 1)
        unknown = self.classes[idx] != labels
        if unknown.any():
            bad = sorted({str(v) for v in np.asarray(labels)[unknown]})[:5]
            raise TargetMismatchError(
                f"labels {', '.join(bad)} are not classes the model knows "
                f"({', '.join(str(c) for c in self.classes[:10])})"
            )
        return idx.astype(np.int64)

    def predict(self, x: np.ndarray) -> np.ndarray:
        flat = x.reshape(len(x), -1)
        if len(flat) == 0:
            return np.zeros(0, dtype=np.int64)
        return self.label_indices(np.asarray(self.estimator.predict(flat)))

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        flat = x.reshape(len(x), -1)
        if hasattr(self.estimator, "predict_proba") and _has_proba(self.estimator):
            return np.asarray(self.estimator.predict_proba(flat), dtype=np.float64)
        module = self.torch_module()
        if module is not None:
            with torch.inference_mode():
                z = module(torch.as_tensor(flat)).numpy()
        else:
            z = np.eye(self.n_classes)[self.predict(x)] * 10.0
        z = z - z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return np.asarray(e / e.sum(axis=1, keepdims=True))

    def torch_module(self) -> torch.nn.Module | None:
        if not self._converted:
            self._module = to_torch(self.estimator)
            self._converted = True
        return self._module

    def describe(self) -> dict[str, Any]:
        est = self.estimator
        steps = [type(s).__name__ for _, s in est.steps] if hasattr(est, "steps") else []
        return {
            "class": type(est).__name__,
            "steps": steps,
            "differentiable": self.torch_module() is not None,
            "format": self._source,
        }


def _has_proba(est: Any) -> bool:
    try:
        getattr(est, "predict_proba")  # noqa: B009  (available_if raises AttributeError)
    except AttributeError:
        return False
    return True
