"""PRADA extraction monitoring: settings, the statistic against scipy, the algorithm against a
plain re-implementation of the paper's, natural vs synthetic traffic on the digits, state per
principal under threads, and the monitor inside GuardedModel and the access policy."""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy.stats import shapiro
from sklearn.linear_model import LogisticRegression
from threadpoolctl import threadpool_limits

from guard.build import build_target_from_objects
from guard.defenses.access.guarded import AccessDenied, GuardedModel
from guard.defenses.access.monitor import (
    Alert,
    ExtractionMonitor,
    MonitorSettings,
    shapiro_w,
)
from guard.defenses.access.policy import AccessPolicy
from guard.demo import digits_split
from guard.errors import ConfigError


class Digits:
    def __init__(self) -> None:
        split = digits_split(image=False)
        self.x_train, self.x_test = split.x_train, split.x_test
        self.x_eval, self.y_eval = split.x_test, split.y_test
        with threadpool_limits(1, user_api="blas"):  # BLAS threads spinning on busy cores: 50x slower
            self.model = LogisticRegression(max_iter=2000).fit(split.x_train, split.y_train)
        self.target = build_target_from_objects(self.model, split.x_test, split.y_test, clip=(0, 1),
                                                name="digits")

    def label(self, x: np.ndarray) -> np.ndarray:
        out: np.ndarray = self.model.predict(x)
        return out


@pytest.fixture(scope="module")
def digits() -> Digits:
    return Digits()


def requests(x: np.ndarray, seed: int) -> list[np.ndarray]:
    """``x`` cut into requests of 1 to 16 rows, as clients send them."""
    rng = np.random.default_rng(seed)
    out, i = [], 0
    while i < len(x):
        size = int(rng.integers(1, 17))
        out.append(x[i:i + size])
        i += size
    return out


def benign(d: Digits, seed: int, n: int = 500) -> np.ndarray:
    return d.x_test[np.random.default_rng(seed).permutation(len(d.x_test))[:n]]


def synthetic(d: Digits, seed: int, n: int = 300) -> np.ndarray:
    """Small Gaussian perturbations of 10 training digits: PRADA's kind of extraction query."""
    rng = np.random.default_rng(seed)
    seeds = d.x_train[rng.choice(len(d.x_train), 10, replace=False)]
    x = seeds[rng.integers(0, 10, n)] + rng.normal(0, 0.05, (n, seeds.shape[1]))
    return np.clip(x, 0, 1).astype(np.float32)


def stream(mon: ExtractionMonitor, d: Digits, who: str, x: np.ndarray, seed: int) -> Alert | None:
    """Send ``x`` as ``who``; the first alert, or None."""
    for req in requests(x, seed):
        alert = mon.observe(who, req, d.label(req))
        if alert is not None:
            return alert
    return None


# --- settings -------------------------------------------------------------------------------

@pytest.mark.parametrize(("field", "value"), [
    ("threshold", 0), ("threshold", 1), ("threshold", 1.5), ("threshold", -0.1), ("threshold", float("nan")),
    ("threshold", True), ("threshold", "0.9"),
    ("min_queries", 2), ("min_queries", 0), ("min_queries", 50.0), ("min_queries", True),
    ("max_history", 10), ("max_history", 5001), ("max_history", 100.0), ("max_history", None),
    ("action", "deny"), ("action", ""), ("action", None),
])
def test_bad_settings_name_the_field_and_value(field: str, value: Any) -> None:
    with pytest.raises(ValueError) as e:
        MonitorSettings(**{field: value})
    msg = str(e.value)
    assert msg.startswith(field) and repr(value) in msg


def test_settings_defaults_and_keywords() -> None:
    s = MonitorSettings()
    assert (s.threshold, s.min_queries, s.max_history, s.action) == (0.9, 50, 2000, "alert")
    edge = MonitorSettings(min_queries=3, max_history=3, threshold=0.5, action="block")
    assert edge.max_history == 3 and isinstance(MonitorSettings(threshold=0.5).threshold, float)
    with pytest.raises(TypeError, match="treshold"):
        MonitorSettings(treshold=0.5)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        MonitorSettings(0.5)  # type: ignore[misc]
    with pytest.raises(TypeError, match="MonitorSettings"):
        ExtractionMonitor({"threshold": 0.5})  # type: ignore[arg-type]


# --- the statistic --------------------------------------------------------------------------

