"""The runtime defenses measured by attacking them again, in process, behind a GuardedModel.

Each probe loads the access policy (``--access-policy``), wraps the audited model in a
:class:`~guard.defenses.access.guarded.GuardedModel` whose budget ledger and token store live
in a temporary folder (an audit never spends a deployment's budgets or sees its tokens), and
tries what an attacker would:

* ``defense.access_control``: requests with no token, a made-up token, a revoked token and
  another principal's token, and every operation a principal's roles do not grant, must all
  be refused; every granted one served; each budgeted principal's allowance is spent from
  several threads at once and the answered count compared with what the budget allows.
* ``defense.extraction_resistance``: the extraction attack (CopycatCNN on labels, Knockoff
  Nets on probabilities, as the principal's permissions allow) once against the bare model
  and once through the guard as the principal who may ask the most, on the same queries:
  the fidelity of both copies and the paired difference, per query budget.
* ``defense.audit_log``: every request of a scripted session, served or refused, must be in
  the hash-chained log, the log must verify, an edited, a removed and a reordered record
  must each be caught, and no token may appear in it; a deployment's own log
  (``audit_log``) is verified too.
"""

from __future__ import annotations

import dataclasses
import os
import secrets
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from guard.attacks.extraction.probes import MIN_STEPS, checked_budgets
from guard.attacks.extraction.queries import (
    Answers,
    LocalOracle,
    Output,
    epochs_for,
    query_split,
)
from guard.attacks.extraction.surrogate import Recipe, copy_seed, steal
from guard.defenses.access.guarded import OUTPUTS, AccessDenied, BudgetExceeded, GuardedModel, Refused
from guard.defenses.access.policy import AccessPolicy
from guard.errors import ConfigError
from guard.evidence import Evidence, Flag
from guard.probes import EmittedEvidence, Probe, RunContext, bounded, check_ranges, register
from guard.stats import Metric, paired_difference
from guard.target import Target

WHY_NOT = "needs an access policy: give --access-policy FILE (the TOML file guard serve uses)"


def _policy_setting(value: Any, name: str = "access_policy") -> None:
    if value is not None and (not isinstance(value, str) or not value):
        raise ConfigError(f"{name} must name a file")


@contextmanager
def sandbox(policy: AccessPolicy) -> Iterator[tuple[AccessPolicy, Path]]:
    """The policy with its ledger and token store in a fresh temporary folder."""
    folder = Path(tempfile.mkdtemp(prefix="guard-access-"))
    try:
        yield dataclasses.replace(policy, state=folder / "state.db"), folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _monitor(policy: AccessPolicy) -> Any:
    if policy.monitor is None:
        return None
    from guard.defenses.access.monitor import ExtractionMonitor

    return ExtractionMonitor(policy.monitor)


class _PolicyProbe(Probe):
    """A probe that needs the access policy: skipped, saying why, when the audit has none."""

    category: ClassVar[str] = "defense"
    default: ClassVar[bool] = True

    def applies_to(self, target: Target) -> bool:
        return self.settings.access_policy is not None and len(target.y_eval) >= 1

    def why_not(self, target: Target) -> str:
        return WHY_NOT if self.settings.access_policy is None else "needs at least one evaluation sample"

    def check(self, target: Target) -> None:
        super().check(target)
        if self.settings.access_policy is None:
            raise ConfigError(f"{self.id}: {WHY_NOT}")
        self.policy()

    def policy(self) -> AccessPolicy:
        return AccessPolicy.load(Path(self.settings.access_policy))

    def params(self, policy: AccessPolicy) -> dict[str, Any]:
        return {"policy": Path(self.settings.access_policy).name, "principals": sorted(policy.principals)}


# ---------------------------------------------------------------------------- access control


@dataclass(frozen=True, slots=True, kw_only=True)
class AccessSettings:
    """``access_policy``: the policy file. ``budget_check_limit``: a budgeted principal whose
    allowance is larger than this many queries is not spent to the end (said in the evidence).
    ``threads``: concurrent callers spending each allowance."""

    access_policy: str | None = None
    budget_check_limit: int = bounded(20_000, 0, 10_000_000, integer=True)
    threads: int = bounded(4, 1, 64, integer=True)

    def __post_init__(self) -> None:
        _policy_setting(self.access_policy)
        check_ranges(self)


