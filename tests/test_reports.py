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

from guard.errors import ConfigError, GuardInputError
from guard.evidence import SCHEMA, AuditResult, Evidence, Finding, Flag
from guard.reports import read_json, render_html, write_html, write_json, write_reports
from guard.reports.html import build_report, estimate
from guard.reports.json_report import audit_dicts, plain
from guard.reports.svg import Point, Series, line_chart, nice_ticks
from guard.stats import Metric

DATA = Path(__file__).parent / "data"
EXPECTED_HTML = DATA / "expected_report.html"
STORED_JSON = DATA / "report_two_targets.json"
REGENERATE = os.environ.get("GUARD_REGEN_EXPECTED") == "1"
EVIL = "<script>alert(1)</script>"

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


def environment() -> dict[str, object]:
    return {"guard": "0.1.0", "python": "3.11.7", "torch": "2.5.1", "art": "1.20.1",
            "sklearn": "1.5.2", "numpy": "2.1.3", "seed": 0, "platform": "Linux-x86_64",
            "started_at": "2025-01-02T03:04:05+00:00", "duration_s": 12.5}


def audit(name: str, framework: str, model_class: str, with_findings: bool) -> AuditResult:
    evidence = [evasion_evidence(probe, eps, robust)
                for probe, counts in ROBUST_COUNTS.items()
                for eps, robust in zip((0.05, 0.1, 0.2), counts, strict=True)]
    evidence.append(Evidence(
        probe="inference.membership",
        params={"attack": "loss_threshold"},
        metrics={"attack_auc": Metric(0.5321, n=1000), "advantage": Metric.proportion(61, 1000)},
    ))
    findings = []
    if with_findings:
        findings = [
            Finding("robustness.min_pgd", "fail", "high", "PGD robust accuracy at eps 0.1",
                    detail="41% is below the required 60%", evidence=("evasion.pgd",),
                    references={"EU AI Act": ["Art. 15"]}, remediation="Adversarial training."),
            Finding("privacy.membership", "pass", "medium", "Membership inference advantage"),
        ]
    target = {"name": name, "framework": framework, "n_classes": 10,
              "model": {"class": model_class, "format": "safetensors"},
              "input": {"shape": [1, 8, 8], "dtype": "float32", "clip": [0.0, 1.0]},
              "n_eval": 600, "n_train": None, "artifact": None, "deployment": {}}
    return AuditResult(target=target, evidence=evidence, environment=environment(),
                       findings=findings)


def two_audits() -> list[AuditResult]:
    return [audit("digits-cnn", "torch", "DigitsCNN", with_findings=True),
            audit(EVIL, "sklearn", '"><img src=x onerror=alert(2)>', with_findings=False)]


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


def test_stored_report_still_reads_and_renders_the_same() -> None:
    """A report.json written by this schema version must keep rendering identically."""
    if REGENERATE:
        write_json(two_audits(), STORED_JSON)
    audits = read_json(STORED_JSON)
    assert audits == audit_dicts(two_audits())
    assert render_html(audits) == render_html(audit_dicts(two_audits()))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "expected a JSON object"),
        ('{"target": {}}', "no 'schema' field"),
        ('{"schema": "guard.audit/99", "target": {}}', "unknown report schema 'guard.audit/99'"),
        ('{"schema": "guard.audit/1", "audits": [{"schema": "other/1"}]}', "unknown report schema"),
        ('{"schema": "guard.audit/1", "evidence": []}', "target must be an object"),
        ('{"schema": "guard.audit/1", "target": {}, "evidence": [{"probe": "p", '
         '"metrics": {"acc": {"value": "high"}}}]}', "metrics.acc must be an object"),
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
    assert html.count("<svg") == 2 and html.count("<polyline") == 4
    assert "@media print" in html


def test_html_says_what_a_reader_needs() -> None:
    html = render_html(audit_dicts(two_audits()))
    assert ("Under L-inf PGD with eps 0.1 (the strongest of 2 attacks), accuracy falls "
            "from 98% to 41% (95% CI 37–45%, n=500).") in html
    assert "No policy was applied in this audit" in html  # second target has no findings
    assert "robustness.min_pgd" in html and "EU AI Act: Art. 15" in html
    assert "Validity warnings" in html and "non_monotone" in html
    assert "Wilson" in html and "2.5.1" in html  # honest-numbers note, environment


def test_view_models_format_numbers() -> None:
    report = build_report(audit_dicts(two_audits()))
    first = report.targets[0]
    assert [(r.attack, r.eps) for r in first.rows][:3] == [("FGSM", "0.05"), ("FGSM", "0.1"),
                                                           ("FGSM", "0.2")]
    pgd = first.rows[4]
    assert (pgd.robust.value, pgd.robust.interval, pgd.n) == ("41.0%", "36.8–45.4%", "500")
    assert first.rows[2].flags == ("non_monotone",)
    assert [o.probe for o in first.other] == ["inference.membership"]
    assert estimate("mean_queries", {"value": 1234.5, "n": 3}).value == "1234"
    assert estimate("robust_accuracy", {"value": 0.9996}).value == "99.96%"
    assert estimate("robust_accuracy", {"value": None}).value == "not measured"


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
    with pytest.raises(ConfigError, match="'pdf'"):
        write_reports(two_audits(), tmp_path, ["json", "pdf"])
    assert list(tmp_path.iterdir()) == []


def test_write_html_creates_folders(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "report.html"
    write_html(audit_dicts(two_audits()[:1]), path)
    assert path.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
