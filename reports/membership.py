"""Membership inference in the reports: the numbers, what they mean for the people in the
training data, the null control, and the ROC curve on log-log axes.

Evidence ``privacy.membership_inference``, one entry per attack: ``params.attack`` (``rmia``,
``loss_threshold``, ``art_blackbox``), ``members``, ``non_members``, ``reference_models``,
``recipe``, ``lowest_fpr``; metrics ``auc``, ``advantage``, ``tpr_at_1pct_fpr``,
``tpr_at_0_1pct_fpr``, ``attack_accuracy`` and ``null_auc`` (the same attack against two
disjoint sets of non-members); a ``roc`` curve (``x`` false-positive rate, ``value``
true-positive rate); flags such as ``null_control_failed`` and ``too_few_non_members``.

The ROC curve is drawn log-log, as Carlini et al. argue in "Membership Inference Attacks From
First Principles" (IEEE S&P 2022): an attack that identifies a few people with confidence
shows only at false-positive rates of 1% and below, which a linear plot crushes into its
corner, and an average such as the AUC hides. Reports never compute: a number the evidence
does not hold is shown as not measured, with the flag that says why, never estimated here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from markupsafe import Markup

from . import svg
from .evasion import ChartView, FlagView, Measured
from .text import Estimate, count, estimate, metric_value, params_text, pct, text

MEMBERSHIP_PROBE = "privacy.membership_inference"
NULL_FAILED = "null_control_failed"
TOO_FEW = "too_few_non_members"
NO_RECIPE = "no_recipe"
ATTACK_NAMES = {"rmia": "RMIA", "lira": "LiRA", "loss_threshold": "loss threshold",
                "art_blackbox": "ART black-box"}
FLAG_TITLES = {
    NULL_FAILED: "The null control failed: the attack found members among people who were not in "
                 "the training data, so its numbers may not measure the model",
    TOO_FEW: "Too few non-members to measure the lowest false-positive rates",
    NO_RECIPE: "No training recipe: RMIA and the null control could not run",
}
COLUMNS = (("auc", "AUC"), ("advantage", "Advantage"), ("tpr_at_1pct_fpr", "TPR at 1% FPR"),
           ("tpr_at_0_1pct_fpr", "TPR at 0.1% FPR"), ("attack_accuracy", "Attack accuracy"),
           ("null_auc", "Null control AUC"))
RATES = frozenset({"advantage", "tpr_at_1pct_fpr", "tpr_at_0_1pct_fpr", "attack_accuracy"})
LOW_FPR = frozenset({"tpr_at_1pct_fpr", "tpr_at_0_1pct_fpr"})
SHOWN_PARAMS = ("attack", "members", "non_members", "reference_models", "recipe", "lowest_fpr")
FLOOR_EXP = -3
"""The ROC axes start at 0.1% (or lower, at 1 / non-members, when the evidence measured lower)."""
LOWEST_EXP = -6
CITATION = "Carlini et al., \u201cMembership Inference Attacks From First Principles\u201d, IEEE S&P 2022"
MEANING = (
    "What this means for the people in the training data: someone who holds a person's record and "
    "can query the model can test whether that record was used to train it, and being in a "
    "training set can itself be personal data (a model trained on one clinic's patients tells "
    "who was a patient there). Averages such as the AUC hide the people most at risk; the "
    "true-positive rate at a low false-positive rate counts those an attacker can pick out with "
    f"confidence ({CITATION}). That is the disclosure GDPR Art. 5(1)(f) and 32 ask to prevent."
)


@dataclass(frozen=True, slots=True)
class Shown:
    """A measurement as a table cell: value, interval and n, or ``not measured`` and why."""

    value: str
    interval: str = ""
    n: str = ""
    missing: str = ""


@dataclass(frozen=True, slots=True)
class AttackRow:
    attack: str
    samples: str
    settings: str
    cells: tuple[Shown, ...]
    more: tuple[tuple[str, Estimate], ...]
    flags: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class MembershipView:
    """Everything the membership part of the page shows, worded and formatted."""

    columns: tuple[str, ...]
    rows: tuple[AttackRow, ...]
    reading: tuple[str, ...]
    null_control: str
    warnings: tuple[FlagView, ...]
    charts: tuple[ChartView, ...]


def attack_name(m: Measured) -> str:
    attack = m.params.get("attack")
    if attack is None:
        return "unnamed attack"
    return ATTACK_NAMES.get(text(attack), text(attack))


def membership_view(measured: Sequence[Measured]) -> MembershipView | None:
    """The view of every membership inference entry, or ``None`` when the audit ran none."""
    runs = [m for m in measured if m.probe == MEMBERSHIP_PROBE]
    if not runs:
        return None
    return MembershipView(
        columns=tuple(title for _, title in COLUMNS),
        rows=tuple(_row(m) for m in runs),
        reading=_reading(runs),
        null_control=_null_control(runs),
        warnings=tuple(FlagView(code, FLAG_TITLES.get(code, code.replace("_", " ")), attack_name(m), detail)
                       for m in runs for code, detail in m.flags),
        charts=tuple(roc_chart(runs)),
    )


def missing_reason(m: Measured, name: str) -> str:
    """Why ``name`` has no number: the flag that says so, in the probe's words where it gave them."""
    flags = dict(m.flags)
    if name in LOW_FPR and TOO_FEW in flags:
        return flags[TOO_FEW] or FLAG_TITLES[TOO_FEW]
    if name == "null_auc":
        return flags.get(NO_RECIPE) or "no null control was recorded"
    if name in m.metrics:
        return "the value was not a finite number"
    return "not in this evidence"


