"""Encrypt, decrypt and rekey files on disk, atomically; decrypt into memory for audits.

Every output goes through :func:`~guard.defenses.crypto.atomic.atomic_output`: an interrupted or
failed run leaves the input untouched and nothing under the output's name. Decrypted output is
written with mode 0600 and appears only once every chunk has authenticated, so a wrong key or a
tampered file never leaves plaintext behind.
"""

from __future__ import annotations

import io
import os
import shutil
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from io import BufferedReader
from pathlib import Path

from guard.defenses.crypto.atomic import atomic_output
from guard.defenses.crypto.errors import CryptoInputError
from guard.defenses.crypto.header import DEFAULT_CHUNK, MAGIC, open_header, rewrap
from guard.defenses.crypto.keys import KeySource
from guard.defenses.crypto.stream import (
    FileInfo,
    decrypt_stream,
    encrypt_stream,
    plaintext_size,
    read_header,
)

_COPY_CHUNK = 1024 * 1024


@contextmanager
def _reading(path: Path) -> Iterator[BufferedReader]:
    """Open an input, turning the usual mistakes into one-line usage errors."""
    try:
        fh = open(path, "rb")  # closed by the with below, once open errors are mapped
    except FileNotFoundError:
        raise CryptoInputError(f"file not found: {path}") from None
    except IsADirectoryError:
        raise CryptoInputError(f"{path} is a folder, not a file") from None
    except OSError as exc:
        raise CryptoInputError(f"cannot read {path}: {exc.strerror}") from None
    with fh:
        yield fh


def _check_distinct(src: Path, dst: Path) -> None:
    if dst.exists() and src.exists() and os.path.samefile(src, dst):
        raise CryptoInputError(f"the output {dst} is the input; choose another output")


def _mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def encrypt_file(
    src: Path, dst: Path, key: KeySource, *, chunk_size: int = DEFAULT_CHUNK, overwrite: bool = False
) -> FileInfo:
    """Encrypt ``src`` to ``dst`` (same permission bits as ``src``); ``src`` is never modified."""
    src, dst = Path(src), Path(dst)
    _check_distinct(src, dst)
    with _reading(src) as fin, atomic_output(dst, mode=_mode_of(src), overwrite=overwrite) as fout:
        return encrypt_stream(fin, fout, key, chunk_size=chunk_size)


def decrypt_file(src: Path, dst: Path, key: KeySource, *, overwrite: bool = False) -> FileInfo:
    """Decrypt ``src`` to ``dst`` (mode 0600); on any integrity error ``dst`` is not created."""
    src, dst = Path(src), Path(dst)
    _check_distinct(src, dst)
    with _reading(src) as fin, atomic_output(dst, mode=0o600, overwrite=overwrite) as fout:
        return decrypt_stream(fin, fout, key, str(src))


class _Collector:
    """An in-memory sink: the plaintext stays in this process and never touches the disk."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def write(self, data: memoryview, /) -> int:
        self.parts.append(bytes(data))
        return len(data)


def decrypt_to_bytes(path: Path, key: KeySource) -> bytes:
    """Decrypt a whole file into memory; raise before returning anything if any byte fails
    authentication."""
    sink = _Collector()
    with _reading(Path(path)) as fin:
        decrypt_stream(fin, sink, key, str(path))
    return b"".join(sink.parts)


def decrypt_bytes(data: bytes, key: KeySource, where: str) -> bytes:
    """Decrypt an encrypted file's content already in memory (``guard audit --key`` reads the
    file once, so the bytes that were verified are the bytes that get decrypted)."""
    sink = _Collector()
    decrypt_stream(io.BytesIO(data), sink, key, where)
    return b"".join(sink.parts)


def is_encrypted(path: Path) -> bool:
    """True when the file starts with Guard's magic. False for other and unreadable files, so a
    loader can fall through to its own (clearer) error."""
    try:
        with open(path, "rb") as fh:
            return fh.read(len(MAGIC)) == MAGIC
    except OSError:
        return False


def read_info(path: Path) -> FileInfo:
    """The header of an encrypted file, checked for structure but not authenticated (no key)."""
    path = Path(path)
    with _reading(path) as fin:
        header = read_header(fin, str(path))
    return FileInfo.from_header(header, plaintext_size(header, path.stat().st_size))


def info_of_bytes(data: bytes, where: str) -> FileInfo:
    """:func:`read_info` of an encrypted file's content already in memory."""
    header = read_header(io.BytesIO(data), where)
    return FileInfo.from_header(header, plaintext_size(header, len(data)))


def rekey_file(path: Path, old: KeySource, new: KeySource, *, dst: Path | None = None) -> FileInfo:
    """Re-wrap the file's data key for a new KEK; rewrite the header, copy the body as it is.

    The old key must authenticate the header. The body is not decrypted, so the cost is a
    copy; it is still verified on the next decryption. Rewriting in place is atomic too: the
    new file replaces the old one only when complete. Anyone who once held the old key and
    kept the data key can still read the body: to revoke a leaked key, decrypt and re-encrypt.
    """
    path = Path(path)
    target = Path(dst) if dst is not None else path
    with _reading(path) as fin:
        header = read_header(fin, str(path))
        data_key = open_header(header, old, str(path))
        kdf = new.new_params()
        new_header = rewrap(header, data_key, new.derive(kdf), kdf)
        in_place = target.exists() and os.path.samefile(path, target)
        with atomic_output(target, mode=_mode_of(path), overwrite=in_place) as fout:
            fout.write(new_header.to_bytes())
            shutil.copyfileobj(fin, fout, _COPY_CHUNK)
    return FileInfo.from_header(new_header, plaintext_size(new_header, target.stat().st_size))
