"""report.json, baselines and manifests read back; where the reports go; one run per set.

Hand-made inputs for each way a stored report, a baseline or a signature manifest crashed
Guard or cost it unbounded time, an ``--out`` that failed only once every attack had run, and
a set of report files that a killed run left half old, half new.
"""

from __future__ import annotations

import base64
import copy
import json
import os
import re
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from report_fixtures import two_audits

import guard.reports.html as html_module
from guard.cli import cli
from guard.defenses.crypto.signing import (
    PAYLOAD_TYPE,
    load_private_key,
    pae,
    sign_paths,
    verify_manifest,
    write_signing_keypair,
)
from guard.errors import GuardInputError
from guard.reports import write_reports
from guard.reports.json_report import RUN_ID_MARKERS, check_set, read_json
from guard.serialization import UnsafeJSON, nesting_depth, parse_json

FORMATS = ["json", "html", "sarif", "junit", "md"]
DEEP = "[" * 100_000 + "]" * 100_000


def invoke(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args), env=env)
    assert "Traceback" not in result.output, result.output
    assert result.exit_code != 3, result.output
    return result.exit_code, result.output


def one_line_error(code: int, output: str) -> str:
    assert code == 2, output
    lines = output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), output
    return lines[0]


@pytest.fixture(scope="module")
def report_doc(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A real one-target report.json with every kind of evidence (flags, a curve) and findings."""
    folder = tmp_path_factory.mktemp("doc")
    write_reports(two_audits()[:1], folder, ["json"])
    doc: dict[str, Any] = json.loads((folder / "report.json").read_text(encoding="utf-8"))
    return doc


def _evidence_with(doc: dict[str, Any], key: str) -> dict[str, Any]:
    return next(e for e in doc["evidence"] if e.get(key))


# ---------------------------------------------------------------- the JSON reader


def test_nesting_depth_skips_strings_and_is_linear() -> None:
    assert nesting_depth('{"a": [1, {"b": "[[[[{{{{"}], "c": "\\"]]]"}') == 3
    assert nesting_depth("[]") == 1 and nesting_depth("1") == 0
    start = time.perf_counter()
    assert nesting_depth(DEEP) == 100_000
    assert nesting_depth('"' + "[" * 1_000_000) == 0  # an unterminated string runs to the end
    assert time.perf_counter() - start < 2


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[" * 65 + "]" * 65, "nested deeper than the limit of 64"),
        (DEEP, "nested deeper than the limit of 64"),
        ('{"a": ' * 100_000 + "1" + "}" * 100_000, "nested deeper"),
        ('{"x": 1e400}', "the number 1e400 is beyond the range of a float"),
        ('{"x": -1e400}', "beyond the range of a float"),
        ('{"x": ' + "1" * 400 + "}", "beyond the range of a float"),
        ('{"x": NaN}', "NaN is not a number JSON allows"),
        ('{"x": [-Infinity]}', "-Infinity is not a number JSON allows"),
        ('{"target": {"name": "\\ud800"}}', "$.target.name holds a lone surrogate"),
        ('{"a": ["ok", "x\\udc00"]}', "$.a[1] holds a lone surrogate"),
        ('{"\\ud83d": 1}', "$ (a key) holds a lone surrogate"),
    ],
)
def test_parse_json_refuses(text: str, message: str) -> None:
    with pytest.raises(UnsafeJSON, match=re.escape(message)):
        parse_json(text)


def test_parse_json_keeps_what_is_fine() -> None:
    assert parse_json("[" * 64 + "]" * 64) is not None
    assert parse_json('{"s": "\\ud83d\\ude00", "big": 1.7e308, "n": ' + "9" * 300 + "}")["s"] == "\U0001f600"
    assert parse_json(b'{"a": "[[["}') == {"a": "[[["}


def test_a_raised_depth_limit_past_the_parser_is_still_one_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GUARD_LIMIT_JSON_DEPTH", "1000000")
    with pytest.raises(UnsafeJSON, match="nested too deep to parse"):
        parse_json(DEEP)


# ---------------------------------------------------------------- report.json and baselines

Mutation = Callable[[dict[str, Any]], None]
BROKEN: dict[str, tuple[Mutation, str]] = {
    "flag without detail": (lambda d: _evidence_with(d, "flags")["flags"][0].pop("detail"),
                            r"\$\.evidence\[\d+\]\.flags\[0\]\.detail must be a string \(it is missing\)"),
    "curve without points": (lambda d: _evidence_with(d, "curves")["curves"][0].pop("points"),
                             r"\.curves\[0\]\.points must be a list \(it is missing\)"),
    "curve point without x": (lambda d: _evidence_with(d, "curves")["curves"][0]["points"][0].pop("x"),
                              r"\.points\[0\]\.x must be a number \(it is missing\)"),
    "curves not a list": (lambda d: _evidence_with(d, "curves").__setitem__("curves", 5),
                          r"\.curves must be a list \(it is the number 5\)"),
    "finding missing fields": (
        lambda d: d["findings"].__setitem__(0, {"control": "X"}),
        r"\$\.findings\[0\]\.status must be one of 'pass'.*\(it is missing\); and 6 more"),
    "model not an object": (lambda d: d["target"].__setitem__("model", "DigitsCNN"),
                            r"\$\.target\.model must be an object or null \(it is the string 'DigitsCNN'\)"),
    "duration_s null": (lambda d: d["evidence"][0].__setitem__("duration_s", None),
                        r"\$\.evidence\[0\]\.duration_s must be a number \(it is null\)"),
    "metric n a string": (lambda d: d["evidence"][0]["metrics"]["robust_accuracy"].__setitem__("n", "500"),
                          r"\.metrics\.robust_accuracy\.n must be an integer \(it is the string '500'\)"),
    "ci95 not a pair": (lambda d: d["evidence"][0]["metrics"]["robust_accuracy"].__setitem__("ci95", [0.1]),
                        r"\.ci95 must be a pair of numbers \(it is a list\)"),
    "bad run id": (lambda d: d.__setitem__("run_id", "../x"), r"\$\.run_id must match"),
    "a key no name is": (lambda d: d["evidence"][0]["metrics"].__setitem__("a\n\x1b[2J\u202e", 1),
                         r"\.metrics\['a\\n\\x1b\[2J\\u202e'\] must be an object \(it is the number 1\)"),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_a_report_the_schema_refuses_is_one_line_with_its_json_path(
    case: str, report_doc: dict[str, Any], tmp_path: Path
) -> None:
    mutate, message = BROKEN[case]
    doc = copy.deepcopy(report_doc)
    mutate(doc)
    path = tmp_path / "report.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    with pytest.raises(GuardInputError, match=message):
        read_json(path)
    line = one_line_error(*invoke("report", str(path), "--out", str(tmp_path / "out")))
    assert str(path) in line and re.search(message, line), line
    assert not (tmp_path / "out").exists()


RAW: dict[str, tuple[Callable[[str], str], str]] = {
    "1e400": (lambda t: t.replace('"duration_s": 1.25', '"duration_s": 1e400', 1),
              "the number 1e400 is beyond the range of a float"),
    "NaN": (lambda t: t.replace('"duration_s": 1.25', '"duration_s": NaN', 1), "NaN is not a number"),
    "a lone surrogate": (lambda t: t.replace('"name": "digits-cnn"', '"name": "\\ud800"', 1),
                         "$.target.name holds a lone surrogate"),
    "100,000-deep nesting": (lambda t: t.replace('"params": {', '"params": {"x": ' + DEEP + ", ", 1),
                             "nested deeper than the limit of 64 (raise it with GUARD_LIMIT_JSON_DEPTH)"),
}


@pytest.mark.parametrize("case", sorted(RAW))
def test_raw_json_no_writer_produces_is_refused_by_report_and_baseline(
    case: str, report_doc: dict[str, Any], tmp_path: Path
) -> None:
    edit, message = RAW[case]
    text = json.dumps(report_doc)
    bad = tmp_path / "bad.json"
    bad.write_text(edit(text), encoding="utf-8")
    assert bad.read_text(encoding="utf-8") != text
    good = tmp_path / "good" / "report.json"
    good.parent.mkdir()
    good.write_text(text, encoding="utf-8")
    start = time.perf_counter()
    for args in (
        ("report", str(bad), "--out", str(tmp_path / "out")),
        ("report", str(good), "--out", str(tmp_path / "out"), "--policy", "baseline", "--baseline", str(bad)),
        ("audit", "--demo", "--out", str(tmp_path / "out"), "--baseline", str(bad)),
    ):
        line = one_line_error(*invoke(*args))
        assert message in line, (args, line)
    assert "baseline " + str(bad) in line  # the baseline is named as one
    assert time.perf_counter() - start < 10
    assert not (tmp_path / "out").exists()


def test_report_json_is_read_within_its_size_limit(report_doc: dict[str, Any], tmp_path: Path) -> None:
    path = tmp_path / "report.json"
    path.write_text(json.dumps(report_doc), encoding="utf-8")
    line = one_line_error(*invoke("report", str(path), env={"GUARD_LIMIT_REPORT_BYTES": "1KiB"}))
    assert "larger than the 1 KiB (raise it with GUARD_LIMIT_REPORT_BYTES)" in line
    fifo = tmp_path / "pipe.json"
    os.mkfifo(fifo)
    line = one_line_error(*invoke("report", str(fifo)))
    assert "FIFO" in line


def test_a_valid_report_still_renders_and_the_typed_record_reads_it(tmp_path: Path) -> None:
    write_reports(two_audits(), tmp_path, ["json"])
    code, output = invoke("report", str(tmp_path / "report.json"), "--out", str(tmp_path),
                          "--format", ",".join(FORMATS), "--policy", "baseline", "--fail-on", "never")
    assert code == 0, output


# ---------------------------------------------------------------- signature manifests


@pytest.fixture()
def signed(tmp_path: Path) -> Path:
    (tmp_path / "model.bin").write_bytes(b"weights")
    write_signing_keypair(tmp_path / "key.pem")
    sign_paths([tmp_path / "model.bin"], load_private_key(tmp_path / "key.pem"), tmp_path / "model.sig.json")
    return tmp_path


def test_a_deeply_nested_manifest_is_refused_not_a_recursion_error(signed: Path) -> None:
    manifest = signed / "model.sig.json"
    envelope = json.loads(manifest.read_text(encoding="utf-8"))
    manifest.write_text(json.dumps({**envelope, "x": 0}).replace("0}", DEEP + "}"), encoding="utf-8")
    code, output = invoke("verify", str(manifest), "--pubkey", str(signed / "key.pem.pub"))
    assert code == 1 and "nested deeper than the limit of 64" in output, output
    assert len(output.strip().splitlines()) == 1


def test_a_signed_statement_nested_deep_or_out_of_range_is_malformed(signed: Path) -> None:
    manifest = signed / "model.sig.json"
    envelope = json.loads(manifest.read_text(encoding="utf-8"))
    key = load_private_key(signed / "key.pem")
    for payload, message in ((DEEP.encode(), "nested deeper"), (b'{"_type": 1e400}', "beyond the range")):
        sig = base64.b64encode(key.sign(pae(PAYLOAD_TYPE, payload))).decode()
        forged = {**envelope, "payload": base64.b64encode(payload).decode(),
                  "signatures": [{**envelope["signatures"][0], "sig": sig}]}
        manifest.write_text(json.dumps(forged), encoding="utf-8")
        result = verify_manifest(manifest, signed / "key.pem.pub")
        assert result.signature_valid and not result.verified
        assert "signed statement is malformed" in result.problem and message in result.problem


# ---------------------------------------------------------------- --out, checked before any work


@pytest.fixture()
def no_audit(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*args: object, **kwargs: object) -> None:
        raise AssertionError("the audit ran although --out cannot take the reports")

    monkeypatch.setattr("guard.audit.audit", boom)


def _out_cases(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    a_file = tmp_path / "a-file"
    a_file.write_text("x", encoding="utf-8")
    folder_in_the_way = tmp_path / "taken"
    (folder_in_the_way / "report.html").mkdir(parents=True)
    return {
        "a file": (a_file, f"--out {a_file} is a file, not a folder"),
        "under a file": (a_file / "sub", f"{a_file} is a file, not a folder"),
        "a folder where report.html goes": (folder_in_the_way,
                                            "report.html is a folder, where the html report goes"),
    }


@pytest.mark.usefixtures("no_audit")
def test_audit_checks_out_before_any_attack(tmp_path: Path) -> None:
    for out, message in _out_cases(tmp_path).values():
        line = one_line_error(*invoke("audit", "--demo", "--out", str(out)))
        assert message in line, line


def test_report_checks_out_before_reading(tmp_path: Path) -> None:
    for out, message in _out_cases(tmp_path).values():
        line = one_line_error(*invoke("report", str(tmp_path / "absent.json"), "--out", str(out)))
        assert message in line, line


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write into any folder")
@pytest.mark.usefixtures("no_audit")
def test_an_unwritable_out_folder_is_refused_up_front(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    line = one_line_error(*invoke("audit", "--demo", "--out", str(locked / "reports")))
    assert f"the folder {locked} is not writable" in line


def test_a_write_that_fails_late_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_reports(two_audits(), tmp_path, ["json"])

    def full(*args: object, **kwargs: object) -> list[Path]:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("guard.reports.write_reports", full)
    line = one_line_error(*invoke("report", str(tmp_path / "report.json"), "--out", str(tmp_path / "o")))
    assert "cannot write the reports to" in line and "No space left on device" in line


# ---------------------------------------------------------------- one run id per set


def run_ids(folder: Path) -> dict[str, str | None]:
    """The run id each file of the set carries, read the way each format is meant to be read."""
    ids: dict[str, str | None] = {}
    report = json.loads((folder / "report.json").read_text(encoding="utf-8"))
    ids["report.json"] = (report["audits"][0] if "audits" in report else report).get("run_id")
    sarif = json.loads((folder / "report.sarif").read_text(encoding="utf-8"))
    ids["report.sarif"] = sarif["runs"][0].get("properties", {}).get("guard.run_id")
    suites = ET.parse(folder / "report.junit.xml").getroot().findall("testsuite")
    junit = {p.get("value") for s in suites for p in s.iter("property") if p.get("name") == "guard.run_id"}
    ids["report.junit.xml"] = junit.pop() if len(junit) == 1 else None
    for name in ("report.html", "report.md"):
        match = RUN_ID_MARKERS[name].search((folder / name).read_bytes())
        ids[name] = match.group(1).decode() if match else None
    return ids


def test_every_file_of_a_set_carries_one_run_id(tmp_path: Path) -> None:
    write_reports(two_audits(), tmp_path / "a", FORMATS)
    write_reports(two_audits(), tmp_path / "b", FORMATS)
    a, b = run_ids(tmp_path / "a"), run_ids(tmp_path / "b")
    assert len(set(a.values())) == 1 and None not in a.values()
    assert set(a.values()) != set(b.values())
    assert [audit["run_id"] for audit in read_json(tmp_path / "a" / "report.json")] == [a["report.json"]] * 2


def test_a_set_left_mixed_by_a_killed_run_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "out"
    write_reports(two_audits(), out, FORMATS)
    before = run_ids(out)

    def killed(*args: object, **kwargs: object) -> str:
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:  # the second run dies once report.json is written
        patch.setattr(html_module, "render_html", killed)
        with pytest.raises(KeyboardInterrupt):
            write_reports(two_audits(), out, FORMATS)
    after = run_ids(out)
    assert after["report.json"] != before["report.json"] and after["report.html"] == before["report.html"]
    line = one_line_error(*invoke("report", str(out / "report.json"), "--out", str(tmp_path / "again")))
    assert f"{out / 'report.html'} is from run {before['report.html']}" in line
    assert f"from run {after['report.json']}: a run was interrupted" in line
    assert not (tmp_path / "again").exists()
    # Re-rendering every other format in place mends the set, under report.json's run id.
    code, output = invoke("report", str(out / "report.json"), "--out", str(out),
                          "--format", "html,sarif,junit,md")
    assert code == 0, output
    assert set(run_ids(out).values()) == {after["report.json"]}
    code, output = invoke("report", str(out / "report.json"), "--out", str(tmp_path / "again"))
    assert code == 0, output


def test_re_rendering_keeps_the_run_id_and_old_sets_still_read(tmp_path: Path) -> None:
    out = tmp_path / "out"
    write_reports(two_audits(), out, FORMATS)
    ids = run_ids(out)
    for args in (("--format", "html"), ("--format", "md", "--policy", "baseline", "--fail-on", "never")):
        code, output = invoke("report", str(out / "report.json"), "--out", str(out), *args)
        assert code == 0, output
        assert run_ids(out) == ids
    stale = tmp_path / "stale"
    write_reports(two_audits(), stale, ["json"])
    (stale / "report.md").write_text("## Guard audit\n", encoding="utf-8")  # from a Guard before run ids
    with pytest.raises(GuardInputError, match="report.md is from a run before run ids"):
        check_set(stale / "report.json", read_json(stale / "report.json")[0]["run_id"])
    check_set(stale / "report.json", None)  # a report.json before run ids: nothing to compare