@pytest.mark.parametrize("n", [3, 4, 5, 6, 7, 11, 20, 50, 51, 199, 2000, 4999, 5000])
def test_w_equals_scipy_shapiro(n: int) -> None:
    rng = np.random.default_rng(n)
    for x in (rng.normal(size=n), rng.exponential(size=n), rng.uniform(size=n), rng.integers(0, 4, n) * 1.0,
              rng.standard_cauchy(size=n)):
        if np.ptp(x) == 0:
            continue
        assert shapiro_w(x) == pytest.approx(shapiro(x).statistic, abs=1e-7)


def test_w_undefined_and_out_of_range() -> None:
    assert shapiro_w(np.full(10, 2.5)) is None
    with pytest.raises(ValueError, match="3 to 5000"):
        shapiro_w(np.arange(2.0))
    with pytest.raises(ValueError, match="got 5001"):
        shapiro_w(np.arange(5001.0))


# --- the algorithm against the paper's, written plainly ---------------------------------------

def reference_prada(reqs: list[tuple[np.ndarray, np.ndarray]], s: MonitorSettings) -> list[float | None]:
    """Juuti et al.'s Algorithm 1 with lists and loops, the growing sets capped at
    ``max_history`` rows (the oldest evicted); W (scipy) after each request."""
    grow: dict[int, list[tuple[int, np.ndarray]]] = {}
    grew: dict[int, list[float]] = {}
    thr: dict[int, float] = {}
    dist: list[float] = []
    seq, out = 0, []
    for xb, yb in reqs:
        for x, c in zip(xb.reshape(len(xb), -1).astype(np.float64), yb.tolist(), strict=True):
            if not grow.get(c):
                grow.setdefault(c, []).append((seq, x))
                seq += 1
                thr.setdefault(c, 0.0)
                grew.setdefault(c, [])
            else:
                d = min(float(np.linalg.norm(g - x)) for _, g in grow[c])
                dist.append(d)
                if d > thr[c]:
                    grow[c].append((seq, x))
                    seq += 1
                    grew[c].append(d)
                    thr[c] = max(thr[c], float(np.mean(grew[c]) - np.std(grew[c])))
            if sum(len(v) for v in grow.values()) > s.max_history:
                oldest = min((v for v in grow.values() if v), key=lambda v: v[0][0])
                oldest.pop(0)
        w = None
        if len(dist) >= s.min_queries:
            window = np.array(dist[-s.max_history:])
            m, sd = window.mean(), window.std()
            kept = window[np.abs(window - m) <= 3 * sd]
            w = float(shapiro(kept).statistic)
        out.append(w)
    return out


def test_algorithm_matches_plain_reference(digits: Digits) -> None:
    s = MonitorSettings(threshold=1e-6, min_queries=20, max_history=60)
    x = np.vstack([benign(digits, 1, 150), synthetic(digits, 2, 150), benign(digits, 3, 100)])
    reqs = [(r, digits.label(r)) for r in requests(x, 4)]
    mon = ExtractionMonitor(s)
    ours = []
    for r, y in reqs:
        mon.observe("p", r, y)
        ours.append(mon.status("p")["statistic"])
    expected = reference_prada(reqs, s)
    assert [w is None for w in ours] == [w is None for w in expected]
    defined = [w for w in expected if w is not None]
    assert [w for w in ours if w is not None] == pytest.approx(defined, abs=1e-6)
    st = mon.status("p")
    assert st["rows"] == s.max_history  # the cap was reached and held: rows were evicted
    assert st["n"] > s.max_history  # and the distance window slid


def test_memory_is_bounded(digits: Digits) -> None:
    s = MonitorSettings(threshold=1e-6, min_queries=3, max_history=40)
    mon = ExtractionMonitor(s)
    rng = np.random.default_rng(0)
    for _ in range(50):  # noise grows the sets fast
        mon.observe("p", rng.uniform(0, 1, (16, 64)), rng.integers(0, 3, 16))
    st = mon.status("p")
    assert st["n"] > 700 and st["rows"] == 40
    state = mon._principals["p"]
    assert len(state.distances) == 40
    assert sum(len(c.grow) for c in state.classes.values()) == 40
    assert all(len(c.grow.rows) <= 2 * s.max_history for c in state.classes.values())


# --- natural vs synthetic traffic -----------------------------------------------------------

@pytest.mark.parametrize("seed", [0, 1, 2])
def test_benign_digits_do_not_alert(digits: Digits, seed: int) -> None:
    mon = ExtractionMonitor(MonitorSettings(action="block"))
    alert = stream(mon, digits, "client", benign(digits, seed), seed)
    st = mon.status("client")
    assert alert is None, alert
    assert st["n"] >= 490 and st["statistic"] is not None
    assert st["statistic"] >= 0.9, f"W = {st['statistic']:.3f}"


