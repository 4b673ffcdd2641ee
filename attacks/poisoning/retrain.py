"""Retraining the target's recipe on altered data: what poisoning susceptibility measures.

A scikit-learn target retrains by :func:`sklearn.base.clone` and ``fit`` (its
hyper-parameters are in the fitted estimator). A PyTorch target has no recipe in its file,
so the user names their training function: ``--trainer module:function``, called as
``train(x, y, seed) -> nn.Module`` with ``x`` float32 inputs shaped like the evaluation data
and ``y`` int64 class indices. It is the user's own code, imported like ``--arch``; Guard
never imports a function named by an audited file.

Whatever the trainer does wrong (raises or exits, returns something that is no module,
returns a module that rejects the inputs, answers with the wrong number of classes or with
values that are not finite, at any batch size) is one :class:`TrainerError` naming the
trainer and what it did. Each fit gets its own copy of the arrays, so a trainer or an
estimator that changes them in place (``x /= 255``, ``StandardScaler(copy=False)``, an
in-place shuffle) cannot alter the next retrain's data; what the trainer prints goes to
standard error, never into Guard's output.
"""

from __future__ import annotations

import contextlib
import importlib
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from guard.errors import ConfigError
from guard.models.torch_adapter import TorchModel
from guard.target import ModelAdapter, Target

TrainFn = Callable[[np.ndarray, np.ndarray, int], Any]


class TrainerError(ConfigError):
    """The training function could not be used, or failed."""


def resolve_trainer(spec: str) -> TrainFn:
    """``module:function`` to the function (imported from the user's environment)."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise TrainerError(f"--trainer {spec!r}: expected MODULE:FUNCTION, e.g. mypkg.train:train")
    cwd = str(Path.cwd())
    added = cwd not in sys.path and "" not in sys.path  # found where --arch finds its module
    if added:
        sys.path.insert(0, cwd)
    try:
        module = importlib.import_module(module_name)
    except (Exception, SystemExit) as exc:  # noqa: BLE001  (the user's module: whatever it raises is named)
        raise TrainerError(f"--trainer {spec!r}: cannot import {module_name}: "
                           f"{type(exc).__name__}: {_line(exc)}") from None
    finally:
        if added:
            sys.path.remove(cwd)
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
            if trainer is not None:  # a demo or a spec file gives one trainer for several targets
                self.recipe += f" (--trainer {trainer} applies to PyTorch targets only, not used)"
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
            estimator.fit(np.array(x, copy=True).reshape(len(x), -1), classes[y])
        except Exception as exc:  # noqa: BLE001  (the estimator's own fit)
            raise TrainerError(f"refitting {type(estimator).__name__} failed: "
                               f"{type(exc).__name__}: {_line(exc)}") from None
        refit = SklearnModel(estimator, "retrained")
        if refit.n_classes != len(classes):  # a class lost from the poisoned labels
            return _Padded(refit, classes)
        return refit

    def _fit_torch(self, fn: TrainFn, x: np.ndarray, y: np.ndarray, seed: int) -> ModelAdapter:
        spec = self.trainer_spec
        try:
            with contextlib.redirect_stdout(sys.stderr):
                module = fn(np.array(x, dtype=np.float32, copy=True), np.array(y, dtype=np.int64, copy=True),
                            int(seed))
        except (Exception, SystemExit) as exc:  # noqa: BLE001  (the user's trainer: whatever it raises)
            raise TrainerError(f"trainer {spec} raised {type(exc).__name__}: {_line(exc)}") from None
        if not isinstance(module, torch.nn.Module):
            raise TrainerError(f"trainer {spec} returned a {type(module).__name__}; "
                               "expected a torch.nn.Module")
        return _CheckedTorchModel(module, self.target.model.n_classes, str(spec))


class _CheckedTorchModel(TorchModel):
    """A retrained module held to the contract at every prediction, whatever the batch:
    finite class scores of shape (n, n_classes). Anything else is the trainer's fault, named
    as such."""

    def __init__(self, module: torch.nn.Module, n_classes: int, spec: str) -> None:
        super().__init__(module, n_classes, "retrained")
        self.spec = spec

    def logits(self, x: np.ndarray) -> np.ndarray:
        try:
            z = np.asarray(super().logits(x))
        except Exception as exc:  # noqa: BLE001  (the user's module's forward)
            raise TrainerError(f"the module trainer {self.spec} returned failed on {len(x)} inputs of "
                               f"shape {tuple(x.shape[1:])}: {type(exc).__name__}: {_line(exc)}") from None
        if z.shape != (len(x), self.n_classes):
            raise TrainerError(f"the module trainer {self.spec} returned answers {z.shape} for "
                               f"{len(x)} inputs; the target has {self.n_classes} classes")
        if not np.isfinite(z).all():
            raise TrainerError(f"the module trainer {self.spec} returned non-finite class scores "
                               "(NaN or inf): the training diverged")
        return z


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
