"""The real ``guard serve``: checks that refuse to serve (exit 1 or 2, before a socket opens),
and two worker processes under concurrent load sharing one budget ledger and one audit log."""

from __future__ import annotations

import collections
import contextlib
import http.client
import json
import os
import pickle
import signal
import socket
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import numpy as np
import pytest
import skops.io
import torch
from click.testing import CliRunner
from sklearn.linear_model import LogisticRegression

with warnings.catch_warnings():  # starlette asks for httpx2 under its test client; httpx works
    warnings.filterwarnings("ignore", message=".*httpx2")
    from fastapi.testclient import TestClient

from guard.cli import GuardGroup, cli
from guard.cli.serve import serve
from guard.defenses.access.auditlog import verify_log
from guard.defenses.access.policy import AccessPolicy
from guard.defenses.access.tokens import TokenStore
from guard.defenses.crypto.keys import load_key_file
from guard.defenses.serve import CONFIG_ENV, ServeConfig, factory
from guard.demo import DigitsCNN
from guard.errors import ConfigError

LAUNCH = ("from guard.cli import cli; from guard.cli.serve import serve; "
          "cli.add_command(serve); cli.main(prog_name='guard')")
POLICY = """
[roles.analyst]
permissions = ["predict"]
[roles.scientist]
permissions = ["predict", "predict_proba"]
output = { round = 3 }
[principals.free]
roles = ["analyst"]
[principals.capped]
roles = ["analyst"]
budget = { total = 40 }
[principals.sci]
roles = ["scientist"]
"""
BUDGET = 40
KINDS = ("free", "capped", "bad", "capped", "sci", "none", "capped", "capped")
"""Who sends request i (round robin): half of all requests spend the capped principal's budget."""


@click.group(cls=GuardGroup)
def _group() -> None:
    """``guard`` with ``serve`` (registered here as guard.cli registers its commands)."""


_group.add_command(serve)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory, logreg: LogisticRegression,
          digits: dict[str, np.ndarray]) -> dict[str, Path]:
    """A scikit-learn model (.skops, served without data) and a signed torch state dict with
    example inputs (what the worker processes load: torch imports faster than skops' scan)."""
    folder = tmp_path_factory.mktemp("serve")
    paths = {"model": folder / "digits.skops", "policy": folder / "access.toml",
             "net": folder / "cnn.pt", "data": folder / "eval.npz", "signer": folder / "signer.pem",
             "manifest": folder / "cnn.sig.json"}
    skops.io.dump(logreg, paths["model"])
    torch.manual_seed(0)
    torch.save(DigitsCNN().state_dict(), paths["net"])
    np.savez(paths["data"], x=digits["x_test"][:40], y=digits["y_test"][:40])
    paths["policy"].write_text(POLICY)
    runner = CliRunner()
    assert runner.invoke(cli, ["keygen", "--signing", "-o", str(paths["signer"])]).exit_code == 0
    signed = runner.invoke(cli, ["sign", str(paths["net"]), "--key", str(paths["signer"]),
                                 "-o", str(paths["manifest"])])
    assert signed.exit_code == 0, signed.output
    return paths


def _run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(_group, ["serve", *args])
    return result.exit_code, result.output


