"""The guard serve app in process: every status with its JSON body and headers, the audit
log's one record per request, the body limits, and the extraction client against it."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import uvicorn
from sklearn.linear_model import LogisticRegression

from guard.attacks.extraction.endpoint import EndpointOracle
from guard.build import build_target_from_objects
from guard.defenses.access.auditlog import AuditLog, verify_log
from guard.defenses.access.guarded import GuardedModel
from guard.defenses.access.output import harden
from guard.defenses.access.policy import AccessPolicy
from guard.defenses.sanitize import InputValidator, Sanitizer
from guard.defenses.serve import create_app
from guard.probes import no_progress

with warnings.catch_warnings():  # starlette asks for httpx2 under its test client; httpx works
    warnings.filterwarnings("ignore", message=".*httpx2")
    from fastapi.testclient import TestClient

POLICY = """
[roles.analyst]
permissions = ["predict"]
[roles.scientist]
permissions = ["predict", "predict_proba"]
output = { round = 2, top_k = 2 }
[roles.labeler]
permissions = ["predict_proba"]
output = { label_only = true }
[principals.alice]
roles = ["analyst"]
budget = { total = 20 }
[principals.sci]
roles = ["scientist"]
[principals.lab]
roles = ["labeler"]
[principals.rate]
roles = ["analyst"]
budget = { per_minute = 6, burst = 2 }
"""
LIMIT = 64 << 10


@dataclass
class Setup:
    client: TestClient
    guarded: GuardedModel
    log_path: Path
    x: np.ndarray
    model: LogisticRegression
    tokens: dict[str, str]

    def post(self, body: Any = None, *, who: str | None = "sci", headers: dict[str, str] | None = None,
             content: Any = None) -> Any:
        h = {} if who is None else {"Authorization": f"Bearer {self.tokens[who]}"}
        h.update(headers or {})
        if content is not None:
            return self.client.post("/v1/predict", content=content, headers=h)
        return self.client.post("/v1/predict", json=body, headers=h)

    def records(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.log_path.read_text().splitlines()]

    def still_serving(self) -> None:
        r = self.post({"inputs": self.x[:2].tolist()})
        assert r.status_code == 200 and r.json()["labels"] == self.model.predict(self.x[:2]).tolist()


def _guarded(tmp_path: Path, model: Any, x: np.ndarray, log: AuditLog) -> GuardedModel:
    (tmp_path / "access.toml").write_text(POLICY)
    target = build_target_from_objects(model, x, np.zeros(len(x), dtype=np.int64), clip=(0.0, 1.0), name="d")
    sanitizer = Sanitizer(InputValidator.from_data(x, clip=(0.0, 1.0)))
    policy = AccessPolicy.load(tmp_path / "access.toml")
    return GuardedModel(target.model, policy, sanitizer=sanitizer, log=log)


@pytest.fixture
def setup(tmp_path: Path, logreg: LogisticRegression, digits: dict[str, np.ndarray]) -> Iterator[Setup]:
    x = digits["flat_test"]
    log = AuditLog(tmp_path / "audit.jsonl")
    guarded = _guarded(tmp_path, logreg, x, log)
    tokens = {p: guarded.tokens.create(p) for p in ("alice", "sci", "lab", "rate")}
    app = create_app(guarded, log=log, max_body_bytes=LIMIT, input_shape=(64,), input_range=(0.0, 1.0))
    yield Setup(TestClient(app), guarded, tmp_path / "audit.jsonl", x, logreg, tokens)
    log.close()


def _error(r: Any, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/json"
    body = r.json()
    assert set(body) == {"error"} and body["error"]["code"] == code and body["error"]["message"]
    detail: dict[str, Any] = body["error"]
    return detail


def test_labels_and_probabilities_follow_each_role(setup: Setup) -> None:
    s, x = setup, setup.x[:7]
    r = s.post({"inputs": x.tolist()}, who="alice")
    assert r.status_code == 200 and r.json() == {"labels": s.model.predict(x).tolist()}
    assert r.headers["X-Guard-Budget-Remaining"] == "13"

    r = s.post({"inputs": x.tolist(), "output": "probabilities"}, who="sci")
    assert r.status_code == 200 and "X-Guard-Budget-Remaining" not in r.headers
    got = np.array(r.json()["probabilities"])
    rule = s.guarded.policy.output_rule("sci", "predict_proba")
    expected = np.round(harden(s.model.predict_proba(x), rule).astype(np.float64), 2)
    assert got.shape == (7, 10) and np.allclose(got, expected, atol=1e-12)
    assert ((got > 0).sum(axis=1) <= 2).all() and np.array_equal(got, np.round(got, 2))

    r = s.post({"inputs": x.tolist(), "output": "probabilities"}, who="lab")  # label-only role
    assert r.status_code == 200 and r.json() == {"labels": s.model.predict(x).tolist()}

    detail = _error(s.post({"inputs": x.tolist(), "output": "probabilities"}, who="alice"), 403, "forbidden")
    assert "predict_proba" in detail["message"]
    s.still_serving()


def test_unauthenticated_and_revoked_tokens_are_401(setup: Setup) -> None:
    s, body = setup, {"inputs": setup.x[:1].tolist()}
    r = s.post(body, who=None)
    _error(r, 401, "unauthenticated")
    assert r.headers["WWW-Authenticate"] == "Bearer"
    for header in (f"Bearer {s.tokens['sci']}x", "Bearer ", f"Basic {s.tokens['sci']}", "grd_00000000_x" * 3):
        r = s.post(body, who=None, headers={"Authorization": header})
        _error(r, 401, "unauthenticated")
        assert r.headers["WWW-Authenticate"].startswith("Bearer")
    assert s.post(body, who="sci").status_code == 200
    token_id = s.tokens["sci"].split("_")[1]
    assert s.guarded.tokens.revoke(token_id, by="id") == 1
    _error(s.post(body, who="sci"), 401, "unauthenticated")
    r = s.post(body, who="alice")
    assert r.status_code == 200  # other tokens unaffected


class _Alert:
    blocked = True
    reason = "extraction suspected for 'sci' (test)"


class _Blocking:
    """A monitor that has decided: every later request of the principal is extraction."""

    def observe(self, principal: str, x: np.ndarray, labels: np.ndarray) -> _Alert | None:
        return _Alert() if principal == "sci" else None


def test_a_blocked_extraction_suspect_is_403(setup: Setup) -> None:
    s = setup
    s.guarded.monitor = _Blocking()
    detail = _error(s.post({"inputs": s.x[:3].tolist()}, who="sci"), 403, "extraction_suspected")
    assert "sci" in detail["message"]
    assert s.post({"inputs": s.x[:3].tolist()}, who="alice").status_code == 200
    assert [(r["principal"], r["status"]) for r in s.records()] == [("sci", 403), ("alice", 200)]


def test_budgets_are_429_with_remaining_and_retry_after(setup: Setup) -> None:
    s = setup
    assert s.post({"inputs": s.x[:15].tolist()}, who="alice").headers["X-Guard-Budget-Remaining"] == "5"
    r = s.post({"inputs": s.x[:10].tolist()}, who="alice")
    detail = _error(r, 429, "budget_exceeded")
    assert detail["remaining"] == 5 and r.headers["X-Guard-Budget-Remaining"] == "5"
    assert "Retry-After" not in r.headers  # a total budget does not refill: no time to wait for
    r = s.post({"inputs": s.x[:5].tolist()}, who="alice")
    assert r.status_code == 200 and r.headers["X-Guard-Budget-Remaining"] == "0"
    _error(s.post({"inputs": s.x[:1].tolist()}, who="alice"), 429, "budget_exceeded")

    assert s.post({"inputs": s.x[:2].tolist()}, who="rate").status_code == 200  # the burst
    r = s.post({"inputs": s.x[:1].tolist()}, who="rate")
    detail = _error(r, 429, "budget_exceeded")
    wait = int(r.headers["Retry-After"])
    assert 1 <= wait <= 10 and "remaining" not in detail  # 6 a minute: one more in 10 s at most
    s.still_serving()


@pytest.mark.parametrize(("inputs", "needle"), [
    ([[0.5] * 63], "shape"),
    ([[0.5] * 64, [0.5] * 63], "ragged"),
    ([["0.5"] * 64], "numeric"),
    ([[2.0] * 64], "outside"),
    ([[None] * 64], "numeric"),
    ([], "empty"),
    ([0.5] * 64, "shape"),
])
def test_inputs_the_validator_refuses_are_422(setup: Setup, inputs: Any, needle: str) -> None:
    detail = _error(setup.post({"inputs": inputs}), 422, "input_rejected")
    assert needle in detail["message"].lower()
    setup.still_serving()


@pytest.mark.parametrize(("content", "code", "needle"), [
    (b"{", "malformed_json", "not valid json"),
    (b'{"inputs": [[NaN]]}', "malformed_json", "not valid json"),
    (b'{"inputs": [[1e999]]}', "malformed_json", "beyond the range"),
    (b"\xff\xfe{}", "malformed_json", "utf-8"),
    (b'{"inputs": ' + b"[" * 200 + b"]" * 200 + b"}", "malformed_json", "nested"),
    (b"", "malformed_json", "not valid json"),
    (b"[1, 2]", "bad_request", "must be a json object"),
    (b'{"inputs": 3}', "bad_request", "array"),
    (b'{"input": [[0.5]]}', "bad_request", "unknown key"),
    (b'{"output": "labels"}', "bad_request", "no 'inputs'"),
    (b'{"inputs": [[0.5]], "output": "logits"}', "bad_request", "labels or probabilities"),
])
def test_malformed_bodies_are_400(setup: Setup, content: bytes, code: str, needle: str) -> None:
    detail = _error(setup.post(content=content, headers={"Content-Type": "application/json"}), 400, code)
    assert needle in detail["message"].lower()
    setup.still_serving()


@pytest.mark.parametrize("ctype", [None, "text/plain", "application/xml", "application/jsonx"])
def test_other_content_types_are_415(setup: Setup, ctype: str | None) -> None:
    headers = {"Content-Type": ctype} if ctype is not None else {}
    r = setup.post(content=json.dumps({"inputs": setup.x[:1].tolist()}).encode(), headers=headers)
    _error(r, 415, "unsupported_media_type")
    ok = setup.post(content=json.dumps({"inputs": setup.x[:1].tolist()}).encode(),
                    headers={"Content-Type": "application/json; charset=utf-8"})
    assert ok.status_code == 200


def test_bodies_over_the_limit_are_413_declared_or_streamed(setup: Setup) -> None:
    s = setup
    big = json.dumps({"inputs": [[0.5] * 64] * 400}).encode()
    assert len(big) > LIMIT
    _error(s.post(content=big, headers={"Content-Type": "application/json"}), 413, "body_too_large")

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(big), 4096):
            yield big[start:start + 4096]

    r = s.post(content=chunks(), headers={"Content-Type": "application/json"})  # no Content-Length
    _error(r, 413, "body_too_large")
    assert "Content-Length" not in r.request.headers
    fits = json.dumps({"inputs": [[0.5] * 64] * 20}).encode()
    r = s.post(content=iter([fits[:100], fits[100:]]), headers={"Content-Type": "application/json"})
    assert r.status_code == 200 and len(r.json()["labels"]) == 20
    s.still_serving()


def test_a_streamed_body_is_not_read_past_the_limit(setup: Setup) -> None:
    """At the ASGI level: the app stops pulling chunks once it has more than the limit."""
    pulled = 0
    chunk = b"[" + b"0" * 1023

    async def receive() -> dict[str, Any]:
        nonlocal pulled
        pulled += 1
        return {"type": "http.request", "body": chunk, "more_body": True}  # never ends

    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
             "scheme": "http", "path": "/v1/predict", "raw_path": b"/v1/predict", "query_string": b"",
             "root_path": "", "headers": [(b"content-type", b"application/json"),
                                          (b"authorization", f"Bearer {setup.tokens['sci']}".encode())],
             "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 2)}
    asyncio.run(asyncio.wait_for(setup.client.app(scope, receive, send), timeout=20))
    assert sent[0]["status"] == 413
    assert pulled == LIMIT // len(chunk) + 1  # one chunk past the limit, and not one more


def test_a_body_that_trickles_in_is_cut_off(setup: Setup, tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "slow.jsonl")
    app = create_app(setup.guarded, log=log, body_timeout_s=0.3)

    async def receive() -> dict[str, Any]:
        await asyncio.sleep(0.1)
        return {"type": "http.request", "body": b" ", "more_body": True}

    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
             "scheme": "http", "path": "/v1/predict", "raw_path": b"/v1/predict", "query_string": b"",
             "root_path": "", "headers": [(b"content-type", b"application/json"),
                                          (b"authorization", f"Bearer {setup.tokens['sci']}".encode())],
             "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 2)}
    start = time.monotonic()
    asyncio.run(asyncio.wait_for(app(scope, receive, send), timeout=20))
    assert sent[0]["status"] == 408 and time.monotonic() - start < 5
    log.close()
    assert [(r["outcome"], r["status"]) for r in _lines(tmp_path / "slow.jsonl")] == [("refused", 408)]


def test_unknown_routes_and_methods_answer_json(setup: Setup) -> None:
    s = setup
    _error(s.client.get("/v2/predict"), 404, "not_found")
    r = s.client.get("/v1/predict")
    _error(r, 405, "method_not_allowed")
    assert r.headers["Allow"] == "POST"
    _error(s.client.get("/docs"), 404, "not_found")  # no docs UI loading scripts from a CDN
    _error(s.client.get("/redoc"), 404, "not_found")
    s.still_serving()


def test_healthz_and_openapi(setup: Setup) -> None:
    health = setup.client.get("/healthz").json()
    assert health["status"] == "ok" and health["classes"] == 10
    assert health["model"]["class"] == "LogisticRegression"
    schema = setup.client.get("/openapi.json").json()
    post = schema["paths"]["/v1/predict"]["post"]
    body = post["requestBody"]["content"]["application/json"]["schema"]
    assert body["properties"]["inputs"]["items"]["minItems"] == 64
    assert {"400", "401", "403", "413", "415", "422", "429"} <= set(post["responses"])
    assert {"ErrorBody", "LabelsAnswer", "ProbabilitiesAnswer"} <= set(schema["components"]["schemas"])
    assert schema["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"


def test_every_request_is_one_audit_record_without_token_or_inputs(setup: Setup) -> None:
    s = setup
    marker = 0.123456789
    row = [marker] * 64
    ctype = {"Content-Type": "application/json"}
    statuses = [
        s.post({"inputs": [row]}, who="alice").status_code,
        s.post({"inputs": [row]}, who=None).status_code,
        s.post({"inputs": [row], "output": "probabilities"}, who="alice").status_code,
        s.post({"inputs": [row] * 30}, who="alice").status_code,
        s.post({"inputs": [row[:3]]}, who="sci").status_code,
        s.post(content=b"{nope", headers=ctype).status_code,
        s.post(content=b"{}", headers={"Content-Type": "text/plain"}).status_code,
        s.post(content=json.dumps({"inputs": [row] * 200}).encode(), headers=ctype).status_code,
        s.client.get("/nowhere").status_code,
        s.client.get("/healthz").status_code,  # health checks are not requests to the model
    ]
    assert statuses == [200, 401, 403, 429, 422, 400, 415, 413, 404, 200]
    records = s.records()
    got = [(r["principal"], r["outcome"], r["status"]) for r in records]
    assert got == [("alice", "served", 200), (None, "refused", 401), ("alice", "refused", 403),
                   ("alice", "refused", 429), ("sci", "refused", 422), (None, "refused", 400),
                   (None, "refused", 415), (None, "refused", 413), (None, "refused", 404)]
    text = s.log_path.read_text()
    assert all(tok not in text for tok in s.tokens.values())
    assert str(marker)[:8] not in text and "0.1234" not in text
    check = verify_log(s.log_path)
    assert check.ok and check.records == 9


class _Broken:
    framework = "sklearn"
    n_classes = 10

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        raise RuntimeError("a bug in the model")

    def describe(self) -> dict[str, Any]:
        return {"class": "Broken"}


def test_a_model_error_is_a_logged_500_and_the_server_goes_on(setup: Setup, tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "broken.jsonl")
    guarded = GuardedModel(_Broken(), setup.guarded.policy, log=log)  # type: ignore[arg-type]
    client = TestClient(create_app(guarded, log=log), raise_server_exceptions=False)
    headers = {"Authorization": f"Bearer {setup.tokens['sci']}"}
    for _ in range(2):
        r = client.post("/v1/predict", json={"inputs": setup.x[:1].tolist()}, headers=headers)
        _error(r, 500, "internal_error")
        assert "bug" not in r.text
    log.close()
    got = [(r["principal"], r["outcome"], r["status"]) for r in _lines(tmp_path / "broken.jsonl")]
    assert got == [(None, "error", 500)] * 2


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


# -- over a real socket -----------------------------------------------------------------------------


@contextlib.contextmanager
def running(app: Any) -> Iterator[tuple[str, int]]:
    """The app under uvicorn in a thread on an ephemeral 127.0.0.1 port."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield "127.0.0.1", port
    finally:
        server.should_exit = True
        thread.join(timeout=20)
        sock.close()


