"""The sanitizer a served model's inputs pass through: validate, detect, squeeze.

:class:`Sanitizer` is what :class:`guard.defenses.access.guarded.GuardedModel` calls as
``sanitizer.check(x)`` before the model sees a request. Each stage is optional but the
first: validation (shape, dtype, range: :mod:`.validate`), then a squeezing detector that
refuses a batch holding a row it flags (:mod:`.detect`), then, with ``transform``, the
squeezed batch in place of the raw one (the model answers on squeezed input). A refusal is
:class:`~guard.defenses.access.guarded.InputRejected` with a one-line reason (HTTP 422).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from guard.defenses.access.guarded import InputRejected
from guard.defenses.sanitize.detect import SqueezeDetector
from guard.defenses.sanitize.squeeze import Squeezer, check_applicable, squeeze_all
from guard.defenses.sanitize.validate import InputValidator
from guard.errors import ConfigError


@dataclass(frozen=True, slots=True)
class Screening:
    """One batch after the sanitizer: what the model would see, and each row's detection."""

    x: np.ndarray
    scores: np.ndarray | None
    """Detection scores (None without a detector)."""
    flagged: np.ndarray
    """Rows the detector flags (all False without one)."""


class Sanitizer:
    """Validation, then (optionally) squeezing detection, then (optionally) squeezing.

    ``squeezers`` are what ``transform`` applies, one after the other; the detector holds its
    own. Cost: validation is NumPy work; a detector adds one model call on the batch and one
    per squeezer it holds.
    """

    def __init__(
        self,
        validator: InputValidator,
        squeezers: Sequence[Squeezer] = (),
        detector: SqueezeDetector | None = None,
        transform: bool = False,
    ) -> None:
        if not isinstance(validator, InputValidator):
            raise ConfigError("the sanitizer needs an InputValidator")
        self.validator = validator
        self.squeezers = tuple(squeezers)
        if transform and not self.squeezers:
            raise ConfigError("transform=True needs at least one squeezer to apply")
        check_applicable(self.squeezers, validator.shape)
        if detector is not None:
            check_applicable(detector.squeezers, validator.shape)
        self.detector = detector
        self.transform = bool(transform)

    def screen(self, x: Any) -> Screening:
        """Validate (raising InputRejected), score and squeeze, without refusing flagged rows."""
        arr = self.validator.check(x)
        scores: np.ndarray | None = None
        flagged = np.zeros(len(arr), dtype=bool)
        if self.detector is not None:
            scores = self.detector.score(arr)
            flagged = self.detector.flags(arr, scores)
        out = squeeze_all(self.squeezers, arr) if self.transform else arr
        return Screening(np.ascontiguousarray(out, dtype=arr.dtype), scores, flagged)

    def check(self, x: Any) -> np.ndarray:
        """The batch the model should see; raises InputRejected for bad or flagged input."""
        screening = self.screen(x)
        rows = np.flatnonzero(screening.flagged)
        if len(rows) and self.detector is not None and screening.scores is not None:
            row = int(rows[0])
            more = f"; {len(rows) - 1} more rows flagged" if len(rows) > 1 else ""
            raise InputRejected(
                f"row {row} looks adversarial: squeezing changes its prediction by "
                f"{screening.scores[row]:.3f} (threshold {self.detector.threshold:.3f}){more}"
            )
        return screening.x

    def describe(self) -> dict[str, Any]:
        return {
            "validator": self.validator.describe(),
            "detector": None if self.detector is None else self.detector.describe(),
            "transform": [s.name for s in self.squeezers] if self.transform else [],
        }
