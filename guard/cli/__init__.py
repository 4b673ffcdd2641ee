"""The ``guard`` command: a click group, one module per subcommand.

Exit codes are decided here and only here (see :class:`guard.errors.ExitCode`): 0 done,
1 failing findings, 2 usage or bad input, 3 internal error.
"""

from __future__ import annotations

import os
import sys
import traceback

import click

from guard import __version__
from guard.errors import ExitCode, GuardInputError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="guard")
def cli() -> None:
    """Guard: attack a machine-learning model, check its defenses, report what you found."""


def _register() -> None:
    from guard.cli.audit import audit

    cli.add_command(audit)


_register()


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point; returns (and exits with) the computed exit code."""
    code = run(argv)
    sys.exit(int(code))


def run(argv: list[str] | None = None) -> ExitCode:
    try:
        result = cli.main(args=argv, prog_name="guard", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        return ExitCode.USAGE
    except click.ClickException as exc:
        exc.show()
        return ExitCode(exc.exit_code) if exc.exit_code in (1, 2) else ExitCode.USAGE
    except GuardInputError as exc:
        click.echo(f"error: {exc}", err=True)
        return ExitCode.USAGE
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        return ExitCode.INTERNAL
    except Exception as exc:  # noqa: BLE001  (the one place that turns bugs into exit 3)
        if os.environ.get("GUARD_DEBUG"):
            traceback.print_exc()
        click.echo(
            f"internal error: {type(exc).__name__}: {exc} (set GUARD_DEBUG=1 for a traceback; "
            "please report it)",
            err=True,
        )
        return ExitCode.INTERNAL
    if isinstance(result, int) and not isinstance(result, bool):
        return ExitCode(result)
    return ExitCode.OK
