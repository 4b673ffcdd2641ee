"""Audits for the report tests: every kind of evidence and every finding status, built by hand.

The findings are written here, in the shape the policy engine produces, rather than computed
by it: the stored expected pages should change when the reports change, not when a pack's
wording does. ``tests/test_report_formats.py`` also runs the real engine on these audits.
"""

from __future__ import annotations

from typing import Any

from guard.evidence import AuditResult, Curve, Evidence, Finding, Flag
from guard.stats import Metric

EVIL = "<script>alert(1)</script>"
EVIL_CLASS = '"><img src=x onerror=alert(2)>'
FRAMEWORKS = ("gdpr", "ccpa", "eu_ai_act", "owasp_ml", "atlas", "nist_ai_rmf")

# (robust correct out of 500) for each attack at eps 0.05, 0.1, 0.2; clean: 490 of 500.
ROBUST_COUNTS = {"evasion.fgsm": (300, 230, 240), "evasion.pgd": (280, 205, 60)}


def evasion_evidence(probe: str, eps: float, robust: int, clean: int = 490) -> Evidence:
    flags = []
    if probe == "evasion.fgsm" and eps == 0.2:
        flags.append(Flag("non_monotone", "robust accuracy rose from eps 0.1 to eps 0.2 <b>"))
    return Evidence(
        probe=probe,
        params={"eps": eps, "norm": "inf", "steps": 1 if "fgsm" in probe else 40,
                "step_size": eps / 16, "samples": 500},
        metrics={
            "clean_accuracy": Metric.proportion(clean, 500),
            "robust_accuracy": Metric.proportion(robust, 500),
            "attack_success_rate": Metric.proportion(clean - robust, clean),
        },
        flags=flags,
        seed=0,
        duration_s=1.25,
    )


def membership_evidence() -> Evidence:
    """Membership inference with a ROC curve (x: false-positive rate, value: true-positive rate)."""
    roc = tuple((fpr, Metric(tpr, n=1000)) for fpr, tpr in
                ((0.0, 0.0), (0.05, 0.11), (0.2, 0.31), (0.5, 0.58), (1.0, 1.0)))
    return Evidence(
        probe="privacy.membership_inference",
        params={"attack": "loss_threshold", "samples": 1000},
        metrics={"auc": Metric(0.5321, n=1000, ci95=(0.5, 0.56)),
                 "advantage": Metric.proportion(61, 1000)},
        curves=[Curve("roc", "false-positive rate", "true-positive rate", roc)],
        seed=0,
    )


def extraction_evidence(budget: int, agree: int) -> Evidence:
    return Evidence(
        probe="extraction.copycat",
        params={"budget": budget, "surrogate": "small-cnn"},
        metrics={"fidelity": Metric.proportion(agree, 500), "queries": Metric(float(budget))},
        seed=0,
    )


def detection_evidence() -> Evidence:
    return Evidence(
        probe="detection.feature_squeezing",
        params={"attack": "pgd", "eps": "0.1 (adaptive)"},
        metrics={"detection_rate": Metric.proportion(412, 500),
                 "false_positive_rate": Metric.proportion(19, 500),
                 "threshold": Metric(1.375)},
        seed=0,
    )


def references(**cited: list[str]) -> dict[str, list[str]]:
    """Every framework key, as the engine writes them (empty where the control cites none)."""
    return {key: list(cited.get(key, [])) for key in FRAMEWORKS}


