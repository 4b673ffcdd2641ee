"""What the attacker asks and what it gets back.

The attacker holds natural, in-distribution inputs (the *query pool*) and no labels: the
target's training inputs when the audit has them, else a part of the evaluation data that
is disjoint from the held-out part on which the copy is judged. Queries are a prefix of one
seeded permutation of the pool, so the queries of a small budget are the first queries of a
larger one (an attacker who spent 1,000 queries also holds the answers to its first 100),
and the pool is asked once, for the largest budget.

Answers come from the model in memory (:class:`LocalOracle`) or from its HTTP endpoint
(:mod:`.endpoint`); both are checked the same way (:func:`checked_labels`,
:func:`checked_probabilities`) before a copy is trained on them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np

from guard.errors import TargetMismatchError
from guard.probes import ProgressFn
from guard.target import ModelAdapter, Target

Output = Literal["labels", "probabilities"]
PROBABILITY_SLACK = 0.1
"""How far above 1 a row of probabilities may sum (rounded outputs: ``round = 2`` over many
classes adds up to 0.005 per class). Rows summing to less are legitimate (top-k outputs zero
the rest) and are renormalised."""


class BadAnswer(ValueError):
    """An answer that does not fit the model (wrong count, class, range); the caller words it."""


@dataclass(frozen=True, slots=True)
class QuerySplit:
    """``pool``: the inputs the attacker may query, already in query order. ``held_out``: where
    fidelity and accuracy are measured (never queried for training)."""

    pool: np.ndarray
    pool_source: str
    held_out: np.ndarray
    held_out_labels: np.ndarray


def query_split(target: Target, seed: int, eval_samples: int) -> QuerySplit:
    """The target's training inputs as the pool and its evaluation data as the held-out part;
    without training inputs, a seeded half of the evaluation data each (at least one input
    each: callers check :func:`pool_size` first)."""
    rng = np.random.default_rng(seed)
    n_eval = len(target.y_eval)
    if target.x_train is not None and len(target.x_train) > 0:
        pool = _float32(target.x_train)[rng.permutation(len(target.x_train))]
        order = rng.permutation(n_eval)[:eval_samples]
        source = "training inputs"
    else:
        shuffled = rng.permutation(n_eval)
        held = n_eval // 2
        pool = _float32(target.x_eval[shuffled[held:]])
        order = shuffled[:min(held, eval_samples)]
        source = "evaluation data (the half not held out)"
    order = np.sort(order)
    return QuerySplit(pool, source, _float32(target.x_eval[order]), np.asarray(target.y_eval)[order])


def pool_size(target: Target) -> tuple[int, str]:
    """How many inputs the attacker holds, and where they come from (without building them)."""
    if target.x_train is not None and len(target.x_train) > 0:
        return len(target.x_train), "the target's training inputs"
    n = len(target.y_eval)
    return n - n // 2, f"half of the {n} evaluation samples, as the target has no training data"


def _float32(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x, dtype=np.float32)


@dataclass(slots=True)
class Answers:
    """The answered prefix of the queries: ``x`` the inputs, ``labels`` the answered (or
    arg-max) classes, ``targets`` what the copy is trained on (one-hot labels, or probability
    rows summing to 1). ``refusal`` says why querying stopped early (HTTP 429), if it did."""

    x: np.ndarray
    labels: np.ndarray
    targets: np.ndarray
    refusal: str | None = None

    @property
    def count(self) -> int:
        return len(self.labels)

    def prefix(self, n: int) -> Answers:
        """The answers to the first ``n`` queries."""
        return Answers(self.x[:n], self.labels[:n], self.targets[:n], self.refusal)


class Oracle(Protocol):
    """Whoever answers the attacker's queries."""

    source: str
    """``model`` (the model in memory) or ``endpoint``."""

    def ask(self, x: np.ndarray, output: Output, progress: ProgressFn) -> Answers:
        """Answers for a prefix of ``x`` (all of it unless the answerer refuses more)."""
        ...


