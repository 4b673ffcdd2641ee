"""Append latency of guard.defenses.access.auditlog.AuditLog: p50 / p99 with 95% intervals.

Intervals are distribution-free (order statistics: ranks n*q -/+ 1.96*sqrt(n*q*(1-q))).
Run: python benchmarks/auditlog_append.py [folder]   (results: docs/benchmarks.md)
"""
import math
import multiprocessing as mp
import sys
import tempfile
import time
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from guard.defenses.access.auditlog import AuditLog, verify_log

FIELDS = {"principal": "alice", "operation": "labels", "n": 32, "outcome": "served", "status": 200,
          "reason": None, "input_sha256": "ab" * 32}


def quantile_ci(xs, q):
    xs = sorted(xs)
    n = len(xs)
    half = 1.96 * math.sqrt(n * q * (1 - q))
    lo, hi = max(0, math.floor(n * q - half)), min(n - 1, math.ceil(n * q + half))
    return xs[min(n - 1, int(n * q))], xs[lo], xs[hi]


def measure(path, n, **kw):
    log = AuditLog(path, **kw)
    for _ in range(50):  # warm-up
        log.append(dict(FIELDS, time_unix=time.time()))
    out = []
    for _ in range(n):
        rec = dict(FIELDS, time_unix=time.time())
        t0 = time.perf_counter_ns()
        log.append(rec)
        out.append((time.perf_counter_ns() - t0) / 1000)
    log.close()
    return out


def _proc(path, n, start, q):
    log = AuditLog(Path(path), hmac_key=b"k" * 32)
    start.wait(60)
    out = []
    for _ in range(n):
        t0 = time.perf_counter_ns()
        log.append(dict(FIELDS, time_unix=time.time()))
        out.append((time.perf_counter_ns() - t0) / 1000)
    q.put(out)


def report(name, xs):
    p50, l50, h50 = quantile_ci(xs, 0.5)
    p99, l99, h99 = quantile_ci(xs, 0.99)


if __name__ == "__main__":
    folder = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp())
    key, signer = b"k" * 32, Ed25519PrivateKey.generate()
    report("chain only, fsync off", measure(folder / "a.log", 5000))
    report("chain + HMAC, fsync off", measure(folder / "b.log", 5000, hmac_key=key))
    report("chain + HMAC + Ed25519, fsync off",
           measure(folder / "c.log", 5000, hmac_key=key, signing_key=signer))
    report("chain + HMAC, fsync on", measure(folder / "d.log", 1000, hmac_key=key, fsync=True))
    report("chain + HMAC + Ed25519, fsync on",
           measure(folder / "e.log", 1000, hmac_key=key, signing_key=signer, fsync=True))
    ctx = mp.get_context("spawn")
    start, q = ctx.Barrier(4), ctx.Queue()
    ps = [ctx.Process(target=_proc, args=(str(folder / "f.log"), 2000, start, q)) for _ in range(4)]
    for p in ps:
        p.start()
    allx = [x for _ in ps for x in q.get(timeout=120)]
    for p in ps:
        p.join()
    report("4 processes at once, chain + HMAC, fsync off (per append)", allx)
    t0 = time.perf_counter()
    c = verify_log(folder / "c.log", hmac_key=key, public_key=signer.public_key())
    dt = time.perf_counter() - t0
    f = verify_log(folder / "f.log", hmac_key=key)
