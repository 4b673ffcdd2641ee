"""Shared fixtures: small digit classifiers trained once per session on scikit-learn's digits."""

from __future__ import annotations

import inspect
import os
import sys
from pathlib import Path

import fixtures_models
import numpy as np
import pytest
import torch
from fixtures_models import TinyDigitsCNN
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

if os.environ.get("PYTEST_XDIST_WORKER"):
    # Several pytest workers share the cores: torch's default of one intra-op thread per core
    # in every worker oversubscribes them, and a spinning thread pool fighting another busy
    # process slows by 10x or more. One thread per worker keeps -n 2 on 2 cores near 2x.
    _workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // _workers))


@pytest.fixture(scope="session")
def digits() -> dict[str, np.ndarray]:
    """600 train and 200 eval digits scaled to [0, 1], as 1x8x8 images and as flat rows."""
    data = load_digits()
    x = (data.data / 16.0).astype(np.float32)
    y = data.target.astype(np.int64)
    order = np.random.default_rng(0).permutation(len(y))
    train, test = order[:600], order[600:800]
    return {
        "x_train": x[train].reshape(-1, 1, 8, 8),
        "y_train": y[train],
        "x_test": x[test].reshape(-1, 1, 8, 8),
        "y_test": y[test],
        "flat_train": x[train],
        "flat_test": x[test],
    }


@pytest.fixture(scope="session")
def cnn(digits: dict[str, np.ndarray]) -> TinyDigitsCNN:
    torch.manual_seed(0)
    model = TinyDigitsCNN()
    opt = torch.optim.Adam(model.parameters(), lr=0.02)
    x = torch.from_numpy(digits["x_train"])
    y = torch.from_numpy(digits["y_train"])
    for _ in range(40):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    return model.eval()


@pytest.fixture(scope="session")
def logreg(digits: dict[str, np.ndarray]) -> LogisticRegression:
    return LogisticRegression(max_iter=1000).fit(digits["flat_train"], digits["y_train"])


@pytest.fixture(scope="session")
def svc_pipeline(digits: dict[str, np.ndarray]) -> Pipeline:
    return make_pipeline(StandardScaler(), SVC()).fit(digits["flat_train"], digits["y_train"])


@pytest.fixture
def user_arch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A user's network module written to a temporary folder on sys.path, named for --arch."""
    (tmp_path / "user_net.py").write_text(inspect.getsource(fixtures_models))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "user_net", raising=False)
    return "user_net:TinyDigitsCNN"
