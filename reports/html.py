"""The self-contained HTML report: view models first (:mod:`.views`), then one Jinja2 template.

The template ships inside the package and renders with autoescape on: target names, model
classes, flag details and finding text may be chosen by whoever supplied the model and must
never become markup. The only markup passed through unescaped is the SVG charts, which
:mod:`guard.reports.svg` escapes itself. The page also carries a Content-Security-Policy
that forbids every script and every fetch, so even a missed escape could neither run code
nor call out from a reader's browser. Autoescape stops markup but not a right-to-left
override, which would make ``model<U+202E>gnp.exe<U+202C>.skops`` read as ``modelexe.png``:
every value the template prints first passes through :func:`guard.textsafe.visible`
(Jinja's ``finalize``), which spells control, bidi and invisible characters out.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup

from guard.fsio import atomic_write_text
from guard.textsafe import visible

from .json_report import run_id_of
from .views import ReportView, build_report

__all__ = ["ReportView", "build_report", "render_html", "write_html"]


def render_html(results: Sequence[Mapping[str, Any]]) -> str:
    """The report page for audits given as report.json dicts (see :func:`read_json`)."""
    template = _environment().get_template("report.html.j2")
    return template.render(report=build_report(results), run_id=run_id_of(results))


def write_html(results: Sequence[Mapping[str, Any]], path: Path) -> None:
    """Render and write atomically: a reader never sees half a page."""
    atomic_write_text(Path(path), render_html(results))


@functools.cache
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("guard.reports", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        finalize=_shown,
    )


def _shown(value: Any) -> Any:
    """What ``{{ value }}`` prints: text with its invisible characters spelled out.

    Markup (the SVG charts, a macro's output) was built from values that went through here
    or through :func:`guard.reports.svg.escape`, and is left alone; numbers print as they are.
    """
    if isinstance(value, str) and not isinstance(value, Markup):
        return visible(value)
    return value
