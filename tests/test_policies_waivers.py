"""Waivers (an accepted risk that expires) and baselines (gate only on what got worse)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from policy_fixtures import FIXTURES, audit, evasion, metric

from guard.errors import GuardInputError
from guard.evidence import AuditResult, Finding
from guard.policies import PolicyError, evaluate, exit_code_for, load_baseline, load_waivers
from guard.policies.waivers import Waiver
from guard.reports import write_json
from guard.serialization import evidence_from_dict

TODAY = dt.date(2026, 6, 1)
BAD_PGD = FIXTURES["evasion.pgd"][1]


def only(findings: list[Finding], control_id: str) -> Finding:
    (finding,) = [f for f in findings if f.control == control_id]
    return finding


def waiver(
    target: str = "digits-cnn", expires: dt.date = dt.date(2026, 12, 31), control: str = "GRD-EVA-01"
) -> Waiver:
    return Waiver(control=control, target=target, reason="adversarial training in 2.3",
                  approver="dpo@example.com", expires=expires, file="waivers.yaml", line=2)


def robustness(*evidence: dict[str, Any], **kwargs: Any) -> Finding:
    return only(evaluate(audit(*evidence), "baseline", today=TODAY, **kwargs), "GRD-EVA-01")


# ---------------------------------------------------------------- waivers


def test_a_valid_waiver_waives_a_failure() -> None:
    finding = robustness(BAD_PGD, waivers=[waiver()])
    assert finding.status == "waived"
    assert finding.waiver is not None and finding.waiver["expired"] is False
    assert finding.waiver["approver"] == "dpo@example.com" and finding.waiver["expires"] == "2026-12-31"
    assert "Waived until 2026-12-31 by dpo@example.com" in finding.detail
    assert exit_code_for([finding], "info") == 0


def test_a_waiver_is_valid_through_its_expiry_date() -> None:
    assert robustness(BAD_PGD, waivers=[waiver(expires=TODAY)]).status == "waived"


def test_an_expired_waiver_is_a_failure_that_says_so() -> None:
    finding = robustness(BAD_PGD, waivers=[waiver(expires=dt.date(2026, 5, 31))])
    assert finding.status == "fail"
    assert finding.waiver is not None and finding.waiver["expired"] is True
    assert "Waiver expired on 2026-05-31" in finding.detail and "dpo@example.com" in finding.detail
    assert exit_code_for([finding], "high") == 1


def test_a_waiver_for_another_target_does_not_apply() -> None:
    finding = robustness(BAD_PGD, waivers=[waiver(target="other-model")])
    assert finding.status == "fail" and finding.waiver is None


def test_a_wildcard_waiver_applies_to_every_target() -> None:
    assert robustness(BAD_PGD, waivers=[waiver(target="*")]).status == "waived"
    assert robustness(BAD_PGD, waivers=[waiver(target="digits-*")]).status == "waived"


def test_a_valid_waiver_wins_over_an_expired_one() -> None:
    waivers = [waiver(expires=dt.date(2026, 1, 1)), waiver(expires=dt.date(2027, 1, 1))]
    assert robustness(BAD_PGD, waivers=waivers).status == "waived"


def test_a_passing_control_is_not_marked_waived() -> None:
    finding = robustness(FIXTURES["evasion.pgd"][0], waivers=[waiver()])
    assert finding.status == "pass" and finding.waiver is None


def test_a_not_assessed_control_can_be_waived() -> None:
    finding = only(evaluate(audit(), "baseline", today=TODAY, waivers=[waiver(control="GRD-PRV-01")]),
                   "GRD-PRV-01")
    assert finding.status == "waived"


def test_a_waiver_of_an_unknown_control_is_an_error_naming_file_and_line() -> None:
    with pytest.raises(PolicyError, match=r"waivers.yaml:2: waiver for unknown control 'GRD-EVA-99'"):
        evaluate(audit(), "gdpr", waivers=[waiver(control="GRD-EVA-99")])


def test_waivers_from_yaml(tmp_path: Path) -> None:
    path = tmp_path / "waivers.yaml"
    path.write_text("waivers:\n  - control: GRD-EVA-01\n    target: '*'\n    reason: known weak\n"
                    "    approver: jane\n    expires: 2026-12-31\n", encoding="utf-8")
    (loaded,) = load_waivers(path)
    assert loaded.expires == dt.date(2026, 12, 31) and loaded.line == 2
    assert robustness(BAD_PGD, waivers=path).status == "waived"


def test_waivers_from_toml(tmp_path: Path) -> None:
    path = tmp_path / "waivers.toml"
    path.write_text('[[waivers]]\ncontrol = "GRD-EVA-01"\ntarget = "*"\nreason = "r"\napprover = "a"\n'
                    'expires = 2026-01-31\n', encoding="utf-8")
    finding = robustness(BAD_PGD, waivers=str(path))
    assert finding.status == "fail" and "Waiver expired on 2026-01-31" in finding.detail


@pytest.mark.parametrize(("body", "line", "message"), [
    ("  - control: GRD-EVA-01\n    target: '*'\n    reason: r\n    expires: 2026-12-31\n", 2,
     "waiver needs 'approver'"),
    ("  - control: GRD-EVA-01\n    target: '*'\n    reason: r\n    approver: a\n    expires: soon\n", 6,
     "waiver needs 'expires' as a date"),
    ("  - control: GRD-EVA-01\n    target: '*'\n    reason: r\n    approver: a\n"
     "    expires: 2026-12-31\n    owner: b\n", 7, "unknown key 'owner'"),
    ("  - just text\n", 2, "a waiver must be a mapping"),
])
def test_malformed_waivers_name_file_and_line(tmp_path: Path, body: str, line: int, message: str) -> None:
    path = tmp_path / "waivers.yaml"
    path.write_text("waivers:\n" + body, encoding="utf-8")
    with pytest.raises(PolicyError, match=rf"{path}:{line}: {message}"):
        load_waivers(path)


# ---------------------------------------------------------------- baselines


def pgd(robust: int, eps: float) -> dict[str, Any]:
    """PGD at eps with `robust` of 500 samples still correct (interval from Wilson)."""
    from guard.stats import Metric

    m = Metric.proportion(robust, 500)
    assert m.ci95 is not None
    return evasion("evasion.pgd", robust=metric(m.value, 500, m.ci95), eps=eps)


def stored(tmp_path: Path, *evidence: dict[str, Any], name: str = "digits-cnn") -> Path:
    result = AuditResult(target={"name": name}, evidence=[evidence_from_dict(e) for e in evidence],
                         environment={})
    result.findings = evaluate(result, "baseline", today=TODAY)
    path = tmp_path / "baseline" / "report.json"
    path.parent.mkdir(exist_ok=True)
    write_json([result], path)
    return path


def test_a_failure_known_from_the_baseline_is_reported_but_does_not_fail_the_gate(tmp_path: Path) -> None:
    base = stored(tmp_path, pgd(400, 0.05), pgd(100, 0.1))
    finding = robustness(pgd(400, 0.05), pgd(110, 0.1), baseline=base)
    assert finding.status == "fail" and finding.baseline == "known"
    assert "Known: also failing in the baseline" in finding.detail
    assert finding.to_dict()["baseline"] == "known"
    assert exit_code_for([finding], "info") == 0


def test_a_worse_failure_than_the_baseline_counts(tmp_path: Path) -> None:
    base = stored(tmp_path, pgd(400, 0.05), pgd(100, 0.1))
    finding = robustness(pgd(100, 0.05), pgd(100, 0.1), baseline=load_baseline(base))
    assert finding.baseline == "new"
    assert "Worse than the baseline" in finding.detail and "eps=0.05" in finding.detail
    assert exit_code_for([finding], "info") == 1


def test_a_new_failure_counts(tmp_path: Path) -> None:
    base = stored(tmp_path, pgd(400, 0.1))
    finding = robustness(pgd(100, 0.1), baseline=base)
    assert finding.baseline == "new" and "New since the baseline" in finding.detail
    assert exit_code_for([finding], "info") == 1


def test_a_target_missing_from_the_baseline_is_new(tmp_path: Path) -> None:
    base = stored(tmp_path, pgd(100, 0.1), name="other-model")
    assert robustness(pgd(100, 0.1), baseline=base).baseline == "new"


def test_a_fixed_failure_says_so_and_a_pass_carries_no_mark(tmp_path: Path) -> None:
    base = stored(tmp_path, pgd(100, 0.1))
    finding = robustness(pgd(400, 0.1), baseline=base)
    assert finding.status == "pass" and finding.baseline is None
    assert "Fixed since the baseline" in finding.detail
    assert "baseline" not in finding.to_dict()


def test_a_stricter_threshold_is_judged_on_the_baseline_evidence_too(tmp_path: Path) -> None:
    """The baseline's evidence is re-judged, so known debt stays known under a new threshold."""
    base = stored(tmp_path, pgd(320, 0.1))  # 64%: passed the default 0.5 when stored
    finding = robustness(pgd(320, 0.1), baseline=base, thresholds={"min_robust_accuracy": 0.8})
    assert finding.status == "fail" and finding.baseline == "known"


def test_an_expired_waiver_counts_even_on_a_known_failure(tmp_path: Path) -> None:
    base = stored(tmp_path, pgd(100, 0.1))
    finding = robustness(pgd(100, 0.1), baseline=base, waivers=[waiver(expires=dt.date(2026, 1, 1))])
    assert finding.status == "fail" and finding.baseline == "known"
    assert exit_code_for([finding], "info") == 1


def test_a_baseline_of_an_unknown_schema_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "report.json"
    path.write_text('{"schema": "guard.audit/99", "target": {}}', encoding="utf-8")
    with pytest.raises(GuardInputError, match="unknown report schema"):
        evaluate(audit(), "baseline", baseline=path)


def test_a_control_not_assessed_now_is_not_called_fixed(tmp_path: Path) -> None:
    base = stored(tmp_path, pgd(100, 0.1))
    finding = robustness(baseline=base)
    assert finding.status == "not_assessed" and "Fixed" not in finding.detail
