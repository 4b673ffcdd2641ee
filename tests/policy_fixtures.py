"""Synthetic evidence for policy tests: for each evidence name, one entry every control
reading it passes on, and one every control reading it fails on (report.json shape)."""

from __future__ import annotations

from typing import Any


def metric(
    value: float | None, n: int | None = None, ci: tuple[float, float] | None = None
) -> dict[str, Any]:
    out: dict[str, Any] = {"value": value}
    if n is not None:
        out["n"] = n
    if ci is not None:
        out["ci95"] = [ci[0], ci[1]]
    return out


def evasion(probe: str, *, robust: dict[str, Any], eps: float = 0.1, flags: tuple[str, ...] = (),
            zero_grad: dict[str, Any] | None = None) -> dict[str, Any]:
    metrics = {
        "clean_accuracy": metric(0.98, 500, (0.964, 0.989)),
        "robust_accuracy": robust,
        "attack_success_rate": metric(0.2, 490, (0.166, 0.238)),
    }
    if zero_grad is not None:
        metrics["zero_gradient_share"] = zero_grad
    return {
        "probe": probe,
        "params": {"eps": eps, "norm": "inf", "steps": 40, "samples": 500},
        "metrics": metrics,
        "flags": [{"code": code, "detail": f"{code} detail"} for code in flags],
    }


def simple(probe: str, params: dict[str, Any], **metrics: dict[str, Any]) -> dict[str, Any]:
    return {"probe": probe, "params": params, "metrics": metrics, "flags": []}


_ROBUST = metric(0.8, 500, (0.763, 0.833))
_WEAK = metric(0.1, 50, (0.043, 0.214))
_NO_ZERO_GRAD = metric(0.0, 490, (0.0, 0.0078))
_MASKED = metric(0.5, 50, (0.366, 0.634))


def _evasion_pair(probe: str, whitebox: bool = True) -> tuple[dict[str, Any], dict[str, Any]]:
    return (
        evasion(probe, robust=_ROBUST, zero_grad=_NO_ZERO_GRAD if whitebox else None),
        evasion(probe, robust=_WEAK, flags=("non_monotone", "gradient_masking"),
                zero_grad=_MASKED if whitebox else None),
    )


def _extraction(probe: str) -> tuple[dict[str, Any], dict[str, Any]]:
    params = {"budget": 1000, "surrogate": "mlp"}
    return (
        simple(probe, params, fidelity=metric(0.6, 1000, (0.569, 0.630)), queries=metric(1000.0)),
        simple(probe, params, fidelity=metric(0.97, 1000, (0.957, 0.979)), queries=metric(1000.0)),
    )


