"""Native torch projected gradient descent with the bookkeeping that makes audits fast.

The update is the one of Madry et al. 2018 (https://arxiv.org/abs/1706.06083): a signed
(L-inf) or normalised (L2) gradient step, projection onto the epsilon ball, clipping to the
declared input range. What differs from a plain loop is only bookkeeping:

* a sample leaves the batch at the first step where it is misclassified and keeps that
  adversarial input (early stopping), so the set of fooled samples can only grow compared
  with returning the last iterate; the forward pass that computes the gradient also
  decides success, so the check costs nothing;
* losses: cross-entropy (what ART's PGD maximises), the untargeted logit margin, or a
  targeted logit margin (Carlini & Wagner 2017, https://arxiv.org/abs/1608.04644).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch import nn

Norm = Literal["inf", "2"]
Loss = Literal["ce", "margin", "targeted_margin"]
_TINY = 1e-12


@dataclass(frozen=True, slots=True, kw_only=True)
class StepRule:
    """One projected-gradient run's settings; validated by the probe that builds it."""

    eps: float
    norm: Norm
    steps: int
    step_size: float
    clip: tuple[float, float] | None
    loss: Loss = "ce"
    early_stop: bool = True
    batch_size: int = 500


@dataclass(slots=True)
class RunOutput:
    x_adv: np.ndarray
    fooled: np.ndarray  # misclassified at x_adv according to the module
    zero_grad: np.ndarray  # gradient exactly zero (or not finite) at the first step
    gradient_evals: int


def margins(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """z_j - z_y for every class j, with -inf at j = y (shape: n x classes)."""
    true = logits.gather(1, y[:, None])
    out = logits - true
    return out.scatter(1, y[:, None], float("-inf"))


def _loss(logits: torch.Tensor, y: torch.Tensor, t: torch.Tensor | None, kind: Loss) -> torch.Tensor:
    """Per-sample loss to maximise."""
    if kind == "ce":
        return nn.functional.cross_entropy(logits, y, reduction="none")
    if kind == "margin":
        return margins(logits, y).max(dim=1).values
    if t is None:
        raise ValueError("targeted_margin needs target classes")
    return logits.gather(1, t[:, None]).squeeze(1) - logits.gather(1, y[:, None]).squeeze(1)


def _step(xa: torch.Tensor, grad: torch.Tensor, rule: StepRule) -> torch.Tensor:
    if rule.norm == "inf":
        return xa + rule.step_size * grad.sign()
    flat = grad.reshape(len(grad), -1)
    norms = flat.norm(dim=1).clamp_min(_TINY)
    stepped: torch.Tensor = xa + rule.step_size * (flat / norms[:, None]).reshape(grad.shape)
    return stepped


def project(xa: torch.Tensor, x0: torch.Tensor, rule: StepRule) -> torch.Tensor:
    """Back into the epsilon ball around x0, then into the declared input range."""
    delta = xa - x0
    if rule.norm == "inf":
        delta = delta.clamp(-rule.eps, rule.eps)
    else:
        flat = delta.reshape(len(delta), -1)
        norms = flat.norm(dim=1).clamp_min(_TINY)
        factor = (rule.eps / norms).clamp(max=1.0)
        delta = (flat * factor[:, None]).reshape(delta.shape)
    out = x0 + delta
    if rule.clip is not None:
        out = out.clamp(rule.clip[0], rule.clip[1])
    return out


def run_pgd(
    module: nn.Module,
    x: np.ndarray,
    y: np.ndarray,
    rule: StepRule,
    targets: np.ndarray | None = None,
) -> RunOutput:
    """Projected gradient ascent on ``rule.loss`` for every sample, batch by batch."""
    x_adv = np.array(x, dtype=np.float32, copy=True)
    fooled = np.zeros(len(x), dtype=bool)
    zero_grad = np.zeros(len(x), dtype=bool)
    evals = 0
    for start in range(0, len(x), rule.batch_size):
        sl = slice(start, start + rule.batch_size)
        t = None if targets is None else torch.as_tensor(targets[sl], dtype=torch.long)
        xb, fb, zb, ev = _run_batch(
            module,
            torch.as_tensor(x_adv[sl]),
            torch.as_tensor(y[sl], dtype=torch.long),
            t,
            rule,
        )
        x_adv[sl], fooled[sl], zero_grad[sl] = xb, fb, zb
        evals += ev
    return RunOutput(x_adv=x_adv, fooled=fooled, zero_grad=zero_grad, gradient_evals=evals)


def _run_batch(
    module: nn.Module,
    x0: torch.Tensor,
    y: torch.Tensor,
    t: torch.Tensor | None,
    rule: StepRule,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    n = len(x0)
    out = x0.clone()
    fooled = torch.zeros(n, dtype=torch.bool)
    zero_grad = torch.zeros(n, dtype=torch.bool)
    active = torch.arange(n)
    # per-active views, re-indexed only when some sample leaves
    xa, x0a, ya, ta = x0.clone(), x0, y, t
    evals = 0
    for step in range(rule.steps + 1):
        last = step == rule.steps
        xa.requires_grad_(not last)
        with torch.set_grad_enabled(not last):
            logits = module(xa)
        keep: torch.Tensor | None = None
        if rule.early_stop or last:
            hit = logits.detach().argmax(dim=1) != ya
            if bool(hit.any()):
                out[active[hit]] = xa.detach()[hit]
                fooled[active[hit]] = True
                keep = ~hit
            if last:
                break
            if rule.early_stop and keep is not None and not bool(keep.any()):
                break
        loss = _loss(logits, ya, ta, rule.loss)
        (grad,) = torch.autograd.grad(loss.sum(), xa)
        evals += len(active)
        if step == 0:
            flat = grad.reshape(len(grad), -1)
            zero_grad[active] = (flat.abs().sum(dim=1) == 0) | ~torch.isfinite(flat).all(dim=1)
        with torch.no_grad():
            nxt = project(_step(xa.detach(), grad, rule), x0a, rule)
        if keep is not None:
            active, nxt, x0a, ya = active[keep], nxt[keep], x0a[keep], ya[keep]
            ta = None if ta is None else ta[keep]
        xa = nxt.detach()
    # samples never fooled (all still active) keep their last iterate, as a plain loop returns
    unfooled = ~fooled[active]
    out[active[unfooled]] = xa.detach()[unfooled]
    return out.numpy(), fooled.numpy(), zero_grad.numpy(), evals
