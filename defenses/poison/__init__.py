"""Poisoned-sample detection on a training set: representations, robust cores, tabular checks.

:func:`guard.defenses.poison.detect.detect_poison` is the entry point (the audit probe is
:mod:`.probe`, the command ``guard data detect-poison``); :mod:`.thresholds` holds the
calibrated thresholds and how they were measured.
"""
