"""Reports: report.json round trips and refuses what it cannot read; report.html is safe,
self-contained, and matches a stored page once volatile parts are blanked.

Regenerate the stored files after an intended change to the page or the JSON with
``GUARD_REGEN_EXPECTED=1 pytest tests/test_reports.py`` and review the diff.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from report_fixtures import EVIL, FRAMEWORKS, two_audits

from guard.errors import ConfigError, GuardInputError
from guard.evidence import SCHEMA
from guard.reports import read_json, render_html, write_html, write_json, write_reports
from guard.reports.html import build_report
from guard.reports.json_report import audit_dicts, plain, report_schema
from guard.reports.svg import Point, Series, line_chart, nice_ticks
from guard.reports.text import Estimate, estimate
from guard.serialization import audit_result_from_dict
from guard.stats import Metric

DATA = Path(__file__).parent / "data"
EXPECTED_HTML = DATA / "expected_report.html"
STORED_JSON = DATA / "report_two_targets.json"
REGENERATE = os.environ.get("GUARD_REGEN_EXPECTED") == "1"


def scrub(html: str) -> str:
    """Blank what differs between identical audits: versions, dates, durations, platform."""
    html = re.sub(r'(class="volatile">)[^<]*(<)', r"\1…\2", html)
    return re.sub(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)?", "DATE", html)


# ---------------------------------------------------------------- JSON


def test_one_target_is_exactly_the_audit_dict(tmp_path: Path) -> None:
    result = two_audits()[0]
    write_json([result], tmp_path / "report.json")
    document = json.loads((tmp_path / "report.json").read_text(encoding="utf-8"))
    assert list(document) == ["schema", "target", "evidence", "findings", "environment"]
    assert document == plain(result.to_dict())
    assert read_json(tmp_path / "report.json") == [document]


def test_several_targets_are_listed_under_audits(tmp_path: Path) -> None:
    results = two_audits()
    write_json(results, tmp_path / "report.json")
    document = json.loads((tmp_path / "report.json").read_text(encoding="utf-8"))
    assert document["schema"] == SCHEMA
    assert [a["target"]["name"] for a in document["audits"]] == ["digits-cnn", EVIL]
    assert read_json(tmp_path / "report.json") == audit_dicts(results)


def test_json_is_deterministic_and_rounded(tmp_path: Path) -> None:
    write_json(two_audits(), tmp_path / "a.json")
    write_json(two_audits(), tmp_path / "b.json")
    text = (tmp_path / "a.json").read_text(encoding="utf-8")
    assert text == (tmp_path / "b.json").read_text(encoding="utf-8")
    assert text.endswith("}\n") and '\n  "audits": [' in text
    ci = json.loads(text)["audits"][0]["evidence"][0]["metrics"]["robust_accuracy"]["ci95"]
    raw = Metric.proportion(300, 500).ci95  # the first evidence: FGSM at eps 0.05
    assert raw is not None and ci == [float(f"{v:.6g}") for v in raw] != list(raw)


def test_plain_handles_numpy_tuples_and_non_finite() -> None:
    np = pytest.importorskip("numpy")
    value = {"eps": np.float32(0.1), "n": np.int64(3), "shape": (1, 8), "bad": float("nan"),
            "arr": np.array([0.5, 1.0]), "ok": True}
    assert plain(value) == {"eps": 0.1, "n": 3, "shape": [1, 8], "bad": None,
                            "arr": [0.5, 1.0], "ok": True}
    with pytest.raises(TypeError, match="object"):
        plain({"x": object()})


def test_stored_report_of_schema_1_still_reads_and_renders() -> None:
    """A guard.audit/1 document written before findings carried waivers must keep working.

    The stored file is never regenerated: it stands for reports users already have.
    """
    audits = read_json(STORED_JSON)
    assert [a["target"]["name"] for a in audits] == ["digits-cnn", EVIL]
    html = render_html(audits)
    assert "robustness.min_pgd" in html and "EU AI Act Art. 15" in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    again = [audit_result_from_dict(a).to_dict() for a in audits]
    assert render_html(audit_dicts([audit_result_from_dict(a) for a in again])) == html


def test_reports_match_the_shipped_json_schema(tmp_path: Path) -> None:
    jsonschema = pytest.importorskip("jsonschema", reason="jsonschema is in the dev extra")
    validator = jsonschema.Draft202012Validator(report_schema())
    validator.check_schema(report_schema())
    write_json(two_audits(), tmp_path / "two.json")
    write_json(two_audits()[:1], tmp_path / "one.json")
    for path in (tmp_path / "two.json", tmp_path / "one.json", STORED_JSON):
        document = json.loads(path.read_text(encoding="utf-8"))
        assert [e.message for e in validator.iter_errors(document)] == [], path.name
    one = json.loads((tmp_path / "one.json").read_text(encoding="utf-8"))
    one["findings"][0]["status"] = "maybe"
    one["evidence"][0]["metrics"]["robust_accuracy"]["ci95"] = [0.1]
    assert len(list(validator.iter_errors(one))) == 2
    assert not validator.is_valid({"schema": "guard.audit/2", "target": {"name": "x"}, "evidence": [],
                                   "findings": [], "environment": {}})


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "expected a JSON object"),
        ('{"target": {}}', "no 'schema' field"),
        ('{"schema": "guard.audit/99", "target": {}}', "unknown report schema 'guard.audit/99'"),
        ('{"schema": "guard.audit/1", "audits": [{"schema": "other/1"}]}', "unknown report schema"),
        ('{"schema": "guard.audit/1", "evidence": []}', "target must be an object"),
        ('{"schema": "guard.audit/1", "target": {"name": "t"}, "evidence": [{"probe": "p", "params": {}, '
         '"flags": [], "metrics": {"acc": {"value": "high"}}}], "findings": [], "environment": {}}',
         "$.evidence[0].metrics.acc.value must be a number or null"),
    ],
)
def test_read_json_refuses_with_a_clear_message(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "report.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(GuardInputError, match=re.escape(message)) as info:
        read_json(path)
    assert str(path) in str(info.value)


def test_read_json_missing_file(tmp_path: Path) -> None:
    with pytest.raises(GuardInputError, match="cannot read report"):
        read_json(tmp_path / "absent.json")


# ---------------------------------------------------------------- HTML


def test_html_is_self_contained_and_escapes_attacker_strings() -> None:
    html = render_html(audit_dicts(two_audits()))
    assert "http://" not in html and "https://" not in html
    assert "<script" not in html.lower()
    assert "<img" not in html and "<link" not in html and "@import" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&#34;&gt;&lt;img src=x onerror=alert(2)&gt;" in html
    assert "0.2 &lt;b&gt;" in html  # flag details are text too
    assert "DP training lands in 2.3 &lt;i&gt;" in html  # and waiver reasons
    assert "Content-Security-Policy" in html and "default-src 'none'" in html
    # an evasion chart per target, then ROC, extraction and detection charts for the first
    assert html.count("<svg") == 5 and html.count("<polyline") == 6
    assert "@media print" in html and "section.target { break-before: page; }" in html


def test_html_says_what_a_reader_needs() -> None:
    html = render_html(audit_dicts(two_audits()))
    assert ("Under L-inf PGD with eps 0.1 (the strongest of 2 attacks), accuracy falls "
            "from 98% to 41% (95% CI 37–45%, n=500).") in html
    assert "No policy was applied in this audit" in html  # second target has no findings
    assert "Validity warnings" in html and "non_monotone" in html
    assert "Wilson" in html and "2.5.1" in html  # honest-numbers note, environment
    # executive summary, view by regulation, remediation, waivers, digests
    assert "Executive summary" in html and "Most severe failing controls" in html
    assert "GDPR: General Data Protection Regulation" in html
    assert "<strong>GDPR Art. 32</strong> Security of processing" in html
    assert "32(1)(b): Ongoing confidentiality, integrity, availability and resilience" in html
    assert "Train adversarially (PGD adversarial training, TRADES)" in html
    assert "valid until 2031-12-31" in html and "expired on 2024-01-31" in html
    assert "dpo@example.com" in html and "waivers.yaml:3" in html
    assert "sha256:" + "ab" * 32 in html
    for title in ("Membership inference ROC curve", "Model extraction fidelity against query budget",
                  "Detection results"):
        assert title in html


def test_view_models_format_numbers() -> None:
    report = build_report(audit_dicts(two_audits()))
    first = report.targets[0]
    assert [(r.attack, r.eps) for r in first.rows][:3] == [("FGSM", "0.05"), ("FGSM", "0.1"),
                                                           ("FGSM", "0.2")]
    pgd = first.rows[4]
    assert (pgd.robust.value, pgd.robust.interval, pgd.n) == ("41.0%", "36.8–45.4%", "500")
    assert first.rows[2].flags == ("non_monotone",)
    assert [o.probe for o in report.targets[1].other] == ["inference.membership"]
    assert estimate("mean_queries", {"value": 1234.5, "n": 3}).value == "1234"
    assert estimate("robust_accuracy", {"value": 0.9996}).value == "99.96%"
    assert estimate("robust_accuracy", {"value": None}).value == "not measured"
    assert estimate("fidelity", {"value": 0.94, "ci95": [0.91, 0.96]}) == Estimate("94.0%", "91.0–96.0%")


def test_executive_summary_counts_and_orders_worst_first() -> None:
    summary = build_report(audit_dicts(two_audits())).summary
    assert (summary.verdict.word, summary.verdict.sentence) == (
        "fail", "1 of 2 targets failed at least one control.")
    assert [(c.label, c.n) for c in summary.statuses] == [
        ("fail", 2), ("error", 1), ("waived", 1), ("not assessed", 1), ("pass", 1)]
    assert [(c.label, c.n) for c in summary.severities] == [
        ("critical", 1), ("high", 2), ("medium", 0), ("low", 0), ("info", 0)]
    assert [w.control for w in summary.worst] == ["GRD-SUP-01", "GRD-EVA-01", "GRD-EXT-01"]
    assert [r.verdict.word for r in summary.rows] == ["fail", "not judged"]
    first = summary.rows[0].verdict.sentence
    assert first == ("3 controls failed, 1 of them could not be evaluated, the most severe rated critical "
                     "(1 control waived; 1 control not assessed for want of evidence).")


def test_view_by_regulation_groups_articles_in_the_regulations_order() -> None:
    compliance = build_report(audit_dicts(two_audits())).targets[0].compliance
    assert [r.key for r in compliance.regulations] == list(FRAMEWORKS)
    gdpr = compliance.regulations[0]
    assert [a.label for a in gdpr.articles] == ["GDPR Art. 5", "GDPR Art. 9", "GDPR Art. 25", "GDPR Art. 32"]
    art32 = gdpr.articles[-1]
    assert [(row.ref, row.control, row.status) for row in art32.rows] == [
        ("32(1)(b)", "GRD-SUP-01", "fail"), ("32(1)(b)", "GRD-EVA-01", "fail"),
        ("32(1)(d)", "GRD-EVA-02", "pass")]
    assert art32.rows[1].evidence == "evasion.fgsm, evasion.pgd"
    ccpa = compliance.regulations[1]
    assert [a.label for a in ccpa.articles] == ["CCPA §1798.81.5", "CCPA §1798.150"]
    assert [f.control for f in compliance.findings][:2] == ["GRD-SUP-01", "GRD-EVA-01"]
    assert [w.control for w in compliance.waivers] == ["GRD-SUP-01", "GRD-PRV-01"]


def test_chart_hooks_render_only_with_their_evidence() -> None:
    audit = audit_dicts(two_audits())[0]
    charts = build_report([audit]).targets[0].evidence_charts
    assert len(charts) == 3
    roc, extraction, detection = (str(c.svg) for c in charts)
    assert "chance (an attacker who guesses)" in roc and roc.count("<circle") == 5 + 1  # and the legend's
    assert "AUC 0.5321 [95% CI 0.5–0.56]" in charts[0].caption
    assert "extraction.copycat: 10000 queries: 94.0%" in extraction
    assert detection.count("<rect") == 2  # the two rates; the threshold is not a rate
    bare = {**audit, "evidence": [e for e in audit["evidence"] if e["probe"].startswith("evasion.")]}
    assert build_report([bare]).targets[0].evidence_charts == ()
    curve = {"probe": "extraction.knockoff", "params": {"surrogate": "resnet"}, "metrics": {},
             "curves": [{"name": "fidelity", "x": "queries", "y": "fidelity",
                         "points": [{"x": 100, "value": 0.5}, {"x": 1000, "value": 0.8}]}]}
    charts = build_report([{**bare, "evidence": [curve]}]).targets[0].evidence_charts
    assert len(charts) == 1 and "extraction.knockoff (resnet)" in str(charts[0].svg)


def test_findings_missing_keys_still_render() -> None:
    """A finding with only a control id (an older or foreign writer) renders in every part."""
    findings = [{"control": "X-1"}, {"control": "X-2", "status": "odd"}]
    audit = {**audit_dicts(two_audits())[1], "findings": findings}
    report = build_report([audit])
    assert [f.control for f in report.targets[0].compliance.findings] == ["X-1", "X-2"]
    assert "X-1" in render_html([audit])


def test_html_matches_stored_page() -> None:
    html = scrub(render_html(audit_dicts(two_audits())))
    if REGENERATE:
        EXPECTED_HTML.write_text(html, encoding="utf-8")
    assert html == EXPECTED_HTML.read_text(encoding="utf-8")


def test_empty_audit_list_renders() -> None:
    assert "No targets were audited" in render_html([])


# ---------------------------------------------------------------- SVG


def test_svg_escapes_labels_and_draws_bands() -> None:
    chart = line_chart(
        [Series(EVIL, (Point(0.0, 0.9, 0.85, 0.95), Point(0.1, 0.5, 0.45, 0.55))),
         Series("partial", (Point(0.1, 0.4, 0.3, 0.5), Point(0.2, 0.2)))],
        title="t & t", x_label="eps", y_label="acc",
    )
    assert "<script" not in chart and "&lt;script&gt;" in chart and "t &amp; t" in chart
    assert chart.count("<polygon") == 1 and chart.count('class="error-bar"') == 1
    assert "no data" in line_chart([], title="", x_label="", y_label="")


def test_nice_ticks() -> None:
    assert nice_ticks(0.2) == (0.0, 0.05, 0.1, 0.15, 0.2)
    assert nice_ticks(8.0) == (0.0, 2.0, 4.0, 6.0, 8.0)
    assert nice_ticks(0.0) == (0.0, 1.0)


# ---------------------------------------------------------------- write_reports


def test_write_reports_writes_atomically_over_old_reports(tmp_path: Path) -> None:
    (tmp_path / "report.json").write_text("old", encoding="utf-8")
    (tmp_path / "report.html").write_text("old", encoding="utf-8")
    paths = write_reports(two_audits(), tmp_path, ["json", "html"])
    assert paths == [tmp_path / "report.json", tmp_path / "report.html"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html", "report.json"]
    again = render_html(read_json(tmp_path / "report.json"))
    assert (tmp_path / "report.html").read_text(encoding="utf-8") == again


def test_write_reports_rejects_unknown_format_before_writing(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="'docx'"):
        write_reports(two_audits(), tmp_path, ["json", "docx"])
    assert list(tmp_path.iterdir()) == []


def test_write_html_creates_folders(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "report.html"
    write_html(audit_dicts(two_audits()[:1]), path)
    assert path.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
