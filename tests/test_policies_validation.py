"""Loading a pack validates everything, and every problem names its file and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from guard.policies import PolicyError, evaluate, load_pack
from guard.policies.expressions import Condition, ExpressionError, analyse

PACK = """\
pack: mine
controls:
  - id: MY-01
    title: Robust enough
    severity: high
    rationale: Because attackers exist.
    remediation: Train adversarially.
    evidence: [evasion.pgd]
    condition: metrics.robust_accuracy.upper >= thresholds.min_ra
    thresholds: {min_ra: 0.5}
    references:
      gdpr: [32(1)(b)]
      ccpa: [1798.150(a)(1), 1798.82]
"""


def write(tmp_path: Path, text: str, name: str = "pack.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def with_line(number: int, replacement: str) -> str:
    lines = PACK.splitlines()
    lines[number - 1] = replacement
    return "\n".join(lines) + "\n"


def test_the_template_pack_is_valid_and_keeps_ids_as_written(tmp_path: Path) -> None:
    pack = load_pack(write(tmp_path, PACK))
    (control,) = pack.controls
    assert control.references == {"gdpr": ("32(1)(b)",), "ccpa": ("1798.150(a)(1)", "1798.82")}
    assert control.line == 3 and control.location == f"{tmp_path / 'pack.yaml'}:3"


CASES = [
    (8, "    evidence: [evasion.pgdd]", 8, "unknown evidence name 'evasion.pgdd'"),
    (8, "    evidence: [privacy.*, nothing.*]", 8, "unknown evidence name 'nothing.*'"),
    (9, "    condition: metrics.robust_acc.upper >= 0.5", 9,
     "condition: column 9: unknown metric 'robust_acc'"),
    (9, "    condition: metrics['robust_acc'].upper >= 0.5", 9, "unknown metric 'robust_acc'"),
    (9, "    condition: metrics.robust_accuracy.upper >= thresholds.min_rob", 9,
     "unknown threshold 'min_rob'"),
    (9, "    condition: metrics.robust_accuracy.upper >=", 9,
     "malformed condition: column 33 of the expression"),
    (9, "    condition: ''", 9, "malformed condition: the expression is empty"),
    (9, "    condition: model.robust > 1.0", 9, "unknown variable 'model'"),
    (9, "    condition: exec('import os')", 9, "unknown function 'exec'"),
    (9, "    condition: __import__('os').system('x') == 0", 9, "unknown function '__import__'"),
    (12, "      gdpr: [32(1)(e)]", 12, "'32(1)(e)' is not in Guard's gdpr catalogue"),
    (13, "      ccpa: [1798.15]", 13, "'1798.15' is not in Guard's ccpa catalogue"),
    (12, "      gdpx: [32(1)(b)]", 12, "unknown framework 'gdpx'"),
    (5, "    severity: severe", 5, "severity 'severe' must be one of info, low, medium, high, critical"),
    (4, "    titel: Robust enough", 3, "control is missing 'title'"),
    (4, "    title: Robust enough\n    owner: me", 5, "unknown key 'owner'"),
    (4, "    title: Robust enough\n    title: Again", 5, "duplicate key 'title'"),
    (10, "    thresholds: {min_ra: {nested: 1}}", 10, "threshold 'min_ra' needs a number"),
    (10, "    thresholds: {min_ra: 0.5}\n    check: at least {min_robust}", 11,
     "check text names unknown threshold 'min_robust'"),
    (10, "    thresholds: {min_ra: 0.5}\n    scope: all", 9, "unknown variable 'metrics'"),
    (10, "    thresholds: {min_ra: 0.5}\n    where: params.eps < 0.3\n    scope: all", 11,
     "only with scope 'each'"),
    (10, "    thresholds: {min_ra: 0.5}\n    when_missing: pass", 11, "when_missing 'pass' must be"),
    (3, "  - id: 'my control'", 3, "id 'my control' must be a name"),
    (9, "    condition: [unclosed", 10, "not valid YAML"),
]


def assert_reported(error: PolicyError, path: Path, line: int, message: str) -> None:
    """Some problem sits at path:line and says message."""
    lines = str(error).splitlines()
    assert any(text.startswith(f"{path}:{line}: ") and message in text for text in lines), lines


@pytest.mark.parametrize(("number", "replacement", "line", "message"), CASES, ids=[c[3][:40] for c in CASES])
def test_each_problem_names_file_and_line(tmp_path: Path, number: int, replacement: str, line: int,
                                          message: str) -> None:
    path = write(tmp_path, with_line(number, replacement))
    with pytest.raises(PolicyError) as caught:
        load_pack(path)
    assert_reported(caught.value, path, line, message)


@pytest.mark.parametrize(("references", "line", "message"), [
    ("    references: {}\n", 11, "a control needs 'references' to at least one regulation"),
    ("", 3, "control is missing 'references'"),
    ("    references:\n      gdpr: []\n", 12, "references.gdpr must be a non-empty list"),
])
def test_a_control_must_cite_something(tmp_path: Path, references: str, line: int, message: str) -> None:
    path = write(tmp_path, PACK.split("    references:\n")[0] + references)
    with pytest.raises(PolicyError) as caught:
        load_pack(path)
    assert_reported(caught.value, path, line, message)


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    text = with_line(8, "    evidence: [evasion.nope]").replace("32(1)(b)", "99(9)")
    with pytest.raises(PolicyError) as caught:
        load_pack(write(tmp_path, text))
    messages = [p.message for p in caught.value.problems]
    assert any("evasion.nope" in m for m in messages) and any("99(9)" in m for m in messages)
    assert all(p.line is not None for p in caught.value.problems)


def test_a_duplicate_control_id_names_both_places(tmp_path: Path) -> None:
    second = PACK.split("controls:\n", 1)[1]
    path = write(tmp_path, PACK + second)
    with pytest.raises(PolicyError) as caught:
        load_pack(path)
    assert_reported(caught.value, path, 14, f"duplicate control id 'MY-01' (also defined at {path}:3)")


def test_a_pack_redefining_a_selected_control_id_is_an_error(tmp_path: Path) -> None:
    selecting = "select:\n  - from: baseline\ncontrols:\n"
    path = write(tmp_path, PACK.replace("MY-01", "GRD-EVA-01").replace("controls:\n", selecting))
    with pytest.raises(PolicyError) as caught:
        load_pack(path)
    assert_reported(caught.value, path, 5, "duplicate control id 'GRD-EVA-01'")


def test_a_user_pack_selects_shipped_controls_and_adds_its_own(tmp_path: Path) -> None:
    text = PACK.replace("controls:\n", "select:\n  - from: baseline\n    ids: [GRD-SUP-02]\n"
                        "  - from: gdpr\n    framework: ccpa\ncontrols:\n")
    pack = load_pack(write(tmp_path, text))
    assert [c.id for c in pack.controls] == ["GRD-SUP-02", "GRD-OPS-01", "GRD-PRV-01", "GRD-DAT-01",
                                            "GRD-DAT-02", "GRD-DAT-04", "GRD-ACC-01", "GRD-LOG-01", "MY-01"]
    assert evaluate({"target": {"name": "m"}, "evidence": []}, pack)[0].status == "not_assessed"


@pytest.mark.parametrize(("rule", "line", "message"), [
    ("  - from: nowhere", 3, "cannot select from 'nowhere'"),
    ("  - from: baseline\n    ids: [GRD-NOPE]", 4, "pack 'baseline' has no control 'GRD-NOPE'"),
    ("  - from: baseline\n    framework: hipaa", 4, "unknown framework 'hipaa'"),
    ("  - from: baseline\n    pick: all", 4, "unknown key 'pick'"),
    ("  - baseline", 3, "a select rule needs 'from: PACK'"),
])
def test_bad_select_rules_name_file_and_line(tmp_path: Path, rule: str, line: int, message: str) -> None:
    path = write(tmp_path, f"pack: mine\nselect:\n{rule}\n")
    with pytest.raises(PolicyError) as caught:
        load_pack(path)
    assert_reported(caught.value, path, line, message)


def test_packs_selecting_each_other_in_a_cycle_are_an_error(tmp_path: Path) -> None:
    write(tmp_path, "pack: a\nselect:\n  - from: b.yaml\n", "a.yaml")
    write(tmp_path, "pack: b\nselect:\n  - from: a.yaml\n", "b.yaml")
    with pytest.raises(PolicyError, match="cycle"):
        load_pack(tmp_path / "a.yaml")


@pytest.mark.parametrize(("text", "message"), [
    ("pack: empty\n", "the pack has no controls"),
    ("- a list\n", "a pack file must be a mapping"),
    ("pack: x\nrules: []\n", "unknown key 'rules'"),
    ("pack: x\ncontrols: {}\n", "'controls' must be a list"),
])
def test_malformed_pack_files(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(PolicyError, match=message):
        load_pack(write(tmp_path, text))


def test_an_unknown_pack_name_lists_the_shipped_ones() -> None:
    with pytest.raises(PolicyError, match="not a shipped pack \\(baseline, ccpa"):
        load_pack("hipaa")


# ---------------------------------------------------------------- the expression language


def test_analysis_finds_metrics_thresholds_and_variables_but_not_strings() -> None:
    found = analyse("metrics.robust_accuracy.upper >= thresholds.min_ra && "
                    "flags.exists(f, f in ['metrics.fake', \"thresholds.fake\"]) && "
                    "evidence.all(e, e.metrics['auc'].value < 0.6) && has(metrics.zero_gradient_share)")
    assert [name for name, _ in found.metrics] == ["robust_accuracy", "auc", "zero_gradient_share"]
    assert [name for name, _ in found.thresholds] == ["min_ra"]
    assert found.variables == {"metrics", "thresholds", "flags", "evidence"}
    assert {name for name, _ in found.functions} == {"exists", "all", "has"}


def test_conditions_are_cel_not_python() -> None:
    condition = Condition.parse("size(flags) == 0 && params.norm == 'inf' && 1 < 2.5")
    assert condition.holds({"flags": [], "params": {"norm": "inf"}}) is True
    with pytest.raises(ExpressionError):
        Condition.parse("lambda: 1")
    with pytest.raises(ExpressionError):
        Condition.parse("[x for x in flags]")
