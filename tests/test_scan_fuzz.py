"""Fuzzing the scanner with byte-mutated copies of real files.

Benign checkpoints made by the real libraries, with bytes flipped, inserted, deleted or cut
off, must never rate high: damage makes a file fail to load, not dangerous. The one honest
exception is a mutation that spells a new import name (``_rebuild_tensor_v2`` turned into
``_rebuild_tensor_vX``): the scanner cannot know that name does not exist, so it rates it by
its family. Mutated malicious files must never crash the scanner (a ``scan-error``) and never
hit a bound meant for bombs. Seeded: every run mutates the same bytes.
"""

from __future__ import annotations

import io
import pickle
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import joblib
import numpy as np
import pytest
import torch
from safetensors.torch import save
from scan_corpus import CorpusFile, write_corpus
from sklearn.datasets import load_iris
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression

import guard.defenses.scan.keras as keras_module
import guard.defenses.scan.rules as rules_module
import guard.defenses.scan.skops as skops_module
import guard.defenses.scan.walker as walker_module
from guard.defenses.scan import ScanResult, Severity, scan_bytes

MUTATIONS = 60


def _torch(obj: object, **kwargs: object) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf, **kwargs)
    return buf.getvalue()


def _joblib(obj: object, **kwargs: object) -> bytes:
    buf = io.BytesIO()
    joblib.dump(obj, buf, **kwargs)
    return buf.getvalue()


@pytest.fixture(scope="module")
def benign() -> dict[str, bytes]:
    x, y = load_iris(return_X_y=True)
    g = torch.Generator().manual_seed(0)
    forest = RandomForestClassifier(5, random_state=0).fit(x, y)
    return {
        "state-dict-1500-tensors.pt": _torch({f"t{i}": torch.randn(64, generator=g) for i in range(1500)}),
        "legacy-state-dict.pt": _torch({f"t{i}": torch.randn(64, generator=g) for i in range(50)},
                                       _use_new_zipfile_serialization=False),
        "logreg.joblib": _joblib(LogisticRegression(max_iter=500).fit(x, y)),
        "forest.joblib": _joblib(forest),
        "forest-zlib.joblib": _joblib(forest, compress=3),
        "weights.safetensors": save({f"t{i}": torch.randn(64, generator=g) for i in range(100)}),
        "logreg.pkl": pickle.dumps(LogisticRegression(max_iter=500).fit(x, y), protocol=2),
    }


RATERS = (walker_module, keras_module, skops_module)


@contextmanager
def recorded_imports() -> Iterator[set[str]]:
    """Every ``module.name`` the scanners rate while the block runs."""
    seen: set[str] = set()
    real = rules_module.rate_import

    def record(module: str, name: str) -> object:
        seen.add(f"{module}.{name}")
        return real(module, name)

    for scanner in RATERS:
        scanner.rate_import = record  # type: ignore[attr-defined]
    try:
        yield seen
    finally:
        for scanner in RATERS:
            scanner.rate_import = real  # type: ignore[attr-defined]


def mutate(data: bytes, rng: np.random.Generator) -> bytes:
    out = bytearray(data)
    kind = int(rng.integers(4))
    at = int(rng.integers(len(out)))
    if kind == 0:
        for _ in range(int(rng.integers(1, 4))):
            out[int(rng.integers(len(out)))] = int(rng.integers(256))
    elif kind == 1:
        del out[max(1, at):]
    elif kind == 2:
        out[at:at] = rng.integers(0, 256, int(rng.integers(1, 16)), dtype=np.uint8).tobytes()
    else:
        del out[at:at + int(rng.integers(1, 64))]
    return bytes(out)


def no_crash(result: ScanResult) -> None:
    for f in result.findings:
        assert f.rule not in ("scan-error", "resource-limit"), f


def check_benign(name: str, data: bytes, rng: np.random.Generator, mutations: int) -> None:
    with recorded_imports() as known:
        original = scan_bytes(data, name)
    assert original.status == "clean", (name, original.findings)
    for _ in range(mutations):
        result = scan_bytes(mutate(data, rng), name)
        no_crash(result)
        for f in result.findings:
            if f.severity >= Severity.HIGH:
                assert f.global_name and f.global_name not in known, (name, f)


def test_mutated_benign_checkpoints_never_rate_high(benign: dict[str, bytes]) -> None:
    rng = np.random.default_rng(20261202)
    for name, data in benign.items():
        check_benign(name, data, rng, MUTATIONS)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> list[CorpusFile]:
    folder = tmp_path_factory.mktemp("corpus")
    return write_corpus(folder / "files", folder / "CANARY")


def test_mutated_corpus_files(corpus: list[CorpusFile]) -> None:
    """Every benign file of the red-team corpus and every format fixture, mutated, never rates
    high; every malicious one, mutated, never crashes the scanner."""
    rng = np.random.default_rng(11)
    fixtures = Path(__file__).parent / "data" / "scan"
    for f in corpus:
        data = f.path.read_bytes()
        if f.kind == "benign":
            check_benign(f.name, data, rng, 8)
        else:
            for _ in range(4):
                no_crash(scan_bytes(mutate(data, rng), f.name))
    for path in sorted(fixtures.iterdir()):
        if path.suffix == ".py":
            continue
        for _ in range(8):
            no_crash(scan_bytes(mutate(path.read_bytes(), rng), path.name))


def test_mutated_malicious_files_never_crash_the_scanner() -> None:
    rng = np.random.default_rng(7)
    payloads = [
        b"\x80\x02cos\nsystem\nq\x00X\x07\x00\x00\x00touch xq\x01\x85q\x02Rq\x03.",
        b"cposix\nsystem\n(S'touch x'\ntR.",
        b"\x80\x04\x95\x1d\x00\x00\x00\x00\x00\x00\x00\x8c\x02os\x94\x8c\x06system\x94\x93\x8c\x01x\x85R.",
    ]
    archive = io.BytesIO()
    import zipfile

    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("m/data.pkl", payloads[0])
        z.writestr("m/version", b"3\n")
    payloads.append(archive.getvalue())
    for data in payloads:
        assert scan_bytes(data, "evil.pkl").fails(Severity.HIGH)
        for _ in range(200):
            no_crash(scan_bytes(mutate(data, rng), "evil.pkl"))