class LocalOracle:
    """The model in memory: answers every query, labels from ``predict`` and probabilities from
    ``predict_proba`` (for PyTorch the softmax of the logits, never the logits themselves)."""

    source = "model"

    def __init__(self, model: ModelAdapter) -> None:
        self._model = model

    def ask(self, x: np.ndarray, output: Output, progress: ProgressFn) -> Answers:
        k = self._model.n_classes
        try:
            if output == "labels":
                labels = checked_labels(self._model.predict(x).tolist(), len(x), k)
                return Answers(x, labels, one_hot(labels, k))
            proba = checked_probabilities(np.asarray(self._model.predict_proba(x)).tolist(), len(x), k)
        except BadAnswer as exc:
            raise TargetMismatchError(f"the model's own answers do not fit it: {exc}") from None
        return Answers(x, proba.argmax(axis=1), proba)


def one_hot(labels: np.ndarray, n_classes: int) -> np.ndarray:
    out: np.ndarray = np.eye(n_classes, dtype=np.float32)[labels]
    return out


def checked_labels(values: object, n: int, n_classes: int) -> np.ndarray:
    """``n`` class indices in ``[0, n_classes)``, as int64; :class:`BadAnswer` otherwise."""
    if not isinstance(values, list):
        raise BadAnswer(f"labels must be a list, got {type(values).__name__}")
    if len(values) != n:
        raise BadAnswer(f"{len(values)} labels for {n} inputs")
    for v in values:
        if type(v) is not int:  # not bool, not 3.0: a label is a class index
            raise BadAnswer(f"label {_short(v)} is not a class index (a whole number)")
        if not 0 <= v < n_classes:
            raise BadAnswer(f"label {v} is not a class of the model "
                            f"(it has {n_classes}: 0 to {n_classes - 1})")
    return np.asarray(values, dtype=np.int64).reshape(n)


def checked_probabilities(rows: object, n: int, n_classes: int) -> np.ndarray:
    """``n`` rows of ``n_classes`` finite values in [0, 1], each summing to more than 0 and at
    most 1 + :data:`PROBABILITY_SLACK`, renormalised to sum to 1, as float32."""
    if not isinstance(rows, list):
        raise BadAnswer(f"probabilities must be a list of rows, got {type(rows).__name__}")
    if len(rows) != n:
        raise BadAnswer(f"{len(rows)} rows of probabilities for {n} inputs")
    for row in rows:
        if not isinstance(row, list):
            raise BadAnswer(f"a row of probabilities is {type(row).__name__}, not a list")
        if len(row) != n_classes:
            raise BadAnswer(f"probabilities for {len(row)} classes; the model has {n_classes}")
        for v in row:
            if isinstance(v, bool) or not isinstance(v, int | float):
                raise BadAnswer(f"probability {_short(v)} is not a number")
    p = np.asarray(rows, dtype=np.float64).reshape(n, n_classes)
    if not np.isfinite(p).all():
        raise BadAnswer("probabilities hold NaN or infinite values")
    if (p < 0).any() or (p > 1 + 1e-6).any():
        raise BadAnswer(f"probabilities outside [0, 1] (from {p.min():.3g} to {p.max():.3g}): "
                        "logits or scores are not probabilities")
    sums = p.sum(axis=1)
    if (sums <= 0).any():
        raise BadAnswer("a row of probabilities is all zero")
    if (sums > 1 + PROBABILITY_SLACK).any():
        raise BadAnswer(f"a row of probabilities sums to {sums.max():.3g}, not 1")
    out: np.ndarray = (p / sums[:, None]).astype(np.float32)
    return out


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 30 else text[:27] + "..."


def default_budgets(pool: int, preferred: tuple[int, ...]) -> tuple[int, ...]:
    """The preferred budgets the pool holds, ending with the whole pool when it holds fewer
    than the largest (a default audit never fails for want of data)."""
    fitting = tuple(b for b in preferred if b <= pool)
    if pool < max(preferred):
        fitting += (pool,)
    return tuple(sorted(set(fitting)))


def epochs_for(n: int, epochs: int, batch_size: int, min_steps: int) -> int:
    """``epochs`` passes, or more for a small budget: at least ``min_steps`` optimiser steps,
    so a copy trained on 50 answers is trained to fit them rather than stopped after a few
    updates (an attacker with few answers trains longer, not less)."""
    steps_per_epoch = math.ceil(n / batch_size)
    return max(epochs, math.ceil(min_steps / steps_per_epoch))
