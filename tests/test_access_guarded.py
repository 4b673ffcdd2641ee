from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from guard.build import build_target_from_objects
from guard.defenses.access.guarded import (
    AccessDenied,
    BudgetExceeded,
    GuardedModel,
    InputRejected,
)
from guard.defenses.access.policy import AccessPolicy

POLICY = """
[roles.analyst]
permissions = ["predict"]
[roles.scientist]
permissions = ["predict", "predict_proba"]
output = { round = 2, top_k = 2 }
[principals.alice]
roles = ["analyst"]
budget = { total = 5 }
[principals.sci]
roles = ["scientist"]
"""


class FakeLog:
    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []

    def append(self, fields: dict[str, Any]) -> None:
        self.records.append(fields)


class Rejecting:
    def check(self, x: Any) -> np.ndarray:
        raise InputRejected("too weird")


class Alert:
    blocked = True
    reason = "extraction suspected (test monitor)"


class BlockingMonitor:
    def observe(self, principal: str, x: np.ndarray, labels: np.ndarray) -> Alert:
        return Alert()


@pytest.fixture
def setup(tmp_path: Path) -> tuple[GuardedModel, FakeLog, np.ndarray]:
    x, y = load_iris(return_X_y=True)
    x = x.astype(np.float32)
    target = build_target_from_objects(
        LogisticRegression(max_iter=500).fit(x, y), x, y, clip="none", name="iris"
    )
    f = tmp_path / "access.toml"
    f.write_text(POLICY)
    log = FakeLog()
    return GuardedModel(target.model, AccessPolicy.load(f), log=log), log, x


def test_served_and_refused_in_order(setup: tuple[GuardedModel, FakeLog, np.ndarray]) -> None:
    g, log, x = setup
    tok = g.tokens.create("alice")
    ans = g.predict(x[:3], token=tok)
    assert ans.labels is not None and ans.labels.shape == (3,) and ans.remaining_total == 2
    with pytest.raises(AccessDenied) as e:
        g.predict(x[:1], token=tok + "x")
    assert e.value.status == 401 and e.value.code == "unauthenticated"
    with pytest.raises(AccessDenied) as e:
        g.predict(x[:1], token=tok, output="probabilities")
    assert e.value.status == 403
    with pytest.raises(BudgetExceeded) as b:
        g.predict(x[:3], token=tok)
    assert b.value.status == 429 and b.value.remaining_total == 2
    outcomes = [(r["outcome"], r["status"]) for r in log.records]
    assert outcomes == [("served", 200), ("refused", 401), ("refused", 403), ("refused", 429)]
    assert all(tok not in repr(r) for r in log.records)


def test_sanitizer_before_budget_and_monitor_blocks(setup: tuple[GuardedModel, FakeLog, np.ndarray]) -> None:
    g, log, x = setup
    g.sanitizer = Rejecting()
    with pytest.raises(InputRejected):
        g.predict(x[:5], principal="alice")
    g.sanitizer = None
    g.monitor = BlockingMonitor()
    with pytest.raises(AccessDenied) as e:
        g.predict(x[:5], principal="alice")
    assert e.value.code == "extraction_suspected"
    with pytest.raises(BudgetExceeded):  # rejected input did not use budget; blocked one did
        g.predict(x[:1], principal="alice")
    assert [r["status"] for r in log.records] == [422, 403, 429]


def test_hardened_probabilities_and_adapter(setup: tuple[GuardedModel, FakeLog, np.ndarray]) -> None:
    g, _, x = setup
    ans = g.predict(x[:10], principal="sci", output="probabilities")
    assert ans.probabilities is not None
    p = ans.probabilities
    assert ((p > 0).sum(axis=1) <= 2).all()
    assert np.allclose(p, np.round(p, 2), atol=1e-6)
    adapter = g.as_adapter("sci")
    assert adapter.torch_module() is None
    assert np.array_equal(adapter.predict(x[:10]), g.model.predict(x[:10]))
    with pytest.raises(InputRejected):
        g.predict(np.array([[np.nan] * 4]), principal="sci")


def test_reverse_sigmoid_matches_art() -> None:
    art = pytest.importorskip("art.defences.postprocessor")
    from guard.defenses.access.output import harden
    from guard.defenses.access.policy import OutputRule, ReverseSigmoid

    p = np.random.default_rng(0).dirichlet(np.ones(5), size=20)
    ours = harden(p, OutputRule(reverse_sigmoid=ReverseSigmoid(1.0, 0.1)))
    theirs = art.ReverseSigmoid(beta=1.0, gamma=0.1)(p)
    assert np.allclose(ours, theirs, atol=1e-6)
    assert np.array_equal(ours.argmax(1), p.argmax(1))
