"""Shared work of every evasion probe: settings, sample choice, success, metrics.

Like Foolbox 3's base attacks, this class does the bookkeeping once (choosing samples,
skipping those the model already gets wrong, checking the perturbation budget, counting
with intervals) and each attack writes one method, :meth:`EvasionProbe.perturb`.
"""

from __future__ import annotations

import math
import time
from abc import abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from guard.errors import ConfigError
from guard.evidence import Evidence, Flag
from guard.probes import EmittedEvidence, Probe, RunContext, bounded, check_ranges
from guard.stats import Metric
from guard.target import Target

GRADIENT_MASKING_SHARE = 0.05
_BUDGET_SLACK = 1e-5
NO_CORRECT_SAMPLES = "no_correct_samples"
"""The flag of a measurement where the model got every sampled input wrong before any attack."""


EPS_RANGE = (1e-12, 1e9)
"""Budgets and step sizes: normal (not subnormal) in float32, and far from its overflow."""
STEPS_RANGE = (1, 100_000)
SAMPLES_RANGE = (1, 10_000_000)
BATCH_RANGE = (1, 1_000_000)
MAX_BUDGETS = 64


def check_threat_model(settings: Any) -> None:
    """The checks every settings with ``eps`` (a tuple of budgets) and ``norm`` shares: at
    least one budget and at most :data:`MAX_BUDGETS`, every declared range, a known norm."""
    eps = settings.eps
    if not isinstance(eps, tuple) or not eps:
        raise ConfigError("eps: give at least one value")
    if len(eps) > MAX_BUDGETS:
        raise ConfigError(f"eps: give at most {MAX_BUDGETS} values, got {len(eps)}")
    check_ranges(settings)
    if settings.norm not in ("inf", "2"):
        raise ConfigError(f"norm must be 'inf' or '2', got {settings.norm!r}")


@dataclass(frozen=True, slots=True, kw_only=True)
class EvasionSettings:
    """Settings common to evasion probes, validated once; errors name the parameter.

    Every number has a declared range (:func:`~guard.probes.bounded`), checked before any
    work wherever the value came from.
    """

    eps: tuple[float, ...] = bounded((0.05, 0.1, 0.2), *EPS_RANGE)
    norm: str = "inf"
    steps: int = bounded(40, *STEPS_RANGE, integer=True)
    step_size: float | None = bounded(None, *EPS_RANGE)
    samples: int = bounded(500, *SAMPLES_RANGE, integer=True)
    batch_size: int = bounded(500, *BATCH_RANGE, integer=True)
    early_stop: bool = True

    def __post_init__(self) -> None:
        check_threat_model(self)
        if not isinstance(self.early_stop, bool):
            raise ConfigError(f"early_stop must be true or false, got {self.early_stop!r}")

    def step_for(self, eps: float) -> float:
        """Madry et al.'s rule of thumb, 2.5 * eps / steps, unless given."""
        return self.step_size if self.step_size is not None else 2.5 * eps / self.steps


@dataclass(slots=True)
class AttackOutcome:
    """What an attack returns for the samples it was given (all correctly classified)."""

    x_adv: np.ndarray
    metrics: dict[str, Metric] = field(default_factory=dict)
    flags: list[Flag] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)


def choose_samples(n_total: int, n: int, seed: int) -> np.ndarray:
    """A seeded subset (sorted), or everything when there are fewer samples than asked.

    The subset is a prefix of one seeded permutation, so a smaller sample (a slow black-box
    attack's) is contained in a larger one (a white-box attack's) and results compare.
    """
    if n >= n_total:
        return np.arange(n_total)
    return np.sort(np.random.default_rng(seed).permutation(n_total)[:n])


def perturbation_norms(delta: np.ndarray, norm: str) -> np.ndarray:
    flat = delta.reshape(len(delta), math.prod(delta.shape[1:])).astype(np.float64)  # also for 0 rows
    if norm == "inf":
        return np.abs(flat).max(axis=1) if flat.shape[1] else np.zeros(len(flat))
    norms: np.ndarray = np.linalg.norm(flat, axis=1)
    return norms


def evasion_evidence(title: str, *, metrics: tuple[str, ...] = (), params: tuple[str, ...] = (),
                     flags: tuple[str, ...] = ()) -> EmittedEvidence:
    """What every evasion probe emits (one Evidence per epsilon), plus its own."""
    return EmittedEvidence(
        title=title,
        metrics=("clean_accuracy", "robust_accuracy", "attack_success_rate", *metrics),
        params=("eps", "norm", "samples", "steps", "step_size", "early_stop", *params),
        key=("eps", "norm"),
        flags=("non_monotone", NO_CORRECT_SAMPLES, *flags),
    )


