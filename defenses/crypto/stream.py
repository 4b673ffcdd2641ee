"""Chunked AES-256-GCM streams, after age's STREAM construction.

STREAM (Hoang, Reyhanitabar, Rogaway, Vizár 2015, https://eprint.iacr.org/2015/189) makes an AEAD
safe for files of any length read a chunk at a time: chunk ``i`` is sealed under the nonce
``nonce_prefix (7 bytes) || i (4 bytes, big-endian) || last (1 byte)``. Because the index and the
last-chunk flag are inside every nonce, a reordered chunk, a truncated file (its new final chunk
was sealed as "not last") and an extended file (its real final chunk was sealed as "last") all
fail authentication. Every chunk holds ``chunk_size`` bytes of plaintext except the last, which
holds 0 to ``chunk_size``; an empty file is one empty last chunk.

Memory stays bounded by the chunk size (two input buffers, so that the reader can know whether a
chunk is the last one before sealing or opening it, and one output buffer); ``encrypt_into`` and
``decrypt_into`` write into those buffers, so a chunk is never copied in Python. Plaintext is
released only chunk by chunk after that chunk authenticates, and callers that must not expose a
partial result (file output, the in-memory audit path) keep it until the whole stream verified.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from typing import Any, Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from guard.defenses.crypto.errors import TamperedError
from guard.defenses.crypto.header import (
    ALGORITHM,
    DEFAULT_CHUNK,
    FORMAT,
    HEADER_BYTES,
    NONCE_PREFIX_BYTES,
    TAG_BYTES,
    Header,
    open_header,
    payload_key,
    seal_header,
)
from guard.defenses.crypto.keys import KEY_BYTES, KeySource

_MAX_CHUNKS = 2**32
_COUNTER = struct.Struct(">IB")


class Source(Protocol):
    """What the streams read from: any binary file opened for reading."""

    def readinto(self, buffer: memoryview, /) -> int | None: ...


class Sink(Protocol):
    """What the streams write to: any binary file opened for writing."""

    def write(self, data: memoryview, /) -> Any: ...


@dataclass(frozen=True, slots=True)
class FileInfo:
    """What a header says about an encrypted file (no secrets): for the CLI and for evidence."""

    version: int
    algorithm: str
    format: str
    key_id: str
    kdf: str
    chunk_size: int
    plaintext_bytes: int | None = None

    @classmethod
    def from_header(cls, header: Header, plaintext_bytes: int | None = None) -> FileInfo:
        return cls(
            version=header.version,
            algorithm=ALGORITHM,
            format=FORMAT,
            key_id=header.key_id.hex(),
            kdf=header.kdf.name,
            chunk_size=header.chunk_size,
            plaintext_bytes=plaintext_bytes,
        )


def chunk_nonce(prefix: bytes, index: int, last: bool) -> bytes:
    """``prefix || index || last``: 7 + 4 + 1 = 12 bytes, the size GCM is built for."""
    if index >= _MAX_CHUNKS:
        raise ValueError(f"too many chunks ({index}); use a larger chunk size")
    return prefix + _COUNTER.pack(index, 1 if last else 0)


def read_full(src: Source, view: memoryview) -> int:
    """Fill ``view`` unless the source ends first (pipes return short reads); return bytes read."""
    got = 0
    while got < len(view):
        n = src.readinto(view[got:])
        if not n:
            break
        got += n
    return got


def read_header(src: Source, where: str) -> Header:
    raw = bytearray(HEADER_BYTES)
    got = read_full(src, memoryview(raw))
    return Header.parse(bytes(raw[:got]), where)


def encrypt_stream(src: Source, dst: Sink, key: KeySource, *, chunk_size: int = DEFAULT_CHUNK) -> FileInfo:
    """Encrypt everything ``src`` yields into ``dst``: header, then the sealed chunks."""
    data_key = os.urandom(KEY_BYTES)
    kdf = key.new_params()
    header = seal_header(key.derive(kdf), kdf, data_key, chunk_size, os.urandom(NONCE_PREFIX_BYTES))
    dst.write(memoryview(header.to_bytes()))
    aead = AESGCM(payload_key(data_key, header))
    bufs = (memoryview(bytearray(chunk_size)), memoryview(bytearray(chunk_size)))
    out = memoryview(bytearray(chunk_size + TAG_BYTES))
    n = read_full(src, bufs[0])
    index, total = 0, 0
    while True:
        cur, ahead = bufs[index % 2], bufs[(index + 1) % 2]
        following = read_full(src, ahead) if n == chunk_size else 0
        last = following == 0
        sealed = out[: n + TAG_BYTES]
        aead.encrypt_into(chunk_nonce(header.nonce_prefix, index, last), cur[:n], None, sealed)
        dst.write(sealed)
        total += n
        if last:
            return FileInfo.from_header(header, total)
        index, n = index + 1, following


def decrypt_stream(src: Source, dst: Sink, key: KeySource, where: str) -> FileInfo:
    """Authenticate the header, then open and write each chunk; raise on the first bad byte.

    Raises an :class:`~guard.defenses.crypto.errors.IntegrityError` subclass naming the problem:
    not encrypted, unsupported version, wrong key, damaged header, damaged or reordered chunk,
    truncated, extended.
    """
    header = read_header(src, where)
    aead = AESGCM(payload_key(open_header(header, key, where), header))
    full = header.chunk_size + TAG_BYTES
    bufs = (memoryview(bytearray(full)), memoryview(bytearray(full)))
    out = memoryview(bytearray(header.chunk_size))
    n = read_full(src, bufs[0])
    index, total = 0, 0
    while True:
        cur, ahead = bufs[index % 2], bufs[(index + 1) % 2]
        following = read_full(src, ahead) if n == full else 0
        last = following == 0
        if n < TAG_BYTES or (last and n == TAG_BYTES and index > 0):
            raise TamperedError(f"{where} is truncated: chunk {index} is incomplete")
        plain = out[: n - TAG_BYTES]
        try:
            aead.decrypt_into(chunk_nonce(header.nonce_prefix, index, last), cur[:n], None, plain)
        except InvalidTag:
            raise _chunk_error(aead, header, cur[:n], index, last, where) from None
        dst.write(plain)
        total += len(plain)
        if last:
            return FileInfo.from_header(header, total)
        index, n = index + 1, following


def _chunk_error(
    aead: AESGCM, header: Header, sealed: memoryview, index: int, last: bool, where: str
) -> TamperedError:
    """Say why a chunk failed: opening it with the other last-flag tells truncation and extension
    apart from damage (this costs one more decryption, on the failure path only)."""
    scratch = bytearray(len(sealed) - TAG_BYTES)
    try:
        aead.decrypt_into(chunk_nonce(header.nonce_prefix, index, not last), sealed, None, scratch)
    except InvalidTag:
        if last:
            return TamperedError(f"{where}: final chunk {index} fails authentication (truncated or damaged)")
        return TamperedError(
            f"{where}: chunk {index} fails authentication (damaged, reordered or taken from another file)"
        )
    if last:
        return TamperedError(
            f"{where} is truncated: it ends after chunk {index}, which is not the final chunk"
        )
    return TamperedError(f"{where} is extended: data follows its final chunk {index}")


def plaintext_size(header: Header, file_size: int) -> int | None:
    """The plaintext length implied by a file's size, or None when the size is inconsistent."""
    body = file_size - HEADER_BYTES
    full = header.chunk_size + TAG_BYTES
    chunks = max(1, -(-body // full))
    size = body - chunks * TAG_BYTES
    return size if body >= TAG_BYTES and size >= 0 else None
