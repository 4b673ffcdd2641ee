"""The encrypted format: round trips, and a clear IntegrityError for every kind of damage.

Files use 1 KiB chunks so that a few KiB span several chunks and every header bit and every
truncation length can be tried exhaustively in well under a second.
"""

from __future__ import annotations

import io
import os
import random
from pathlib import Path

import pytest

from guard.defenses.crypto import (
    IntegrityError,
    NotEncryptedError,
    Passphrase,
    RawKey,
    TamperedError,
    UnsupportedFormatError,
    WrongKeyError,
    decrypt_file,
    decrypt_stream,
    decrypt_to_bytes,
    encrypt_file,
    encrypt_stream,
    is_encrypted,
    read_info,
    rekey_file,
)
from guard.defenses.crypto.header import HEADER_BYTES, TAG_BYTES
from guard.defenses.crypto.keys import key_id

CHUNK = 1024
FULL = CHUNK + TAG_BYTES
KEY = RawKey(bytes(range(32)), "test key")
OTHER = RawKey(bytes(range(1, 33)), "other key")


def seal(plain: bytes, key: RawKey | Passphrase = KEY, chunk: int = CHUNK) -> bytes:
    out = io.BytesIO()
    encrypt_stream(io.BytesIO(plain), out, key, chunk_size=chunk)
    return out.getvalue()


def open_(sealed: bytes, key: RawKey | Passphrase = KEY) -> bytes:
    out = io.BytesIO()
    decrypt_stream(io.BytesIO(sealed), out, key, "sample")
    return out.getvalue()


def pw(secret: bytes = b"correct horse") -> Passphrase:
    return Passphrase(secret, "test passphrase", log_n=10)


PLAIN = random.Random(0).randbytes(3 * CHUNK + 100)
SEALED = seal(PLAIN)