def shown(m: Measured, name: str) -> Shown:
    metric = m.metrics.get(name)
    if metric_value(m.metrics, name) is None or not isinstance(metric, Mapping):
        n = metric.get("n") if isinstance(metric, Mapping) else None
        return Shown("not measured", "", "" if n is None else text(n), missing_reason(m, name))
    est = estimate("tpr" if name in RATES else name, metric)
    return Shown(est.value, est.interval, est.n)


def _samples(params: Mapping[str, Any]) -> str:
    parts = [f"{count(params[key])} {word}" for key, word in (("members", "members"),
                                                             ("non_members", "non-members"))
             if params.get(key) is not None]
    return ", ".join(parts) or "not recorded"


def _references(params: Mapping[str, Any]) -> bool:
    """Whether the attack used reference models (the probe writes 0 for those that use none)."""
    refs = params.get("reference_models")
    return refs is not None and refs != 0 and refs is not False


def _settings(params: Mapping[str, Any]) -> str:
    parts = []
    if _references(params):
        parts.append(f"{count(params['reference_models'])} reference models")
    if params.get("recipe") is not None:
        parts.append(f"recipe {text(params['recipe'])}")
    lowest = params.get("lowest_fpr")
    if isinstance(lowest, (int, float)) and not isinstance(lowest, bool) and math.isfinite(lowest):
        parts.append(f"lowest false-positive rate reported {pct(float(lowest), 1)}")
    elif lowest is not None:
        parts.append(f"lowest false-positive rate reported {text(lowest)}")
    rest = params_text({k: v for k, v in params.items() if k not in SHOWN_PARAMS})
    return "; ".join([*parts, rest] if rest else parts)


def _row(m: Measured) -> AttackRow:
    known = {name for name, _ in COLUMNS}
    return AttackRow(
        attack=attack_name(m),
        samples=_samples(m.params),
        settings=_settings(m.params),
        cells=tuple(shown(m, name) for name, _ in COLUMNS),
        more=tuple((k.replace("_", " "), estimate(k, v)) for k, v in m.metrics.items()
                   if k not in known and isinstance(v, Mapping)),
        flags=tuple(code for code, _ in m.flags),
    )


def _with_ci(cell: Shown) -> str:
    facts = [f"95% CI {cell.interval}"] if cell.interval else []
    facts += [f"n={cell.n}"] if cell.n else []
    return f"{cell.value} ({', '.join(facts)})" if facts else cell.value


