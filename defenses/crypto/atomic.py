"""Atomic output for files too large to hold in memory (the streaming twin of guard.fsio).

Output goes to a temp file in the destination folder (same file system, so the rename is
atomic), is fsynced, renamed over the final name, and the folder is fsynced so the rename
survives a crash. On any error, KeyboardInterrupt included, the temp file is removed: the final
name either holds the complete result or whatever it held before. A SIGKILL can leave a
``.NAME.*.tmp`` file behind, but never a partial file under the final name.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from guard.defenses.crypto.errors import CryptoInputError


@contextmanager
def atomic_output(path: Path, *, mode: int = 0o644, overwrite: bool = False) -> Iterator[BinaryIO]:
    """Yield a binary file that appears at ``path`` only if the ``with`` block completes.

    The temp file is created with mode 0600 (mkstemp) and gets ``mode`` only once complete, so
    decrypted plaintext is never readable by others while it is being written.
    """
    path = Path(path)
    if not path.parent.is_dir():
        raise CryptoInputError(f"output folder does not exist: {path.parent}")
    if path.exists() and not overwrite:
        raise CryptoInputError(f"{path} exists; refusing to overwrite it (pass --force)")
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_folder(path.parent)


def fsync_folder(folder: Path) -> None:
    """Make a rename in ``folder`` durable; a no-op where folders cannot be opened (Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
