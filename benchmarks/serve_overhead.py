"""The latency the guard adds to one request, over the bare model call, and end to end.

Run (from the repository root, in Guard's virtual environment)::

    .venv/bin/python benchmarks/serve_overhead.py --runs 5 --n 2000

The model is scikit-learn's logistic regression on the digits (64 features in [0, 1]), so
the model call itself is small and the guard's share shows. Each run times ``n`` one-row
requests, interleaved pair by pair so both sides see the same machine load:

* bare: ``adapter.predict_proba(x)`` on a float32 array;
* guarded: ``GuardedModel.predict(rows, token=..., output="labels")`` with the rows as the
  server hands them over (a list decoded from JSON), the sanitizer's validator (shape,
  range), token authentication, a budget charge (rate and total, one SQLite transaction),
  and one audit-log record (hash-chained, ``flock``; ``--fsync`` makes each durable).

"added" is the per-pair difference (guarded minus bare); its p50 and p99 are the numbers
to hold against the goal of under 1 ms p99. The components (authentication, budget charge,
log append, validation) are timed alone as well. End to end: ``guard serve`` (one worker,
a subprocess) answering one-row requests over a kept-alive HTTP connection on 127.0.0.1,
for context (JSON, HTTP and the event loop's hop to a worker thread included).

Each line shows the range (min-max) over the runs of each run's percentile; the machine is
shared (2 cores), so ranges are wide.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

POLICY = """
[roles.analyst]
permissions = ["predict"]
[principals.bench]
roles = ["analyst"]
budget = { per_minute = 1e9, total = 1000000000 }
"""
LAUNCH = ("from guard.cli import cli; from guard.cli.serve import serve; "
          "cli.add_command(serve); cli.main(prog_name='guard')")


def _setup(folder: Path, fsync: bool) -> dict[str, Any]:
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression

    from guard.build import build_target_from_objects
    from guard.defenses.access.auditlog import AuditLog
    from guard.defenses.access.guarded import GuardedModel
    from guard.defenses.access.policy import AccessPolicy
    from guard.defenses.sanitize import InputValidator, Sanitizer

    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype(np.float32)
    model = LogisticRegression(max_iter=1000).fit(x[:1000], y[:1000])
    target = build_target_from_objects(model, x[1000:], y[1000:], clip=(0.0, 1.0), name="digits")
    (folder / "access.toml").write_text(POLICY)
    policy = AccessPolicy.load(folder / "access.toml")
    log = AuditLog(folder / "audit.jsonl", fsync=fsync)
    validator = InputValidator.from_data(x, clip=(0.0, 1.0))
    guarded = GuardedModel(target.model, policy, sanitizer=Sanitizer(validator), log=log)
    token = guarded.tokens.create("bench")
    return {"x": x[1000:], "model": model, "target": target, "guarded": guarded, "token": token,
            "log": log, "policy": policy, "validator": validator}


def _timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter_ns()
    fn()
    return (time.perf_counter_ns() - start) / 1e3  # microseconds


def one_run(s: dict[str, Any], n: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    x, adapter, guarded, token = s["x"], s["target"].model, s["guarded"], s["token"]
    idx = rng.integers(0, len(x), size=n)
    bare, guard = np.empty(n), np.empty(n)
    for i, j in enumerate(idx):
        arr = x[j:j + 1]
        call_bare = partial(adapter.predict_proba, arr)
        call_guarded = partial(guarded.predict, arr.tolist(), token=token, output="labels")
        if i % 2 == 0:
            bare[i], guard[i] = _timed(call_bare), _timed(call_guarded)
        else:
            guard[i], bare[i] = _timed(call_guarded), _timed(call_bare)
    return {"bare": bare, "guarded": guard, "added": guard - bare}


def components(s: dict[str, Any], n: int) -> dict[str, np.ndarray]:
    guarded, token, x = s["guarded"], s["token"], s["x"]
    budget = s["policy"].principals["bench"].budget
    rows = x[:1].tolist()
    record = {"principal": "bench", "operation": "labels", "n": 1, "input_sha256": "0" * 64,
              "outcome": "served", "status": 200, "reason": None, "time_unix": 0.0}
    calls: dict[str, Callable[[], object]] = {
        "token authentication": partial(guarded.tokens.authenticate, token),
        "budget charge": partial(guarded.ledger.charge, "bench", 1, budget),
        "audit log append": lambda: s["log"].append(dict(record)),
        "input validation": partial(s["validator"].check, rows),
    }
    return {name: np.array([_timed(call) for _ in range(n)]) for name, call in calls.items()}


def http_run(folder: Path, s: dict[str, Any], n: int) -> np.ndarray:
    import skops.io

    from guard.defenses.access.policy import AccessPolicy
    from guard.defenses.access.tokens import TokenStore

    x = s["x"]
    skops.io.dump(s["model"], folder / "model.skops")
    np.savez(folder / "eval.npz", x=x[:50], y=np.zeros(50, dtype=np.int64))
    token = TokenStore(AccessPolicy.load(folder / "access.toml").state).create("bench")
    server = subprocess.Popen(
        [sys.executable, "-c", LAUNCH, "serve", "--model", str(folder / "model.skops"), "--data",
         str(folder / "eval.npz"), "--clip", "0,1", "--policy", str(folder / "access.toml"), "--port", "0",
         "--log", str(folder / "http-audit.jsonl")],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        port = int(line.split("127.0.0.1:")[1].split()[0])
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
        out = np.empty(n)
        for i in range(n + 50):
            body = json.dumps({"inputs": x[i % len(x):i % len(x) + 1].tolist()}).encode()
            start = time.perf_counter_ns()
            conn.request("POST", "/v1/predict", body=body, headers=headers)
            response = conn.getresponse()
            response.read()
            if response.status != 200:
                raise RuntimeError(f"HTTP {response.status}")
            if i >= 50:  # the first requests warm the worker thread pool and the caches
                out[i - 50] = (time.perf_counter_ns() - start) / 1e3
        conn.close()
        return out
    finally:
        server.terminate()
        server.wait(timeout=60)


def _pct(values: list[np.ndarray], q: float) -> str:
    per_run = [float(np.percentile(v, q)) for v in values]
    lo, hi = min(per_run), max(per_run)
    return f"{lo:.0f}-{hi:.0f}" if hi - lo >= 1 else f"{lo:.0f}"


def _row(label: str, values: list[np.ndarray]) -> str:
    return f"{label:34}" + "".join(f"{_pct(values, q):>14}" for q in (50, 90, 99))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--n", type=int, default=2000, help="one-row requests per run")
    parser.add_argument("--http", type=int, default=1000, help="HTTP requests per run (0: skip)")
    parser.add_argument("--fsync", action="store_true", help="fsync each audit record")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        s = _setup(folder, args.fsync)
        one_run(s, 200, seed=-1 % 2**32)  # warm-up: caches, SQLite pages, the log's tail
        runs = [one_run(s, args.n, seed) for seed in range(args.runs)]
        parts = [components(s, args.n) for _ in range(args.runs)]
        s["log"].close()
        web = [http_run(folder, s, args.http) for _ in range(args.runs)] if args.http else []
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    out = [f"# guard serve overhead: {platform.platform()}, {os.cpu_count()} CPUs, "
           f"Python {platform.python_version()}, {time.strftime('%Y-%m-%d')}, load average {load}",
           f"# {args.runs} runs x {args.n} one-row requests; audit log fsync "
           f"{'on' if args.fsync else 'off'}; microseconds, range over runs",
           f"{'':34}{'p50':>14}{'p90':>14}{'p99':>14}"]
    for key, label in (("bare", "bare model.predict_proba"), ("guarded", "GuardedModel.predict"),
                       ("added", "added by the guard (paired)")):
        out.append(_row(label, [r[key] for r in runs]))
    for name in parts[0]:
        out.append(_row(f"  {name}", [p[name] for p in parts]))
    if web:
        out.append(_row("HTTP end to end (1 worker)", web) + f"   ({args.http} requests a run)")
    print("\n".join(out))  # noqa: T201


if __name__ == "__main__":
    main()
