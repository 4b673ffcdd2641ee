"""The privacy part of the reports: membership inference (its ROC curve on log-log axes, the
null control, numbers that were not measured), model extraction (fidelity and the copy's
accuracy against the budget), the PII table per file; every format renders all three, and
hostile names, missing keys and odd values stay text or "not measured", never a crash.

The evidence is hand-made (``tests/privacy_report_fixtures.py``) in the shapes of issue 12's
contract, so these tests hold the reports to the contract, not to the probes' current output.
"""

from __future__ import annotations

import json
import math
import re
import xml.etree.ElementTree as ET
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from privacy_report_fixtures import (
    BIDI_COLUMN,
    EVIL_COLUMN,
    NULL_DETAIL,
    TOO_FEW_DETAIL,
    extraction,
    membership,
    membership_runs,
    pii_scan,
    privacy_audit,
)
from report_fixtures import detection_evidence

from guard.evidence import AuditResult, Evidence, Flag
from guard.reports import OFFLINE_FORMATS, read_json, render_html, write_reports
from guard.reports.axes import Log, LogAxis, log_axis
from guard.reports.extraction import ExtractionView
from guard.reports.html import build_report
from guard.reports.json_report import audit_dicts
from guard.reports.markdown import render_markdown
from guard.reports.membership import MembershipView, Shown
from guard.reports.pii import RiskFigure
from guard.reports.svg import Point, Series, log_chart
from guard.reports.views import TargetView
from guard.stats import Metric

NUMERIC_ATTRIBUTES = ("x", "y", "x1", "y1", "x2", "y2", "cx", "cy", "r", "width", "height")
NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:e[-+]?\d+)?")
GEOMETRY = {"points": re.compile(r"[-\d., ]*"), "d": re.compile(r"[MHV\-\d.,]*"),
            "viewBox": re.compile(r"[\d. ]+"), "transform": re.compile(r"rotate\([-\d. ]+\)")}


def audit_of(*evidence: Evidence) -> dict[str, Any]:
    result = AuditResult(target={"name": "t", "framework": "sklearn", "model": {}}, evidence=list(evidence),
                         environment={})
    audit: dict[str, Any] = audit_dicts([result])[0]
    return audit


def target_view(*evidence: Evidence) -> TargetView:
    return build_report([audit_of(*evidence)]).targets[0]


def membership_of(*evidence: Evidence) -> MembershipView:
    view = target_view(*evidence).membership
    assert view is not None
    return view


def extraction_of(*evidence: Evidence) -> ExtractionView:
    view = target_view(*evidence).extraction
    assert view is not None
    return view


def risk_of(scan: Evidence) -> dict[str, RiskFigure]:
    view = target_view(scan).pii
    assert view is not None
    return {f.label: f for f in view.files[0].risk}


def parsed(svg: str) -> ET.Element:
    """The chart as XML (it must be well-formed to be embedded), every coordinate finite."""
    root = ET.fromstring(svg)
    for element in root.iter():
        for name, value in element.attrib.items():
            if name in NUMERIC_ATTRIBUTES:
                assert math.isfinite(float(value)), (name, value)
            if name in GEOMETRY:
                assert GEOMETRY[name].fullmatch(value), (name, value)  # no nan, no inf
                assert all(math.isfinite(float(v)) for v in NUMBER.findall(value)), (name, value)
    return root


def tick_labels(root: ET.Element) -> list[str]:
    ticks = next(g for g in root.iter("g") if g.get("class") == "ticks")
    return [t.text or "" for t in ticks.iter("text")]


def legend_labels(root: ET.Element) -> list[str]:
    return [t.text or "" for g in root.iter("g") if (g.get("class") or "").startswith("legend")
            for t in g.iter("text")]


def section(html: str, start: str, end: str) -> str:
    return html[html.index(start):html.index(end, html.index(start))]


# ---------------------------------------------------------------- log axes