class EvasionProbe(Probe):
    """An evasion attack evaluated over an epsilon sweep: one Evidence per epsilon."""

    category: ClassVar[str] = "evasion"
    settings_type: ClassVar[type[Any]] = EvasionSettings
    settings: EvasionSettings

    @abstractmethod
    def perturb(
        self, target: Target, x: np.ndarray, y: np.ndarray, eps: float, ctx: RunContext
    ) -> AttackOutcome:
        """Adversarial inputs for correctly classified samples x with labels y."""

    def sweep(
        self, target: Target, x: np.ndarray, y: np.ndarray, ctx: RunContext
    ) -> list[tuple[float, AttackOutcome, float]]:
        """(eps, outcome, seconds) for each epsilon; black-box attacks may share one run."""
        results = []
        for i, eps in enumerate(self.settings.eps):
            ctx.progress(f"{self.id} eps={eps:g}", i, len(self.settings.eps))
            start = time.perf_counter()
            outcome = self.perturb(target, x, y, eps, ctx)
            results.append((eps, outcome, time.perf_counter() - start))
        ctx.progress(self.id, len(self.settings.eps), len(self.settings.eps))
        return results

    def check(self, target: Target) -> None:
        """The target offers what the probe needs, and no budget exceeds the declared input
        range (beyond it every input in the box is within reach: the number means nothing)."""
        super().check(target)
        clip = target.input_spec.clip
        if clip is None:
            return
        span = clip[1] - clip[0]
        norm = self.settings.norm
        widest = span if norm == "inf" else span * math.sqrt(math.prod(target.input_spec.shape))
        for eps in self.settings.eps:
            if eps > widest * (1 + 1e-9):
                raise ConfigError(
                    f"{self.id}: eps {eps:g} is larger than the declared input range "
                    f"[{clip[0]:g}, {clip[1]:g}] allows in the {norm} norm (at most {widest:g}, "
                    "which already reaches every input)"
                )

    def run(self, target: Target, ctx: RunContext) -> list[Evidence]:
        self.check(target)
        s = self.settings
        idx = choose_samples(len(target.y_eval), s.samples, ctx.seed)
        x, y = target.x_eval[idx].astype(np.float32), target.y_eval[idx]
        correct = target.model.predict(x) == y
        n, n_correct = len(y), int(correct.sum())
        if n_correct == 0:
            return [self._nothing_to_attack(eps, n, ctx) for eps in s.eps]
        evidence = []
        for eps, outcome, seconds in self.sweep(target, x[correct], y[correct], ctx):
            self._check_budget(target, x[correct], outcome.x_adv, eps)
            still = target.model.predict(outcome.x_adv) == y[correct]
            robust = int(np.sum(still))
            metrics = {
                "clean_accuracy": Metric.proportion(n_correct, n),
                "robust_accuracy": Metric.proportion(robust, n),
                "attack_success_rate": Metric.proportion(n_correct - robust, n_correct),
            }
            metrics.update(outcome.metrics)
            params: dict[str, Any] = {
                "eps": eps,
                "norm": s.norm,
                "samples": n,
                **self._params(eps),
                **outcome.params,
            }
            evidence.append(
                Evidence(
                    probe=self.id,
                    params=params,
                    metrics=metrics,
                    flags=list(outcome.flags),
                    seed=ctx.seed,
                    duration_s=seconds,
                )
            )
        return evidence

    def _nothing_to_attack(self, eps: float, n: int, ctx: RunContext) -> Evidence:
        """The model gets every sampled input wrong: robust accuracy is 0 of n without an
        attack (no input is correct to begin with), with its interval; the attack does not run,
        and the flag says why its own measurements are missing."""
        return Evidence(
            probe=self.id,
            params={"eps": eps, "norm": self.settings.norm, "samples": n, **self._params(eps)},
            metrics={"clean_accuracy": Metric.proportion(0, n), "robust_accuracy": Metric.proportion(0, n)},
            flags=[Flag(NO_CORRECT_SAMPLES,
                        f"the model misclassifies all {n} sampled inputs before any attack, so robust "
                        "accuracy is 0 without attacking; check that the labels match the model's classes")],
            seed=ctx.seed,
        )

    def _params(self, eps: float) -> dict[str, Any]:
        s = self.settings
        return {"steps": s.steps, "step_size": s.step_for(eps), "early_stop": s.early_stop}

    def _check_budget(self, target: Target, x: np.ndarray, x_adv: np.ndarray, eps: float) -> None:
        """An attack that leaves its budget or the input range is a bug, not a result."""
        if x_adv.shape != x.shape:
            raise RuntimeError(f"{self.id} returned shape {x_adv.shape}, expected {x.shape}")
        norms = perturbation_norms(x_adv - x, self.settings.norm)
        if len(norms) and norms.max() > eps * (1 + _BUDGET_SLACK) + _BUDGET_SLACK:
            raise RuntimeError(f"{self.id} exceeded eps={eps}: norm {norms.max():.6g}")
        clip = target.input_spec.clip
        if clip is not None and len(x_adv):
            if x_adv.min() < clip[0] - _BUDGET_SLACK or x_adv.max() > clip[1] + _BUDGET_SLACK:
                raise RuntimeError(f"{self.id} left the input range {clip}")


def zero_gradient_outcome(zero_grad: np.ndarray) -> tuple[dict[str, Metric], list[Flag]]:
    """The share of samples with an all-zero input gradient, and a flag when it is large."""
    if len(zero_grad) == 0:
        return {}, []
    zeros = int(zero_grad.sum())
    metric = Metric.proportion(zeros, len(zero_grad))
    flags = []
    if metric.value > GRADIENT_MASKING_SHARE:
        flags.append(
            Flag(
                "gradient_masking",
                f"{zeros} of {len(zero_grad)} attacked samples ({metric.value:.0%}) had an "
                "all-zero input gradient: gradient attacks cannot move them, so robust accuracy "
                "may be overestimated; try a black-box attack (hopskipjump)",
            )
        )
    return {"zero_gradient_share": metric}, flags
