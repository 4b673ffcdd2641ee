"""``guard report``: re-render (and optionally re-judge) a report.json without re-running attacks."""

from __future__ import annotations

from pathlib import Path

import click

from guard.cli.options import FAIL_ON, FAIL_ON_HELP, NAME_LIST


@click.command()
@click.argument("report", type=click.Path(path_type=Path))
@click.option("--format", "formats", type=NAME_LIST, default="html",
              help="json,html,sarif,junit,md,pdf (default html).")
@click.option("--out", type=click.Path(path_type=Path), default=Path("guard-report"),
              help="Output folder (default guard-report).")
@click.option("--policy", multiple=True, help="Judge the evidence again with these packs.")
@click.option("--waivers", type=click.Path(path_type=Path), help="Waivers file (with --policy).")
@click.option("--baseline", type=click.Path(path_type=Path), help="Earlier report.json (with --policy).")
@click.option("--thresholds", type=click.Path(path_type=Path),
              help="pyproject.toml or guard.toml with threshold overrides (with --policy).")
@click.option("--fail-on", type=FAIL_ON, default="high", help="With --policy: " + FAIL_ON_HELP)
def report(report: Path, formats: tuple[str, ...], out: Path, policy: tuple[str, ...],
           waivers: Path | None, baseline: Path | None, thresholds: Path | None, fail_on: str) -> int:
    """Render REPORT (a report.json) in other formats; with --policy, judge it again."""
    from guard.audit import PolicySetup, rejudge
    from guard.errors import ConfigError
    from guard.reports import read_json, write_reports
    from guard.serialization import audit_result_from_dict

    if not policy and (waivers or baseline or thresholds):
        raise ConfigError("--waivers, --baseline and --thresholds need at least one --policy")
    setup = PolicySetup.load(policy, waivers=waivers, baseline=baseline, thresholds_file=thresholds)
    outcome = rejudge([audit_result_from_dict(doc) for doc in read_json(report)], setup, fail_on=fail_on)
    for path in write_reports(outcome.results, out, list(formats)):
        click.echo(f"wrote {path}")
    return outcome.return_code() if setup.active else 0
