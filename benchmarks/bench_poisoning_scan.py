"""Guard's model-level backdoor scan (Neural Cleanse) beside ART's, on the digits CNN.

Run: python benchmarks/bench_poisoning_scan.py [--seeds 5] [--threads 1] [--out FILE]
Writes a Markdown section for docs/benchmarks.md (stdout, and --out when given).

Models: Guard's demo recipe (guard.demo.train_digits) trained with 10% and 3% of the training
set carrying the BadNets 2x2 bottom-right trigger relabelled to class 0, and clean (0%), one
model per seed (the split, the poison and the training all follow the seed). Every method scans
the same 300 clean test samples of each model.

ART 1.20's ``art.defences.transformer.poisoning.NeuralCleanse`` accepts only Keras classifiers
(it raises NotImplementedError for a PyTorchClassifier; the script records the message), and
TensorFlow is not installed here. So "ART (port)" is ART's algorithm rewritten line for line in
torch from ``KerasNeuralCleanse.generate_backdoor`` and ``NeuralCleanseMixin.outlier_detection``
with ART's defaults (1,000 epochs, Adam lr 0.1 betas (0.5, 0.9), initial cost 1e-3 on the L2
mask norm, success 0.99, patience 5, early stop at 1% over 10 epochs, batch 32, one class at a
time), flagging classes with ART's rule (L1 below the median and |L1 - median| / MAD > 2).
"""

from __future__ import annotations

import argparse
import datetime as dt
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from guard.attacks.evasion.base import choose_samples
from guard.attacks.poisoning.triggers import image_trigger, plant_backdoor
from guard.build import build_target_from_objects
from guard.demo import DIGITS_CLIP, digits_split, train_digits
from guard.probes import RunContext, build_probe

RATES = (0.1, 0.03, 0.0)
TARGET, SAMPLES = 0, 300
ART_EPOCHS: list[int] = []
"""Epochs each class of each ART scan ran (the report gives their range)."""


@dataclass
class Model:
    rate: float
    seed: int
    module: nn.Module
    x: np.ndarray  # the clean test split
    y: np.ndarray
    asr: float


@dataclass
class Scan:
    flagged: list[int]  # classes flagged, most anomalous first
    top_index: float  # the largest anomaly index on the small side
    seconds: float


def poisoned_model(rate: float, seed: int) -> Model:
    split = digits_split(seed)
    trigger = image_trigger(split.x_train.shape[1:], DIGITS_CLIP)
    x, y = split.x_train, split.y_train
    if rate > 0:
        x, y, _ = plant_backdoor(x, y, rate, TARGET, trigger, seed)
    module = train_digits(x, y, seed)
    for p in module.parameters():
        p.requires_grad_(False)
    keep = split.y_test != TARGET
    with torch.no_grad():
        pred = module(torch.as_tensor(trigger.apply(split.x_test[keep]))).argmax(1).numpy()
    return Model(rate, seed, module, split.x_test, split.y_test, float(np.mean(pred == TARGET)))


def guard_scan(model: Model, **settings: float) -> Scan:
    target = build_target_from_objects(model.module, model.x, model.y, clip=DIGITS_CLIP, name="cnn")
    start = time.perf_counter()
    (ev,) = build_probe("backdoor-scan", **settings).run(target, RunContext(seed=model.seed))
    seconds = time.perf_counter() - start
    suspect = ev.params["suspected_target"]
    return Scan([] if suspect is None else [suspect], ev.metrics["anomaly_index"].value, seconds)


