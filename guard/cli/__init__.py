"""The ``guard`` command: a click group, one module per subcommand.

Exit codes are decided here and only here (see :class:`guard.errors.ExitCode`): 0 done,
1 failing findings or failed integrity checks, 2 usage or bad input, 3 internal error.
A command may return an int exit code; errors become :class:`click.ClickException`
subclasses carrying their code, so click prints one line and CliRunner sees the code.
"""

from __future__ import annotations

import os
import traceback
from typing import Any

import click

from guard import __version__
from guard.errors import ExitCode, GuardInputError, IntegrityFailure


class InputProblem(click.ClickException):
    """Bad input from the user (a file, a model, data, an option)."""

    exit_code = int(ExitCode.USAGE)


class IntegrityProblem(click.ClickException):
    """A check that ran and said no: wrong key, tampered file, bad signature."""

    exit_code = int(ExitCode.FINDINGS)


class InternalProblem(click.ClickException):
    """A bug in Guard: reported in one line, with a traceback under GUARD_DEBUG=1."""

    exit_code = int(ExitCode.INTERNAL)


class GuardGroup(click.Group):
    """Maps Guard's typed errors and commands' integer results to exit codes."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            rv = super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except GuardInputError as exc:
            raise InputProblem(_shown(exc)) from None
        except IntegrityFailure as exc:
            raise IntegrityProblem(_shown(exc)) from None
        except KeyboardInterrupt:
            raise InternalProblem("interrupted") from None
        except (SystemExit, GeneratorExit):
            raise
        except BaseException as exc:  # noqa: BLE001  (the one place that turns bugs into exit 3;
            # BaseException: a native extension's panic, such as pyo3's PanicException, is one)
            if os.environ.get("GUARD_DEBUG"):
                traceback.print_exc()
            raise InternalProblem(
                f"internal error: {type(exc).__name__}: {_shown(exc)} "
                "(set GUARD_DEBUG=1 for a traceback; please report it)"
            ) from None
        if isinstance(rv, int) and not isinstance(rv, bool) and rv != 0:
            ctx.exit(rv)
        return rv


def _shown(exc: BaseException) -> str:
    """An error message as the terminal may print it: a file name in it can hold an ESC or a
    right-to-left override. Multi-line messages (every problem ``guard policy check`` found)
    keep their line breaks; each line is made visible."""
    from guard.textsafe import visible

    return "\n".join(visible(line) for line in str(exc).split("\n"))


@click.group(cls=GuardGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="guard")
def cli() -> None:
    """Guard: attack a machine-learning model, check its defenses, report what you found."""


def _register() -> None:
    from guard.cli.audit import audit
    from guard.cli.crypto import COMMANDS as CRYPTO_COMMANDS
    from guard.cli.data import data
    from guard.cli.log import log
    from guard.cli.policy import policy
    from guard.cli.probes import probes
    from guard.cli.report import report
    from guard.cli.scan import scan
    from guard.cli.serve import serve
    from guard.cli.token import token

    cli.add_command(audit)
    cli.add_command(data)
    cli.add_command(log)
    cli.add_command(policy)
    cli.add_command(probes)
    cli.add_command(report)
    cli.add_command(scan)
    cli.add_command(serve)
    cli.add_command(token)
    for command in CRYPTO_COMMANDS:
        cli.add_command(command)


_register()


def main() -> None:
    """Console-script entry point."""
    cli.main(prog_name="guard")