def test_synthetic_queries_alert_block_and_persist_until_reset(
    digits: Digits, caplog: pytest.LogCaptureFixture
) -> None:
    mon = ExtractionMonitor(MonitorSettings(action="block"))
    with caplog.at_level(logging.WARNING, logger="guard.defenses.access.monitor"):
        alert = stream(mon, digits, "thief", synthetic(digits, 0), 0)
    assert alert is not None and alert.blocked and alert.principal == "thief"
    assert alert.statistic < 0.9 and 50 <= alert.n <= 300
    assert "W = " in alert.reason and "\n" not in alert.reason
    assert [r.getMessage() for r in caplog.records] == [alert.reason]
    st = mon.status("thief")
    assert st == {"n": alert.n, "statistic": alert.statistic, "alerted": True, "rows": st["rows"]}
    later = benign(digits, 9, 5)
    assert mon.observe("thief", later, digits.label(later)) is alert  # natural queries do not clear it
    assert mon.status("thief")["n"] == alert.n
    assert mon.status("other") == {"n": 0, "statistic": None, "alerted": False, "rows": 0}
    mon.reset("thief")
    assert mon.status("thief")["alerted"] is False
    assert mon.observe("thief", later, digits.label(later)) is None


def test_alert_action_reports_without_blocking(digits: Digits) -> None:
    mon = ExtractionMonitor()
    alert = stream(mon, digits, "thief", synthetic(digits, 1), 1)
    assert alert is not None and not alert.blocked and "blocked" not in alert.reason


def test_guard_extraction_pool_is_not_caught(digits: Digits) -> None:
    """Honest limit: Guard's own extraction probes query natural digits and pass unseen."""
    from guard.attacks.extraction.queries import query_split

    pool = query_split(digits.target, 0, 600).pool[:500]
    mon = ExtractionMonitor()
    assert stream(mon, digits, "copycat", pool, 0) is None
    assert mon.status("copycat")["statistic"] >= 0.9


# --- bad input ------------------------------------------------------------------------------

@pytest.mark.parametrize(("x", "labels", "match"), [
    (np.zeros((3, 4)), np.zeros(2, dtype=int), "2 labels for 3 rows"),
    (np.array([[0.0, np.nan]]), np.zeros(1, dtype=int), "NaN or infinite"),
    (np.array([[np.inf, 0.0]]), np.zeros(1, dtype=int), "NaN or infinite"),
    (np.zeros(4), np.zeros(4, dtype=int), "non-empty batch"),
    (np.zeros((0, 4)), np.zeros(0, dtype=int), "non-empty batch"),
    (np.zeros((2, 0)), np.zeros(2, dtype=int), "no features"),
    (np.array([["a", "b"]]), np.zeros(1, dtype=int), "not a numeric array"),
    (np.zeros((2, 4)), np.zeros(2), "class indices"),
    (np.zeros((2, 4)), np.zeros((2, 1), dtype=int), "class indices"),
    (np.zeros((2, 4)), np.array([True, False]), "class indices"),
])
def test_bad_input_is_a_clear_value_error(x: Any, labels: Any, match: str) -> None:
    mon = ExtractionMonitor()
    with pytest.raises(ValueError, match=match):
        mon.observe("p", x, labels)
    assert mon.status("p")["n"] == 0


def test_feature_count_must_not_change_and_principal_is_a_string() -> None:
    mon = ExtractionMonitor()
    mon.observe("p", np.zeros((2, 4)), np.array([0, 0]))
    with pytest.raises(ValueError, match="5 features per row; earlier queries of 'p' had 4"):
        mon.observe("p", np.zeros((1, 5)), np.array([0]))
    with pytest.raises(ValueError, match="principal must be a string"):
        mon.observe(7, np.zeros((1, 4)), np.array([0]))  # type: ignore[arg-type]
    assert mon.status("p")["n"] == 1  # the duplicate query: distance 0, recorded once


# --- threads --------------------------------------------------------------------------------

