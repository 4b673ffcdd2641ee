"""The extraction attack against a model behind HTTP: the ``guard serve`` protocol.

``POST URL`` with ``Authorization: Bearer TOKEN`` and the JSON body ``{"inputs": [...],
"output": "labels" | "probabilities"}``; the answer is ``{"labels": [...]}`` or
``{"probabilities": [[...]]}``, one entry per input. Queries go in batches. An answer is
read up to a bound on its size and checked (count, class range, finite values in [0, 1]);
HTTP 429 (an exhausted query budget) halves the batch and asks again, down to a single input
(a budget is charged per request, all or nothing, so a smaller request may still fit); a 429
for one input stops the querying and the copy is trained on what was answered; any other
failure is one :class:`EndpointError` line (exit 2).

The token is read from an environment variable, sent only in the ``Authorization`` header,
only to the URL given (redirects are not followed), never over plain HTTP to another
machine, and never written into evidence, logs or errors.

Standard library only (urllib): no HTTP dependency.
"""

from __future__ import annotations

import http.client
import ipaddress
import json
import math
import os
import re
import socket
import ssl
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

import numpy as np

from guard.attacks.extraction.queries import (
    Answers,
    BadAnswer,
    Output,
    checked_labels,
    checked_probabilities,
    one_hot,
)
from guard.errors import ConfigError
from guard.probes import ProgressFn

MAX_URL = 2048
MAX_REQUEST_BYTES = 8 << 20
"""Batches are cut so that one request body stays under about this size."""
MAX_ANSWER_BYTES = 64 << 20
ERROR_BODY_BYTES = 4096
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_TOKEN = re.compile(r"[\x21-\x7e]+")  # visible ASCII: what an Authorization header can carry


class EndpointError(ConfigError):
    """The endpoint cannot be used: unreachable, refusing, or answering what does not fit."""


def check_url(url: str) -> str:
    """The URL as shown in evidence (scheme, host, port and path: no query string), after
    checking it is an absolute http(s) URL without credentials in it."""
    if not url or len(url) > MAX_URL or any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F for c in url):
        raise ConfigError(f"endpoint must be an http(s) URL of at most {MAX_URL} characters without "
                          "spaces or control characters")
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ConfigError(f"endpoint is not a valid URL ({exc})") from None
    if parts.scheme.lower() not in ("http", "https"):
        scheme = parts.scheme or "(none)"
        raise ConfigError(f"endpoint must be an http:// or https:// URL, got scheme {scheme!r}")
    if not parts.hostname:
        raise ConfigError("endpoint has no host name")
    if parts.username is not None or parts.password is not None:
        raise ConfigError("endpoint must not carry credentials in the URL; give the token with token_env")
    host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    netloc = host if port is None else f"{host}:{port}"
    return urllib.parse.urlunsplit((parts.scheme.lower(), netloc, parts.path or "/", "", ""))


def check_env_name(name: str) -> None:
    if not _ENV_NAME.fullmatch(name) or len(name) > 256:
        raise ConfigError(f"token_env must name an environment variable (letters, digits, _), "
                          f"got {name[:40]!r}")


def is_loopback(url: str) -> bool:
    host = urllib.parse.urlsplit(url).hostname or ""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def read_token(url: str, token_env: str | None) -> str | None:
    """The bearer token from ``token_env`` (None without one), checked to be sendable: set,
    visible ASCII, and not about to cross a network in clear text."""
    if token_env is None:
        return None
    value = os.environ.get(token_env)
    if value is None or not value.strip():
        raise EndpointError(f"token_env: the environment variable {token_env} is not set (or empty)")
    token = value.strip()
    if not _TOKEN.fullmatch(token):
        raise EndpointError(f"token_env: the token in {token_env} holds characters a bearer token "
                            "cannot (spaces, line breaks or non-ASCII)")
    if urllib.parse.urlsplit(url).scheme.lower() == "http" and not is_loopback(url):
        raise EndpointError("refusing to send the bearer token over plain http to another machine; "
                            "use an https:// endpoint")
    return token


