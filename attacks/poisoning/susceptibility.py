"""How easily the model's training recipe is poisoned: a BadNets backdoor and label flips,
each planted at several rates, the model retrained each time, measured on the clean
evaluation data.

BadNets (Gu et al. 2017, https://arxiv.org/abs/1708.06733): the attacker controls a share of
the training set, stamps a trigger on it and relabels it to a target class. Attack success
is the share of evaluation inputs of other classes that the retrained model sends to the
target once the trigger is stamped on them; the same triggered inputs given to the model
retrained on clean data are the null control (``baseline_attack_success_rate``: what the
trigger does without any poison). Label flipping (Biggio et al. 2012,
https://arxiv.org/abs/1206.6389, in its random form) measures how much clean accuracy the
recipe loses when a share of labels is wrong.

Every rate retrains the recipe once with the audit's seed (scikit-learn: clone and fit;
PyTorch: the ``--trainer`` function), so the accuracy drop is measured against a clean
retrain with the same seed on the same evaluation samples, with Newcombe's paired interval.
"""

from __future__ import annotations

import time
from abc import abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from guard.attacks.poisoning.retrain import Retrainer, TrainerError
from guard.attacks.poisoning.triggers import Trigger, flip_labels, plant_backdoor, trigger_for
from guard.errors import ConfigError
from guard.evidence import Evidence, Flag
from guard.probes import EmittedEvidence, Probe, RunContext, bounded, check_ranges, register
from guard.stats import Metric, paired_difference
from guard.target import Capability, ModelAdapter, Target

MAX_RATES = 16
TRAIN_CLASSES_MISSING = "train_classes_missing"


@dataclass(frozen=True, slots=True, kw_only=True)
class PoisonSettings:
    """Settings shared by the poisoning simulations. ``trainer`` is ``MODULE:FUNCTION``
    (PyTorch targets only; ``--trainer``); ``eval_samples`` caps the evaluation samples."""

    rates: tuple[float, ...] = bounded((0.01, 0.03, 0.10), 1e-6, 0.5)
    trainer: str | None = None
    eval_samples: int = bounded(10_000, 1, 10_000_000, integer=True)

    def __post_init__(self) -> None:
        if not isinstance(self.rates, tuple) or not self.rates:
            raise ConfigError("rates: give at least one poisoning rate")
        if len(self.rates) > MAX_RATES:
            raise ConfigError(f"rates: give at most {MAX_RATES} values, got {len(self.rates)}")
        check_ranges(self)
        if len(set(self.rates)) != len(self.rates):
            raise ConfigError(f"rates: each rate once, got {list(self.rates)}")
        if self.trainer is not None and (not isinstance(self.trainer, str) or ":" not in self.trainer):
            raise ConfigError(f"trainer must be MODULE:FUNCTION, got {self.trainer!r}")


@dataclass(frozen=True, slots=True, kw_only=True)
class BackdoorSettings(PoisonSettings):
    """``target_class``: the class the trigger leads to (a class index)."""

    target_class: int = bounded(0, 0, 1_000_000, integer=True)


@dataclass(frozen=True, slots=True, kw_only=True)
class LabelFlipSettings(PoisonSettings):
    rates: tuple[float, ...] = bounded((0.05, 0.10, 0.20), 1e-6, 0.5)


