"""report.md: a short summary to post as a pull-request comment.

Per target: the robustness headline (the sentence the HTML page leads with), the counts by
status, a table of the controls that failed or were waived with their references, and one
line of evasion results. The full story stays in the HTML report; this is what a reviewer
reads before deciding to open it.

Strings an attacker may choose (target names, model classes, probe ids, control ids from a
user's own pack) are set in code spans, inside which Markdown renders nothing: no link, no
image, no HTML, no @mention, no issue reference. Prose (titles, details, waiver reasons) is
escaped instead, character by character; see :func:`escape`. Both first spell out control,
bidi and other invisible characters (:func:`guard.textsafe.visible`): a right-to-left override
in a file name is shown as ``<U+202E>``, not obeyed, and a newline cannot end a table row.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from guard.fsio import atomic_write_text
from guard.levels import FAILING
from guard.textsafe import visible

from .evasion import Measured, OtherRow, headline, ordered, other_row, parse
from .extraction import extraction_view
from .findings import WAIVED, finding_records, status_counts, worst_first
from .json_report import run_id_of
from .membership import Shown, membership_view
from .pii import pii_view
from .text import estimate, text
from .views import in_privacy_section

EVASION_SHOWN = 12
ROWS_SHOWN = 40
"""Findings listed per target: a pull-request comment has a size limit (65,536 characters on
GitHub) and a reviewer reads the worst few; the rest are in the HTML report."""
_ESCAPED = re.compile(r"([\\`*_\[\]|~])")
_WWW = re.compile(r"(www)\.", re.IGNORECASE)
_WORD_JOINER = "\u2060"


def escape(value: str) -> str:
    """Prose made inert in GitHub-flavoured Markdown, kept on one line and readable.

    The characters that open inline constructs mid-line get a backslash: no emphasis, code,
    link, image, footnote, strikethrough or table-cell break (``(``, ``.`` or ``-`` do
    nothing without a ``[`` before them or at the start of a line, which a value never is).
    ``<``, ``>`` and ``&`` become entities: no HTML, no ``<url>`` autolink. ``://`` and
    ``www.`` are broken up so GitHub's bare-URL autolinks do not fire. ``@`` and ``#`` get an
    invisible word joiner after them, because GitHub turns ``@name`` and ``#12`` into
    mentions and links after Markdown has run, where no backslash reaches. Control and bidi
    characters are spelled out (``\\n``, ``<U+202E>``), so a value stays on one line and cannot
    start a new block or a new table row; other runs of white space become one space.
    """
    one_line = " ".join(visible(value).split())
    escaped = one_line.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    escaped = _ESCAPED.sub(r"\\\1", escaped).replace("://", "\\:\\/\\/")
    escaped = _WWW.sub(r"\1\\.", escaped)
    return escaped.replace("@", "@" + _WORD_JOINER).replace("#", "#" + _WORD_JOINER)


def code(value: str, in_table: bool = False) -> str:
    """``value`` as an inline code span: shown verbatim, interpreted as nothing.

    The fence is one backtick longer than the longest run inside, padded with spaces so a
    value that starts or ends with a backtick still closes. In a table, ``|`` must be
    escaped even inside code (GitHub splits cells before it parses spans). Control and bidi
    characters are spelled out first, as in :func:`escape`.
    """
    one_line = " ".join(visible(value).split()) or " "
    longest = max((len(run) for run in re.findall(r"`+", one_line)), default=0)
    fence = "`" * (longest + 1)
    body = one_line.replace("|", "\\|") if in_table else one_line
    pad = " " if body.startswith("`") or body.endswith("`") or longest else ""
    return f"{fence}{pad}{body}{pad}{fence}"


def render_markdown(audits: Sequence[Mapping[str, Any]]) -> str:
    """The comment for audits given as report.json dicts."""
    run_id = run_id_of(audits)
    lines = ([f"<!-- guard-run-id: {run_id} -->"] if run_id else []) + ["## Guard audit", ""]
    if not audits:
        lines.append("No targets were audited.")
    for audit in audits:
        lines += _target(audit)
    lines.append("Full report: report.html (evidence, charts, view by regulation, reproducibility).")
    return "\n".join(lines) + "\n"


def write_markdown(audits: Sequence[Mapping[str, Any]], path: Path) -> None:
    """Write report.md atomically."""
    atomic_write_text(Path(path), render_markdown(audits))


def _target(audit: Mapping[str, Any]) -> list[str]:
    target: Mapping[str, Any] = audit.get("target") or {}
    model: Mapping[str, Any] = target.get("model") or {}
    measured = [parse(ev) for ev in audit.get("evidence") or ()]
    sweeps = ordered([m for m in measured if m.eps is not None])
    findings = finding_records(audit)
    framework = escape(text(target.get("framework", "unknown")))
    about = f"{framework} model {code(text(model.get('class', 'unknown')))}"
    lines = [f"### {code(text(target.get('name', 'unnamed target')))}", "", about, "",
             f"**{escape(headline(sweeps))}**", ""]
    if findings:
        counts = status_counts(findings)
        tally = (escape(f"{n} {s.replace('_', ' ')}") for s, n in counts.items())
        lines.append("Controls: " + " · ".join(tally))
        lines.append("")
        shown = [f for f in worst_first(findings) if f.status in FAILING or f.status == WAIVED]
        if shown:
            lines += ["| Status | Severity | Control | References |", "| --- | --- | --- | --- |"]
            lines += [_row(f.status_label, f.severity, f.control, f.title, f.reference_labels)
                      for f in shown[:ROWS_SHOWN]]
            lines.append("")
            if len(shown) > ROWS_SHOWN:
                more = len(shown) - ROWS_SHOWN
                lines += [f"And {more} more failing or waived controls in the HTML report.", ""]
    else:
        lines += ["No policy was applied: the evidence has not been judged against any control.", ""]
    if sweeps:
        lines += [f"Evasion: {_evasion_line(sweeps)}", ""]
    lines += _privacy_lines(measured)
    others = [other_row(m) for m in measured if m.eps is None and not m.probe.startswith("supply_chain.")
              and not in_privacy_section(m)]
    if others:
        lines += [f"Other measurements: {_other_line(others)}", ""]
    return lines


def _lower_first(title: str) -> str:
    """A column title inside a sentence: ``advantage``, but ``AUC`` and ``TPR at 1% FPR``."""
    return title if title[1:2].isupper() else title[:1].lower() + title[1:]


def _shown(name: str, cell: Shown) -> str:
    if cell.missing:
        return f"{name} not measured ({cell.missing})"
    return f"{name} {cell.value}" + (f" [{cell.interval}]" if cell.interval else "")


def _privacy_lines(measured: Sequence[Measured]) -> list[str]:
    """Membership inference per attack (with its flags), each extraction copy's budget sentence
    (the page's), and each scanned file's personal data and re-identification figures."""
    lines = []
    membership = membership_view(measured)
    if membership:
        attacks = []
        for row in membership.rows[:EVASION_SHOWN]:
            pairs = list(zip(membership.columns, row.cells, strict=True))[:4]
            cells = ", ".join(_shown(_lower_first(title), cell) for title, cell in pairs)
            flags = "".join(f" ⚠ {code}" for code in row.flags)
            attacks.append(escape(f"{row.attack}: {cells}{flags}"))
        lines += [f"Membership inference: {' · '.join(attacks)}", ""]
        lines += [f"⚠ {escape(f'{w.title} ({w.where}): {w.detail}')}" + "  " for w in membership.warnings]
        lines += [""] if membership.warnings else []
    extraction = extraction_view(measured)
    if extraction and extraction.copies:
        lines += ["Model extraction: " + " · ".join(escape(c.reading) for c in extraction.copies), ""]
    pii = pii_view(measured)
    for scan in pii.files if pii else ():
        quasi, *figures = scan.risk
        risk = "; ".join(_shown(_lower_first(r.label), r.value) for r in figures)
        lines += [f"Personal data: {code(scan.path)}: {escape(scan.summary)}; "
                  f"{escape(f'{risk} (quasi-identifiers: {quasi.value.value})')}", ""]
    return lines


def _other_line(rows: Sequence[OtherRow]) -> str:
    """Each other probe's measurement as ``noise.gaussian (sigma=0.1): noisy accuracy 93.3%
    [84.1–97.4%] n=60``."""
    parts = []
    for row in rows[:EVASION_SHOWN]:
        metrics = "; ".join(f"{name} {est.value}" + (f" [{est.interval}]" if est.interval else "")
                            + (f" n={est.n}" if est.n else "") for name, est in row.metrics)
        where = f"{row.probe} ({row.params})" if row.params else row.probe
        parts.append(escape(f"{where}: {metrics}"))
    if len(rows) > EVASION_SHOWN:
        parts.append(f"and {len(rows) - EVASION_SHOWN} more in the HTML report")
    return " · ".join(parts)


def _row(status: str, severity: str, control: str, title: str, refs: Sequence[str]) -> str:
    cells = [escape(status), escape(severity), f"{code(control, in_table=True)} {escape(title)}",
             escape("; ".join(refs)) if refs else "none"]
    return "| " + " | ".join(cells) + " |"


def _evasion_line(sweeps: Sequence[Measured]) -> str:
    """Every attack at every budget as ``PGD L-inf eps 0.1: 41.0% [36.8–45.4%] n=500``."""
    parts = []
    for m in sweeps[:EVASION_SHOWN]:
        est = estimate("robust_accuracy", m.metrics["robust_accuracy"])
        interval = f" [{est.interval}]" if est.interval else ""
        n = f" n={est.n}" if est.n else ""
        where = escape(f"{m.attack} {m.norm} eps {m.eps:g}")
        parts.append(f"{where}: robust accuracy {est.value}{interval}{n}")
    if len(sweeps) > EVASION_SHOWN:
        parts.append(f"and {len(sweeps) - EVASION_SHOWN} more in the HTML report")
    return " · ".join(parts)
