"""HopSkipJump through ART: query budget, the epsilon curve from one run, a null control."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression

from guard.attacks.evasion.hopskipjump import schedule
from guard.demo import digits_split
from guard.models.sklearn_adapter import SklearnModel
from guard.probes import RunContext, build_probe
from guard.target import Capability, InputSpec, Target


@pytest.fixture(scope="module")
def split() -> object:
    return digits_split(image=False)


def _target(est: object, split: object) -> Target:
    return Target("m", SklearnModel(est), split.x_test, split.y_test,  # type: ignore[attr-defined]
                  InputSpec(shape=(64,), clip=(0.0, 1.0)))


@pytest.mark.parametrize("budget", [200, 1000, 5000])
def test_schedule_fits_budget(budget: int) -> None:
    plan = schedule(budget)
    assert plan["max_iter"] >= 1 and plan["init_eval"] <= plan["max_eval"]


def test_forest_gets_blackbox_attack_within_budget(split: object) -> None:
    forest = RandomForestClassifier(30, random_state=0).fit(split.x_train, split.y_train)  # type: ignore[attr-defined]
    target = _target(forest, split)
    assert Capability.GRADIENTS not in target.capabilities
    probe = build_probe("hopskipjump", eps=(0.05, 0.1, 0.3), samples=15, queries=400)
    evs = probe.run(target, RunContext(seed=0))
    robust = [e.metrics["robust_accuracy"].value for e in evs]
    assert robust == sorted(robust, reverse=True)
    assert robust[-1] < evs[0].metrics["clean_accuracy"].value
    queries = evs[0].metrics["mean_queries"].value
    assert 0 < queries <= 400 * 1.25  # the schedule is planned from HSJ's expected costs
    assert evs[0].params["queries_budget"] == 400


def test_gradient_probe_refused_for_forest(split: object) -> None:
    from guard.errors import MissingCapabilityError

    forest = RandomForestClassifier(5, random_state=0).fit(split.x_train, split.y_train)  # type: ignore[attr-defined]
    with pytest.raises(MissingCapabilityError, match="gradients"):
        build_probe("pgd").check(_target(forest, split))


def test_blackbox_never_beats_exact_whitebox_on_linear_model(split: object) -> None:
    clf = LogisticRegression(max_iter=2000).fit(split.x_train, split.y_train)  # type: ignore[attr-defined]
    target = _target(clf, split)
    ctx = RunContext(seed=0)
    hsj = build_probe("hopskipjump", eps=(0.1,), samples=15, queries=400).run(target, ctx)[0]
    pgd = build_probe("pgd", eps=(0.1,), samples=15).run(target, ctx)[0]
    assert hsj.metrics["robust_accuracy"].value >= pgd.metrics["robust_accuracy"].value


def test_null_control_tiny_eps(split: object) -> None:
    forest = RandomForestClassifier(10, random_state=0).fit(split.x_train, split.y_train)  # type: ignore[attr-defined]
    [ev] = build_probe("hopskipjump", eps=(1e-9,), samples=10, queries=200).run(
        _target(forest, split), RunContext())
    assert ev.metrics["robust_accuracy"].value == ev.metrics["clean_accuracy"].value
    assert np.isfinite(ev.metrics["mean_queries"].value)
