"""Auto-PGD from ART: step size adapted per sample, no tuning.

Croce & Hein 2020, https://arxiv.org/abs/2003.01690 (the attack at the core of AutoAttack).
Run through ART's AutoProjectedGradientDescent on the target's differentiable module.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch

from guard.attacks.evasion.art_adapter import torch_classifier
from guard.attacks.evasion.base import AttackOutcome, EvasionProbe, evasion_evidence
from guard.attacks.evasion.engine import StepRule, project
from guard.probes import EmittedEvidence, RunContext, register
from guard.target import Capability, Target


@register
class APGD(EvasionProbe):
    """ART's AutoProjectedGradientDescent with the cross-entropy loss, one random start."""

    id: ClassVar[str] = "evasion.apgd"
    aliases: ClassVar[tuple[str, ...]] = ("apgd",)
    requires: ClassVar[frozenset[Capability]] = frozenset({Capability.GRADIENTS})
    default: ClassVar[bool] = True
    emits: ClassVar[EmittedEvidence] = evasion_evidence(
        "Auto-PGD (white-box, step-size free) at one epsilon",
        metrics=("zero_gradient_share",), params=("restarts", "loss"),
        flags=("blackbox_beats_whitebox", "single_step_beats_iterative", "gradient_masking"))

    def perturb(
        self, target: Target, x: np.ndarray, y: np.ndarray, eps: float, ctx: RunContext
    ) -> AttackOutcome:
        from art.attacks.evasion import AutoProjectedGradientDescent

        if len(x) == 0:
            return AttackOutcome(x_adv=x.copy())
        s = self.settings
        np.random.seed(ctx.seed)  # ART draws its random start from NumPy's global state
        attack = AutoProjectedGradientDescent(
            estimator=torch_classifier(target, s.batch_size),
            norm=np.inf if s.norm == "inf" else 2,
            eps=eps,
            eps_step=2 * eps if s.step_size is None else s.step_size,  # the paper's 2 * eps
            max_iter=s.steps,
            targeted=False,
            nb_random_init=1,
            batch_size=s.batch_size,
            loss_type="cross_entropy",
            verbose=False,
        )
        x_adv = attack.generate(x=x, y=np.eye(target.model.n_classes)[y]).astype(np.float32)
        # ART's float32 round-off can leave a hair outside the ball: project as Guard's PGD does
        ball = StepRule(eps=eps, norm="inf" if s.norm == "inf" else "2", steps=1, step_size=eps,
                        clip=target.input_spec.clip)
        return AttackOutcome(x_adv=project(torch.as_tensor(x_adv), torch.as_tensor(x), ball).numpy())

    def _params(self, eps: float) -> dict[str, Any]:
        return {"steps": self.settings.steps, "restarts": 1, "loss": "cross_entropy"}
