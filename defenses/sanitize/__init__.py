"""Input sanitization for a served model: validation, feature squeezing, squeezing detection.

:class:`Sanitizer` is what :class:`guard.defenses.access.guarded.GuardedModel` calls before
the model sees a request; refusals are :class:`InputRejected` (HTTP 422). The audit probe
``defense.sanitization`` (:mod:`guard.defenses.sanitize.probe`) measures the defense by
attacking it, non-adaptively and adaptively (BPDA, :mod:`guard.defenses.sanitize.bpda`).
This package imports NumPy only; the probe and the adaptive attack import torch.
"""

from guard.defenses.access.guarded import InputRejected
from guard.defenses.sanitize.detect import SqueezeDetector, conformal_threshold
from guard.defenses.sanitize.sanitizer import Sanitizer, Screening
from guard.defenses.sanitize.squeeze import BitDepth, MedianSmooth, Squeezer, applicable, squeeze_all
from guard.defenses.sanitize.validate import DEFAULT_MAX_ROWS, InputValidator

__all__ = [
    "DEFAULT_MAX_ROWS", "BitDepth", "InputRejected", "InputValidator", "MedianSmooth", "Sanitizer",
    "Screening", "SqueezeDetector", "Squeezer", "applicable", "conformal_threshold", "squeeze_all",
]
