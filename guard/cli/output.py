"""What the terminal shows: progress while attacks run, a summary table at the end.

On a terminal, rich draws a progress bar; in CI (``CI`` set, or output not a terminal)
progress is plain lines so logs stay readable.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from guard.audit import Outcome
from guard.errors import ConfigError, GuardInputError
from guard.evidence import AuditResult
from guard.probes import ProgressFn
from guard.stats import format_rate
from guard.textsafe import plain, visible


def interactive(stream: object = None) -> bool:
    stream = sys.stderr if stream is None else stream
    return bool(getattr(stream, "isatty", lambda: False)()) and not os.environ.get("CI")


@contextmanager
def progress_reporter(target_name: str, enabled: bool | None = None) -> Iterator[ProgressFn]:
    """A progress callback for probes: a rich bar on a terminal, plain lines elsewhere.

    The target's name and the probe's label may be chosen by whoever supplied the model or
    the plug-in: both are printed through :func:`visible`, and the bar reads no markup.
    """
    fancy = interactive() if enabled is None else enabled
    name = visible(target_name)
    if not fancy:
        def lines(label: str, done: int, total: int) -> None:
            if done < total:
                click.echo(f"[guard] {name}: {visible(label)} ({done + 1}/{total})", err=True)

        yield lines
        return
    console = Console(stderr=True)
    with Progress(
        TextColumn("{task.description}", style="bold", markup=False),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as bar:
        tasks: dict[str, TaskID] = {}

        def fancy_fn(label: str, done: int, total: int) -> None:
            key = label.split(" ")[0]
            description = f"{name}: {visible(label)}"
            if key not in tasks:
                tasks[key] = bar.add_task(description, total=total)
            bar.update(tasks[key], completed=done, description=description)

        yield fancy_fn


def summary_table(result: AuditResult) -> Table:
    """The evasion measurements: one row per attack and epsilon.

    Names, probe ids and flag codes are :func:`plain` text: escapes spelled out, no markup.
    """
    doc = result.to_dict()
    target = doc["target"]
    table = Table(
        title=plain(f"{target['name']} ({target['framework']}, {target['model'].get('class', '?')})"),
        title_justify="left",
    )
    for col in ("attack", "norm", "eps", "clean acc [95% CI]", "robust acc [95% CI]", "n", "flags"):
        table.add_column(col, justify="right" if col in ("eps", "n") else "left")
    for e in doc["evidence"]:
        if "robust_accuracy" not in e["metrics"] or "eps" not in e["params"]:
            continue
        m = e["metrics"]
        flags = ", ".join(f["code"] for f in e["flags"]) or "-"
        table.add_row(
            plain(e["probe"].removeprefix("evasion.")),
            plain("L" + str(e["params"].get("norm"))),
            f"{e['params'].get('eps'):g}",
            format_rate(m.get("clean_accuracy")),
            format_rate(m.get("robust_accuracy")),
            plain(m.get("robust_accuracy", {}).get("n", "-")),
            plain(flags),
        )
    return table


def other_evidence_table(result: AuditResult) -> Table | None:
    """Every other model probe's measurements, generically: the probe, the parameters that
    key the measurement, and its metrics with their intervals."""
    from guard.probes import registry

    known = registry()
    rows = []
    for e in result.evidence:
        cls = known.get(e.probe)
        if "robust_accuracy" in e.metrics or (cls is not None and cls.stage == "artifact"):
            continue
        keys = cls.emits.key if cls is not None else ()
        setting = ", ".join(f"{k}={e.params[k]}" for k in keys if k in e.params) or "-"
        metrics = "; ".join(f"{name} {format_metric(m.to_dict())}" for name, m in e.metrics.items())
        rows.append((e.probe, setting, metrics or "-", ", ".join(f.code for f in e.flags) or "-"))
    if not rows:
        return None
    table = Table(title=plain(f"{result.target.get('name', '?')}: other measurements"),
                  title_justify="left")
    for col in ("probe", "setting", "metrics [95% CI]", "flags"):
        table.add_column(col)
    for row in rows:
        table.add_row(*(plain(cell) for cell in row))
    return table


def format_metric(metric: dict[str, object]) -> str:
    """A proportion (it has an interval within [0, 1]) as a percentage, other values as numbers."""
    value = metric.get("value")
    if not isinstance(value, int | float):
        return "n/a"
    ci = metric.get("ci95")
    if isinstance(ci, list | tuple) and len(ci) == 2 and 0 <= ci[0] <= value <= ci[1] <= 1:
        text = format_rate(metric)
        return text + (f" n={metric['n']}" if metric.get("n") is not None else "")
    if isinstance(ci, list | tuple) and len(ci) == 2 and -1 <= ci[0] <= value <= ci[1] <= 1 and ci[0] < 0:
        # a difference of two rates (an accuracy drop), whose interval may cross zero
        text = f"{value:+.1%} [{ci[0]:+.1%}, {ci[1]:+.1%}]"
        return text + (f" n={metric['n']}" if metric.get("n") is not None else "")
    text = f"{value:.4g}"
    ci = metric.get("ci95")
    if isinstance(ci, list | tuple) and len(ci) == 2:
        text += f" [{ci[0]:.4g}, {ci[1]:.4g}]"
    if metric.get("n") is not None:
        text += f" n={metric['n']}"
    return text


def _console() -> Console:
    return Console(highlight=False, soft_wrap=False, width=None if interactive(sys.stdout) else 120)


def print_summary(results: list[AuditResult]) -> None:
    console = _console()
    for result in results:
        table = summary_table(result)
        if table.row_count:
            console.print(table)
        other = other_evidence_table(result)
        if other is not None:
            console.print(other)


def print_findings(outcome: Outcome) -> None:
    """Counts by status, then every finding that is not a pass, worst first; the last
    column is the gate's decision (the one the exit code and the HTML verdict read)."""
    from guard import SEVERITY_ORDER

    console = _console()
    for result, gate in zip(outcome.results, outcome.gates(), strict=True):
        name = result.target.get("name", "?")
        counts: dict[str, int] = {}
        for f in result.findings:
            counts[f.status] = counts.get(f.status, 0) + 1
        summary = ", ".join(f"{n} {status.replace('_', ' ')}" for status, n in sorted(counts.items()))
        table = Table(title=plain(f"{name}: findings ({summary}); gate --fail-on {gate.fail_on}: "
                                  f"{'pass' if gate.passed else 'fail'}"), title_justify="left")
        for col in ("control", "severity", "status", "title", "fails the run"):
            table.add_column(col)
        gating = {id(f) for f in gate.failing}
        shown = sorted(
            (f for f in result.findings if f.status != "pass"),
            key=lambda f: (-SEVERITY_ORDER.index(f.severity) if f.severity in SEVERITY_ORDER else -99,
                           f.control),
        )
        for f in shown:
            table.add_row(plain(f.control), plain(f.severity), plain(f.status.replace("_", " ")),
                          plain(f.title), "yes" if id(f) in gating else "-")
        console.print(table)