def test_refuses_to_serve_what_guard_audit_refuses(files: dict[str, Path], tmp_path: Path) -> None:
    base = ["--policy", str(files["policy"]), "--port", "0"]
    evil = tmp_path / "model.pkl"
    evil.write_bytes(pickle.dumps(_Evil()))
    code, out = _run("--model", str(evil), "--unsafe-allow-pickle", *base)
    assert code == 2 and "refused by the scan" in out

    tampered = tmp_path / files["net"].name
    data = bytearray(files["net"].read_bytes())
    data[len(data) // 2] ^= 1
    tampered.write_bytes(bytes(data))
    (tmp_path / files["manifest"].name).write_bytes(files["manifest"].read_bytes())
    code, out = _run("--model", str(tampered), "--arch", "guard.demo:DigitsCNN", "--data", str(files["data"]),
                     "--verify-with", f"{files['signer']}.pub", "--manifest",
                     str(tmp_path / files["manifest"].name), *base)
    assert code == 1 and files["net"].name in out

    code, out = _run("--model", str(files["net"]), "--arch", "guard.demo:DigitsCNN", *base)
    assert code == 2 and "needs --data" in out

    code, out = _run("--model", str(files["model"]), "--host", "0.0.0.0", *base)  # noqa: S104
    assert code == 2 and "--allow-remote" in out
    code, out = _run("--model", str(files["model"]), "--max-body", "lots", *base)
    assert code == 2 and "not a size" in out
    code, out = _run("--model", str(files["model"]), "--log-hmac-key-env", "NOPE", *base)
    assert code == 2 and "--log FILE" in out
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        code, out = _run("--model", str(files["model"]), "--policy", str(files["policy"]),
                         "--port", str(busy.getsockname()[1]))
    assert code == 2 and "cannot listen" in out


def test_a_worker_loads_its_app_from_the_configuration(files: dict[str, Path], tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch,
                                                       digits: dict[str, np.ndarray]) -> None:
    """What each ``--workers N`` process runs: the factory reads the CLI's JSON configuration
    and loads the model itself, through the same checks (here: the signature)."""
    policy = tmp_path / "access.toml"
    policy.write_text(POLICY)
    key = tmp_path / "log.key"
    assert CliRunner().invoke(cli, ["keygen", "-o", str(key)]).exit_code == 0
    config = ServeConfig(model=str(files["net"]), arch="guard.demo:DigitsCNN", data=str(files["data"]),
                         clip="0,1", policy=str(policy), log=str(tmp_path / "audit.jsonl"),
                         log_hmac_key=str(key), verify_with=f"{files['signer']}.pub",
                         manifest=str(files["manifest"]))
    path = tmp_path / "serve.json"
    path.write_text(config.to_json())
    assert ServeConfig.from_json(path.read_text()) == config
    monkeypatch.setenv(CONFIG_ENV, str(path))
    token = TokenStore(AccessPolicy.load(policy).state).create("sci")
    x = digits["x_test"][:3]
    with TestClient(factory()) as client:  # the lifespan closes the log the factory opened
        r = client.post("/v1/predict", json={"inputs": x.tolist(), "output": "probabilities"},
                        headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 200
        net = DigitsCNN()
        net.load_state_dict(torch.load(files["net"], weights_only=True))
        expected = torch.softmax(net.eval()(torch.from_numpy(x)), dim=1).detach().numpy()
        assert np.allclose(r.json()["probabilities"], np.round(expected, 3), atol=1e-3)
    check = verify_log(tmp_path / "audit.jsonl", hmac_key=load_key_file(key).key)
    assert check.ok and check.records == 1 and check.hmac
    wrong = verify_log(tmp_path / "audit.jsonl", hmac_key=b"k" * 32)
    assert not wrong.ok and wrong.first_bad == 1

    path.write_text(json.dumps({**json.loads(config.to_json()), "modle": "x"}))
    with pytest.raises(ConfigError, match="unknown key 'modle'"):
        factory()
    path.write_text("{")
    with pytest.raises(ConfigError, match="not valid JSON"):
        factory()
    monkeypatch.delenv(CONFIG_ENV)
    with pytest.raises(ConfigError, match=CONFIG_ENV):
        factory()


def test_the_listening_socket_says_tcp() -> None:
    """asyncio sets TCP_NODELAY only on sockets created with IPPROTO_TCP; without it every
    answer waits out the client's delayed ACK (40 ms a request on Linux)."""
    from guard.cli.serve import _bind

    with contextlib.closing(_bind("127.0.0.1", 0)) as sock:
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_PROTOCOL) == socket.IPPROTO_TCP


class _Evil:
    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (os.system, ("echo pwned",))


@dataclass
class Server:
    process: subprocess.Popen[str]
    port: int
    log: Path
    tokens: dict[str, str | None]
    ready_line: str


@contextlib.contextmanager
def _serving(files: dict[str, Path], folder: Path, workers: int) -> Iterator[Server]:
    """``guard serve`` in a subprocess on a free loopback port, with a fresh policy state
    (tokens, budgets) and audit log in ``folder``; killed if a test leaves it running."""
    policy = folder / "access.toml"
    policy.write_text(POLICY)
    store = TokenStore(AccessPolicy.load(policy).state)
    tokens: dict[str, str | None] = {p: store.create(p) for p in ("free", "capped", "sci")}
    tokens |= {"bad": "grd_0badf00d_" + "A" * 43, "none": None}
    log = folder / "audit.jsonl"
    process = subprocess.Popen(
        [sys.executable, "-c", LAUNCH, "serve", "--model", str(files["net"]),
         "--arch", "guard.demo:DigitsCNN", "--data", str(files["data"]), "--clip", "0,1",
         "--policy", str(policy), "--verify-with", f"{files['signer']}.pub",
         "--manifest", str(files["manifest"]), "--workers", str(workers), "--port", "0", "--log", str(log)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=folder,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()  # the one line printed once a worker answers /healthz
        if not line.startswith("serving on http://127.0.0.1:"):
            process.kill()
            pytest.fail(f"guard serve did not start: {line!r} {process.communicate(timeout=30)}")
        port = int(line.split("127.0.0.1:")[1].split()[0])
        plural = "s" if workers > 1 else ""
        assert line.strip() == f"serving on http://127.0.0.1:{port} ({workers} worker{plural}, " \
                               f"policy {policy}, log {log})"
        yield Server(process, port, log, tokens, line.strip())
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=30)


def _stop(server: Server, sig: signal.Signals) -> None:
    """A clean shutdown: exit 0 once the requests in flight are answered and the log closed."""
    server.process.send_signal(sig)
    _, err = server.process.communicate(timeout=60)
    assert server.process.returncode == 0 and "stopped" in err, err


def _predict(port: int, token: str | None, row: Any) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    try:
        conn.request("POST", "/v1/predict", body=json.dumps({"inputs": [row]}).encode(), headers=headers)
        response = conn.getresponse()
        body = json.loads(response.read())
        assert ("labels" in body) == (response.status == 200)
        return response.status
    finally:
        conn.close()


def _load(ports: list[int], tokens: dict[str, str | None], rows: np.ndarray, threads: int,
          per_thread: int) -> list[tuple[str, int]]:
    """``threads`` clients sending ``per_thread`` one-row requests each, all at once, to the
    servers on ``ports`` in turn."""
    start = threading.Barrier(threads)

    def client(t: int) -> list[tuple[str, int]]:
        start.wait(timeout=60)
        out = []
        for j in range(per_thread):
            i = t * per_thread + j
            kind, port = KINDS[i % len(KINDS)], ports[i % len(ports)]
            out.append((kind, _predict(port, tokens[kind], rows[i % len(rows)].tolist())))
        return out

    with ThreadPoolExecutor(threads) as pool:
        return [r for chunk in pool.map(client, range(threads)) for r in chunk]


def test_two_app_instances_share_the_budget_and_the_log(files: dict[str, Path], tmp_path: Path,
                                                        logreg: LogisticRegression,
                                                        digits: dict[str, np.ndarray]) -> None:
    """Two apps, each with its own GuardedModel, ledger connection and AuditLog on the same
    files (what two workers hold), under uvicorn in threads: one budget, one log, in process."""
    from test_serve_api import running

    from guard.build import build_target_from_objects
    from guard.defenses.access.auditlog import AuditLog
    from guard.defenses.access.guarded import GuardedModel
    from guard.defenses.sanitize import InputValidator, Sanitizer
    from guard.defenses.serve import create_app

    x = digits["flat_test"]
    policy_file = tmp_path / "access.toml"
    policy_file.write_text(POLICY)
    log_path = tmp_path / "audit.jsonl"
    target = build_target_from_objects(logreg, x, np.zeros(len(x), dtype=np.int64), clip=(0.0, 1.0), name="d")
    logs = [AuditLog(log_path), AuditLog(log_path)]
    apps = [create_app(GuardedModel(target.model, AccessPolicy.load(policy_file), log=log,
                                    sanitizer=Sanitizer(InputValidator.from_data(x, clip=(0.0, 1.0)))),
                       log=log) for log in logs]
    store = TokenStore(AccessPolicy.load(policy_file).state)
    tokens: dict[str, str | None] = {p: store.create(p) for p in ("free", "capped", "sci")}
    tokens |= {"bad": "grd_0badf00d_" + "A" * 43, "none": None}
    with running(apps[0]) as (_, port0), running(apps[1]) as (_, port1):
        results = _load([port0, port1], tokens, x, threads=8, per_thread=20)
    for log in logs:
        log.close()
    _check(results, log_path, tokens)


def test_guard_serve_answers_under_load_and_stops_cleanly(files: dict[str, Path], tmp_path: Path,
                                                          digits: dict[str, np.ndarray]) -> None:
    """The real command, one worker: 8 clients x 12 requests, then SIGINT."""
    with _serving(files, tmp_path, workers=1) as server:
        results = _load([server.port], server.tokens, digits["x_test"], threads=8, per_thread=12)
        _stop(server, signal.SIGINT)
    _check(results, server.log, server.tokens)


def test_two_workers_share_the_budget_and_the_log(files: dict[str, Path], tmp_path: Path,
                                                  digits: dict[str, np.ndarray]) -> None:
    """16 clients x 25 one-row requests for three principals, a bad token and none, across two
    worker processes: the capped principal is answered exactly its budget, no request without
    a valid token is answered, and the log (written by both workers) holds each request once
    and verifies."""
    with _serving(files, tmp_path, workers=2) as server:
        began = time.monotonic()
        results = _load([server.port], server.tokens, digits["x_test"], threads=16, per_thread=25)
        took = time.monotonic() - began
        assert took < 120, f"400 requests took {took:.0f} s"
        _stop(server, signal.SIGTERM)
    _check(results, server.log, server.tokens)


def _check(results: list[tuple[str, int]], log_path: Path, tokens: dict[str, str | None]) -> None:
    """What the clients saw, and that the log holds each request once, as the clients saw it."""
    sent = collections.Counter(kind for kind, _ in results)
    got = collections.Counter(results)
    assert sent["capped"] > BUDGET
    assert got[("capped", 200)] == BUDGET and got[("capped", 429)] == sent["capped"] - BUDGET
    assert got[("free", 200)] == sent["free"] and got[("sci", 200)] == sent["sci"]
    for kind in ("bad", "none"):
        assert got[(kind, 401)] == sent[kind], "a request without a valid token was answered"
    records = [json.loads(line) for line in log_path.read_text().splitlines()]
    assert len(records) == len(results)  # every request exactly once, whichever worker took it
    logged = collections.Counter((r["principal"], r["outcome"], r["status"]) for r in records)
    assert logged == collections.Counter({
        ("free", "served", 200): sent["free"], ("sci", "served", 200): sent["sci"],
        ("capped", "served", 200): BUDGET, ("capped", "refused", 429): sent["capped"] - BUDGET,
        (None, "refused", 401): sent["bad"] + sent["none"],
    })
    check = verify_log(log_path)
    assert check.ok and check.records == len(results), check.problem
    assert not any(t in log_path.read_text() for t in tokens.values() if t)
