"""Calibrate the poisoned-sample detectors' thresholds on clean training sets.

Prints the numbers of ``defenses/poison/thresholds.py``. Seeds 100-119 are used here only;
the tests and ``bench_poisoning_detect.py`` use other seeds.

* PyTorch (robust-core reclassification): 20 clean runs of Guard's digits CNN recipe
  (``digits_split(seed)``, ``train_digits(x, y, seed)``, seeds 100-119). The threshold is the
  99.9th percentile of the scores pooled over the runs (false-positive rate 0.1%); the
  minimum flags of a suspected target is two more than the most flags any class held in a run.
* Tables (the model-free tabular rule): clean breast_cancer, wine and iris (random 90%
  subsets) and digits (flattened, the demo's scikit-learn data) training sets. Each
  component's threshold is the largest over the tables of that table's pooled percentile, so
  every table stays at its rate: the label margin's high threshold at the 99.5th percentile and
  its low one (for noisy tables) at the 98.5th, over seeds 100-119; the input-space core at the
  99.9th, over seeds 100-109 (as calibrated before the margin changed; its signal did not). The
  combined rule's clean flag rate per run, and how often a clean run opened the margin gate,
  are printed as the check.

Run: ``python benchmarks/calibrate_poison_threshold.py [torch] [tables]`` (about 2 minutes
on 2 cores).
"""

from __future__ import annotations

import os
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

from typing import TYPE_CHECKING  # noqa: E402

import numpy as np  # noqa: E402

if TYPE_CHECKING:
    from guard.defenses.poison.tabular import TabularSignals

Runs = dict[str, list[tuple["TabularSignals", np.ndarray]]]

TORCH_SEEDS = range(100, 120)
TABLE_SEEDS = range(100, 120)
INPUT_CORE_SEEDS = range(100, 110)
CORE_QUANTILE = 0.999
MARGIN_QUANTILE = 0.995
MARGIN_LOW_QUANTILE = 0.985
INPUT_CORE_QUANTILE = 0.999


def say(text: str) -> None:
    print(text, flush=True)  # noqa: T201  (a calibration script reports on stdout)


def clean_digits_scores(seed: int) -> tuple[np.ndarray, np.ndarray]:
    from guard.defenses.poison.core import core_reclassification
    from guard.defenses.poison.representation import representation
    from guard.demo import digits_split, train_digits

    split = digits_split(seed)
    model = train_digits(split.x_train, split.y_train, seed)
    rep = representation(model, split.x_train)
    return core_reclassification(rep.features, split.y_train, seed).scores, split.y_train


def clean_tables(seed: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    from sklearn import datasets

    from guard.demo import digits_split

    out = {}
    for name in ("breast_cancer", "wine", "iris"):
        data = getattr(datasets, f"load_{name}")()
        n = len(data.target)
        keep = np.sort(np.random.default_rng(seed).permutation(n)[: int(0.9 * n)])
        out[name] = (data.data[keep].astype(np.float64), data.target[keep].astype(np.int64))
    split = digits_split(seed, image=False)
    out["digits"] = (split.x_train.astype(np.float64), split.y_train)
    return out


def most_in_one_class(flags: np.ndarray, y: np.ndarray) -> int:
    return int(np.bincount(y[flags]).max()) if flags.any() else 0


def calibrate_torch() -> None:
    import torch

    torch.set_num_threads(1)
    start = time.perf_counter()
    runs = [clean_digits_scores(seed) for seed in TORCH_SEEDS]
    pooled = np.concatenate([s for s, _ in runs])
    tau = float(np.quantile(pooled, CORE_QUANTILE))
    rates = [float(np.mean(s > tau)) for s, _ in runs]
    most = max(most_in_one_class(s > tau, y) for s, y in runs)
    took = time.perf_counter() - start
    say(f"torch: {len(runs)} clean digits-CNN runs, {len(pooled)} scores, {took:.0f} s")
    say(f"  CORE_THRESHOLD = {tau:.2f}  (99.9th percentile)")
    say(f"  clean flag rate per run at it: {min(rates):.2%} to {max(rates):.2%}")
    say(f"  CORE_MIN_TARGET_FLAGS = {max(3, most + 2)}  (most flags in one class of a run: {most})")


def per_table(signals: Runs, field: str, q: float, seeds: range = TABLE_SEEDS) -> float:
    """The largest over the tables of their pooled ``q`` quantile of one signal."""
    return max(float(np.quantile(np.concatenate(
        [getattr(s, field) for seed, (s, _) in zip(TABLE_SEEDS, runs, strict=True) if seed in seeds]), q))
        for runs in signals.values())


def calibrate_tables() -> None:
    from guard.defenses.poison import thresholds as T
    from guard.defenses.poison.tabular import MarginGate, combine_signals, tabular_signals

    start = time.perf_counter()
    signals: Runs = {}
    for seed in TABLE_SEEDS:
        for name, (x, y) in clean_tables(seed).items():
            signals.setdefault(name, []).append((tabular_signals(x, y, int(y.max()) + 1, seed), y))
    high = per_table(signals, "margin", MARGIN_QUANTILE)
    low = per_table(signals, "margin", MARGIN_LOW_QUANTILE)
    core = per_table(signals, "core", INPUT_CORE_QUANTILE, INPUT_CORE_SEEDS)
    ties = max(float(s.pair_tie.max()) for runs in signals.values() for s, _ in runs)
    say(f"tables: {sum(len(r) for r in signals.values())} clean runs, {time.perf_counter() - start:.0f} s")
    say(f"  MARGIN_THRESHOLD = {high:.2f}  (largest per-table 99.5th percentile)")
    say(f"  MARGIN_LOW = {low:.2f}  (largest per-table 98.5th percentile; MARGIN_LOW_RATE = "
        f"{1 - MARGIN_LOW_QUANTILE:g})")
    say(f"  INPUT_CORE_THRESHOLD = {core:.2f}  (largest per-table 99.9th percentile, seeds "
        f"{INPUT_CORE_SEEDS.start}-{INPUT_CORE_SEEDS.stop - 1})")
    say(f"  largest clean pair-tie count: {ties:.0f} (TIE_MIN is {T.TIE_MIN})")
    gate = MarginGate(high=round(high, 2), low=round(low, 2), low_rate=1 - MARGIN_LOW_QUANTILE,
                      alpha=T.MARGIN_GATE_ALPHA)
    most = 0
    for name, runs in signals.items():
        rates, opened, smallest = [], 0, 1.0
        for sig, y in runs:
            table = combine_signals(sig, gate=gate, tie_min=T.TIE_MIN,
                                    quantile=T.OUTLYING_QUANTILE, core=round(core, 2))
            rates.append(float(np.mean(table.scores > 1.0)))
            opened += table.noisy
            smallest = min(smallest, table.gate_p)
            most = max(most, most_in_one_class(table.trigger > 1.0, y))
        say(f"  {name:14s} combined clean flag rate per run: {min(rates):.2%} to {max(rates):.2%}; "
            f"margin gate opened {opened}/{len(runs)} (smallest p {smallest:.2g})")
    say(f"  TABLE_MIN_TARGET_FLAGS = {max(3, most + 2)}  (most trigger-signal flags in one class "
          f"of a run: {most})")


if __name__ == "__main__":
    which = sys.argv[1:] or ["torch", "tables"]
    if "torch" in which:
        calibrate_torch()
    if "tables" in which:
        calibrate_tables()
