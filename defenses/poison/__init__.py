"""Poisoned-sample detection on a training set: representations, robust cores, tabular checks."""
