"""PRADA extraction monitoring (``guard.defenses.access.monitor``): detection, false alarms, cost.

Run (from the repository root, in Guard's virtual environment)::

    .venv/bin/python benchmarks/monitor_detection.py --seed 0    # about 3 minutes on 2 cores

The served model is a logistic regression on ``guard.demo.digits_split`` (flattened, scaled to
[0, 1]; 1,197 training and 600 test digits); every query is answered by it and the predicted
label goes to ``ExtractionMonitor.observe`` as ``GuardedModel`` sends it. Each principal is a
fresh monitor state; requests hold 1 to 16 rows (uniform) unless the row says otherwise.

* benign: the 600 held-out test digits in a random order per principal, its first ``--benign-
  queries`` (500); a false alarm is any alert among them.
* Guard's extraction attack (``extraction.copycat`` / ``knockoff``): the queries its query
  generator makes (``guard.attacks.extraction.queries.query_split``: the training digits in a
  seeded permutation), as is, both in requests of 1-16 and in its endpoint batches of 256;
  natural in-distribution data, which PRADA is not expected to catch.
* JbDA (Papernot et al. 2017, PRADA's main scenario): 10 training digits as seeds, then rounds
  that double the set, each new query ``clip(x + 0.1 * sign(dp_c/dx))`` with the gradient of
  a softmax-regression substitute trained on the answers so far.
* JbDA after a warm-up: 200 natural training digits first (an attacker who knows PRADA
  and pads its history with natural queries), then JbDA.
* T-RND (Juuti et al.'s random variant): the same rounds with a random sign instead.
* seed perturbations: one of 10 training digits plus Gaussian noise (sigma 0.05), clipped.
* uniform noise: each pixel uniform in [0, 1].

Attackers send up to ``--attack-queries`` (1,000) queries and stop at the first alert; the
detection rate is the share alerted, queries-to-alert counts the rows up to the request that
alerted. Rates carry n and a 95% Wilson interval. The threshold table replays the recorded W
of every request (W does not depend on the threshold or ``min_queries``, only on when it is
acted on), so it shows what other settings would have done on the same traffic.

Cost: ``observe`` for one 1-row request in the worst case: the principal holds 2,000
distances and 2,000 growing-set rows (the default caps), all of the query's class; p50 and
p99 over ``--timing-calls`` calls, for 64 features (digits), 784 (MNIST) and 3,072 (CIFAR).
"""

from __future__ import annotations

import argparse
import datetime
import logging
import os
import platform
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

if TYPE_CHECKING:
    from guard.target import Target

THRESHOLDS = (0.8, 0.85, 0.875, 0.9, 0.925, 0.95)
MIN_QUERIES = (20, 30, 50, 100)
SEEDS_PER_ATTACK = 10
LAMBDA = 0.1
SIGMA = 0.05


def say(text: str) -> None:
    print(text, flush=True)  # noqa: T201  (a benchmark reports on stdout)


@dataclass
class Model:
    """The served model: ``label(x)`` is what the monitor is told."""

    estimator: Any
    x_train: np.ndarray
    x_test: np.ndarray
    target: Target

    def label(self, x: np.ndarray) -> np.ndarray:
        out: np.ndarray = self.estimator.predict(x)
        return out


def served_model() -> Model:
    from sklearn.linear_model import LogisticRegression

    from guard.build import build_target_from_objects
    from guard.demo import digits_split

    split = digits_split(image=False)
    est = LogisticRegression(max_iter=2000).fit(split.x_train, split.y_train)
    target = build_target_from_objects(est, split.x_test, split.y_test, clip=(0, 1), name="digits-lr",
                                       x_train=split.x_train, y_train=split.y_train)
    return Model(est, split.x_train, split.x_test, target)


def requests(queries: np.ndarray, rng: np.random.Generator, batch: int | None) -> Iterator[slice]:
    """The queries cut into requests of ``batch`` rows, or of 1-16 rows when None."""
    i = 0
    while i < len(queries):
        size = batch if batch is not None else int(rng.integers(1, 17))
        yield slice(i, i + size)
        i += size


# --- the traffic -----------------------------------------------------------------------------

def benign(m: Model, rng: np.random.Generator, n: int) -> np.ndarray:
    return m.x_test[rng.permutation(len(m.x_test))[:n]]


