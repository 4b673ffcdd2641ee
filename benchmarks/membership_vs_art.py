"""Guard's membership inference (``--attack membership``) side by side with ART's black-box
attack on the same overfit model: a digits CNN trained on 300 samples.

Run (from the repository root, in Guard's virtual environment)::

    .venv/bin/python benchmarks/membership_vs_art.py --seeds 16 --demo

For each seed: 300 of scikit-learn's 1,797 digits (drawn by the seed) train the demo's CNN
for 30 epochs (Adam, batch 64: every training sample fits, about 95% test accuracy), the other
1,497 are held out. The probe then scores 150 members (half the training set; the other half
trains ART's attack model and the reference models) against 150 held-out non-members, with
every attack on the same samples and the same model: RMIA with 4 reference models and with
the quick default of 1 (each trained by the same recipe on data that holds no scored
sample), the loss threshold, and ART's ``MembershipInferenceBlackBox`` with its defaults
(trained on the target's probabilities of 150 known members and 150 known non-members). The
TPR at 1% FPR with 150 non-members is the share of members above the threshold that flags at
most one non-member: noisy, so the range and the mean over seeds are what to compare, and the
count of seeds where RMIA beats ART.

``--demo`` also times the quick default (1 reference model, every attack) on the demo's two
models, the digits CNN retrained by ``guard.demo:train_digits`` and the RBF SVC.

Torch runs on one thread (the machine is shared); times are wall-clock seconds.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

TRAIN_SIZE = 300
EPOCHS = 30
TRAINER = "membership_vs_art:train_overfit"


def train_overfit(x: np.ndarray, y: np.ndarray, seed: int) -> torch.nn.Module:
    """The recipe of the benchmark's target (and so of its reference models): the demo CNN,
    trained long enough on few samples to fit every one."""
    from guard.demo import train_digits

    return train_digits(x, y, seed, epochs=EPOCHS)


def _target(seed: int) -> tuple[Any, float, float]:
    from sklearn.datasets import load_digits

    from guard.build import build_target_from_objects

    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32).reshape(-1, 1, 8, 8)
    y = digits.target.astype(np.int64)
    order = np.random.default_rng([seed, 300]).permutation(len(y))
    train, held_out = order[:TRAIN_SIZE], order[TRAIN_SIZE:]
    model = train_overfit(x[train], y[train], seed)
    with torch.inference_mode():
        acc_train = float((model(torch.as_tensor(x[train])).argmax(1).numpy() == y[train]).mean())
        acc_test = float((model(torch.as_tensor(x[held_out])).argmax(1).numpy() == y[held_out]).mean())
    target = build_target_from_objects(model, x[held_out], y[held_out], clip=(0.0, 1.0), name=f"cnn-{seed}",
                                       x_train=x[train], y_train=y[train])
    return target, acc_train, acc_test


def _run(target: Any, seed: int, **settings: Any) -> tuple[dict[str, Any], float]:
    from guard.probes import RunContext, build_probe

    start = time.perf_counter()
    evidence = build_probe("membership", trainer=TRAINER, **settings).run(target, RunContext(seed=seed))
    seconds = time.perf_counter() - start
    return {e.params["attack"]: e for e in evidence}, seconds


def _fmt(metric: Any) -> str:
    if metric is None:
        return "-"
    lo, hi = metric.ci95
    return f"{metric.value:.3f} [{lo:.3f}, {hi:.3f}]"


def demo_timing() -> None:
    """The quick default (1 reference model, every attack) on the demo's two models, as
    ``guard audit --demo --attack membership`` runs it (the CNN retrained by its recipe)."""
    from guard.build import build_target_from_objects
    from guard.demo import digits_split, train_cnn, train_svc

    image, flat = digits_split(image=True), digits_split(image=False)
    targets = {
        "digits-cnn": build_target_from_objects(train_cnn(image), image.x_test, image.y_test, clip=(0, 1),
                                                name="cnn", x_train=image.x_train, y_train=image.y_train),
        "digits-svc": build_target_from_objects(train_svc(flat), flat.x_test, flat.y_test, clip=(0, 1),
                                                name="svc", x_train=flat.x_train, y_train=flat.y_train),
    }
    for name, target in targets.items():
        found, seconds = _run_demo(target)
        aucs = ", ".join(f"{k} AUC {_fmt(e.metrics['auc'])}" for k, e in found.items())
        print(f"demo {name}: probe {seconds:.1f} s; {aucs}")  # noqa: T201


def _run_demo(target: Any) -> tuple[dict[str, Any], float]:
    from guard.demo import DEMO_TRAINER
    from guard.probes import RunContext, build_probe

    start = time.perf_counter()
    evidence = build_probe("membership", trainer=DEMO_TRAINER).run(target, RunContext(seed=0))
    return {e.params["attack"]: e for e in evidence}, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=16)
    parser.add_argument("--demo", action="store_true", help="time the quick default on the demo models too")
    args = parser.parse_args()
    torch.set_num_threads(1)
    sys.path.insert(0, str(Path(__file__).resolve().parent))  # where --trainer finds this module
    print(f"# {platform.platform()}, Python {platform.python_version()}, torch {torch.__version__}, "  # noqa: T201
          f"{torch.get_num_threads()} thread")
    if args.demo:
        demo_timing()
    columns = ("rmia (4 refs)", "rmia (1 ref)", "loss_threshold", "art_blackbox")
    table: dict[str, dict[str, list[float]]] = {c: {"tpr": [], "auc": [], "adv": []} for c in columns}
    times: dict[str, list[float]] = {"4 refs, all attacks": [], "1 ref, rmia only": []}
    for seed in range(args.seeds):
        target, acc_train, acc_test = _target(seed)
        full, t_full = _run(target, seed, reference_models=4)
        quick, t_quick = _run(target, seed, reference_models=1, attacks=("rmia",))
        times["4 refs, all attacks"].append(t_full)
        times["1 ref, rmia only"].append(t_quick)
        found = {"rmia (4 refs)": full["rmia"], "rmia (1 ref)": quick["rmia"],
                 "loss_threshold": full["loss_threshold"], "art_blackbox": full["art_blackbox"]}
        print(f"\nseed {seed}: train accuracy {acc_train:.3f}, test accuracy {acc_test:.3f}, "  # noqa: T201
              f"{full['rmia'].params['members']} members / {full['rmia'].params['non_members']} non-members")
        for name, e in found.items():
            m = e.metrics
            table[name]["tpr"].append(m["tpr_at_1pct_fpr"].value)
            table[name]["auc"].append(m["auc"].value)
            table[name]["adv"].append(m["advantage"].value)
            flags = ",".join(f.code for f in e.flags if f.code != "too_few_non_members") or "-"
            print(f"  {name:15s} TPR@1%FPR {_fmt(m.get('tpr_at_1pct_fpr'))}  AUC {_fmt(m['auc'])}  "  # noqa: T201
                  f"advantage {_fmt(m['advantage'])}  null AUC {_fmt(m.get('null_auc'))}  flags {flags}")
    if not args.seeds:
        return
    print("\n| attack | TPR at 1% FPR: range (mean) | AUC: range (mean) | advantage: range (mean) |")  # noqa: T201
    print("|---|---|---|---|")  # noqa: T201
    for name in columns:
        cells = [f"{min(v):.3f}-{max(v):.3f} ({np.mean(v):.3f})" for v in table[name].values()]
        print(f"| {name} | " + " | ".join(cells) + " |")  # noqa: T201
    from scipy.stats import t as student

    art = np.array(table["art_blackbox"]["tpr"])
    for name in ("rmia (4 refs)", "rmia (1 ref)"):
        ours = np.array(table[name]["tpr"])
        diff = ours - art
        n = len(diff)
        half = student.ppf(0.975, n - 1) * diff.std(ddof=1) / np.sqrt(n) if n > 1 else np.nan
        auc_wins = int(np.sum(np.array(table[name]["auc"]) > np.array(table["art_blackbox"]["auc"])))
        print(f"{name} vs ART, TPR at 1% FPR: above in {int(np.sum(diff > 0))} of {n} seeds, "  # noqa: T201
              f"equal in {int(np.sum(diff == 0))}; mean difference {diff.mean():+.3f} "
              f"(95% t-interval over seeds {diff.mean() - half:+.3f} to {diff.mean() + half:+.3f}); "
              f"AUC above ART's in {auc_wins} of {n}")
    for what, values in times.items():
        print(f"probe time ({what}): {min(values):.1f}-{max(values):.1f} s")  # noqa: T201


if __name__ == "__main__":
    main()
