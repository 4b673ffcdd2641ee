"""Audit probe ``defense.sanitization``: feature squeezing, measured by attacking it twice.

A defense is only as strong as the best attack on it (Carlini et al. 2019, "On Evaluating
Adversarial Robustness", https://arxiv.org/abs/1902.06705), so the probe reports the
non-adaptive result beside the adaptive one:

1. the audit data is split (seeded) into a clean calibration part and a disjoint evaluation
   part; the evaluation part is the sample :mod:`guard.attacks.evasion` probes draw with the
   same seed and size, so the numbers compare with ``evasion.pgd``'s;
2. the squeezers (bit depth; with ``median_size``, a median filter for image rows, off by
   default: on 8x8 digits a 2x2 median changes a third of clean predictions, which leaves
   the detector a threshold near its maximum) and the detector are built, and the
   detector's threshold is calibrated at ``fpr`` on the calibration part;
3. non-adaptive: Guard's PGD (:func:`~guard.attacks.evasion.engine.run_pgd`, cross-entropy,
   last iterate) against the bare model; then the detection rate among the attacks that
   fooled the bare model, the false-positive rate on clean evaluation inputs, and the robust
   accuracy of the sanitized pipeline (a flagged input counts as stopped);
4. adaptive: BPDA (+EOT for random squeezers) PGD against the whole pipeline
   (:mod:`guard.defenses.sanitize.bpda`), with the same three kinds of numbers;
5. one Evidence per epsilon. ``adaptive_breaks_defense`` is flagged when the adaptive
   robust accuracy is clearly (paired 95% interval above 0, by at least 5 points) below the
   non-adaptive one: the non-adaptive number overstates the defense.

Clean accuracy of the sanitized pipeline counts a flagged clean input as not served
correctly (a false positive costs the user an answer); robust accuracy counts a flagged
input as stopped, as the detection literature does.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from guard.attacks.evasion.base import (
    BATCH_RANGE,
    EPS_RANGE,
    SAMPLES_RANGE,
    STEPS_RANGE,
    check_threat_model,
    perturbation_norms,
)
from guard.defenses.sanitize.detect import SqueezeDetector, calibration_minimum
from guard.defenses.sanitize.sanitizer import Sanitizer
from guard.defenses.sanitize.squeeze import BitDepth, MedianSmooth, Squeezer, applicable
from guard.defenses.sanitize.validate import DEFAULT_MAX_ROWS, InputValidator
from guard.errors import ConfigError, DataError
from guard.evidence import Evidence, Flag
from guard.probes import EmittedEvidence, Probe, RunContext, bounded, register
from guard.stats import Metric, paired_difference
from guard.target import Capability, Target

TRANSFORMS = ("bits", "median", "all", "none")
BREAK_MARGIN = 0.05
"""How far below the non-adaptive robust accuracy the adaptive one must lie (and its paired
interval above zero) for ``adaptive_breaks_defense``."""
_BUDGET_SLACK = 1e-5
ADAPTIVE_BREAKS = "adaptive_breaks_defense"
ADAPTIVE_WEAKER = "adaptive_weaker_than_nonadaptive"
NO_ADVERSARIAL = "no_adversarial_examples"


@dataclass(frozen=True, slots=True, kw_only=True)
class SanitizationSettings:
    """``eps``, ``norm``, ``steps``, ``step_size``, ``samples``, ``batch_size``: as for the
    evasion probes (``samples`` evaluation inputs). ``calibration_samples``: the clean inputs
    the threshold is set on (disjoint from the evaluation ones). ``fpr``: the false-positive
    rate it is calibrated to. ``bits`` (0: off) and ``median_size`` (0: off; image rows only):
    the squeezers. ``transform``: which squeezers the model answers through (``bits``,
    ``median``, ``all`` of them in that order, or ``none``: the detector alone). The adaptive
    attack: ``targets`` closest wrong classes tried in turn (0: untargeted), ``penalty`` on
    the detector's gap, ``eot_samples`` gradient draws per step when a squeezer is random.
    The seed is the audit's (``--seed``)."""

    eps: tuple[float, ...] = bounded((0.1,), *EPS_RANGE)
    norm: str = "inf"
    steps: int = bounded(40, *STEPS_RANGE, integer=True)
    step_size: float | None = bounded(None, *EPS_RANGE)
    samples: int = bounded(200, *SAMPLES_RANGE, integer=True)
    calibration_samples: int = bounded(200, 1, 10_000_000, integer=True)
    batch_size: int = bounded(500, *BATCH_RANGE, integer=True)
    fpr: float = bounded(0.05, 1e-4, 0.5)
    bits: int = bounded(4, 0, 24, integer=True)
    median_size: int = bounded(0, 0, 64, integer=True)
    transform: str = "bits"
    targets: int = bounded(2, 0, 1000, integer=True)
    penalty: float = bounded(10.0, 0.0, 1e6)
    eot_samples: int = bounded(8, 1, 10_000, integer=True)

    def __post_init__(self) -> None:
        check_threat_model(self)
        if self.transform not in TRANSFORMS:
            raise ConfigError(f"transform must be one of {', '.join(TRANSFORMS)}, got {self.transform!r}")
        if self.bits == 0 and self.median_size == 0:
            raise ConfigError("bits and median_size are both 0: switch on at least one squeezer")
        if self.median_size == 1:
            raise ConfigError("median_size must be 0 (off) or from 2 to 64, got 1 (a 1x1 median changes "
                              "nothing)")
        if self.transform == "bits" and self.bits == 0:
            raise ConfigError("transform 'bits' needs bits > 0")
        if self.transform == "median" and self.median_size == 0:
            raise ConfigError("transform 'median' needs median_size > 0")

    def step_for(self, eps: float) -> float:
        """Madry et al.'s rule of thumb, 2.5 * eps / steps, unless given."""
        return self.step_size if self.step_size is not None else 2.5 * eps / self.steps


