"""``guard policy list | show | check`` through click's CliRunner."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from guard.cli.policy import policy

GOOD = """\
pack: mine
select:
  - from: baseline
    ids: [GRD-EVA-01]
controls:
  - id: MY-01
    title: PGD robust accuracy at the release budget
    severity: high
    rationale: Release gate.
    remediation: Train adversarially.
    evidence: [evasion.pgd]
    where: params.eps == thresholds.release_eps
    condition: metrics.robust_accuracy.upper >= thresholds.min_robust_accuracy
    thresholds: {release_eps: 0.03, min_robust_accuracy: 0.7}
    references: {eu_ai_act: [15(5)]}
"""


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(policy, list(args))
    return result.exit_code, result.output


def test_list_shows_every_shipped_pack() -> None:
    code, out = run("list")
    assert code == 0
    names = [line.split()[0] for line in out.splitlines()]
    assert names == ["baseline", "ccpa", "eu-ai-act", "gdpr", "mitre-atlas", "nist-ai-rmf", "owasp-ml"]
    assert "23 controls" in out.splitlines()[0]


def test_show_prints_controls_with_their_references() -> None:
    code, out = run("show", "gdpr")
    assert code == 0
    assert out.startswith("gdpr: GDPR")
    assert "GRD-EVA-01  [high]  Robust accuracy under evasion attack meets the threshold" in out
    assert "condition:   metrics.robust_accuracy.upper >= thresholds.min_robust_accuracy" in out
    assert "gdpr:        32(1)(b)" in out


def test_show_json_is_the_controls_as_data() -> None:
    code, out = run("show", "ccpa", "--json")
    assert code == 0
    document = json.loads(out)
    assert document["pack"] == "ccpa" and document["framework"] == "ccpa"
    encryption = next(c for c in document["controls"] if c["id"] == "GRD-SUP-02")
    assert "1798.150(a)(1)" in encryption["references"]["ccpa"]
    assert encryption["evidence"] == ["supply_chain.encryption"]


def test_check_accepts_a_valid_pack(tmp_path: Path) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text(GOOD, encoding="utf-8")
    code, out = run("check", str(path))
    assert code == 0, out
    assert f"{path}: ok, pack 'mine' with 2 controls: GRD-EVA-01, MY-01" in out


def test_check_lists_every_problem_with_file_and_line_and_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text(GOOD.replace("evasion.pgd", "evasion.pgdd").replace("15(5)", "15(9)"), encoding="utf-8")
    code, out = run("check", str(path))
    assert code == 2
    assert f"{path}:11: unknown evidence name 'evasion.pgdd'" in out
    assert f"{path}:15: '15(9)' is not in Guard's eu_ai_act catalogue" in out


def test_check_validates_waivers_and_thresholds_against_the_pack(tmp_path: Path) -> None:
    pack = tmp_path / "mine.yaml"
    pack.write_text(GOOD, encoding="utf-8")
    waivers = tmp_path / "waivers.yaml"
    waivers.write_text("waivers:\n  - control: MY-01\n    target: '*'\n    reason: r\n    approver: a\n"
                       "    expires: 2030-01-01\n", encoding="utf-8")
    thresholds = tmp_path / "guard.toml"
    thresholds.write_text("[thresholds]\nrelease_eps = 0.05\n\n"
                          "[thresholds.MY-01]\nmin_robust_accuracy = 0.6\n", encoding="utf-8")
    code, out = run("check", str(pack), "--waivers", str(waivers), "--thresholds", str(thresholds))
    assert code == 0, out
    assert f"{waivers}: ok, 1 waivers" in out and f"{thresholds}: ok, 2 threshold overrides" in out

    thresholds.write_text("[thresholds]\nrelease_epsilon = 0.05\n", encoding="utf-8")
    code, out = run("check", str(pack), "--thresholds", str(thresholds))
    assert code == 2 and f"{thresholds}:2: unknown threshold 'release_epsilon'" in out


def test_check_of_a_missing_file_is_a_usage_error(tmp_path: Path) -> None:
    code, out = run("check", str(tmp_path / "nope.yaml"))
    assert code == 2 and "no such pack" in out
