"""White-box gradient attacks run natively in torch: FGSM and Guard's PGD.

FGSM: Goodfellow et al. 2015, https://arxiv.org/abs/1412.6572.
PGD: Madry et al. 2018, https://arxiv.org/abs/1706.06083, strengthened as in
multi-targeted attacks (Gowal et al. 2019, https://arxiv.org/abs/1910.09338): samples that
survive the cross-entropy run are attacked again with a targeted logit margin against the
classes closest to them (DeepFool's linearised distance, https://arxiv.org/abs/1511.04599).
Every extra run only adds fooled samples, so the result is never weaker than plain PGD.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from guard.attacks.evasion.base import (
    AttackOutcome,
    EvasionProbe,
    EvasionSettings,
    evasion_evidence,
    zero_gradient_outcome,
)
from guard.attacks.evasion.engine import Norm, StepRule, margins, run_pgd
from guard.errors import MissingCapabilityError
from guard.probes import EmittedEvidence, RunContext, bounded, register
from guard.target import Capability, Target


def differentiable(target: Target) -> nn.Module:
    module = target.model.torch_module()
    if module is None:
        target.require("evasion", frozenset({Capability.GRADIENTS}))  # raises the one error type
        raise MissingCapabilityError(f"target {target.name!r} has no gradients")
    return module


def closest_classes(
    module: nn.Module,
    x: np.ndarray,
    y: np.ndarray,
    norm: str,
    k: int,
    batch_size: int = 500,
    candidates: int = 4,
) -> np.ndarray:
    """The k wrong classes with the smallest linearised distance |z_j - z_y| / ||grad||_dual.

    Only the ``candidates`` wrong classes with the highest logits are measured, so ranking
    costs that many backward passes, not one per class.
    """
    out = []
    for start in range(0, len(x), batch_size):
        xb = torch.as_tensor(x[start : start + batch_size]).requires_grad_(True)
        yb = torch.as_tensor(y[start : start + batch_size], dtype=torch.long)
        logits = module(xb)
        m = margins(logits.detach(), yb)  # -inf at the true class
        c = max(k, min(candidates, m.shape[1] - 1))
        cand = m.topk(c, dim=1).indices  # (n, c)
        # d(z_j - z_y)/dx for each candidate j in one batched backward pass (vmap)
        onehot = nn.functional.one_hot(cand, m.shape[1]).to(logits.dtype).permute(1, 0, 2)
        seeds = onehot - nn.functional.one_hot(yb, m.shape[1]).to(logits.dtype)[None]
        (jac,) = torch.autograd.grad(logits, xb, grad_outputs=seeds, is_grads_batched=True)
        flat = jac.reshape(c, len(yb), -1)
        dual = (flat.abs().sum(2) if norm == "inf" else flat.norm(dim=2)).T  # (n, c)
        dist = (-m.gather(1, cand)).clamp_min(0) / dual.clamp_min(1e-12)
        order = dist.argsort(dim=1)[:, :k]
        out.append(cand.gather(1, order).numpy())
    return np.concatenate(out) if out else np.zeros((0, k), dtype=np.int64)


_WHITEBOX_FLAGS = ("single_step_beats_iterative", "gradient_masking")


@dataclass(frozen=True, slots=True, kw_only=True)
class PGDSettings(EvasionSettings):
    """PGD's settings: the shared evasion ones, and how many closest classes to target."""

    targets: int = bounded(2, 0, 1000, integer=True)


