"""Encryption at rest and signing for model files.

* Encryption: AES-256-GCM in age's STREAM construction, chunked so any file size fits in bounded
  memory, with a random data key per file wrapped by a key-encryption key (envelope encryption).
  See :mod:`.header` for the format and :mod:`.stream` for the chunking.
* Signing: Ed25519 over an in-toto statement of SHA-256 file digests in a DSSE envelope, the
  shape OpenSSF model signing uses. See :mod:`.signing` and :mod:`.manifest`.

Every primitive comes from ``cryptography``; this package only composes them.
"""

from __future__ import annotations

from guard.defenses.crypto.errors import (
    CryptoInputError,
    IntegrityError,
    NotEncryptedError,
    TamperedError,
    UnsupportedFormatError,
    VerificationError,
    WrongKeyError,
)
from guard.defenses.crypto.evidence import encryption_evidence, signature_evidence
from guard.defenses.crypto.files import (
    decrypt_bytes,
    decrypt_file,
    decrypt_to_bytes,
    encrypt_file,
    is_encrypted,
    read_info,
    rekey_file,
)
from guard.defenses.crypto.keys import (
    KeySource,
    Passphrase,
    RawKey,
    generate_key,
    key_from_env,
    key_source,
    load_key_file,
    passphrase_from_env,
    write_key_file,
)
from guard.defenses.crypto.signing import (
    FileCheck,
    SignResult,
    VerifyResult,
    load_private_key,
    load_public_key,
    sign_paths,
    verify_manifest,
    write_signing_keypair,
)
from guard.defenses.crypto.stream import FileInfo, decrypt_stream, encrypt_stream

__all__ = [
    "CryptoInputError",
    "decrypt_bytes",
    "FileCheck",
    "FileInfo",
    "IntegrityError",
    "KeySource",
    "NotEncryptedError",
    "Passphrase",
    "RawKey",
    "SignResult",
    "TamperedError",
    "UnsupportedFormatError",
    "VerificationError",
    "VerifyResult",
    "WrongKeyError",
    "decrypt_file",
    "decrypt_stream",
    "decrypt_to_bytes",
    "encrypt_file",
    "encrypt_stream",
    "encryption_evidence",
    "generate_key",
    "is_encrypted",
    "key_from_env",
    "key_source",
    "load_key_file",
    "load_private_key",
    "load_public_key",
    "passphrase_from_env",
    "read_info",
    "rekey_file",
    "sign_paths",
    "signature_evidence",
    "verify_manifest",
    "write_key_file",
    "write_signing_keypair",
]
