"""Errors of encryption and signing, split by whose fault they are and what the exit code must be.

Two families, because the CLI must tell them apart:

* :class:`CryptoInputError` is a usage problem (a key file that is missing or malformed, an unset
  environment variable, an output that already exists). It derives from
  :class:`guard.errors.GuardInputError`, so the CLI reports it with exit code 2.
* :class:`IntegrityError` means the bytes cannot be trusted: a wrong key, a flipped bit, a truncated
  or extended file, a digest or signature that does not match. The CLI reports it with exit code 1,
  like a failing finding, and never writes plaintext.
"""

from __future__ import annotations

from guard.errors import GuardInputError, IntegrityFailure


class CryptoInputError(GuardInputError):
    """A key, key file, option or output path that the user must fix. Exit code 2."""


class IntegrityError(IntegrityFailure):
    """The data cannot be trusted (wrong key, tampering, truncation, bad signature). Exit code 1."""


class NotEncryptedError(IntegrityError):
    """The file does not start with Guard's magic: not encrypted by Guard, or its first bytes are damaged."""


class UnsupportedFormatError(IntegrityError):
    """A format version or header field this Guard does not know: damaged, or from a newer Guard."""


class WrongKeyError(IntegrityError):
    """The key (or passphrase) given is not the one the file was encrypted with."""


class TamperedError(IntegrityError):
    """The header or body fails authentication: damaged, truncated, extended or reordered."""


class VerificationError(IntegrityError):
    """A signed manifest whose signature or file digests do not verify."""