def test_threads_match_a_serial_run(digits: Digits) -> None:
    traffic = {f"c{i}": [(r, digits.label(r)) for r in requests(
        synthetic(digits, i, 200) if i % 2 else benign(digits, i, 200), i)] for i in range(6)}
    settings = MonitorSettings(threshold=0.5, min_queries=20, max_history=100)
    serial = ExtractionMonitor(settings)
    for who, reqs in traffic.items():
        for r, y in reqs:
            serial.observe(who, r, y)
    shared = ExtractionMonitor(settings)
    errors: list[BaseException] = []
    start = threading.Barrier(len(traffic))

    def client(who: str) -> None:
        start.wait()
        try:
            for r, y in traffic[who]:
                shared.observe(who, r, y)
        except BaseException as exc:  # noqa: BLE001 (reported by the main thread)
            errors.append(exc)

    threads = [threading.Thread(target=client, args=(w,)) for w in traffic]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    for who in traffic:
        assert shared.status(who) == serial.status(who), who
    assert any(serial.status(w)["alerted"] for w in traffic)  # both outcomes are exercised
    assert not all(serial.status(w)["alerted"] for w in traffic)


def test_threads_on_one_principal_count_every_query(digits: Digits) -> None:
    x = benign(digits, 5, 480)
    labels = digits.label(x)
    mon = ExtractionMonitor(MonitorSettings(threshold=1e-6))
    chunks = np.array_split(np.arange(len(x)), 48)

    def client(parts: list[np.ndarray]) -> None:
        for idx in parts:
            mon.observe("p", x[idx], labels[idx])

    threads = [threading.Thread(target=client, args=(chunks[i::8],)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    classes = len(np.unique(labels))
    assert mon.status("p")["n"] == len(x) - classes  # each class's first query records no distance


# --- inside GuardedModel and the access policy ------------------------------------------------

POLICY = """
[roles.user]
permissions = ["predict", "predict_proba"]
[principals.thief]
roles = ["user"]
[principals.client]
roles = ["user"]
[monitor]
action = "block"
threshold = 0.9
"""


def test_guarded_model_blocks_extraction_suspected(digits: Digits, tmp_path: Path) -> None:
    f = tmp_path / "access.toml"
    f.write_text(POLICY)
    policy = AccessPolicy.load(f)
    assert policy.monitor == MonitorSettings(action="block")
    mon = ExtractionMonitor(policy.monitor)
    g = GuardedModel(digits.target.model, policy, monitor=mon)
    for req in requests(benign(digits, 0, 300), 0):
        assert g.predict(req, principal="client").labels is not None
    denied = None
    for req in requests(synthetic(digits, 0), 1):
        try:
            g.predict(req, principal="thief")
        except AccessDenied as exc:
            denied = exc
            break
    assert denied is not None and denied.status == 403 and denied.code == "extraction_suspected"
    with pytest.raises(AccessDenied) as again:
        g.predict(digits.x_test[:1], principal="thief", output="probabilities")
    assert again.value.code == "extraction_suspected"
    assert g.predict(digits.x_test[:1], principal="client").labels is not None
    mon.reset("thief")
    assert g.predict(digits.x_test[:1], principal="thief").labels is not None


def test_an_alert_that_does_not_block_reaches_the_audit_log(digits: Digits, tmp_path: Path) -> None:
    class Log:
        def __init__(self) -> None:
            self.records: list[dict[str, Any]] = []

        def append(self, fields: dict[str, Any]) -> None:
            self.records.append(fields)

    f = tmp_path / "access.toml"
    f.write_text(POLICY.replace('action = "block"', 'action = "alert"'))
    policy = AccessPolicy.load(f)
    log = Log()
    g = GuardedModel(digits.target.model, policy, monitor=ExtractionMonitor(policy.monitor), log=log)
    for req in requests(synthetic(digits, 0), 1):
        assert g.predict(req, principal="thief").labels is not None  # alerts, never blocks
    alerted = [r for r in log.records if r.get("alert")]
    assert alerted and all(r["outcome"] == "served" and r["principal"] == "thief" for r in alerted)
    assert "thief" in alerted[0]["alert"]


@pytest.mark.parametrize(("table", "named"), [
    ({"threshold": 2}, "threshold"),
    ({"min_queries": 1}, "min_queries"),
    ({"max_history": 10}, "max_history"),
    ({"action": "deny"}, "action"),
    ({"treshold": 0.5}, "treshold"),
])
def test_policy_rejects_bad_monitor_table(table: dict[str, Any], named: str, tmp_path: Path) -> None:
    data = {"roles": {}, "principals": {}, "monitor": table}
    with pytest.raises(ConfigError) as e:
        AccessPolicy.from_dict(data, base=tmp_path)
    msg = str(e.value)
    assert "monitor" in msg and named in msg and "\n" not in msg
    ok = AccessPolicy.from_dict({"monitor": {"threshold": 0.8, "min_queries": 30}}, base=tmp_path)
    assert ok.monitor == MonitorSettings(threshold=0.8, min_queries=30)
