"""How a detection compares with a known poison mask: precision, recall and AUROC.

For a red-team exercise or a pipeline test, the user plants poison (or knows which samples
were poisoned) and gives ``guard data detect-poison --known-poison MASK``: a ``.npy`` boolean
(or 0/1) array with one entry per training sample, True where a sample is poisoned. The mask
is read through the bounded reader and checked (shape, values) before anything is computed;
precision and recall carry their Wilson intervals.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np

from guard.errors import DataError
from guard.stats import Metric


def read_mask(path: Path, n: int) -> np.ndarray:
    """The known-poison mask at ``path`` (a ``.npy`` array of n booleans or 0/1 values)."""
    from guard.fsio import read_input

    raw = read_input(path, "known-poison mask", "data_bytes")
    try:
        mask = np.load(io.BytesIO(raw), allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise DataError(f"{path}: not a .npy array of booleans ({str(exc).splitlines()[0][:120]})") from None
    if not isinstance(mask, np.ndarray) or mask.ndim != 1:
        shape = getattr(mask, "shape", None)
        raise DataError(f"{path}: the mask must be a 1-D array with one entry per training sample, "
                        f"got shape {shape}")
    if len(mask) != n:
        raise DataError(f"{path}: the mask has {len(mask)} entries, the training set {n} samples")
    if mask.dtype != bool:
        if mask.dtype.kind not in "iuf" or not np.isin(mask, (0, 1)).all():
            raise DataError(f"{path}: the mask must hold booleans or 0/1 values (dtype {mask.dtype})")
        mask = mask.astype(bool)
    checked: np.ndarray = mask
    return checked


def against_mask(scores: np.ndarray, flagged: np.ndarray, mask: np.ndarray) -> dict[str, Any]:
    """Precision (flags that are poison), recall (poison that is flagged), each with n and a
    95% interval, and the AUROC of the scores (None when the mask is all one value)."""
    from sklearn.metrics import roc_auc_score

    hit = np.zeros(len(mask), dtype=bool)
    hit[flagged] = True
    tp, poisoned = int(np.sum(hit & mask)), int(mask.sum())
    out: dict[str, Any] = {"poisoned": poisoned, "flagged": int(hit.sum()), "true_positives": tp}
    out["precision"] = Metric.proportion(tp, int(hit.sum())).to_dict() if hit.any() else None
    out["recall"] = Metric.proportion(tp, poisoned).to_dict() if poisoned else None
    both = 0 < poisoned < len(mask)
    out["auroc"] = round(float(roc_auc_score(mask, scores)), 6) if both else None
    return out
