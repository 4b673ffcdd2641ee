"""Retraining the target's recipe on altered data: what poisoning susceptibility measures.

A scikit-learn target retrains by :func:`sklearn.base.clone` and ``fit`` (its
hyper-parameters are in the fitted estimator). A PyTorch target has no recipe in its file,
so the user names their training function: ``--trainer module:function``, called as
``train(x, y, seed) -> nn.Module`` with ``x`` float32 inputs shaped like the evaluation data
and ``y`` int64 class indices. It is the user's own code, imported like ``--arch``; Guard
never imports a function named by an audited file.

Whatever the trainer does wrong (raises, returns something that is no module, returns a
module that rejects the inputs or answers with the wrong number of classes) is one
:class:`TrainerError` naming the trainer and what it did.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

import numpy as np

from guard.errors import ConfigError
from guard.target import ModelAdapter, Target

TrainFn = Callable[[np.ndarray, np.ndarray, int], Any]


class TrainerError(ConfigError):
    """The training function could not be used, or failed."""


def resolve_trainer(spec: str) -> TrainFn:
    """``module:function`` to the function (imported from the user's environment)."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise TrainerError(f"--trainer {spec!r}: expected MODULE:FUNCTION, e.g. mypkg.train:train")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # noqa: BLE001  (the user's module: whatever it raises is named)
        raise TrainerError(f"--trainer {spec!r}: cannot import {module_name}: "
                           f"{type(exc).__name__}: {_line(exc)}") from None
    fn: Any = module
    for part in attr.split("."):
        fn = getattr(fn, part, None)
        if fn is None:
            raise TrainerError(f"--trainer {spec!r}: {module_name} has no {attr!r}")
    if not callable(fn):
        raise TrainerError(f"--trainer {spec!r}: {attr} is a {type(fn).__name__}, not a function")
    trainer: TrainFn = fn
    return trainer


def _line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0][:200] if lines else ""


class Retrainer:
    """Fits the target's recipe on (x, y) and returns an adapter, like the target's own."""

    def __init__(self, target: Target, trainer: str | None) -> None:
        self.target = target
        framework = target.model.framework
        self.trainer_spec = trainer
        if framework == "sklearn":
            self.recipe = "sklearn.base.clone + fit"
            self._fn: TrainFn | None = None
        elif trainer is None:
            raise TrainerError(
                f"target {target.name!r} is a PyTorch model, and a model file holds no training "
                "recipe: name your training function with --trainer MODULE:FUNCTION "
                "(called as train(x, y, seed) -> nn.Module)")
        else:
            self._fn = resolve_trainer(trainer)
            self.recipe = trainer

    def fit(self, x: np.ndarray, y: np.ndarray, seed: int) -> ModelAdapter:
        if self._fn is None:
            return self._fit_sklearn(x, y)
        return self._fit_torch(self._fn, x, y, seed)

    def _fit_sklearn(self, x: np.ndarray, y: np.ndarray) -> ModelAdapter:
        from sklearn.base import clone

        from guard.models.sklearn_adapter import SklearnModel

        model = self.target.model
        classes = np.asarray(model.classes)  # type: ignore[attr-defined]
        estimator = clone(model.estimator)  # type: ignore[attr-defined]
        try:
            estimator.fit(x.reshape(len(x), -1), classes[y])
        except Exception as exc:  # noqa: BLE001  (the estimator's own fit)
            raise TrainerError(f"refitting {type(estimator).__name__} failed: "
                               f"{type(exc).__name__}: {_line(exc)}") from None
        refit = SklearnModel(estimator, "retrained")
        if refit.n_classes != len(classes):  # a class lost from the poisoned labels
            return _Padded(refit, classes)
        return refit

    def _fit_torch(self, fn: TrainFn, x: np.ndarray, y: np.ndarray, seed: int) -> ModelAdapter:
        import torch

        from guard.models.torch_adapter import TorchModel

        spec = self.trainer_spec
        try:
            module = fn(np.asarray(x, dtype=np.float32), np.asarray(y, dtype=np.int64), int(seed))
        except Exception as exc:  # noqa: BLE001  (the user's trainer: whatever it raises is named)
            raise TrainerError(f"trainer {spec} raised {type(exc).__name__}: {_line(exc)}") from None
        if not isinstance(module, torch.nn.Module):
            raise TrainerError(f"trainer {spec} returned a {type(module).__name__}; "
                               "expected a torch.nn.Module")
        n_classes = self.target.model.n_classes
        probe = torch.as_tensor(np.asarray(x[:4], dtype=np.float32))
        try:
            with torch.inference_mode():
                out = module.eval().float()(probe)
        except Exception as exc:  # noqa: BLE001
            raise TrainerError(f"the module trainer {spec} returned rejects inputs of shape "
                               f"{tuple(probe.shape)}: {type(exc).__name__}: {_line(exc)}") from None
        if not isinstance(out, torch.Tensor) or out.ndim != 2 or out.shape[1] != n_classes:
            shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise TrainerError(f"the module trainer {spec} returned answers {shape} for "
                               f"{len(probe)} inputs; the target has {n_classes} classes")
        return TorchModel(module, n_classes, "retrained")


class _Padded:
    """A refit estimator that never saw some class: predictions mapped back to the target's
    class indices (probabilities of the missing classes are 0)."""

    framework = "sklearn"

    def __init__(self, inner: Any, classes: np.ndarray) -> None:
        self.inner = inner
        self.n_classes = len(classes)
        self._index = np.searchsorted(classes, inner.classes)

    def predict(self, x: np.ndarray) -> np.ndarray:
        out: np.ndarray = self._index[self.inner.predict(x)]
        return out

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        p = self.inner.predict_proba(x)
        out = np.zeros((len(x), self.n_classes))
        out[:, self._index] = p
        return out

    def torch_module(self) -> None:
        return None

    def describe(self) -> dict[str, Any]:
        return dict(self.inner.describe())
