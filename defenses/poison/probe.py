"""Audit probe: poisoned-sample detection on the target's training data.

It runs :func:`guard.defenses.poison.detect.detect_poison` (robust-core reclassification for a
PyTorch model, the model-free tabular rule otherwise) and reports the share of training
samples flagged, with its Wilson interval, and whether some class holds more flags than the
calibrated false-positive rate explains (a suspected backdoor target). A measurement, never a
verdict: the policy packs decide what share is acceptable.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, ClassVar

from guard.defenses.poison.thresholds import TARGET_ALPHA
from guard.errors import ConfigError
from guard.evidence import Evidence
from guard.probes import EmittedEvidence, Probe, RunContext, bounded, check_ranges, register
from guard.stats import Metric
from guard.target import Capability, Target

MAX_LISTED = 100
"""Flagged indices the evidence lists (the most suspicious first)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class DetectionSettings:
    """``layer``: the module (a dotted name from ``named_modules()``) whose input is the
    representation of a PyTorch model (default: the first ``nn.Linear`` called).
    ``threshold``: replaces the calibrated threshold (in the method's score units; then no
    false-positive rate is stated). ``target_alpha``: the level of the test naming a class a
    suspected target."""

    layer: str | None = None
    threshold: float | None = bounded(None, 0.0, 1e6)
    target_alpha: float = bounded(TARGET_ALPHA, 1e-12, 0.5)

    def __post_init__(self) -> None:
        check_ranges(self)
        if self.layer is not None and (not isinstance(self.layer, str) or not self.layer.strip()):
            raise ConfigError(f"layer must be a module name such as 'head.1', got {self.layer!r}")


@register
class PoisonDetection(Probe):
    """Score every training sample; flag those above the calibrated threshold."""

    id: ClassVar[str] = "poisoning.detection"
    aliases: ClassVar[tuple[str, ...]] = ("detect-poison",)
    category: ClassVar[str] = "poisoning"
    requires: ClassVar[frozenset[Capability]] = frozenset({Capability.TRAIN_DATA})
    settings_type: ClassVar[type[Any]] = DetectionSettings
    settings: DetectionSettings
    default: ClassVar[bool] = True
    emits: ClassVar[EmittedEvidence] = EmittedEvidence(
        title="Poisoned-sample detection on the training data",
        metrics=("suspicious_fraction", "flagged", "backdoor_detected"),
        params=("method", "representation", "threshold", "fpr", "samples", "suspected_targets",
                "flagged_indices", "flagged_truncated"),
        key=("method",),
    )

    def run(self, target: Target, ctx: RunContext) -> list[Evidence]:
        from guard.defenses.poison.detect import detect_poison

        self.check(target)
        if target.x_train is None or target.y_train is None:  # check() raised already
            return []
        s = self.settings
        ctx.progress(self.id, 0, 1)
        start = time.perf_counter()
        result = detect_poison(target.model, target.x_train, target.y_train, seed=ctx.seed,
                               layer=s.layer, threshold=s.threshold, alpha=s.target_alpha)
        ctx.progress(self.id, 1, 1)
        count = int(len(result.flagged))
        return [Evidence(
            probe=self.id,
            params={
                "method": result.method,
                "representation": result.representation,
                "threshold": result.threshold,
                "fpr": result.fpr,
                "samples": result.n,
                "suspected_targets": list(result.suspected_targets),
                "flagged_indices": result.ranked_flags(MAX_LISTED),
                "flagged_truncated": count > MAX_LISTED,
            },
            metrics={
                "suspicious_fraction": result.flagged_fraction,
                "flagged": Metric(float(count)),
                "backdoor_detected": Metric(1.0 if result.suspected_targets else 0.0),
            },
            seed=ctx.seed,
            duration_s=time.perf_counter() - start,
        )]
