"""The model server of ``guard serve``: an ASGI app (FastAPI) in front of a GuardedModel.

It speaks the protocol of :mod:`guard.attacks.extraction.endpoint`: ``POST /v1/predict``
with ``Authorization: Bearer TOKEN`` and ``{"inputs": [...], "output": "labels" |
"probabilities"}``. The app only does what comes before and after the guard: it reads a
bounded body (the Content-Length checked first, then the streamed bytes counted, so a chunked
body is never read past ``max_body_bytes``; a body that trickles in is cut off after
``body_timeout_s``), checks that it is a JSON object of the right shape, and hands the
inputs and the bearer token, never a principal, to :meth:`GuardedModel.predict` in a worker
thread (inference is CPU-bound; the event loop keeps serving). Authentication, permissions,
sanitizing, budgets, extraction monitoring, output hardening and their audit records are the
GuardedModel's; the app maps its refusals to 401, 403, 422 and 429.

What the app refuses itself (400, 404, 405, 408, 413, 415, and a 500 for a bug) it appends
to the same audit log with ``principal`` null, so every request to the API, served or
refused, leaves exactly one record. Neither the token nor the inputs are ever logged.
Every error answer is ``{"error": {"code", "message", "remaining"?}}``.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, Protocol

import anyio
import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from guard.defenses.access.guarded import AccessDenied, BudgetExceeded, InputRejected
from guard.defenses.serve.loading import DEFAULT_MAX_BODY
from guard.defenses.serve.schema import (
    OUTPUTS,
    ErrorBody,
    Health,
    LabelsAnswer,
    ProbabilitiesAnswer,
    request_schema,
)

if TYPE_CHECKING:
    from guard.defenses.access.guarded import Answer, GuardedModel

CONFIG_ENV = "GUARD_SERVE_CONFIG"
"""The environment variable naming the JSON configuration a worker loads (see :func:`factory`)."""
DEFAULT_BODY_TIMEOUT_S = 30.0
REMAINING_HEADER = "X-Guard-Budget-Remaining"
_JSON_TYPES = ("application/json",)
_log = logging.getLogger("guard.serve")


class _Appends(Protocol):
    def append(self, fields: dict[str, Any]) -> object: ...


class RecordSink(_Appends, Protocol):
    """What the app needs of :class:`guard.defenses.access.auditlog.AuditLog`."""

    def close(self) -> None: ...


class _Refusal(Exception):  # noqa: N818  (control flow inside the app, never raised out of it)
    """A request the server itself refuses, with its status, code and message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def error_response(status: int, code: str, message: str, *, remaining: int | None = None,
                   headers: dict[str, str] | None = None) -> JSONResponse:
    detail: dict[str, Any] = {"code": code, "message": message}
    if remaining is not None:
        detail["remaining"] = remaining
    return JSONResponse({"error": detail}, status_code=status, headers=headers)


def _error_doc(description: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
    doc: dict[str, Any] = {"model": ErrorBody, "description": description}
    if headers:
        doc["headers"] = {name: {"description": text, "schema": {"type": "string"}}
                          for name, text in headers.items()}
    return doc


_REMAINING_DOC = {REMAINING_HEADER: "queries left in the caller's total budget (when it has one)"}
_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "the answer, one entry per input row",
          "headers": {REMAINING_HEADER: {"description": _REMAINING_DOC[REMAINING_HEADER],
                                         "schema": {"type": "string"}}}},
    400: _error_doc("malformed JSON, or a body that is not {inputs, output}"),
    401: _error_doc("no token, or an invalid or revoked one", {"WWW-Authenticate": "Bearer"}),
    403: _error_doc("the token's roles forbid this output, or extraction is suspected"),
    408: _error_doc("the body did not arrive in time"),
    413: _error_doc("the body is larger than the server accepts"),
    415: _error_doc("the body is not application/json"),
    422: _error_doc("inputs the model's input check rejects (shape, range, NaN, ...)"),
    429: _error_doc("a query budget that cannot cover the request",
                    {"Retry-After": "seconds until a rate limit admits the request (rate limits only)",
                     **_REMAINING_DOC}),
}