class PoisonProbe(Probe):
    """Retrain the recipe clean and at each rate; one Evidence per rate."""

    category: ClassVar[str] = "poisoning"
    requires: ClassVar[frozenset[Capability]] = frozenset({Capability.TRAIN_DATA})
    thorough: ClassVar[bool] = True
    settings: PoisonSettings

    def applies_to(self, target: Target) -> bool:
        """Training data, and a recipe: scikit-learn's own, or a ``--trainer`` for PyTorch."""
        return super().applies_to(target) and (
            target.model.framework == "sklearn" or self.settings.trainer is not None)

    def why_not(self, target: Target) -> str:
        if Capability.TRAIN_DATA not in target.capabilities:
            return "needs training data (x_train, y_train in --data, or --train-data)"
        return "a PyTorch model needs its training function: --trainer MODULE:FUNCTION"

    def check(self, target: Target) -> None:
        super().check(target)
        Retrainer(target, self.settings.trainer)  # a PyTorch target without --trainer: now

    def run(self, target: Target, ctx: RunContext) -> list[Evidence]:
        self.check(target)
        x_train, y_train = training_data(target)
        retrainer = Retrainer(target, self.settings.trainer)
        x_eval, y_eval = _eval_samples(target, self.settings.eval_samples, ctx.seed)
        rates = self.settings.rates
        total = len(rates) + 1
        ctx.progress(f"{self.id} clean retrain", 0, total)
        start = time.perf_counter()
        clean = self._fit(retrainer, x_train, y_train, ctx.seed, "the clean retrain")
        baseline_s = time.perf_counter() - start
        self.prepare(target, clean, x_eval, y_eval)
        out = []
        for i, rate in enumerate(rates, start=1):
            ctx.progress(f"{self.id} rate={rate:g}", i, total)
            start = time.perf_counter()
            evidence = self.measure(target, retrainer, clean, rate, x_eval, y_eval, ctx.seed)
            evidence.params.update({"rate": rate, "recipe": retrainer.recipe, "samples": len(y_eval),
                                    "train_samples": len(y_train)})
            evidence.flags.extend(coverage_flags(y_train, target.model.n_classes))
            evidence.seed = ctx.seed
            evidence.duration_s = time.perf_counter() - start + baseline_s / len(rates)
            out.append(evidence)
        ctx.progress(self.id, total, total)
        return out

    def _fit(self, retrainer: Retrainer, x: np.ndarray, y: np.ndarray, seed: int, what: str) -> ModelAdapter:
        """One retrain; a failure names the probe and the retrain it happened in."""
        try:
            return retrainer.fit(x, y, seed)
        except TrainerError as exc:
            raise TrainerError(f"{self.id}, {what}: {exc}") from None

    def prepare(self, target: Target, clean: ModelAdapter, x: np.ndarray, y: np.ndarray) -> None:
        """Work shared by every rate, once the clean model is trained."""

    @abstractmethod
    def measure(self, target: Target, retrainer: Retrainer, clean: ModelAdapter, rate: float,
                x: np.ndarray, y: np.ndarray, seed: int) -> Evidence:
        """Poison at ``rate``, retrain, measure on the clean evaluation samples."""


def training_data(target: Target) -> tuple[np.ndarray, np.ndarray]:
    """The target's training inputs and labels, or the error naming what is missing."""
    if target.x_train is None or target.y_train is None:
        target.require("poisoning", frozenset({Capability.TRAIN_DATA}))
        raise ConfigError(f"target {target.name!r} has no training data")
    return target.x_train, target.y_train


def coverage_flags(y_train: np.ndarray, n_classes: int) -> list[Flag]:
    """A flag when the training labels hold fewer classes than the model answers with: the
    retrained recipe then never learns those classes, and every accuracy compares with that."""
    present = len(np.unique(y_train))
    if present >= n_classes:
        return []
    return [Flag(TRAIN_CLASSES_MISSING,
                 f"the training labels hold {present} of the model's {n_classes} classes: the retrained "
                 "model never sees the others, so its accuracy is not the deployed recipe's")]


