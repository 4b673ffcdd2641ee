"""HopSkipJump from ART: a decision-based black-box attack with a query budget.

Chen, Jordan & Wainwright 2020, https://arxiv.org/abs/1904.02144. It needs only predicted
labels, so it audits models without gradients (trees, forests) and checks white-box
results for gradient masking. It searches for the smallest adversarial perturbation, so
one run gives the whole epsilon curve: a sample counts as fooled at eps when the attack
found an adversarial input within eps of it.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from guard.attacks.evasion.art_adapter import QueryCounter, blackbox_classifier
from guard.attacks.evasion.base import (
    NO_CORRECT_SAMPLES,
    SAMPLES_RANGE,
    AttackOutcome,
    EvasionProbe,
    EvasionSettings,
    perturbation_norms,
)
from guard.probes import EmittedEvidence, RunContext, bounded, register
from guard.stats import Metric
from guard.target import Capability, Target

_BINARY_SEARCH_QUERIES = 25  # rough cost of HSJ's boundary search and step-size search


def schedule(budget: int) -> dict[str, int]:
    """ART settings whose expected queries per sample stay within ``budget``."""
    init_eval = max(10, min(100, budget // 10))
    max_eval = max(init_eval, min(1000, budget // 3))
    init_size = max(10, min(100, budget // 10))
    spent, iters = init_size + _BINARY_SEARCH_QUERIES, 0
    while True:
        cost = min(int(init_eval * math.sqrt(iters + 1)), max_eval) + _BINARY_SEARCH_QUERIES
        if spent + cost > budget:
            break
        spent += cost
        iters += 1
    return {"max_iter": max(1, iters), "max_eval": max_eval, "init_eval": init_eval, "init_size": init_size}


@dataclass(frozen=True, slots=True, kw_only=True)
class HopSkipJumpSettings(EvasionSettings):
    """The shared evasion settings (fewer samples by default: each costs ``queries``), and the
    query budget per sample."""

    samples: int = bounded(100, *SAMPLES_RANGE, integer=True)
    queries: int = bounded(1000, 100, 1_000_000, integer=True)


@register
class HopSkipJump(EvasionProbe):
    """Label-only attack; reports the measured queries per sample beside robust accuracy."""

    id: ClassVar[str] = "evasion.hopskipjump"
    aliases: ClassVar[tuple[str, ...]] = ("hopskipjump", "hsj")
    traits: ClassVar[frozenset[str]] = frozenset({"black-box"})
    settings_type: ClassVar[type[Any]] = HopSkipJumpSettings
    settings: HopSkipJumpSettings
    default: ClassVar[bool] = True
    emits: ClassVar[EmittedEvidence] = EmittedEvidence(
        title="HopSkipJump (black-box, decision-based) at one epsilon",
        metrics=("clean_accuracy", "robust_accuracy", "attack_success_rate", "mean_queries",
                 "median_adversarial_distance"),
        params=("eps", "norm", "samples", "early_stop", "queries_budget", "search_box", "max_iter",
                "max_eval", "init_eval", "init_size"),
        key=("eps", "norm"),
        flags=("non_monotone", NO_CORRECT_SAMPLES),
    )

    def applies_to(self, target: Target) -> bool:
        # The default black-box audit is for models without gradients; white-box attacks
        # are stronger where gradients exist (ask for hopskipjump by name to add it).
        return Capability.GRADIENTS not in target.capabilities

    def perturb(
        self, target: Target, x: np.ndarray, y: np.ndarray, eps: float, ctx: RunContext
    ) -> AttackOutcome:
        return self.sweep(target, x, y, ctx)[0][1]

    def sweep(
        self, target: Target, x: np.ndarray, y: np.ndarray, ctx: RunContext
    ) -> list[tuple[float, AttackOutcome, float]]:
        from art.attacks.evasion import HopSkipJump as ArtHSJ

        start = time.perf_counter()
        s = self.settings
        box = target.input_spec.clip
        if box is None:  # unbounded features: search within the data's own range
            box = (float(target.x_eval.min()), float(target.x_eval.max()))
        counter = QueryCounter(target)
        plan = schedule(s.queries)
        x_adv = x.copy()
        ctx.progress(self.id, 0, 1)
        if len(x):
            np.random.seed(ctx.seed)  # ART draws its random starts from NumPy's global state
            attack = ArtHSJ(
                classifier=blackbox_classifier(target, counter, box),
                batch_size=s.batch_size,
                targeted=False,
                norm=np.inf if s.norm == "inf" else 2,
                verbose=False,
                **plan,
            )
            x_adv = attack.generate(x=x, y=np.eye(target.model.n_classes)[y]).astype(np.float32)
            x_adv = np.nan_to_num(x_adv, nan=0.0)
        ctx.progress(self.id, 1, 1)
        fooled = target.model.predict(x_adv) != y if len(x) else np.zeros(0, dtype=bool)
        dist = perturbation_norms(x_adv - x, s.norm)
        seconds = time.perf_counter() - start
        params = {"queries_budget": s.queries, "search_box": list(box), **plan}
        metrics: dict[str, Metric] = {}
        if len(x):
            metrics["mean_queries"] = Metric(value=counter.queries / len(x), n=len(x))
            if fooled.any():
                metrics["median_adversarial_distance"] = Metric(
                    value=float(np.median(dist[fooled])), n=int(fooled.sum())
                )
        results = []
        for eps in s.eps:
            within = fooled & (dist <= eps * (1 + 1e-6))
            out = np.where(within.reshape((-1,) + (1,) * (x.ndim - 1)), x_adv, x)
            results.append(
                (eps, AttackOutcome(x_adv=out, metrics=dict(metrics), params=params),
                 seconds / len(s.eps))
            )
        return results

    def _params(self, eps: float) -> dict[str, Any]:
        return {"early_stop": True}
