"""schemathesis against the guard serve app's own OpenAPI schema, in process (ASGI): requests
that fit the schema and requests that break it, with and without a valid token. No answer may
be a server error, and every answer must match the documented status codes, content types,
headers and bodies. Every request to the API must leave one audit record."""

from __future__ import annotations

import json
import warnings
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from sklearn.linear_model import LogisticRegression

from guard.build import build_target_from_objects
from guard.defenses.access.auditlog import AuditLog, verify_log
from guard.defenses.access.guarded import GuardedModel
from guard.defenses.access.policy import AccessPolicy
from guard.defenses.sanitize import InputValidator, Sanitizer
from guard.defenses.serve import create_app

with warnings.catch_warnings():  # starlette asks for httpx2 under its test client; httpx works
    warnings.filterwarnings("ignore", message=".*httpx2")
    import schemathesis
    from schemathesis import GenerationMode, checks

POLICY = """
[roles.scientist]
permissions = ["predict", "predict_proba"]
output = { round = 3, top_k = 3 }
[principals.sci]
roles = ["scientist"]
budget = { total = 100000 }
"""
EXAMPLES = 50


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, logreg: LogisticRegression,
           digits: dict[str, np.ndarray]) -> Iterator[tuple[Any, str, Path]]:
    folder = tmp_path_factory.mktemp("fuzz")
    (folder / "access.toml").write_text(POLICY)
    x = digits["flat_test"]
    target = build_target_from_objects(logreg, x, np.zeros(len(x), dtype=np.int64), clip=(0.0, 1.0), name="d")
    log = AuditLog(folder / "audit.jsonl")
    guarded = GuardedModel(target.model, AccessPolicy.load(folder / "access.toml"), log=log,
                           sanitizer=Sanitizer(InputValidator.from_data(x, clip=(0.0, 1.0))))
    token = guarded.tokens.create("sci")
    app = create_app(guarded, log=log, max_body_bytes=256 << 10, input_shape=(64,), input_range=(0.0, 1.0))
    yield app, token, folder / "audit.jsonl"
    log.close()


CHECKS = [checks.not_a_server_error, checks.status_code_conformance, checks.content_type_conformance,
          checks.response_headers_conformance, checks.response_schema_conformance]


def _fuzz(app: Any, mode: GenerationMode, headers: dict[str, str],
          examples: int = EXAMPLES) -> Counter[tuple[str, int]]:
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    seen: Counter[tuple[str, int]] = Counter()

    @settings(max_examples=examples, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(case=schema.as_strategy(generation_mode=mode))
    def run(case: Any) -> None:
        response = case.call(headers=headers)
        case.validate_response(response, checks=CHECKS, headers=headers)
        seen[(case.operation.path, response.status_code)] += 1

    run()
    return seen


def _records(path: Path) -> int:
    return sum(1 for line in path.read_text().splitlines() if json.loads(line))


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_answers_match_the_schema_with_a_token(served: tuple[Any, str, Path], mode: GenerationMode) -> None:
    app, token, log_path = served
    before = _records(log_path)
    seen = _fuzz(app, mode, {"Authorization": f"Bearer {token}"})
    predict = {status: n for (path, status), n in seen.items() if path == "/v1/predict"}
    assert all(status < 500 for _, status in seen)
    if mode is GenerationMode.POSITIVE:
        assert predict.get(200, 0) > 0  # bodies that fit the schema reach the model and are answered
    else:
        assert set(predict) - {200} and all(400 <= s < 500 for s in set(predict) - {200})
    assert _records(log_path) - before == sum(predict.values())  # one record per request
    assert verify_log(log_path).ok


def test_without_a_token_nothing_is_answered(served: tuple[Any, str, Path]) -> None:
    app, _, _ = served
    seen = _fuzz(app, GenerationMode.POSITIVE, {}, examples=20)
    predict = {status for (path, status) in seen if path == "/v1/predict"}
    assert predict and predict <= {400, 401, 413, 415, 422}, predict
    assert 401 in predict
