"""Renderers of an audit: one record (report.json), every format CI and people need.

Reports never compute: they lay out the Evidence and Findings an audit produced. Every
format renders from the same rounded plain dicts that report.json holds, so a report written
during the audit and one re-rendered later from report.json are the same report.

=========  ====================  ==========================================================
format     file                  for
=========  ====================  ==========================================================
json       report.json           the record (schema ``guard.audit/1``); re-rendered by
                                 ``guard report``
html       report.html           people: self-contained page, executive summary, view by
                                 regulation, charts, reproducibility
sarif      report.sarif          code-scanning dashboards (SARIF 2.1.0)
junit      report.junit.xml      CI test reporters (a test case per control)
md         report.md             a pull-request comment
pdf        report.pdf            filing; the HTML printed by headless Chromium (optional)
=========  ====================  ==========================================================
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from guard.errors import ConfigError
from guard.evidence import AuditResult

from .html import render_html, write_html
from .json_report import audit_dicts, new_run_id, read_json, write_json, write_json_audits
from .junit import write_junit
from .markdown import write_markdown
from .pdf import INSTALL_HINT, find_chromium, write_pdf
from .sarif import write_sarif

__all__ = ["FILE_NAMES", "FORMATS", "OFFLINE_FORMATS", "check_formats", "read_json", "render_html",
           "write_html", "write_json", "write_reports"]


def _from_dicts(write: Callable[[list[dict[str, Any]], Path], None]) -> _Writer:
    def writer(results: Sequence[AuditResult], dicts: list[dict[str, Any]], path: Path) -> None:
        write(dicts, path)

    return writer


_Writer = Callable[[Sequence[AuditResult], list[dict[str, Any]], Path], None]
_WRITERS: dict[str, tuple[str, _Writer]] = {
    "json": ("report.json", _from_dicts(write_json_audits)),
    "html": ("report.html", _from_dicts(write_html)),
    "sarif": ("report.sarif", _from_dicts(write_sarif)),
    "junit": ("report.junit.xml", _from_dicts(write_junit)),
    "md": ("report.md", _from_dicts(write_markdown)),
    "pdf": ("report.pdf", _from_dicts(write_pdf)),
}
FORMATS = tuple(_WRITERS)
FILE_NAMES = {fmt: name for fmt, (name, _) in _WRITERS.items()}
OFFLINE_FORMATS = tuple(f for f in FORMATS if f != "pdf")
"""The formats that need nothing outside Python (``pdf`` needs Chromium): what a caller
writing "every format" by default should write."""


def check_formats(formats: Sequence[str]) -> None:
    """Raise :class:`ConfigError` for an unknown format name, or ``pdf`` without Chromium.

    A command that runs an audit calls this before attacking anything, so a typo or a
    missing browser costs a second, not the whole audit.
    """
    unknown = [f for f in formats if f not in _WRITERS]
    if unknown:
        raise ConfigError(
            f"unknown report format {unknown[0]!r}; choose from {', '.join(FORMATS)}"
        )
    if "pdf" in formats and find_chromium() is None:
        raise ConfigError(INSTALL_HINT)


def write_reports(
    results: Sequence[AuditResult], out_dir: Path, formats: Sequence[str], *, run_id: str | None = None
) -> list[Path]:
    """Write each requested format into ``out_dir``; return the paths in the order asked.

    Every format name, and Chromium for ``pdf``, is checked before anything is written, so
    a typo or a missing browser cannot leave a half-written set of reports behind. Each file
    is written atomically, and each carries ``run_id`` (a new one unless given), so a set
    that a run killed half-way leaves mixed is told apart (:func:`.json_report.check_set`).
    """
    check_formats(formats)
    out_dir = Path(out_dir)
    run = run_id or new_run_id()
    dicts = [{**audit, "run_id": run} for audit in audit_dicts(results)]
    written = []
    for fmt in dict.fromkeys(formats):
        name, write = _WRITERS[fmt]
        path = out_dir / name
        write(results, dicts, path)
        written.append(path)
    return written