@pytest.mark.parametrize("size", [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK, 3 * CHUNK + 100])
def test_round_trip_and_layout(size: int) -> None:
    plain = os.urandom(size)
    sealed = seal(plain)
    assert open_(sealed) == plain
    chunks = max(1, -(-size // CHUNK))  # an empty file is one empty final chunk; no empty tail chunk
    assert len(sealed) == HEADER_BYTES + size + chunks * TAG_BYTES


def test_same_plaintext_twice_gives_unrelated_ciphertexts() -> None:
    assert seal(PLAIN)[HEADER_BYTES:] != SEALED[HEADER_BYTES:]


def test_every_header_bit_flip_is_detected_and_named() -> None:
    for bit in range(HEADER_BYTES * 8):
        damaged = bytearray(SEALED)
        damaged[bit // 8] ^= 1 << (bit % 8)
        with pytest.raises(IntegrityError) as err:
            open_(bytes(damaged))
        offset = bit // 8
        expected: type[IntegrityError] = TamperedError
        if offset < 8:
            expected = NotEncryptedError
        elif offset in (8, 9):  # version, key-derivation kind
            expected = UnsupportedFormatError
        assert type(err.value) is expected, (offset, err.value)


def test_passphrase_header_flips_are_detected() -> None:
    sealed = seal(PLAIN, pw())
    for offset in range(8, 38):  # version, KDF kind, scrypt cost, salt, chunk size, nonce prefix
        for bit in range(8):
            damaged = bytearray(sealed)
            damaged[offset] ^= 1 << bit
            with pytest.raises(IntegrityError):
                open_(bytes(damaged), pw())


def test_sampled_body_bit_flips_are_detected() -> None:
    rng = random.Random(1)
    edges = {HEADER_BYTES + i * FULL + d for i in range(4) for d in (0, -1)}  # chunk starts, tag ends
    positions = edges | {HEADER_BYTES, len(SEALED) - 1}
    positions |= {rng.randrange(HEADER_BYTES, len(SEALED)) for _ in range(300)}
    for pos in sorted(p for p in positions if HEADER_BYTES <= p < len(SEALED)):
        damaged = bytearray(SEALED)
        damaged[pos] ^= 1 << rng.randrange(8)
        with pytest.raises(TamperedError):
            open_(bytes(damaged))


def test_every_truncation_is_detected() -> None:
    for length in range(len(SEALED)):
        with pytest.raises(IntegrityError):
            open_(SEALED[:length])


def test_truncation_at_a_chunk_boundary_is_named() -> None:
    with pytest.raises(TamperedError, match="truncated: it ends after chunk 1"):
        open_(SEALED[: HEADER_BYTES + 2 * FULL])


@pytest.mark.parametrize("tail", [b"\x00", bytes(TAG_BYTES), bytes(FULL), b"x" * 5000])
def test_extension_is_detected(tail: bytes) -> None:
    with pytest.raises(TamperedError):
        open_(SEALED + tail)


def test_extension_after_a_full_final_chunk_is_named() -> None:
    sealed = seal(PLAIN[: 2 * CHUNK])
    with pytest.raises(TamperedError, match="extended"):
        open_(sealed + sealed[HEADER_BYTES : HEADER_BYTES + FULL])


def test_reordered_duplicated_and_foreign_chunks_are_detected() -> None:
    body = SEALED[HEADER_BYTES:]
    chunks = [body[i : i + FULL] for i in range(0, len(body), FULL)]
    swapped = SEALED[:HEADER_BYTES] + chunks[1] + chunks[0] + b"".join(chunks[2:])
    duplicated = SEALED[:HEADER_BYTES] + chunks[0] + b"".join(chunks)
    other = seal(PLAIN)  # same key, other data key: its chunks do not fit this header
    foreign = SEALED[:HEADER_BYTES] + other[HEADER_BYTES : HEADER_BYTES + FULL] + b"".join(chunks[1:])
    for damaged in (swapped, duplicated, foreign, other[:HEADER_BYTES] + body):
        with pytest.raises(TamperedError):
            open_(damaged)


def test_wrong_key_and_wrong_kind_of_key() -> None:
    with pytest.raises(WrongKeyError, match="key id"):
        open_(SEALED, OTHER)
    with pytest.raises(WrongKeyError, match="passphrase"):
        open_(seal(b"x", pw()), KEY)
    with pytest.raises(WrongKeyError, match="key"):
        open_(SEALED, pw())
    with pytest.raises(WrongKeyError):
        open_(seal(b"x", pw()), pw(b"wrong"))
    assert open_(seal(b"secret", pw()), pw()) == b"secret"


def test_not_encrypted() -> None:
    with pytest.raises(NotEncryptedError):
        open_(b"PK\x03\x04 a zip file")
    with pytest.raises(NotEncryptedError):
        open_(b"")


def test_files_round_trip_in_memory_and_on_disk(tmp_path: Path) -> None:
    src = tmp_path / "model.pt"
    src.write_bytes(PLAIN)
    os.chmod(src, 0o640)
    info = encrypt_file(src, tmp_path / "model.pt.enc", KEY, chunk_size=CHUNK)
    assert info.plaintext_bytes == len(PLAIN) and info.key_id == read_info(tmp_path / "model.pt.enc").key_id
    assert read_info(tmp_path / "model.pt.enc").plaintext_bytes == len(PLAIN)
    assert (tmp_path / "model.pt.enc").stat().st_mode & 0o777 == 0o640
    assert is_encrypted(tmp_path / "model.pt.enc") and not is_encrypted(src)
    assert not is_encrypted(tmp_path / "missing")
    assert decrypt_to_bytes(tmp_path / "model.pt.enc", KEY) == PLAIN
    decrypt_file(tmp_path / "model.pt.enc", tmp_path / "back.pt", KEY)
    assert (tmp_path / "back.pt").read_bytes() == PLAIN
    assert (tmp_path / "back.pt").stat().st_mode & 0o777 == 0o600


def test_failed_decryption_leaves_no_plaintext(tmp_path: Path) -> None:
    enc = tmp_path / "model.pt.enc"
    damaged = bytearray(SEALED)
    damaged[-1] ^= 1  # the last chunk: every earlier chunk authenticates and is written first
    enc.write_bytes(bytes(damaged))
    with pytest.raises(TamperedError):
        decrypt_file(enc, tmp_path / "model.pt", KEY)
    enc.write_bytes(SEALED)
    with pytest.raises(WrongKeyError):
        decrypt_file(enc, tmp_path / "model.pt", OTHER)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt.enc"]


def test_rekey_rewrites_only_the_header(tmp_path: Path) -> None:
    enc = tmp_path / "m.enc"
    enc.write_bytes(SEALED)
    info = rekey_file(enc, KEY, OTHER)
    rekeyed = enc.read_bytes()
    assert rekeyed[HEADER_BYTES:] == SEALED[HEADER_BYTES:] and rekeyed[:HEADER_BYTES] != SEALED[:HEADER_BYTES]
    assert read_info(enc).key_id == info.key_id == key_id(OTHER.key).hex() != key_id(KEY.key).hex()
    assert open_(rekeyed, OTHER) == PLAIN
    with pytest.raises(WrongKeyError):
        open_(rekeyed, KEY)
    rekey_file(enc, OTHER, pw(), dst=tmp_path / "p.enc")
    assert open_((tmp_path / "p.enc").read_bytes(), pw()) == PLAIN
    with pytest.raises(WrongKeyError):
        rekey_file(enc, KEY, OTHER)
    assert enc.read_bytes() == rekeyed


def test_chunk_size_is_validated() -> None:
    with pytest.raises(ValueError, match="chunk_size"):
        seal(b"x", chunk=100)
