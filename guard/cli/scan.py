"""``guard scan PATH...``: find code a model file would run when loaded, without loading it.

Exit codes (computed by the group in :mod:`guard.cli`): 0 when no finding reaches
``--fail-on``, 1 when one does, 2 for usage errors, 3 for an internal error.
"""

from __future__ import annotations

from pathlib import Path

import click

from guard.cli.options import FAIL_ON, FAIL_ON_HELP
from guard.errors import ExitCode

FORMATS = ("table", "json", "sarif")


@click.command("scan")
@click.argument("paths", nargs=-1, required=True,
                type=click.Path(exists=True, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True,
              help="Report format: a table, JSON, or SARIF 2.1.0 for code scanning.")
@click.option("--fail-on", type=FAIL_ON, default="high", show_default=True, help=FAIL_ON_HELP)
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the report to this file (atomically) instead of standard output.")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=120.0,
              show_default=True, help="Seconds allowed per file before it is reported unscanned.")
def scan(paths: tuple[Path, ...], fmt: str, fail_on: str, output: Path | None, timeout: float) -> int:
    """Statically scan model files (pickle, PyTorch, joblib, NumPy, zip, tar) for unsafe imports.

    Folders are scanned recursively. Nothing is ever unpickled.
    """
    from guard.defenses.scan import ScanLimits, Severity, scan_paths
    from guard.defenses.scan.report import render_json, render_sarif, table

    results = scan_paths(paths, ScanLimits(timeout_s=timeout))
    if fmt == "table":
        text = _table_text(table(results), output is None)
    else:
        text = render_json(results) if fmt == "json" else render_sarif(results)
    if output is None:
        if fmt != "table":
            click.echo(text)
    else:
        from guard.fsio import atomic_write_text
        from guard.textsafe import visible

        atomic_write_text(output, text if text.endswith("\n") else text + "\n")
        click.echo(f"wrote {visible(str(output))}", err=True)
    if fail_on == "never":
        return int(ExitCode.OK)
    threshold = Severity.parse(fail_on)
    failing = any(r.fails(threshold) for r in results)
    return int(ExitCode.FINDINGS if failing else ExitCode.OK)


def _table_text(tbl: object, to_terminal: bool) -> str:
    """Print the table to the terminal (returns ""), or render it to plain text for a file."""
    import io
    import sys

    from rich.console import Console

    from guard.cli.output import interactive

    if to_terminal:
        width = None if interactive(sys.stdout) else 140
        Console(highlight=False, soft_wrap=False, width=width, file=sys.stdout).print(tbl)
        return ""
    buffer = io.StringIO()
    Console(file=buffer, width=140, no_color=True, highlight=False).print(tbl)
    return buffer.getvalue()
