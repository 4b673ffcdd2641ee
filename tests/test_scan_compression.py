"""Compressed streams the scanner opens: LZ4 frames (with the lz4 package and without it) and
zip's LZMA method, each checked against the real library's output."""

from __future__ import annotations

import io
import os
import sys
import zipfile

import numpy as np
import pytest

from guard.defenses.scan import Severity, scan_bytes
from guard.defenses.scan.compression import CorruptStream, decompressor

lz4_frame = pytest.importorskip("lz4.frame")

EVIL = b"\x80\x02cposix\nsystem\nq\x00X\x07\x00\x00\x00touch xq\x01\x85q\x02Rq\x03."


def _payloads() -> list[bytes]:
    rng = np.random.default_rng(0)
    text = b"".join(b"weights %d " % i for i in range(20000))
    return [b"", b"a", EVIL, os.urandom(70000), text, rng.integers(0, 4, 300000, dtype=np.uint8).tobytes()]


def _decode(data: bytes, room: int = 1 << 30) -> bytes:
    decompress, done = decompressor("lz4")
    out = b""
    for at in range(0, len(data), 4096):  # fed in chunks, as the scanner feeds it
        out += decompress(data[at:at + 4096], room - len(out))
    assert done()
    return out


@pytest.fixture(params=["lz4-package", "guard-decoder"])
def lz4_impl(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "guard-decoder":
        monkeypatch.setitem(sys.modules, "lz4.frame", None)  # import lz4.frame now fails
    return str(request.param)


@pytest.mark.parametrize("linked", [True, False])
@pytest.mark.parametrize("checksums", [True, False])
def test_lz4_frames_decode_like_the_library(lz4_impl: str, linked: bool, checksums: bool) -> None:
    for payload in _payloads():
        frame = lz4_frame.compress(payload, block_linked=linked, content_checksum=checksums,
                                   block_checksum=checksums, store_size=checksums,
                                   block_size=lz4_frame.BLOCKSIZE_MAX64KB)
        assert _decode(frame) == payload


def test_lz4_output_is_capped(lz4_impl: str) -> None:
    frame = lz4_frame.compress(b"\0" * (8 << 20))
    decompress, _ = decompressor("lz4")
    assert len(decompress(frame, 1000)) <= 1000


def test_corrupt_lz4_is_an_error_not_a_crash(lz4_impl: str) -> None:
    frame = bytearray(lz4_frame.compress(os.urandom(1000) + b"x" * 5000, block_linked=False))
    rng = np.random.default_rng(1)
    outcomes = {"decoded": 0, "refused": 0}
    for _ in range(200):
        bad = bytearray(frame)
        bad[int(rng.integers(7, len(bad)))] ^= 0xFF
        try:  # any other exception type fails the test
            _decode(bytes(bad))
            outcomes["decoded"] += 1
        except (CorruptStream, ValueError, AssertionError):  # AssertionError: stream never ended
            outcomes["refused"] += 1
    assert outcomes["refused"] > 0 and sum(outcomes.values()) == 200


def test_lz4_joblib_payload_is_found(lz4_impl: str) -> None:
    result = scan_bytes(lz4_frame.compress(EVIL), "model.joblib")
    assert result.fails(Severity.CRITICAL), result.findings


def test_zip_lzma_entry_is_opened() -> None:
    buf = io.BytesIO()
    np.save(buf, np.array([1.0]))  # a plain array beside the object one
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_LZMA) as z:
        z.writestr("plain.npy", buf.getvalue())
        z.writestr("evil.npy", b"\x93NUMPY\x01\x00v\x00{'descr': '|O', 'fortran_order': False, "
                   b"'shape': (1,), }" + b" " * 59 + b"\n" + EVIL)
    result = scan_bytes(archive.getvalue(), "arrays.npz")
    assert result.fails(Severity.CRITICAL), result.findings
    assert all(f.rule != "unsupported-compression" for f in result.findings)
