"""Guard's evasion numbers checked against oracles: closed form, ART run directly, null."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from guard.demo import digits_split, train_cnn
from guard.models.sklearn_adapter import SklearnModel
from guard.models.torch_adapter import TorchModel
from guard.probes import RunContext, build_probe
from guard.target import InputSpec, Target


def exact_linear_robust_accuracy(x: np.ndarray, y: np.ndarray, w: np.ndarray, b: np.ndarray,
                                 eps: float) -> float:
    """x survives every L-inf attack of size eps iff, for all j != y,
    (w_y - w_j).x + (b_y - b_j) > eps * ||w_y - w_j||_1 (unclipped features)."""
    z = x.astype(np.float64) @ w.T + b
    robust = 0
    for zi, yi in zip(z, y, strict=True):
        dw = np.abs(w[yi][None, :] - w).sum(axis=1)
        margin = zi[yi] - zi
        others = np.arange(len(zi)) != yi
        robust += bool(np.all(margin[others] > eps * dw[others]))
    return robust / len(y)


@pytest.fixture(scope="module")
def linear_target() -> tuple[Target, LogisticRegression]:
    x, y = load_digits(return_X_y=True)
    xs = StandardScaler().fit_transform(x).astype(np.float32)
    clf = LogisticRegression(max_iter=3000).fit(xs[:1200], y[:1200])
    target = Target("logreg", SklearnModel(clf), xs[1200:], y[1200:], InputSpec(shape=(64,)))
    return target, clf


@pytest.mark.parametrize("eps", [0.05, 0.1, 0.2, 0.4])
def test_pgd_matches_closed_form_on_logistic_regression(linear_target, eps: float) -> None:
    target, clf = linear_target
    [ev] = build_probe("pgd", eps=(eps,), samples=1000).run(target, RunContext(seed=0))
    exact = exact_linear_robust_accuracy(target.x_eval, target.y_eval, clf.coef_, clf.intercept_, eps)
    measured = ev.metrics["robust_accuracy"].value
    assert ev.metrics["robust_accuracy"].n == len(target.y_eval)
    assert measured >= exact - 1e-12, "an attack cannot beat the exact optimum"
    assert measured <= exact + 0.03
    lo, hi = ev.metrics["robust_accuracy"].ci95  # type: ignore[misc]
    assert lo <= measured <= hi


def test_plain_cross_entropy_pgd_is_weaker_than_guard_default(linear_target) -> None:
    target, _ = linear_target
    plain = build_probe("pgd", eps=(0.2,), samples=1000, targets=0, early_stop=False)
    strong = build_probe("pgd", eps=(0.2,), samples=1000)
    r_plain = plain.run(target, RunContext())[0].metrics["robust_accuracy"].value
    r_strong = strong.run(target, RunContext())[0].metrics["robust_accuracy"].value
    assert r_strong <= r_plain


@pytest.fixture(scope="module")
def cnn_target() -> Target:
    torch.manual_seed(0)
    split = digits_split()
    model = TorchModel(train_cnn(split, epochs=8), n_classes=10)
    return Target("cnn", model, split.x_test[:500], split.y_test[:500],
                  InputSpec(shape=(1, 8, 8), clip=(0.0, 1.0)))


def _art_pgd_robust_accuracy(target: Target, eps: float, step: float, steps: int) -> float:
    from art.attacks.evasion import ProjectedGradientDescent
    from art.estimators.classification import PyTorchClassifier

    clf = PyTorchClassifier(
        model=target.model.torch_module(), loss=torch.nn.CrossEntropyLoss(), input_shape=(1, 8, 8),
        nb_classes=10, clip_values=(0.0, 1.0), device_type="cpu",
    )
    attack = ProjectedGradientDescent(clf, norm=np.inf, eps=eps, eps_step=step, max_iter=steps,
                                      num_random_init=0, batch_size=500, verbose=False)
    x_adv = attack.generate(x=target.x_eval, y=target.y_eval)
    return float(np.mean(target.model.predict(x_adv) == target.y_eval))


@pytest.mark.parametrize("eps", [0.05, 0.1])
def test_pgd_agrees_with_art(cnn_target: Target, eps: float) -> None:
    art_value = _art_pgd_robust_accuracy(cnn_target, eps, 0.01, 40)
    common = {"eps": (eps,), "step_size": 0.01, "steps": 40, "samples": 500}
    plain = build_probe("pgd", early_stop=False, targets=0, **common)
    default = build_probe("pgd", **common)
    r_plain = plain.run(cnn_target, RunContext())[0].metrics["robust_accuracy"].value
    r_default = default.run(cnn_target, RunContext())[0].metrics["robust_accuracy"].value
    assert abs(r_plain - art_value) <= 0.01
    assert r_default <= art_value
    assert r_default <= r_plain


def test_null_control_eps_tiny_changes_nothing(cnn_target: Target) -> None:
    [ev] = build_probe("pgd", eps=(1e-6,), samples=200).run(cnn_target, RunContext())
    assert ev.metrics["robust_accuracy"].value == ev.metrics["clean_accuracy"].value


def test_fgsm_is_not_stronger_than_pgd_and_apgd_runs(cnn_target: Target) -> None:
    ctx = RunContext()
    fgsm = build_probe("fgsm", eps=(0.1,), samples=300).run(cnn_target, ctx)[0]
    pgd = build_probe("pgd", eps=(0.1,), samples=300).run(cnn_target, ctx)[0]
    apgd = build_probe("apgd", eps=(0.1,), samples=300, steps=20).run(cnn_target, ctx)[0]
    r = {e.probe: e.metrics["robust_accuracy"].value for e in (fgsm, pgd, apgd)}
    assert r["evasion.pgd"] <= r["evasion.fgsm"]
    assert r["evasion.apgd"] < fgsm.metrics["clean_accuracy"].value


def test_l2_pgd_respects_budget_and_lowers_accuracy(cnn_target: Target) -> None:
    evs = build_probe("pgd", eps=(0.5, 1.0), norm="2", samples=200).run(cnn_target, RunContext())
    clean = evs[0].metrics["clean_accuracy"].value
    assert evs[1].metrics["robust_accuracy"].value <= evs[0].metrics["robust_accuracy"].value < clean


@pytest.fixture(scope="module")
def svc_target() -> Target:
    import warnings

    from sklearn.svm import SVC

    split = digits_split(image=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        svc = SVC(kernel="rbf", C=10.0, probability=False).fit(split.x_train, split.y_train)
    return Target("svc", SklearnModel(svc), split.x_test[:200], split.y_test[:200],
                  InputSpec(shape=(64,), clip=(0.0, 1.0)))


def test_svc_pgd_never_weaker_than_plain_and_close_to_art(svc_target: Target) -> None:
    from art.attacks.evasion import ProjectedGradientDescent
    from art.estimators.classification import SklearnClassifier

    common = {"eps": (0.15,), "step_size": 0.03, "steps": 10}
    default = build_probe("pgd", samples=200, **common).run(svc_target, RunContext())[0]
    plain = build_probe("pgd", samples=200, targets=0, early_stop=False, **common)
    r_plain = plain.run(svc_target, RunContext())[0].metrics["robust_accuracy"].value
    assert default.metrics["robust_accuracy"].value <= r_plain
    # ART's SVC gradients loop in Python: compare on the first 40 samples only
    few = Target("svc40", svc_target.model, svc_target.x_eval[:40], svc_target.y_eval[:40],
                 svc_target.input_spec)
    ours = build_probe("pgd", samples=40, **common).run(few, RunContext())[0]
    clf = SklearnClassifier(model=svc_target.model.estimator, clip_values=(0.0, 1.0))  # type: ignore[attr-defined]
    attack = ProjectedGradientDescent(clf, norm=np.inf, eps=0.15, eps_step=0.03, max_iter=10,
                                      batch_size=40, verbose=False)
    x_adv = attack.generate(x=few.x_eval, y=np.eye(10)[few.y_eval])
    art_value = float(np.mean(few.model.predict(x_adv) == few.y_eval))
    assert ours.metrics["robust_accuracy"].value <= art_value + 0.01
