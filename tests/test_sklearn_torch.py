"""The torch rewrites of scikit-learn models reproduce decision_function and predict."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.datasets import load_breast_cancer, load_digits
from sklearn.decomposition import PCA
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MaxAbsScaler, MinMaxScaler, StandardScaler
from sklearn.svm import SVC, LinearSVC

from guard.models.sklearn_adapter import SklearnModel
from guard.models.sklearn_torch import to_torch

ESTIMATORS = {
    "svc-rbf": lambda: SVC(kernel="rbf", C=10.0),
    "svc-linear": lambda: SVC(kernel="linear"),
    "svc-poly": lambda: SVC(kernel="poly", degree=3),
    "svc-sigmoid": lambda: SVC(kernel="sigmoid", gamma=0.01),
    "logreg-pipeline": lambda: make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)),
    "linearsvc": lambda: make_pipeline(MaxAbsScaler(), LinearSVC()),
    "mlp-pca": lambda: make_pipeline(MinMaxScaler(), PCA(20, whiten=True, random_state=0),
                                     MLPClassifier((32,), max_iter=400, random_state=0)),
}


def _data(name: str) -> tuple[np.ndarray, np.ndarray]:
    x, y = load_digits(return_X_y=True) if name == "digits" else load_breast_cancer(return_X_y=True)
    return (x / np.abs(x).max(axis=0).clip(1e-9)).astype(np.float32), y


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("dataset", ["digits", "cancer"])
@pytest.mark.parametrize("kind", sorted(ESTIMATORS))
def test_rewrite_matches_estimator(kind: str, dataset: str) -> None:
    x, y = _data(dataset)
    est = ESTIMATORS[kind]().fit(x, y)
    module = to_torch(est)
    assert module is not None
    with torch.no_grad():
        scores = module(torch.as_tensor(x)).numpy()
    np.testing.assert_array_equal(est.classes_[scores.argmax(1)], est.predict(x))
    final = est.steps[-1][1] if hasattr(est, "steps") else est
    multiclass_svc = isinstance(final, SVC) and len(final.classes_) > 2
    if hasattr(final, "decision_function") and not multiclass_svc:
        dec = est.decision_function(x)
        got = scores if dec.ndim == 2 else scores[:, 1]
        np.testing.assert_allclose(got, dec, rtol=1e-5, atol=1e-4)  # float32 input


def test_svc_scores_follow_libsvm_votes_and_ties() -> None:
    x, y = _data("digits")
    est = SVC(kernel="rbf", C=10.0).fit(x, y)
    module = to_torch(est)
    assert module is not None
    rng = np.random.default_rng(0)
    noisy = np.clip(x + rng.normal(0, 0.3, x.shape), 0, 1).astype(np.float32)  # many vote ties
    with torch.no_grad():
        scores = module(torch.as_tensor(noisy)).numpy()
    np.testing.assert_array_equal(scores.argmax(1), est.predict(noisy))
    tau = 1 / (4 * 10)
    votes = np.round(scores - tau * np.arange(9, -1, -1))
    ovr = est.decision_function(noisy)
    np.testing.assert_array_equal(votes, np.round(ovr))


def test_gradients_flow_to_the_input() -> None:
    x, y = _data("digits")
    module = to_torch(SVC().fit(x, y))
    assert module is not None
    xt = torch.as_tensor(x[:20]).requires_grad_(True)
    torch.nn.functional.cross_entropy(module(xt), torch.as_tensor(y[:20])).backward()
    assert xt.grad is not None and float(xt.grad.abs().sum()) > 0


def test_trees_have_no_rewrite_and_adapter_says_so() -> None:
    x, y = _data("digits")
    adapter = SklearnModel(RandomForestClassifier(10, random_state=0).fit(x, y))
    assert adapter.torch_module() is None
    assert adapter.describe()["differentiable"] is False
    proba = adapter.predict_proba(x[:5])
    np.testing.assert_allclose(proba.sum(1), 1.0)


def test_string_labels_map_to_indices() -> None:
    x, y = _data("cancer")
    names = np.where(y == 1, "benign", "malignant")
    adapter = SklearnModel(LogisticRegression(max_iter=2000).fit(x, names))
    assert set(adapter.predict(x)) <= {0, 1}
    assert list(adapter.label_indices(np.array(["benign", "malignant"]))) == [0, 1]