def create_app(
    guarded: GuardedModel,
    *,
    log: RecordSink | None,
    max_body_bytes: int = DEFAULT_MAX_BODY,
    body_timeout_s: float = DEFAULT_BODY_TIMEOUT_S,
    input_shape: tuple[int, ...] | None = None,
    input_range: tuple[float, float] | None = None,
    summary: dict[str, Any] | None = None,
    close_log: bool = False,
) -> FastAPI:
    """The app serving ``guarded``. ``log`` receives the records of the requests the server
    refuses before the guard (give the GuardedModel's own log; None falls back to it).
    ``input_shape`` and ``input_range`` (one row's shape, the value bounds) only shape the
    documented request schema; the guard's sanitizer checks inputs. ``summary`` is what
    ``/healthz`` says of the model (default: its ``describe()``). ``close_log`` closes
    ``log`` when the app shuts down (the app owns it: the worker factory's case)."""
    if max_body_bytes <= 0:
        raise ValueError(f"max_body_bytes must be positive, got {max_body_bytes!r}")
    if not body_timeout_s > 0:
        raise ValueError(f"body_timeout_s must be positive, got {body_timeout_s!r}")
    records: _Appends | None = log if log is not None else guarded.log
    api = _Api(guarded, records, max_body_bytes, body_timeout_s)
    model = summary if summary is not None else {"framework": guarded.model.framework,
                                                 **guarded.model.describe()}
    health = {"status": "ok", "model": model, "classes": guarded.n_classes}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        if close_log and log is not None:
            log.close()

    app = FastAPI(title="Guard model server", version="1", docs_url=None, redoc_url=None,
                  swagger_ui_oauth2_redirect_url=None, openapi_url="/openapi.json", lifespan=lifespan)

    @app.post(
        "/v1/predict",
        response_model=LabelsAnswer | ProbabilitiesAnswer,
        responses=_RESPONSES,
        summary="Predict: labels or probabilities for a batch of inputs",
        openapi_extra={
            "requestBody": {"required": True, "content": {
                "application/json": {"schema": request_schema(input_shape, input_range)}}},
            "security": [{"bearer": []}],
        },
    )
    async def predict(request: Request) -> Response:
        return await api.predict(request)

    @app.get("/healthz", response_model=Health, summary="Liveness, and what model is served")
    async def healthz() -> dict[str, Any]:
        return health

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        return await api.http_error(request, exc)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            from fastapi.openapi.utils import get_openapi

            schema = get_openapi(title=app.title, version=app.version, routes=app.routes,
                                 description="Guard's model server: a model behind tokens, roles, "
                                 "budgets and output hardening, every request in the audit log.")
            schema.setdefault("components", {})["securitySchemes"] = {
                "bearer": {"type": "http", "scheme": "bearer",
                           "description": "a token from `guard token create`"}}
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


