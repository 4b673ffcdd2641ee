"""The defense.sanitization probe: adaptive against non-adaptive, an identity-squeezer oracle,
EOT for random squeezers, the evidence it declares, and what it refuses."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from sklearn.neighbors import KNeighborsClassifier

from guard.attacks.evasion.base import choose_samples
from guard.build import build_target_from_objects
from guard.defenses.sanitize import BitDepth
from guard.defenses.sanitize.bpda import AdaptiveRule, Views, adaptive_pgd
from guard.defenses.sanitize.probe import (
    ADAPTIVE_BREAKS,
    ADAPTIVE_WEAKER,
    SanitizationProbe,
    adaptive_flags,
    split,
)
from guard.defenses.sanitize.squeeze import Squeezer
from guard.errors import ConfigError, DataError, MissingCapabilityError
from guard.evidence import Evidence
from guard.policies.catalogue import load_catalogue
from guard.probes import RunContext, build_probe, probe_class
from guard.target import Target

FAST = {"samples": 100, "calibration_samples": 100, "steps": 10, "eps": (0.1,)}


@pytest.fixture(scope="module")
def cnn_target(cnn: torch.nn.Module, digits: dict[str, np.ndarray]) -> Target:
    return build_target_from_objects(cnn, digits["x_test"], digits["y_test"], clip=(0.0, 1.0), name="cnn")


@pytest.fixture(scope="module")
def evidence(cnn_target: Target) -> Evidence:
    (found,) = build_probe("sanitization", **FAST).run(cnn_target, RunContext(seed=3))
    return found


def rate(e: Evidence, name: str) -> float:
    return e.metrics[name].value


def test_adaptive_attack_is_at_least_as_strong_as_the_non_adaptive_one(evidence: Evidence) -> None:
    assert rate(evidence, "robust_accuracy_adaptive") <= rate(evidence, "robust_accuracy_nonadaptive") + 0.05
    # the adaptive attack defeats the squeezed model more often than squeezing stops plain PGD
    assert rate(evidence, "bypass_rate_adaptive") > 0
    # squeezing detects some plain PGD: more often than it flags clean inputs
    assert rate(evidence, "detection_tpr") > rate(evidence, "detection_fpr")
    # a flagged clean input is not an answer: sanitized clean accuracy pays for false positives
    assert rate(evidence, "clean_accuracy_sanitized") <= 1 - rate(evidence, "detection_fpr") + 1e-12
    assert evidence.params["squeezers"] == ["bit_depth(4)"]
    assert evidence.params["transform"] == ["bit_depth(4)"]
    assert evidence.params["calibration_samples"] == 100 and evidence.params["samples"] == 100
    assert evidence.params["eot_samples"] == 1  # deterministic squeezers: no EOT draws
    for name, metric in evidence.metrics.items():
        assert metric.n and metric.ci95 is not None and metric.ci95[0] <= metric.value <= metric.ci95[1], name


def test_evidence_matches_emits_and_the_catalogue(evidence: Evidence) -> None:
    cls = probe_class("defense.sanitization")
    assert cls is SanitizationProbe and evidence.probe == cls.id
    assert set(evidence.metrics) <= set(cls.emits.metrics)
    assert set(evidence.params) == set(cls.emits.params)
    assert {f.code for f in evidence.flags} <= set(cls.emits.flags)
    spec = load_catalogue().evidence[cls.id]
    assert set(spec.metrics) == set(cls.emits.metrics) and set(spec.params) == set(cls.emits.params)
    assert tuple(spec.key) == cls.emits.key and set(spec.flags) == set(cls.emits.flags)


def test_same_seed_same_numbers(cnn_target: Target, evidence: Evidence) -> None:
    (again,) = build_probe("sanitization", **FAST).run(cnn_target, RunContext(seed=3))
    first = {k: m.to_dict() for k, m in evidence.metrics.items()}
    assert {k: m.to_dict() for k, m in again.metrics.items()} == first
    assert again.params == evidence.params


class Identity:
    """A squeezer that changes nothing: the defense is then no defense."""

    name = "identity"
    random = False

    def unsuitable(self, row_shape: tuple[int, ...]) -> str | None:
        return None

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return np.array(x, copy=True)


class IdentityProbe(SanitizationProbe):
    def squeezers(self, target: Target, x_reference: np.ndarray) -> tuple[list[Squeezer], list[Squeezer]]:
        return [Identity()], [Identity()]


def test_identity_squeezer_oracle(cnn_target: Target) -> None:
    probe = IdentityProbe(build_probe("sanitization", **FAST).settings)
    (e,) = probe.run(cnn_target, RunContext(seed=3))
    assert e.params["threshold"] == 0.0  # every clean score is exactly 0
    assert rate(e, "detection_fpr") == 0.0
    assert rate(e, "detection_tpr") <= 0.05  # the null level: it cannot tell attacks from clean inputs
    assert rate(e, "clean_accuracy_sanitized") == rate(e, "clean_accuracy")
    # nothing flagged, nothing transformed: the sanitized pipeline is the bare model under plain PGD
    assert rate(e, "robust_accuracy_nonadaptive") == rate(e, "robust_accuracy_undefended")
    # and BPDA through the identity is plain PGD again (early-stopped runs: no weaker)
    assert abs(rate(e, "robust_accuracy_adaptive") - rate(e, "robust_accuracy_undefended")) <= 0.05
    assert rate(e, "robust_accuracy_undefended") < rate(e, "clean_accuracy")  # the attack does work
    assert not {f.code for f in e.flags} & {ADAPTIVE_BREAKS, ADAPTIVE_WEAKER}


class CountingNoise:
    """A random squeezer (uniform noise of +-0.01) that counts its calls."""

    name = "noise"
    random = True

    def __init__(self) -> None:
        self.calls = 0
        self.rng = np.random.default_rng(0)

    def unsuitable(self, row_shape: tuple[int, ...]) -> str | None:
        return None

    def __call__(self, x: np.ndarray) -> np.ndarray:
        self.calls += 1
        out: np.ndarray = np.clip(x + self.rng.uniform(-0.01, 0.01, x.shape), 0, 1).astype(x.dtype)
        return out


@pytest.mark.parametrize("eot", [1, 4])
def test_random_squeezers_get_eot_gradient_draws(cnn: torch.nn.Module, digits: dict[str, np.ndarray],
                                                 eot: int) -> None:
    noise = CountingNoise()
    views = Views([noise], [noise])  # the transform is the detector's squeezer: one view
    assert views.random
    steps = 3
    rule = AdaptiveRule(eps=0.05, norm="inf", steps=steps, step_size=0.02, clip=(0.0, 1.0), threshold=0.1,
                        penalty=1.0, eot_samples=eot, targets=0)
    x, y = digits["x_test"][:8], digits["y_test"][:8]
    out = adaptive_pgd(cnn, views, x, y, rule, lambda xb, yb: np.zeros(len(xb), dtype=bool))
    # two untargeted runs (plain, then with the detector's penalty), each steps + 1 forward
    # passes and, per gradient step, eot - 1 extra draws of the random squeezer
    assert noise.calls == 2 * ((steps + 1) + steps * (eot - 1))
    assert out.gradient_evals == 2 * steps * eot * len(x)
    assert np.abs(out.x_adv - x).max() <= 0.05 + 1e-6 and not out.bypassed.any()


def test_adaptive_flags_compare_the_paired_rates() -> None:
    all_robust = np.ones(100, dtype=bool)
    half = np.arange(100) < 50
    (breaks,) = adaptive_flags(all_robust, half, 0.1)
    assert breaks.code == ADAPTIVE_BREAKS and "50.0% below the non-adaptive" in breaks.detail
    (weaker,) = adaptive_flags(half, all_robust, 0.1)
    assert weaker.code == ADAPTIVE_WEAKER
    assert adaptive_flags(half, half, 0.1) == []
    nearly = all_robust.copy()
    nearly[:2] = False  # 2 points lower: not "much lower"
    assert adaptive_flags(all_robust, nearly, 0.1) == []


def test_split_is_disjoint_and_matches_the_evasion_sample() -> None:
    ev, cal = split(600, 200, 200, 0.05, seed=7, probe_id="p")
    assert len(ev) == 200 and len(cal) == 200 and not set(ev) & set(cal)
    assert np.array_equal(ev, choose_samples(600, 200, 7))  # the sample evasion.pgd attacks
    ev, cal = split(30, 200, 200, 0.05, seed=0, probe_id="p")  # too little for both: shared
    assert len(cal) >= 19 and len(ev) + len(cal) == 30 and not set(ev) & set(cal)
    with pytest.raises(DataError, match="p: the audit data has 15 samples; calibrating the detector at fpr "
                                        "0.05 needs 19 clean samples"):
        split(15, 200, 200, 0.05, seed=0, probe_id="p")


def test_flat_rows_skip_the_median_and_say_why(logreg: Any, digits: dict[str, np.ndarray]) -> None:
    target = build_target_from_objects(logreg, digits["flat_test"], digits["y_test"], clip=(0.0, 1.0),
                                       name="lr")
    (e,) = build_probe("sanitization", median_size=2, samples=60, calibration_samples=60, steps=5,
                       eps=(0.1,)).run(target, RunContext(seed=0))
    assert e.params["squeezers"] == ["bit_depth(4)"]
    (reason,) = e.params["skipped_squeezers"]
    assert "median(2x2) does not apply to flat rows of shape (64,)" in reason
    with pytest.raises(ConfigError, match="transform 'median' does not apply to rows of shape"):
        build_probe("sanitization", median_size=2, transform="median", samples=60, calibration_samples=60,
                    eps=(0.1,)).run(target, RunContext(seed=0))


def test_a_model_without_gradients_is_skipped(digits: dict[str, np.ndarray]) -> None:
    knn = KNeighborsClassifier(3).fit(digits["flat_train"], digits["y_train"])
    target = build_target_from_objects(knn, digits["flat_test"], digits["y_test"], clip=(0.0, 1.0),
                                       name="knn")
    probe = build_probe("sanitization")
    assert not probe.applies_to(target) and probe.why_not(target) == "needs gradients"
    with pytest.raises(MissingCapabilityError, match="'defense.sanitization' needs gradients"):
        probe.run(target, RunContext())


@pytest.mark.parametrize(("settings", "message"), [
    ({"bits": -1}, "bits must be an integer from 0 to 24, got -1"),
    ({"fpr": 0.0}, "fpr must be positive and finite"),
    ({"transform": "blur"}, "transform must be one of bits, median, all, none, got 'blur'"),
    ({"median_size": 1}, "median_size must be 0 (off) or from 2 to 64"),
    ({"bits": 0, "median_size": 2}, "transform 'bits' needs bits > 0"),
    ({"bits": 0, "median_size": 0, "transform": "none"}, "switch on at least one squeezer"),
    ({"norm": "1"}, "norm must be 'inf' or '2'"),
    ({"eps": ()}, "eps: give at least one value"),
    ({"steps": 0}, "steps must be a positive integer"),
])
def test_bad_settings_are_refused_with_their_name(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        build_probe("sanitization", **settings)
    assert message in str(err.value)


def test_a_budget_beyond_the_input_range_is_refused(cnn_target: Target) -> None:
    with pytest.raises(ConfigError, match="eps 2 is larger than the declared input range"):
        build_probe("sanitization", eps=(2.0,)).check(cnn_target)


def test_a_random_squeezer_reaches_the_evidence_as_eot(cnn_target: Target) -> None:
    class NoisyProbe(SanitizationProbe):
        def squeezers(self, target: Target, x_reference: np.ndarray) -> tuple[list[Squeezer], list[Squeezer]]:
            return [BitDepth(4), CountingNoise()], [BitDepth(4)]

    settings = build_probe("sanitization", samples=20, calibration_samples=40, steps=2, eot_samples=3,
                           targets=0, eps=(0.1,)).settings
    (e,) = NoisyProbe(settings).run(cnn_target, RunContext(seed=0))
    assert e.params["eot_samples"] == 3 and e.params["squeezers"] == ["bit_depth(4)", "noise"]
