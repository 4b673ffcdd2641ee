"""The detectors' thresholds, calibrated on clean training sets to a stated false-positive rate.

Measured by ``benchmarks/calibrate_poison_threshold.py`` (rerun it after changing a detector;
it prints this module's numbers). Seeds 100-119 are calibration seeds only: the tests and the
benchmark use other seeds, so the clean flag rates they report are out of sample.
"""

from __future__ import annotations

CORE_FPR = 0.001
CORE_THRESHOLD = 3.63
"""Robust-core reclassification on a PyTorch model's representation: flag ``-log10 p(label)``
above this. The 99.9th percentile of the scores pooled over 20 clean runs of Guard's digits
CNN recipe (``guard.demo.train_digits`` on ``digits_split(seed)``, seeds 100-119)."""
CORE_CALIBRATION = (
    "99.9th percentile over 20 clean digits-CNN training runs, seeds 100-119 "
    "(benchmarks/calibrate_poison_threshold.py)"
)
CORE_MIN_TARGET_FLAGS = 4
"""A class is only a suspected backdoor target with at least this many flags: two more than
the most flags any class held in a clean calibration run (2)."""

TABLE_FPR = 0.01
"""The tabular rule's stated rate: its high label-margin threshold holds each calibration table
at 0.5%, its input-space core at 0.1%, and the pair-tie rule flagged no clean row (the combined
rule flagged 0-0.78% of each clean calibration run, and no clean run opened the
margin gate: its smallest p-value was 0.24)."""
MARGIN_THRESHOLD = 0.79
"""Label-flip margin ``max_{j != y} p_j - p_y`` (out of fold, second pass) a table is read at
unless it is noisy: the largest over the calibration tables of their 99.5th percentile on clean
labels."""
MARGIN_LOW_RATE = 0.015
"""The share of clean rows above :data:`MARGIN_LOW` the calibration allows (its percentile)."""
MARGIN_LOW = 0.46
"""The margin a noisy table is read at: the largest over the calibration tables of their 98.5th
percentile on clean labels. A table is noisy when the rows above it that no trigger signal
flags are significantly more than :data:`MARGIN_LOW_RATE` of them (one-sided binomial test at
:data:`MARGIN_GATE_ALPHA`); a clean table, no noisier than the calibration tables, keeps
:data:`MARGIN_THRESHOLD`."""
MARGIN_GATE_ALPHA = 0.001
"""Level of the test that reads a table as noisy (no clean calibration run came near it: the
smallest p-value of one was 0.24, on breast_cancer)."""
INPUT_CORE_THRESHOLD = 4.59
"""Robust-core reclassification on the standardised input: the largest over the calibration
tables of their 99.9th percentile (also the threshold of a PyTorch model read on its raw
input)."""
INPUT_CORE_CALIBRATION = (
    "the input-space threshold: largest per-table 99.9th percentile of clean breast_cancer, wine, "
    "iris and digits training sets, seeds 100-109 (benchmarks/calibrate_poison_threshold.py)"
)
TIE_MIN = 4
"""Pair-tie count (other same-label rows sharing exact values on two continuous features) from
which a row can be a trigger's: at least 5 rows with the same two values."""
OUTLYING_QUANTILE = 0.95
"""A tied row must also be more outlying (robust Mahalanobis) than this share of the rows that
are in no tie group of the same data."""
TABLE_CALIBRATION = (
    "clean breast_cancer, wine and iris (90% subsets) and digits training sets: label margin at "
    "0.5% per table (1.5% at the lower threshold of a noisy table), seeds 100-119, and "
    "input-space core at 0.1% per table, seeds 100-109 "
    "(benchmarks/calibrate_poison_threshold.py)"
)
TRIGGER_FPR = 0.001
"""The rate the tabular rule's trigger signals (pair ties, input-space core) are calibrated to:
a suspected target is tested against it (flipped labels, which land in every class, are not)."""
TABLE_MIN_TARGET_FLAGS = 7
"""Two more than the most flags any class held in a clean calibration table run (5)."""

TARGET_ALPHA = 0.01
"""Level of the one-sided binomial test (Bonferroni over the classes) that names a class a
suspected target: it holds more flags than the calibrated false-positive rate explains."""