@dataclass(slots=True)
class _Tally:
    attempts: int = 0
    wrong: int = 0
    """Served when it should have been refused (or refused when it should have been served)."""
    cases: list[str] = dataclasses.field(default_factory=list)
    """What was tried."""
    failures: list[str] = dataclasses.field(default_factory=list)

    def record(self, case: str, wrong: bool, what: str) -> None:
        self.attempts += 1
        if case not in self.cases:
            self.cases.append(case)
        if wrong:
            self.wrong += 1
            self.failures.append(f"{case}: {what}")

    def metric(self) -> Metric:
        return Metric.proportion(self.wrong, self.attempts) if self.attempts else Metric(0.0, 0)


@register
class AccessControlProbe(_PolicyProbe):
    """Every way in without the right token or role is tried; each must be refused."""

    id: ClassVar[str] = "defense.access_control"
    aliases: ClassVar[tuple[str, ...]] = ("access-control",)
    settings_type: ClassVar[type[Any]] = AccessSettings
    settings: AccessSettings
    emits: ClassVar[EmittedEvidence] = EmittedEvidence(
        title="Access control of the guarded model: unauthenticated, forbidden and over-budget requests",
        metrics=("unauthenticated_served", "forbidden_served", "permitted_refused", "principals",
                 "principals_unbudgeted", "raw_probability_principals", "budgets_checked",
                 "budget_overrun", "budget_shortfall"),
        params=("policy", "principals", "unauthenticated_cases", "forbidden_cases", "failures", "unbudgeted",
                "raw_probability", "budget_results", "threads"),
        key=("policy",),
        flags=("budget_not_spent",),
    )

    def run(self, target: Target, ctx: RunContext) -> list[Evidence]:
        self.check(target)
        start = time.perf_counter()
        policy = self.policy()
        one = np.asarray(target.x_eval[:1])
        params = self.params(policy)
        flags: list[Flag] = []
        with sandbox(policy) as (pol, _):
            guarded = GuardedModel(target.model, pol)
            tokens = {p: guarded.tokens.create(p) for p in sorted(pol.principals)}
            unauth = self._unauthenticated(guarded, tokens, one)
            forbidden, permitted = self._operations(guarded, tokens, one)
        with sandbox(policy) as (pol, _):
            budget_rows, overrun, shortfall, skipped = self._budgets(target, pol)
        for name in skipped:
            flags.append(Flag("budget_not_spent", f"principal {name!r}: its allowance is larger than "
                                                  f"{self.settings.budget_check_limit} queries and was not "
                                                  "spent to the end (raise budget_check_limit)"))
        unbudgeted = [p for p, pr in sorted(policy.principals.items())
                      if policy.permissions_of(p) & {"predict", "predict_proba"}
                      and (pr.budget is None or (pr.budget.total is None and pr.budget.per_minute is None))]
        raw = [p for p in sorted(policy.principals) if "predict_proba" in policy.permissions_of(p)
               and policy.output_rule(p, "predict_proba") == type(policy.output_rule(p, "predict_proba"))()]
        params.update({"unauthenticated_cases": unauth.cases, "forbidden_cases": forbidden.cases,
                       "failures": unauth.failures + forbidden.failures + permitted.failures,
                       "unbudgeted": unbudgeted, "raw_probability": raw, "budget_results": budget_rows,
                       "threads": self.settings.threads})
        metrics = {
            "unauthenticated_served": unauth.metric(),
            "forbidden_served": forbidden.metric(),
            "permitted_refused": permitted.metric(),
            "principals": Metric(float(len(policy.principals))),
            "principals_unbudgeted": Metric(float(len(unbudgeted))),
            "raw_probability_principals": Metric(float(len(raw))),
            "budgets_checked": Metric(float(len(budget_rows))),
            "budget_overrun": Metric(float(overrun)),
            "budget_shortfall": Metric(float(shortfall)),
        }
        return [Evidence(probe=self.id, params=params, metrics=metrics, flags=flags, seed=ctx.seed,
                         duration_s=time.perf_counter() - start)]

    @staticmethod
    def _served(guarded: GuardedModel, x: np.ndarray, **kwargs: Any) -> bool:
        try:
            guarded.predict(x, **kwargs)
        except Refused:
            return False
        return True

    def _unauthenticated(self, guarded: GuardedModel, tokens: dict[str, str], x: np.ndarray) -> _Tally:
        tally = _Tally()
        first = next(iter(tokens), None)
        revoked = guarded.tokens.create(first) if first is not None else None
        if revoked is not None:
            guarded.tokens.revoke(revoked.split("_")[1], by="id")
        cases: list[tuple[str, dict[str, Any]]] = [
            ("no token", {}),
            ("empty token", {"token": ""}),
            ("made-up token", {"token": f"grd_{secrets.token_hex(4)}_{secrets.token_urlsafe(32)}"}),
            ("unknown principal named", {"principal": f"nobody-{secrets.token_hex(3)}"}),
        ]
        if revoked is not None:
            cases.append(("revoked token", {"token": revoked}))
        names = list(tokens)
        if len(names) >= 2:
            cases.append(("another principal's token", {"token": tokens[names[0]], "principal": names[1]}))
        for case, kwargs in cases:
            for output in OUTPUTS:
                tally.record(case, self._served(guarded, x, output=output, **kwargs), f"{output} served")
        return tally

    def _operations(self, guarded: GuardedModel, tokens: dict[str, str],
                    x: np.ndarray) -> tuple[_Tally, _Tally]:
        forbidden, permitted = _Tally(), _Tally()
        for principal, token in tokens.items():
            perms = guarded.policy.permissions_of(principal)
            for output, permission in OUTPUTS.items():
                tally = permitted if permission in perms else forbidden
                served = self._served(guarded, x, token=token, output=output)
                tally.record(f"{principal} {output}", served != (tally is permitted),
                             "served" if served else "refused")
        return forbidden, permitted

    def _budgets(self, target: Target,
                 policy: AccessPolicy) -> tuple[list[dict[str, Any]], int, int, list[str]]:
        """Each budgeted principal's allowance spent by several threads at once: the answered
        count against what the budget allows (the rate refills while the threads run, so the
        upper bound grows with the elapsed time; the lower bound is the allowance at start)."""
        rows, overrun, shortfall, skipped = [], 0, 0, []
        x = np.asarray(target.x_eval)
        for name, principal in sorted(policy.principals.items()):
            budget = principal.budget
            perms = policy.permissions_of(name)
            if budget is None or not perms & {"predict", "predict_proba"}:
                continue
            cap = float(budget.burst if budget.burst is not None else (budget.per_minute or np.inf))
            allowance = min(float(budget.total) if budget.total is not None else np.inf, cap)
            if not np.isfinite(allowance) or allowance > self.settings.budget_check_limit:
                skipped.append(name)
                continue
            output = "labels" if "predict" in perms else "probabilities"
            guarded = GuardedModel(target.model, policy)
            answered = _spend(guarded, name, output, x, int(allowance), self.settings.threads)
            elapsed = answered[1]
            refill = (budget.per_minute or 0.0) * elapsed / 60.0
            upper = min(float(budget.total) if budget.total is not None else np.inf, cap + refill)
            over = max(0, answered[0] - int(np.floor(upper + 1e-9)))
            short = max(0, int(allowance) - answered[0])
            overrun, shortfall = max(overrun, over), max(shortfall, short)
            rows.append({"principal": name, "allowance": int(allowance), "answered": answered[0],
                         "seconds": round(elapsed, 3)})
        return rows, overrun, shortfall, skipped


