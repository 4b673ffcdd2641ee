"""SARIF, JUnit XML, Markdown and PDF: each parsed back the way its consumer reads it.

SARIF is validated against the OASIS 2.1.0 schema (vendored in reports/data), JUnit is parsed
with ElementTree (and junitparser where installed), Markdown is rendered with markdown-it to
prove attacker-chosen names stay text, and the PDF is printed by real Chromium where installed.
"""

from __future__ import annotations

import dataclasses
import html
import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from report_fixtures import EVIL, two_audits

from guard import textsafe
from guard.errors import ConfigError
from guard.evidence import AuditResult, Finding
from guard.reports import FILE_NAMES, FORMATS, OFFLINE_FORMATS, check_formats, write_reports
from guard.reports.json_report import audit_dicts, report_schema
from guard.reports.junit import clean, render_junit
from guard.reports.markdown import code, escape, render_markdown
from guard.reports.pdf import CHROMIUM_ENV, find_chromium, write_pdf
from guard.reports.sarif import artifact_uri, sarif_document

SCHEMA_FILE = Path(__file__).parents[1] / "reports" / "data" / "sarif-schema-2.1.0.json"
CHROMIUM = find_chromium()
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (apt-get install "
                                                             "chromium); the pdf format needs it")


def audits() -> list[dict[str, Any]]:
    dicts: list[dict[str, Any]] = audit_dicts(two_audits())
    return dicts


# ---------------------------------------------------------------- SARIF


def test_sarif_is_valid_against_the_2_1_0_schema() -> None:
    jsonschema = pytest.importorskip("jsonschema", reason="jsonschema is in the dev extra")
    schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    document = sarif_document(audits())
    validator = jsonschema.Draft4Validator(schema, format_checker=jsonschema.FormatChecker())
    errors = sorted(validator.iter_errors(document), key=lambda e: list(e.path))
    assert errors == [], "\n".join(f"{list(e.path)}: {e.message}" for e in errors)
    broken = {**document, "runs": [{"tool": {"driver": {}}}]}  # the check is real: no driver name
    assert list(validator.iter_errors(broken))


def test_sarif_maps_findings_to_results_and_controls_to_rules() -> None:
    document = sarif_document(audits())
    assert document["version"] == "2.1.0" and len(document["runs"]) == 1
    run = document["runs"][0]
    driver = run["tool"]["driver"]
    assert (driver["name"], driver["version"]) == ("Guard", "0.1.0") and "informationUri" not in driver
    rules = {r["id"]: r for r in driver["rules"]}
    assert list(rules) == ["GRD-EVA-01", "GRD-EVA-02", "GRD-PRV-01", "GRD-SUP-01", "GRD-EXT-01", "GRD-DAT-01"]
    eva = rules["GRD-EVA-01"]
    assert eva["shortDescription"]["text"] == "Robust accuracy under evasion attack meets the threshold"
    assert eva["help"]["text"].startswith("Train adversarially")
    assert eva["properties"]["severity"] == "high" and eva["defaultConfiguration"]["level"] == "error"
    assert {"GDPR Art. 32(1)(b)", "EU AI Act Art. 15(5)", "OWASP-ML ML01", "ATLAS AML.T0015",
            "NIST AI RMF MEASURE 2.7"} <= set(eva["properties"]["tags"])
    assert "CCPA §1798.150(a)(1)" in rules["GRD-PRV-01"]["properties"]["tags"]
    results = {r["ruleId"]: r for r in run["results"]}
    assert sorted(results) == ["GRD-EVA-01", "GRD-EXT-01", "GRD-PRV-01", "GRD-SUP-01"]  # no pass, no n/a
    levels = {rule: r["level"] for rule, r in results.items()}
    assert levels == {"GRD-EVA-01": "error", "GRD-EXT-01": "error", "GRD-PRV-01": "warning",
                      "GRD-SUP-01": "error"}
    for rule, result in results.items():
        assert driver["rules"][result["ruleIndex"]]["id"] == rule
    waived = results["GRD-PRV-01"]
    assert waived["suppressions"] == [{
        "kind": "external", "status": "accepted",
        "justification": "DP training lands in 2.3 <i> (approved by dpo@example.com; expires 2031-12-31)"}]
    assert "suppressions" not in results["GRD-SUP-01"]  # an expired waiver suppresses nothing
    assert results["GRD-SUP-01"]["baselineState"] == "new"
    location = results["GRD-EVA-01"]["locations"][0]
    assert location["physicalLocation"]["artifactLocation"]["uri"] == "models/digits%20cnn.safetensors"
    assert location["logicalLocations"][0]["name"] == "digits-cnn"