class _Api:
    def __init__(self, guarded: GuardedModel, log: _Appends | None, max_body_bytes: int,
                 body_timeout_s: float) -> None:
        self.guarded = guarded
        self.log = log
        self.max_body_bytes = max_body_bytes
        self.body_timeout_s = body_timeout_s

    async def predict(self, request: Request) -> Response:
        try:
            token = await self._token(request)
            body = await self._body(request)
        except _Refusal as refusal:
            await run_in_threadpool(self._record, refusal.status, refusal.message)
            headers = {"WWW-Authenticate": "Bearer"} if refusal.status == 401 else None
            return error_response(refusal.status, refusal.code, refusal.message, headers=headers)
        return await run_in_threadpool(self._answer, body, token)

    async def _token(self, request: Request) -> str:
        """The bearer token, checked before the body is read: an unauthenticated caller costs
        no parsing (GuardedModel checks it again, with the principal, when it answers)."""
        given = request.headers.getlist("authorization")
        if len(given) > 1:
            raise _Refusal(400, "bad_request", "more than one Authorization header")
        token = _bearer(given[0] if given else None)
        if token is None:
            raise _Refusal(401, "unauthenticated", "no valid token")
        if await run_in_threadpool(self.guarded.tokens.authenticate, token) is None:
            raise _Refusal(401, "unauthenticated", "invalid or revoked token")
        return token

    async def http_error(self, request: Request, exc: StarletteHTTPException) -> Response:
        codes = {404: "not_found", 405: "method_not_allowed"}
        code = codes.get(exc.status_code, "http_error")
        if exc.status_code == 404:
            message = "no such route (the API: POST /v1/predict, GET /healthz, GET /openapi.json)"
        elif exc.status_code == 405:
            message = f"method {request.method[:16]} is not allowed here"
        else:
            message = str(exc.detail)[:200]
        await run_in_threadpool(self._record, exc.status_code, message)
        headers = dict(exc.headers) if exc.headers else None
        return error_response(exc.status_code, code, message, headers=headers)

    async def _body(self, request: Request) -> bytes:
        """The request body, refused (413) once it is larger than the limit: the declared
        Content-Length before anything is read, the bytes actually received as they stream."""
        limit = self.max_body_bytes
        length = request.headers.get("content-length")
        if length is not None:
            if not length.strip().isdigit():
                raise _Refusal(400, "bad_request", "Content-Length is not a number")
            if int(length) > limit:
                raise _Refusal(413, "body_too_large",
                               f"the body of {int(length)} bytes is over the limit of {limit} bytes")
        ctype = request.headers.get("content-type")
        if ctype is None or ctype.split(";")[0].strip().lower() not in _JSON_TYPES:
            shown = "none" if ctype is None else repr(ctype[:60])
            raise _Refusal(415, "unsupported_media_type",
                           f"the body must be application/json (Content-Type was {shown})")
        chunks: list[bytes] = []
        size = 0
        try:
            with anyio.fail_after(self.body_timeout_s):
                async for chunk in request.stream():
                    size += len(chunk)
                    if size > limit:
                        raise _Refusal(413, "body_too_large", f"the body is over the limit of {limit} bytes")
                    chunks.append(chunk)
        except TimeoutError:
            raise _Refusal(408, "request_timeout",
                           f"the body did not arrive within {self.body_timeout_s:g} s") from None
        except ClientDisconnect:
            raise _Refusal(400, "client_disconnected",
                           "the client left before sending the whole body") from None
        return b"".join(chunks)

    def _answer(self, body: bytes, token: str | None) -> Response:
        """Parse, predict and render (in a worker thread)."""
        output: str | None = None
        try:
            inputs, output = _request(body)
            answer = self.guarded.predict(inputs, token=token, output=output)
            return self._served(answer)
        except _Refusal as refusal:
            self._record(refusal.status, refusal.message, output)
            return error_response(refusal.status, refusal.code, refusal.message)
        except AccessDenied as exc:
            headers = None
            if exc.status == 401:
                headers = {"WWW-Authenticate": 'Bearer error="invalid_token"' if token else "Bearer"}
            return error_response(exc.status, exc.code, str(exc), headers=headers)
        except BudgetExceeded as exc:
            headers = {}
            if exc.retry_after_s is not None:
                headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after_s)))
            if exc.remaining_total is not None:
                headers[REMAINING_HEADER] = str(exc.remaining_total)
            return error_response(429, exc.code, str(exc), remaining=exc.remaining_total, headers=headers)
        except InputRejected as exc:
            return error_response(422, exc.code, exc.reason)
        except Exception as exc:  # noqa: BLE001  (the one place a bug becomes a logged 500, not a
            # dropped connection; the guard has logged nothing for it, so this record is the request's)
            _log.exception("guard serve: internal error answering a request")
            self._record(500, f"internal error: {type(exc).__name__}", output, outcome="error")
            return error_response(500, "internal_error", "internal error (the server log has the details)")

    def _served(self, answer: Answer) -> Response:
        headers = {}
        if answer.remaining_total is not None:
            headers[REMAINING_HEADER] = str(answer.remaining_total)
        if answer.probabilities is not None:
            proba = answer.probabilities.astype(np.float64)
            rule = self.guarded.policy.output_rule(answer.principal, "predict_proba")
            if rule.round is not None:  # float32 -> float64 would show 0.23 as 0.23000000417232513
                proba = np.round(proba, rule.round)
            return JSONResponse({"probabilities": proba.tolist()}, headers=headers)
        labels = answer.labels if answer.labels is not None else np.zeros(0, dtype=np.int64)
        return JSONResponse({"labels": labels.astype(np.int64).tolist()}, headers=headers)

    def _record(self, status: int, reason: str, output: str | None = None, *,
                outcome: str = "refused") -> None:
        """One audit record for a request the guard never saw (the fields GuardedModel writes)."""
        if self.log is None:
            return
        fields = {"principal": None, "operation": output, "n": None, "input_sha256": None,
                  "outcome": outcome, "status": status, "reason": reason, "time_unix": time.time()}
        try:
            self.log.append(fields)
        except OSError:
            _log.exception("guard serve: cannot append to the audit log")


