"""The thing being audited: a model behind one small interface, its data and its declared inputs.

Probes only talk to :class:`ModelAdapter`; they never see whether it wraps torch or
scikit-learn. A differentiable adapter offers ``torch_module()``: a torch module whose
outputs are class scores with the same argmax as ``predict`` (for scikit-learn models, a
vectorised re-implementation of the estimator, see :mod:`guard.models.sklearn_torch`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

if TYPE_CHECKING:
    import torch

from guard.errors import MissingCapabilityError


class Capability(Enum):
    """What a probe may need from a target, declared as data and checked up front."""

    GRADIENTS = "gradients"
    TRAIN_DATA = "train_data"
    ARTIFACT = "artifact"


@dataclass(frozen=True, slots=True)
class InputSpec:
    """Declared inputs. ``clip`` is None for unbounded (tabular) features; never guessed."""

    shape: tuple[int, ...]
    dtype: str = "float32"
    clip: tuple[float, float] | None = None
    feature_names: tuple[str, ...] | None = None
    sensitive_columns: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "shape": list(self.shape),
            "dtype": self.dtype,
            "clip": None if self.clip is None else list(self.clip),
            "feature_names": None if self.feature_names is None else list(self.feature_names),
            "sensitive_columns": list(self.sensitive_columns),
        }


class ModelAdapter(Protocol):
    """The small interface every probe uses. Labels are class indices 0..n_classes-1."""

    framework: str
    n_classes: int

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Predicted class indices, shape (n,)."""
        ...

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """Class probabilities, shape (n, n_classes), rows summing to 1."""
        ...

    def torch_module(self) -> torch.nn.Module | None:
        """A differentiable module giving class scores, or None when the model has none."""
        ...

    def describe(self) -> dict[str, Any]:
        """Model facts for the report (class name, parameter count, ...)."""
        ...


@dataclass(slots=True)
class Target:
    """A model under audit with its evaluation data (labels as class indices)."""

    name: str
    model: ModelAdapter
    x_eval: np.ndarray
    y_eval: np.ndarray
    input_spec: InputSpec
    x_train: np.ndarray | None = None
    y_train: np.ndarray | None = None
    artifact: Path | None = None
    deployment: dict[str, Any] = field(default_factory=dict)
    digests: dict[str, str] = field(default_factory=dict)
    files: dict[str, Path] = field(default_factory=dict)
    """The data files the target was built from, by role (``data``, ``train_data``): what a
    probe of the raw files (the personal-data scan) reads."""

    @property
    def capabilities(self) -> frozenset[Capability]:
        caps = set()
        if self.model.torch_module() is not None:
            caps.add(Capability.GRADIENTS)
        if self.x_train is not None and self.y_train is not None:
            caps.add(Capability.TRAIN_DATA)
        if self.artifact is not None:
            caps.add(Capability.ARTIFACT)
        return frozenset(caps)

    def require(self, probe_id: str, needs: frozenset[Capability]) -> None:
        missing = needs - self.capabilities
        if missing:
            names = ", ".join(sorted(c.value for c in missing))
            raise MissingCapabilityError(
                f"probe {probe_id!r} needs {names}, which target {self.name!r} does not offer"
            )

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "framework": self.model.framework,
            "n_classes": self.model.n_classes,
            "model": self.model.describe(),
            "input": self.input_spec.to_dict(),
            "n_eval": int(len(self.y_eval)),
            "n_train": None if self.y_train is None else int(len(self.y_train)),
            "artifact": None if self.artifact is None else str(self.artifact),
            "deployment": self.deployment,
            "digests": dict(self.digests),
        }