def test_log_axes_have_decade_ticks() -> None:
    assert [label for _, label in Log(LogAxis(-3, 0)).ticks] == ["0.1%", "1%", "10%", "100%"]
    assert [label for _, label in Log(LogAxis(-6, -4)).ticks] == ["0.0001%", "0.001%", "0.01%"]
    assert [label for _, label in Log(LogAxis(1, 4, percent=False)).ticks] == ["10", "100", "1,000", "10,000"]
    assert log_axis([50, 250, 1000], percent=False) == LogAxis(1, 3, False)
    assert log_axis([100, 1000], percent=False) == LogAxis(2, 3, False)
    assert log_axis([0.0, -5.0, math.nan, math.inf], percent=True) == LogAxis(0, 1, True)
    assert log_axis([1e-30], percent=True) == LogAxis(-6, -5, True)  # never below the floor
    huge = log_axis([5e-324, 1.0, 1e308], percent=False)
    assert huge.high_exp - huge.low_exp == 12 and len(Log(huge).ticks) == 13
    scale = Log(LogAxis(-3, 0))
    assert scale.fraction(0.01) == pytest.approx(1 / 3) and scale.fraction(1.0) == 1.0
    assert scale.fraction(0.0) == scale.fraction(-1.0) == scale.fraction(1e-9) == 0.0
    assert scale.below(0.0) and scale.below(1e-4) and not scale.below(0.001)
    with pytest.raises(ValueError, match="high_exp above low_exp"):
        LogAxis(0, 0)


def test_log_log_chart_places_points_by_their_logarithm() -> None:
    """Decades are equally spaced: FPR 1% lies a third of the way from 0.1% to 100%."""
    points = (Point(0.001, 0.001), Point(0.01, 0.1), Point(0.1, 0.5), Point(1.0, 1.0))
    axis = LogAxis(-3, 0)
    root = parsed(log_chart([Series("attack", points)], title="roc", x_label="fpr", y_label="tpr",
                            x_axis=axis, y_axis=axis, diagonal="chance"))
    circles = [c for c in root.iter("circle") if c.find("title") is not None]
    xs = [float(c.get("cx", "")) for c in circles]
    ys = [float(c.get("cy", "")) for c in circles]
    assert xs == pytest.approx([60.0, 246.7, 433.3, 620.0], abs=0.05)  # linear would put 1% at 65.6
    assert ys[1] == pytest.approx(30 + 250 / 3, abs=0.05)  # TPR 10%: two thirds up from 0.1%
    assert tick_labels(root) == ["0.1%", "1%", "10%", "100%"] * 2
    [diagonal] = [line for line in root.iter("line") if line.get("class") == "diagonal"]
    assert [diagonal.get(k) for k in ("x1", "y1", "x2", "y2")] == ["60.0", "280.0", "620.0", "30.0"]
    assert "chance" in legend_labels(root)


def test_a_zero_rate_is_drawn_on_the_floor_and_said_so() -> None:
    points = (Point(0.0, 0.0), Point(0.001, 0.0, 0.0, 0.004), Point(0.01, 0.05, 0.03, 0.08),
              Point(1.0, 1.0), Point(math.nan, 0.5), Point(0.5, math.inf), Point(0.2, 0.3, math.nan, 0.4))
    axis = LogAxis(-3, 0)
    svg = log_chart([Series("rmia", points)], title="roc", x_label="false-positive rate",
                    y_label="true-positive rate", x_axis=axis, y_axis=axis)
    root = parsed(svg)
    hollow = [c for c in root.iter("circle") if c.get("fill") == "#fff"]
    assert len(hollow) == 2  # (0, 0) and (0.001, 0); the NaN and infinite points are dropped
    tips = [c.findtext("title") or "" for c in hollow]
    assert "false-positive rate 0 drawn at the axis floor 0.1%; true-positive rate 0 drawn" in tips[0]
    assert "true-positive rate 0 drawn at the axis floor 0.1%" in tips[1]
    assert "false-positive rate" not in tips[1].split("(")[-1]
    assert "2 hollow points: below the axis floor" in svg
    assert svg.count('class="error-bar"') == 2  # the two finite intervals; the NaN one is dropped
    assert len([c for c in root.iter("circle") if c.find("title") is not None]) == 5


