"""Speed of Guard's PGD against a plain torch loop and ART, and of PGD on an RBF SVC.

Run: python benchmarks/bench_evasion.py [--repeats 5] [--skip-art-svc]
Prints a Markdown table for docs/benchmarks.md. Timings are medians of --repeats runs
(the ART SVC run is slow and runs once). Each row carries the robust accuracy it reached,
so a speed-up that weakens the attack shows.
"""

from __future__ import annotations

import argparse
import datetime as dt
import platform
import statistics
import time
import warnings
from collections.abc import Callable

import numpy as np
import torch

from guard.demo import digits_split, train_cnn
from guard.models.sklearn_adapter import SklearnModel
from guard.models.torch_adapter import TorchModel
from guard.probes import RunContext, build_probe
from guard.target import InputSpec, Target

EPS, STEP, STEPS, N = 0.1, 0.01, 40, 500


def timed(fn: Callable[[], float], repeats: int) -> tuple[float, float]:
    times, value = [], 0.0
    for _ in range(repeats):
        start = time.perf_counter()
        value = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), value


def plain_pgd(module: torch.nn.Module, x: np.ndarray, y: np.ndarray) -> float:
    """The textbook loop: every sample, every step, last iterate."""
    x0, yt = torch.as_tensor(x), torch.as_tensor(y)
    xa = x0.clone()
    for _ in range(STEPS):
        xa.requires_grad_(True)
        loss = torch.nn.functional.cross_entropy(module(xa), yt)
        (g,) = torch.autograd.grad(loss, xa)
        xa = (x0 + (xa.detach() + STEP * g.sign() - x0).clamp(-EPS, EPS)).clamp(0, 1)
    with torch.no_grad():
        return float((module(xa).argmax(1) == yt).float().mean())


def art_pgd(target: Target, batch: int) -> float:
    from art.attacks.evasion import ProjectedGradientDescent
    from art.estimators.classification import PyTorchClassifier

    clf = PyTorchClassifier(model=target.model.torch_module(), loss=torch.nn.CrossEntropyLoss(),
                            input_shape=target.input_spec.shape, nb_classes=10,
                            clip_values=(0.0, 1.0), device_type="cpu")
    attack = ProjectedGradientDescent(clf, norm=np.inf, eps=EPS, eps_step=STEP, max_iter=STEPS,
                                      batch_size=batch, verbose=False)
    x_adv = attack.generate(x=target.x_eval, y=target.y_eval)
    return float(np.mean(target.model.predict(x_adv) == target.y_eval))


def guard_pgd(target: Target, **extra: object) -> float:
    probe = build_probe("pgd", eps=(EPS,), step_size=STEP, steps=STEPS, samples=N, **extra)
    return probe.run(target, RunContext())[0].metrics["robust_accuracy"].value


def cnn_rows(repeats: int) -> list[str]:
    split = digits_split()
    model = TorchModel(train_cnn(split), 10)
    target = Target("cnn", model, split.x_test[:N], split.y_test[:N],
                    InputSpec(shape=(1, 8, 8), clip=(0.0, 1.0)))
    module = model.torch_module()
    x, y = target.x_eval, target.y_eval
    rows = []
    base, acc = timed(lambda: plain_pgd(module, x, y), repeats)
    rows.append(("plain torch PGD loop", base, acc))
    for label, fn in [
        ("Guard PGD (default: early stop, 2 targeted runs)", lambda: guard_pgd(target)),
        ("Guard PGD (early stop, no targeted runs)", lambda: guard_pgd(target, targets=0)),
        ("Guard PGD (no early stop, no targeted runs)",
         lambda: guard_pgd(target, targets=0, early_stop=False)),
        ("ART PGD, batch 500", lambda: art_pgd(target, 500)),
        ("ART PGD, batch 32 (ART's default)", lambda: art_pgd(target, 32)),
    ]:
        seconds, acc = timed(fn, repeats)
        rows.append((label, seconds, acc))
    return [f"| CNN digits | {label} | {s:.3f} | {s / base:.2f}x | {a:.1%} |" for label, s, a in rows]


def svc_rows(skip_art: bool) -> list[str]:
    from sklearn.svm import SVC

    split = digits_split(image=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        svc = SVC(kernel="rbf", C=10.0, gamma="scale", probability=False)
        svc.fit(split.x_train, split.y_train)
    target = Target("svc", SklearnModel(svc), split.x_test[:N], split.y_test[:N],
                    InputSpec(shape=(64,), clip=(0.0, 1.0)))
    rows = []
    seconds, acc = timed(lambda: guard_pgd(target), 3)
    rows.append(("Guard PGD (default)", seconds, acc))
    seconds, acc = timed(lambda: guard_pgd(target, targets=0, early_stop=False), 3)
    rows.append(("Guard PGD (no early stop, no targeted runs)", seconds, acc))
    if not skip_art:
        from art.attacks.evasion import ProjectedGradientDescent
        from art.estimators.classification import SklearnClassifier

        clf = SklearnClassifier(model=svc, clip_values=(0.0, 1.0))
        attack = ProjectedGradientDescent(clf, norm=np.inf, eps=EPS, eps_step=STEP,
                                          max_iter=STEPS, batch_size=N, verbose=False)

        def run_art() -> float:
            x_adv = attack.generate(x=target.x_eval, y=np.eye(10)[target.y_eval])
            return float(np.mean(svc.predict(x_adv) == target.y_eval))

        seconds, acc = timed(run_art, 1)
        rows.append(("ART PGD (ScikitlearnSVC gradients), batch 500", seconds, acc))
    return [f"| RBF SVC digits | {label} | {s:.3f} | - | {a:.1%} |" for label, s, a in rows]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--skip-art-svc", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(2)
    lines = [
        f"Machine: {platform.machine()}, {torch.get_num_threads()} torch threads, "
        f"Python {platform.python_version()}, torch {torch.__version__}; "
        f"date {dt.date.today().isoformat()}",
        "",
        f"L-inf PGD, eps {EPS}, step {STEP}, {STEPS} steps, {N} test samples; "
        "time is the median over repeats.",
        "",
        "| model | method | seconds | vs plain loop | robust accuracy |",
        "|---|---|---|---|---|",
        *cnn_rows(args.repeats),
        *svc_rows(args.skip_art_svc),
    ]
    print("\n".join(lines))  # noqa: T201  (a benchmark script reports on stdout)


if __name__ == "__main__":
    main()