def findings() -> list[Finding]:
    """One finding of each status, an expired waiver among them."""
    waiver = {"control": "GRD-PRV-01", "target": "digits-*", "reason": "DP training lands in 2.3 <i>",
              "approver": "dpo@example.com", "expires": "2031-12-31", "expired": False,
              "source": "waivers.yaml:3"}
    expired = {**waiver, "control": "GRD-SUP-01", "expires": "2024-01-31", "expired": True,
               "reason": "legacy model", "source": "waivers.yaml:9"}
    return [
        Finding("GRD-EVA-01", "fail", "high", "Robust accuracy under evasion attack meets the threshold",
                detail="Required: robust accuracy at least 0.5. Not met by 2 of 6 measurements: "
                       "evasion.pgd (eps=0.1, norm=inf): robust_accuracy 0.41 [0.368, 0.454] n=500.",
                evidence=("evasion.fgsm", "evasion.pgd"),
                references=references(gdpr=["32(1)(b)"], eu_ai_act=["15(4)", "15(5)"], owasp_ml=["ML01"],
                                      atlas=["AML.T0015", "AML.T0043"], nist_ai_rmf=["MEASURE 2.7"]),
                remediation="Train adversarially (PGD adversarial training, TRADES) at the declared budget."),
        Finding("GRD-EVA-02", "pass", "medium", "Evasion results pass their validity checks",
                detail="Met: no validity flag (all 6 measurements).",
                evidence=("evasion.fgsm", "evasion.pgd"),
                references=references(gdpr=["32(1)(d)"], eu_ai_act=["9(8)"], owasp_ml=["ML01"])),
        Finding("GRD-PRV-01", "waived", "medium", "Membership inference advantage is small",
                detail="Not met: advantage 0.061 above 0.05. Waived until 2031-12-31 by dpo@example.com.",
                evidence=("privacy.membership_inference",),
                references=references(gdpr=["5(1)(f)", "25(1)"], ccpa=["1798.150(a)(1)"], owasp_ml=["ML04"],
                                      atlas=["AML.T0024.000"], nist_ai_rmf=["MEASURE 2.10"]),
                remediation="Train with differential privacy or regularise.", waiver=waiver),
        Finding("GRD-SUP-01", "fail", "critical", "Model artifact has no code-execution risk",
                detail="Waiver expired on 2024-01-31 (approved by dpo@example.com: legacy model).",
                evidence=("supply_chain.scan",),
                references=references(gdpr=["32(1)(b)"], ccpa=["1798.81.5(b)"], owasp_ml=["ML06"],
                                      atlas=["AML.T0011.000"]),
                remediation="Save the model as safetensors.", waiver=expired, baseline="new"),
        Finding("GRD-EXT-01", "error", "high", "Extraction fidelity stays low at the query budget",
                detail="Could not evaluate 1 of 1 measurements: metric fidelity is null.",
                evidence=("extraction.copycat",),
                references=references(ccpa=["1798.81.5(b)"], owasp_ml=["ML05"], atlas=["AML.T0024.002"]),
                remediation="Rate-limit queries."),
        Finding("GRD-DAT-01", "not_assessed", "low", "Training data holds no special-category data",
                detail="Not assessed: no evidence from data.pii_scan. Run a probe that produces it.",
                references=references(gdpr=["9(1)"], eu_ai_act=["10(5)"])),
    ]


def environment() -> dict[str, object]:
    return {"guard": "0.1.0", "python": "3.11.7", "torch": "2.5.1", "art": "1.20.1",
            "sklearn": "1.5.2", "numpy": "2.1.3", "seed": 0, "platform": "Linux-x86_64",
            "started_at": "2025-01-02T03:04:05+00:00", "duration_s": 12.5}


def audit(name: str, framework: str, model_class: str, with_findings: bool) -> AuditResult:
    evidence = [evasion_evidence(probe, eps, robust)
                for probe, counts in ROBUST_COUNTS.items()
                for eps, robust in zip((0.05, 0.1, 0.2), counts, strict=True)]
    target: dict[str, Any] = {
        "name": name, "framework": framework, "n_classes": 10,
        "model": {"class": model_class, "format": "safetensors"},
        "input": {"shape": [1, 8, 8], "dtype": "float32", "clip": [0.0, 1.0]},
        "n_eval": 600, "n_train": None, "artifact": None, "deployment": {},
    }
    if with_findings:
        evidence += [membership_evidence(), extraction_evidence(100, 210), extraction_evidence(1000, 380),
                     extraction_evidence(10000, 470), detection_evidence()]
        target["artifact"] = "models/digits cnn.safetensors"
        target["digests"] = {"model": "sha256:" + "ab" * 32, "data": "sha256:" + "cd" * 32}
    else:
        evidence.append(Evidence(probe="inference.membership", params={"attack": "loss_threshold"},
                                 metrics={"attack_auc": Metric(0.5321, n=1000)}))
    return AuditResult(target=target, evidence=evidence, environment=environment(),
                       findings=findings() if with_findings else [])


def two_audits() -> list[AuditResult]:
    return [audit("digits-cnn", "torch", "DigitsCNN", with_findings=True),
            audit(EVIL, "sklearn", EVIL_CLASS, with_findings=False)]