def test_the_membership_roc_is_log_log_with_every_attack() -> None:
    view = target_view(*membership_runs())
    assert view.membership is not None
    [chart] = view.membership.charts
    assert view.evidence_charts == (chart,)
    root = parsed(str(chart.svg))
    assert tick_labels(root) == ["0.1%", "1%", "10%", "100%"] * 2
    assert len(list(root.iter("polyline"))) == 3 and len(list(root.iter("polygon"))) == 1  # RMIA's band
    assert legend_labels(root) == ["chance (an attacker who guesses)", "RMIA", "loss threshold",
                                   "ART black-box", "3 hollow points: below the axis floor (a rate of 0 "
                                   "has no logarithm), drawn on it"]  # each curve's (0, 0)
    assert root.findtext("title") == "Membership inference ROC curve (log-log)"
    assert "RMIA: AUC 0.71 [95% CI 0.69–0.73]" in chart.caption
    assert "1 in" not in chart.caption  # two different numbers of non-members: no single floor claimed


def test_the_axis_floor_follows_the_non_members() -> None:
    """With 20,000 non-members the curve reaches 1 in 20,000: the axes start at 0.001%."""
    run = membership("rmia", params={"non_members": 20000, "lowest_fpr": 1e-4})
    [chart] = target_view(run).evidence_charts
    assert tick_labels(parsed(str(chart.svg)))[:2] == ["0.001%", "0.01%"]
    assert ("With 20,000 non-members, the lowest false-positive rate measurable is 1 in 20,000."
            in chart.caption)


# ---------------------------------------------------------------- membership in words


def test_a_metric_that_is_absent_is_not_measured_with_the_flags_words() -> None:
    view = membership_of(*membership_runs())
    rmia, loss, art = view.rows
    assert view.columns[3] == "TPR at 0.1% FPR"
    assert loss.cells[3] == Shown("not measured", "", "", TOO_FEW_DETAIL)
    assert rmia.cells[3] == Shown("3.1%", "2.2–4.4%", "1000") and art.cells[3].value == "0.1%"
    assert loss.flags == ("too_few_non_members",)
    html = render_html([audit_of(*membership_runs())])
    row = next(r for r in re.findall(r"<tr>.*?</tr>", html, re.DOTALL) if "<td><strong>loss threshold" in r)
    cell = re.findall(r"<td[^>]*>.*?</td>", row, re.DOTALL)[4]
    assert "not measured" in cell and TOO_FEW_DETAIL in cell and not re.search(r"\d%", cell.split("<br>")[0])
    md = render_markdown([audit_of(*membership_runs())])
    assert f"TPR at 0.1% FPR not measured ({TOO_FEW_DETAIL})" in md


def test_the_reading_never_invents_the_missing_number() -> None:
    loss = membership_runs()[1]
    view = membership_of(loss)
    first = view.reading[0]
    assert first.startswith("One attack was run: loss threshold.")
    assert "picked out 3.0% (95% CI 2.1–4.3%, n=1000) of those who were" in first
    assert f"At 1 in 1,000 false alarms it was not measured: {TOO_FEW_DETAIL}." in first
    assert "percentage points" in view.reading[1] and "15.0 percentage points" in view.reading[1]
    bare = Evidence(probe="privacy.membership_inference", params={"attack": "rmia"}, metrics={})
    reading = membership_of(bare).reading
    assert "true-positive rates at 1% and at 0.1% false positives were not measured" in reading[0]
    assert reading[1] == "Its membership advantage was not measured: not in this evidence."


