"""An adversarial corpus of model files for ``guard scan``: malicious bypass classes and benign
files made by the real libraries.

``write_corpus(folder, canary)`` writes ``folder/malicious/<klass>/<name>`` and
``folder/benign/<klass>/<name>`` and returns one :class:`CorpusFile` per file. Every malicious
payload, if it were ever loaded, would create ``canary`` (and nothing worse): a test asserts the
file never appears. Malicious files are assembled from raw opcodes and hand-written container
records (see ``_build``); nothing malicious is loaded or executed while building. Generation is
deterministic. The classes and their sources are in README.md beside this file.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

from . import _benign, _classic, _indirect, _multi, _numpy_joblib, _pickle_start, _sniff
from ._common import Spec

__all__ = ["CorpusFile", "MALICIOUS_CLASSES", "write_corpus"]

MALICIOUS_CLASSES = ("pickle-start", "sniff-forgery", "multi-stream", "numpy-joblib",
                     "indirect-callable", "file-write", "classic")


@dataclass(frozen=True)
class CorpusFile:
    name: str
    kind: str  # "malicious" or "benign"
    klass: str
    description: str
    path: Path


def _malicious_specs(canary: Path) -> list[Spec]:
    specs: list[Spec] = []
    for module in (_pickle_start, _sniff, _multi, _numpy_joblib, _indirect, _classic):
        specs.extend(module.build(canary))
    return specs


def write_corpus(folder: Path, canary: Path, *, large: bool = False) -> list[CorpusFile]:
    """Write the corpus under ``folder``; malicious payloads would create ``canary``.

    ``large`` adds a ~200 MB state-dict checkpoint (benign) for scan-time bounds.
    """
    folder, canary = Path(folder), Path(canary).absolute()
    if any(ch in str(canary) for ch in "%\\\n'\""):
        raise ValueError(f"canary path must not contain quotes, %, backslashes or newlines: {canary}")
    files: list[CorpusFile] = []
    seen: set[str] = set()
    for spec in _malicious_specs(canary):
        if spec.name in seen:
            raise AssertionError(f"duplicate corpus name {spec.name}")
        seen.add(spec.name)
        path = folder / "malicious" / spec.klass / spec.name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(spec.data)
        files.append(CorpusFile(spec.name, "malicious", spec.klass, spec.description, path))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # library deprecation chatter while fitting and saving
        for name, klass, description, write in _benign.writers(large):
            if name in seen:
                raise AssertionError(f"duplicate corpus name {name}")
            seen.add(name)
            path = folder / "benign" / klass / name
            path.parent.mkdir(parents=True, exist_ok=True)
            write(path)
            files.append(CorpusFile(name, "benign", klass, description, path))
    return files
