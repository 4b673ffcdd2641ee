"""The data manifest as JSON (schema ``guard.data-manifest/1``), plain or signed.

Plain, it is one JSON object (``docs/provenance.md`` shows one)::

    {"schema": "guard.data-manifest/1", "created": ..., "generator": ..., "folders": [...],
     "files": [{"path", "size", "sha256", "format": "csv", "header_sha256", "rows", "row_sha256"},
               {"path", "size", "sha256", "format": "npz" or "npy",
                "arrays": [{"name", "dtype", "shape", "sha256", "rows", "row_sha256"}]},
               {"path", "size", "sha256", "format": "file"}]}

``row_sha256`` is base64 of the rows' 32-byte digests, concatenated in row order (43 characters a
row, against 67 for a list of hex strings: a million rows fit the 64 MiB manifest limit).

Signed, it is a DSSE envelope (https://github.com/secure-systems-lab/dsse) whose payload is the
plain document, signed with Ed25519 by a ``guard keygen --signing`` key exactly as ``guard sign``
signs model manifests, under its own payload type, so neither kind of signature can pass for the
other. With a public key, the payload is parsed only once its signature verifies, and anything
that keeps it from verifying (a flipped bit, a truncation, another key, no signature) is a
:class:`~guard.defenses.crypto.VerificationError` (exit 1). Without one, a malformed manifest is a
:class:`ManifestError` (exit 2).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from guard.defenses.crypto.errors import VerificationError
from guard.defenses.provenance.manifest import FORMATS, ArrayRecord, FileRecord, Manifest
from guard.defenses.provenance.rows import DIGEST
from guard.errors import ConfigError, DataError
from guard.limits import describe, human_bytes, limit

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

SCHEMA = "guard.data-manifest/1"
PAYLOAD_TYPE = "application/vnd.guard.data-manifest+json"
_HEX = re.compile(r"[0-9a-f]{64}\Z")


class ManifestError(ConfigError):
    """A data manifest that cannot be read as one: not JSON, another schema, a bad field. Exit 2."""


@dataclass(frozen=True, slots=True)
class Signature:
    """Whether the manifest is signed, and whether this run checked it: ``signer`` is the
    fingerprint of the public key it verified with (empty when not checked); ``keyids`` are
    the key ids the envelope names (unauthenticated unless ``checked``)."""

    signed: bool = False
    checked: bool = False
    signer: str = ""
    keyids: tuple[str, ...] = ()


# -- writing -------------------------------------------------------------------------------------


def _packed(digests: bytes) -> str:
    return base64.b64encode(digests).decode("ascii")


def to_document(manifest: Manifest) -> dict[str, Any]:
    files: list[dict[str, Any]] = []
    for f in manifest.files:
        entry: dict[str, Any] = {"path": f.path, "size": f.size, "sha256": f.sha256, "format": f.format}
        if f.format == "csv":
            entry |= {"header_sha256": f.header, "rows": f.row_count, "row_sha256": _packed(f.rows)}
        elif f.format in ("npz", "npy"):
            entry["arrays"] = [{"name": a.name, "dtype": a.dtype, "shape": list(a.shape), "sha256": a.sha256,
                                "rows": a.row_count, "row_sha256": _packed(a.rows)} for a in f.arrays]
        files.append(entry)
    return {"schema": SCHEMA, "created": manifest.created, "generator": manifest.generator,
            "folders": list(manifest.folders), "files": files}


def encode(manifest: Manifest, key: Ed25519PrivateKey | None = None) -> bytes:
    """The manifest file's bytes: the plain document, or signed with ``key`` in a DSSE envelope.
    A DataError when they would not fit ``manifest_bytes`` (verify could not read them back)."""
    from guard.defenses.crypto.signing import fingerprint, pae

    document = to_document(manifest)
    if key is None:
        data = (json.dumps(document, indent=1) + "\n").encode("utf-8")
    else:
        payload = json.dumps(document, separators=(",", ":")).encode("utf-8")
        envelope = {
            "payloadType": PAYLOAD_TYPE,
            "payload": base64.b64encode(payload).decode("ascii"),
            "signatures": [{"keyid": fingerprint(key.public_key()),
                            "sig": base64.b64encode(key.sign(pae(PAYLOAD_TYPE, payload))).decode("ascii")}],
        }
        data = (json.dumps(envelope, indent=2) + "\n").encode("utf-8")
    if len(data) > limit("manifest_bytes"):
        raise DataError(f"the manifest would be {human_bytes(len(data))}, more than guard data verify "
                        f"reads: the limit is {describe('manifest_bytes')}; or record fewer files at once")
    return data


# -- reading -------------------------------------------------------------------------------------


def load(path: Path, public_key: Ed25519PublicKey | None = None) -> tuple[Manifest, Signature]:
    """Read, (with ``public_key``) authenticate, and validate the manifest at ``path``."""
    from guard.fsio import read_input

    data = read_input(path, "data manifest", "manifest_bytes")
    return decode(data, str(path), public_key)


def decode(data: bytes, source: str,
           public_key: Ed25519PublicKey | None = None) -> tuple[Manifest, Signature]:
    """The manifest in ``data`` (``source`` names it in errors); see the module docstring."""
    from guard.serialization import parse_json

    try:
        document = parse_json(data)
    except ValueError as exc:  # JSONDecodeError, UnsafeJSON and UnicodeDecodeError are ValueErrors
        error = VerificationError if public_key is not None else ManifestError
        raise error(f"{source}: not a data manifest: not valid JSON ({_first_line(exc)})") from None
    signature = Signature()
    if isinstance(document, dict) and "payloadType" in document:
        payload, signature = _payload(document, source, public_key)
        try:
            document = parse_json(payload)
        except ValueError as exc:
            raise ManifestError(f"{source}: the signed payload is not JSON ({_first_line(exc)})") from None
    elif public_key is not None:
        raise VerificationError(f"{source} is not signed, so it cannot be verified with a public key "
                                "(sign it with guard data manifest --sign-key, or drop --pubkey)")
    return parse_document(document, source), signature


def _payload(envelope: dict[str, Any], source: str,
             public_key: Ed25519PublicKey | None) -> tuple[bytes, Signature]:
    from cryptography.exceptions import InvalidSignature

    from guard.defenses.crypto.signing import fingerprint, pae

    error = VerificationError if public_key is not None else ManifestError
    try:
        payload_type = envelope["payloadType"]
        payload = base64.b64decode(envelope["payload"], validate=True)
        signatures = [(str(s.get("keyid", "")), base64.b64decode(s["sig"], validate=True))
                      for s in envelope["signatures"]]
    except (ValueError, KeyError, TypeError, AttributeError, binascii.Error) as exc:
        raise error(f"{source} is not a valid signed manifest ({type(exc).__name__}: "
                    f"{_first_line(exc)})") from None
    if payload_type != PAYLOAD_TYPE:
        raise error(f"{source}: payload type {str(payload_type)[:80]!r} is not {PAYLOAD_TYPE} "
                    "(a model signature from guard sign is checked with guard verify)")
    keyids = tuple(k for k, _ in signatures)
    if public_key is None:
        return payload, Signature(signed=bool(signatures), keyids=keyids)
    fp = fingerprint(public_key)
    for keyid, sig in signatures:
        if keyid != fp:
            continue  # Guard always names its key: a changed key id is a changed manifest too
        try:
            public_key.verify(sig, pae(payload_type, payload))
        except InvalidSignature:
            continue
        return payload, Signature(True, True, fp, keyids)
    named = ", ".join(keyids) or "no key"
    raise VerificationError(f"{source}: the signature does not verify with public key "
                            f"{fp} (the manifest names {named}); the manifest "
                            "was changed or signed by another key")


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0][:200] if lines else type(exc).__name__


class _Fields:
    """Typed reads of a manifest's fields; each failure names the field in one line."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, where: str, what: str) -> ManifestError:
        return ManifestError(f"{self.source}: {where}: {what}")

    def get(self, obj: dict[str, Any], key: str, kind: type, where: str, what: str) -> Any:
        if key not in obj:
            raise self.fail(where, f"missing {key!r}")
        value = obj[key]
        if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
            raise self.fail(f"{where}.{key}", f"must be {what}")
        return value

    def count(self, obj: dict[str, Any], key: str, where: str) -> int:
        value: int = self.get(obj, key, int, where, "a whole number")
        if value < 0:
            raise self.fail(f"{where}.{key}", "must not be negative")
        return value

    def sha256(self, obj: dict[str, Any], key: str, where: str) -> str:
        value = str(self.get(obj, key, str, where, "a string"))
        if not _HEX.match(value):
            raise self.fail(f"{where}.{key}", "not a SHA-256 (64 lowercase hex digits)")
        return value

    def rows(self, obj: dict[str, Any], where: str) -> bytes:
        count = self.count(obj, "rows", where)
        text: str = self.get(obj, "row_sha256", str, where, "a base64 string")
        try:
            packed = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raise self.fail(f"{where}.row_sha256", "not base64") from None
        if len(packed) != count * DIGEST:
            raise self.fail(f"{where}.row_sha256", f"holds {len(packed) // DIGEST} row digests "
                            f"({len(packed)} bytes), rows says {count}")
        return packed

    def name(self, value: Any, where: str, *, folder: bool = False) -> str:
        if folder and value == ".":
            return "."
        bad = (not isinstance(value, str) or not value or "\\" in value or "\x00" in value
               or PurePosixPath(value).is_absolute())
        if bad or any(part in ("..", ".", "") for part in str(value).split("/")):
            raise self.fail(where, f"{str(value)[:80]!r} is not a relative path inside the manifest's folder")
        return str(value)