def test_the_strongest_attack_leads_and_the_dpo_reads_what_it_means() -> None:
    view = membership_of(*membership_runs())
    assert view.reading[0].startswith("The strongest of the 2 attacks whose null control held is RMIA "
                                      "(2 reference models). Allowed "
                                      "to wrongly flag 1 in 100 people who were not in the training data, "
                                      "it correctly picked out 12.0% (95% CI 10.1–14.2%, n=1000)")
    assert "Carlini et al." in view.reading[-1] and "GDPR Art. 5(1)(f)" in view.reading[-1]
    assert "2 reference models; recipe sklearn clone and fit; lowest false-positive rate reported 0.1%" \
        == view.rows[0].settings
    assert view.rows[1].samples == "1,000 members, 500 non-members"
    assert view.rows[1].settings == "lowest false-positive rate reported 0.1%"  # no "0 reference models"


def test_without_a_recipe_the_missing_null_control_says_why() -> None:
    detail = "the PyTorch target has no training recipe (--trainer MODULE:FUNCTION): RMIA did not run"
    run = membership("loss_threshold", flags=[Flag("no_recipe", detail)])
    del run.metrics["null_auc"]
    view = membership_of(run)
    assert view.rows[0].cells[5] == Shown("not measured", missing=detail)
    assert view.warnings[0].title == "No training recipe: RMIA and the null control could not run"


def test_an_attack_whose_null_control_failed_does_not_lead_the_reading() -> None:
    loss, art = membership_runs()[1:]
    art.metrics["tpr_at_1pct_fpr"] = Metric.proportion(500, 1000)  # the highest, but not valid evidence
    view = membership_of(loss, art)
    assert view.reading[0].startswith("The only attack whose null control held is loss threshold.")
    assert "Its null control failed" not in " ".join(view.reading)


def test_a_failed_null_control_is_shown_before_the_numbers() -> None:
    runs = membership_runs()
    view = membership_of(*runs)
    assert [(w.code, w.where, w.detail) for w in view.warnings] == [
        ("too_few_non_members", "loss threshold", TOO_FEW_DETAIL), ("null_control_failed", "ART black-box",
                                                                    NULL_DETAIL)]
    assert view.warnings[1].title.startswith("The null control failed")
    assert "It failed for ART black-box: its numbers are not valid evidence of a leak" in view.null_control
    assert "It held, with no validity flag, for RMIA 0.503 (95% CI 0.47–0.54, n=1000)" in view.null_control
    html = render_html([audit_of(*runs)])
    part = section(html, "<h4>Membership inference", "</table>")
    assert part.index('<div class="warnings"') < part.index("<table")
    assert NULL_DETAIL in part and "⚠ null_control_failed" in part
    assert "Its null control failed" in " ".join(membership_of(runs[2]).reading)
    top = target_view(*runs).flags  # the page's validity warnings carry them too, titled
    assert [f.title.split(":")[0] for f in top] == ["Too few non-members to measure the lowest "
                                                    "false-positive rates", "The null control failed"]
    silent = membership("rmia", metrics={}, roc=())
    del silent.metrics["null_auc"]
    words = membership_of(silent).null_control
    assert "No null control was recorded for RMIA: read its numbers with care." in words


# ---------------------------------------------------------------- extraction


