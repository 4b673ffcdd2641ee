"""Whether a trained model already carries a backdoor: Neural Cleanse on clean data only.

Neural Cleanse (Wang et al. 2019, https://people.cs.uchicago.edu/~ravenben/publications/pdf/backdoor-sp19.pdf):
a backdoor is a shortcut, a small input change that sends inputs of every class to one target
class. For each class c the scan reverse-engineers the smallest such change, a mask m (values
in [0, 1], one per pixel shared across channels, or one per feature) and a pattern p (inside
the declared input range), minimising ``CE(f((1 - m) x + m p), c) + cost_c * |m|_1`` over
clean inputs x. A class reached by a far smaller mask than the others is the mark of a
backdoor: with the median absolute deviation of the masks' L1 norms, the anomaly index of c is
``(median - L1_c) / (1.4826 * MAD)``, and a class above the threshold (2 in the paper) is
flagged.

Guard floors the MAD at ``mad_floor`` (0.25) times the median. With ten classes the MAD is itself
a median of ten numbers; on clean models it falls to a few percent of the median, and the
paper's index then flags a class only a little smaller than the rest (digit 3 is a natural
shortcut on the digits CNN). In 40 scans of 30 clean digits CNNs the paper's index passed 2 in
7, the floored one in none (at most 1.64), while it still flagged all 30 scans of 20 CNNs with
a 10% BadNets backdoor (at least 2.42), with the right class. With the floor a class must also
have less than half the median mask norm to pass a threshold of 2.
``mad_floor = 0`` gives the paper's index.

All classes are optimised at once, as one batched tensor, each with the paper's cost schedule
(up while the trigger works, down while it fails); a class stops once its smallest working mask
stops shrinking. Masks are fitted on part of the clean samples; the smallest is measured on the
rest, as the share of held-out inputs of other classes it sends to its class.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from guard.attacks.evasion.base import choose_samples
from guard.errors import ConfigError, MissingCapabilityError
from guard.evidence import Evidence
from guard.probes import EmittedEvidence, Probe, RunContext, bounded, check_ranges, register
from guard.stats import Metric
from guard.target import Capability, Target

MAD_CONSISTENCY = 1.4826
"""Scales the median absolute deviation to the standard deviation of a normal distribution."""
EPOCH = 10
"""Optimisation steps between two looks at each class's attack success (the paper's epoch)."""
COST_UP, COST_DOWN = 1.5, 1.5**1.5
"""The paper's cost multipliers: up after ``patience`` working epochs, down after failing ones."""
CHECK_SAMPLES = 256
"""Fitting samples each epoch's success is measured on (the same ones every epoch)."""
MIN_CLASSES = 3
"""Fewer classes have no median to stand out from."""
IMPROVEMENT = 0.99
"""A class's best mask counts as shrinking while it falls below this share of its earlier best."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelScanSettings:
    """``clean_samples``: clean evaluation samples used, of which a ``holdout`` share measures
    the trigger; ``max_steps``: most optimisation steps (Adam, ``lr``); ``scan_batch``: clean inputs
    per step (every class sees the same ones); ``init_cost``: the L1 weight each class starts
    with; ``success``: the attack success a mask must reach to count; ``patience``: epochs of
    unchanged outcome before the cost moves, and (twice that) before a class stops;
    ``threshold``: the anomaly index above which a class is flagged; ``mad_floor``: the least
    MAD, as a share of the median mask norm."""

    clean_samples: int = bounded(300, 10, 10_000_000, integer=True)
    holdout: float = bounded(0.3, 0.05, 0.9)
    max_steps: int = bounded(600, 10, 100_000, integer=True)
    lr: float = bounded(0.1, 1e-6, 100.0)
    scan_batch: int = bounded(32, 1, 100_000, integer=True)
    init_cost: float = bounded(1e-2, 1e-9, 1e3)
    success: float = bounded(0.99, 0.5, 1.0)
    patience: int = bounded(3, 1, 1000, integer=True)
    threshold: float = bounded(2.0, 0.1, 1000.0)
    mad_floor: float = bounded(0.25, 0.0, 10.0)

    def __post_init__(self) -> None:
        check_ranges(self)


@dataclass(frozen=True, slots=True)
class ReversedTriggers:
    """Per class: the smallest mask found that reached the success share (else the last one),
    its pattern and its L1 norm; and the optimisation steps run."""

    masks: np.ndarray  # (K, *mask_shape)
    patterns: np.ndarray  # (K, *sample_shape)
    l1: np.ndarray  # (K,)
    steps: int


def anomaly_indices(l1: np.ndarray, mad_floor: float) -> np.ndarray:
    """``(median - L1_c) / max(1.4826 * MAD, mad_floor * median)``: positive for masks smaller
    than the median; ``mad_floor`` 0 is the paper's index."""
    median = float(np.median(l1))
    mad = MAD_CONSISTENCY * float(np.median(np.abs(l1 - median)))
    floor = max(mad_floor, 1e-6) * max(median, 1e-12)  # ties: a differing class is far out, not infinite
    out: np.ndarray = (median - l1) / max(mad, floor)
    return out


