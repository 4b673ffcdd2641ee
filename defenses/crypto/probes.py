"""Supply-chain probes of a model file's signature and encryption, run before it loads.

``supply_chain.signature`` checks the signed manifest against the bytes the audit read (a
failed check stops the audit with exit 1); ``supply_chain.encryption`` records whether the
file is encrypted at rest and, when it is, decrypts it in memory with the given key, so the
scan and the loader see the plaintext and nothing is written to disk. Both work on the one
buffer the audit read, so a file swapped on disk between two steps cannot load unsigned.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from guard.errors import ConfigError, IntegrityFailure
from guard.evidence import Evidence
from guard.probes import Artifact, ArtifactProbe, EmittedEvidence, RunContext, register


@dataclass(frozen=True, slots=True, kw_only=True)
class SignatureSettings:
    """The public key and the signed manifest (from ``guard sign``); both or neither."""

    verify_with: str | None = None
    manifest: str | None = None

    def __post_init__(self) -> None:
        if bool(self.verify_with) != bool(self.manifest):
            raise ConfigError("--verify-with and --manifest go together: the public key and the manifest")


@register
class SignatureProbe(ArtifactProbe):
    """Verify the model file against a signed manifest before anything else reads it."""

    id: ClassVar[str] = "supply_chain.signature"
    aliases: ClassVar[tuple[str, ...]] = ("signature",)
    settings_type: ClassVar[type[Any]] = SignatureSettings
    settings: SignatureSettings
    emits: ClassVar[EmittedEvidence] = EmittedEvidence(
        title="Whether the signed manifest of the model's files verifies (1 or 0)",
        metrics=("verified", "signature_valid", "files_checked", "files_failed"),
        params=("manifest", "algorithm", "signer_fingerprint", "model_name", "verified", "problem",
                "failed_files"),
        key=("manifest",),
    )

    def inspect(self, artifact: Artifact, ctx: RunContext) -> list[Evidence]:
        s = self.settings
        if not s.verify_with or not s.manifest:
            return []  # nothing to verify against: the signature controls say "not assessed"
        from guard.defenses.crypto import signature_evidence, verify_manifest

        start = time.perf_counter()
        manifest, path = Path(s.manifest), artifact.path
        result = verify_manifest(manifest, Path(s.verify_with), in_memory={path: artifact.raw})
        result.raise_if_failed()
        base = manifest.parent.resolve()
        covered = {(base / f.name).resolve() for f in result.files if f.status == "ok"}
        if path.resolve() not in covered:
            raise IntegrityFailure(f"{manifest} verifies, but it does not cover the model file {path}")
        return [signature_evidence(result, manifest, duration_s=time.perf_counter() - start)]


@dataclass(frozen=True, slots=True, kw_only=True)
class EncryptionSettings:
    """Where the key of an encrypted model comes from: a key file, or an environment
    variable holding the key or a passphrase (at most one)."""

    key: str | None = None
    key_env: str | None = None
    passphrase_env: str | None = None

    @property
    def keyed(self) -> bool:
        return any((self.key, self.key_env, self.passphrase_env))


@register
class EncryptionProbe(ArtifactProbe):
    """Record encryption at rest; decrypt an encrypted model into memory for the audit."""

    id: ClassVar[str] = "supply_chain.encryption"
    aliases: ClassVar[tuple[str, ...]] = ("encryption",)
    settings_type: ClassVar[type[Any]] = EncryptionSettings
    settings: EncryptionSettings
    emits: ClassVar[EmittedEvidence] = EmittedEvidence(
        title="Whether the model file is encrypted at rest (1 or 0), and authenticated with its key this run",
        metrics=("encrypted_at_rest", "authenticated"),
        params=("file", "encrypted_at_rest", "algorithm", "format", "format_version", "key_id", "kdf",
                "chunk_size"),
        key=("file",),
    )

    def inspect(self, artifact: Artifact, ctx: RunContext) -> list[Evidence]:
        from guard.defenses.crypto import decrypt_bytes, encryption_evidence, key_source
        from guard.defenses.crypto.header import MAGIC

        s, path, raw = self.settings, artifact.path, artifact.raw
        if not raw.startswith(MAGIC):
            if s.keyed:
                raise ConfigError(f"{path} is not a Guard-encrypted file; drop the key option")
            return [encryption_evidence(path, content=raw)]
        if not s.keyed:
            raise ConfigError(
                f"{path} is encrypted: give its key with --key FILE, --key-env VAR or --passphrase-env VAR"
            )
        start = time.perf_counter()
        key = key_source(Path(s.key) if s.key else None, s.key_env, s.passphrase_env)
        artifact.content = decrypt_bytes(raw, key, str(path))
        return [encryption_evidence(path, decrypted=True, duration_s=time.perf_counter() - start,
                                    content=raw)]
