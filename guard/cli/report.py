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
    """Render REPORT (a report.json) in other formats; with --policy, judge it again.

    The files written keep REPORT's run id: they show the evidence of the audit run that
    wrote it. A report.json whose sibling reports carry another run id (a run killed while
    writing the set) is refused rather than re-rendered as if the set were one report.
    """
    from guard.audit import PolicySetup, rejudge
    from guard.cli.output import check_out, write_report_set
    from guard.errors import ConfigError
    from guard.reports import FILE_NAMES, check_formats, read_json
    from guard.reports.json_report import check_set, run_id_of
    from guard.serialization import audit_result_from_dict

    if not policy and (waivers or baseline or thresholds):
        raise ConfigError("--waivers, --baseline and --thresholds need at least one --policy")
    check_formats(formats)
    check_out(out, formats)
    setup = PolicySetup.load(policy, waivers=waivers, baseline=baseline, thresholds_file=thresholds)
    audits = read_json(report)
    run_id = run_id_of(audits)
    check_set(report, run_id, rewritten=[out / FILE_NAMES[f] for f in formats])
    outcome = rejudge([audit_result_from_dict(doc) for doc in audits], setup, fail_on=fail_on)
    write_report_set(outcome.results, out, list(formats), run_id=run_id)
    return outcome.return_code() if setup.active else 0