def test_extraction_draws_fidelity_and_accuracy_against_a_log_budget() -> None:
    from privacy_report_fixtures import extraction_runs

    view = extraction_of(*extraction_runs())
    [chart] = view.charts
    root = parsed(str(chart.svg))
    assert len(list(root.iter("polyline"))) == 4 and len(list(root.iter("polygon"))) == 4
    assert legend_labels(root) == ["extraction.copycat: fidelity", "extraction.copycat: copy's accuracy",
                                   "extraction.knockoff: fidelity", "extraction.knockoff: copy's accuracy"]
    assert tick_labels(root)[-3:] == ["10", "100", "1,000"]
    tips = [c.findtext("title") for c in root.iter("circle")]
    assert "extraction.copycat: 250 queries: 92.0% fidelity (95% CI 89.3–94.1%, n=500)" in tips
    assert "extraction.copycat: 250 queries: 90.0% accuracy of the copy (95% CI 87.1–92.3%, n=500)" in tips
    copycat, knockoff = view.copies
    assert copycat.reading == ("extraction.copycat: the copy first agrees with the model on at least 90% of "
                               "held-out inputs at 250 queries: 92.0% (95% CI 89.3–94.1%); its own "
                               "accuracy there is 90.0% (the model's: 97.0%).")
    assert "below 90%" in knockoff.reading and "the endpoint refused 100 of its queries" in knockoff.reading
    assert [r.budget for r in copycat.rows] == ["50", "100", "250", "500", "1,000"]
    assert [(r.queries, r.refused) for r in knockoff.rows] == [("90", "10"), ("900", "100")]
    assert knockoff.rows[1].flags == ("query_refused",)
    assert knockoff.settings == ("copy small-cnn; probability answers; queried over its HTTP endpoint; "
                                 "query pool of 1,000 inputs (eval); attack=knockoff")  # not the epochs
    assert [(w.code, w.where) for w in view.warnings] == [
        ("query_refused", "extraction.knockoff at 100 queries"),
        ("query_refused", "extraction.knockoff at 1,000 queries")]
    assert view.warnings[0].title.startswith("The endpoint stopped answering")
    html = render_html([audit_of(*extraction_runs())])
    part = section(html, "<h4>Model extraction", "</table>")
    assert part.index('<div class="warnings"') < part.index("<table") and "HTTP 429" in part


def test_extraction_copies_of_one_probe_are_told_apart_and_close_budgets_stay_linear() -> None:
    runs = [extraction("extraction.copycat", b, a, a, output=o) for o in ("labels", "probabilities")
            for b, a in ((100, 300), (300, 400), (500, 450))]
    view = extraction_of(*runs)
    assert [c.label for c in view.copies] == ["extraction.copycat (labels)",
                                              "extraction.copycat (probabilities)"]
    root = parsed(str(view.charts[0].svg))
    assert tick_labels(root)[-1] == "500" and "log scale" not in str(view.charts[0].svg)
    no_accuracy = extraction_of(*(replace(r, metrics={"fidelity": r.metrics["fidelity"]}) for r in runs[:3]))
    assert len(list(parsed(str(no_accuracy.charts[0].svg)).iter("polyline"))) == 1
    assert no_accuracy.copies[0].rows[0].accuracy.value == "not measured"


# ---------------------------------------------------------------- personal data


def test_the_pii_table_escapes_column_names_examples_and_bidi() -> None:
    html = render_html([audit_of(pii_scan())])
    part = section(html, "<h4>Personal data in the training data", "<h3>")
    assert "<script" not in html.lower() and "\u202e" not in html
    assert "<code>&lt;script&gt;alert(1)&lt;/script&gt;</code>" in part
    assert "<code>name&lt;U+202E&gt;gpj.exe</code>" in part and "J*** D**&lt;U+202E&gt;" in part
    assert "phone: &lt;b&gt;bold&lt;/b&gt;" in part and "<b>bold" not in part
    assert "j***@e******.com · a****@m***.org · k**@e******.net (+1 more)" in part
    assert '<code>diagnosis</code> <span class="badge fail">special category</span>' in part
    assert '<code>age</code> <span class="badge other">quasi-identifier: age</span>' in part
    assert "1 column where the scan found nothing" in part and "<code>score</code>" not in part
    assert "GDPR Recital 26" in part


