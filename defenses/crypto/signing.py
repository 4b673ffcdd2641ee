"""Ed25519 signatures over model files: ``guard sign`` writes a manifest, ``guard verify`` checks it.

The manifest is a DSSE envelope (https://github.com/secure-systems-lab/dsse) whose payload is
the in-toto statement of :mod:`guard.defenses.crypto.manifest`. DSSE signs the pre-authentication
encoding (PAE) of the payload type and the payload bytes, so a signature can never be replayed
as a signature over a different kind of document. The payload is parsed only after its
signature verifies: nothing in an unauthenticated manifest steers what Guard reads.

Key fingerprints are ``sha256:`` and the hex SHA-256 of the public key's DER
SubjectPublicKeyInfo, the keyid convention of sigstore and in-toto tooling.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from guard.defenses.crypto.errors import CryptoInputError, VerificationError
from guard.defenses.crypto.keys import read_bounded
from guard.defenses.crypto.manifest import (
    Resource,
    build_statement,
    collect_files,
    parse_statement,
    sha256_file,
    unexpected_files,
)
from guard.fsio import NotRegularFile, atomic_write_bytes, atomic_write_text
from guard.limits import limit
from guard.serialization import parse_json

PAYLOAD_TYPE = "application/vnd.in-toto+json"


def fingerprint(public_key: Ed25519PublicKey) -> str:
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    digest = hashes.Hash(hashes.SHA256())
    digest.update(der)
    return "sha256:" + digest.finalize().hex()


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE's pre-authentication encoding: ``DSSEv1 SP len(type) SP type SP len(body) SP body``."""
    kind = payload_type.encode("utf-8")
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(payload), payload)


def write_signing_keypair(out: Path, *, passphrase: bytes | None = None, overwrite: bool = False) -> str:
    """Write a new Ed25519 private key to ``out`` (PKCS#8 PEM, mode 0600, encrypted when a
    passphrase is given) and its public key to ``out.pub``; return the key's fingerprint."""
    out = Path(out)
    pub_path = public_key_path(out)
    for path in (out, pub_path):
        if path.exists() and not overwrite:
            raise CryptoInputError(f"{path} exists; refusing to overwrite a key (pass --force)")
    key = Ed25519PrivateKey.generate()
    cipher: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase) if passphrase else serialization.NoEncryption()
    )
    private_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, cipher)
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    atomic_write_bytes(out, private_pem, mode=0o600)
    atomic_write_bytes(pub_path, public_pem, mode=0o644)
    return fingerprint(key.public_key())


def public_key_path(private_path: Path) -> Path:
    return private_path.with_name(private_path.name + ".pub")


def _read_key_bytes(path: Path, what: str) -> bytes:
    return read_bounded(path, what, limit("key_bytes"))


def load_private_key(path: Path, passphrase: bytes | None = None) -> Ed25519PrivateKey:
    data = _read_key_bytes(Path(path), "private key")
    try:
        key = serialization.load_pem_private_key(data, password=passphrase)
    except TypeError:
        hint = "it is encrypted: pass --passphrase-env" if passphrase is None else "it is not encrypted"
        raise CryptoInputError(f"cannot load private key {path}: {hint}") from None
    except (ValueError, UnsupportedAlgorithm):
        raise CryptoInputError(f"cannot load private key {path}: not PEM, or wrong passphrase") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise CryptoInputError(f"{path} is not an Ed25519 private key (`guard keygen --signing` makes one)")
    return key


def load_public_key(path: Path) -> Ed25519PublicKey:
    data = _read_key_bytes(Path(path), "public key")
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, UnsupportedAlgorithm):
        raise CryptoInputError(f"{path} is not a PEM public key") from None
    if not isinstance(key, Ed25519PublicKey):
        raise CryptoInputError(f"{path} is not an Ed25519 public key")
    return key


@dataclass(frozen=True, slots=True)
class SignResult:
    manifest: Path
    files: int
    signer_fingerprint: str
    model_name: str


def sign_paths(
    paths: Sequence[Path],
    key: Ed25519PrivateKey,
    manifest: Path,
    *,
    base_dir: Path | None = None,
    model_name: str | None = None,
) -> SignResult:
    """Digest every file under ``paths``, sign the statement, write the manifest atomically.

    Names are relative to ``base_dir`` (default: the manifest's folder); the manifest itself is
    never listed, so ``guard sign . -o model.sig.json`` works.
    """
    manifest = Path(manifest)
    base = Path(base_dir) if base_dir is not None else manifest.parent
    files, folders = collect_files([Path(p) for p in paths], base, {manifest.resolve()})
    resources = [Resource(name, sha256_file(path)) for name, path in files]
    name = model_name or (Path(paths[0]).resolve().name if len(paths) == 1 else base.resolve().name)
    payload = json.dumps(build_statement(name, resources, folders), sort_keys=True).encode("utf-8")
    fp = fingerprint(key.public_key())
    envelope = {
        "payloadType": PAYLOAD_TYPE,
        "payload": base64.b64encode(payload).decode("ascii"),
        "signatures": [{"keyid": fp, "sig": base64.b64encode(key.sign(pae(PAYLOAD_TYPE, payload))).decode()}],
    }
    atomic_write_text(manifest, json.dumps(envelope, indent=2) + "\n")
    return SignResult(manifest, len(resources), fp, name)