def art_generate_backdoor(module: nn.Module, x: np.ndarray, c: int, rng: np.random.Generator,
                          steps: int = 1000) -> tuple[np.ndarray, np.ndarray, int]:
    """KerasNeuralCleanse.generate_backdoor with ART's defaults, in torch; also the epochs run.
    ART resets the cost (and the flags early stopping waits for) after every ``patience``
    successful epochs, so early stopping seldom fires and most classes run all epochs."""
    init_cost, lr, success, patience = 1e-3, 0.1, 0.99, 5
    stop_share, stop_patience, up, down = 0.99, 10, 1.5, 1.5**1.5
    eps = 1e-7  # keras.backend.epsilon()
    shape = x.shape[1:]
    mask_raw = torch.tensor(rng.uniform(size=shape), dtype=torch.float32, requires_grad=True)
    pattern_raw = torch.tensor(rng.uniform(size=shape), dtype=torch.float32, requires_grad=True)
    opt = torch.optim.Adam([mask_raw, pattern_raw], lr=lr, betas=(0.5, 0.9))
    xt = torch.as_tensor(x, dtype=torch.float32)
    cost, best_reg = init_cost, float("inf")
    mask_best: np.ndarray | None = None
    pattern_best: np.ndarray | None = None
    set_count = up_count = down_count = stop_count = 0
    up_flag = down_flag = False
    stop_best = best_reg
    batches = len(x) // 32
    epochs = 0
    for _ in range(steps):
        epochs += 1
        regs, accs = [], []
        order = torch.as_tensor(rng.permutation(len(x)))
        for b in range(batches):
            xb = xt[order[b * 32:(b + 1) * 32]]
            mask = torch.tanh(mask_raw) / (2 - eps) + 0.5
            pattern = torch.tanh(pattern_raw) / (2 - eps) + 0.5
            logits = module((1 - mask) * xb + mask * pattern)
            goal = torch.full((len(xb),), c)
            reg = torch.sqrt((mask**2).sum() / shape[-1])  # ART's default norm=2
            loss = nn.functional.cross_entropy(logits, goal) + cost * reg
            opt.zero_grad()
            loss.backward()  # type: ignore[no-untyped-call]
            opt.step()
            regs.append(reg.item())
            accs.append(float((logits.argmax(1) == goal).float().mean()))
        avg_reg, avg_acc = float(np.mean(regs)), float(np.mean(accs))
        if avg_acc >= success and avg_reg < best_reg:
            mask_best, pattern_best, best_reg = mask.detach().numpy(), pattern.detach().numpy(), avg_reg
        if best_reg < float("inf"):
            stop_count = stop_count + 1 if best_reg >= stop_share * stop_best else 0
        stop_best = min(best_reg, stop_best)
        if down_flag and up_flag and stop_count >= stop_patience:
            break
        if avg_acc >= success:
            set_count += 1
            if set_count >= patience:
                cost, up_count, down_count, up_flag, down_flag = init_cost, 0, 0, False, False
        else:
            set_count = 0
        up_count, down_count = (up_count + 1, 0) if avg_acc >= success else (0, down_count + 1)
        if up_count >= patience:
            up_count, cost, up_flag = 0, cost * up, True
        elif down_count >= patience:
            down_count, cost, down_flag = 0, cost / down, True
    if mask_best is None or pattern_best is None:
        mask_best = (torch.tanh(mask_raw) / (2 - eps) + 0.5).detach().numpy()
        pattern_best = (torch.tanh(pattern_raw) / (2 - eps) + 0.5).detach().numpy()
    return mask_best, pattern_best, epochs


def art_scan(model: Model, steps: int) -> Scan:
    """NeuralCleanseMixin.outlier_detection over ART's per-class backdoors."""
    idx = choose_samples(len(model.y), SAMPLES, model.seed)
    rng = np.random.default_rng(model.seed)
    start = time.perf_counter()
    found = [art_generate_backdoor(model.module, model.x[idx], c, rng, steps) for c in range(10)]
    seconds = time.perf_counter() - start
    l1 = np.array([np.abs(mask).sum() for mask, _, _ in found])
    ART_EPOCHS.extend(epochs for _, _, epochs in found)
    median = np.median(l1)
    mad = 1.4826 * np.median(np.abs(l1 - median))
    index = np.abs(l1 - median) / mad
    small = np.where(l1 <= median, index, 0.0)
    flagged = [int(c) for c in np.argsort(-small) if small[c] > 2]
    return Scan(flagged, float(small.max()), seconds)