def test_the_re_identification_figures_are_explained() -> None:
    view = target_view(pii_scan()).pii
    assert view is not None
    [scan] = view.files
    assert [c.column for c in scan.columns] == ["email", EVIL_COLUMN, BIDI_COLUMN, "diagnosis", "age"]
    email, evil, bidi, diagnosis, _ = scan.columns
    assert (email.kinds, email.cells, email.share) == ("email", "1,180 of 1,200", "98.3%")
    assert (evil.kinds, evil.share) == ("phone; national_id (nl.bsn)", "phone 3.1%, national_id 0.2%")
    assert evil.examples == "phone: +44 **** ***789 · phone: <b>bold</b> · national_id: NL*******12"
    assert bidi.cells == "12 of 1,200; 3 already masked" and not bidi.special
    assert (diagnosis.kinds, diagnosis.cells, diagnosis.special) == ("health", "1,200 of 1,200", True)
    figures = {f.label: f for f in scan.risk}
    assert figures["Quasi-identifiers"].value.value == "age, postcode, gender"
    assert figures["k-anonymity"].value.value == "1"
    assert figures["k-anonymity"].meaning.startswith("At least one row is the only one with its combination")
    assert figures["Rows unique on them"].value == Shown("12.5%", "10.7–14.5%", "1200")
    assert "Recital 26" in figures["Rows unique on them"].meaning
    assert figures["l-diversity of diagnosis"].value.value == "1"
    assert scan.summary == ("2,429 cells with personal data in 4 columns (email (1,180), health (1,200), "
                            "national_id (2), person_name (12), phone (37)), 1,200 of them "
                            "special-category (GDPR Art. 9), in 1,200 rows")
    safe = pii_scan(quasi_identifiers=["age"])
    safe.metrics.update(k_anonymity=Metric(5.0), unique_share=Metric.proportion(0, 1200),
                        l_diversity=Metric(3.0))
    figures = risk_of(safe)
    assert figures["k-anonymity"].meaning.startswith("Every combination of age is shared by at least 5 rows")
    assert figures["Rows unique on them"].meaning == "No row is unique on its quasi-identifiers."
    assert "takes at least 3 distinct values" in figures["l-diversity of diagnosis"].meaning


def test_missing_re_identification_figures_say_why() -> None:
    scan = pii_scan(quasi_identifiers=[])
    for name in ("k_anonymity", "unique_share", "l_diversity"):
        del scan.metrics[name]
    figures = risk_of(scan)
    assert figures["k-anonymity"].value == Shown("not measured", missing="no quasi-identifiers were named "
                                                 "or detected")
    assert figures["Quasi-identifiers"].value.value == "none named or detected"
    flagged = pii_scan()
    flagged.flags.append(Flag("quasi_identifiers_too_many", "12 quasi-identifiers: k not computed"))
    del flagged.metrics["k_anonymity"]
    figure = risk_of(flagged)["k-anonymity"]
    assert figure.value.missing == "12 quasi-identifiers: k not computed"
    assert "not measured" in render_html([audit_of(flagged)])


@pytest.mark.parametrize("columns", [
    {"email": {"kinds": {"email": 3}, "count": 3, "share": 0.5, "examples": "a***@b.c"}, "<i>x": ["phone"]},
    [{"column": "email", "kinds": ["email"], "count": 1180, "fraction": 0.98, "masked_examples": ["a***"]}],
    [{"name": "x", "kinds": {"email": {"count": "3", "fraction": "half", "examples": 5, "schemes": [1]}},
      "special_categories": ["health"], "pii_cells": None, "quasi_identifier": True}],
    ["email", {"name": "phone", "kinds": "phone", "count": "many"}, None, 7, {"count": 2}],
    5, None, "email", [[1, 2]], {"a": None},
])
def test_column_summaries_in_any_shape_render(columns: Any) -> None:
    html = render_html([audit_of(pii_scan(columns=columns))])
    assert "<h4>Personal data in the training data</h4>" in html and "<i>" not in html


