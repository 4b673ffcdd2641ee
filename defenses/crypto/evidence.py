"""Supply-chain evidence for reports: is the model encrypted at rest, and is its signature valid.

Like every probe, these functions only measure; the policy engine decides whether an unencrypted
or unsigned model fails a control. Metrics are 0/1 indicators (and file counts), so a policy can
write ``supply_chain.signature.verified == 1`` without parsing strings; the strings a person
needs (algorithm, key id, signer fingerprint, the failed file) go in ``params``.
"""

from __future__ import annotations

from pathlib import Path

from guard.defenses.crypto.files import info_of_bytes, is_encrypted, read_info
from guard.defenses.crypto.header import MAGIC
from guard.defenses.crypto.signing import VerifyResult
from guard.evidence import Evidence
from guard.stats import Metric

ENCRYPTION_PROBE = "supply_chain.encryption"
SIGNATURE_PROBE = "supply_chain.signature"


def encryption_evidence(model_path: Path, *, decrypted: bool = False, duration_s: float = 0.0,
                        content: bytes | None = None) -> Evidence:
    """Whether ``model_path`` is encrypted at rest, with the algorithm and key id from its header.

    ``decrypted`` says that this run authenticated the whole file with its key (``guard audit
    --key``); without it the header was only parsed, which proves the format, not the key.
    ``content``: the file's bytes, already read (the file is then not read again).
    """
    path = Path(model_path)
    encrypted = content.startswith(MAGIC) if content is not None else is_encrypted(path)
    params: dict[str, object] = {"file": path.name, "encrypted_at_rest": encrypted}
    if encrypted:
        info = read_info(path) if content is None else info_of_bytes(content, str(path))
        params |= {
            "algorithm": info.algorithm,
            "format": info.format,
            "format_version": info.version,
            "key_id": info.key_id,
            "kdf": info.kdf,
            "chunk_size": info.chunk_size,
        }
    return Evidence(
        probe=ENCRYPTION_PROBE,
        params=params,
        metrics={
            "encrypted_at_rest": Metric(1.0 if encrypted else 0.0),
            "authenticated": Metric(1.0 if encrypted and decrypted else 0.0),
        },
        duration_s=duration_s,
    )


def signature_evidence(result: VerifyResult, manifest: Path, *, duration_s: float = 0.0) -> Evidence:
    """The outcome of :func:`~guard.defenses.crypto.signing.verify_manifest` as evidence."""
    failed = result.failures
    return Evidence(
        probe=SIGNATURE_PROBE,
        params={
            "manifest": Path(manifest).name,
            "algorithm": "Ed25519 (DSSE, in-toto statement)",
            "signer_fingerprint": result.signer_fingerprint,
            "model_name": result.model_name,
            "verified": result.verified,
            "problem": result.problem,
            "failed_files": [f"{f.name} ({f.status})" for f in failed],
        },
        metrics={
            "verified": Metric(1.0 if result.verified else 0.0),
            "signature_valid": Metric(1.0 if result.signature_valid else 0.0),
            "files_checked": Metric(float(len(result.files))),
            "files_failed": Metric(float(len(failed))),
        },
        duration_s=duration_s,
    )