def _spend(guarded: GuardedModel, principal: str, output: str, x: np.ndarray, allowance: int,
           threads: int) -> tuple[int, float]:
    """Threads asking in batches, halving on a refusal down to one row, until one row is
    refused: (rows answered, seconds taken)."""
    lock = threading.Lock()
    answered = [0]
    rng = np.random.default_rng(0)
    rows = x[rng.integers(0, len(x), size=max(1, min(allowance, 4096)) + 16)]

    def worker(offset: int) -> None:
        batch = max(1, min(16, allowance // (4 * threads) or 1))
        at = offset
        while True:
            chunk = rows[at % (len(rows) - batch + 1):][:batch]
            try:
                ans = guarded.predict(chunk, principal=principal, output=output)
            except BudgetExceeded:
                if batch == 1:
                    return
                batch = max(1, batch // 2)
                continue
            with lock:
                answered[0] += ans.n
            at += batch

    start = time.perf_counter()
    pool = [threading.Thread(target=worker, args=(i * 97,)) for i in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return answered[0], time.perf_counter() - start


# ---------------------------------------------------------------------------- extraction


@dataclass(frozen=True, slots=True, kw_only=True)
class ResistanceSettings:
    """``access_policy``: the policy file; ``principal``: whose access the attacker has (None:
    the one who may ask the most: probabilities over labels, then the largest allowance).
    ``budgets``: query budgets (None: the largest of 50, 250 and 1,000 the pool holds).
    ``epochs``, ``fit_batch_size``, ``learning_rate``: the copy's training, as extraction's."""

    access_policy: str | None = None
    principal: str | None = None
    budgets: tuple[int, ...] | None = bounded(None, 1, 10_000_000, integer=True)
    epochs: int = bounded(30, 1, 10_000, integer=True)
    fit_batch_size: int = bounded(64, 1, 65_536, integer=True)
    learning_rate: float = bounded(2e-3, 1e-6, 1.0)
    eval_samples: int = bounded(10_000, 1, 10_000_000, integer=True)

    def __post_init__(self) -> None:
        _policy_setting(self.access_policy)
        if self.principal is not None and (not isinstance(self.principal, str) or not self.principal):
            raise ConfigError("principal must name a principal of the access policy")
        if self.budgets is not None and (not isinstance(self.budgets, tuple) or not self.budgets):
            raise ConfigError("budgets: give at least one query budget")
        check_ranges(self)


class GuardedOracle:
    """The attacker's view: every query goes through the guard as one principal. A budget
    refusal halves the batch down to one row (a budget is charged all or nothing); a refusal
    of one row, or an extraction block, stops the querying."""

    source = "guarded"

    def __init__(self, guarded: GuardedModel, principal: str, batch_size: int = 256) -> None:
        self.guarded = guarded
        self.principal = principal
        self.batch_size = batch_size
        self.stopped_by: str | None = None

    def ask(self, x: np.ndarray, output: Output, progress: Any) -> Answers:
        k = self.guarded.n_classes
        got_x, labels, targets = [], [], []
        at, batch, refusal = 0, self.batch_size, None
        while at < len(x):
            chunk = x[at:at + batch]
            try:
                ans = self.guarded.predict(chunk, principal=self.principal, output=output)
            except BudgetExceeded as exc:
                if batch > 1:
                    batch = max(1, batch // 2)
                    continue
                refusal = f"429 {exc}"
                self.stopped_by = "rate limit" if exc.retry_after_s is not None else "total budget"
                break
            except AccessDenied as exc:
                refusal = f"{exc.status} {exc.code}"
                self.stopped_by = "monitor" if exc.code == "extraction_suspected" else "access"
                break
            got_x.append(chunk)
            if ans.probabilities is not None:
                targets.append(np.asarray(ans.probabilities, dtype=np.float32))
                labels.append(np.argmax(ans.probabilities, axis=1))
            else:
                assert ans.labels is not None  # noqa: S101 (labels answers carry labels)
                labels.append(np.asarray(ans.labels))
                targets.append(np.eye(k, dtype=np.float32)[ans.labels])
            at += len(chunk)
        if not got_x:
            empty = np.zeros((0, *x.shape[1:]), dtype=x.dtype)
            return Answers(empty, np.zeros(0, dtype=np.int64), np.zeros((0, k), np.float32), refusal)
        probs = np.concatenate(targets)
        probs = probs / np.clip(probs.sum(axis=1, keepdims=True), 1e-12, None)
        return Answers(np.concatenate(got_x), np.concatenate(labels), probs.astype(np.float32), refusal)


def strongest_principal(policy: AccessPolicy) -> tuple[str, Output] | None:
    """The principal an extraction attacker would want: probabilities before labels, then the
    largest allowance (no budget counts as unlimited)."""
    best: tuple[tuple[int, float], str, Output] | None = None
    for name, principal in policy.principals.items():
        perms = policy.permissions_of(name)
        if not perms & {"predict", "predict_proba"}:
            continue
        rule = policy.output_rule(name, "predict_proba") if "predict_proba" in perms else None
        proba = rule is not None and not rule.label_only
        b = principal.budget
        allowance = np.inf if b is None or b.total is None else float(b.total)
        rank = (int(proba), allowance)
        if best is None or rank > best[0] or (rank == best[0] and name < best[1]):
            best = (rank, name, "probabilities" if proba else "labels")
    return None if best is None else (best[1], best[2])


@register
class ExtractionResistanceProbe(_PolicyProbe):
    """The extraction attack before and behind the guard, on the same queries."""

    id: ClassVar[str] = "defense.extraction_resistance"
    aliases: ClassVar[tuple[str, ...]] = ("extraction-resistance",)
    settings_type: ClassVar[type[Any]] = ResistanceSettings
    settings: ResistanceSettings
    traits: ClassVar[frozenset[str]] = frozenset({"black-box"})
    emits: ClassVar[EmittedEvidence] = EmittedEvidence(
        title="Model extraction against the bare model and through the guard, at a query budget",
        metrics=("fidelity_raw", "fidelity_guarded", "fidelity_reduction", "queries_answered",
                 "queries_refused"),
        params=("policy", "principals", "budget", "principal", "output", "attack", "stopped_by",
                "hardening", "monitor", "epochs"),
        key=("budget",),
        flags=("rate_limited", "no_predicting_principal"),
    )

    def applies_to(self, target: Target) -> bool:
        return super().applies_to(target) and target.model.n_classes >= 2 and len(target.y_eval) >= 2

    def check(self, target: Target) -> None:
        super().check(target)
        policy = self.policy()
        if self.settings.principal is not None:
            policy.principal(self.settings.principal)
        self.budgets(target)

    def budgets(self, target: Target) -> tuple[int, ...]:
        """As extraction's, but one budget by default: the largest of the defaults."""
        budgets = checked_budgets(self.id, self.settings.budgets, target)
        return budgets[-1:] if self.settings.budgets is None else tuple(sorted(set(budgets)))

    def run(self, target: Target, ctx: RunContext) -> list[Evidence]:
        self.check(target)
        s = self.settings
        policy = self.policy()
        params = self.params(policy)
        chosen = ((s.principal, self._output(policy, s.principal)) if s.principal is not None
                  else strongest_principal(policy))
        budgets = self.budgets(target)
        if chosen is None:
            flag = Flag("no_predicting_principal",
                        "no principal of the policy may predict: nothing to extract")
            return [Evidence(probe=self.id, params={**params, "budget": b}, metrics={}, flags=[flag],
                             seed=ctx.seed) for b in budgets]
        principal, output = chosen
        split = query_split(target, ctx.seed, s.eval_samples)
        reference = target.model.predict(split.held_out)
        raw_answers = LocalOracle(target.model).ask(split.pool[:max(budgets)], output, ctx.progress)
        out = []
        for i, budget in enumerate(budgets):
            ctx.progress(f"{self.id} budget={budget}", i, len(budgets))
            start = time.perf_counter()
            with sandbox(policy) as (pol, _):
                oracle = GuardedOracle(GuardedModel(target.model, pol, monitor=_monitor(pol)), principal)
                guarded_answers = oracle.ask(split.pool[:budget], output, ctx.progress)
            raw = self._copy(target, raw_answers.prefix(budget), output, budget, ctx.seed)
            agree_raw = raw.predict(split.held_out) == reference
            n = guarded_answers.count
            if n:
                guarded = self._copy(target, guarded_answers, output, budget, ctx.seed)
                agree_guarded = guarded.predict(split.held_out) == reference
            else:
                agree_guarded = np.zeros_like(agree_raw)
            flags = []
            if oracle.stopped_by == "rate limit":
                flags.append(Flag("rate_limited", "the rate limit stopped the querying; an attacker who "
                                                  "waits gets more answers than this copy was trained on"))
            rule = policy.output_rule(principal, OUTPUTS[output])
            metrics = {
                "fidelity_raw": Metric.proportion(int(agree_raw.sum()), len(agree_raw)),
                "fidelity_guarded": Metric.proportion(int(agree_guarded.sum()), len(agree_guarded)),
                "fidelity_reduction": paired_difference(agree_raw, agree_guarded),
                "queries_answered": Metric(float(n)),
                "queries_refused": Metric(float(budget - n)),
            }
            out.append(Evidence(
                probe=self.id, metrics=metrics, flags=flags, seed=ctx.seed,
                params={**params, "budget": budget, "principal": principal, "output": output,
                        "attack": "CopycatCNN (ART)" if output == "labels" else "KnockoffNets (ART)",
                        "stopped_by": oracle.stopped_by, "hardening": _describe_rule(rule),
                        "monitor": policy.monitor is not None,
                        "epochs": epochs_for(budget, s.epochs, s.fit_batch_size, MIN_STEPS)},
                duration_s=time.perf_counter() - start))
        return out

    @staticmethod
    def _output(policy: AccessPolicy, principal: str) -> Output:
        perms = policy.permissions_of(principal)
        if "predict_proba" in perms and not policy.output_rule(principal, "predict_proba").label_only:
            return "probabilities"
        return "labels"

    def _copy(self, target: Target, answers: Answers, output: Output, budget: int, seed: int) -> Any:
        s = self.settings
        epochs = epochs_for(answers.count, s.epochs, s.fit_batch_size, MIN_STEPS)
        recipe = Recipe(epochs=epochs, batch_size=s.fit_batch_size, learning_rate=s.learning_rate,
                        architecture="auto")
        return steal(target, answers, output, recipe, copy_seed(seed, budget))


def _describe_rule(rule: Any) -> str:
    parts = []
    if rule.label_only:
        parts.append("labels only")
    if rule.top_k is not None:
        parts.append(f"top-{rule.top_k}")
    if rule.round is not None:
        parts.append(f"rounded to {rule.round} decimals")
    if rule.reverse_sigmoid is not None:
        rs = rule.reverse_sigmoid
        parts.append(f"reverse sigmoid (beta {rs.beta:g}, gamma {rs.gamma:g})")
    return ", ".join(parts) or "none"


# ---------------------------------------------------------------------------- audit log


@dataclass(frozen=True, slots=True, kw_only=True)
class LogSettings:
    """``access_policy``: the policy file; ``audit_log``: a deployment's log to verify too
    (``guard serve --log``), with ``log_hmac_key_env`` naming the variable holding its HMAC
    key when it has one."""

    access_policy: str | None = None
    audit_log: str | None = None
    log_hmac_key_env: str | None = None

    def __post_init__(self) -> None:
        _policy_setting(self.access_policy)
        _policy_setting(self.audit_log, "audit_log")
        if self.log_hmac_key_env is not None and (not isinstance(self.log_hmac_key_env, str)
                                                  or not self.log_hmac_key_env):
            raise ConfigError("log_hmac_key_env must name an environment variable")
        if self.log_hmac_key_env is not None and self.audit_log is None:
            raise ConfigError("log_hmac_key_env names the key of audit_log, but no audit_log is given")


@register
class AuditLogProbe(_PolicyProbe):
    """Every request logged, the log verified, and tampering with it caught."""

    id: ClassVar[str] = "defense.audit_log"
    aliases: ClassVar[tuple[str, ...]] = ("audit-log",)
    settings_type: ClassVar[type[Any]] = LogSettings
    settings: LogSettings
    emits: ClassVar[EmittedEvidence] = EmittedEvidence(
        title="The guard's audit log: every request recorded, the hash chain verified, tampering caught",
        metrics=("requests", "logged", "log_verified", "tamper_detected", "secrets_logged",
                 "deployment_log_verified", "deployment_log_records"),
        params=("policy", "principals", "tampering", "deployment_log", "deployment_problem"),
        key=("policy",),
    )

    def check(self, target: Target) -> None:
        super().check(target)
        s = self.settings
        if s.audit_log is not None and not Path(s.audit_log).is_file():
            raise ConfigError(f"{self.id}: audit_log {s.audit_log}: no such file")
        if s.log_hmac_key_env is not None and not os.environ.get(s.log_hmac_key_env):
            raise ConfigError(f"{self.id}: the environment variable {s.log_hmac_key_env} (the audit "
                              "log's HMAC key) is not set or empty")

    def run(self, target: Target, ctx: RunContext) -> list[Evidence]:
        from guard.defenses.access.auditlog import AuditLog, verify_log

        self.check(target)
        start = time.perf_counter()
        policy = self.policy()
        params = self.params(policy)
        x = np.asarray(target.x_eval[:2])
        key = secrets.token_bytes(32)
        with sandbox(policy) as (pol, folder):
            path = folder / "audit.log"
            log = AuditLog(path, hmac_key=key)
            guarded = GuardedModel(target.model, pol, log=log)
            tokens = [guarded.tokens.create(p) for p in sorted(pol.principals)]
            requests = 0
            for kwargs in ([{"token": t, "output": o} for t in tokens for o in OUTPUTS]
                           + [{"token": "grd_0_forged"}, {}, {"principal": "nobody"}]):
                requests += 1
                try:
                    guarded.predict(x, **kwargs)
                except Refused:
                    pass
            log.close()
            text = path.read_bytes()
            lines = text.splitlines()
            check = verify_log(path, hmac_key=key)
            detected, tampering = self._tamper(path, folder, key, verify_log)
            leaked = sum(1 for t in tokens if t.encode() in text)
        metrics = {
            "requests": Metric(float(requests)),
            "logged": Metric.proportion(min(len(lines), requests), requests),
            "log_verified": Metric(1.0 if check.ok and check.records == requests else 0.0),
            "tamper_detected": Metric.proportion(detected, len(tampering)),
            "secrets_logged": Metric(float(leaked)),
        }
        params["tampering"] = tampering
        if self.settings.audit_log is not None:
            hmac_key = (os.environ[self.settings.log_hmac_key_env].encode()
                        if self.settings.log_hmac_key_env else None)
            deployed = verify_log(Path(self.settings.audit_log), hmac_key=hmac_key)
            metrics["deployment_log_verified"] = Metric(1.0 if deployed.ok else 0.0)
            metrics["deployment_log_records"] = Metric(float(deployed.records))
            params["deployment_log"] = Path(self.settings.audit_log).name
            params["deployment_problem"] = deployed.problem
        return [Evidence(probe=self.id, params=params, metrics=metrics, seed=ctx.seed,
                         duration_s=time.perf_counter() - start)]

    @staticmethod
    def _tamper(path: Path, folder: Path, key: bytes, verify: Any) -> tuple[int, list[str]]:
        """An edited, a removed and a reordered record, each in its own copy of the log."""
        lines = path.read_bytes().splitlines(keepends=True)
        mid = len(lines) // 2
        edited = list(lines)
        edited[mid] = edited[mid].replace(b'"outcome":"', b'"outcome":"x', 1)
        if edited[mid] == lines[mid]:
            edited[mid] = edited[mid].replace(b"}", b',"x":1}', 1)
        removed = lines[:mid] + lines[mid + 1:]
        swapped = list(lines)
        swapped[mid - 1], swapped[mid] = swapped[mid], swapped[mid - 1]
        results = []
        for name, content in (("edited", edited), ("removed", removed), ("reordered", swapped)):
            copy = folder / f"{name}.log"
            copy.write_bytes(b"".join(content))
            caught = not verify(copy, hmac_key=key).ok
            results.append((name, caught))
        return sum(c for _, c in results), [f"{n}: {'caught' if c else 'missed'}" for n, c in results]