def _strongest(runs: Sequence[Measured]) -> Measured:
    """The attack that picks out most members at 1% false positives (then by advantage, AUC):
    the one whose result a reader should take as the model's leak."""
    def key(m: Measured) -> tuple[float, ...]:
        return tuple(-math.inf if (v := metric_value(m.metrics, name)) is None else v
                     for name in ("tpr_at_1pct_fpr", "advantage", "auc"))

    return max(runs, key=key)


def _reading(runs: Sequence[Measured]) -> tuple[str, ...]:
    """Plain sentences for a data-protection officer, from the strongest attack's numbers (the
    strongest whose null control held, when one did: a failed control's numbers are not a leak)."""
    valid = [m for m in runs if NULL_FAILED not in dict(m.flags)]
    best = _strongest(valid or runs)
    which = attack_name(best)
    if _references(best.params):
        which += f" ({count(best.params['reference_models'])} reference models)"
    if len(runs) == 1:
        lead = f"One attack was run: {which}."
    elif len(valid) == len(runs) or not valid:
        lead = f"The strongest of {len(runs)} attacks is {which}."
    elif len(valid) == 1:
        lead = f"The only attack whose null control held is {which}."
    else:
        lead = f"The strongest of the {len(valid)} attacks whose null control held is {which}."
    sentences = [lead + _low_fpr_words(shown(best, "tpr_at_1pct_fpr"), shown(best, "tpr_at_0_1pct_fpr"))]
    advantage = shown(best, "advantage")
    if advantage.missing:
        sentences.append(f"Its membership advantage was not measured: {advantage.missing}.")
    else:
        points = advantage.value.removesuffix("%")
        sentences.append(
            f"Its membership advantage is {_with_ci(advantage)}: at its best threshold, the share of "
            f"members it flags exceeds the share of non-members it flags by {points} percentage points "
            "(0% means it flags both alike and so learns nothing from the model about who was in its "
            "training data)."
        )
    if NULL_FAILED in dict(best.flags):
        sentences.append("Its null control failed, so these numbers may not measure the model: "
                         "see the warning above.")
    sentences.append(MEANING)
    return tuple(sentences)


def _low_fpr_words(tpr1: Shown, tpr01: Shown) -> str:
    """What the attack achieves when it may rarely be wrong: at 1 and at 0.1% false positives."""
    if tpr1.missing and tpr01.missing == tpr1.missing:
        return (" Its true-positive rates at 1% and at 0.1% false positives were not measured: "
                f"{tpr1.missing}.")
    if tpr1.missing:
        words = f" Its true-positive rate at 1% false positives was not measured: {tpr1.missing}."
    else:
        words = (f" Allowed to wrongly flag 1 in 100 people who were not in the training data, it "
                 f"correctly picked out {_with_ci(tpr1)} of those who were; guessing would pick out 1%.")
    if tpr01.missing:
        return words + f" At 1 in 1,000 false alarms it was not measured: {tpr01.missing}."
    return words + (f" Allowed only 1 in 1,000 false alarms, it picked out {_with_ci(tpr01)} "
                    "(guessing: 0.1%).")


def _null_control(runs: Sequence[Measured]) -> str:
    intro = ("Null control: each attack is also run against two disjoint groups of people none of "
             "whom were in the training data, where there is nothing to find; its AUC there must be "
             "near 0.5.")
    failed = [m for m in runs if NULL_FAILED in dict(m.flags)]
    rest = [m for m in runs if NULL_FAILED not in dict(m.flags)]
    absent = [m for m in rest if metric_value(m.metrics, "null_auc") is None]
    held = [m for m in rest if metric_value(m.metrics, "null_auc") is not None]
    parts = [intro]
    if failed:
        names = ", ".join(attack_name(m) for m in failed)
        whose = "its" if len(failed) == 1 else "their"
        parts.append(f"It failed for {names}: {whose} numbers are not valid evidence of a leak, nor of "
                     "its absence, until the cause (too few samples, a biased split) is found.")
    if held:
        values = "; ".join(f"{attack_name(m)} {_with_ci(shown(m, 'null_auc'))}" for m in held)
        parts.append(f"It held, with no validity flag, for {values}.")
    if absent:
        whose = "its" if len(absent) == 1 else "their"
        parts.append(f"No null control was recorded for {', '.join(attack_name(m) for m in absent)}: "
                     f"read {whose} numbers with care.")
    return " ".join(parts)


