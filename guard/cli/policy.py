"""``guard policy``: list the shipped packs, show one, check a pack file of your own.

``check`` is what a pack author runs before committing: it loads the file with every
validation the audit applies and prints each problem as ``FILE:LINE: message`` (exit 2),
or a one-line summary (exit 0). ``--waivers`` and ``--thresholds`` check those files
against the pack too.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import click

from guard.cli import GuardGroup

if TYPE_CHECKING:
    from guard.policies import Control


@click.group(cls=GuardGroup)
def policy() -> None:
    """Policy packs: the controls that turn evidence into findings."""


@policy.command("list")
def list_packs() -> None:
    """List the packs shipped with Guard."""
    from guard.policies import available_packs, load_pack

    packs = [load_pack(name) for name in available_packs()]
    width = max(len(p.name) for p in packs)
    for pack in packs:
        click.echo(f"{pack.name:<{width}}  {len(pack.controls):>3} controls  {pack.title}")


def _framework_title(key: str) -> str:
    from guard.policies import load_catalogue

    framework = load_catalogue().frameworks.get(key)
    return key if framework is None else framework.title


def _control_lines(control: Control) -> list[str]:
    together = " (all at once)" if control.scope == "all" else ""
    lines = [f"{control.id}  [{control.severity}]  {control.title}",
             f"    evidence:    {', '.join(control.evidence)}{together}",
             f"    condition:   {' '.join(control.condition.source.split())}"]
    if control.where is not None:
        lines.append(f"    where:       {' '.join(control.where.source.split())}")
    if control.thresholds:
        shown = ", ".join(f"{k} = {v!r}" for k, v in control.thresholds.items())
        lines.append(f"    thresholds:  {shown}")
    lines.append(f"    requires:    {control.describe_check(control.thresholds)}")
    for key, ids in control.references.items():
        lines.append(f"    {key + ':':<12} {', '.join(ids)}")
    return lines


@policy.command()
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print the pack's controls as JSON.")
def show(name: str, as_json: bool) -> None:
    """Show the controls of pack NAME (a shipped pack or a pack file)."""
    from guard.policies import load_pack

    pack = load_pack(name)
    if as_json:
        document = {"pack": pack.name, "title": pack.title, "framework": pack.framework,
                    "description": pack.description, "controls": [c.to_dict() for c in pack.controls]}
        click.echo(json.dumps(document, indent=2, ensure_ascii=False))
        return
    click.echo(f"{pack.name}: {pack.title} ({len(pack.controls)} controls)")
    if pack.framework:
        click.echo(f"view of: {_framework_title(pack.framework)}")
    if pack.description:
        click.echo(pack.description)
    for control in pack.controls:
        click.echo("")
        for line in _control_lines(control):
            click.echo(line)


@policy.command()
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--waivers", "waivers_file", type=click.Path(path_type=Path, dir_okay=False),
              help="Also check a waivers file against the pack.")
@click.option("--thresholds", "thresholds_file", type=click.Path(path_type=Path, dir_okay=False),
              help="Also check threshold overrides (pyproject.toml or guard.toml) against the pack.")
def check(file: Path, waivers_file: Path | None, thresholds_file: Path | None) -> None:
    """Validate a pack FILE: every problem is printed as FILE:LINE: message (exit 2)."""
    from guard.policies import load_pack, load_thresholds, load_waivers
    from guard.policies.waivers import check_controls

    pack = load_pack(file)
    click.echo(f"{file}: ok, pack '{pack.name}' with {len(pack.controls)} controls: "
               + ", ".join(c.id for c in pack.controls))
    if waivers_file is not None:
        waivers = load_waivers(waivers_file)
        check_controls(waivers, {c.id for c in pack.controls})
        click.echo(f"{waivers_file}: ok, {len(waivers)} waivers")
    if thresholds_file is not None:
        overrides = load_thresholds(thresholds_file)
        overrides.validate(pack.controls)
        count = len(overrides.values) + sum(len(t) for t in overrides.per_control.values())
        click.echo(f"{thresholds_file}: ok, {count} threshold overrides")
