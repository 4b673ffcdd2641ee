"""The adaptive attack on feature squeezing: BPDA through the squeezers, EOT for random ones.

Squeezing is not differentiable (rounding, medians), so a gradient attack on the bare model
says little about the defended one. Backward Pass Differentiable Approximation (Athalye,
Carlini & Wagner, ICML 2018, https://arxiv.org/abs/1802.00420) runs each squeezer forward and
takes the identity as its derivative (the straight-through estimator), since the squeezed
input is close to the input; only bit depth's clipping to its range keeps its derivative.
A squeezer that draws randomness is attacked through the average gradient over
``eot_samples`` draws (Expectation over Transformation, Athalye et al. 2018,
https://arxiv.org/abs/1707.07397).

The attacker must do two things at once: change the prediction the model makes on the
transformed input, and keep the detector's score under its threshold. Runs, each on the
samples not yet bypassing the pipeline: plain BPDA PGD on the transformed input's
cross-entropy; the same with a penalty on the detector's gap above half its threshold; then,
following He et al. (WOOT 2017, https://arxiv.org/abs/1706.04701), who broke feature
squeezing this way, targeted runs that drive every view of the input (raw, each squeezed
copy, the transformed one) to the same wrong class, the closest ones first: agreeing views
leave the detector a small L1 gap. Success is decided by the real pipeline (detector and
transform in NumPy; candidates are pre-selected from the logits the step computed anyway);
a sample stops at its first bypassing iterate.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from guard.attacks.evasion.engine import Norm, StepRule, project
from guard.defenses.sanitize.squeeze import BitDepth, Squeezer, squeeze_all

Bypassed = Callable[[np.ndarray, np.ndarray], np.ndarray]
"""(x, y) -> per row, whether the pipeline serves x and its answer is not y."""

_TINY = 1e-12
Logits = tuple[torch.Tensor, list[torch.Tensor], torch.Tensor]
"""The model's logits on (the raw input, each detector squeezer's copy, the transformed input)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class AdaptiveRule:
    """One adaptive run's settings (validated by the probe that builds it)."""

    eps: float
    norm: Norm
    steps: int
    step_size: float
    clip: tuple[float, float] | None
    threshold: float
    penalty: float
    eot_samples: int
    targets: int
    batch_size: int = 500
    exact_checks: bool = False
    """Check every sample with the real pipeline at every step, not only those the logits
    pre-select (for models whose differentiable scores are not their probabilities)."""


@dataclass(slots=True)
class AdaptiveOutput:
    x_adv: np.ndarray
    bypassed: np.ndarray
    gradient_evals: int


def straight_through(x: torch.Tensor, squeezers: Sequence[Squeezer]) -> torch.Tensor:
    """The squeezed input forward; backward, the derivative of the squeezers' differentiable
    part (BPDA): a bit-depth squeezer's clipping to its range (so the attack does not push
    values out where the squeezer throws them away), the identity for everything else."""
    surrogate = x
    for squeezer in squeezers:
        if isinstance(squeezer, BitDepth):
            surrogate = surrogate.clamp(squeezer.lo, squeezer.hi)
    with torch.no_grad():
        squeezed = squeeze_all(squeezers, x.detach().cpu().numpy())
        out = torch.as_tensor(np.ascontiguousarray(squeezed), dtype=x.dtype)
    return surrogate + (out - surrogate).detach()


class Views:
    """The inputs the defended pipeline computes from x: x itself (the detector's reference),
    each detector squeezer's copy, and the transformed input the model answers on."""

    def __init__(self, detector: Sequence[Squeezer], transform: Sequence[Squeezer]) -> None:
        self.detector = tuple(detector)
        self.transform = tuple(transform)
        # the transform is one detector squeezer (the usual case): its view is computed once
        self._shared = next((i for i, s in enumerate(self.detector) if (s,) == self.transform), None)
        self.random = any(s.random for s in (*self.detector, *self.transform))

    def logits(self, module: nn.Module, x: torch.Tensor) -> Logits:
        raw = module(x).float()
        squeezed = [module(straight_through(x, (s,))).float() for s in self.detector]
        if not self.transform:
            answer = raw
        elif self._shared is not None:
            answer = squeezed[self._shared]
        else:
            answer = module(straight_through(x, self.transform)).float()
        return raw, squeezed, answer