@dataclass(frozen=True, slots=True)
class FileCheck:
    """One file's outcome: ``ok``, ``modified``, ``missing`` or ``unexpected`` (new in a signed folder)."""

    name: str
    status: str


@dataclass(frozen=True, slots=True)
class VerifyResult:
    """The outcome of :func:`verify_manifest`; ``problem`` is one line, empty when verified."""

    verified: bool
    signature_valid: bool
    signer_fingerprint: str
    model_name: str = ""
    files: tuple[FileCheck, ...] = ()
    problem: str = ""

    @property
    def failures(self) -> tuple[FileCheck, ...]:
        return tuple(f for f in self.files if f.status != "ok")

    def raise_if_failed(self) -> VerifyResult:
        """For callers that must stop (``guard audit --verify-with``): raise a VerificationError."""
        if not self.verified:
            raise VerificationError(self.problem)
        return self


def _read_manifest(path: Path) -> bytes:
    return read_bounded(path, "manifest", limit("manifest_bytes"))


def _signed_payload(data: bytes, public_key: Ed25519PublicKey, where: str) -> bytes:
    """The envelope's payload once a signature by ``public_key`` verifies; else VerificationError."""
    try:
        envelope = parse_json(data)  # bounded nesting: the envelope is not yet authenticated
        payload_type = envelope["payloadType"]
        payload = base64.b64decode(envelope["payload"], validate=True)
        signatures = [
            (s.get("keyid", ""), base64.b64decode(s["sig"], validate=True)) for s in envelope["signatures"]
        ]
    except (ValueError, KeyError, TypeError, AttributeError, binascii.Error) as exc:
        raise VerificationError(
            f"{where} is not a valid signed manifest ({type(exc).__name__}: {exc})"
        ) from None
    if payload_type != PAYLOAD_TYPE:
        raise VerificationError(f"{where}: payload type {payload_type!r} is not {PAYLOAD_TYPE}")
    for _, sig in signatures:
        try:
            public_key.verify(sig, pae(payload_type, payload))
        except InvalidSignature:
            continue
        return payload
    named = ", ".join(str(k) for k, _ in signatures) or "no key"
    raise VerificationError(
        f"{where}: the signature does not verify with public key {fingerprint(public_key)} "
        f"(the manifest names {named}); the manifest was changed or signed by another key"
    )


def verify_manifest(manifest: Path, pubkey: Path, base_dir: Path | None = None, *,
                    in_memory: Mapping[Path, bytes] | None = None) -> VerifyResult:
    """Check the manifest's signature, then every listed file's digest and every signed folder.

    ``in_memory`` maps files already read (by resolved path) to their content: their digest
    is taken over those bytes, not read from disk again, so a file swapped on disk after it
    was read cannot pass for the signed one. Unreadable manifest or key files raise
    :class:`CryptoInputError` (the user's to fix); any failed check is returned with
    ``verified=False`` and a one-line ``problem``.
    """
    manifest = Path(manifest)
    public_key = load_public_key(Path(pubkey))
    fp = fingerprint(public_key)
    data = _read_manifest(manifest)
    try:
        statement = parse_statement(parse_json(_signed_payload(data, public_key, str(manifest))))
    except VerificationError as exc:
        return VerifyResult(False, False, fp, problem=str(exc))
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        return VerifyResult(False, True, fp, problem=f"{manifest}: signed statement is malformed ({exc})")
    base = Path(base_dir) if base_dir is not None else manifest.parent
    held = {Path(p).resolve(): data for p, data in (in_memory or {}).items()}
    checks = [FileCheck(r.name, _check_file(base / r.name, r.digest, held)) for r in statement.resources]
    checks += [FileCheck(n, "unexpected") for n in unexpected_files(base, statement, {manifest.resolve()})]
    bad = [c for c in checks if c.status != "ok"]
    problem = ""
    if bad:
        more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
        problem = f"{bad[0].name} is {bad[0].status}{_EXPLAIN[bad[0].status]}{more}"
    return VerifyResult(not bad, True, fp, statement.model_name, tuple(checks), problem)


_EXPLAIN = {
    "modified": ": it differs from the signed file",
    "missing": "",
    "unexpected": ": it is in a signed folder but not in the manifest",
}


def _check_file(path: Path, expected: str, held: Mapping[Path, bytes]) -> str:
    """``ok``, ``modified`` (other bytes, or no longer a regular file) or ``missing``."""
    content = held.get(path.resolve())
    if content is not None:
        digest = hashes.Hash(hashes.SHA256())
        digest.update(content)
        return "ok" if digest.finalize().hex() == expected else "modified"
    if not path.exists() and not path.is_symlink():
        return "missing"
    if path.is_symlink() or not path.is_file():
        return "modified"
    try:
        return "ok" if sha256_file(path) == expected else "modified"
    except NotRegularFile:
        return "modified"
    except OSError:
        return "missing"
