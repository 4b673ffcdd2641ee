"""``guard probes``: every probe installed (Guard's and plug-ins'), with its settings."""

from __future__ import annotations

import dataclasses

import click


@click.command("probes")
def probes() -> None:
    """List the installed probes: id, aliases, what they need, their settings and defaults."""
    from rich.console import Console
    from rich.table import Table

    from guard.probes import probes as installed
    from guard.textsafe import plain

    table = Table(title="probes (--attack NAME; --set NAME.KEY=VALUE)", title_justify="left")
    for col in ("id", "aliases", "stage", "needs", "default", "settings"):
        table.add_column(col)
    for cls in installed():
        settings = ", ".join(
            f"{f.name}={_default(f)}" for f in dataclasses.fields(cls.settings_type)
        )
        # A plug-in chooses its id, aliases and defaults: shown as plain text, escapes spelled out.
        table.add_row(plain(cls.id), plain(", ".join(cls.aliases) or "-"), plain(cls.stage),
                      plain(", ".join(sorted(c.value for c in cls.requires)) or "-"),
                      "yes" if cls.default else ("thorough" if getattr(cls, "thorough", False) else "-"),
                      plain(settings or "-"))
    Console(highlight=False, soft_wrap=False, width=160).print(table)


def _default(f: dataclasses.Field[object]) -> str:
    if f.default is not dataclasses.MISSING:
        return repr(f.default)
    if f.default_factory is not dataclasses.MISSING:
        return repr(f.default_factory())
    return "(required)"