def adaptive_loss(logits: Logits, y: torch.Tensor, t: torch.Tensor | None, rule: AdaptiveRule,
                  penalty: float) -> torch.Tensor:
    """Per-sample loss to minimise. Untargeted (``t`` None): the transformed input's
    cross-entropy on the true class, negated. Targeted: every view's cross-entropy on class
    ``t`` (He et al.: agreeing views leave the detector nothing to see). Both add ``penalty``
    times the detector's gap above half its threshold."""
    raw, squeezed, answer = logits
    if t is None:
        fit = -nn.functional.cross_entropy(answer, y, reduction="none")
    else:
        every = [raw, *squeezed, answer]
        fit = torch.stack([nn.functional.cross_entropy(z, t, reduction="none") for z in every]).mean(0)
    if not squeezed or not penalty:
        return fit
    return fit + penalty * torch.relu(detector_gap(raw, squeezed) - 0.5 * rule.threshold)


def detector_gap(raw: torch.Tensor, squeezed: list[torch.Tensor]) -> torch.Tensor:
    """The detector's score from logits: the largest L1 gap of softmax probabilities."""
    p = torch.softmax(raw, dim=1)
    return torch.stack([(p - torch.softmax(z, dim=1)).abs().sum(1) for z in squeezed]).max(0).values


def likely_bypass(logits: Logits, y: torch.Tensor, threshold: float) -> torch.Tensor:
    """What the pipeline would do, from the logits the loss already computed (confirmed with
    the real pipeline before a sample counts): answered wrongly, and not flagged."""
    raw, answer = logits[0].detach(), logits[2].detach()
    squeezed = [z.detach() for z in logits[1]]
    wrong = answer.argmax(dim=1) != y
    if not squeezed:
        return wrong
    return wrong & (detector_gap(raw, squeezed) <= threshold * (1 + 1e-4) + 1e-6)


def _descend(xa: torch.Tensor, grad: torch.Tensor, rule: AdaptiveRule) -> torch.Tensor:
    if rule.norm == "inf":
        return xa - rule.step_size * grad.sign()
    flat = grad.reshape(len(grad), -1)
    norms = flat.norm(dim=1).clamp_min(_TINY)
    stepped: torch.Tensor = xa - rule.step_size * (flat / norms[:, None]).reshape(grad.shape)
    return stepped


def closest_targets(module: nn.Module, views: Views, x: np.ndarray, y: np.ndarray, k: int,
                    batch_size: int) -> np.ndarray:
    """The k wrong classes with the highest logits on the transformed input, best first."""
    out = []
    with torch.no_grad():
        for start in range(0, len(x), batch_size):
            xb = torch.as_tensor(x[start : start + batch_size])
            yb = torch.as_tensor(y[start : start + batch_size], dtype=torch.long)
            _, _, answer = views.logits(module, xb)
            scores = answer.scatter(1, yb[:, None], float("-inf"))
            out.append(scores.topk(k, dim=1).indices.numpy())
    return np.concatenate(out) if out else np.zeros((0, k), dtype=np.int64)