def _floor_exp(runs: Sequence[Measured], xs: Sequence[float]) -> int:
    """The decade the axes start at: 0.1%, or lower where a run measured lower false-positive
    rates (1 / non-members, ``lowest_fpr``, the smallest positive rate on a curve)."""
    lowest = [10.0 ** FLOOR_EXP, *(x for x in xs if x > 0)]
    for m in runs:
        non_members, fpr = m.params.get("non_members"), m.params.get("lowest_fpr")
        if isinstance(non_members, int) and not isinstance(non_members, bool) and non_members > 0:
            lowest.append(1.0 / non_members)
        if isinstance(fpr, (int, float)) and not isinstance(fpr, bool) and math.isfinite(fpr) and fpr > 0:
            lowest.append(float(fpr))
    return max(LOWEST_EXP, min(FLOOR_EXP, math.floor(math.log10(min(lowest)))))


def _roc_points(m: Measured, label: str) -> tuple[svg.Point, ...]:
    curve = next((c for c in m.raw.get("curves") or ()
                  if isinstance(c, Mapping) and c.get("name") == "roc"), None)
    points = []
    for p in (curve or {}).get("points") or ():
        x, y = (p.get("x"), p.get("value")) if isinstance(p, Mapping) else (None, None)
        if not (isinstance(x, (int, float)) and isinstance(y, (int, float))):
            continue
        ci = p.get("ci95")
        lo, hi = (float(ci[0]), float(ci[1])) if isinstance(ci, (list, tuple)) and len(ci) == 2 \
            and all(isinstance(v, (int, float)) for v in ci) else (None, None)
        note = f"{label}: at {pct(float(x), 1)} false positives, {pct(float(y), 1)} of members found"
        if lo is not None and hi is not None:
            note += f" (95% CI {pct(lo, 1).removesuffix('%')}–{pct(hi, 1)})"
        points.append(svg.Point(float(x), float(y), lo, hi, note))
    return tuple(points)


def roc_chart(runs: Sequence[Measured]) -> list[ChartView]:
    """Every attack's ROC curve on log-log axes against the chance diagonal."""
    series, aucs = [], []
    for m in runs:
        label = attack_name(m)
        points = _roc_points(m, label)
        if not points:
            continue
        series.append(svg.Series(label, points))
        auc = m.metrics.get("auc")
        if isinstance(auc, Mapping) and metric_value(m.metrics, "auc") is not None:
            est = estimate("auc", auc)
            interval = f" [95% CI {est.interval}]" if est.interval else ""
            aucs.append(f"{label}: AUC {est.value}{interval}")
    if not series:
        return []
    floor = _floor_exp(runs, [p.x for s in series for p in s.points])
    axis = svg.LogAxis(floor, 0, percent=True)
    chart = svg.log_chart(series, title="Membership inference ROC curve (log-log)",
                          x_label="false-positive rate (people wrongly flagged as members, log scale)",
                          y_label="true-positive rate (members found, log scale)", x_axis=axis,
                          y_axis=axis, diagonal="chance (an attacker who guesses)")
    caption = ("How well each attack tells the people in the training data from others, on log-log "
               "axes as Carlini et al. (2022) recommend: each point trades members found against "
               "people wrongly flagged. On the dotted diagonal the attack is guessing; the further a "
               "curve lies above it at the left, where an attacker is rarely wrong, the more people "
               "it identifies with confidence. A rate of 0 has no place on a log scale: such points "
               "are drawn hollow on the axis floor. ")
    non_members = sorted({count(m.params["non_members"]) for m in runs if m.params.get("non_members")})
    if len(non_members) == 1:
        caption += (f"With {non_members[0]} non-members, the lowest false-positive rate measurable is "
                    f"1 in {non_members[0]}. ")
    caption += "; ".join(aucs) + ("." if aucs else "")
    return [ChartView(Markup(chart), caption.strip())]  # noqa: S704 (svg.py escapes all text)
