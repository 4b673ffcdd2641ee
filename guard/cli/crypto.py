"""``guard keygen``, ``encrypt``, ``decrypt``, ``rekey``, ``sign`` and ``verify``.

Exit codes follow :mod:`guard.cli`: usage problems (a missing key file, an unset variable, an
existing output) raise :class:`~guard.defenses.crypto.CryptoInputError` and exit 2; integrity
failures (wrong key, a tampered, truncated or extended file, a bad signature, a changed file)
print one ``error:`` line on stderr and exit 1, like a failing finding, and leave no output.
Secrets are read from files or environment variables, never from arguments, which ``ps`` shows.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, ParamSpec, TypeVar

import click

from guard.errors import ExitCode

if TYPE_CHECKING:  # the crypto modules load only when a command runs, to keep `guard --help` fast
    from guard.defenses.crypto.keys import KeySource

P = ParamSpec("P")
F = TypeVar("F", bound=Callable[..., object])

FILE = click.Path(path_type=Path, dir_okay=False)
ANY_PATH = click.Path(path_type=Path)


def _integrity_exit(fn: Callable[P, int]) -> Callable[P, int]:
    """Turn an IntegrityError into one ``error:`` line and exit code 1."""
    from guard.defenses.crypto.errors import IntegrityError

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> int:
        try:
            return fn(*args, **kwargs)
        except IntegrityError as exc:
            click.echo(f"error: {exc}", err=True)
            return int(ExitCode.FINDINGS)

    return wrapper


def _key_options(prefix: str = "", role: str = "") -> Callable[[F], F]:
    """``--key FILE``, ``--key-env VAR``, ``--passphrase-env VAR`` (with a prefix for rekey's new key)."""
    dest = prefix.replace("-", "_")
    options = [
        click.option(f"--{prefix}key", f"{dest}key_file", type=FILE, metavar="FILE",
                     help=f"{role}Key file made by `guard keygen`."),
        click.option(f"--{prefix}key-env", f"{dest}key_env", metavar="VAR",
                     help=f"{role}Environment variable holding the key (key-file line, base64 or hex)."),
        click.option(f"--{prefix}passphrase-env", f"{dest}passphrase_env", metavar="VAR",
                     help=f"{role}Environment variable holding a passphrase (stretched with scrypt)."),
    ]

    def apply(fn: F) -> F:
        for option in reversed(options):
            fn = option(fn)
        return fn

    return apply


def _key(
    key_file: Path | None, key_env: str | None, passphrase_env: str | None, prefix: str = ""
) -> KeySource:
    from guard.defenses.crypto.keys import RawKey, key_file_too_open, key_source

    key = key_source(key_file, key_env, passphrase_env, option_prefix=prefix)
    if isinstance(key, RawKey) and key_file is not None and key_file_too_open(key_file):
        click.echo(f"warning: {key_file} is readable by other users; run: chmod 600 {key_file}", err=True)
    return key


def _size(n: int | None) -> str:
    if n is None:
        return "size unknown"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"


@click.command()
@click.option("-o", "--out", required=True, type=FILE, help="Key file to write (mode 0600).")
@click.option("--signing", is_flag=True, help="An Ed25519 signing key pair: FILE (private) and FILE.pub.")
@click.option("--passphrase-env", metavar="VAR", help="With --signing: encrypt the private key under VAR.")
@click.option("--force", is_flag=True, help="Overwrite existing key files.")
def keygen(out: Path, signing: bool, passphrase_env: str | None, force: bool) -> int:
    """Create an encryption key file, or with --signing an Ed25519 key pair."""
    from guard.defenses.crypto.errors import CryptoInputError
    from guard.defenses.crypto.keys import generate_key, key_id, passphrase_from_env, write_key_file
    from guard.defenses.crypto.signing import public_key_path, write_signing_keypair

    if signing:
        secret = passphrase_from_env(passphrase_env).secret if passphrase_env else None
        fp = write_signing_keypair(out, passphrase=secret, overwrite=force)
        click.echo(f"wrote {out} (private, mode 0600) and {public_key_path(out)}; fingerprint {fp}")
        return 0
    if passphrase_env:
        raise CryptoInputError("--passphrase-env applies to --signing keys; `guard encrypt "
                               "--passphrase-env VAR` needs no key file")
    key = generate_key()
    write_key_file(out, key, overwrite=force)
    click.echo(f"wrote {out} (mode 0600); key id {key_id(key).hex()}. Back it up: without it, "
               "files encrypted with it are lost.")
    return 0


@click.command()
@click.argument("src", type=FILE)
@click.option("-o", "--out", type=FILE, help="Encrypted file to write (default: SRC.enc).")
@_key_options()
@click.option("--chunk-size", type=click.IntRange(1024, 64 * 1024 * 1024), default=1024 * 1024,
              show_default=True, help="Plaintext bytes per authenticated chunk.")
@click.option("--force", is_flag=True, help="Overwrite OUT if it exists.")
@_integrity_exit
def encrypt(src: Path, out: Path | None, key_file: Path | None, key_env: str | None,
            passphrase_env: str | None, chunk_size: int, force: bool) -> int:
    """Encrypt a file with AES-256-GCM (chunked, authenticated); SRC is left as it is."""
    from guard.defenses.crypto.files import encrypt_file

    key = _key(key_file, key_env, passphrase_env)
    dst = out if out is not None else src.with_name(src.name + ".enc")
    start = time.perf_counter()
    info = encrypt_file(src, dst, key, chunk_size=chunk_size, overwrite=force)
    click.echo(f"encrypted {src} -> {dst} ({_size(info.plaintext_bytes)}, {info.algorithm}, "
               f"key id {info.key_id}, {time.perf_counter() - start:.2f} s)")
    return 0


@click.command()
@click.argument("src", type=FILE)
@click.option("-o", "--out", type=FILE, help="Plaintext file to write, mode 0600 (default: SRC less .enc).")
@_key_options()
@click.option("--force", is_flag=True, help="Overwrite OUT if it exists.")
@_integrity_exit
def decrypt(src: Path, out: Path | None, key_file: Path | None, key_env: str | None,
            passphrase_env: str | None, force: bool) -> int:
    """Decrypt a file; nothing is written unless every byte authenticates."""
    from guard.defenses.crypto.errors import CryptoInputError
    from guard.defenses.crypto.files import decrypt_file

    if out is None and src.suffix != ".enc":
        raise CryptoInputError(f"{src} does not end in .enc: name the output with -o")
    key = _key(key_file, key_env, passphrase_env)
    dst = out if out is not None else src.with_suffix("")
    start = time.perf_counter()
    info = decrypt_file(src, dst, key, overwrite=force)
    click.echo(f"decrypted {src} -> {dst} ({_size(info.plaintext_bytes)}, key id {info.key_id}, "
               f"{time.perf_counter() - start:.2f} s)")
    return 0


@click.command()
@click.argument("path", type=FILE)
@_key_options(role="Current key. ")
@_key_options(prefix="new-", role="New key. ")
@click.option("-o", "--out", type=FILE, help="Write the result here (default: replace PATH atomically).")
@_integrity_exit
def rekey(path: Path, key_file: Path | None, key_env: str | None, passphrase_env: str | None,
          new_key_file: Path | None, new_key_env: str | None, new_passphrase_env: str | None,
          out: Path | None) -> int:
    """Re-wrap a file's data key for a new key: the header changes, the body is copied as is."""
    from guard.defenses.crypto.files import rekey_file

    old = _key(key_file, key_env, passphrase_env)
    new = _key(new_key_file, new_key_env, new_passphrase_env, prefix="new-")
    info = rekey_file(path, old, new, dst=out)
    click.echo(f"rekeyed {out or path}: key id {info.key_id} ({info.kdf})")
    return 0


@click.command()
@click.argument("paths", nargs=-1, required=True, type=ANY_PATH)
@click.option("--key", "key_file", required=True, type=FILE, help="Ed25519 private key (PEM).")
@click.option("--passphrase-env", metavar="VAR", help="Variable holding the private key's passphrase.")
@click.option("-o", "--out", "manifest", type=FILE, default=Path("model.sig.json"), show_default=True,
              help="Signed manifest to write.")
@click.option("--base-dir", type=click.Path(path_type=Path, file_okay=False),
              help="Folder the manifest's file names are relative to (default: the manifest's).")
@click.option("--name", "model_name", help="Model name in the statement (default: from the paths).")
def sign(paths: tuple[Path, ...], key_file: Path, passphrase_env: str | None, manifest: Path,
         base_dir: Path | None, model_name: str | None) -> int:
    """Sign files and folders: SHA-256 of each file in an in-toto statement, Ed25519 over it."""
    from guard.defenses.crypto.keys import passphrase_from_env
    from guard.defenses.crypto.signing import load_private_key, sign_paths

    secret = passphrase_from_env(passphrase_env).secret if passphrase_env else None
    key = load_private_key(key_file, secret)
    result = sign_paths(list(paths), key, manifest, base_dir=base_dir, model_name=model_name)
    click.echo(f"signed {result.files} files of {result.model_name} -> {result.manifest} "
               f"(signer {result.signer_fingerprint})")
    return 0


@click.command()
@click.argument("manifest", type=FILE)
@click.option("--pubkey", required=True, type=FILE, help="The signer's Ed25519 public key (PEM).")
@click.option("--base-dir", type=click.Path(path_type=Path, file_okay=False),
              help="Folder the file names are relative to (default: the manifest's).")
def verify(manifest: Path, pubkey: Path, base_dir: Path | None) -> int:
    """Check a manifest's signature and every file's digest: exit 0 verified, 1 otherwise."""
    from guard.defenses.crypto.signing import verify_manifest

    result = verify_manifest(manifest, pubkey, base_dir)
    if not result.verified:
        click.echo(f"error: verification failed: {result.problem}", err=True)
        for check in result.failures[1:]:
            click.echo(f"  {check.status}: {check.name}", err=True)
        return int(ExitCode.FINDINGS)
    click.echo(f"verified {len(result.files)} files of {result.model_name} "
               f"(signer {result.signer_fingerprint})")
    return 0


COMMANDS = (keygen, encrypt, decrypt, rekey, sign, verify)
