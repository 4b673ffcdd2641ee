"""What a signature covers: an in-toto statement listing files and their SHA-256 digests.

The statement has the shape OpenSSF model signing uses (predicate type
``https://model_signing/signature/v1.0``, https://github.com/sigstore/model-transparency): one
subject named after the model whose digest is SHA-256 over the concatenated file digests in name
order, and a predicate with the serialization method and one resource per file. Guard adds a
``directories`` field (v1.0 verifiers ignore unknown predicate fields): the folders that were
signed whole, so that a file added to them later (a second, malicious weights file, say) fails
verification instead of passing unnoticed.

Names are POSIX paths relative to a base folder (by default the manifest's own folder), so a
model and its manifest can be moved together. Symlinks are refused rather than followed: a link
could make the same signature cover different bytes on another machine.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from cryptography.hazmat.primitives import hashes

from guard.defenses.crypto.errors import CryptoInputError

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://model_signing/signature/v1.0"
IGNORED_NAMES = (".git", ".gitattributes", ".github", ".gitignore")
_READ_CHUNK = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Resource:
    """One signed file: its name relative to the base folder and its SHA-256 (hex)."""

    name: str
    digest: str


@dataclass(frozen=True, slots=True)
class Statement:
    """The parsed, signature-checked content of a manifest."""

    model_name: str
    resources: tuple[Resource, ...]
    directories: tuple[str, ...]


def sha256_file(path: Path) -> str:
    """SHA-256 of a regular file, read in 1 MiB chunks into one reused buffer.

    Opened without blocking and checked through the descriptor: a file swapped for a FIFO
    after the caller's check raises :class:`~guard.fsio.NotRegularFile` instead of waiting
    forever for a writer.
    """
    from guard.fsio import open_regular

    digest = hashes.Hash(hashes.SHA256())
    buf = memoryview(bytearray(_READ_CHUNK))
    fd, _ = open_regular(path)
    with os.fdopen(fd, "rb") as fh:
        while n := fh.readinto(buf):
            digest.update(buf[:n])
    return digest.finalize().hex()


def root_digest(resources: Iterable[Resource]) -> str:
    """The subject digest: SHA-256 over the raw file digests, in the order given (name order)."""
    digest = hashes.Hash(hashes.SHA256())
    for res in resources:
        digest.update(bytes.fromhex(res.digest))
    return digest.finalize().hex()


def _name(path: Path, base: Path) -> str:
    try:
        return path.resolve().relative_to(base).as_posix()
    except ValueError:
        raise CryptoInputError(f"{path} lies outside the base folder {base}; pass --base-dir") from None


def _walk(folder: Path, skip: set[Path], *, strict: bool) -> Iterable[Path]:
    """Files under ``folder`` in a stable order, as paths whose parent is resolved.

    Strict (signing): a symlink or a special file is an error. Not strict (verifying): they are
    yielded like files, so that one appearing in a signed folder is reported, not followed.
    """
    for root, dirs, files in os.walk(folder):
        parent = Path(root).resolve()
        dirs[:] = sorted(d for d in dirs if d not in IGNORED_NAMES)
        for entry in [*dirs, *sorted(f for f in files if f not in IGNORED_NAMES)]:
            path = parent / entry
            if path.is_symlink() and strict:
                raise CryptoInputError(f"{path} is a symlink; Guard signs regular files only")
            if path.is_symlink() and entry in dirs:
                yield path
            if entry not in files or path in skip:
                continue
            if strict and not path.is_file():
                raise CryptoInputError(f"{path} is not a regular file (a pipe or device?)")
            yield path


def collect_files(
    paths: Sequence[Path], base: Path, skip: set[Path]
) -> tuple[list[tuple[str, Path]], list[str]]:
    """Expand files and folders into ``(name, path)`` pairs sorted by name, plus the folder names."""
    base = base.resolve()
    found: dict[str, Path] = {}
    folders: list[str] = []
    for path in paths:
        if path.is_symlink():
            raise CryptoInputError(f"{path} is a symlink; Guard signs regular files only")
        if path.is_dir():
            folders.append(_name(path, base))
            found.update((p.relative_to(base).as_posix(), p) for p in _walk(path, skip, strict=True))
        elif path.is_file():
            found[_name(path, base)] = path
        else:
            raise CryptoInputError(f"no such file or folder: {path}")
    if not found:
        raise CryptoInputError("nothing to sign: the paths hold no files")
    return sorted(found.items()), sorted(set(folders))


def build_statement(
    model_name: str, resources: Sequence[Resource], directories: Sequence[str]
) -> dict[str, Any]:
    """The in-toto statement (a plain dict, serialized as the DSSE payload)."""
    return {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": model_name, "digest": {"sha256": root_digest(resources)}}],
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "serialization": {
                "method": "files",
                "hash_type": "sha256",
                "allow_symlinks": False,
                "ignore_paths": list(IGNORED_NAMES),
            },
            "resources": [{"name": r.name, "algorithm": "sha256", "digest": r.digest} for r in resources],
            "directories": list(directories),
        },
    }


def safe_name(name: object) -> str:
    """A resource name from a manifest, refused when it could point outside the base folder."""
    if not isinstance(name, str) or not name or "\\" in name or "\x00" in name:
        raise ValueError(f"bad file name {name!r}")
    parts = PurePosixPath(name).parts
    if PurePosixPath(name).is_absolute() or ".." in parts or "." in parts:
        raise ValueError(f"file name {name!r} points outside the base folder")
    return name


def parse_statement(data: Any) -> Statement:
    """Read a (signature-checked) statement; raise ValueError, KeyError or TypeError if malformed."""
    if data["_type"] != STATEMENT_TYPE or data["predicateType"] != PREDICATE_TYPE:
        raise ValueError(f"unknown statement or predicate type {data['_type']!r}, {data['predicateType']!r}")
    (subject,) = data["subject"]
    predicate = data["predicate"]
    resources: list[Resource] = []
    for res in predicate["resources"]:
        if res["algorithm"] != "sha256":
            raise ValueError(f"unsupported digest algorithm {res['algorithm']!r}")
        resources.append(Resource(safe_name(res["name"]), bytes.fromhex(res["digest"]).hex()))
    if root_digest(resources) != subject["digest"]["sha256"]:
        raise ValueError("the subject digest does not match the listed files")
    directories = tuple(safe_name(d) for d in predicate.get("directories", []))
    return Statement(str(subject["name"]), tuple(resources), directories)


def unexpected_files(base: Path, statement: Statement, skip: set[Path]) -> list[str]:
    """Files (and links) now present in a signed folder that the manifest does not list."""
    base = base.resolve()
    listed = {r.name for r in statement.resources}
    extra: set[str] = set()
    for folder in statement.directories:
        if (base / folder).is_dir():
            names = (p.relative_to(base).as_posix() for p in _walk(base / folder, skip, strict=False))
            extra.update(n for n in names if n not in listed)
    return sorted(extra)
