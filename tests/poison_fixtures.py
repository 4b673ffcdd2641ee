"""Planted poison with a known mask, for the poisoning tests (trained once per process).

The setting of the issue: digits, a 2x2 trigger in the bottom-right corner at 1.0, target
class 0, a share of the training set poisoned; Guard's demo recipe (guard.demo.train_digits).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
from torch import nn

from guard.attacks.poisoning.triggers import Trigger, flip_labels, image_trigger, plant_backdoor
from guard.demo import DIGITS_CLIP, digits_split, train_digits

TARGET_CLASS = 0


@dataclass(frozen=True)
class PoisonedRun:
    x_train: np.ndarray  # as trained on (poisoned where mask)
    y_train: np.ndarray
    mask: np.ndarray  # True for poisoned samples
    x_test: np.ndarray
    y_test: np.ndarray
    model: nn.Module
    trigger: Trigger
    target: int

    def attack_success(self) -> float:
        """Share of non-target test samples the trigger sends to the target class."""
        import torch

        keep = self.y_test != self.target
        x = torch.as_tensor(self.trigger.apply(self.x_test[keep]))
        with torch.inference_mode():
            pred = self.model(x).argmax(1).numpy()
        return float(np.mean(pred == self.target))


@functools.cache
def backdoored_digits(rate: float = 0.1, seed: int = 0, target: int = TARGET_CLASS) -> PoisonedRun:
    """The digits CNN trained with ``rate`` of its training set poisoned (rate 0: clean)."""
    split = digits_split(seed)
    trigger = image_trigger(split.x_train.shape[1:], DIGITS_CLIP)
    if rate > 0:
        x, y, mask = plant_backdoor(split.x_train, split.y_train, rate, target, trigger, seed)
    else:
        x, y, mask = split.x_train, split.y_train, np.zeros(len(split.y_train), dtype=bool)
    model = train_digits(x, y, seed)
    return PoisonedRun(x, y, mask, split.x_test, split.y_test, model, trigger, target)


@functools.cache
def flipped_table(name: str = "breast_cancer", rate: float = 0.1, seed: int = 0
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(x, y_flipped, y_true, mask) for a bundled scikit-learn table with ``rate`` flipped."""
    from sklearn import datasets

    data = {"breast_cancer": datasets.load_breast_cancer, "wine": datasets.load_wine,
            "iris": datasets.load_iris}[name]()
    x = data.data.astype(np.float64)
    y = data.target.astype(np.int64)
    y_flipped, mask = flip_labels(y, rate, int(y.max()) + 1, seed)
    return x, y_flipped, y, mask