def _eval_samples(target: Target, samples: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    n = len(target.y_eval)
    if samples >= n:
        return target.x_eval, target.y_eval
    idx = np.sort(np.random.default_rng(seed).permutation(n)[:samples])
    return target.x_eval[idx], target.y_eval[idx]


def accuracy_metrics(clean: ModelAdapter, poisoned: ModelAdapter, x: np.ndarray,
                     y: np.ndarray) -> dict[str, Metric]:
    """Clean accuracy of the poisoned model, of the clean retrain, and the paired drop."""
    ok_clean = clean.predict(x) == y
    ok_poisoned = poisoned.predict(x) == y
    n = len(y)
    return {
        "clean_accuracy": Metric.proportion(int(ok_poisoned.sum()), n),
        "baseline_accuracy": Metric.proportion(int(ok_clean.sum()), n),
        "accuracy_drop": paired_difference(ok_clean, ok_poisoned),
    }


@register
class Backdoor(PoisonProbe):
    """BadNets: trigger on ``rate`` of the training set, relabelled to the target class."""

    id: ClassVar[str] = "poisoning.backdoor"
    aliases: ClassVar[tuple[str, ...]] = ("backdoor",)
    settings_type: ClassVar[type[Any]] = BackdoorSettings
    settings: BackdoorSettings
    emits: ClassVar[EmittedEvidence] = EmittedEvidence(
        title="BadNets backdoor planted in the training data at one poisoning rate, model retrained "
              "by its recipe",
        metrics=("attack_success_rate", "baseline_attack_success_rate", "clean_accuracy",
                 "baseline_accuracy", "accuracy_drop"),
        params=("rate", "target_class", "poisoned_samples", "trigger", "recipe", "samples", "train_samples"),
        key=("rate",),
        flags=(TRAIN_CLASSES_MISSING,),
    )

    def check(self, target: Target) -> None:
        super().check(target)
        if self.settings.target_class >= target.model.n_classes:
            n = target.model.n_classes
            raise ConfigError(f"{self.id}: target_class {self.settings.target_class} is not a class of "
                              f"the model (it has {n}: 0 to {n - 1})")

    def prepare(self, target: Target, clean: ModelAdapter, x: np.ndarray, y: np.ndarray) -> None:
        x_train, y_train = training_data(target)
        self._trigger: Trigger = trigger_for(x_train, y_train, target.input_spec.clip)
        others = y != self.settings.target_class
        if not others.any():
            raise ConfigError(f"{self.id}: every evaluation sample is of the target class "
                              f"{self.settings.target_class}; attack success cannot be measured")
        self._triggered = self._trigger.apply(x[others])
        hits = clean.predict(self._triggered) == self.settings.target_class
        self._baseline_asr = Metric.proportion(int(hits.sum()), len(hits))

    def measure(self, target: Target, retrainer: Retrainer, clean: ModelAdapter, rate: float,
                x: np.ndarray, y: np.ndarray, seed: int) -> Evidence:
        x_train, y_train = training_data(target)
        goal = self.settings.target_class
        x_p, y_p, mask = plant_backdoor(x_train, y_train, rate, goal, self._trigger, seed)
        poisoned = self._fit(retrainer, x_p, y_p, seed, f"rate {rate:g}")
        hits = poisoned.predict(self._triggered) == goal
        metrics = {"attack_success_rate": Metric.proportion(int(hits.sum()), len(hits)),
                   "baseline_attack_success_rate": self._baseline_asr,
                   **accuracy_metrics(clean, poisoned, x, y)}
        params: dict[str, Any] = {"target_class": goal, "poisoned_samples": int(mask.sum()),
                                  "trigger": self._trigger.describe()}
        return Evidence(probe=self.id, params=params, metrics=metrics)


@register
class LabelFlip(PoisonProbe):
    """A share of the training labels replaced by a uniformly drawn other class."""

    id: ClassVar[str] = "poisoning.label_flip"
    aliases: ClassVar[tuple[str, ...]] = ("label-flip",)
    settings_type: ClassVar[type[Any]] = LabelFlipSettings
    settings: LabelFlipSettings
    emits: ClassVar[EmittedEvidence] = EmittedEvidence(
        title="Training labels flipped at one rate, model retrained by its recipe",
        metrics=("clean_accuracy", "baseline_accuracy", "accuracy_drop"),
        params=("rate", "flipped_samples", "recipe", "samples", "train_samples"),
        key=("rate",),
        flags=(TRAIN_CLASSES_MISSING,),
    )

    def measure(self, target: Target, retrainer: Retrainer, clean: ModelAdapter, rate: float,
                x: np.ndarray, y: np.ndarray, seed: int) -> Evidence:
        x_train, y_train = training_data(target)
        y_p, mask = flip_labels(y_train, rate, target.model.n_classes, seed)
        poisoned = self._fit(retrainer, x_train, y_p, seed, f"rate {rate:g}")
        return Evidence(probe=self.id, params={"flipped_samples": int(mask.sum())},
                        metrics=accuracy_metrics(clean, poisoned, x, y))