def guard_attack(m: Model, seed: int, n: int) -> np.ndarray:
    from guard.attacks.extraction.queries import query_split

    pool: np.ndarray = query_split(m.target, seed, 10_000).pool
    return pool[:n]


def _softmax_jacobian_sign(sub: Any, x: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """sign(d p_c / d x) of a fitted multinomial LogisticRegression, c the target's label:
    p_c (W_c - sum_j p_j W_j)."""
    w: np.ndarray = sub.coef_
    classes = list(sub.classes_)
    p: np.ndarray = sub.predict_proba(x)
    if w.shape[0] == 1:  # two classes: sklearn keeps one row
        w = np.vstack([-w, w]) / 2
    grads = np.empty_like(x)
    mean_w = p @ w
    for i, c in enumerate(labels):
        if c in classes:
            k = classes.index(c)
            grads[i] = p[i, k] * (w[k] - mean_w[i])
        else:  # the substitute never saw this class: push away from its average
            grads[i] = -mean_w[i]
    out: np.ndarray = np.sign(grads)
    return out


def augmentation(m: Model, rng: np.random.Generator, n: int, jacobian: bool) -> np.ndarray:
    """JbDA (``jacobian``) or T-RND: 10 seeds, then rounds doubling the set; the order the
    attacker sends them in (the seeds, then each round's new points)."""
    from sklearn.linear_model import LogisticRegression

    x = m.x_train[rng.choice(len(m.x_train), 10, replace=False)]
    y = m.label(x)
    sent = [x]
    while sum(len(s) for s in sent) < n:
        if jacobian and len(np.unique(y)) >= 2:
            sub = LogisticRegression(max_iter=500).fit(x, y)
            step = _softmax_jacobian_sign(sub, x, y)
        else:
            step = rng.choice(np.array([-1.0, 1.0], dtype=np.float32), size=x.shape)
        new = np.clip(x + LAMBDA * step, 0, 1).astype(np.float32)
        sent.append(new)
        x, y = np.vstack([x, new]), np.concatenate([y, m.label(new)])
    return np.vstack(sent)[:n]


def perturbations(m: Model, rng: np.random.Generator, n: int) -> np.ndarray:
    seeds = m.x_train[rng.choice(len(m.x_train), 10, replace=False)]
    out = seeds[rng.integers(0, 10, n)] + rng.normal(0.0, SIGMA, (n, seeds.shape[1]))
    return np.clip(out, 0, 1).astype(np.float32)


def noise(rng: np.random.Generator, n: int, features: int) -> np.ndarray:
    return rng.uniform(0, 1, (n, features)).astype(np.float32)


# --- running the monitor ------------------------------------------------------------------

@dataclass
class Trace:
    """One principal: after each request, the rows sent so far, the distances recorded and W."""

    sent: list[int]
    n: list[int]
    w: list[float | None]


def trace(queries: np.ndarray, labels: np.ndarray, rng: np.random.Generator, batch: int | None) -> Trace:
    """W after every request, with a monitor that never alerts (the threshold at 1e-9 and
    tests from the third distance): what any threshold and ``min_queries`` would have seen.
    ``labels``: the model's answers to all the queries (a row's label does not depend on the
    request it comes in)."""
    from guard.defenses.access.monitor import ExtractionMonitor, MonitorSettings

    mon = ExtractionMonitor(MonitorSettings(threshold=1e-9, min_queries=3))
    t = Trace([], [], [])
    for req in requests(queries, rng, batch):
        mon.observe("p", queries[req], labels[req])
        sent = min(req.stop, len(queries))
        st = mon.status("p")
        t.sent.append(sent)
        t.n.append(st["n"])
        t.w.append(st["statistic"])
    return t


def first_alert(t: Trace, threshold: float, min_queries: int) -> int | None:
    for sent, n, w in zip(t.sent, t.n, t.w, strict=True):
        if n >= min_queries and w is not None and w < threshold:
            return sent
    return None


def live(queries: np.ndarray, labels: np.ndarray, rng: np.random.Generator, batch: int | None) -> int | None:
    """The real monitor with its default settings: rows sent up to the alert, or None."""
    from guard.defenses.access.monitor import ExtractionMonitor

    mon = ExtractionMonitor()
    for req in requests(queries, rng, batch):
        if mon.observe("p", queries[req], labels[req]) is not None:
            return min(req.stop, len(queries))
    return None


def rate(hits: int, n: int) -> str:
    from guard.stats import wilson_interval

    lo, hi = wilson_interval(hits, n)
    return f"{hits}/{n} = {hits / n:.2f} [{lo:.2f}, {hi:.2f}]"


def median_queries(values: list[int]) -> str:
    if not values:
        return "-"
    q = np.percentile(values, [25, 50, 75])
    return f"{q[1]:.0f} (IQR {q[0]:.0f}-{q[2]:.0f})"


# --- cost ---------------------------------------------------------------------------------

def observe_cost(features: int, calls: int, seed: int) -> tuple[float, float]:
    """p50 and p99 microseconds of a 1-row observe, the worst case: ``max_history`` distances
    and ``max_history`` growing-set rows held, all of one class, the class of the query. The
    queries drift along a line (plus noise), so most of them grow the set and it stays full."""
    from guard.defenses.access.monitor import ExtractionMonitor, MonitorSettings

    rng = np.random.default_rng(seed)
    settings = MonitorSettings(threshold=1e-9)  # never alerts: an alerted principal is cheap
    mon = ExtractionMonitor(settings)
    step = np.full(features, 0.01, dtype=np.float32)
    fill = 4 * settings.max_history
    xs = (np.arange(fill + calls, dtype=np.float32)[:, None] * step
          + rng.uniform(0, 0.001, (fill + calls, features)).astype(np.float32))
    for i in range(0, fill, 64):
        mon.observe("p", xs[i:i + 64], np.zeros(64, dtype=np.int64))
    st = mon.status("p")
    if st["n"] < settings.max_history or st["rows"] < settings.max_history:
        raise RuntimeError(f"the timing state did not fill: {st}")
    label = np.zeros(1, dtype=np.int64)
    times = np.empty(calls)
    for i in range(calls):
        row = xs[fill + i:fill + i + 1]
        start = time.perf_counter_ns()
        mon.observe("p", row, label)
        times[i] = time.perf_counter_ns() - start
    p50, p99 = np.percentile(times / 1000.0, [50, 99])
    return float(p50), float(p99)


# --- main ---------------------------------------------------------------------------------

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--benign", type=int, default=200, help="benign principals (default 200)")
    parser.add_argument("--benign-queries", type=int, default=500, help="queries each (at most 600)")
    parser.add_argument("--attackers", type=int, default=50, help="principals per attack (default 50)")
    parser.add_argument("--attack-queries", type=int, default=1000)
    parser.add_argument("--timing-calls", type=int, default=3000)
    args = parser.parse_args()
    if not 1 <= args.benign_queries <= 600:
        parser.error("--benign-queries must be 1 to 600 (the held-out digits)")
    if not 201 <= args.attack_queries <= 1197:
        parser.error("--attack-queries must be 201 to 1197 (the warm-up sends 200 training digits first)")
    from guard.defenses.access.monitor import MonitorSettings

    logging.getLogger("guard.defenses.access.monitor").setLevel(logging.ERROR)  # the alerts are counted
    start = time.perf_counter()
    m = served_model()
    root = np.random.SeedSequence(args.seed)
    n_att, q = args.attackers, args.attack_queries
    features = m.x_train.shape[1]
    Gen = Callable[[int, np.random.Generator], np.ndarray]
    scenarios: list[tuple[str, bool, int | None, int, Gen]] = [
        ("benign: held-out digits", True, None, args.benign, lambda s, r: benign(m, r, args.benign_queries)),
        ("benign: held-out digits, 1 row per request", True, 1, args.benign,
         lambda s, r: benign(m, r, args.benign_queries)),
        ("Guard extraction queries (natural pool)", False, None, n_att, lambda s, r: guard_attack(m, s, q)),
        ("Guard extraction queries, batches of 256", False, 256, n_att, lambda s, r: guard_attack(m, s, q)),
        ("JbDA (Jacobian augmentation, lambda 0.1)", False, None, n_att,
         lambda s, r: augmentation(m, r, q, jacobian=True)),
        ("JbDA after 200 natural digits (warm-up)", False, None, n_att,
         lambda s, r: np.vstack([guard_attack(m, s, 200), augmentation(m, r, q - 200, jacobian=True)])),
        ("T-RND (random-sign augmentation, 0.1)", False, None, n_att,
         lambda s, r: augmentation(m, r, q, jacobian=False)),
        ("perturbations of 10 seeds (sigma 0.05)", False, None, n_att, lambda s, r: perturbations(m, r, q)),
        ("uniform noise", False, None, n_att, lambda s, r: noise(r, q, features)),
    ]
    d = MonitorSettings()
    say(f"# PRADA monitor on digits (logistic regression), {platform.machine()} "
        f"{os.cpu_count()} CPUs, {datetime.date.today().isoformat()}, seed {args.seed}")
    say(f"defaults: threshold {d.threshold}, min_queries {d.min_queries}, max_history {d.max_history}; "
        "rates are alerted/n = share [95% Wilson]")
    say("")
    say("| traffic | rows/request | alerted (default settings) | queries to alert, median | "
        "lowest W from min_queries on, 5th / 50th / 95th pct |")
    say("|---|---|---|---|---|")
    traces: dict[str, tuple[bool, list[Trace]]] = {}
    children = root.spawn(len(scenarios))
    for (name, is_benign, batch, count, gen), child in zip(scenarios, children, strict=True):
        results: list[int | None] = []
        ts: list[Trace] = []
        for i, sub in enumerate(child.spawn(count)):
            queries = gen(args.seed * 1000 + i, np.random.default_rng(sub))
            labels = m.label(queries)
            traffic = np.random.SeedSequence(sub.entropy, spawn_key=(*sub.spawn_key, 1))
            results.append(live(queries, labels, np.random.default_rng(traffic), batch))
            t = trace(queries, labels, np.random.default_rng(traffic), batch)
            if first_alert(t, d.threshold, d.min_queries) != results[-1]:
                raise RuntimeError(f"{name}: the replayed trace disagrees with the live monitor")
            ts.append(t)
        traces[name] = (is_benign, ts)
        alerted = [r for r in results if r is not None]
        lows = [min((w for n, w in zip(t.n, t.w, strict=True) if n >= d.min_queries and w is not None),
                    default=float("nan")) for t in ts]
        rows = "1-16" if batch is None else str(batch)
        p5, p50, p95 = np.nanpercentile(lows, [5, 50, 95])
        say(f"| {name} | {rows} | {rate(len(alerted), count)} | {median_queries(alerted)} | "
            f"{p5:.3f} / {p50:.3f} / {p95:.3f} |")
    say("")
    say("Other settings on the same traffic (false alarms: benign, requests of 1-16 rows and of 1 row; "
        "detection: JbDA, T-RND and perturbations pooled):")
    say("")
    say("| threshold | min_queries | false alarms, 1-16 rows | false alarms, 1 row | detected (synthetic) | "
        "median queries to alert |")
    say("|---|---|---|---|---|---|")
    pooled = (scenarios[4][0], scenarios[6][0], scenarios[7][0])  # JbDA, T-RND, perturbations
    synthetic = [t for name in pooled for t in traces[name][1]]
    benign_sets = [traces[scenarios[0][0]][1], traces[scenarios[1][0]][1]]
    for mq in MIN_QUERIES:
        for th in THRESHOLDS:
            fas = [rate(sum(first_alert(t, th, mq) is not None for t in ts), len(ts)) for ts in benign_sets]
            hits = [a for a in (first_alert(t, th, mq) for t in synthetic) if a is not None]
            say(f"| {th} | {mq} | {fas[0]} | {fas[1]} | {rate(len(hits), len(synthetic))} | "
                f"{median_queries(hits)} |")
    say("")
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    say(f"observe() of one 1-row request, {d.max_history} distances and {d.max_history} growing-set rows "
        f"held, all of the query's class, {args.timing_calls} calls (load average {load}):")
    say("")
    say("| features | p50 us | p99 us |")
    say("|---|---|---|")
    for f in (features, 784, 3072):
        p50, p99 = observe_cost(f, args.timing_calls, args.seed)
        say(f"| {f} | {p50:.0f} | {p99:.0f} |")
    say("")
    say(f"({time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
