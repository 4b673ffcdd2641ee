"""Hand-made privacy evidence for the report tests: membership inference, model extraction and a
PII scan, in the shapes of the issue 12 contract, with the awkward cases in them.

- three membership attacks: RMIA with every metric and a 200-point ROC curve dense at low
  false-positive rates (with intervals, and a point of true-positive rate 0); the loss-threshold
  attack without ``tpr_at_0_1pct_fpr`` and flagged ``too_few_non_members``; ART's black-box
  attack flagged ``null_control_failed``;
- CopycatCNN at five label-only budgets, Knockoff Nets against an endpoint that refused some
  queries;
- a PII scan in the shape Guard's scanner writes, whose column names are
  ``<script>alert(1)</script>`` and a right-to-left override, with masked examples, a
  special-category column, a quasi-identifier and the re-identification figures.
"""

from __future__ import annotations

from typing import Any

from guard.evidence import AuditResult, Curve, Evidence, Flag
from guard.stats import Metric

EVIL_COLUMN = "<script>alert(1)</script>"
BIDI_COLUMN = "name\u202egpj.exe"
TOO_FEW_DETAIL = "only 500 non-members: the lowest false-positive rate measurable is 0.2%"
NULL_DETAIL = "null control AUC 0.62 [0.58, 0.66] excludes 0.5"
COPYCAT_AGREE = {50: 310, 100: 440, 250: 460, 500: 480, 1000: 495}
"""Agreements out of 500 held-out inputs: 0.62 / 0.88 / 0.92 / 0.96 / 0.99, as in the issue."""


def roc_points(power: float, n: int, with_ci: bool) -> tuple[tuple[float, Metric], ...]:
    """A ROC curve TPR = FPR ** power, 200 points log-spaced from 1e-3 to 1, plus FPR 0 with TPR 0."""
    fprs = [0.0] + [10 ** (-3 + 3 * i / 199) for i in range(200)]
    points = []
    for fpr in fprs:
        tpr = fpr ** power
        found = round(tpr * n)
        metric = Metric.proportion(found, n) if with_ci else Metric(found / n, n=n)
        points.append((fpr, metric))
    return tuple(points)


def membership(attack: str, **overrides: Any) -> Evidence:
    params: dict[str, Any] = {"attack": attack, "members": 1000, "non_members": 1000,
                              "reference_models": 2 if attack == "rmia" else 0,
                              "recipe": "sklearn clone and fit" if attack == "rmia" else None,
                              "lowest_fpr": 0.001}
    metrics = {"auc": Metric(0.71, n=2000, ci95=(0.69, 0.73)),
               "advantage": Metric.proportion(310, 1000),
               "tpr_at_1pct_fpr": Metric.proportion(120, 1000),
               "tpr_at_0_1pct_fpr": Metric.proportion(31, 1000),
               "attack_accuracy": Metric.proportion(1310, 2000),
               "null_auc": Metric(0.503, n=1000, ci95=(0.47, 0.54))}
    return Evidence(probe="privacy.membership_inference", params={**params, **overrides.get("params", {})},
                    metrics={**metrics, **overrides.get("metrics", {})}, flags=overrides.get("flags", []),
                    curves=[Curve("roc", "false-positive rate", "true-positive rate",
                                  overrides.get("roc", roc_points(0.45, 1000, True)))],
                    seed=0)


def membership_runs() -> list[Evidence]:
    rmia = membership("rmia")
    loss = membership("loss_threshold", params={"non_members": 500},
                      metrics={"auc": Metric(0.6, n=1500, ci95=(0.57, 0.63)),
                               "advantage": Metric.proportion(150, 1000),
                               "tpr_at_1pct_fpr": Metric.proportion(30, 1000)},
                      flags=[Flag("too_few_non_members", TOO_FEW_DETAIL)],
                      roc=roc_points(0.7, 1000, False))
    del loss.metrics["tpr_at_0_1pct_fpr"]
    art = membership("art_blackbox", metrics={"auc": Metric(0.58, n=2000, ci95=(0.55, 0.6)),
                                              "advantage": Metric.proportion(90, 1000),
                                              "tpr_at_1pct_fpr": Metric.proportion(15, 1000),
                                              "tpr_at_0_1pct_fpr": Metric.proportion(1, 1000),
                                              "null_auc": Metric(0.62, n=1000, ci95=(0.58, 0.66))},
                     flags=[Flag("null_control_failed", NULL_DETAIL)], roc=roc_points(0.85, 1000, False))
    return [rmia, loss, art]


