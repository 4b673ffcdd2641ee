"""What ``guard audit`` checks about a model file before it loads it.

In order: the signature manifest (``--verify-with`` + ``--manifest``; a failed check stops
the audit with exit 1), encryption at rest (an encrypted file is decrypted into memory with
the given key, never to disk), then the file scan (a file rated critical or high is never
loaded). Each check is evidence in the report.
"""

from __future__ import annotations

import time
from pathlib import Path

from guard.config import AuditOptions
from guard.errors import ConfigError, IntegrityFailure
from guard.evidence import Evidence


def prepare_model(path: Path, opts: AuditOptions) -> tuple[bytes, list[Evidence]]:
    """(the model's content, the evidence gathered) for the model at ``path``.

    The file is read once, and every check works on that one buffer: the signature covers
    the bytes that get decrypted, scanned, loaded and hashed, so a file swapped on disk
    between two steps cannot load unsigned.
    """
    from guard.models.loading import read_model_file

    raw = read_model_file(path)
    evidence: list[Evidence] = []
    signed = _verify(path, raw, opts)
    if signed is not None:
        evidence.append(signed)
    content, encryption = _decrypt(path, raw, opts)
    evidence.append(encryption)
    evidence.append(scan_before_load(path, content, bool(opts.unsafe_allow_pickle)))
    return content, evidence


def _verify(path: Path, raw: bytes, opts: AuditOptions) -> Evidence | None:
    if not opts.verify_with and not opts.manifest:
        return None
    if not (opts.verify_with and opts.manifest):
        raise ConfigError("--verify-with and --manifest go together: the public key and the manifest")
    from guard.defenses.crypto import signature_evidence, verify_manifest

    start = time.perf_counter()
    manifest = Path(opts.manifest)
    result = verify_manifest(manifest, Path(opts.verify_with), in_memory={path: raw})
    result.raise_if_failed()
    base = manifest.parent.resolve()
    covered = {(base / f.name).resolve() for f in result.files if f.status == "ok"}
    if path.resolve() not in covered:
        raise IntegrityFailure(f"{manifest} verifies, but it does not cover the model file {path}")
    return signature_evidence(result, manifest, duration_s=time.perf_counter() - start)


def _decrypt(path: Path, raw: bytes, opts: AuditOptions) -> tuple[bytes, Evidence]:
    from guard.defenses.crypto import decrypt_bytes, encryption_evidence, key_source
    from guard.defenses.crypto.header import MAGIC

    keyed = any((opts.key, opts.key_env, opts.passphrase_env))
    if not raw.startswith(MAGIC):
        if keyed:
            raise ConfigError(f"{path} is not a Guard-encrypted file; drop the key option")
        return raw, encryption_evidence(path, content=raw)
    if not keyed:
        raise ConfigError(
            f"{path} is encrypted: give its key with --key FILE, --key-env VAR or --passphrase-env VAR"
        )
    start = time.perf_counter()
    key = key_source(
        Path(opts.key) if opts.key else None, opts.key_env, opts.passphrase_env
    )
    content = decrypt_bytes(raw, key, str(path))
    return content, encryption_evidence(path, decrypted=True, duration_s=time.perf_counter() - start,
                                        content=raw)


def scan_before_load(path: Path, content: bytes, allow_pickle: bool) -> Evidence:
    """The static scan of the model (file or decrypted bytes); refuses critical and high.

    With ``allow_pickle`` a pickle the scan passes may load; one it could not finish may not.
    """
    from guard.defenses.scan import assert_loadable, scan_evidence

    start = time.perf_counter()
    result = assert_loadable(path, allow_pickle, data=content)
    evidence = scan_evidence([result])
    evidence.duration_s = time.perf_counter() - start
    return evidence