def test_sarif_without_an_artifact_names_the_target_logically_and_levels_follow_severity() -> None:
    findings = [Finding(f"C-{s}", "fail", s, f"control {s}", references={"owasp_ml": ["ML01"]})
                for s in ("critical", "high", "medium", "low", "info")]
    result = AuditResult(target={"name": EVIL}, evidence=[], environment={}, findings=findings)
    run = sarif_document(audit_dicts([result]))["runs"][0]
    assert [r["level"] for r in run["results"]] == ["error", "error", "warning", "note", "note"]
    location = run["results"][0]["locations"][0]
    assert "physicalLocation" not in location and location["logicalLocations"][0]["name"] == EVIL


def test_artifact_uris() -> None:
    assert artifact_uri("models/a b.pt") == "models/a%20b.pt"
    assert artifact_uri("/srv/m#1.pt") == "file:///srv/m%231.pt"
    assert artifact_uri("C:\\models\\m.pt") == "file:///C:/models/m.pt"


# ---------------------------------------------------------------- JUnit


def test_junit_has_a_suite_per_target_and_a_case_per_control() -> None:
    root = ET.fromstring(render_junit(audits()))
    assert root.tag == "testsuites" and root.get("tests") == "6"
    suites = root.findall("testsuite")
    assert [s.get("name") for s in suites] == ["digits-cnn", EVIL]
    first = suites[0]
    assert (first.get("tests"), first.get("failures"), first.get("errors"), first.get("skipped")) == (
        "6", "2", "1", "2")
    cases = {c.get("name", "").split()[0]: c for c in first.findall("testcase")}
    assert len(cases) == 6 and {c.get("classname") for c in cases.values()} == {"guard.torch"}
    title = "Robust accuracy under evasion attack meets the threshold"
    assert cases["GRD-EVA-01"].get("name") == f"GRD-EVA-01 {title}"
    failure = cases["GRD-EVA-01"].find("failure")
    assert failure is not None and failure.get("type") == "high"
    assert failure.get("message", "").startswith("Required: robust accuracy at least 0.5")
    assert "Remediation: Train adversarially" in (failure.text or "")
    error = cases["GRD-EXT-01"].find("error")
    assert error is not None and "fidelity is null" in error.get("message", "")
    skipped = cases["GRD-DAT-01"].find("skipped")
    assert skipped is not None and skipped.get("message", "").startswith("evidence missing: no evidence from")
    waived = cases["GRD-PRV-01"].find("skipped")
    assert waived is not None
    assert waived.get("message") == "waived until 2031-12-31 by dpo@example.com: DP training lands in 2.3 <i>"
    assert list(cases["GRD-EVA-02"]) == [cases["GRD-EVA-02"].find("system-out")]  # a pass
    assert suites[1].get("tests") == "0"


def test_junit_survives_characters_xml_cannot_hold() -> None:
    name = "bad\x1bname\x00<&>"
    result = AuditResult(target={"name": name}, evidence=[], environment={},
                         findings=[Finding("C\x07", "fail", "high", "t\x0bitle", detail="d\x01")])
    root = ET.fromstring(render_junit(audit_dicts([result])))
    assert root.find("testsuite").get("name") == clean(name) == "bad\ufffdname\ufffd<&>"  # type: ignore[union-attr]