FIXTURES: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "evasion.fgsm": _evasion_pair("evasion.fgsm"),
    "evasion.pgd": _evasion_pair("evasion.pgd"),
    "evasion.apgd": _evasion_pair("evasion.apgd"),
    "evasion.hopskipjump": _evasion_pair("evasion.hopskipjump", whitebox=False),
    "supply_chain.scan": (
        simple("supply_chain.scan", {"path": "model.pt"}, critical=metric(0.0), high=metric(0.0),
               medium=metric(2.0), low=metric(1.0), files=metric(3.0)),
        simple("supply_chain.scan", {"path": "model.pt"}, critical=metric(1.0), high=metric(2.0),
               medium=metric(0.0), low=metric(0.0), files=metric(3.0)),
    ),
    "supply_chain.encryption": (
        simple("supply_chain.encryption", {"file": "model.enc", "key_id": "k1"},
               encrypted_at_rest=metric(1.0), authenticated=metric(1.0)),
        simple("supply_chain.encryption", {"file": "model.pt"},
               encrypted_at_rest=metric(0.0), authenticated=metric(0.0)),
    ),
    "supply_chain.signature": (
        simple("supply_chain.signature", {"manifest": "model.sig"}, verified=metric(1.0),
               signature_valid=metric(1.0), files_checked=metric(2.0), files_failed=metric(0.0)),
        simple("supply_chain.signature", {"manifest": "model.sig"}, verified=metric(0.0),
               signature_valid=metric(1.0), files_checked=metric(2.0), files_failed=metric(1.0)),
    ),
    "privacy.membership_inference": (
        simple("privacy.membership_inference", {"attack": "loss_threshold"},
               auc=metric(0.52, 1000), advantage=metric(0.02, 1000, (0.0, 0.05))),
        simple("privacy.membership_inference", {"attack": "loss_threshold"},
               auc=metric(0.8, 1000), advantage=metric(0.3, 1000, (0.25, 0.35))),
    ),
    "extraction.copycat": _extraction("extraction.copycat"),
    "extraction.knockoff": _extraction("extraction.knockoff"),
    "poisoning.model_scan": (
        simple("poisoning.model_scan", {"method": "neural_cleanse"}, backdoor_detected=metric(0.0),
               anomaly_index=metric(1.2), trigger_success=metric(0.4, 300, (0.346, 0.456))),
        simple("poisoning.model_scan", {"method": "neural_cleanse", "suspected_target": 0},
               backdoor_detected=metric(1.0), anomaly_index=metric(4.1),
               trigger_success=metric(0.99, 300, (0.971, 0.997))),
    ),
    "poisoning.detection": (
        simple("poisoning.detection", {"method": "robust_core"}, backdoor_detected=metric(0.0),
               suspicious_fraction=metric(0.002, 1197, (0.0005, 0.0061)), flagged=metric(2.0)),
        simple("poisoning.detection", {"method": "robust_core", "suspected_targets": [0]},
               backdoor_detected=metric(1.0), suspicious_fraction=metric(0.1, 1197, (0.084, 0.118)),
               flagged=metric(120.0)),
    ),
    "poisoning.backdoor": (
        simple("poisoning.backdoor", {"rate": 0.01}, attack_success_rate=metric(0.05, 540, (0.035, 0.071)),
               clean_accuracy=metric(0.98, 600, (0.965, 0.989))),
        simple("poisoning.backdoor", {"rate": 0.01}, attack_success_rate=metric(0.71, 540, (0.67, 0.75)),
               clean_accuracy=metric(0.98, 600, (0.965, 0.989))),
    ),
    "poisoning.label_flip": (
        simple("poisoning.label_flip", {"rate": 0.1}, accuracy_drop=metric(0.01, 600, (-0.005, 0.023))),
        simple("poisoning.label_flip", {"rate": 0.1}, accuracy_drop=metric(0.12, 600, (0.09, 0.15))),
    ),
    "data.provenance": (
        simple("data.provenance", {"manifest": "train.manifest.json"}, verified=metric(1.0),
               covers_audit_data=metric(1.0), rows_changed=metric(0.0, 1197, (0.0, 0.0032))),
        simple("data.provenance", {"manifest": "train.manifest.json"}, verified=metric(0.0),
               covers_audit_data=metric(1.0), rows_changed=metric(0.0008, 1197, (0.0001, 0.0047))),
    ),
    "data.pii_scan": (
        simple("data.pii_scan", {"path": "train.csv", "quasi_identifiers": ["age", "postcode"]},
               pii_findings=metric(0.0),
               special_category_findings=metric(0.0), rows_scanned=metric(1000.0),
               columns_with_pii=metric(0.0), k_anonymity=metric(12.0),
               unique_share=metric(0.0, 1000, (0.0, 0.0038))),
        simple("data.pii_scan", {"path": "train.csv", "quasi_identifiers": ["age", "postcode"]},
               pii_findings=metric(3.0),
               special_category_findings=metric(2.0), rows_scanned=metric(1000.0),
               columns_with_pii=metric(2.0), k_anonymity=metric(1.0),
               unique_share=metric(0.41, 1000, (0.38, 0.44))),
    ),
    "defense.sanitization": (
        {**simple("defense.sanitization", {"eps": 0.1, "norm": "inf", "fpr": 0.05, "threshold": 0.036},
                  robust_accuracy_adaptive=metric(0.915, 200, (0.868, 0.946)),
                  robust_accuracy_nonadaptive=metric(0.975, 200, (0.943, 0.989)),
                  detection_fpr=metric(0.065, 200, (0.038, 0.108)),
                  detection_tpr=metric(0.912, 34, (0.770, 0.970)),
                  bypass_rate_adaptive=metric(0.038, 185, (0.018, 0.076)),
                  clean_accuracy_sanitized=metric(0.925, 200, (0.880, 0.954)),
                  clean_accuracy=metric(0.98, 200, (0.950, 0.992)))},
        {**simple("defense.sanitization", {"eps": 0.2, "norm": "inf", "fpr": 0.05, "threshold": 0.036},
                  robust_accuracy_adaptive=metric(0.025, 200, (0.011, 0.057)),
                  robust_accuracy_nonadaptive=metric(0.12, 200, (0.082, 0.172)),
                  detection_fpr=metric(0.065, 200, (0.038, 0.108)),
                  detection_tpr=metric(0.103, 194, (0.068, 0.154)),
                  bypass_rate_adaptive=metric(0.973, 185, (0.938, 0.988)),
                  clean_accuracy_sanitized=metric(0.925, 200, (0.880, 0.954)),
                  clean_accuracy=metric(0.98, 200, (0.950, 0.992))),
         "flags": [{"code": "adaptive_breaks_defense", "detail": "adaptive_breaks_defense detail"}]},
    ),
    "defense.access_control": (
        simple("defense.access_control", {"policy": "access.toml"},
               unauthenticated_served=metric(0.0, 12, (0.0, 0.242)),
               forbidden_served=metric(0.0, 2, (0.0, 0.658)),
               permitted_refused=metric(0.0, 4, (0.0, 0.49)), principals=metric(2.0),
               principals_unbudgeted=metric(0.0), raw_probability_principals=metric(0.0),
               budgets_checked=metric(2.0), budget_overrun=metric(0.0), budget_shortfall=metric(0.0)),
        simple("defense.access_control", {"policy": "access.toml"},
               unauthenticated_served=metric(0.25, 12, (0.089, 0.532)),
               forbidden_served=metric(0.5, 2, (0.095, 0.905)),
               permitted_refused=metric(0.0, 4, (0.0, 0.49)), principals=metric(2.0),
               principals_unbudgeted=metric(1.0), raw_probability_principals=metric(1.0),
               budgets_checked=metric(1.0), budget_overrun=metric(37.0), budget_shortfall=metric(0.0)),
    ),
    "defense.extraction_resistance": (
        simple("defense.extraction_resistance", {"budget": 500, "principal": "carol"},
               fidelity_raw=metric(0.97, 600, (0.953, 0.981)),
               fidelity_guarded=metric(0.71, 600, (0.672, 0.745)),
               fidelity_reduction=metric(0.26, 600, (0.225, 0.296)), queries_answered=metric(200.0),
               queries_refused=metric(300.0)),
        simple("defense.extraction_resistance", {"budget": 500, "principal": "carol"},
               fidelity_raw=metric(0.97, 600, (0.953, 0.981)),
               fidelity_guarded=metric(0.96, 600, (0.941, 0.973)),
               fidelity_reduction=metric(0.01, 600, (0.001, 0.022)), queries_answered=metric(500.0),
               queries_refused=metric(0.0)),
    ),
    "defense.audit_log": (
        simple("defense.audit_log", {"policy": "access.toml"},
               requests=metric(7.0), logged=metric(1.0, 7, (0.646, 1.0)), log_verified=metric(1.0),
               tamper_detected=metric(1.0, 3, (0.439, 1.0)), secrets_logged=metric(0.0)),
        simple("defense.audit_log", {"policy": "access.toml"},
               requests=metric(7.0), logged=metric(0.571, 7, (0.25, 0.842)), log_verified=metric(0.0),
               tamper_detected=metric(1.0, 3, (0.439, 1.0)), secrets_logged=metric(0.0)),
    ),
}


def audit(*evidence: dict[str, Any], name: str = "digits-cnn") -> dict[str, Any]:
    """An audit dict as report.json holds it, for one target."""
    return {
        "schema": "guard.audit/1",
        "target": {"name": name, "framework": "torch", "deployment": {}},
        "evidence": list(evidence),
        "findings": [],
        "environment": {},
    }