# -- the report set: where it goes, and writing it ----------------------------------------------


def check_out(out: Path, formats: Sequence[str]) -> Path:
    """Refuse an ``--out`` that cannot take the reports, before any attack runs: a file where
    the folder should be or on the way to it, a folder Guard may not write, or a folder where
    one of the report files goes. Without this, the audit runs to the end and then fails."""
    from guard.reports import FILE_NAMES

    out = Path(out)
    try:
        if out.exists() and not out.is_dir():
            raise ConfigError(f"--out {out} is a file, not a folder")
        existing = out
        while not existing.exists() and existing != existing.parent:
            existing = existing.parent
        if not existing.is_dir():
            raise ConfigError(f"--out {out}: {existing} is a file, not a folder")
        if not os.access(existing, os.W_OK | os.X_OK):
            raise ConfigError(f"--out {out}: the folder {existing} is not writable")
        for fmt in dict.fromkeys(formats):
            target = out / FILE_NAMES[fmt]
            if target.is_dir():
                raise ConfigError(f"--out {out}: {target} is a folder, where the {fmt} report goes")
    except OSError as exc:
        raise ConfigError(f"--out {out}: {exc.strerror or exc}") from None
    return out


def write_report_set(results: Sequence[AuditResult], out: Path, formats: Sequence[str],
                     run_id: str | None = None) -> list[Path]:
    """Write the reports (one run id in every file), saying where; a write that fails for
    want of space or permission is one line, not an internal error."""
    from guard.reports import write_reports

    try:
        paths = write_reports(results, out, formats, run_id=run_id)
    except OSError as exc:
        raise GuardInputError(f"cannot write the reports to {out}: {exc.strerror or exc}") from None
    for path in paths:
        click.echo(f"wrote {path}")
    return paths
