"""``guard log verify`` and ``guard log show``: read Guard's hash-chained audit logs.

``verify`` exits 0 with one ``intact:`` line (and the head hash to keep elsewhere), 1 with one
``error:`` line naming the first bad record, and 2 (mapped by :class:`guard.cli.GuardGroup`)
for a missing or unreadable file, an unset variable or a malformed key. Keys are read from an
environment variable or a file, never from an argument, which ``ps`` shows. Every string
that comes from the log passes through :func:`guard.textsafe.visible`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from guard.errors import ExitCode

if TYPE_CHECKING:
    from guard.defenses.access.auditlog import LogCheck

FILE = click.Path(path_type=Path, dir_okay=False)


def _head(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is None:
        return None
    head = value.strip().lower().removeprefix("sha256:")
    if len(head) != 64 or any(c not in "0123456789abcdef" for c in head):
        raise click.BadParameter("give the 64 hex digits of a SHA-256 (as `guard log verify` prints it)")
    return head


@click.group()
def log() -> None:
    """Check the audit log every guarded request is recorded in."""


@log.command("verify")
@click.argument("path", metavar="FILE", type=FILE)
@click.option("--hmac-key-env", metavar="VAR", help="Environment variable holding the log's HMAC key "
              "(key-file line, base64 or hex of 32 bytes).")
@click.option("--hmac-key", "hmac_key_file", type=FILE, metavar="FILE",
              help="Key file holding the log's HMAC key (as `guard keygen` writes).")
@click.option("--public-key", "--pubkey", "public_key", type=FILE, metavar="PEM",
              help="Ed25519 public key the log's records are signed with.")
@click.option("--expect-head", metavar="SHA256", callback=_head,
              help="Hash of a line kept elsewhere: detects records cut off the end, or a rewrite.")
@click.option("--expect-records", type=click.IntRange(min=0), metavar="N",
              help="The log must hold at least N records (with --expect-head: line N has that hash).")
def verify(path: Path, hmac_key_env: str | None, hmac_key_file: Path | None, public_key: Path | None,
           expect_head: str | None, expect_records: int | None) -> int:
    """Check a log's hash chain, HMACs and signatures: exit 0 intact, 1 tampered.

    The chain alone cannot show records cut off the end at a line break: keep the head this
    prints (and the record count) where the server cannot write, and pass them back.
    """
    from guard.defenses.access.auditlog import verify_log
    from guard.textsafe import visible

    key = _hmac_key(hmac_key_env, hmac_key_file)
    pub = None
    if public_key is not None:
        from guard.defenses.crypto.signing import load_public_key

        pub = load_public_key(public_key)
    check = verify_log(path, hmac_key=key, public_key=pub, expect_head=expect_head,
                       expect_records=expect_records)
    if check.note is not None:
        click.echo(f"warning: {visible(str(path))}: {check.note}; pass --hmac-key-env or --public-key",
                   err=True)
    if not check.ok:
        click.echo(f"error: {visible(str(path))}: {visible(check.problem or 'not intact')}", err=True)
        return int(ExitCode.FINDINGS)
    click.echo(_summary(check))
    return int(ExitCode.OK)


def _hmac_key(env: str | None, key_file: Path | None) -> bytes | None:
    from guard.defenses.crypto.errors import CryptoInputError
    from guard.defenses.crypto.keys import key_from_env, load_key_file

    if env is not None and key_file is not None:
        raise CryptoInputError("give one of --hmac-key-env VAR and --hmac-key FILE, not both")
    if env is not None:
        return key_from_env(env).key
    if key_file is not None:
        return load_key_file(key_file).key
    return None


def _summary(check: LogCheck) -> str:
    if check.records == 0:
        return "intact: 0 records (an empty log)"
    checked = ["chain"] + ["hmac"] * check.hmac + ["signature"] * check.signed
    return f"intact: {check.records} records ({', '.join(checked)} checked), head {check.head}"


@log.command("show")
@click.argument("path", metavar="FILE", type=FILE)
@click.option("--last", "last", type=click.IntRange(1, 10_000), default=20, show_default=True,
              help="How many records to show, counted from the end.")
def show(path: Path, last: int) -> int:
    """Print the last records of a log, one per line, as they are stored (not verified)."""
    from guard.defenses.access.auditlog import tail_lines
    from guard.textsafe import visible

    for line in tail_lines(path, last):
        click.echo(visible(line.decode("ascii", "backslashreplace")))
    return int(ExitCode.OK)