def test_the_extraction_client_speaks_the_protocol(setup: Setup, monkeypatch: pytest.MonkeyPatch) -> None:
    s = setup
    x = s.x[:60].astype(np.float32)
    with running(s.client.app) as (host, port):
        url = f"http://{host}:{port}/v1/predict"
        monkeypatch.setenv("SERVE_TOKEN", s.tokens["sci"])
        oracle = EndpointOracle(url, "SERVE_TOKEN", 10, timeout=20, batch_size=16)
        answers = oracle.ask(x, "probabilities", no_progress)
        assert answers.refusal is None and np.array_equal(answers.labels, s.model.predict(x))
        assert ((answers.targets > 0).sum(axis=1) <= 2).all()  # sci's top-2 rule reached the client

        monkeypatch.setenv("SERVE_TOKEN", s.tokens["alice"])  # a total budget of 20 queries
        oracle = EndpointOracle(url, "SERVE_TOKEN", 10, timeout=20, batch_size=16)
        answers = oracle.ask(x, "labels", no_progress)
        assert len(answers.labels) == 20 and answers.refusal == "HTTP 429 after 20 answered queries"
        assert np.array_equal(answers.labels, s.model.predict(x[:20]))


def test_a_chunked_body_over_the_limit_is_refused_before_it_ends(setup: Setup) -> None:
    """The client never sends the last chunk: a server that waited for the whole body would
    never answer."""
    with running(setup.client.app) as (host, port), socket.create_connection((host, port), timeout=10) as c:
        c.sendall(b"POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  + f"Authorization: Bearer {setup.tokens['sci']}\r\n".encode()
                  + b"Transfer-Encoding: chunked\r\n\r\n")
        piece = b"[" * 1 + b"0" * 4095
        for _ in range(LIMIT // len(piece) + 1):
            c.sendall(b"1000\r\n" + piece + b"\r\n")
        answer = b""
        while b"}}" not in answer:  # the status line and headers, then the JSON body
            part = c.recv(65536)
            assert part, f"connection closed after {answer!r}"
            answer += part
    assert answer.startswith(b"HTTP/1.1 413 ") and b'"code":"body_too_large"' in answer


class _Slow:
    """A model whose answers wait for a gate: the event loop must keep serving meanwhile."""

    framework = "sklearn"
    n_classes = 10

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.gate = threading.Event()

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        assert self.gate.wait(timeout=20)
        return np.asarray(self.inner.predict_proba(x))

    def describe(self) -> dict[str, Any]:
        return {"class": "Slow"}


def test_inference_runs_off_the_event_loop(setup: Setup, tmp_path: Path) -> None:
    import urllib.request

    slow = _Slow(setup.model)
    guarded = GuardedModel(slow, setup.guarded.policy, sanitizer=setup.guarded.sanitizer)  # type: ignore[arg-type]
    with running(create_app(guarded, log=None)) as (host, port):
        base = f"http://{host}:{port}"
        body = json.dumps({"inputs": setup.x[:1].tolist()}).encode()
        request = urllib.request.Request(f"{base}/v1/predict", data=body, method="POST", headers={
            "Content-Type": "application/json", "Authorization": f"Bearer {setup.tokens['sci']}"})
        result: list[Any] = []
        waiting = threading.Thread(target=lambda: result.append(json.load(urllib.request.urlopen(request))))
        waiting.start()
        time.sleep(0.3)
        start = time.monotonic()
        with urllib.request.urlopen(f"{base}/healthz", timeout=5) as health:  # while predict waits
            assert health.status == 200
        assert time.monotonic() - start < 2 and not result
        slow.gate.set()
        waiting.join(timeout=20)
    assert result == [{"labels": setup.model.predict(setup.x[:1]).tolist()}]


def test_an_unauthenticated_body_is_never_read_and_two_authorizations_are_refused(setup: Setup) -> None:
    """Red-team findings: the token is checked before the body is parsed (an unauthenticated
    8 MiB body used to cost a second of parsing), and two Authorization headers are a 400
    rather than the first one winning."""
    pulled = 0

    async def receive() -> dict[str, Any]:
        nonlocal pulled
        pulled += 1
        return {"type": "http.request", "body": b"[" * 1024, "more_body": True}

    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    for token in (None, "grd_00000000_forged"):
        headers = [(b"content-type", b"application/json")]
        headers += [] if token is None else [(b"authorization", f"Bearer {token}".encode())]
        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
                 "scheme": "http", "path": "/v1/predict", "raw_path": b"/v1/predict", "query_string": b"",
                 "root_path": "", "headers": headers, "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 2)}
        sent.clear()
        asyncio.run(asyncio.wait_for(setup.client.app(scope, receive, send), timeout=20))
        assert sent[0]["status"] == 401 and pulled == 0
    both = setup.client.post("/v1/predict", json={"inputs": setup.x[:1].tolist()},
                             headers=[("Authorization", f"Bearer {setup.tokens['alice']}"),
                                      ("Authorization", f"Bearer {setup.tokens['sci']}")])
    assert both.status_code == 400 and "more than one Authorization" in both.json()["error"]["message"]