def parse_document(document: Any, source: str) -> Manifest:
    """A :class:`Manifest` from its parsed JSON, every field checked; else one ManifestError."""
    fields = _Fields(source)
    if not isinstance(document, dict):
        raise ManifestError(f"{source}: not a data manifest (a JSON object with \"schema\": {SCHEMA!r})")
    schema = document.get("schema")
    if schema != SCHEMA:
        shown = "no schema" if schema is None else f"schema {str(schema)[:80]!r}"
        raise ManifestError(f"{source}: not a data manifest: {shown}, expected {SCHEMA!r}")
    created = document.get("created", "")
    generator = document.get("generator", "")
    if not isinstance(created, str) or not isinstance(generator, str):
        raise fields.fail("created/generator", "must be strings")
    folders_raw = fields.get(document, "folders", list, "manifest", "a list of folder names")
    folders = tuple(fields.name(f, f"folders[{i}]", folder=True) for i, f in enumerate(folders_raw))
    entries = fields.get(document, "files", list, "manifest", "a list of files")
    if not entries:  # guard data manifest never writes one: an empty record verifies nothing
        raise fields.fail("files", "is empty: the manifest records no file")
    files: list[FileRecord] = []
    for i, entry in enumerate(entries):
        files.append(_file(fields, entry, f"files[{i}]"))
    paths = [f.path for f in files]
    if len(set(paths)) != len(paths):
        duplicate = next(p for p in paths if paths.count(p) > 1)
        raise fields.fail("files", f"lists {duplicate[:80]!r} twice")
    return Manifest(tuple(files), folders, created, generator)


