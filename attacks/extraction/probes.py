"""Model extraction: how many queries an attacker needs to train a faithful copy of the model.

Two probes, one per kind of answer: ``extraction.copycat`` trains the copy on the predicted
labels (ART's CopycatCNN), ``extraction.knockoff`` on the predicted probabilities (ART's
Knockoff Nets, random sampling). Each trains one copy from scratch per query budget, from
the answers to the first ``budget`` queries of the pool (:mod:`.queries`), and measures on
held-out inputs never queried for training:

* ``fidelity``: the share of held-out inputs on which the copy agrees with the target, the
  measure of theft (a faithful copy is a stolen model, and a proxy for crafting attacks
  offline);
* ``accuracy``: the copy's accuracy on the held-out true labels (beside ``target_accuracy``);
* ``queries``: the queries answered; against an endpoint, ``refused`` those it would not
  answer (HTTP 429 stops the querying: the copy is trained on what was answered).

The answers come from the model in memory, or from its HTTP endpoint (``endpoint``,
``token_env``: :mod:`.endpoint`), so a serving defense (rate limits, output hardening) is
measured by attacking it again. Fidelity is always measured against the model in memory,
which is the model the endpoint serves.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from guard.attacks.extraction.endpoint import (
    EndpointOracle,
    check_env_name,
    check_url,
    preflight,
    read_token,
)
from guard.attacks.extraction.queries import (
    Answers,
    LocalOracle,
    Oracle,
    Output,
    QuerySplit,
    default_budgets,
    epochs_for,
    pool_size,
    query_split,
)
from guard.attacks.extraction.surrogate import (
    Architecture,
    Recipe,
    copy_seed,
    describe_architecture,
    steal,
)
from guard.errors import ConfigError
from guard.evidence import Evidence, Flag
from guard.probes import EmittedEvidence, Probe, RunContext, bounded, check_ranges, register
from guard.stats import Metric
from guard.target import Target

DEFAULT_BUDGETS = (50, 250, 1000)
"""The quick default: the budgets the pool holds (and the whole pool when it is smaller)."""
MAX_BUDGETS = 32
MIN_STEPS = 200
"""The fewest optimiser steps a copy gets (small budgets train for more epochs)."""
MISMATCH_TOLERANCE = 0.01

QUERY_REFUSED = "query_refused"
ANSWER_CLASSES_MISSING = "answer_classes_missing"
ENDPOINT_MISMATCH = "endpoint_mismatch"
NO_BETTER_THAN_CONSTANT = "no_better_than_constant"
FLAGS = (QUERY_REFUSED, ANSWER_CLASSES_MISSING, ENDPOINT_MISMATCH, NO_BETTER_THAN_CONSTANT)


@dataclass(frozen=True, slots=True, kw_only=True)
class ExtractionSettings:
    """``budgets``: the query budgets (None: 50, 250 and 1,000, those the pool holds, and the
    whole pool when it holds fewer). ``epochs``, ``fit_batch_size``, ``learning_rate``: the
    copy's training (Adam; at least 200 steps however small the budget). ``architecture``:
    ``auto`` (a PyTorch target's own, re-initialised; else an MLP) or ``mlp``.
    ``eval_samples``: at most this many held-out inputs. ``endpoint``: an http(s) URL
    answering the ``guard serve`` protocol instead of the model in memory; ``token_env``: the
    environment variable holding its bearer token; ``query_batch_size`` inputs per request,
    ``timeout`` seconds per request."""

    budgets: tuple[int, ...] | None = bounded(None, 1, 10_000_000, integer=True)
    epochs: int = bounded(30, 1, 10_000, integer=True)
    fit_batch_size: int = bounded(64, 1, 65_536, integer=True)
    learning_rate: float = bounded(2e-3, 1e-6, 1.0)
    architecture: Architecture = "auto"
    eval_samples: int = bounded(10_000, 1, 10_000_000, integer=True)
    endpoint: str | None = None
    token_env: str | None = None
    query_batch_size: int = bounded(256, 1, 100_000, integer=True)
    timeout: float = bounded(30.0, 0.1, 600.0)

    def __post_init__(self) -> None:
        if self.budgets is not None:
            if not isinstance(self.budgets, tuple) or not self.budgets:
                raise ConfigError("budgets: give at least one query budget")
            if len(self.budgets) > MAX_BUDGETS:
                raise ConfigError(f"budgets: give at most {MAX_BUDGETS} values, got {len(self.budgets)}")
        check_ranges(self)
        if self.budgets is not None and len(set(self.budgets)) != len(self.budgets):
            raise ConfigError(f"budgets: each budget once, got {list(self.budgets)}")
        if self.architecture not in ("auto", "mlp"):
            raise ConfigError(f"architecture must be 'auto' or 'mlp', got {self.architecture!r}")
        if self.endpoint is not None:
            if not isinstance(self.endpoint, str):
                raise ConfigError("endpoint must be an http(s) URL")
            check_url(self.endpoint)
        if self.token_env is not None:
            if not isinstance(self.token_env, str):
                raise ConfigError("token_env must name an environment variable")
            check_env_name(self.token_env)
            if self.endpoint is None:
                raise ConfigError("token_env names the endpoint's token, but no endpoint is given")


def checked_budgets(probe_id: str, given: tuple[int, ...] | None, target: Target) -> tuple[int, ...]:
    """The budgets to measure, ascending (None: the defaults the pool holds); a given budget
    larger than the query pool is an error."""
    pool, where = pool_size(target)
    if given is None:
        return default_budgets(pool, DEFAULT_BUDGETS)
    for budget in sorted(given, reverse=True):
        if budget > pool:
            raise ConfigError(f"{probe_id}: budget {budget} is larger than the query pool of {pool} "
                              f"inputs ({where}); lower --budgets or give more data")
    return tuple(sorted(given))


class ExtractionProbe(Probe):
    """One copy per budget, trained on one kind of answer (:attr:`output`)."""

    category: ClassVar[str] = "extraction"
    settings_type: ClassVar[type[Any]] = ExtractionSettings
    traits: ClassVar[frozenset[str]] = frozenset({"black-box"})
    default: ClassVar[bool] = True
    output: ClassVar[Output]
    attack: ClassVar[str]
    settings: ExtractionSettings

    def applies_to(self, target: Target) -> bool:
        return target.model.n_classes >= 2 and len(target.y_eval) >= 2

    def why_not(self, target: Target) -> str:
        if target.model.n_classes < 2:
            return "a model with one class has nothing to copy"
        return "needs at least 2 evaluation samples (one to query, one to measure on)"

    def check(self, target: Target) -> None:
        super().check(target)
        if not self.applies_to(target):
            raise ConfigError(f"{self.id}: {self.why_not(target)}")
        self.budgets(target)
        if self.settings.endpoint is not None:
            read_token(self.settings.endpoint, self.settings.token_env)
            preflight(self.settings.endpoint, self.settings.timeout)

    def budgets(self, target: Target) -> tuple[int, ...]:
        return checked_budgets(self.id, self.settings.budgets, target)

    def oracle(self, target: Target) -> Oracle:
        s = self.settings
        if s.endpoint is None:
            return LocalOracle(target.model)
        return EndpointOracle(s.endpoint, s.token_env, target.model.n_classes, timeout=s.timeout,
                              batch_size=s.query_batch_size)

    def run(self, target: Target, ctx: RunContext) -> list[Evidence]:
        self.check(target)
        budgets = self.budgets(target)
        split = query_split(target, ctx.seed, self.settings.eval_samples)
        oracle = self.oracle(target)
        total = len(budgets) + 1
        ctx.progress(f"{self.id} queries", 0, total)
        start = time.perf_counter()
        answers = oracle.ask(split.pool[:max(budgets)], self.output, ctx.progress)
        query_s = time.perf_counter() - start
        reference = target.model.predict(split.held_out)
        context = _Context(split, reference, answers, oracle, _mismatch(target, answers, oracle))
        out = []
        for i, budget in enumerate(budgets, start=1):
            ctx.progress(f"{self.id} budget={budget}", i, total)
            start = time.perf_counter()
            evidence = self._measure(target, context, budget, ctx.seed)
            evidence.duration_s = time.perf_counter() - start + query_s / len(budgets)
            out.append(evidence)
        ctx.progress(self.id, total, total)
        return out

    def _measure(self, target: Target, c: _Context, budget: int, seed: int) -> Evidence:
        s = self.settings
        n = min(budget, c.answers.count)
        k = target.model.n_classes
        params: dict[str, Any] = {
            "budget": budget, "output": self.output, "source": c.oracle.source, "pool": len(c.split.pool),
            "pool_source": c.split.pool_source, "attack": self.attack, "fit_batch_size": s.fit_batch_size,
            "learning_rate": s.learning_rate,
        }
        if isinstance(c.oracle, EndpointOracle):
            params["endpoint"] = c.oracle.shown
        flags = list(c.mismatch)
        if c.answers.refusal is not None and n < budget:
            flags.append(Flag(QUERY_REFUSED, f"the endpoint stopped answering ({c.answers.refusal}): "
                                             f"this copy was trained on {n} of its {budget} queries"))
        metrics: dict[str, Metric] = {}
        if n == 0:  # nothing answered: no copy, so no fidelity (the control says so, never a pass)
            params.update({"surrogate": describe_architecture(target, s.architecture), "epochs": 0})
        else:
            answered = c.answers.prefix(n)
            epochs = epochs_for(n, s.epochs, s.fit_batch_size, MIN_STEPS)
            recipe = Recipe(epochs=epochs, batch_size=s.fit_batch_size, learning_rate=s.learning_rate,
                            architecture=s.architecture)
            stolen = steal(target, answered, self.output, recipe, copy_seed(seed, budget))
            params.update({"surrogate": stolen.surrogate, "epochs": epochs})
            metrics.update(_judge(stolen.predict(c.split.held_out), c, k, flags))
            present = len(np.unique(answered.labels))
            if present < k:
                flags.append(Flag(ANSWER_CLASSES_MISSING, f"the {n} answers hold {present} of the model's "
                                                          f"{k} classes: the copy cannot answer the others"))
        target_right = int(np.sum(c.reference == c.split.held_out_labels))
        metrics["target_accuracy"] = Metric.proportion(target_right, len(c.reference))
        metrics["queries"] = Metric(float(n))
        if c.oracle.source == "endpoint":
            metrics["refused"] = Metric(float(budget - n))
        return Evidence(probe=self.id, params=params, metrics=metrics, flags=flags, seed=seed)


def _judge(copy_labels: np.ndarray, c: _Context, n_classes: int, flags: list[Flag]) -> dict[str, Metric]:
    """Fidelity and accuracy of the copy on the held-out inputs (a flag when it learnt nothing)."""
    held = len(c.reference)
    agree = int(np.sum(copy_labels == c.reference))
    constant = int(np.bincount(c.reference, minlength=n_classes).max())
    if agree <= constant:
        flags.append(Flag(NO_BETTER_THAN_CONSTANT,
                          f"the copy agrees with the model on {agree} of {held} held-out inputs, no more "
                          f"than always answering the model's commonest class ({constant}): "
                          "it learnt nothing"))
    right = int(np.sum(copy_labels == c.split.held_out_labels))
    return {"fidelity": Metric.proportion(agree, held), "accuracy": Metric.proportion(right, held)}


@dataclass(frozen=True, slots=True)
class _Context:
    split: QuerySplit
    reference: np.ndarray
    """The target's labels on the held-out inputs: what fidelity compares with."""
    answers: Answers
    oracle: Oracle
    mismatch: tuple[Flag, ...]


def _mismatch(target: Target, answers: Answers, oracle: Oracle) -> tuple[Flag, ...]:
    """A flag when the endpoint's answers disagree with the model in memory on the queried
    inputs: it serves another model (or perturbs the answers), and fidelity, measured against
    the model in memory, is about that model."""
    if oracle.source != "endpoint" or answers.count == 0:
        return ()
    local = target.model.predict(answers.x)
    differ = int(np.sum(local != answers.labels))
    if differ <= MISMATCH_TOLERANCE * answers.count:
        return ()
    return (Flag(ENDPOINT_MISMATCH, f"the endpoint's answers differ from the audited model's on {differ} of "
                                    f"{answers.count} queried inputs: it may serve another model"),)


def _emits(title: str) -> EmittedEvidence:
    """The two probes emit the same evidence; ``refused`` and ``endpoint`` only against an endpoint."""
    return EmittedEvidence(
        title=title,
        metrics=("fidelity", "accuracy", "target_accuracy", "queries", "refused"),
        params=("budget", "surrogate", "output", "source", "pool", "pool_source", "attack", "epochs",
                "fit_batch_size", "learning_rate", "endpoint"),
        key=("budget",),
        flags=FLAGS,
    )


@register
class Copycat(ExtractionProbe):
    """A copy trained on the predicted labels: what a label-only API gives away."""

    id: ClassVar[str] = "extraction.copycat"
    aliases: ClassVar[tuple[str, ...]] = ("extraction", "copycat")
    output: ClassVar[Output] = "labels"
    attack: ClassVar[str] = "CopycatCNN (ART)"
    emits: ClassVar[EmittedEvidence] = _emits(
        "Model extraction from predicted labels (CopycatCNN) at a query budget")


@register
class Knockoff(ExtractionProbe):
    """A copy trained on the predicted probabilities: what full scores give away beyond labels."""

    id: ClassVar[str] = "extraction.knockoff"
    aliases: ClassVar[tuple[str, ...]] = ("knockoff",)
    output: ClassVar[Output] = "probabilities"
    attack: ClassVar[str] = "KnockoffNets, random sampling (ART)"
    emits: ClassVar[EmittedEvidence] = _emits(
        "Model extraction from predicted probabilities (Knockoff Nets) at a query budget")