@dataclass(slots=True)
class Defense:
    """The squeezers, the calibrated detector and the sanitizer one measurement attacks."""

    detector: SqueezeDetector
    transform: tuple[Squeezer, ...]
    sanitizer: Sanitizer
    skipped: list[str]

    @property
    def threshold(self) -> float:
        return float(self.detector.threshold if self.detector.threshold is not None else 0.0)


@dataclass(slots=True)
class Outcome:
    """Per evaluation sample: flagged by the detector, answered correctly after the transform."""

    flagged: np.ndarray
    correct: np.ndarray

    @property
    def robust(self) -> np.ndarray:
        stopped_or_right: np.ndarray = self.flagged | self.correct
        return stopped_or_right

    @property
    def bypassed(self) -> np.ndarray:
        served_wrong: np.ndarray = ~self.flagged & ~self.correct
        return served_wrong


@register
class SanitizationProbe(Probe):
    """Feature squeezing (detector + transform) against non-adaptive and adaptive PGD."""

    id: ClassVar[str] = "defense.sanitization"
    aliases: ClassVar[tuple[str, ...]] = ("sanitization", "squeeze")
    category: ClassVar[str] = "defense"
    default: ClassVar[bool] = True
    requires: ClassVar[frozenset[Capability]] = frozenset({Capability.GRADIENTS})
    settings_type: ClassVar[type[Any]] = SanitizationSettings
    settings: SanitizationSettings
    emits: ClassVar[EmittedEvidence] = EmittedEvidence(
        title="Input sanitization (feature squeezing) against non-adaptive and adaptive (BPDA) PGD "
              "at one epsilon",
        metrics=("detection_tpr", "detection_fpr", "robust_accuracy_undefended",
                 "robust_accuracy_nonadaptive", "robust_accuracy_adaptive", "bypass_rate_adaptive",
                 "detection_tpr_adaptive", "clean_accuracy_sanitized", "clean_accuracy"),
        params=("eps", "norm", "samples", "fpr", "threshold", "squeezers", "transform", "skipped_squeezers",
                "calibration_samples", "steps", "step_size", "targets", "penalty", "eot_samples"),
        key=("eps", "norm"),
        flags=(ADAPTIVE_BREAKS, ADAPTIVE_WEAKER, NO_ADVERSARIAL),
    )

    # -- what is attacked --------------------------------------------------------------------

    def squeezers(self, target: Target, x_reference: np.ndarray) -> tuple[list[Squeezer], list[Squeezer]]:
        """(detector squeezers, transform squeezers) before the row-shape check. Bit depth
        works within the declared input range, else within the reference data's range."""
        s = self.settings
        lo, hi = squeeze_range(target, x_reference)
        bits: Squeezer | None = BitDepth(s.bits, lo, hi) if s.bits else None
        median: Squeezer | None = MedianSmooth(s.median_size) if s.median_size else None
        detector = [q for q in (bits, median) if q is not None]
        chosen = {"bits": [bits], "median": [median], "all": [bits, median], "none": []}[s.transform]
        return detector, [q for q in chosen if q is not None]

    def build_defense(self, target: Target, x_cal: np.ndarray, max_rows: int) -> Defense:
        detector_all, transform_all = self.squeezers(target, x_cal)
        shape = tuple(target.input_spec.shape)
        detector_sq, skipped = applicable(detector_all, shape)
        transform_sq, _ = applicable(transform_all, shape)
        if not detector_sq:
            raise ConfigError(f"{self.id}: no squeezer applies to rows of shape {shape}: "
                              + "; ".join(skipped))
        if transform_all and not transform_sq:
            raise ConfigError(f"{self.id}: transform {self.settings.transform!r} does not apply to rows of "
                              f"shape {shape}: " + "; ".join(skipped))
        detector = SqueezeDetector(target.model, detector_sq, self.settings.fpr).calibrate(x_cal)
        clip = target.input_spec.clip
        validator = InputValidator(shape, "float32", None if clip is None else clip[0],
                                   None if clip is None else clip[1], max_rows)
        sanitizer = Sanitizer(validator, transform_sq, detector, transform=bool(transform_sq))
        return Defense(detector, tuple(transform_sq), sanitizer, skipped)

    # -- the run -----------------------------------------------------------------------------

    def check(self, target: Target) -> None:
        """The target has gradients, and no budget exceeds the declared input range."""
        super().check(target)
        clip = target.input_spec.clip
        if clip is None:
            return
        span = clip[1] - clip[0]
        widest = span if self.settings.norm == "inf" else span * math.sqrt(math.prod(target.input_spec.shape))
        for eps in self.settings.eps:
            if eps > widest * (1 + 1e-9):
                raise ConfigError(f"{self.id}: eps {eps:g} is larger than the declared input range "
                                  f"[{clip[0]:g}, {clip[1]:g}] allows in the {self.settings.norm} norm "
                                  f"(at most {widest:g})")

    def run(self, target: Target, ctx: RunContext) -> list[Evidence]:
        from guard.attacks.evasion.gradient import differentiable

        self.check(target)
        module = differentiable(target)
        s = self.settings
        started = time.perf_counter()
        ev_idx, cal_idx = split(len(target.y_eval), s.samples, s.calibration_samples, s.fpr, ctx.seed,
                                self.id)
        x_all = np.asarray(target.x_eval, dtype=np.float32)
        x, y = x_all[ev_idx], np.asarray(target.y_eval)[ev_idx]
        x_cal = x_all[cal_idx]
        ctx.progress(f"{self.id} calibrating", 0, len(s.eps) + 1)
        defense = self.build_defense(target, x_cal, max(DEFAULT_MAX_ROWS, len(x_all), s.batch_size))
        clean = self.outcome(target, defense, x, y)
        bare_correct = target.model.predict(x) == y
        setup_share = (time.perf_counter() - started) / len(s.eps)
        evidence = []
        for i, eps in enumerate(s.eps):
            ctx.progress(f"{self.id} eps={eps:g}", i + 1, len(s.eps) + 1)
            start = time.perf_counter()
            found = self.measure(target, module, defense, x, y, eps, clean, bare_correct, ctx.seed)
            found.duration_s = setup_share + time.perf_counter() - start
            evidence.append(found)
        ctx.progress(self.id, len(s.eps) + 1, len(s.eps) + 1)
        return evidence

    def outcome(self, target: Target, defense: Defense, x: np.ndarray, y: np.ndarray) -> Outcome:
        """What the defended pipeline does with each input (batched)."""
        flagged, correct = [], []
        step = max(1, self.settings.batch_size)
        for start in range(0, len(x), step):
            screening = defense.sanitizer.screen(x[start : start + step])
            flagged.append(screening.flagged)
            correct.append(target.model.predict(screening.x) == y[start : start + step])
        if not flagged:
            return Outcome(np.zeros(0, dtype=bool), np.zeros(0, dtype=bool))
        return Outcome(np.concatenate(flagged), np.concatenate(correct))

    def measure(self, target: Target, module: Any, defense: Defense, x: np.ndarray, y: np.ndarray,
                eps: float, clean: Outcome, bare_correct: np.ndarray, seed: int) -> Evidence:
        """Both attacks at one epsilon, and the Evidence of what they did."""
        x_na = self.attack_bare_model(target, module, x, y, bare_correct, eps)
        bare_right = target.model.predict(x_na) == y
        non_adaptive = self.outcome(target, defense, x_na, y)
        x_ad, random = self.attack_pipeline(target, module, defense, x, y, eps)
        adaptive = self.outcome(target, defense, x_ad, y)
        n = len(y)
        served_right = clean.correct & ~clean.flagged
        fooled_bare = bare_correct & ~bare_right
        answered_wrong = served_right & ~adaptive.correct
        metrics: dict[str, Metric] = {
            "clean_accuracy": Metric.proportion(int(bare_correct.sum()), n),
            "clean_accuracy_sanitized": Metric.proportion(int(served_right.sum()), n),
            "detection_fpr": Metric.proportion(int(clean.flagged.sum()), n),
            "robust_accuracy_undefended": Metric.proportion(int(bare_right.sum()), n),
            "robust_accuracy_nonadaptive": Metric.proportion(int(non_adaptive.robust.sum()), n),
            "robust_accuracy_adaptive": Metric.proportion(int(adaptive.robust.sum()), n),
        }
        for name, flagged, among in (("detection_tpr", non_adaptive.flagged, fooled_bare),
                                     ("detection_tpr_adaptive", adaptive.flagged, answered_wrong),
                                     ("bypass_rate_adaptive", adaptive.bypassed, served_right)):
            if among.any():  # a rate among no samples is not measured (no NaN)
                metrics[name] = Metric.proportion(int(flagged[among].sum()), int(among.sum()))
        flags = adaptive_flags(non_adaptive.robust, adaptive.robust, eps)
        if not fooled_bare.any():
            flags.append(Flag(NO_ADVERSARIAL, f"PGD at eps {eps:g} fooled the bare model on none of the "
                              f"{n} evaluation inputs, so the detection rate on adversarial inputs is not "
                              "measured"))
        s = self.settings
        params: dict[str, Any] = {
            "eps": eps, "norm": s.norm, "samples": n, "fpr": s.fpr, "threshold": defense.threshold,
            "squeezers": [q.name for q in defense.detector.squeezers],
            "transform": [q.name for q in defense.transform],
            "skipped_squeezers": list(defense.skipped),
            "calibration_samples": defense.detector.calibration_n, "steps": s.steps,
            "step_size": s.step_for(eps), "targets": s.targets, "penalty": s.penalty,
            "eot_samples": s.eot_samples if random else 1,
        }
        return Evidence(probe=self.id, params=params, metrics=metrics, flags=flags, seed=seed)

    def attack_bare_model(self, target: Target, module: Any, x: np.ndarray, y: np.ndarray,
                          bare_correct: np.ndarray, eps: float) -> np.ndarray:
        """Non-adaptive: Guard's PGD (cross-entropy, last iterate) on the bare model, for the
        samples it gets right; the others stay as they are."""
        from guard.attacks.evasion.engine import StepRule, run_pgd

        s = self.settings
        x_adv = x.copy()
        attacked = np.flatnonzero(bare_correct)
        if len(attacked):
            rule = StepRule(eps=eps, norm="inf" if s.norm == "inf" else "2", steps=s.steps,
                            step_size=s.step_for(eps), clip=target.input_spec.clip, loss="ce",
                            early_stop=False, batch_size=s.batch_size)
            x_adv[attacked] = run_pgd(module, x[attacked], y[attacked], rule).x_adv
        self._check_budget(target, x, x_adv, eps)
        return x_adv

    def attack_pipeline(self, target: Target, module: Any, defense: Defense, x: np.ndarray, y: np.ndarray,
                        eps: float) -> tuple[np.ndarray, bool]:
        """Adaptive: BPDA (+EOT) PGD against the whole pipeline, on every sample it does not
        already lose; (adversarial inputs, whether a squeezer was random)."""
        from guard.defenses.sanitize.bpda import AdaptiveRule, Views, adaptive_pgd

        s = self.settings
        views = Views(defense.detector.squeezers, defense.transform)
        rule = AdaptiveRule(eps=eps, norm="inf" if s.norm == "inf" else "2", steps=s.steps,
                            step_size=s.step_for(eps), clip=target.input_spec.clip,
                            threshold=defense.threshold, penalty=s.penalty, eot_samples=s.eot_samples,
                            targets=s.targets, batch_size=s.batch_size,
                            exact_checks=target.model.framework != "torch")

        def bypassed(xb: np.ndarray, yb: np.ndarray) -> np.ndarray:
            return self.outcome(target, defense, xb, yb).bypassed

        run = adaptive_pgd(module, views, x, y, rule, bypassed)
        self._check_budget(target, x, run.x_adv, eps)
        return run.x_adv, views.random

    def _check_budget(self, target: Target, x: np.ndarray, x_adv: np.ndarray, eps: float) -> None:
        """An attack that leaves its budget or the input range is a bug, not a result."""
        norms = perturbation_norms(x_adv - x, self.settings.norm)
        if len(norms) and norms.max() > eps * (1 + _BUDGET_SLACK) + _BUDGET_SLACK:
            raise RuntimeError(f"{self.id} exceeded eps={eps}: norm {norms.max():.6g}")
        clip = target.input_spec.clip
        if clip is not None and len(x_adv) and (x_adv.min() < clip[0] - _BUDGET_SLACK
                                                 or x_adv.max() > clip[1] + _BUDGET_SLACK):
            raise RuntimeError(f"{self.id} left the input range {clip}")


