"""A small model server for the extraction tests: the ``guard serve`` protocol (issue 13) on
127.0.0.1 in a thread, standard library only, with switches for the ways an endpoint can go
wrong (a query budget answered by HTTP 429, garbage, wrong shapes, redirects, slowness)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np

TOKEN = "tok-3f9a1c77e2"  # noqa: S105  (a test token, sent to 127.0.0.1 only)


@dataclass
class Behaviour:
    """What the server does. ``answer`` replaces the model's answer (given the decoded inputs
    and the output asked for) with any JSON value; ``raw`` replaces the whole body."""

    token: str | None = TOKEN
    budget: int | None = None
    outputs: tuple[str, ...] = ("labels", "probabilities")
    answer: Callable[[np.ndarray, str], Any] | None = None
    raw: bytes | None = None
    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    error_body: dict[str, Any] | None = None
    delay_s: float = 0.0
    length: bool = True
    """Send Content-Length (else the answer runs until the connection closes)."""


class Server:
    """``url`` takes POSTs; ``answered`` counts the inputs answered, ``seen`` the requests'
    Authorization headers (what the client sent)."""

    def __init__(self, model: Any, behaviour: Behaviour) -> None:
        self.model = model
        self.behaviour = behaviour
        self.answered = 0
        self.seen: list[str | None] = []
        self.lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1/predict"

    def reply(self, handler: BaseHTTPRequestHandler) -> None:
        b = self.behaviour
        auth = handler.headers.get("Authorization")
        with self.lock:
            self.seen.append(auth)
        length = int(handler.headers.get("Content-Length") or 0)
        body = json.loads(handler.rfile.read(length))
        if b.delay_s:
            time.sleep(b.delay_s)
        if b.token is not None and auth != f"Bearer {b.token}":
            return _send(handler, 401, {"error": f"bad token {auth}"})
        if b.status is not None:
            return _send(handler, b.status, b.error_body or {"error": "nope"}, b.headers)
        output = body["output"]
        if output not in b.outputs:
            return _send(handler, 403, {"error": f"{output} is not permitted"})
        x = np.asarray(body["inputs"], dtype=np.float32)
        with self.lock:
            if b.budget is not None and self.answered + len(x) > b.budget:
                return _send(handler, 429, {"error": "query budget exhausted"})
            self.answered += len(x)
        headers = dict(b.headers) if b.length else {**b.headers, "Content-Length": ""}
        if b.raw is not None:
            return _send_raw(handler, 200, b.raw, headers)
        if b.answer is not None:
            return _send(handler, 200, b.answer(x, output), headers)
        if output == "labels":
            return _send(handler, 200, {"labels": self.model.predict(x).tolist()})
        return _send(handler, 200, {"probabilities": np.asarray(self.model.predict_proba(x)).tolist()})


def _handler(server: Server) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802  (http.server's name)
            server.reply(self)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            """Quiet."""

    return Handler


def _send(handler: BaseHTTPRequestHandler, status: int, payload: Any,
          headers: dict[str, str] | None = None) -> None:
    _send_raw(handler, status, json.dumps(payload).encode(), headers or {})


def _send_raw(handler: BaseHTTPRequestHandler, status: int, raw: bytes, headers: dict[str, str]) -> None:
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    for key, value in headers.items():
        if value:  # an empty value: leave the header out
            handler.send_header(key, value)
    if "Content-Length" not in headers:
        handler.send_header("Content-Length", str(len(raw)))
    handler.end_headers()
    try:
        handler.wfile.write(raw)
    except (BrokenPipeError, ConnectionResetError):
        pass  # the client stopped reading (a bounded read): that is the point


@contextmanager
def serving(model: Any, behaviour: Behaviour | None = None) -> Iterator[Server]:
    server = Server(model, behaviour or Behaviour())
    thread = threading.Thread(target=server.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.httpd.shutdown()
        server.httpd.server_close()
        thread.join(timeout=5)