def _bounds(target: Target, x: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """The pattern's range: the declared clip, else each feature's range in the clean data."""
    clip = target.input_spec.clip
    if clip is not None:
        return torch.tensor(float(clip[0])), torch.tensor(float(clip[1]))
    return torch.as_tensor(x.min(axis=0)), torch.as_tensor(x.max(axis=0))


def mask_shape(sample_shape: tuple[int, ...]) -> tuple[int, ...]:
    """One value per pixel shared across channels for (C, H, W) samples, else per feature."""
    return (1, *sample_shape[1:]) if len(sample_shape) == 3 else sample_shape


def _decode(mask_raw: torch.Tensor, pattern_raw: torch.Tensor, lo: torch.Tensor,
            span: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mask in [0, 1] and pattern in [lo, lo + span] from unconstrained parameters (tanh)."""
    return torch.tanh(mask_raw) / 2 + 0.5, lo + span * (torch.tanh(pattern_raw) / 2 + 0.5)


def _stamped_logits(module: nn.Module, mask: torch.Tensor, pattern: torch.Tensor, x: torch.Tensor,
                    y: torch.Tensor, live: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits (a, b, K) of the b inputs stamped with each of the a classes' triggers, and
    which inputs are not already of that class (a, b): only those count."""
    x_adv = (1 - mask[:, None]) * x[None] + (mask * pattern)[:, None]  # (a, b, *shape)
    logits = module(x_adv.reshape(-1, *x.shape[1:])).reshape(len(live), len(y), -1)
    return logits, (y[None] != live[:, None]).float()


def reverse_triggers(module: nn.Module, x: np.ndarray, y: np.ndarray, n_classes: int,
                     bounds: tuple[torch.Tensor, torch.Tensor], s: ModelScanSettings,
                     gen: torch.Generator, progress: Callable[[int, int], None]) -> ReversedTriggers:
    """Neural Cleanse's optimisation for every class at once (Adam on tanh-parametrised mask
    and pattern, the paper's cost schedule per class, a class stops once its best working
    mask has not shrunk by 1% for ``2 * patience`` epochs after its cost went both ways)."""
    k, shape = n_classes, x.shape[1:]
    lo, span = bounds[0].float(), (bounds[1] - bounds[0]).float()
    xt, yt = torch.as_tensor(x, dtype=torch.float32), torch.as_tensor(y, dtype=torch.long)
    mask_raw = (torch.rand((k, *mask_shape(shape)), generator=gen) * 2 - 1).requires_grad_(True)
    pattern_raw = (torch.rand((k, *shape), generator=gen) * 2 - 1).requires_grad_(True)
    opt = torch.optim.Adam([mask_raw, pattern_raw], lr=s.lr, betas=(0.5, 0.9))
    classes, cost, best_l1 = torch.arange(k), torch.full((k,), s.init_cost), torch.full((k,), math.inf)
    best_mask, best_pattern = torch.zeros_like(mask_raw), torch.zeros_like(pattern_raw)
    stale, works, fails = (torch.zeros(k, dtype=torch.long) for _ in range(3))
    went_up, went_down = torch.zeros(k, dtype=torch.bool), torch.zeros(k, dtype=torch.bool)
    active = torch.ones(k, dtype=torch.bool)
    xc, yc = xt[:CHECK_SAMPLES], yt[:CHECK_SAMPLES]
    step = 0
    while step < s.max_steps and bool(active.any()):
        idx = torch.randint(len(yt), (min(s.scan_batch, len(yt)),), generator=gen)
        live = classes[active]
        mask, pattern = _decode(mask_raw[live], pattern_raw[live], lo, span)
        logits, other = _stamped_logits(module, mask, pattern, xt[idx], yt[idx], live)
        goal = live[:, None].expand_as(other)
        ce = nn.functional.cross_entropy(logits.transpose(1, 2), goal, reduction="none")
        l1 = mask.reshape(len(live), -1).sum(1)
        loss = ((ce * other).sum(1) / other.sum(1).clamp_min(1) + cost[live] * l1).sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[no-untyped-call]
        opt.step()
        step += 1
        progress(step, s.max_steps)
        if step % EPOCH:
            continue
        with torch.no_grad():  # the paper's epoch bookkeeping, for every live class at once
            mask, pattern = _decode(mask_raw[live], pattern_raw[live], lo, span)
            logits, other = _stamped_logits(module, mask, pattern, xc, yc, live)
            hits = ((logits.argmax(2) == live[:, None]).float() * other).sum(1)
            ok = hits >= s.success * other.sum(1).clamp_min(1)
            l1 = mask.reshape(len(live), -1).sum(1)
            improved = ok & (l1 < IMPROVEMENT * best_l1[live])
            better = ok & (l1 < best_l1[live])
            keep = live[better]
            best_mask[keep], best_pattern[keep], best_l1[keep] = mask[better], pattern[better], l1[better]
            stale[live] = torch.where(improved | ~torch.isfinite(best_l1[live]), 0, stale[live] + 1)
            works[live] = torch.where(ok, works[live] + 1, 0)
            fails[live] = torch.where(ok, 0, fails[live] + 1)
            up, down = live[works[live] >= s.patience], live[fails[live] >= s.patience]
            cost[up] *= COST_UP
            cost[down] /= COST_DOWN
            works[up], fails[down] = 0, 0
            went_up[up], went_down[down] = True, True
            active &= ~(went_up & went_down & (stale >= 2 * s.patience))
    with torch.no_grad():
        reached = torch.isfinite(best_l1)
        last_mask, last_pattern = _decode(mask_raw, pattern_raw, lo, span)
        masks = torch.where(reached.view(-1, *[1] * (mask_raw.ndim - 1)), best_mask, last_mask)
        patterns = torch.where(reached.view(-1, *[1] * len(shape)), best_pattern, last_pattern)
        l1_all = masks.reshape(k, -1).sum(1)
    return ReversedTriggers(masks.numpy(), patterns.numpy(), l1_all.numpy().astype(np.float64), step)


def _trigger_record(c: int, found: ReversedTriggers, sample_shape: tuple[int, ...]) -> dict[str, Any]:
    """The reversed trigger of class c as a flat list plus its shape (the report draws it):
    for images the mask per pixel and the pattern averaged over channels."""
    mask = found.masks[c].reshape(-1)
    pattern = found.patterns[c]
    if len(sample_shape) == 3:
        shape, pattern = list(sample_shape[1:]), pattern.mean(axis=0)
    else:
        shape = [int(np.prod(sample_shape))]
    return {"class": c, "shape": [int(v) for v in shape],
            "mask": [round(float(v), 3) for v in mask],
            "pattern": [round(float(v), 3) for v in pattern.reshape(-1)]}


@register
class ModelScan(Probe):
    """Neural Cleanse: one reversed trigger per class, the anomaly index of their sizes."""

    id: ClassVar[str] = "poisoning.model_scan"
    aliases: ClassVar[tuple[str, ...]] = ("backdoor-scan",)
    category: ClassVar[str] = "poisoning"
    requires: ClassVar[frozenset[Capability]] = frozenset({Capability.GRADIENTS})
    settings_type: ClassVar[type[Any]] = ModelScanSettings
    settings: ModelScanSettings
    default: ClassVar[bool] = True
    emits: ClassVar[EmittedEvidence] = EmittedEvidence(
        title="Model-level backdoor scan (reverse-engineered minimal trigger per class, no training data)",
        metrics=("backdoor_detected", "anomaly_index", "trigger_success"),
        params=("method", "samples", "steps", "threshold", "suspected_target", "anomaly_indices",
                "mask_norms", "trigger"),
        key=("method",),
    )

    def check(self, target: Target) -> None:
        """Gradients, and at least three classes: the scan compares the classes' triggers
        with their median (of two, neither is ever an outlier)."""
        super().check(target)
        if target.model.n_classes < MIN_CLASSES:
            raise ConfigError(f"{self.id} compares the classes' triggers and needs at least "
                              f"{MIN_CLASSES} classes; target {target.name!r} has {target.model.n_classes}")

    def applies_to(self, target: Target) -> bool:
        return super().applies_to(target) and target.model.n_classes >= MIN_CLASSES

    def run(self, target: Target, ctx: RunContext) -> list[Evidence]:
        self.check(target)
        module = target.model.torch_module()
        if module is None:  # check() has refused it already; this keeps the type checker honest
            raise MissingCapabilityError(f"target {target.name!r} has no gradients")
        start = time.perf_counter()
        s, k = self.settings, target.model.n_classes
        idx = choose_samples(len(target.y_eval), s.clean_samples, ctx.seed)
        x = np.asarray(target.x_eval[idx], dtype=np.float32)
        y = np.asarray(target.y_eval[idx], dtype=np.int64)
        order = np.random.default_rng(ctx.seed).permutation(len(y))
        n_hold = min(len(y) - 1, max(1, round(s.holdout * len(y))))
        fit, hold = order[n_hold:], order[:n_hold]
        gen = torch.Generator().manual_seed(ctx.seed)

        def progress(done: int, total: int) -> None:
            if done % (10 * EPOCH) == 0:
                ctx.progress(self.id, done, total)

        found = reverse_triggers(module, x[fit], y[fit], k, _bounds(target, x), s, gen, progress)
        ctx.progress(self.id, s.max_steps, s.max_steps)
        scores = anomaly_indices(found.l1, s.mad_floor)
        flagged = bool(scores.max() > s.threshold)
        smallest = int(np.argmax(scores))  # the smallest mask: the suspect when one is flagged
        return [Evidence(
            probe=self.id,
            params={
                "method": "neural_cleanse",
                "samples": int(len(y)),
                "steps": found.steps,
                "threshold": s.threshold,
                "suspected_target": smallest if flagged else None,
                "anomaly_indices": [round(float(v), 3) for v in scores],
                "mask_norms": [round(float(v), 3) for v in found.l1],
                "trigger": _trigger_record(smallest, found, x.shape[1:]),
            },
            metrics={
                "backdoor_detected": Metric(1.0 if flagged else 0.0),
                "anomaly_index": Metric(round(float(scores.max()), 6)),
                "trigger_success": self._success(module, found, smallest, x[hold], y[hold]),
            },
            seed=ctx.seed,
            duration_s=time.perf_counter() - start,
        )]

    @staticmethod
    def _success(module: nn.Module, found: ReversedTriggers, c: int, x: np.ndarray,
                 y: np.ndarray) -> Metric:
        """The share of held-out inputs not of class c that the reversed trigger sends to c."""
        x = x[y != c]
        if not len(x):
            return Metric(math.nan, n=0)
        mask, pattern = found.masks[c], found.patterns[c]
        stamped = torch.as_tensor((1 - mask) * x + mask * pattern, dtype=torch.float32)
        with torch.no_grad():
            hits = int((module(stamped).argmax(1) == c).sum())
        return Metric.proportion(hits, len(x))
