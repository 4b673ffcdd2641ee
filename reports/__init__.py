"""Renderers of an audit: report.json (the record) and a self-contained report.html.

Reports never compute: they lay out the Evidence and Findings an audit produced. Both
formats render from the same rounded plain dicts, so an HTML page written during the audit
and one re-rendered later from report.json are the same page.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from guard.errors import ConfigError
from guard.evidence import AuditResult

from .html import render_html, write_html
from .json_report import audit_dicts, read_json, write_json

__all__ = ["FORMATS", "read_json", "render_html", "write_html", "write_json", "write_reports"]


def _json(results: Sequence[AuditResult], dicts: list[dict[str, Any]], path: Path) -> None:
    write_json(results, path)


def _html(results: Sequence[AuditResult], dicts: list[dict[str, Any]], path: Path) -> None:
    write_html(dicts, path)


_Writer = Callable[[Sequence[AuditResult], list[dict[str, Any]], Path], None]
_WRITERS: dict[str, tuple[str, _Writer]] = {
    "json": ("report.json", _json),
    "html": ("report.html", _html),
}
FORMATS = tuple(_WRITERS)


def write_reports(
    results: Sequence[AuditResult], out_dir: Path, formats: Sequence[str]
) -> list[Path]:
    """Write each requested format into ``out_dir``; return the paths in the order asked.

    Every format name is checked before anything is written, so a typo cannot leave a
    half-written set of reports behind. Each file is written atomically.
    """
    unknown = [f for f in formats if f not in _WRITERS]
    if unknown:
        raise ConfigError(
            f"unknown report format {unknown[0]!r}; choose from {', '.join(FORMATS)}"
        )
    out_dir = Path(out_dir)
    dicts = audit_dicts(results)
    written = []
    for fmt in dict.fromkeys(formats):
        name, write = _WRITERS[fmt]
        path = out_dir / name
        write(results, dicts, path)
        written.append(path)
    return written