def adaptive_pgd(module: nn.Module, views: Views, x: np.ndarray, y: np.ndarray, rule: AdaptiveRule,
                 bypassed: Bypassed) -> AdaptiveOutput:
    """BPDA (+EOT) projected gradient descent against the whole pipeline, every sample: an
    untargeted run, then targeted runs at the closest wrong classes on the samples left."""
    x_adv = np.array(x, dtype=np.float32, copy=True)
    done = bypassed(x_adv, y) if len(x) else np.zeros(0, dtype=bool)
    evals = 0
    k = 0
    if rule.targets and len(x):
        with torch.no_grad():
            k = min(rule.targets, int(module(torch.as_tensor(x_adv[:1])).shape[1]) - 1)
    ranked = closest_targets(module, views, x_adv, y, k, rule.batch_size) if k else None
    # (target rank or None for untargeted, penalty): the plain BPDA run first, then the
    # runs that also steer the detector's score
    plan: list[tuple[int | None, float]] = [(None, 0.0)]
    if rule.penalty:
        plan.append((None, rule.penalty))
    plan.extend((r, rule.penalty) for r in range(k))
    for rank, penalty in plan:
        idx = np.flatnonzero(~done)
        if not len(idx):
            break
        for start in range(0, len(idx), rule.batch_size):
            part = idx[start : start + rule.batch_size]
            goal = None if ranked is None or rank is None else ranked[part, rank]
            xb, hit, ev = _run_batch(module, views, x[part], y[part], goal, rule, penalty, bypassed)
            x_adv[part[hit]] = xb[hit]
            if rank is None and not penalty:  # a sample never bypassing keeps the first run's last iterate
                x_adv[part[~hit]] = xb[~hit]
            done[part[hit]] = True
            evals += ev
    return AdaptiveOutput(x_adv=x_adv, bypassed=done, gradient_evals=evals)


def _run_batch(module: nn.Module, views: Views, x: np.ndarray, y: np.ndarray, t: np.ndarray | None,
               rule: AdaptiveRule, penalty: float, bypassed: Bypassed) -> tuple[np.ndarray, np.ndarray, int]:
    step_rule = StepRule(eps=rule.eps, norm=rule.norm, steps=rule.steps, step_size=rule.step_size,
                         clip=rule.clip)
    x0 = torch.as_tensor(np.asarray(x, dtype=np.float32))
    yt = torch.as_tensor(y, dtype=torch.long)
    tt = None if t is None else torch.as_tensor(t, dtype=torch.long)
    out = x0.clone()
    hit = np.zeros(len(x), dtype=bool)
    active = np.arange(len(x))
    xa = x0.clone()
    draws = rule.eot_samples if views.random else 1
    evals = 0
    for step in range(rule.steps + 1):
        last = step == rule.steps
        sel = torch.as_tensor(active)
        xg = xa.clone().requires_grad_(not last)
        with torch.set_grad_enabled(not last):
            logits = views.logits(module, xg)
        out[sel] = xa
        keep: np.ndarray | None = None
        if step:  # the clean inputs were checked by the caller
            maybe = (np.ones(len(active), dtype=bool) if rule.exact_checks
                     else likely_bypass(logits, yt[sel], rule.threshold).numpy())
            now = np.zeros(len(active), dtype=bool)
            if maybe.any():
                now[maybe] = bypassed(xa.numpy()[maybe], y[active[maybe]])
            if now.any():
                hit[active[now]] = True
                keep = ~now
                active, xa = active[keep], xa[torch.as_tensor(keep)]
                if not len(active):
                    break
        if last:
            break
        sel_t = None if tt is None else tt[sel]
        loss = adaptive_loss(logits, yt[sel], sel_t, rule, penalty)
        (grad,) = torch.autograd.grad(loss.sum(), xg)
        for _draw in range(1, draws):  # EOT: fresh draws of the random squeezers
            xe = xg.detach().clone().requires_grad_(True)
            loss = adaptive_loss(views.logits(module, xe), yt[sel], sel_t, rule, penalty)
            (g,) = torch.autograd.grad(loss.sum(), xe)
            grad = grad + g
        evals += draws * len(sel)
        if keep is not None:
            grad = grad[torch.as_tensor(keep)]
        with torch.no_grad():
            x_start = x0[torch.as_tensor(active)]
            xa = project(_descend(xa, grad / draws, rule), x_start, step_rule).detach()
    return out.numpy(), hit, evals
