"""Thorough runs, excluded from CI by the `slow` marker: `pytest -m slow`."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from guard.demo import digits_split
from guard.models.sklearn_adapter import SklearnModel
from guard.probes import RunContext, build_probe
from guard.target import InputSpec, Target

pytestmark = pytest.mark.slow


def test_svc_pgd_on_500_samples_is_never_weaker_than_art() -> None:
    """The benchmark's claim as a test: ART's own SVC gradients take minutes here."""
    from art.attacks.evasion import ProjectedGradientDescent
    from art.estimators.classification import SklearnClassifier
    from sklearn.svm import SVC

    split = digits_split(image=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        svc = SVC(kernel="rbf", C=10.0, probability=False).fit(split.x_train, split.y_train)
    target = Target("svc", SklearnModel(svc), split.x_test[:500], split.y_test[:500],
                    InputSpec(shape=(64,), clip=(0.0, 1.0)))
    ours = build_probe("pgd", eps=(0.1,), step_size=0.01, steps=40, samples=500).run(target, RunContext())
    attack = ProjectedGradientDescent(SklearnClassifier(model=svc, clip_values=(0.0, 1.0)), norm=np.inf,
                                      eps=0.1, eps_step=0.01, max_iter=40, batch_size=500, verbose=False)
    x_adv = attack.generate(x=target.x_eval, y=np.eye(10)[target.y_eval])
    art_value = float(np.mean(svc.predict(x_adv) == target.y_eval))
    assert ours[0].metrics["robust_accuracy"].value <= art_value + 0.01


def test_hopskipjump_on_a_forest_with_full_budget() -> None:
    from sklearn.ensemble import RandomForestClassifier

    split = digits_split(image=False)
    forest = RandomForestClassifier(50, random_state=0).fit(split.x_train, split.y_train)
    target = Target("forest", SklearnModel(forest), split.x_test, split.y_test,
                    InputSpec(shape=(64,), clip=(0.0, 1.0)))
    evs = build_probe("hopskipjump", eps=(0.05, 0.1, 0.2), samples=100, queries=2000).run(
        target, RunContext())
    robust = [e.metrics["robust_accuracy"].value for e in evs]
    assert robust == sorted(robust, reverse=True) and robust[-1] < evs[0].metrics["clean_accuracy"].value