def extraction(probe: str, budget: int, agree: int, correct: int, **params: Any) -> Evidence:
    """One budget, as the extraction probes write it: the epochs grow with the budget."""
    metrics = {"fidelity": Metric.proportion(agree, 500), "accuracy": Metric.proportion(correct, 500),
               "target_accuracy": Metric.proportion(485, 500), "queries": Metric(float(budget))}
    flags = []
    if params.get("source") == "endpoint":
        metrics["refused"] = Metric(float(budget // 10))
        metrics["queries"] = Metric(float(budget - budget // 10))
        flags.append(Flag("query_refused", "the endpoint stopped answering (HTTP 429): this copy was "
                                           f"trained on {budget - budget // 10} of its {budget} queries"))
    shared = {"pool": 1000, "pool_source": "eval", "attack": probe.removeprefix("extraction.")}
    return Evidence(probe=probe, params={"budget": budget, **shared, "epochs": 5 + budget // 100, **params},
                    metrics=metrics, flags=flags, seed=0)


def extraction_runs() -> list[Evidence]:
    copycat = [extraction("extraction.copycat", b, a, a - 10, surrogate="small-cnn", output="labels",
                          source="model") for b, a in COPYCAT_AGREE.items()]
    knockoff = [extraction("extraction.knockoff", b, a, a - 20, surrogate="small-cnn", output="probabilities",
                           source="endpoint") for b, a in ((100, 300), (1000, 420))]
    return copycat + knockoff


def column(name: str, pii: int = 0, kinds: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    """A column summary as Guard's scanner writes it (``ColumnScan.to_dict``)."""
    return {"name": name, "cells": 1200, "pii_cells": pii, "special_category_cells": 0, "kinds": kinds or {},
            "special_categories": {}, "quasi_identifier": None, "masked_cells": 0, **extra}


def kind(cells: int, *examples: str, **extra: Any) -> dict[str, Any]:
    return {"count": cells, "fraction": round(cells / 1200, 6), "examples": list(examples), **extra}


def column_summaries() -> list[dict[str, Any]]:
    return [
        column("email", 1180, {"email": kind(1180, "j***@e******.com", "a****@m***.org", "k**@e******.net",
                                               "z@x.io")}),
        column(EVIL_COLUMN, 39, {"phone": kind(37, "+44 **** ***789", "<b>bold</b>"),
                                 "national_id": kind(2, "NL*******12", schemes={"nl.bsn": 2})}),
        column(BIDI_COLUMN, 12, {"person_name": kind(12, "J*** D**\u202e")}, masked_cells=3),
        column("diagnosis", special_category_cells=1200,
               special_categories={"health": kind(1200, "[health]")}),
        column("age", quasi_identifier="age"),
        column("score"),
    ]


def pii_scan(path: str = "data/train.csv", **params: Any) -> Evidence:
    return Evidence(
        probe="data.pii_scan",
        params={"path": path, "columns": column_summaries(),
                "quasi_identifiers": ["age", "postcode", "gender"], "sensitive": "diagnosis",
                "kinds": {"email": 1180, "health": 1200, "national_id": 2, "person_name": 12, "phone": 37},
                **params},
        metrics={"pii_findings": Metric(2429.0), "special_category_findings": Metric(1200.0),
                 "rows_scanned": Metric(1200.0), "columns_with_pii": Metric(4.0),
                 "k_anonymity": Metric(1.0), "unique_share": Metric.proportion(150, 1200),
                 "l_diversity": Metric(1.0)},
        seed=None,
    )


def privacy_audit(name: str = "privacy-target") -> AuditResult:
    """One target holding all three kinds of privacy evidence and nothing else."""
    target: dict[str, Any] = {"name": name, "framework": "sklearn", "n_classes": 2,
                              "model": {"class": "RandomForestClassifier", "format": "skops"},
                              "input": {"shape": [30], "dtype": "float64", "clip": None},
                              "n_eval": 500, "n_train": 1000, "artifact": None, "deployment": {}}
    evidence = [*membership_runs(), *extraction_runs(), pii_scan()]
    return AuditResult(target=target, evidence=evidence, environment={"seed": 0})