def test_junit_reads_with_junitparser_where_installed(tmp_path: Path) -> None:
    junitparser = pytest.importorskip("junitparser", reason="junitparser is optional; ElementTree "
                                                            "checks above cover the format")
    path = tmp_path / "report.junit.xml"
    path.write_text(render_junit(audits()), encoding="utf-8")
    xml = junitparser.JUnitXml.fromfile(str(path))
    suites = list(xml)
    assert [s.name for s in suites] == ["digits-cnn", EVIL]
    assert suites[0].tests == 6 and suites[0].failures == 2 and suites[0].skipped == 2


# ---------------------------------------------------------------- Markdown


def _html_of(markdown: str) -> str:
    markdown_it = pytest.importorskip("markdown_it", reason="markdown-it-py comes with rich")
    return str(markdown_it.MarkdownIt("commonmark").enable("table").enable("strikethrough").render(markdown))


def test_markdown_summarises_each_target() -> None:
    text = render_markdown(audits())
    assert "### `digits-cnn`" in text
    assert ("**Under L-inf PGD with eps 0.1 (the strongest of 2 attacks), accuracy falls from 98% to 41% "
            "(95% CI 37–45%, n=500).**") in text
    assert "Controls: 2 fail · 1 error · 1 waived · 1 not assessed · 1 pass" in text
    rows = [line for line in text.splitlines() if line.startswith("| ") and "GRD-" in line]
    assert [re.search(r"GRD-\w+-\d+", r).group(0) for r in rows] == [  # type: ignore[union-attr]
        "GRD-SUP-01", "GRD-EVA-01", "GRD-EXT-01", "GRD-PRV-01"]
    assert "GDPR Art. 32(1)(b); EU AI Act Art. 15(4)" in rows[1]
    assert "PGD L-inf eps 0.1: robust accuracy 41.0% [36.8–45.4%] n=500" in text
    html = _html_of(text)
    assert html.count("<table>") == 1 and html.count("<tr>") == 5


def test_markdown_keeps_attacker_strings_as_text() -> None:
    html = _html_of(render_markdown(audits()))
    assert "<script" not in html and "<img" not in html and "<a " not in html
    assert "<code>&lt;script&gt;alert(1)&lt;/script&gt;</code>" in html
    assert "<code>&quot;&gt;&lt;img src=x onerror=alert(2)&gt;</code>" in html


def test_markdown_lists_the_worst_rows_and_counts_the_rest() -> None:
    findings = [Finding(f"C-{i:02d}", "fail", "high", f"control {i}") for i in range(45)]
    result = AuditResult(target={"name": "many"}, evidence=[], environment={}, findings=findings)
    text = render_markdown(audit_dicts([result]))
    assert sum(1 for line in text.splitlines() if line.startswith("| fail")) == 40
    assert "And 5 more failing or waived controls in the HTML report." in text
    assert "No evasion attack was measured on this target." in text


@pytest.mark.parametrize("evil", [
    "[click](https://evil.example)", "![x](https://evil.example/x.png)", "<b>bold</b>", "**loud**",
    "a | b", "`tick` and ``two``", "line\n# heading\n- item", "<https://evil.example>", "x_y_z *a*",
    "www.evil.example", "https://evil.example/p", "@everyone #12", "&lt;already&gt;",
])
def test_markdown_escape_and_code_render_as_the_same_text(evil: str) -> None:
    one_line = " ".join(textsafe.visible(evil).split())  # a newline is shown as \n, not a space
    for rendered in (_html_of(f"x {escape(evil)} y"), _html_of(f"x {code(evil)} y")):
        assert "<a " not in rendered and "<img" not in rendered and "<b>" not in rendered
        assert "<strong>" not in rendered and "<em>" not in rendered and "<h1>" not in rendered
        assert "<li>" not in rendered and rendered.count("<p>") == 1
    visible = re.sub(r"<[^>]+>", "", _html_of(f"x {escape(evil)} y")).strip()
    assert html.unescape(visible).replace("\u2060", "") == f"x {one_line} y"
    table = _html_of(f"| a | b |\n| --- | --- |\n| {code(evil, in_table=True)} | {escape(evil)} |")
    assert table.count("<td>") == 2


