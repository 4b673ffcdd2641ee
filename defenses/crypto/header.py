"""The header of Guard's encrypted files: versioned, fixed-size, and authenticated.

Layout (138 bytes, big-endian integers)::

    0   magic          8   b"GUARDENC"
    8   version        1   1
    9   kdf            1   0 raw key, 1 scrypt passphrase
    10  log_n          1   scrypt cost (0 for raw keys)
    11  salt          16   scrypt salt (zeros for raw keys)
    27  chunk_size     4   plaintext bytes per chunk
    31  nonce_prefix   7   random, per file: the first 7 bytes of every chunk nonce
    38  key_id         8   fingerprint of the key-encryption key (KEK)
    46  wrap_nonce    12   random, per wrap
    58  wrapped_key   48   the file's data key under AES-256-GCM with the KEK
    106 mac           32   HMAC-SHA256 of bytes 0..105, keyed from the data key through HKDF

The design follows age (https://age-encryption.org/v1): a random data key per file, wrapped
for the KEK; a header MAC keyed from the data key, so any flipped header bit fails before the
body is touched; and a payload key derived with HKDF from the data key and the nonce prefix.
The wrap authenticates bytes 0..37 as associated data, so a KEK cannot be tricked into
unwrapping under another salt or chunk size. The body depends only on the data key and the
nonce prefix, never on the KEK: rotating the KEK (``guard rekey``) rewrites the header (KDF
fields, key id, wrap, MAC) and leaves the body byte for byte as it is. The header's size is
fixed whatever the KDF, so that a file's layout never depends on its key.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, hmac
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from guard.defenses.crypto.errors import (
    NotEncryptedError,
    TamperedError,
    UnsupportedFormatError,
    WrongKeyError,
)
from guard.defenses.crypto.keys import (
    KEY_BYTES,
    SALT_BYTES,
    KdfKind,
    KdfParams,
    KeySource,
    check_scrypt_cost,
    key_id,
)

MAGIC = b"GUARDENC"
VERSION = 1
ALGORITHM = "AES-256-GCM"
FORMAT = "guard-enc/1 (STREAM, chunked AES-256-GCM, envelope-wrapped data key)"
NONCE_PREFIX_BYTES = 7
TAG_BYTES = 16
MIN_CHUNK = 1024
MAX_CHUNK = 64 * 1024 * 1024
DEFAULT_CHUNK = 1024 * 1024

_BOUND = struct.Struct(">8sBBB16sI7s")  # magic .. nonce_prefix: fixed for the file's life
_KEYED = struct.Struct(">8s12s48s")  # key_id, wrap_nonce, wrapped_key: rewritten by rekey
_MAC_BYTES = 32
HEADER_BYTES = _BOUND.size + _KEYED.size + _MAC_BYTES
_HEADER_MAC_INFO = b"guard-enc v1 header"
_PAYLOAD_INFO = b"guard-enc v1 payload"


@dataclass(frozen=True, slots=True)
class Header:
    """A parsed header. Parsing checks structure only; :func:`open_header` authenticates it."""

    kdf: KdfParams
    chunk_size: int
    nonce_prefix: bytes
    key_id: bytes
    wrap_nonce: bytes
    wrapped_key: bytes
    mac: bytes
    version: int = VERSION

    def bound_bytes(self) -> bytes:
        """Bytes 0..37: the fields the data-key wrap authenticates and rekey never changes."""
        return _BOUND.pack(
            MAGIC, self.version, int(self.kdf.kind), self.kdf.log_n, self.kdf.salt,
            self.chunk_size, self.nonce_prefix,
        )

    def unmaced_bytes(self) -> bytes:
        """Bytes 0..105: everything the header MAC covers."""
        return self.bound_bytes() + _KEYED.pack(self.key_id, self.wrap_nonce, self.wrapped_key)

    def to_bytes(self) -> bytes:
        return self.unmaced_bytes() + self.mac

    @classmethod
    def parse(cls, raw: bytes, where: str) -> Header:
        """Check magic, version, length and field ranges; raise an :class:`IntegrityError` subclass."""
        if raw[: len(MAGIC)] != MAGIC[: len(raw)] or not raw:
            raise NotEncryptedError(f"{where} is not a Guard-encrypted file (or its first bytes are damaged)")
        if len(raw) < HEADER_BYTES:
            raise TamperedError(
                f"{where} is truncated: {len(raw)} bytes, the header alone takes {HEADER_BYTES}"
            )
        magic, version, kind, log_n, salt, chunk_size, prefix = _BOUND.unpack_from(raw, 0)
        if version != VERSION:
            raise UnsupportedFormatError(
                f"{where}: format version {version} is not supported (damaged, or from a newer Guard)"
            )
        if kind == KdfKind.RAW and (log_n != 0 or salt != bytes(SALT_BYTES)):
            raise TamperedError(f"{where}: header damaged (key-derivation fields set for a raw key)")
        if kind == KdfKind.SCRYPT:
            check_scrypt_cost(log_n)
        elif kind != KdfKind.RAW:
            raise UnsupportedFormatError(f"{where}: unknown key-derivation kind {kind} (header damaged)")
        if not MIN_CHUNK <= chunk_size <= MAX_CHUNK:
            raise TamperedError(f"{where}: header damaged (chunk size {chunk_size} out of range)")
        kid, wrap_nonce, wrapped = _KEYED.unpack_from(raw, _BOUND.size)
        return cls(
            kdf=KdfParams(KdfKind(kind), log_n, salt),
            chunk_size=chunk_size,
            nonce_prefix=prefix,
            key_id=kid,
            wrap_nonce=wrap_nonce,
            wrapped_key=wrapped,
            mac=raw[HEADER_BYTES - _MAC_BYTES : HEADER_BYTES],
            version=version,
        )


def _hkdf(data_key: bytes, salt: bytes | None, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=salt, info=info).derive(data_key)


def payload_key(data_key: bytes, header: Header) -> bytes:
    """The AES-256-GCM key of the chunks: HKDF of the data key, salted with the nonce prefix."""
    return _hkdf(data_key, header.nonce_prefix, _PAYLOAD_INFO)


def _header_mac(data_key: bytes, unmaced: bytes) -> hmac.HMAC:
    mac = hmac.HMAC(_hkdf(data_key, None, _HEADER_MAC_INFO), hashes.SHA256())
    mac.update(unmaced)
    return mac


def seal_header(
    kek: bytes, kdf: KdfParams, data_key: bytes, chunk_size: int, nonce_prefix: bytes
) -> Header:
    """Wrap ``data_key`` for ``kek`` and MAC the whole header."""
    if not MIN_CHUNK <= chunk_size <= MAX_CHUNK:
        raise ValueError(f"chunk_size must lie in [{MIN_CHUNK}, {MAX_CHUNK}], got {chunk_size}")
    draft = Header(kdf, chunk_size, nonce_prefix, key_id(kek), os.urandom(12), bytes(48), bytes(_MAC_BYTES))
    wrapped = AESGCM(kek).encrypt(draft.wrap_nonce, data_key, draft.bound_bytes())
    unmaced = Header(kdf, chunk_size, nonce_prefix, draft.key_id, draft.wrap_nonce, wrapped, draft.mac)
    mac = _header_mac(data_key, unmaced.unmaced_bytes()).finalize()
    return Header(kdf, chunk_size, nonce_prefix, draft.key_id, draft.wrap_nonce, wrapped, mac)


def open_header(header: Header, key: KeySource, where: str) -> bytes:
    """Unwrap and return the data key, after authenticating every header byte.

    The error says "wrong key or tampered header" only when the key id differs and the unwrap
    fails (a changed salt, cost or key id in the header cannot be told from a wrong key); a key id that
    matches but does not unwrap, or a MAC that fails, means the header itself was changed.
    """
    kek = key.derive(header.kdf)
    given = key_id(kek)
    try:
        data_key = AESGCM(kek).decrypt(header.wrap_nonce, header.wrapped_key, header.bound_bytes())
    except InvalidTag:
        if given != header.key_id:
            # The key id is the only witness, and the header holds it (and, for a passphrase,
            # the salt and cost that derive the key): a changed header reads the same as a
            # wrong key, so the message names both.
            raise WrongKeyError(
                f"wrong key or tampered header for {where}: it was encrypted with key id "
                f"{header.key_id.hex()}, {key.label} has key id {given.hex()}"
            ) from None
        raise TamperedError(f"{where}: header damaged (the data key does not unwrap)") from None
    try:
        _header_mac(data_key, header.unmaced_bytes()).verify(header.mac)
    except InvalidSignature:
        raise TamperedError(f"{where}: header damaged (header MAC does not match)") from None
    return data_key


def rewrap(header: Header, data_key: bytes, new_kek: bytes, new_kdf: KdfParams) -> Header:
    """The same file under a new KEK: same data key, chunk size and nonce prefix, so same body."""
    return seal_header(new_kek, new_kdf, data_key, header.chunk_size, header.nonce_prefix)