def test_flat_column_summaries_read_their_keys() -> None:
    """Another scanner's shape: a mapping of column to a flat summary, or a list of them."""
    columns: Any = {"email": {"kinds": {"email": 3}, "count": 3, "share": 0.5, "examples": "a***@b.c"}}
    view = target_view(pii_scan(columns=columns)).pii
    assert view is not None
    [row] = view.files[0].columns
    assert (row.column, row.kinds, row.cells, row.share, row.examples) == ("email", "email", "3", "50.0%",
                                                                          "a***@b.c")
    columns = [{"column": "mail", "kinds": ["email", "phone"], "count": 10, "fraction": 0.25,
                "masked_examples": ["a***", "b***"], "special_category": True}]
    view = target_view(pii_scan(columns=columns)).pii
    assert view is not None
    [row] = view.files[0].columns
    assert (row.column, row.kinds, row.cells, row.share, row.examples, row.special) == (
        "mail", "email; phone", "10", "25.0%", "a*** · b***", True)


# ---------------------------------------------------------------- every format, and the page as a whole


def test_every_format_renders_all_three_kinds(tmp_path: Path) -> None:
    paths = write_reports([privacy_audit()], tmp_path, list(OFFLINE_FORMATS))
    assert sorted(p.name for p in paths) == sorted(["report.json", "report.html", "report.sarif",
                                                    "report.junit.xml", "report.md"])
    html = (tmp_path / "report.html").read_text(encoding="utf-8")
    for heading in ("Membership inference: who was in the training data",
                    "Model extraction: copying the model through its answers",
                    "Personal data in the training data"):
        assert f"<h4>{heading}</h4>" in html
    assert render_html(read_json(tmp_path / "report.json")) == html  # re-rendered from the record
    assert html.count("<svg") == 2 and "<script" not in html.lower()
    json.loads((tmp_path / "report.sarif").read_text(encoding="utf-8"))
    ET.parse(tmp_path / "report.junit.xml")
    md = (tmp_path / "report.md").read_text(encoding="utf-8")
    for start in ("Membership inference: RMIA: AUC 0.71", "Model extraction: extraction.copycat: the copy",
                  "Personal data: `data/train.csv`: 2,429 cells"):
        assert start in md
    assert "Other measurements" not in md and "masked" not in md


def test_the_terminal_summary_lists_the_privacy_evidence() -> None:
    from rich.console import Console

    from guard.cli.output import other_evidence_table

    table = other_evidence_table(privacy_audit())
    assert table is not None
    console = Console(width=250, record=True, color_system=None)
    console.print(table)
    shown = console.export_text()
    for probe in ("privacy.membership_inference", "extraction.knockoff", "data.pii_scan"):
        assert probe in shown


def test_markdown_keeps_privacy_strings_as_text() -> None:
    markdown_it = pytest.importorskip("markdown_it", reason="markdown-it-py comes with rich")
    hostile = membership("rmia\u202e<img src=x>", flags=[Flag("null_control_failed", "x | y\n# h")])
    md = render_markdown([audit_of(hostile, pii_scan(path="`a`|<b>.csv"))])
    html = str(markdown_it.MarkdownIt("commonmark").enable("table").render(md))
    assert "<img" not in html and "<b>" not in html and "<h1>" not in html and "\u202e" not in md
    assert "rmia&lt;U+202E&gt;&lt;img src=x&gt;" in html


def test_the_other_measurements_table_keeps_only_what_no_section_shows() -> None:
    curve_run = {"probe": "extraction.knockoff", "params": {"surrogate": "resnet"}, "metrics": {},
                 "flags": [], "curves": [{"name": "fidelity", "x": "queries", "y": "fidelity",
                             "points": [{"x": 100, "value": 0.5}, {"x": 1000, "value": 0.8}]}]}
    audit = audit_of(*membership_runs(), extraction("extraction.copycat", 100, 300, 290), pii_scan(),
                     detection_evidence())
    audit["evidence"].append(curve_run)
    view = build_report([audit]).targets[0]
    assert [o.probe for o in view.other] == ["detection.feature_squeezing", "extraction.knockoff"]
    assert len(view.evidence_charts) == 3 and len(view.detection) == 1
    assert "extraction.knockoff (resnet): fidelity" in str(view.evidence_charts[1].svg)


