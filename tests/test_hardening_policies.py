"""Policy packs, waivers and thresholds that are hostile or careless: each class the
hardening issue names ends in one FILE:LINE error and exit 2, within bounded time."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from guard.cli import cli
from guard.policies.expressions import (
    EvaluationError,
    ExpressionError,
    ExpressionLimit,
    analyse,
    compile_program,
)

CONDITION = "metrics.robust_accuracy.upper >= thresholds.min_robust_accuracy"
PACK = f"""pack: mine
title: My pack
controls:
  - id: MY-01
    title: Robust enough
    severity: high
    rationale: r
    remediation: r
    evidence: [evasion.*]
    condition: {CONDITION}
    check: c
    thresholds:
      min_robust_accuracy: 0.5
    references:
      gdpr: [32(1)(b)]
"""


def check(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, float]:
    start = time.perf_counter()
    result = CliRunner().invoke(cli, ["policy", "check", *args], env=env)
    seconds = time.perf_counter() - start
    assert "Traceback" not in result.output, result.output
    return result.exit_code, result.output, seconds


def pack_file(tmp_path: Path, text: str, name: str = "pack.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def with_condition(condition: str) -> str:
    return PACK.replace(f"    condition: {CONDITION}", f"    condition: |-\n      {condition} || {CONDITION}")


def test_the_plain_pack_is_fine(tmp_path: Path) -> None:
    code, output, _ = check(str(pack_file(tmp_path, PACK)))
    assert code == 0, output


def test_packs_that_block_or_never_end(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)
    select = "pack: s\ntitle: t\nselect:\n  - from: {}\n    framework: gdpr\n"
    for target in (str(fifo), "/dev/zero",
                   str(pack_file(tmp_path, select.format("/dev/zero"), "sel1.yaml")),
                   str(pack_file(tmp_path, select.format(fifo), "sel2.yaml"))):
        code, output, seconds = check(target)
        assert code == 2 and "FIFO, device or socket" in output, output
        assert seconds < 5


def test_an_alias_bomb_is_refused_before_it_expands(tmp_path: Path) -> None:
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 10)]
    bomb = "\n".join(lines) + "\npack: b\ntitle: *a9\ncontrols: []\n"
    code, output, seconds = check(str(pack_file(tmp_path, bomb)))
    assert code == 2 and "more YAML nodes, with every alias expanded" in output, output
    assert "GUARD_LIMIT_YAML_NODES" in output and seconds < 5


def test_merge_keys_still_work(tmp_path: Path) -> None:
    text = PACK.replace("  - id: MY-01\n", "  - &first\n    id: MY-01\n") + (
        "  - <<: *first\n    id: MY-02\n    title: The same, merged\n")
    code, output, _ = check(str(pack_file(tmp_path, text)))
    assert code == 0 and "MY-01, MY-02" in output, output


def test_deeply_nested_comprehensions_are_refused_by_policy_check(tmp_path: Path) -> None:
    ten = "[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]"
    eight = ten + f".map(a, {ten}" * 7 + ".map(h, 1)" + ")" * 7 + ".size() > 0"
    code, output, seconds = check(str(pack_file(tmp_path, with_condition(eight))))
    assert code == 2 and "nested 8 deep, more than the limit of 3" in output, output
    assert seconds < 10
    with pytest.raises(ExpressionLimit):
        analyse(eight)
    shallow = f"{ten}.map(a, [1, 2].map(b, b)).size() > 0"
    assert check(str(pack_file(tmp_path, with_condition(shallow), "ok.yaml")))[0] == 0


def test_a_condition_too_long_for_cels_parser(tmp_path: Path) -> None:
    broken = "'" + "x" * 70_000 + "' == ("
    code, output, _ = check(str(pack_file(tmp_path, with_condition(broken))))
    assert code == 2 and "GUARD_LIMIT_CEL_CHARS" in output, output
    code, output, _ = check(str(pack_file(tmp_path, with_condition(broken))),
                            env={"GUARD_LIMIT_CEL_CHARS": "100000"})
    assert code == 2 and "65,535 characters CEL's parser reads" in output, output


def test_a_panic_in_cel_is_contained(monkeypatch: pytest.MonkeyPatch) -> None:
    import cel

    class PanicException(BaseException):  # what pyo3 raises: not an Exception
        pass

    def panic(*_: object) -> None:
        raise PanicException("byte index 65536 is out of bounds")

    monkeypatch.setattr(cel, "compile", panic)
    with pytest.raises(ExpressionError, match="CEL's parser failed on it"):
        compile_program("1 == 1")

    class Program:
        def execute(self, _: object) -> bool:
            raise PanicException("overflow")

    from guard.policies.expressions import Condition

    condition = Condition(source="1 == 1", analysis=analyse("1 == 1"), program=Program())
    with pytest.raises(EvaluationError, match="CEL failed on it"):
        condition.holds({})


@pytest.mark.parametrize(("change", "message"), [
    (("title: Robust enough", "title: Robust enough\n    expires: 2026-02-30"), "is not a valid date"),
    (("title: My pack", "title: !!int x"), "is not an integer (as its tag !!int says)"),
    (("title: My pack", "title: !!binary aGVsbG8="), "the tag !!binary is not allowed"),
    (("title: My pack", "title: !!python/object:os.system x"), "is not allowed"),
    (("min_robust_accuracy: 0.5", "min_robust_accuracy: " + "9" * 5000), "more digits than an integer"),
    (("title: My pack", "title: [a, b]"), "'title' must be text, not a list"),
    (("min_robust_accuracy: 0.5", "min_robust_accuracy: 7"), "from 0 to 1, got 7"),
])
def test_values_of_the_wrong_kind_name_file_and_line(tmp_path: Path, change: tuple[str, str],
                                                     message: str) -> None:
    text = PACK.replace(*change)
    assert text != PACK
    code, output, _ = check(str(pack_file(tmp_path, text)))
    assert code == 2 and message in output, output
    assert "pack.yaml:" in output


def test_bad_waivers_and_thresholds_files(tmp_path: Path) -> None:
    pack = pack_file(tmp_path, PACK)
    waivers = tmp_path / "waivers.yaml"
    waivers.write_text('waivers:\n  - control: MY-01\n    target: "*"\n    reason: r\n    approver: a\n'
                       "    expires: 2026-02-30\n")
    code, output, _ = check(str(pack), "--waivers", str(waivers))
    assert code == 2 and "waivers.yaml:6:" in output and "not a valid date" in output, output
    for body, message in (('min_robust_accuracy = "high"', "must be like its default 0.5"),
                          ("min_robust_accuracy = 1e999", "must be a finite number"),
                          ("min_robust_accuracy = -0.5", "from 0 to 1")):
        thresholds = tmp_path / "guard.toml"
        thresholds.write_text(f"[thresholds]\n{body}\n")
        code, output, _ = check(str(pack), "--thresholds", str(thresholds))
        assert code == 2 and message in output, output


def test_a_bad_threshold_stops_the_audit_before_any_attack(tmp_path: Path) -> None:
    config = tmp_path / "guard.toml"
    config.write_text('[guard]\npolicy = ["baseline"]\n[guard.thresholds]\nmin_robust_accuracy = 7\n')
    start = time.perf_counter()
    args = ["audit", "--demo", "--config", str(config), "--out", str(tmp_path / "o")]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2 and "from 0 to 1, got 7" in result.output, result.output
    assert time.perf_counter() - start < 10 and not (tmp_path / "o").exists()
