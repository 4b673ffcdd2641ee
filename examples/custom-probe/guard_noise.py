"""``noise.gaussian``: accuracy under Gaussian input noise, as a Guard probe plug-in.

Random noise is the weakest perturbation there is: a model whose accuracy falls apart under
it fails without any attacker, and a worst-case (adversarial) robustness number means little
next to it (Hendrycks & Dietterich 2019, https://arxiv.org/abs/1903.12261; Ford et al. 2019,
https://arxiv.org/abs/1901.10513). At each ``sigma`` the probe adds N(0, sigma^2) noise to
every input feature, clips to the target's declared input range, and counts correct
predictions. It only calls ``target.model.predict``, so it runs on any target: torch or
scikit-learn, white-box or black-box.

One noise draw is scaled for every sigma (common random numbers), so the result at one sigma
does not depend on which other sigmas are listed, and accuracies compare across sigmas.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from guard.errors import ConfigError
from guard.evidence import Evidence
from guard.probes import EmittedEvidence, Probe, RunContext
from guard.stats import Metric
from guard.target import Target


@dataclass(frozen=True, slots=True, kw_only=True)
class GaussianNoiseSettings:
    """Noise levels (standard deviations, in input units) and how many samples to perturb."""

    sigma: tuple[float, ...] = (0.05, 0.1, 0.2)
    samples: int = 500

    def __post_init__(self) -> None:
        if not isinstance(self.sigma, tuple) or not self.sigma:
            raise ConfigError(f"sigma must be one or more numbers, got {self.sigma!r}")
        for s in self.sigma:
            if isinstance(s, bool) or not isinstance(s, int | float) or not math.isfinite(s) or s <= 0:
                raise ConfigError(f"sigma must be positive and finite, got {s!r}")
        if isinstance(self.samples, bool) or not isinstance(self.samples, int) or self.samples < 1:
            raise ConfigError(f"samples must be a positive integer, got {self.samples!r}")


class GaussianNoise(Probe):
    """Clean and noisy accuracy on the same seeded samples: one Evidence per sigma."""

    id: ClassVar[str] = "noise.gaussian"
    aliases: ClassVar[tuple[str, ...]] = ("gaussian",)
    category: ClassVar[str] = "robustness"
    settings_type: ClassVar[type[Any]] = GaussianNoiseSettings
    settings: GaussianNoiseSettings
    emits: ClassVar[EmittedEvidence] = EmittedEvidence(
        title="Accuracy under Gaussian input noise at one sigma",
        metrics=("clean_accuracy", "noisy_accuracy"),
        params=("sigma", "samples"),
        key=("sigma",),
    )

    def run(self, target: Target, ctx: RunContext) -> list[Evidence]:
        s = self.settings
        rng = np.random.default_rng(ctx.seed)  # the probe's own generator, never the global ones
        idx = np.sort(rng.permutation(len(target.y_eval))[: s.samples])
        x = np.asarray(target.x_eval[idx], dtype=np.float32)
        y = np.asarray(target.y_eval[idx])
        n = len(y)
        clean = Metric.proportion(int(np.sum(target.model.predict(x) == y)), n)
        noise = rng.standard_normal(x.shape, dtype=np.float32)
        clip = target.input_spec.clip  # None: unbounded features, nothing to clip to
        evidence = []
        for i, sigma in enumerate(s.sigma):
            ctx.progress(f"{self.id} sigma={sigma:g}", i, len(s.sigma))
            start = time.perf_counter()
            noisy = x + np.float32(sigma) * noise
            if clip is not None:
                noisy = np.clip(noisy, clip[0], clip[1])
            kept = int(np.sum(target.model.predict(noisy) == y))
            evidence.append(Evidence(
                probe=self.id,
                params={"sigma": sigma, "samples": n},
                metrics={"clean_accuracy": clean, "noisy_accuracy": Metric.proportion(kept, n)},
                seed=ctx.seed,
                duration_s=time.perf_counter() - start,
            ))
        ctx.progress(self.id, len(s.sigma), len(s.sigma))
        return evidence