def preflight(url: str, timeout: float) -> None:
    """Open (and close) a TCP connection to the endpoint's host, so that a wrong host or port
    is one line before the audit attacks anything, without spending a query. Skipped where a
    proxy would carry the requests."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    scheme = parts.scheme.lower()
    proxied = scheme in urllib.request.getproxies() and not urllib.request.proxy_bypass(host)
    if proxied and not is_loopback(url):
        return
    port = parts.port or (443 if scheme == "https" else 80)
    try:
        socket.create_connection((host, port), timeout=min(timeout, 10.0)).close()
    except OSError as exc:
        raise EndpointError(f"could not reach endpoint {check_url(url)}: {_reason(exc, timeout)}") from None


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect is an error: the token goes only to the URL the user gave."""

    def redirect_request(self, req: Any, fp: Any, code: int, msg: str, headers: Any, newurl: str) -> None:
        return None


class EndpointOracle:
    """Answers from the endpoint, batch by batch, checked against the local model's classes."""

    source = "endpoint"

    def __init__(self, url: str, token_env: str | None, n_classes: int, *, timeout: float,
                 batch_size: int) -> None:
        self.url = url
        self.shown = check_url(url)
        self._token_env = token_env
        self._token = read_token(url, token_env)
        self._n_classes = n_classes
        self._timeout = timeout
        self._batch_size = batch_size
        handlers: list[urllib.request.BaseHandler] = [_NoRedirect()]
        if is_loopback(url):
            handlers.append(urllib.request.ProxyHandler({}))  # loopback never goes through a proxy
        self._opener = urllib.request.build_opener(*handlers)

    def ask(self, x: np.ndarray, output: Output, progress: ProgressFn) -> Answers:
        per_input = max(1, int(np.prod(x.shape[1:])) * 24)  # a float32 as JSON text, at most
        batch = max(1, min(self._batch_size, MAX_REQUEST_BYTES // per_input))
        labels: list[np.ndarray] = []
        targets: list[np.ndarray] = []
        refusal = None
        done = 0
        label = f"extraction queries to {self.shown}"
        every = max(1, math.ceil(len(x) / batch / 10))  # about ten progress reports
        start, asked = 0, 0
        while start < len(x):
            chunk = x[start:start + batch]
            if asked % every == 0:
                progress(label, start, len(x))
            asked += 1
            answer = self._post(chunk, output)
            if answer is None:
                if len(chunk) > 1:  # a budget may still admit a smaller request: halve until one
                    batch = len(chunk) // 2
                    continue
                refusal = f"HTTP 429 after {done} answered queries"
                break
            chunk_labels, chunk_targets = self._read(answer, len(chunk), output)
            labels.append(chunk_labels)
            targets.append(chunk_targets)
            done += len(chunk)
            start += len(chunk)
        progress(label, done, len(x))
        k = self._n_classes
        return Answers(
            x[:done],
            np.concatenate(labels) if labels else np.zeros(0, dtype=np.int64),
            np.concatenate(targets) if targets else np.zeros((0, k), dtype=np.float32),
            refusal,
        )

    def _read(self, answer: Any, n: int, output: Output) -> tuple[np.ndarray, np.ndarray]:
        if not isinstance(answer, dict) or output not in answer:
            got = (f"keys {_printable(repr(list(answer)[:5]))}" if isinstance(answer, dict)
                   else type(answer).__name__)
            raise EndpointError(f"endpoint {self.shown} answered without {output!r} (got {got})")
        try:
            if output == "labels":
                labels = checked_labels(answer["labels"], n, self._n_classes)
                return labels, one_hot(labels, self._n_classes)
            proba = checked_probabilities(answer["probabilities"], n, self._n_classes)
        except BadAnswer as exc:
            raise EndpointError(f"endpoint {self.shown} answered what does not fit the model: "
                                f"{exc}") from None
        return proba.argmax(axis=1), proba

    def _post(self, x: np.ndarray, output: Output) -> Any:
        """The decoded JSON answer, or None for HTTP 429."""
        body = json.dumps({"inputs": x.tolist(), "output": output}).encode()
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self._token is not None:
            headers["Authorization"] = f"Bearer {self._token}"
        request = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
        try:
            with self._opener.open(request, timeout=self._timeout) as response:
                raw = _bounded_read(response, MAX_ANSWER_BYTES, self.shown)
        except urllib.error.HTTPError as exc:
            try:
                if exc.code == 429:
                    return None
                detail = self._redacted(_error_detail(exc))
            finally:
                exc.close()
            raise self._status_error(exc.code, exc.reason, detail) from None
        except urllib.error.URLError as exc:
            reason = self._redacted(_reason(exc.reason, self._timeout))
            raise EndpointError(f"could not reach endpoint {self.shown}: {reason}") from None
        except TimeoutError:
            raise EndpointError(f"endpoint {self.shown} did not answer within {self._timeout:g} s") from None
        except (http.client.HTTPException, OSError) as exc:
            reason = self._redacted(_reason(exc, self._timeout))
            raise EndpointError(f"endpoint {self.shown} broke off the answer: {reason}") from None
        try:
            return json.loads(raw)
        except (ValueError, RecursionError):
            raise EndpointError(f"endpoint {self.shown} answered something that is not JSON") from None

    def _redacted(self, text: str) -> str:
        """Text from outside (an error body, a socket error) with the token blanked, should
        a server echo it."""
        return text.replace(self._token, "***") if self._token else text

    def _status_error(self, code: int, reason: object, detail: str) -> EndpointError:
        said = f" ({detail})" if detail else ""
        where = f"endpoint {self.shown} answered HTTP {code} {_printable(str(reason), 40)}{said}"
        if code in (401, 403):
            hint = (f"check the token in {self._token_env}" if self._token_env
                    else "it needs a token: give its environment variable with token_env (--token-env)")
            what = "refused the token" if code == 401 else "forbids this output for the token"
            return EndpointError(f"{where}: it {what}; {hint}")
        if 300 <= code < 400:
            return EndpointError(f"{where}: a redirect, which Guard does not follow (the token goes only "
                                 "to the URL given); give the final URL")
        if code == 413:
            return EndpointError(f"{where}: the request was too large; lower query_batch_size")
        if code == 422:
            return EndpointError(f"{where}: it rejected the inputs (does it serve this model?)")
        return EndpointError(where)


def _bounded_read(response: Any, limit: int, shown: str) -> bytes:
    length = response.headers.get("Content-Length")
    if length is not None and length.strip().isdigit() and int(length) > limit:
        raise EndpointError(f"endpoint {shown} announced an answer of {int(length)} bytes; "
                            f"at most {limit} are read")
    raw: bytes = response.read(limit + 1)
    if len(raw) > limit:
        raise EndpointError(f"endpoint {shown} answered more than {limit} bytes")
    return raw


def _error_detail(exc: urllib.error.HTTPError) -> str:
    """A short, printable summary of an error body (``{"error": ...}`` or ``{"detail": ...}``)."""
    try:
        raw = exc.read(ERROR_BODY_BYTES)
    except (OSError, http.client.HTTPException):
        return ""
    try:
        data = json.loads(raw)
        text = data.get("error") or data.get("detail") if isinstance(data, dict) else None
        text = str(text) if text else ""
    except (ValueError, RecursionError):
        text = ""
    return _printable(text)


def _printable(text: str, limit: int = 120) -> str:
    """Outside text fit for a one-line error: control characters as spaces, at most ``limit``."""
    text = "".join(c if c.isprintable() else " " for c in text).strip()
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _reason(reason: object, timeout: float) -> str:
    if isinstance(reason, TimeoutError):
        return f"no answer within {timeout:g} s"
    if isinstance(reason, ConnectionRefusedError):
        return "connection refused"
    if isinstance(reason, socket.gaierror):
        return "unknown host"
    if isinstance(reason, ssl.SSLError | ssl.CertificateError):
        return f"TLS error ({getattr(reason, 'reason', None) or type(reason).__name__})"
    return _printable(str(reason) or type(reason).__name__)
