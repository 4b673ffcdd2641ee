"""Membership inference: can an attacker tell the model's training samples from unseen ones?

A model that behaves differently on the records it was trained on discloses who was in its
training data (GDPR Recital 26: a person identifiable from the model). Three attacks score
the same samples, one Evidence each (see :mod:`.scores` for the attacks, :mod:`.roc` for the
statistics):

- ``rmia``: RMIA in its offline form (Zarifzadeh et al. 2024,
  https://arxiv.org/abs/2312.03262), calibrated per sample by ``reference_models`` models
  trained by the target's own recipe (scikit-learn: clone and fit; PyTorch: ``--trainer``) on
  population data that holds none of the scored samples;
- ``loss_threshold``: the target's loss on each sample (Yeom et al. 2018), no reference model;
- ``art_blackbox``: ART's learned black-box attack, the baseline.

The data: members are drawn from the target's training set, as many non-members from its
evaluation set (held out), balanced, at most ``members`` each and at most half of either
set's distinct records; the other halves are the population the reference models train on,
and the known members and non-members ART's attack model learns from. Nothing scored, and
no copy of it, is ever trained on; an evaluation row identical to a training row is never a
non-member (:mod:`.samples`).

The null control: one more model, trained by the recipe on the spare members (the target's
own training distribution), has seen neither the scored members nor the scored
non-members. Every attack scores both sets against it exactly as against the target; the
AUC it reaches (``null_auc``) must be near 0.5. When its interval excludes 0.5 the evidence
carries ``null_control_failed``: the two sets differ in something other than membership
(the held-out data is not from the training data's distribution, say), so the attack's
numbers measure that difference too. RMIA's ``a`` is chosen by a simulated attack on the
first reference model (whose training set is known), never from the target's answers. A
PyTorch target without ``--trainer`` has no recipe: RMIA and the null control cannot run
(``no_recipe``); the loss-threshold and ART attacks still do.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from guard.attacks.poisoning.retrain import Retrainer, TrainerError
from guard.attacks.privacy import roc, scores
from guard.attacks.privacy.samples import Split, count_records, record_ids, split
from guard.errors import ConfigError, DataError, TargetMismatchError
from guard.evidence import Curve, Evidence, Flag
from guard.probes import EmittedEvidence, Probe, RunContext, bounded, check_ranges, register
from guard.stats import Metric
from guard.target import Capability, Target

RMIA, LOSS, ART = "rmia", "loss_threshold", "art_blackbox"
ATTACKS = (RMIA, LOSS, ART)
FPRS = {0.01: "tpr_at_1pct_fpr", 0.001: "tpr_at_0_1pct_fpr"}
MIN_MEMBERS = 20
"""Fewest members (and non-members) scored: a training and an evaluation set of 40 each."""
REFERENCE_SHARE = 0.8
"""Each reference model trains on this share of the population, capped at the target's
training-set size, so that every population sample is left out of some of them (the
simulated attack that chooses RMIA's ``a`` needs OUT models for known members)."""

NULL_CONTROL_FAILED = "null_control_failed"
TOO_FEW_NON_MEMBERS = "too_few_non_members"
NO_RECIPE = "no_recipe"


@dataclass(frozen=True, slots=True, kw_only=True)
class MembershipSettings:
    """``reference_models``: RMIA's OUT models (1 is quick; 2-4 add power). ``attacks``: any
    of rmia, loss_threshold, art_blackbox. ``members``: most members scored (as many
    non-members). ``offline_a``: RMIA's ``a``, or None to choose it by a simulated attack.
    ``trainer``: ``MODULE:FUNCTION`` training a PyTorch model (``--trainer``)."""

    reference_models: int = bounded(1, 1, 16, integer=True)
    attacks: tuple[str, ...] = ATTACKS
    members: int = bounded(2000, MIN_MEMBERS, 1_000_000, integer=True)
    offline_a: float | None = bounded(None, 0.0, 1.0)
    trainer: str | None = None

    def __post_init__(self) -> None:
        check_ranges(self)
        if not isinstance(self.attacks, tuple) or not self.attacks:
            raise ConfigError(f"attacks: name at least one of {', '.join(ATTACKS)}")
        unknown = [a for a in self.attacks if a not in ATTACKS]
        if unknown:
            raise ConfigError(f"attacks: unknown attack {unknown[0]!r}; known: {', '.join(ATTACKS)}")
        if len(set(self.attacks)) != len(self.attacks):
            raise ConfigError(f"attacks: each attack once, got {list(self.attacks)}")
        if self.trainer is not None and (not isinstance(self.trainer, str) or ":" not in self.trainer):
            raise ConfigError(f"trainer must be MODULE:FUNCTION, got {self.trainer!r}")

    @property
    def chosen_explicitly(self) -> bool:
        """Whether ``attacks`` is a selection the user made (then each must run) rather than
        all three, the default (which leaves out what the target cannot support)."""
        return set(self.attacks) != set(ATTACKS)


@dataclass(slots=True)
class Scored:
    """One attack's scores of the members and non-members, on the target and on the null model."""

    members: np.ndarray
    non_members: np.ndarray
    null_members: np.ndarray | None = None
    null_non_members: np.ndarray | None = None
    params: dict[str, Any] | None = None
    seconds: float = 0.0


@register
class MembershipInference(Probe):
    """RMIA, a loss threshold and ART's black-box attack on the same members and non-members."""

    id: ClassVar[str] = "privacy.membership_inference"
    aliases: ClassVar[tuple[str, ...]] = ("membership",)
    category: ClassVar[str] = "privacy"
    requires: ClassVar[frozenset[Capability]] = frozenset({Capability.TRAIN_DATA})
    settings_type: ClassVar[type[Any]] = MembershipSettings
    settings: MembershipSettings
    default: ClassVar[bool] = True
    emits: ClassVar[EmittedEvidence] = EmittedEvidence(
        title="Membership inference attack on the training data (one attack - rmia, loss_threshold or "
              "art_blackbox)",
        metrics=("auc", "advantage", "tpr_at_1pct_fpr", "tpr_at_0_1pct_fpr", "attack_accuracy", "null_auc"),
        params=("attack", "members", "non_members", "reference_models", "recipe", "lowest_fpr", "offline_a",
                "reference_train_samples", "null_train_samples", "attack_train_samples"),
        key=("attack",),
        flags=(NULL_CONTROL_FAILED, TOO_FEW_NON_MEMBERS, NO_RECIPE),
    )

    def check(self, target: Target) -> None:
        self._checked(target)

    def _checked(self, target: Target) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`check`, giving back each row's record id (training rows, evaluation rows)."""
        super().check(target)
        ids = _check_data(self.id, target)
        explicit = RMIA in self.settings.attacks and self.settings.chosen_explicitly
        if explicit and self._retrainer(target) is None:
            raise ConfigError(
                f"{self.id}: rmia trains reference models by the target's recipe, and target "
                f"{target.name!r} is a PyTorch model whose file holds none: name the training "
                "function with --trainer MODULE:FUNCTION (called as train(x, y, seed) -> nn.Module), "
                "or leave rmia out of attacks")
        return ids

    def _retrainer(self, target: Target) -> Retrainer | None:
        """The recipe (checked: a bad ``--trainer`` is an error now), or None for a PyTorch
        target without one."""
        if target.model.framework != "sklearn" and self.settings.trainer is None:
            return None
        return Retrainer(target, self.settings.trainer)

    def run(self, target: Target, ctx: RunContext) -> list[Evidence]:
        train_ids, eval_ids = self._checked(target)
        x_train, y_train = _training_data(self.id, target)
        retrainer = self._retrainer(target)
        s = self.settings
        attacks = [a for a in s.attacks if a != RMIA or retrainer is not None]
        parts = split(train_ids, eval_ids, s.members, ctx.seed)
        data = _Data(target, x_train, y_train, parts)
        total = (0 if retrainer is None else s.reference_models + 1) + len(attacks)
        step = _Steps(ctx, self.id, total)
        start = time.perf_counter()
        models = None if retrainer is None else _train_models(self.id, retrainer, data, s.reference_models,
                                                             ctx.seed, step)
        shared = time.perf_counter() - start
        out = []
        for attack in attacks:
            step(attack)
            began = time.perf_counter()
            scored = _score(attack, data, models, s.offline_a, ctx.seed)
            scored.seconds = time.perf_counter() - began + shared / len(attacks)
            out.append(self._evidence(attack, scored, data, models, retrainer, ctx.seed))
        ctx.progress(self.id, total, total)
        return out

    def _evidence(self, attack: str, scored: Scored, data: _Data, models: _Models | None,
                  retrainer: Retrainer | None, seed: int) -> Evidence:
        pos, neg = scored.members, scored.non_members
        rng = np.random.default_rng([seed, ATTACKS.index(attack)])
        adv = roc.advantage_metric(pos, neg, rng)
        lo, hi = adv.ci95 if adv.ci95 is not None else (adv.value, adv.value)
        metrics: dict[str, Metric] = {
            "auc": roc.auc_metric(pos, neg),
            "advantage": adv,
            "attack_accuracy": Metric((1 + adv.value) / 2, n=adv.n, ci95=((1 + lo) / 2, (1 + hi) / 2)),
        }
        flags: list[Flag] = []
        reported = [fpr for fpr in FPRS if roc.supported(fpr, len(neg))]
        for fpr in reported:
            metrics[FPRS[fpr]] = roc.tpr_metric(pos, neg, fpr)
        missing = [fpr for fpr in FPRS if fpr not in reported]
        if missing:
            need = ", ".join(f"{fpr:.1%} FPR needs more than {round(1 / fpr)}" for fpr in missing)
            flags.append(Flag(TOO_FEW_NON_MEMBERS, (
                f"{len(neg)} non-members: the TPR at {need} non-members (a threshold that may flag "
                "at least one), so it is left out")))
        if scored.null_members is not None and scored.null_non_members is not None:
            null = roc.auc_metric(scored.null_members, scored.null_non_members)
            metrics["null_auc"] = null
            if null.ci95 is not None and not null.ci95[0] <= 0.5 <= null.ci95[1]:
                flags.append(Flag(NULL_CONTROL_FAILED, (
                    f"against a model that saw neither set the attack still tells them apart (AUC "
                    f"{null.value:.3f}, 95% CI {null.ci95[0]:.3f}-{null.ci95[1]:.3f}): members and "
                    "non-members differ in more than membership (is the held-out data from the training "
                    "distribution?), so part of this attack's AUC is that difference")))
        if models is None:
            flags.append(Flag(NO_RECIPE, (
                "the PyTorch target has no training recipe (--trainer MODULE:FUNCTION): RMIA and the null "
                "control did not run, so these numbers are neither the strongest attack's nor checked "
                "against a model that never saw the samples")))
        params: dict[str, Any] = {
            "attack": attack, "members": len(pos), "non_members": len(neg),
            "reference_models": models.references if models is not None and attack == RMIA else 0,
            "recipe": None if retrainer is None else retrainer.recipe,
            "lowest_fpr": min(reported) if reported else None,
            **(scored.params or {}),
        }
        if models is not None:
            params["null_train_samples"] = models.null_train_samples
            if attack == RMIA:
                params["reference_train_samples"] = models.train_samples
        curve = Curve("roc", "false-positive rate", "true-positive rate", roc.curve(pos, neg))
        return Evidence(probe=self.id, params=params, metrics=metrics, flags=flags, curves=[curve], seed=seed,
                        duration_s=scored.seconds)


class _Steps:
    """Progress: one step per model trained and per attack."""

    def __init__(self, ctx: RunContext, probe: str, total: int) -> None:
        self.ctx, self.probe, self.total, self.done = ctx, probe, total, 0

    def __call__(self, what: str) -> None:
        self.ctx.progress(f"{self.probe} {what}", self.done, self.total)
        self.done += 1


def _training_data(probe: str, target: Target) -> tuple[np.ndarray, np.ndarray]:
    if target.x_train is None or target.y_train is None:
        raise DataError(f"{probe}: target {target.name!r} has no training data")
    return target.x_train, target.y_train


def _check_data(probe: str, target: Target) -> tuple[np.ndarray, np.ndarray]:
    """Training data that fits the model, and enough records of both kinds (an evaluation
    row that is also a training row is no non-member): one line otherwise. Gives back each
    row's record id (:func:`.samples.record_ids`)."""
    x, y = _training_data(probe, target)
    n_classes = target.model.n_classes
    if n_classes < 2:
        raise DataError(f"{probe}: the model has {n_classes} class: it gives every sample the same answer, "
                        "so there is no membership to infer (needs at least 2 classes)")
    for name, xs, ys in (("training", x, y), ("evaluation", target.x_eval, target.y_eval)):
        if xs.shape[1:] != tuple(target.input_spec.shape):
            raise DataError(f"{probe}: {name} samples have shape {tuple(xs.shape[1:])}, the model's inputs "
                            f"{tuple(target.input_spec.shape)}")
        if len(xs) != len(ys):
            raise DataError(f"{probe}: {len(xs)} {name} samples but {len(ys)} labels")
        if not np.issubdtype(ys.dtype, np.integer):
            raise DataError(f"{probe}: {name} labels must be class indices, got {ys.dtype} values")
        outside = ys[(ys < 0) | (ys >= n_classes)]
        if len(outside):
            raise DataError(f"{probe}: {name} label {int(outside[0])} is not a class of the model "
                            f"(it has {n_classes}: 0 to {n_classes - 1})")
        if len(ys) < 2 * MIN_MEMBERS:
            raise DataError(f"{probe}: needs at least {2 * MIN_MEMBERS} {name} samples (half are scored, "
                            f"half train the attacks), got {len(ys)}")
    train_ids, eval_ids = record_ids(x, target.x_eval)
    records = count_records(train_ids, eval_ids)
    if records.train < 2 * MIN_MEMBERS:
        raise DataError(f"{probe}: the {len(y)} training samples hold {records.train} distinct records (the "
                        f"rest are copies); needs at least {2 * MIN_MEMBERS}")
    if records.held_out < 2 * MIN_MEMBERS:
        shared = (f"{records.shared_rows} of the {records.eval_rows} evaluation samples are also training "
                  "samples (identical features), so ") if records.shared_rows else ""
        raise DataError(f"{probe}: {shared}the evaluation data holds {records.held_out} records the model "
                        f"never trained on; needs at least {2 * MIN_MEMBERS} (is the evaluation data the "
                        "training data?)")
    return train_ids, eval_ids


class _Data:
    """The target's samples as the attacks see them, and its probabilities of their labels."""

    def __init__(self, target: Target, x_train: np.ndarray, y_train: np.ndarray, parts: Split) -> None:
        self.n_train = len(y_train)
        # every sample once: scored members, scored non-members, then the population
        x_eval, y_eval = target.x_eval, target.y_eval
        order = [(x_train, y_train, parts.members), (x_eval, y_eval, parts.non_members),
                 (x_train, y_train, parts.spare_members), (x_eval, y_eval, parts.spare_non_members)]
        self.x = np.concatenate([xs[i] for xs, _, i in order])
        self.y = np.concatenate([ys[i] for _, ys, i in order]).astype(np.int64)
        m, s_m, s_n = len(parts.members), len(parts.spare_members), len(parts.spare_non_members)
        self.scored_members = np.arange(m)
        self.scored_non_members = np.arange(m, 2 * m)
        self.population = np.arange(2 * m, len(self.y))
        self.spare_members = np.arange(2 * m, 2 * m + s_m)
        self.spare_non_members = np.arange(2 * m + s_m, 2 * m + s_m + s_n)
        self.proba = np.asarray(target.model.predict_proba(self.x), dtype=np.float64)
        broken = ~np.isfinite(self.proba).all(axis=1)
        if broken.any():
            raise TargetMismatchError(
                f"the model's probabilities are not finite (NaN or inf) for {int(broken.sum())} of "
                f"{len(self.y)} training and evaluation samples: membership scores need finite answers")
        self.p_true = scores.true_label_probability(self.proba, self.y)
        self.n_classes = target.model.n_classes


@dataclass(slots=True)
class _Models:
    """Each reference model's and the null model's probability of every sample's label, and
    which samples each trained on."""

    p_refs: np.ndarray
    seen_refs: np.ndarray
    p_null: np.ndarray
    proba_null: np.ndarray
    seen_null: np.ndarray
    train_samples: int
    null_train_samples: int

    @property
    def references(self) -> int:
        return int(self.p_refs.shape[1])

    @property
    def p_out(self) -> np.ndarray:
        """The reference models' probabilities, NaN where a model trained on the sample."""
        out: np.ndarray = np.where(self.seen_refs, np.nan, self.p_refs)
        return out

    def tune_a(self) -> float:
        """RMIA's ``a`` from a simulated attack on the first reference model, whose training
        set is known, with every other model (the other references and the null model) as
        its OUT references where they are OUT: no target output is used."""
        others = np.column_stack([self.p_refs[:, 1:], self.p_null])
        seen = np.column_stack([self.seen_refs[:, 1:], self.seen_null])
        tuned = scores.tune_a(self.p_refs[:, 0], np.where(seen, np.nan, others), self.seen_refs[:, 0])
        return scores.DEFAULT_A if tuned is None else tuned


def _train_models(probe: str, retrainer: Retrainer, data: _Data, references: int, seed: int,
                  step: Callable[[str], None]) -> _Models:
    """``references`` OUT models, each on its own random share of the population, and the
    null model, on every spare member (the target's training data less the scored members:
    the target's own distribution, so a held-out set that differs from it shows); none sees
    a scored sample. Seeded from ``seed``."""
    from guard.audit import seeded

    population = data.population
    size = min(data.n_train, int(REFERENCE_SHARE * len(population)))
    rng = np.random.default_rng([seed, 1])
    seeds = [int(v) for v in np.random.SeedSequence([seed, 2]).generate_state(references + 1)]
    trained = []
    for k in range(references + 1):
        what = "null model" if k == references else f"reference model {k + 1} of {references}"
        step(what)
        seen = np.zeros(len(data.y), dtype=bool)
        chosen = data.spare_members if k == references else rng.choice(population, size=size, replace=False)
        seen[chosen] = True
        try:
            with seeded(seeds[k]):  # the user's trainer may use (and reseed) the global generators
                model = retrainer.fit(data.x[seen], data.y[seen], seeds[k])
                proba = np.asarray(model.predict_proba(data.x), dtype=np.float64)
            if not np.isfinite(proba).all():
                raise TrainerError(f"the retrained model's probabilities are not finite (NaN or inf) for "
                                   f"{int((~np.isfinite(proba).all(axis=1)).sum())} samples")
        except TrainerError as exc:
            raise TrainerError(f"{probe}, {what}: {exc}") from None
        trained.append((proba, seen))
    p_true = [scores.true_label_probability(proba, data.y) for proba, _ in trained]
    seen_all = [seen for _, seen in trained]
    return _Models(np.column_stack(p_true[:-1]), np.column_stack(seen_all[:-1]), p_true[-1], trained[-1][0],
                   seen_all[-1], size, len(data.spare_members))


def _score(attack: str, data: _Data, models: _Models | None, offline_a: float | None, seed: int) -> Scored:
    if attack == ART:
        return _score_art(data, models, seed)
    if attack == LOSS:
        return _score_loss(data, models)
    if models is None:  # run() leaves rmia out without a recipe; check() refused an explicit one
        raise ConfigError("rmia needs reference models, and this target has no training recipe")
    return _score_rmia(data, models, offline_a)


def _score_loss(data: _Data, models: _Models | None) -> Scored:
    members, non_members = data.scored_members, data.scored_non_members
    loss = scores.loss_scores(data.p_true)
    out = Scored(loss[members], loss[non_members])
    if models is not None:
        null = scores.loss_scores(models.p_null)
        out.null_members, out.null_non_members = null[members], null[non_members]
    return out


def _score_rmia(data: _Data, models: _Models, offline_a: float | None) -> Scored:
    """The ratio on the target and on the null model, with ``a`` given or chosen by a simulated
    attack (:meth:`_Models.tune_a`)."""
    a = models.tune_a() if offline_a is None else offline_a

    def ratio(p: np.ndarray, rows: np.ndarray) -> np.ndarray:
        return scores.rmia_ratio(p[rows], models.p_out[rows], a)

    members, non_members = data.scored_members, data.scored_non_members
    return Scored(ratio(data.p_true, members), ratio(data.p_true, non_members), ratio(models.p_null, members),
                  ratio(models.p_null, non_members), params={"offline_a": a})


def _score_art(data: _Data, models: _Models | None, seed: int) -> Scored:
    """ART's attack model learns from spare members and non-members (as many of each, at most
    as many as are scored), then scores the scored sets on the target and on the null model."""
    count = min(len(data.spare_members), len(data.spare_non_members), len(data.scored_members))
    train_m, train_n = data.spare_members[:count], data.spare_non_members[:count]
    n_features = int(np.prod(data.x.shape[1:]))
    scored = np.concatenate([data.scored_members, data.scored_non_members])
    m = len(data.scored_members)
    with scores.art_session(seed):
        attack = scores.art_attack(data.n_classes, n_features)
        scores.art_fit(attack, data.proba[train_m], data.y[train_m], data.proba[train_n], data.y[train_n])
        on_target = scores.art_scores(attack, data.proba[scored], data.y[scored])
        out = Scored(on_target[:m], on_target[m:], params={"attack_train_samples": 2 * count})
        if models is not None:
            on_null = scores.art_scores(attack, models.proba_null[scored], data.y[scored])
            out.null_members, out.null_non_members = on_null[:m], on_null[m:]
    return out
