"""``guard report``: re-render (and optionally re-judge) a report.json without re-running attacks."""

from __future__ import annotations

from pathlib import Path

import click

from guard import SEVERITY_ORDER
from guard.cli.options import NAME_LIST


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
@click.option("--fail-on", type=click.Choice([*SEVERITY_ORDER, "none"]), default="high",
              help="With --policy: exit 1 when a finding at or above this severity fails.")
def report(report: Path, formats: tuple[str, ...], out: Path, policy: tuple[str, ...],
           waivers: Path | None, baseline: Path | None, thresholds: Path | None, fail_on: str) -> int:
    """Render REPORT (a report.json) in other formats; with --policy, judge it again."""
    from guard.errors import ConfigError
    from guard.reports import read_json, write_reports
    from guard.serialization import audit_result_from_dict

    if not policy and (waivers or baseline or thresholds):
        raise ConfigError("--waivers, --baseline and --thresholds need at least one --policy")
    results = [audit_result_from_dict(doc) for doc in read_json(report)]
    code = 0
    if policy:
        from guard.policies import (
            evaluate,
            exit_code_for,
            load_baseline,
            load_pack,
            load_thresholds,
            load_waivers,
        )

        packs = [load_pack(p) for p in policy]
        loaded_waivers = load_waivers(waivers) if waivers else None
        loaded_baseline = load_baseline(baseline) if baseline else None
        overrides = load_thresholds(thresholds) if thresholds else None
        for result in results:
            result.findings = evaluate(result, packs, thresholds=overrides, waivers=loaded_waivers,
                                       baseline=loaded_baseline)
            if fail_on != "none":
                code = max(code, exit_code_for(result.findings, fail_on))
    for path in write_reports(results, out, list(formats)):
        click.echo(f"wrote {path}")
    return code
