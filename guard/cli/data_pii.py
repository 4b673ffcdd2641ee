"""``guard data scan`` and ``guard data mask``: personal data in a table, and a masked copy.

Exit codes (mapped by :class:`guard.cli.GuardGroup`): ``scan`` exits 0 when the table holds no
personal or special-category data (and, with ``--min-k``, is that k-anonymous), 1 when it
does, 2 for bad input (a missing, unreadable, ragged or non-UTF-8 file, a column named that
it lacks); ``mask`` exits 0 when a scan of the copy finds nothing, 1 when it still finds
something (only some columns were named, say), 2 for bad input, a key file of the wrong
size included. Tables are CSV, JSON lines or Parquet (``pip install guard-ml[parquet]``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import click

from guard.errors import ExitCode

if TYPE_CHECKING:
    from guard.defenses.pii.rewrite import MaskResult
    from guard.defenses.pii.scan import ScanReport

FILE = click.Path(path_type=Path, dir_okay=False)
COLUMNS_HELP = "comma-separated, or the option repeated"


def _names(values: tuple[str, ...]) -> list[str] | None:
    """``--quasi-identifiers age,zip`` and ``--quasi-identifiers age --quasi-identifiers zip``."""
    if not values:
        return None
    names = [n.strip() for v in values for n in v.split(",")]
    if any(not n for n in names):
        from guard.errors import ConfigError

        raise ConfigError(f"an empty column name in {', '.join(values)!r}")
    return list(dict.fromkeys(names))


@contextmanager
def _progress(enabled: bool | None, label: str) -> Iterator[Callable[[int, int], None]]:
    """Bytes read, on stderr: a bar on a terminal (or with --progress), else nothing."""
    from guard.cli.output import interactive
    from guard.textsafe import visible

    show = interactive() if enabled is None else enabled
    if not show:
        yield lambda done, total: None
        return
    if not interactive():
        marks: set[int] = set()

        def lines(done: int, total: int) -> None:
            tenth = 10 * done // max(total, 1)
            if tenth not in marks:
                marks.add(tenth)
                click.echo(f"[guard] {visible(label)}: {10 * tenth}% of {total} bytes", err=True)

        yield lines
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    with Progress(TextColumn("{task.description}", markup=False), BarColumn(), DownloadColumn(),
                  TransferSpeedColumn(), TimeRemainingColumn(), console=Console(stderr=True),
                  transient=True) as bar:
        task = bar.add_task(visible(label), total=None)

        def fancy(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield fancy


@click.command("scan", short_help="Find personal data in a table, and how identifiable its rows are.")
@click.argument("path", metavar="FILE", type=FILE)
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="A summary per column, or everything as JSON.")
@click.option("--quasi-identifiers", "qi", multiple=True, metavar="COLS",
              help=f"Columns that are quasi-identifiers ({COLUMNS_HELP}); default: detected "
              "(age, birth dates and years, postcodes, sex or gender).")
@click.option("--sensitive", metavar="COL", help="A sensitive column: report its l-diversity.")
@click.option("--min-k", type=click.IntRange(1, None), help="Exit 1 also when k-anonymity is below this.")
@click.option("-o", "--out", type=FILE,
              help="Write the output to this file (atomically) instead of standard output.")
@click.option("--progress/--no-progress", default=None,
              help="Show progress on stderr (default: only on a terminal).")
def scan(path: Path, fmt: str, qi: tuple[str, ...], sensitive: str | None, min_k: int | None,
         out: Path | None, progress: bool | None) -> int:
    """Scan a CSV, JSON-lines or Parquet file for personal data, per column and per cell.

    Reports each column's kinds of personal data (email, phone, payment card, IBAN, national
    identifiers, IP addresses, dates of birth, names), GDPR Art. 9 special categories, with
    counts, shares and masked examples; and the k-anonymity, unique share and (with
    --sensitive) l-diversity of the quasi-identifiers. Exit 0 when it finds nothing, 1 when
    it finds personal data, 2 on bad input.
    """
    from guard.defenses.pii.rewrite import refuse_input
    from guard.defenses.pii.scan import scan_file

    if out is not None:
        refuse_input(path, out, "write the scan to another file")
    with _progress(progress, f"scanning {path.name}") as report_progress:
        report = scan_file(path, quasi_identifiers=_names(qi), sensitive=sensitive, progress=report_progress)
    if fmt == "json":
        from guard.textsafe import json_text

        text = json_text(json.dumps(report.to_dict(), indent=1, ensure_ascii=False, allow_nan=False)) + "\n"
    else:
        text = scan_summary(report)
    _emit(text, out)
    found = report.pii_findings + report.special_category_findings > 0
    too_identifiable = min_k is not None and report.rows > 0 and report.anonymity.k < min_k
    return int(ExitCode.FINDINGS if found or too_identifiable else ExitCode.OK)


def _emit(text: str, out: Path | None) -> None:
    if out is None:
        click.echo(text, nl=False)
        return
    from guard.fsio import atomic_write_text
    from guard.textsafe import visible

    atomic_write_text(out, text)
    click.echo(f"wrote {visible(str(out))}", err=True)


def scan_summary(report: ScanReport) -> str:
    """The text output: totals, one line per kind found in each column, the anonymity measures."""
    from guard.textsafe import visible

    rows = report.rows
    lines = [f"{visible(str(report.path))}: {rows} rows, {len(report.columns)} columns ({report.format})"]
    pii = [c for c in report.scans if c.pii_cells]
    special = [c for c in report.scans if c.special_cells]
    lines.append(f"personal data: {report.pii_findings} cells in {len(pii)} columns; special-category data "
                 f"(GDPR Art. 9): {report.special_category_findings} cells in {len(special)} columns")
    shown = [(c, kind, count, True) for c in report.scans for kind, count in c.special.items()]
    shown = [(c, kind, count, False) for c in report.scans for kind, count in c.kinds.items()] + shown
    if shown:
        lines.append(f"  {'column':<24} {'kind':<22} {'cells':>8} {'share':>7}  examples (masked)")
    for column, kind, count, is_special in shown:
        share = f"{count.count / rows:.1%}" if rows else "-"
        label = f"{kind} (Art. 9)" if is_special else kind
        schemes = f" [{', '.join(sorted(count.schemes))}]" if count.schemes else ""
        lines.append(f"  {_cut(visible(column.name), 24):<24} {label:<22} {count.count:>8} {share:>7}  "
                     f"{', '.join(count.examples)}{schemes}")
    a = report.anonymity
    qi = (", ".join(visible(c) for c in report.quasi_identifiers)
          or "none found (name them with --quasi-identifiers)")
    lines.append(f"quasi-identifiers: {qi}")
    if rows:
        lines.append(f"k-anonymity: {a.k}; {a.unique_rows} of {rows} rows ({a.unique_rows / rows:.1%}) are "
                     f"unique on them, in {a.classes} equivalence classes")
    if report.sensitive is not None:
        lines.append(f"l-diversity of {visible(report.sensitive)}: {a.l}")
    lines.append(f"time: {report.seconds:.2f} s")
    return "\n".join(lines) + "\n"


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[:width - 3] + "..."


@click.command("mask", short_help="Write a copy of a table with its personal data masked.")
@click.argument("path", metavar="FILE", type=FILE)
@click.option("-o", "--out", required=True, type=FILE, help="The masked copy to write (same format as FILE).")
@click.option("--strategy", type=click.Choice(["redact", "hash", "mask", "drop", "generalize"]),
              default="redact", show_default=True,
              help="redact: [EMAIL]; hash: keyed HMAC-SHA256 token (needs --key); mask: j***@***.org; "
              "drop: leave the columns out; generalize: quasi-identifiers to --k, the rest redacted.")
@click.option("--key", "key_file", type=FILE, metavar="FILE",
              help="Key for --strategy hash: a Guard key file (make one with `guard keygen -o FILE`).")
@click.option("--key-env", metavar="VAR", help="Or: an environment variable holding the key (base64 or hex).")
@click.option("--columns", multiple=True, metavar="COLS",
              help=f"Mask every cell of these columns ({COLUMNS_HELP}); default: what the scan finds.")
@click.option("--quasi-identifiers", "qi", multiple=True, metavar="COLS",
              help=f"Quasi-identifiers to generalise with --k ({COLUMNS_HELP}); default: detected.")
@click.option("--k", "k", type=click.IntRange(2, None),
              help="Generalise the quasi-identifiers until the copy is k-anonymous.")
@click.option("--max-suppression", type=click.FloatRange(0.0, 1.0), default=0.05, show_default=True,
              help="With --k: the share of rows whose quasi-identifiers may be suppressed (*).")
@click.option("--keep-formulas", is_flag=True, help="Leave CSV cells that start like a spreadsheet formula "
              "(= + - @) as they are; by default they get a leading '.")
@click.option("--force", is_flag=True, help="Replace OUT if it exists (never FILE itself).")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="How to print what was done.")
@click.option("--progress/--no-progress", default=None,
              help="Show progress on stderr (default: only on a terminal).")
def mask(path: Path, out: Path, strategy: str, key_file: Path | None, key_env: str | None,
         columns: tuple[str, ...], qi: tuple[str, ...], k: int | None, max_suppression: float,
         keep_formulas: bool, force: bool, fmt: str, progress: bool | None) -> int:
    """Write a masked copy of FILE (CSV, JSON lines, Parquet) to OUT; FILE is never changed.

    OUT is written atomically and then scanned: exit 0 when that scan finds no personal
    data, 1 when it still does, 2 on bad input.
    """
    from guard.defenses.pii.rewrite import mask_file
    from guard.errors import ConfigError

    key = None
    if key_file is not None or key_env is not None:
        if strategy != "hash":
            raise ConfigError("--key and --key-env are the key of --strategy hash")
        if key_file is not None and key_env is not None:
            raise ConfigError("give one of --key FILE and --key-env VAR, not both")
        from guard.defenses.crypto.keys import RawKey, key_source

        source = key_source(key_file, key_env, None)
        if not isinstance(source, RawKey):  # pragma: no cover - no passphrase is passed
            raise ConfigError("--strategy hash needs a key, not a passphrase")
        key = source.key
    start = time.perf_counter()
    with _progress(progress, f"masking {path.name}") as report_progress:
        result = mask_file(path, out, strategy=strategy, key=key, columns=_names(columns),
                           quasi_identifiers=_names(qi), k=k, max_suppression=max_suppression,
                           neutralize_formulas=not keep_formulas, overwrite=force, progress=report_progress)
    if fmt == "json":
        from guard.textsafe import json_text

        click.echo(json_text(json.dumps(result.to_dict(), indent=1, ensure_ascii=False, allow_nan=False)))
    else:
        click.echo(mask_summary(result, time.perf_counter() - start), nl=False)
    after = result.after
    left = after is not None and after.pii_findings + after.special_category_findings > 0
    return int(ExitCode.FINDINGS if left else ExitCode.OK)


def mask_summary(result: MaskResult, seconds: float) -> str:
    from guard.textsafe import visible

    lines = [f"wrote {visible(str(result.out))}: {result.rows} rows, strategy {result.strategy}"]
    if result.changed:
        parts = ", ".join(f"{visible(c)} {n}" for c, n in result.changed.items())
        total = sum(result.changed.values())
        lines.append(f"  changed {total} cells in {len(result.changed)} columns ({parts})")
    if result.dropped:
        lines.append(f"  dropped columns: {', '.join(visible(c) for c in result.dropped)}")
    g = result.generalisation
    before, after = result.before, result.after
    if g is not None and before is not None:
        levels = ", ".join(f"{visible(c)} level {lvl}" for c, lvl in zip(g.columns, g.levels, strict=True))
        lines.append(f"  k-anonymity {before.anonymity.k} -> {g.k} over {levels}; "
                     f"{g.suppressed_rows} rows suppressed")
    if result.formulas_neutralised:
        lines.append(f"  {result.formulas_neutralised} cells that a spreadsheet would run as formulas "
                     "got a leading '")
    if after is not None:
        qi = ", ".join(visible(c) for c in after.quasi_identifiers) or "none"
        lines.append(f"a scan of the copy finds {after.pii_findings} cells of personal data and "
                     f"{after.special_category_findings} of special-category data; "
                     f"k-anonymity {after.anonymity.k} (quasi-identifiers: {qi})")
        if after.pii_findings or after.special_category_findings:
            left = ", ".join(f"{visible(c.name)}" for c in after.columns_with_pii)
            lines.append(f"  still holding personal data: {left}")
    lines.append(f"time: {seconds:.2f} s")
    return "\n".join(lines) + "\n"


COMMANDS: list[click.Command] = [scan, mask]
