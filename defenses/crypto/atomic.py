"""Atomic output for encrypted and decrypted files: :func:`guard.fsio.atomic_writer` plus the
checks a user expects from a command (the folder exists, nothing is overwritten unasked)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from guard.defenses.crypto.errors import CryptoInputError
from guard.fsio import atomic_writer


@contextmanager
def atomic_output(path: Path, *, mode: int = 0o644, overwrite: bool = False) -> Iterator[BinaryIO]:
    """Yield a binary file that appears at ``path`` only if the ``with`` block completes."""
    path = Path(path)
    if not path.parent.is_dir():
        raise CryptoInputError(f"output folder does not exist: {path.parent}")
    if path.exists() and not overwrite:
        raise CryptoInputError(f"{path} exists; refusing to overwrite it (pass --force)")
    with atomic_writer(path, mode) as fh:
        yield fh