def _request(body: bytes) -> tuple[list[Any], str]:
    """The inputs and the output asked for, from a body that must be ``{"inputs": [...],
    "output": "labels" | "probabilities"}`` (output optional)."""
    from guard.serialization import parse_json

    try:
        doc = parse_json(body)
    except UnicodeDecodeError:
        raise _Refusal(400, "malformed_json", "the body is not UTF-8 text") from None
    except ValueError as exc:
        raise _Refusal(400, "malformed_json", f"the body is not valid JSON: {str(exc)[:160]}") from None
    if not isinstance(doc, dict):
        raise _Refusal(400, "bad_request", f"the body must be a JSON object, got {_kind(doc)}")
    unknown = sorted(set(doc) - {"inputs", "output"})
    if unknown:
        raise _Refusal(400, "bad_request", f"unknown key {unknown[0][:40]!r} (known: inputs, output)")
    if "inputs" not in doc:
        raise _Refusal(400, "bad_request", "the body has no 'inputs'")
    inputs, output = doc["inputs"], doc.get("output", "labels")
    if not isinstance(inputs, list):
        raise _Refusal(400, "bad_request", f"'inputs' must be an array of input rows, got {_kind(inputs)}")
    if not isinstance(output, str) or output not in OUTPUTS:
        shown = repr(output[:40]) if isinstance(output, str) else _kind(output)
        raise _Refusal(400, "bad_request", f"'output' must be labels or probabilities, got {shown}")
    return inputs, output


def _kind(value: Any) -> str:
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean",
             int: "a number", float: "a number", type(None): "null"}
    return names.get(type(value), type(value).__name__)


def _bearer(header: str | None) -> str | None:
    """The token of an ``Authorization: Bearer TOKEN`` header; None without the header, and
    "" (a token no store holds) for any other scheme or an empty one."""
    if header is None:
        return None
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != "bearer":
        return ""
    return value.strip()


def factory() -> FastAPI:
    """The app of one ``guard serve --workers N`` worker: it loads the configuration named by
    :data:`CONFIG_ENV` (written by the CLI) and the model itself."""
    from pathlib import Path

    from guard.defenses.serve.loading import ServeConfig, load_service
    from guard.errors import ConfigError

    where = os.environ.get(CONFIG_ENV)
    if not where:
        raise ConfigError(f"{CONFIG_ENV} is not set: it names the configuration guard serve writes for "
                          "its workers")
    try:
        text = Path(where).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read the serve configuration ({exc.strerror})") from None
    return load_service(ServeConfig.from_json(text, where)).app(close_log=True)