def test_evidence_without_params_or_metrics_renders_as_not_measured() -> None:
    bare = [Evidence(probe=p, params={}, metrics={}) for p in
            ("privacy.membership_inference", "extraction.copycat", "data.pii_scan")]
    view = target_view(*bare)
    assert view.membership is not None and view.extraction is not None and view.pii is not None
    assert all(c.value == "not measured" for c in view.membership.rows[0].cells)
    assert view.membership.charts == () and view.extraction.charts == ()
    assert view.extraction.copies[0].reading == ("extraction.copycat: fidelity was not measured at any "
                                                 "recorded budget.")
    assert view.pii.files[0].path == "unnamed file"
    html = render_html([audit_of(*bare)])
    assert "not measured" in html and "nan" not in html.lower()
    render_markdown([audit_of(*bare)])


# ---------------------------------------------------------------- hostile evidence, generated

json_scalars = (st.none() | st.booleans() | st.integers(-(2**40), 2**40)
                | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=8)
                | st.sampled_from(["<script>x</script>", "\u202e", "a\nb", "rmia", "labels", "endpoint"]))
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(st.text(max_size=6), inner, max_size=3), max_leaves=6)
PARAM_NAMES = ["attack", "members", "non_members", "reference_models", "recipe", "lowest_fpr", "budget",
               "surrogate", "output", "source", "pool", "path", "columns", "quasi_identifiers", "sensitive",
               "kinds"]
METRIC_NAMES = ["auc", "advantage", "tpr_at_1pct_fpr", "tpr_at_0_1pct_fpr", "attack_accuracy", "null_auc",
                "fidelity", "accuracy", "queries", "refused", "pii_findings", "k_anonymity", "unique_share",
                "l_diversity", "rows_scanned", "columns_with_pii"]
numbers = st.floats(allow_nan=False, allow_infinity=False) | st.integers(-(2**40), 2**40)
pairs = st.tuples(numbers, numbers).map(list)
metrics = st.fixed_dictionaries({"value": st.none() | numbers},
                                optional={"n": st.integers(0, 10**9), "ci95": pairs})
points = st.lists(st.fixed_dictionaries({"x": numbers, "value": st.none() | numbers},
                                        optional={"ci95": pairs}), max_size=6)
evidence_dicts = st.fixed_dictionaries({
    "probe": st.sampled_from(["privacy.membership_inference", "extraction.copycat", "extraction.x<y>",
                              "data.pii_scan"]),
    "params": st.dictionaries(st.sampled_from(PARAM_NAMES) | st.text(max_size=5), json_values, max_size=6),
    "metrics": st.dictionaries(st.sampled_from(METRIC_NAMES), metrics, max_size=6),
    "flags": st.lists(st.fixed_dictionaries({"code": st.sampled_from(["null_control_failed",
                                                                       "too_few_non_members", "<b>"]),
                                             "detail": st.text(max_size=10)}), max_size=2),
    "curves": st.lists(st.fixed_dictionaries({"name": st.sampled_from(["roc", "fidelity", "accuracy"]),
                                              "x": st.just("x"), "y": st.just("y"), "points": points}),
                       max_size=2),
})


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(evidence=st.lists(evidence_dicts, min_size=1, max_size=4))
def test_any_privacy_evidence_the_schema_allows_renders(evidence: list[dict[str, Any]]) -> None:
    audit = {**audit_of(), "evidence": evidence}
    html = render_html([audit])
    assert "<script" not in html.lower() and "\u202e" not in html
    for svg in re.findall(r"<svg.*?</svg>", html, re.DOTALL):
        parsed(svg)
    render_markdown([audit])
