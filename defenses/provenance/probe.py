"""``data.provenance``: whether the training data still matches its manifest, file by file and
row by row, and whether the data this audit read is one of the files the manifest records.

It runs when the audit is given a manifest (``guard audit --data-manifest FILE``, or the
``manifest`` setting). A manifest that is not one stops the audit (exit 2); a signature that
does not verify with the given ``public_key`` is evidence (``verified`` 0, with the problem),
and then no file of the unauthenticated manifest is trusted or read.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from guard.errors import ConfigError
from guard.evidence import Evidence
from guard.probes import EmittedEvidence, Probe, RunContext, register
from guard.stats import Metric
from guard.target import Target

PROBE_ID = "data.provenance"
MAX_CHANGES = 50
"""Changes listed in the evidence (every one is counted in the metrics)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ProvenanceSettings:
    """The manifest written by ``guard data manifest``, and the public key of its signer (to
    check its signature; without one a signed manifest's hashes are checked, not its signature)."""

    manifest: str | None = None
    public_key: str | None = None

    def __post_init__(self) -> None:
        if self.public_key and not self.manifest:
            raise ConfigError("public_key is the key of a data manifest's signer: give the manifest "
                              "too (--data-manifest FILE)")


@register
class ProvenanceProbe(Probe):
    """Verify the manifest of the training data; report what changed, never a verdict."""

    id: ClassVar[str] = PROBE_ID
    category: ClassVar[str] = "data"
    aliases: ClassVar[tuple[str, ...]] = ("provenance",)
    settings_type: ClassVar[type[Any]] = ProvenanceSettings
    settings: ProvenanceSettings
    stage: ClassVar[str] = "model"
    default: ClassVar[bool] = True
    emits: ClassVar[EmittedEvidence] = EmittedEvidence(
        title="Whether the training data matches its manifest (1 or 0), file by file and row by row",
        metrics=("verified", "files_checked", "files_changed", "rows_checked", "rows_changed",
                 "covers_audit_data"),
        params=("manifest", "signed", "signer_fingerprint", "changes", "changes_truncated", "problem"),
        key=("manifest",),
    )

    def applies_to(self, target: Target) -> bool:
        return bool(self.settings.manifest)

    def run(self, target: Target, ctx: RunContext) -> list[Evidence]:
        from guard.defenses.crypto.errors import VerificationError
        from guard.defenses.crypto.signing import load_public_key
        from guard.defenses.provenance.verify import verify_data

        s = self.settings
        if not s.manifest:
            raise ConfigError(f"{PROBE_ID} needs a manifest from guard data manifest (--data-manifest FILE)")
        start = time.perf_counter()
        manifest = Path(s.manifest)
        key = load_public_key(Path(s.public_key)) if s.public_key else None
        try:
            report = verify_data(manifest, key)
        except VerificationError as exc:
            return [_unverified(manifest, str(exc), time.perf_counter() - start)]
        ctx.progress(PROBE_ID, 1, 1)
        # the training data: a separate --train-data file when there is one, else the data file
        which = "train_data" if "train_data" in target.digests else "data"
        audit = target.digests.get(which, "").removeprefix("sha256:")
        covered = bool(audit) and audit in report.digests
        changes = [c.to_dict() for c in report.changes[:MAX_CHANGES]]
        rows_changed = (Metric.proportion(report.rows_changed, report.rows_checked) if report.rows_checked
                        else Metric(0.0, n=0))
        return [Evidence(
            probe=PROBE_ID,
            params={
                "manifest": manifest.name,
                "signed": report.signature.checked,
                "signer_fingerprint": report.signature.signer or None,
                "changes": changes,
                "changes_truncated": report.changes_total > len(changes),
                "problem": report.problem,
            },
            metrics={
                "verified": Metric(1.0 if report.verified else 0.0),
                "files_checked": Metric(float(report.files_checked)),
                "files_changed": Metric(float(report.files_changed)),
                "rows_checked": Metric(float(report.rows_checked)),
                "rows_changed": rows_changed,
                "covers_audit_data": Metric(1.0 if covered else 0.0),
            },
            seed=ctx.seed,
            duration_s=time.perf_counter() - start,
        )]


def _unverified(manifest: Path, problem: str, duration_s: float) -> Evidence:
    """A manifest whose signature does not verify: none of its files is checked or trusted."""
    return Evidence(
        probe=PROBE_ID,
        params={"manifest": manifest.name, "signed": False, "signer_fingerprint": None, "changes": [],
                "changes_truncated": False, "problem": problem},
        metrics={"verified": Metric(0.0), "files_checked": Metric(0.0), "files_changed": Metric(0.0),
                 "rows_checked": Metric(0.0), "rows_changed": Metric(0.0, n=0),
                 "covers_audit_data": Metric(0.0)},
        duration_s=duration_s,
    )