def art_refusal() -> str:
    """What ART's own NeuralCleanse says when given a PyTorchClassifier."""
    from art.defences.transformer.poisoning import NeuralCleanse
    from art.estimators.classification import PyTorchClassifier

    from guard.demo import DigitsCNN

    clf = PyTorchClassifier(model=DigitsCNN(), loss=nn.CrossEntropyLoss(), input_shape=(1, 8, 8),
                            nb_classes=10, clip_values=DIGITS_CLIP)
    try:
        NeuralCleanse(clf)
    except NotImplementedError as exc:
        return f"NotImplementedError: {exc}"
    return "accepted"


def span(values: Sequence[float], fmt: str = "{:.2f}") -> str:
    lo, hi = min(values), max(values)
    return fmt.format(lo) if lo == hi else f"{fmt.format(lo)}-{fmt.format(hi)}"


def rows_for(name: str, scans: dict[float, list[Scan]]) -> list[str]:
    out = []
    for rate in RATES:
        got = scans[rate]
        n = len(got)
        times = span([s.seconds for s in got], "{:.1f}")
        index = span([s.top_index for s in got])
        if rate > 0:
            flagged = sum(bool(s.flagged) for s in got)
            right = sum(bool(s.flagged) and s.flagged[0] == TARGET for s in got)
            extra = sum(len([c for c in s.flagged if c != TARGET]) for s in got)
            out.append(f"| {name} | {rate:.0%} | {flagged}/{n} | {right}/{n} | {extra} other classes | "
                       f"{index} | {times} |")
        else:
            false = sum(bool(s.flagged) for s in got)
            out.append(f"| {name} | clean | {false}/{n} false flags | - | - | {index} | {times} |")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--art-steps", type=int, default=1000, help="ART's epochs per class (its default)")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    methods: dict[str, Callable[[Model], Scan]] = {
        "Guard (defaults)": guard_scan,
        "Guard, paper's index (mad_floor=0)": lambda m: guard_scan(m, mad_floor=0.0),
        "ART (port, ART's defaults)": lambda m: art_scan(m, args.art_steps),
    }
    scans: dict[str, dict[float, list[Scan]]] = {name: {r: [] for r in RATES} for name in methods}
    asr: dict[float, list[float]] = {r: [] for r in RATES}
    for rate in RATES:
        for seed in range(args.seeds):
            model = poisoned_model(rate, seed)
            asr[rate].append(model.asr)
            for name, method in methods.items():
                scans[name][rate].append(method(model))
    lines = [
        f"Machine: {platform.machine()}, 2 shared cores, {torch.get_num_threads()} torch thread(s), "
        f"Python {platform.python_version()}, torch {torch.__version__}; date {dt.date.today().isoformat()}",
        "",
        f"Digits CNN (Guard's demo recipe), seeds 0-{args.seeds - 1} per row, {SAMPLES} clean test "
        "samples per scan; BadNets 2x2 trigger to class 0 (attack success "
        + ", ".join(f"{r:.0%}: {span(asr[r])}" for r in RATES if r > 0) + "). Ranges are min-max "
        "over seeds; the anomaly index is the largest on the small-mask side.",
        f"ART's own NeuralCleanse on a PyTorchClassifier: {art_refusal()} (hence the port). "
        f"ART port: at most {args.art_steps} epochs per class; classes ran {span(ART_EPOCHS, '{:.0f}')} "
        "epochs (ART resets its cost after every 5 successful epochs, so its early stop seldom fires).",
        "",
        "| method | poison | flagged | target class right | extra flags | anomaly index | s per model |",
        "|---|---|---|---|---|---|---|",
    ]
    for name in methods:
        lines.extend(rows_for(name, scans[name]))
    text = "\n".join(lines) + "\n"
    print(text)  # noqa: T201  (a benchmark script reports on stdout)
    if args.out is not None:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