def _file(fields: _Fields, entry: Any, where: str) -> FileRecord:
    if not isinstance(entry, dict):
        raise fields.fail(where, "must be an object")
    path = fields.name(fields.get(entry, "path", str, where, "a string"), f"{where}.path")
    size = fields.count(entry, "size", where)
    sha256 = fields.sha256(entry, "sha256", where)
    fmt = fields.get(entry, "format", str, where, "a string")
    if fmt not in FORMATS:
        raise fields.fail(f"{where}.format", f"{fmt[:40]!r} is not one of {', '.join(sorted(FORMATS))}")
    if fmt == "csv":
        empty = entry.get("header_sha256", "") is None  # a file without a header row
        header = None if empty else fields.sha256(entry, "header_sha256", where)
        return FileRecord(path, size, sha256, fmt, header, fields.rows(entry, where))
    if fmt == "file":
        return FileRecord(path, size, sha256, fmt)
    raw = fields.get(entry, "arrays", list, where, "a list of arrays")
    arrays = tuple(_array(fields, a, f"{where}.arrays[{j}]") for j, a in enumerate(raw))
    names = [a.name for a in arrays]
    if fmt == "npy" and len(arrays) != 1:
        raise fields.fail(f"{where}.arrays", "an .npy holds exactly one array")
    if len(set(names)) != len(names):
        raise fields.fail(f"{where}.arrays", "names an array twice")
    return FileRecord(path, size, sha256, fmt, arrays=arrays)


def _array(fields: _Fields, entry: Any, where: str) -> ArrayRecord:
    if not isinstance(entry, dict):
        raise fields.fail(where, "must be an object")
    name = fields.get(entry, "name", str, where, "a string")
    dtype = fields.get(entry, "dtype", str, where, "a string")
    shape_raw = fields.get(entry, "shape", list, where, "a list of whole numbers")
    if any(not isinstance(d, int) or isinstance(d, bool) or d < 0 for d in shape_raw):
        raise fields.fail(f"{where}.shape", "must be a list of whole numbers")
    shape = tuple(int(d) for d in shape_raw)
    sha256 = fields.sha256(entry, "sha256", where)
    rows = fields.rows(entry, where)
    if len(rows) // DIGEST != (shape[0] if shape else 0):
        raise fields.fail(f"{where}.rows", f"does not match shape {list(shape)}")
    return ArrayRecord(name, dtype, shape, sha256, rows)