# ---------------------------------------------------------------- PDF and the registry


def test_formats_and_file_names() -> None:
    assert FORMATS == ("json", "html", "sarif", "junit", "md", "pdf")
    assert OFFLINE_FORMATS == ("json", "html", "sarif", "junit", "md")
    assert FILE_NAMES == {"json": "report.json", "html": "report.html", "sarif": "report.sarif",
                          "junit": "report.junit.xml", "md": "report.md", "pdf": "report.pdf"}


def test_write_reports_writes_every_offline_format(tmp_path: Path) -> None:
    paths = write_reports(two_audits(), tmp_path, list(OFFLINE_FORMATS))
    assert [p.name for p in paths] == [FILE_NAMES[f] for f in OFFLINE_FORMATS]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in paths)  # no temp files left


def test_pdf_without_chromium_is_a_clear_error_before_anything_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.delenv(CHROMIUM_ENV, raising=False)
    with pytest.raises(ConfigError, match=r"^pdf needs Chromium: apt-get install chromium$"):
        check_formats(["md", "pdf"])
    with pytest.raises(ConfigError, match=r"^pdf needs Chromium: apt-get install chromium$"):
        write_reports(two_audits(), tmp_path / "out", ["json", "pdf"])
    assert not (tmp_path / "out").exists()
    monkeypatch.setenv(CHROMIUM_ENV, str(tmp_path / "no-such-browser"))
    with pytest.raises(ConfigError, match="GUARD_CHROMIUM is set but is not an executable file"):
        write_pdf(audits(), tmp_path / "report.pdf")


def test_pdf_reports_a_failing_browser_in_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "chromium"
    fake.write_text("#!/bin/sh\necho 'cannot open display' >&2\nexit 3\n", encoding="utf-8")
    fake.chmod(0o755)
    monkeypatch.setenv(CHROMIUM_ENV, str(fake))
    with pytest.raises(ConfigError, match=r"could not print the report \(exit code 3\): cannot open display"):
        write_pdf(audits(), tmp_path / "report.pdf")
    assert not (tmp_path / "report.pdf").exists()


@needs_chromium
def test_pdf_is_printed_by_chromium_with_a_page_per_target(tmp_path: Path) -> None:
    path = write_reports(two_audits(), tmp_path, ["pdf"])[0]
    data = path.read_bytes()
    assert data.startswith(b"%PDF-") and data.rstrip().endswith(b"%%EOF")
    pages = len(re.findall(rb"/Type\s*/Page\b(?!s)", data))
    assert pages >= 3  # the summary, then each target starting on a page of its own
    assert [p.name for p in tmp_path.iterdir()] == ["report.pdf"]


# ---------------------------------------------------------------- with the real policy engine


def test_every_format_renders_the_policy_engines_findings(tmp_path: Path) -> None:
    """The hand-written findings above mirror the engine's; this checks the engine's own."""
    from guard.policies import evaluate

    results = [dataclasses.replace(r, findings=evaluate(r, ["gdpr", "ccpa", "eu-ai-act", "baseline"]))
               for r in two_audits()]
    assert all(r.findings for r in results)
    write_reports(results, tmp_path, list(OFFLINE_FORMATS))
    jsonschema = pytest.importorskip("jsonschema", reason="jsonschema is in the dev extra")
    record = json.loads((tmp_path / "report.json").read_text(encoding="utf-8"))
    assert [e.message for e in jsonschema.Draft202012Validator(report_schema()).iter_errors(record)] == []
    document = json.loads((tmp_path / "report.sarif").read_text(encoding="utf-8"))
    schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    assert list(jsonschema.Draft4Validator(schema).iter_errors(document)) == []
    suites = ET.parse(tmp_path / "report.junit.xml").getroot().findall("testsuite")
    assert [int(s.get("tests", "0")) for s in suites] == [len(r.findings) for r in results]
    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert "View by regulation" in page and "GDPR Art. 32" in page