@register
class FGSM(EvasionProbe):
    """One signed (L-inf) or normalised (L2) gradient step of size eps."""

    id: ClassVar[str] = "evasion.fgsm"
    aliases: ClassVar[tuple[str, ...]] = ("fgsm",)
    requires: ClassVar[frozenset[Capability]] = frozenset({Capability.GRADIENTS})
    traits: ClassVar[frozenset[str]] = frozenset({"single-step"})
    default: ClassVar[bool] = True
    emits: ClassVar[EmittedEvidence] = evasion_evidence(
        "Fast Gradient Sign Method (white-box, single step) at one epsilon",
        metrics=("zero_gradient_share",), flags=_WHITEBOX_FLAGS)

    def perturb(
        self, target: Target, x: np.ndarray, y: np.ndarray, eps: float, ctx: RunContext
    ) -> AttackOutcome:
        s = self.settings
        rule = StepRule(
            eps=eps, norm=s.norm, steps=1, step_size=eps, clip=target.input_spec.clip,  # type: ignore[arg-type]
            loss="ce", early_stop=False, batch_size=s.batch_size,
        )
        run = run_pgd(differentiable(target), x, y, rule)
        metrics, flags = zero_gradient_outcome(run.zero_grad)
        return AttackOutcome(x_adv=run.x_adv, metrics=metrics, flags=flags)

    def _params(self, eps: float) -> dict[str, Any]:
        return {"steps": 1, "step_size": eps}


@register
class PGD(EvasionProbe):
    """Cross-entropy PGD, then targeted margin runs on the survivors."""

    id: ClassVar[str] = "evasion.pgd"
    aliases: ClassVar[tuple[str, ...]] = ("pgd",)
    requires: ClassVar[frozenset[Capability]] = frozenset({Capability.GRADIENTS})
    settings_type: ClassVar[type[Any]] = PGDSettings
    settings: PGDSettings
    default: ClassVar[bool] = True
    emits: ClassVar[EmittedEvidence] = evasion_evidence(
        "Projected Gradient Descent (white-box, iterative) at one epsilon",
        metrics=("zero_gradient_share",), params=("targets",),
        flags=("blackbox_beats_whitebox", *_WHITEBOX_FLAGS))

    def perturb(
        self, target: Target, x: np.ndarray, y: np.ndarray, eps: float, ctx: RunContext
    ) -> AttackOutcome:
        s = self.settings
        module = differentiable(target)
        clip = target.input_spec.clip
        norm: Norm = "inf" if s.norm == "inf" else "2"
        k = min(s.targets, target.model.n_classes - 1)
        x_adv = x.copy()
        fooled = np.zeros(len(y), dtype=bool)
        ranked = closest_classes(module, x, y, norm, k, s.batch_size) if k else None
        quick_steps = max(10, s.steps // 4)
        quick = StepRule(
            eps=eps, norm=norm, steps=quick_steps, step_size=2.5 * eps / quick_steps,
            clip=clip, loss="targeted_margin", early_stop=True, batch_size=s.batch_size,
        )
        full = StepRule(
            eps=eps, norm=norm, steps=s.steps, step_size=s.step_for(eps), clip=clip,
            loss="ce", early_stop=s.early_stop, batch_size=s.batch_size,
        )
        zero_grad = np.zeros(0, dtype=bool)
        # Targeted run against the closest class first (cheap, and fools most), then
        # plain cross-entropy PGD on what is left, then the next closest classes.
        plan: list[tuple[StepRule, int | None]] = []
        if ranked is not None:
            plan.append((quick, 0))
        plan.append((full, None))
        plan.extend((quick, r) for r in range(1, k))
        for rule, rank in plan:
            idx = np.flatnonzero(~fooled)
            if not len(idx):
                break
            goal = None if ranked is None or rank is None else ranked[idx, rank]
            run = run_pgd(module, x[idx], y[idx], rule, targets=goal)
            if not len(zero_grad):  # the first run sees every attacked sample
                zero_grad = run.zero_grad
            x_adv[idx[run.fooled]] = run.x_adv[run.fooled]
            fooled[idx[run.fooled]] = True
        metrics, flags = zero_gradient_outcome(zero_grad)
        return AttackOutcome(x_adv=x_adv, metrics=metrics, flags=flags)

    def _params(self, eps: float) -> dict[str, Any]:
        return {**super()._params(eps), "targets": self.settings.targets}
