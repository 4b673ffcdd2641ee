"""Runs the probes against a target and assembles the AuditResult.

The runner owns seeding and timing and adds the cross-probe validity flags; it never
judges the evidence (that is the policy engine's job).
"""

from __future__ import annotations

import datetime as dt
import platform
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

import numpy as np

from guard import __version__
from guard.evidence import AuditResult, Evidence
from guard.probes import ProgressFn, RunContext, build_probe, no_progress
from guard.target import Capability, Target
from guard.validity import add_validity_flags

WHITEBOX_DEFAULT = ("fgsm", "pgd", "apgd")
BLACKBOX_DEFAULT = ("hopskipjump",)


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditPlan:
    """Which probes to run with which settings; None attacks means the default for the target."""

    attacks: tuple[str, ...] | None = None
    probe_settings: dict[str, Any] = field(default_factory=dict)
    seed: int = 0

    def attacks_for(self, target: Target) -> tuple[str, ...]:
        if self.attacks:
            return self.attacks
        return WHITEBOX_DEFAULT if Capability.GRADIENTS in target.capabilities else BLACKBOX_DEFAULT


def library_versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for key, dist in [("torch", "torch"), ("art", "adversarial-robustness-toolbox"),
                      ("sklearn", "scikit-learn"), ("numpy", "numpy")]:
        try:
            out[key] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[key] = None
    return out


def environment(seed: int) -> dict[str, Any]:
    return {
        "guard": __version__,
        "python": platform.python_version(),
        **library_versions(),
        "platform": platform.platform(),
        "seed": seed,
        "started_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }


def seed_everything(seed: int) -> None:
    import torch

    np.random.seed(seed)
    torch.manual_seed(seed)


def run_audit(
    target: Target,
    plan: AuditPlan,
    progress: ProgressFn = no_progress,
    evidence: Sequence[Evidence] = (),
) -> AuditResult:
    """Every planned probe on the target, in order; probes are built (validated) before any runs.

    ``evidence`` gathered before the model was loaded (file scan, signature, encryption)
    leads the result's evidence.
    """
    probes = [build_probe(name, **plan.probe_settings) for name in plan.attacks_for(target)]
    for probe in probes:
        probe.check(target)
    env = environment(plan.seed)
    start = time.perf_counter()
    evidence = list(evidence)
    for probe in probes:
        seed_everything(plan.seed)
        ctx = RunContext(seed=plan.seed, progress=progress)
        evidence.extend(probe.run(target, ctx))
    add_validity_flags(evidence)
    env["duration_s"] = round(time.perf_counter() - start, 3)
    return AuditResult(target=target.describe(), evidence=evidence, environment=env)
