"""GuardedModel: a model behind authentication, permissions, sanitization, budgets,
extraction monitoring and output hardening, every call recorded in the audit log.

Order of checks (each refusal is logged, then raised with its HTTP status):
authenticate (401) -> permission (403) -> sanitizer (422) -> budget (429) -> monitor
(429 or 403 ``extraction_suspected``) -> model -> output hardening -> answer.
The audit record holds the principal, operation, n, outcome, status, reason and a digest of
the input bytes: never the inputs or the token.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from guard.defenses.access.output import harden
from guard.defenses.access.policy import AccessPolicy
from guard.errors import GuardError

if TYPE_CHECKING:
    import torch

    from guard.defenses.access.budget import BudgetLedger
    from guard.defenses.access.tokens import TokenStore
    from guard.target import ModelAdapter

class Sanitizer(Protocol):
    """What GuardedModel needs of ``guard.defenses.sanitize.Sanitizer`` (structural, so the
    sanitizer, the monitor and the audit log stay separate modules)."""

    def check(self, x: Any) -> np.ndarray: ...


class _Alert(Protocol):
    @property
    def blocked(self) -> bool: ...

    @property
    def reason(self) -> str: ...


class ExtractionMonitor(Protocol):
    """What GuardedModel needs of ``guard.defenses.access.monitor.ExtractionMonitor``."""

    def observe(self, principal: str, x: np.ndarray, labels: np.ndarray) -> _Alert | None: ...


class AuditLog(Protocol):
    """What GuardedModel needs of ``guard.defenses.access.auditlog.AuditLog``."""

    def append(self, fields: dict[str, Any]) -> object: ...


OUTPUTS = {"labels": "predict", "probabilities": "predict_proba"}


class Refused(GuardError):
    """A request the guard refuses: its HTTP ``status`` and machine-readable ``code``."""

    status: int = 403
    code: str = "forbidden"


class AccessDenied(Refused):
    """No or bad token (401, ``unauthenticated``) or a forbidden operation (403)."""

    def __init__(self, message: str, *, status: int = 403, code: str = "forbidden") -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class BudgetExceeded(Refused):
    """A rate or total budget that cannot cover the request (429)."""

    status = 429
    code = "budget_exceeded"

    def __init__(
        self, message: str, *, retry_after_s: float | None = None, remaining_total: int | None = None
    ) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s
        self.remaining_total = remaining_total


class InputRejected(Refused):
    """An input the sanitizer refuses, with the reason (422)."""

    status = 422
    code = "input_rejected"

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class Answer:
    labels: np.ndarray | None
    probabilities: np.ndarray | None
    principal: str
    n: int
    remaining_total: int | None = None


def _digest(x: Any) -> str:
    try:
        arr = np.ascontiguousarray(np.asarray(x))
        return hashlib.sha256(arr.tobytes()).hexdigest()
    except (TypeError, ValueError):
        return hashlib.sha256(repr(x).encode("utf-8", "replace")).hexdigest()


class GuardedModel:
    def __init__(
        self,
        model: ModelAdapter,
        policy: AccessPolicy,
        *,
        sanitizer: Sanitizer | None = None,
        monitor: ExtractionMonitor | None = None,
        log: AuditLog | None = None,
        tokens: TokenStore | None = None,
        ledger: BudgetLedger | None = None,
    ) -> None:
        from guard.defenses.access.budget import BudgetLedger
        from guard.defenses.access.tokens import TokenStore

        self.model = model
        self.policy = policy
        self.sanitizer = sanitizer
        self.monitor = monitor
        self.log = log
        self.tokens = tokens if tokens is not None else TokenStore(policy.state)
        self.ledger = ledger if ledger is not None else BudgetLedger(policy.state)

    @property
    def n_classes(self) -> int:
        return int(self.model.n_classes)

    def predict(
        self,
        x: Any,
        *,
        principal: str | None = None,
        token: str | None = None,
        output: str = "labels",
    ) -> Answer:
        record: dict[str, Any] = {
            "principal": principal,
            "operation": output,
            "n": None,
            "input_sha256": _digest(x),
        }
        try:
            answer = self._predict(x, principal, token, output, record)
        except Refused as exc:
            record.update(outcome="refused", status=exc.status, reason=str(exc))
            self._log(record)
            raise
        record.update(outcome="served", status=200, reason=None)
        self._log(record)
        return answer

    def _log(self, record: dict[str, Any]) -> None:
        if self.log is not None:
            record["time_unix"] = time.time()
            self.log.append(dict(record))

    def _predict(
        self, x: Any, principal: str | None, token: str | None, output: str, record: dict[str, Any]
    ) -> Answer:
        if token is not None:
            who = self.tokens.authenticate(token)
            if who is None or (principal is not None and who != principal):
                raise AccessDenied("invalid or revoked token", status=401, code="unauthenticated")
            principal = who
        if principal is None or principal not in self.policy.principals:
            raise AccessDenied("no valid token", status=401, code="unauthenticated")
        record["principal"] = principal
        permission = OUTPUTS.get(output)
        if permission is None:
            raise InputRejected(f"unknown output {output!r} (known: labels, probabilities)")
        if permission not in self.policy.permissions_of(principal):
            raise AccessDenied(f"principal {principal!r} may not {permission}")
        arr = self.sanitizer.check(x) if self.sanitizer is not None else _basic(x)
        n = int(arr.shape[0])
        record["n"] = n
        budget = self.policy.principals[principal].budget
        remaining: int | None = None
        if budget is not None:
            charge = self.ledger.charge(principal, n, budget)
            if not charge.allowed:
                raise BudgetExceeded(
                    charge.reason or "budget exhausted",
                    retry_after_s=charge.retry_after_s,
                    remaining_total=charge.remaining_total,
                )
            remaining = charge.remaining_total
        proba = np.asarray(self.model.predict_proba(arr))
        labels = np.argmax(proba, axis=1)
        if self.monitor is not None:
            alert = self.monitor.observe(principal, arr, labels)
            if alert is not None:
                record["alert"] = alert.reason  # an alert that does not block is logged too
            if alert is not None and alert.blocked:
                raise AccessDenied(
                    f"extraction suspected for {principal!r}", status=403, code="extraction_suspected"
                )
        rule = self.policy.output_rule(principal, permission)
        if output == "labels" or rule.label_only:
            return Answer(labels, None, principal, n, remaining)
        return Answer(None, harden(proba, rule), principal, n, remaining)

    def as_adapter(self, principal: str) -> ModelAdapter:
        return _PrincipalAdapter(self, principal)


def _basic(x: Any) -> np.ndarray:
    try:
        arr = np.asarray(x, dtype=np.float32)
    except (TypeError, ValueError):
        raise InputRejected("inputs are not numeric") from None
    if arr.ndim < 2 or arr.shape[0] == 0:
        raise InputRejected(f"inputs must be a non-empty batch, got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise InputRejected("inputs contain NaN or infinity")
    return arr


class _PrincipalAdapter:
    """A ModelAdapter whose every call goes through the guard as one fixed principal."""

    framework = "guarded"

    def __init__(self, guarded: GuardedModel, principal: str) -> None:
        self.guarded = guarded
        self.principal = principal
        self.n_classes = guarded.n_classes

    def predict(self, x: np.ndarray) -> np.ndarray:
        ans = self.guarded.predict(x, principal=self.principal, output="labels")
        assert ans.labels is not None  # noqa: S101 (labels output always sets labels)
        return ans.labels

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        ans = self.guarded.predict(x, principal=self.principal, output="probabilities")
        if ans.probabilities is None:
            assert ans.labels is not None  # noqa: S101
            onehot: np.ndarray = np.eye(self.n_classes, dtype=np.float32)[ans.labels]
            return onehot
        return ans.probabilities

    def torch_module(self) -> torch.nn.Module | None:
        return None

    def describe(self) -> dict[str, Any]:
        inner = self.guarded.model.describe()
        return {**inner, "guarded": True, "principal": self.principal}
