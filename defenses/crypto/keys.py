"""Key-encryption keys (KEKs): from a key file, an environment variable or a passphrase.

Every encrypted file has its own random data key; the KEK only wraps it (envelope encryption).
The KEK is therefore the one secret a user keeps, and changing it rewrites a header, not the file.

A KEK comes from one of three places, mirroring how teams hold secrets:

* a key file written by ``guard keygen`` (mode 0600), for laptops and build machines;
* an environment variable, for CI secrets and Kubernetes, where files are awkward;
* a passphrase (in an environment variable, never on the command line, where ``ps`` would show
  it), stretched with scrypt (Percival 2009, https://www.tarsnap.com/scrypt/scrypt.pdf) using a
  random per-file salt that the header carries.

Key ids are the first 8 bytes of SHA-256 over a domain tag and the key: they let Guard say
"wrong key" before it tries anything, and let reports name a key without revealing it.
"""

from __future__ import annotations

import base64
import binascii
import os
import stat
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from guard.defenses.crypto.errors import CryptoInputError, UnsupportedFormatError, WrongKeyError
from guard.fsio import atomic_write_text
from guard.limits import limit

KEY_BYTES = 32
KEY_ID_BYTES = 8
SALT_BYTES = 16
KEY_FILE_TAG = "guard-kek-v1:"
_KEY_ID_DOMAIN = b"guard key id v1\x00"

# scrypt cost: N = 2**17, r = 8, p = 1 takes 128 MiB and about 0.3 s here (OWASP's minimum).
# r and p are fixed by the format; only log2(N) travels in the header.
SCRYPT_LOG_N = 17
SCRYPT_R = 8
SCRYPT_P = 1
# A header may ask for at most 2**20 (1 GiB): a damaged or hostile header must not make us
# allocate without bound, and below 2**10 a passphrase is barely protected at all.
SCRYPT_MIN_LOG_N = 10
SCRYPT_MAX_LOG_N = 20


class KdfKind(IntEnum):
    """How the header's KEK is obtained: given directly, or derived from a passphrase."""

    RAW = 0
    SCRYPT = 1


@dataclass(frozen=True, slots=True)
class KdfParams:
    """The KEK derivation recorded in a header (zero salt and cost for raw keys)."""

    kind: KdfKind
    log_n: int = 0
    salt: bytes = bytes(SALT_BYTES)

    @property
    def name(self) -> str:
        return "scrypt" if self.kind is KdfKind.SCRYPT else "raw"


def key_id(kek: bytes) -> bytes:
    """The 8-byte fingerprint of a KEK: safe to show, since the key itself is 256 random bits
    (or the output of scrypt, which is as costly to guess through this id as through the file)."""
    digest = hashes.Hash(hashes.SHA256())
    digest.update(_KEY_ID_DOMAIN + kek)
    return digest.finalize()[:KEY_ID_BYTES]


@dataclass(frozen=True, slots=True, repr=False)
class RawKey:
    """A 256-bit KEK given as is (key file or environment variable)."""

    key: bytes
    label: str

    def __post_init__(self) -> None:
        if len(self.key) != KEY_BYTES:
            raise CryptoInputError(f"{self.label}: a key must be {KEY_BYTES} bytes, got {len(self.key)}")

    def __repr__(self) -> str:
        return f"RawKey({self.label}, id {key_id(self.key).hex()})"

    def new_params(self) -> KdfParams:
        return KdfParams(KdfKind.RAW)

    def derive(self, params: KdfParams) -> bytes:
        if params.kind is not KdfKind.RAW:
            raise WrongKeyError(
                f"the file was encrypted with a passphrase, but {self.label} is a key: use --passphrase-env"
            )
        return self.key


@dataclass(frozen=True, slots=True, repr=False)
class Passphrase:
    """A passphrase, stretched with scrypt and the header's salt into the KEK."""

    secret: bytes
    label: str
    log_n: int = SCRYPT_LOG_N

    def __post_init__(self) -> None:
        if not self.secret:
            raise CryptoInputError(f"{self.label}: the passphrase is empty")
        if not SCRYPT_MIN_LOG_N <= self.log_n <= SCRYPT_MAX_LOG_N:
            raise CryptoInputError(
                f"log_n must lie in [{SCRYPT_MIN_LOG_N}, {SCRYPT_MAX_LOG_N}], got {self.log_n}"
            )

    def __repr__(self) -> str:
        return f"Passphrase({self.label})"

    def new_params(self) -> KdfParams:
        return KdfParams(KdfKind.SCRYPT, self.log_n, os.urandom(SALT_BYTES))

    def derive(self, params: KdfParams) -> bytes:
        if params.kind is not KdfKind.SCRYPT:
            raise WrongKeyError(
                f"the file was encrypted with a key, but {self.label} is a passphrase: use --key or --key-env"
            )
        check_scrypt_cost(params.log_n)
        kdf = Scrypt(salt=params.salt, length=KEY_BYTES, n=2**params.log_n, r=SCRYPT_R, p=SCRYPT_P)
        return kdf.derive(self.secret)


KeySource = RawKey | Passphrase


