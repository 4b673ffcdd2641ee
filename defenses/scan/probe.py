"""``supply_chain.scan``: the static scan of the model file, as a probe run before loading.

The scan reads the bytes the model will load from (decrypted, when the file is encrypted) and
refuses a file rated critical or high: the audit stops there with a one-line error and the
model is never loaded. With ``unsafe_allow_pickle`` a pickle the scan passes may load; one
the scan could not finish may not.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, ClassVar

from guard.defenses.scan.evidence import PROBE_ID, assert_loadable, scan_evidence
from guard.evidence import Evidence
from guard.probes import Artifact, ArtifactProbe, EmittedEvidence, RunContext, register


@dataclass(frozen=True, slots=True, kw_only=True)
class ScanSettings:
    """Whether a pickle the scan passes may be unpickled (it can run code: trusted files only)."""

    unsafe_allow_pickle: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.unsafe_allow_pickle, bool):
            raise TypeError(f"unsafe_allow_pickle must be true or false, got {self.unsafe_allow_pickle!r}")


@register
class ScanProbe(ArtifactProbe):
    """Scan the bytes about to load; refuse what is rated high or critical."""

    id: ClassVar[str] = PROBE_ID
    aliases: ClassVar[tuple[str, ...]] = ("scan",)
    settings_type: ClassVar[type[Any]] = ScanSettings
    settings: ScanSettings
    emits: ClassVar[EmittedEvidence] = EmittedEvidence(
        title="Scan of the model artifact for code execution and unsafe constructs",
        metrics=("critical", "high", "medium", "low", "info", "files", "files_clean", "files_unsafe",
                 "files_error"),
        params=("paths", "formats", "findings", "findings_truncated"),
        key=("paths",),
        flags=("scan_incomplete",),
    )

    def inspect(self, artifact: Artifact, ctx: RunContext) -> list[Evidence]:
        start = time.perf_counter()
        result = assert_loadable(artifact.path, self.settings.unsafe_allow_pickle, data=artifact.content)
        evidence = scan_evidence([result])
        evidence.duration_s = time.perf_counter() - start
        return [evidence]