def squeeze_range(target: Target, x_reference: np.ndarray) -> tuple[float, float]:
    """The declared input range, else the reference data's (widened when it is one value)."""
    if target.input_spec.clip is not None:
        return target.input_spec.clip
    lo, hi = float(np.min(x_reference)), float(np.max(x_reference))
    return (lo, hi) if hi > lo else (lo - 1.0, hi + 1.0)


def split(n_total: int, samples: int, calibration: int, fpr: float, seed: int,
          probe_id: str) -> tuple[np.ndarray, np.ndarray]:
    """(evaluation indices, calibration indices), disjoint, from one seeded permutation.

    The evaluation part is the permutation's prefix (sorted), the sample the evasion probes
    draw with the same seed and size; calibration takes the next indices. With too little
    data for both, the data is shared in the ratio asked for.
    """
    need = calibration_minimum(fpr)
    if samples + calibration > n_total:
        n_eval = int(round(n_total * samples / (samples + calibration)))
        n_eval = min(max(n_eval, 1), n_total - min(need, n_total - 1))
        n_cal = n_total - n_eval
    else:
        n_eval, n_cal = samples, calibration
    if n_cal < need or n_eval < 1:
        raise DataError(f"{probe_id}: the audit data has {n_total} samples; calibrating the detector at fpr "
                        f"{fpr:g} needs {need} clean samples besides at least one to measure on (give more "
                        "data or a larger fpr)")
    order = np.random.default_rng(seed).permutation(n_total)
    return np.sort(order[:n_eval]), np.sort(order[n_eval : n_eval + n_cal])


def adaptive_flags(non_adaptive: np.ndarray, adaptive: np.ndarray, eps: float) -> list[Flag]:
    """Flags comparing the two robust accuracies, sample by sample (paired interval)."""
    if not len(non_adaptive):
        return []
    diff = paired_difference(non_adaptive, adaptive)
    if diff.ci95 is None:
        return []
    lo, hi = diff.ci95
    if diff.value >= BREAK_MARGIN and lo > 0:
        return [Flag(ADAPTIVE_BREAKS,
                     f"at eps {eps:g} the adaptive attack (BPDA) brings robust accuracy "
                     f"{diff.value:.1%} below the non-adaptive result (paired 95% interval "
                     f"[{lo:.1%}, {hi:.1%}]): the non-adaptive number overstates the defense")]
    if hi < 0:
        return [Flag(ADAPTIVE_WEAKER,
                     f"at eps {eps:g} the adaptive attack did worse than the non-adaptive one by "
                     f"{-diff.value:.1%} (paired 95% interval [{lo:.1%}, {hi:.1%}]): it is too weak here "
                     "(more steps, targets or penalty); the defense is at most as strong as the "
                     "non-adaptive robust accuracy")]
    return []