def check_scrypt_cost(log_n: int) -> None:
    """Refuse a header's scrypt cost outside the accepted range before any memory is spent."""
    if not SCRYPT_MIN_LOG_N <= log_n <= SCRYPT_MAX_LOG_N:
        raise UnsupportedFormatError(
            f"header asks for scrypt cost 2**{log_n}, outside [2**{SCRYPT_MIN_LOG_N}, "
            f"2**{SCRYPT_MAX_LOG_N}]: the header is damaged"
        )


def generate_key() -> bytes:
    """A fresh 256-bit KEK from the operating system's CSPRNG."""
    return AESGCM.generate_key(bit_length=256)


def format_key(key: bytes) -> str:
    """The key file's text: two comment lines, then ``guard-kek-v1:<base64>``."""
    return (
        "# Guard key-encryption key (AES-256). Keep it secret: whoever holds it can decrypt,\n"
        f"# and losing it loses every file encrypted with it. Key id {key_id(key).hex()}.\n"
        f"{KEY_FILE_TAG}{base64.b64encode(key).decode('ascii')}\n"
    )


def parse_key(text: str, label: str) -> RawKey:
    """Read a key from key-file text or an environment variable's value.

    Accepts the key-file line (``guard-kek-v1:...``), bare base64 of 32 bytes, or 64 hex digits,
    so keys from a secrets manager can be used without rewrapping them.
    """
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    if len(lines) != 1:
        raise CryptoInputError(f"{label}: expected one key line, found {len(lines)}")
    value = lines[0].removeprefix(KEY_FILE_TAG)
    if len(value) == 2 * KEY_BYTES:
        try:
            return RawKey(bytes.fromhex(value), label)
        except ValueError:
            pass
    try:
        raw = base64.b64decode(value, validate=True)
    except binascii.Error:
        raw = b""
    if len(raw) != KEY_BYTES:
        raise CryptoInputError(
            f"{label}: not a 256-bit key "
            "(expected `guard keygen` output, base64 of 32 bytes or 64 hex digits)"
        )
    return RawKey(raw, label)


def write_key_file(path: Path, key: bytes, *, overwrite: bool = False) -> None:
    """Write a key file atomically with mode 0600 (the temp file is 0600 from its creation)."""
    if path.exists() and not overwrite:
        raise CryptoInputError(f"{path} exists; refusing to overwrite a key (pass --force)")
    atomic_write_text(path, format_key(key), mode=0o600)


def read_bounded(path: Path, what: str, limit: int) -> bytes:
    """A small file (key, manifest) read whole, refusing one larger than ``limit`` bytes, and
    a FIFO or device (which would block or never end) before reading a byte."""
    from guard.fsio import NotRegularFile, read_regular_file

    try:
        return read_regular_file(path, limit)
    except FileNotFoundError:
        raise CryptoInputError(f"{what} not found: {path}") from None
    except NotRegularFile as exc:
        raise CryptoInputError(f"{what} {exc}") from None
    except ValueError:
        raise CryptoInputError(f"{path} is too large to be a {what} (over {limit} bytes)") from None
    except OSError as exc:
        raise CryptoInputError(f"cannot read {what} {path}: {exc.strerror or exc}") from None


def load_key_file(path: Path) -> RawKey:
    """Load a KEK from a key file written by ``guard keygen`` (or holding base64/hex of 32 bytes)."""
    data = read_bounded(path, "key file", limit("key_bytes"))
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        raise CryptoInputError(f"{path} is not a key file (not text)") from None
    return parse_key(text, f"key file {path}")


def key_file_too_open(path: Path) -> bool:
    """True when group or others may read or write the key file (worth a warning, like ssh)."""
    if os.name != "posix":
        return False
    return bool(path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO))


def key_from_env(var: str) -> RawKey:
    """Load a KEK from an environment variable (same text forms as a key file)."""
    value = os.environ.get(var)
    if not value:
        raise CryptoInputError(f"environment variable {var} is not set or empty")
    return parse_key(value, f"environment variable {var}")


def passphrase_from_env(var: str, *, log_n: int = SCRYPT_LOG_N) -> Passphrase:
    """A passphrase read from an environment variable (UTF-8), never from the command line."""
    value = os.environ.get(var)
    if not value:
        raise CryptoInputError(f"environment variable {var} is not set or empty")
    return Passphrase(value.encode("utf-8"), f"passphrase from {var}", log_n)


def key_source(
    key_file: Path | None = None,
    key_env: str | None = None,
    passphrase_env: str | None = None,
    *,
    option_prefix: str = "",
) -> KeySource:
    """The KEK named by exactly one of ``--key``, ``--key-env`` and ``--passphrase-env``
    (``option_prefix`` names them in the error, e.g. ``new-`` for ``guard rekey --new-key``)."""
    given = [x for x in (key_file, key_env, passphrase_env) if x is not None]
    if len(given) == 1 and key_file is not None:
        return load_key_file(Path(key_file))
    if len(given) == 1 and key_env is not None:
        return key_from_env(key_env)
    if len(given) == 1 and passphrase_env is not None:
        return passphrase_from_env(passphrase_env)
    p = option_prefix
    raise CryptoInputError(f"give exactly one of --{p}key FILE, --{p}key-env VAR, --{p}passphrase-env VAR")
