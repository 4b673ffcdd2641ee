"""``guard data manifest`` and ``guard data verify``: record a data set's files and rows, and
say later which of them changed.

Exit codes (mapped by :class:`guard.cli.GuardGroup`): ``verify`` exits 0 when every file and
row is unchanged, 1 when something changed (each change printed, file and row) or a signature
does not verify with ``--pubkey``, 2 for a manifest that is not one (or a missing, unreadable
input). ``manifest`` exits 2 for an input that is missing, not a regular file or malformed.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from guard.errors import ExitCode

if TYPE_CHECKING:
    from guard.defenses.provenance.verify import VerifyReport

FILE = click.Path(path_type=Path, dir_okay=False)


@click.command("manifest", short_help="Record the SHA-256 of every file and row of a data set.")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("-o", "--out", required=True, type=FILE,
              help="Manifest to write; file names in it are relative to its folder.")
@click.option("--sign-key", type=FILE, metavar="FILE",
              help="Sign the manifest with this Ed25519 private key (`guard keygen --signing`).")
@click.option("--passphrase-env", metavar="VAR", help="Variable holding the signing key's passphrase.")
def manifest(paths: tuple[Path, ...], out: Path, sign_key: Path | None, passphrase_env: str | None) -> int:
    """Record the SHA-256 of every file under PATHS, and of every row of CSV, .npz and .npy files."""
    from guard import __version__
    from guard.defenses.provenance.document import encode
    from guard.defenses.provenance.manifest import build_manifest
    from guard.errors import ConfigError
    from guard.fsio import atomic_write_bytes
    from guard.textsafe import visible

    _refuse_overwrite(out)
    key = None
    if sign_key is not None:
        from guard.defenses.crypto.keys import passphrase_from_env
        from guard.defenses.crypto.signing import load_private_key

        secret = passphrase_from_env(passphrase_env).secret if passphrase_env else None
        key = load_private_key(sign_key, secret)
    elif passphrase_env:
        raise ConfigError("--passphrase-env is the passphrase of --sign-key; give the key too")
    start = time.perf_counter()
    created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    recorded = build_manifest(list(paths), out, created=created, generator=f"guard {__version__}")
    data = encode(recorded, key)
    atomic_write_bytes(out, data)
    signed = ""
    if key is not None:
        from guard.defenses.crypto.signing import fingerprint

        signed = f", signed by {fingerprint(key.public_key())}"
    click.echo(f"wrote {visible(str(out))}: {len(recorded.files)} files, {recorded.row_count} rows{signed} "
               f"({time.perf_counter() - start:.2f} s)")
    return 0


@click.command("verify", short_help="Say which files and rows changed since a manifest.")
@click.argument("manifest_path", metavar="MANIFEST", type=FILE)
@click.option("--pubkey", "--public-key", "pubkey", type=FILE, metavar="FILE",
              help="The signer's Ed25519 public key: check the manifest's signature first.")
@click.option("--format", "output_format", type=click.Choice(["text", "json"]), default="text",
              show_default=True, help="How to print the result.")
@click.option("--max-changes", type=click.IntRange(0, 100_000), default=50, show_default=True,
              help="Changes to list one by one (all are counted).")
def verify(manifest_path: Path, pubkey: Path | None, output_format: str, max_changes: int) -> int:
    """Check every file and row of a manifest: exit 0 unchanged, 1 changed, 2 bad manifest."""
    from guard.defenses.provenance.verify import verify_data

    key = None
    if pubkey is not None:
        from guard.defenses.crypto.signing import load_public_key

        key = load_public_key(pubkey)
    report = verify_data(manifest_path, key)
    _warn_unchecked(report)
    if output_format == "json":
        from guard.textsafe import json_text

        click.echo(json_text(json.dumps(_as_json(report, max_changes), indent=2, ensure_ascii=False)))
    else:
        _print_text(report, max_changes)
    return int(ExitCode.OK if report.verified else ExitCode.FINDINGS)


def _warn_unchecked(report: VerifyReport) -> None:
    """A signed manifest checked without its key: say so on stderr (the hashes were checked)."""
    from guard.textsafe import visible

    sig = report.signature
    if sig.signed and not sig.checked:
        keys = ", ".join(visible(k[:80]) for k in sig.keyids[:3]) or "no key id"
        click.echo(f"warning: {visible(str(report.manifest))} is signed ({keys}) but its signature was not "
                   "checked: pass --pubkey FILE; its hashes are only as trustworthy as the file", err=True)


def _print_text(report: VerifyReport, max_changes: int) -> None:
    from guard.textsafe import visible

    name = visible(str(report.manifest))
    sig = report.signature
    shown = report.changes[:max_changes]
    for change in shown:
        click.echo(visible(change.describe()))
    if report.changes_total > len(shown):
        click.echo(f"... and {report.changes_total - len(shown)} more")
    signer = f", signature by {sig.signer}" if sig.checked else ""
    rows = f"{report.rows_checked} rows"
    if report.verified:
        click.echo(f"verified {name}: {report.files_checked} files, {rows} unchanged{signer}")
        return
    click.echo(f"changed: {report.files_changed} of {report.files_checked} files, {report.rows_changed} of "
               f"{rows} changed, added or removed ({name}{signer})")


def _as_json(report: VerifyReport, max_changes: int) -> dict[str, Any]:
    sig = report.signature
    changes = [c.to_dict() for c in report.changes[:max_changes]]
    return {
        "schema": "guard.data-verify/1",
        "manifest": str(report.manifest),
        "verified": report.verified,
        "signature": {"signed": sig.signed, "checked": sig.checked, "signer": sig.signer or None,
                      "keyids": list(sig.keyids)},
        "files_checked": report.files_checked,
        "files_changed": report.files_changed,
        "rows_checked": report.rows_checked,
        "rows_changed": report.rows_changed,
        "changes": changes,
        "changes_total": report.changes_total,
        "changes_truncated": report.changes_total - len(changes),
        "problem": report.problem,
    }


COMMANDS: list[click.Command] = [manifest, verify]


def _refuse_overwrite(out: Path) -> None:
    """``-o`` may replace an earlier data manifest, never another file (a data file in a folder
    being recorded, say): a file that does not read as one is refused, and left as it is."""
    from guard.defenses.provenance.document import decode
    from guard.errors import ConfigError, GuardError
    from guard.fsio import read_input
    from guard.textsafe import visible

    if not out.exists() and not out.is_symlink():
        return
    refusal = ConfigError(f"{visible(str(out))} exists and is not a data manifest; Guard will not "
                          "overwrite it (choose another -o, or remove the file)")
    if out.is_symlink() or not out.is_file():
        raise refusal
    try:
        decode(read_input(out, "manifest", "manifest_bytes"), str(out))
    except GuardError:  # not JSON, not a manifest, unreadable, too large: all "not a manifest"
        raise refusal from None
