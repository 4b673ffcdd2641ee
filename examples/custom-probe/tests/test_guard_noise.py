"""The probe's own tests: an oracle with a known answer, null controls, and the contract."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from guard_noise import GaussianNoise, GaussianNoiseSettings

from guard.errors import ConfigError
from guard.probes import RunContext, build_settings
from guard.target import InputSpec, Target


class Threshold:
    """A model with a known decision rule: class 1 when the first feature exceeds 0.5."""

    framework = "python"
    n_classes = 2

    def __init__(self) -> None:
        self.seen: list[np.ndarray] = []

    def predict(self, x: np.ndarray) -> np.ndarray:
        self.seen.append(x.copy())
        return (x.reshape(len(x), -1)[:, 0] > 0.5).astype(np.int64)

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        p = self.predict(x).astype(np.float64)
        return np.stack([1 - p, p], axis=1)

    def torch_module(self) -> None:
        return None

    def describe(self) -> dict[str, Any]:
        return {"class": "Threshold"}


class Constant(Threshold):
    """A model that ignores its input: noise cannot change a single prediction."""

    def predict(self, x: np.ndarray) -> np.ndarray:
        return np.zeros(len(x), dtype=np.int64)


def target(model: Threshold, n: int = 2000, clip: tuple[float, float] | None = (0.0, 1.0)) -> Target:
    x = np.random.default_rng(1).uniform(0, 1, size=(n, 1)).astype(np.float32)
    y = (x[:, 0] > 0.5).astype(np.int64)
    return Target(name="t", model=model, x_eval=x, y_eval=y, input_spec=InputSpec(shape=(1,), clip=clip))


def run(t: Target, seed: int = 0, **settings: Any) -> list[Any]:
    probe = GaussianNoise(build_settings(GaussianNoise, scoped=settings))
    return probe.run(t, RunContext(seed=seed))


def test_oracle_matches_the_analytic_flip_rate() -> None:
    # A sample at distance d from the boundary keeps its label with probability Phi(d / sigma);
    # clipping to [0, 1] never moves a value across 0.5, so the expectation is exact.
    t = target(Threshold())
    [e] = run(t, sigma=0.1, samples=2000)
    d = np.abs(t.x_eval[:, 0].astype(np.float64) - 0.5)
    expected = float(np.mean([0.5 * (1 + math.erf(v / (0.1 * math.sqrt(2)))) for v in d]))
    lo, hi = e.metrics["noisy_accuracy"].ci95
    assert lo <= expected <= hi
    assert e.metrics["clean_accuracy"].value == 1.0


def test_null_controls_show_no_loss() -> None:
    [e] = run(target(Constant()), sigma=0.5)  # the model ignores its input
    assert e.metrics["noisy_accuracy"] == e.metrics["clean_accuracy"]
    [e] = run(target(Threshold()), sigma=1e-9)  # no noise to speak of
    assert e.metrics["noisy_accuracy"].value == e.metrics["clean_accuracy"].value == 1.0


def test_inputs_stay_in_the_declared_range() -> None:
    model = Threshold()
    run(target(model), sigma=2.0)
    assert all(x.min() >= 0.0 and x.max() <= 1.0 for x in model.seen)
    unbounded = Threshold()
    run(target(unbounded, clip=None), sigma=2.0)
    assert min(x.min() for x in unbounded.seen) < 0.0 < 1.0 < max(x.max() for x in unbounded.seen)


def test_seeded_own_generator_and_sigmas_independent() -> None:
    t = target(Threshold(), n=300)
    before = np.random.get_state(legacy=False)["state"]
    first = run(t, seed=3, sigma=[0.1, 0.3], samples=200)
    after = np.random.get_state(legacy=False)["state"]  # NumPy's global generator is untouched
    assert after["pos"] == before["pos"] and np.array_equal(after["key"], before["key"])
    again = run(t, seed=3, sigma=[0.1, 0.3], samples=200)
    alone = run(t, seed=3, sigma=0.3, samples=200)
    assert [e.metrics for e in first] == [e.metrics for e in again]
    assert first[1].metrics == alone[0].metrics  # one noise draw, scaled per sigma
    assert run(t, seed=4, sigma=[0.1, 0.3], samples=200)[1].metrics != first[1].metrics


def test_evidence_matches_the_declaration() -> None:
    emits = GaussianNoise.emits
    for e in run(target(Threshold(), n=50), sigma=[0.1, 0.2], samples=30):
        assert e.probe == GaussianNoise.id
        assert set(e.metrics) == set(emits.metrics) and set(e.params) == set(emits.params)
        assert all(m.n == 30 and m.ci95 is not None for m in e.metrics.values())
    assert set(emits.key) <= set(emits.params)


@pytest.mark.parametrize(("settings", "named"), [
    ({"sigma": -0.1}, "sigma"), ({"sigma": []}, "sigma"), ({"sigma": "x"}, "sigma"),
    ({"samples": 0}, "samples"), ({"samples": 1.5}, "samples"), ({"sigmas": 0.1}, "sigmas"),
])
def test_bad_settings_name_the_setting(settings: dict[str, Any], named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        build_settings(GaussianNoise, scoped=settings)


def test_settings_coerce_like_the_command_line() -> None:
    assert build_settings(GaussianNoise, scoped={"sigma": 0.2}) == GaussianNoiseSettings(sigma=(0.2,))
    assert build_settings(GaussianNoise, shared={"samples": 10, "eps": (0.1,)}).samples == 10
