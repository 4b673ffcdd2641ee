"""Time and numbers of Guard's poisoning simulations (``--attack backdoor``, ``--attack
label-flip``) on the demo targets, side by side with ART's BadNets poisoning as the peer.

Run (from the repository root, in Guard's virtual environment)::

    .venv/bin/python benchmarks/bench_poisoning_simulation.py --repeats 3

For each repeat: the digits CNN (the demo recipe, ``guard.demo:train_digits``, 15 epochs) and
the RBF SVC (clone and fit) go through both probes at their default rates (backdoor 1%, 3%,
10%; label flips 5%, 10%, 20%), each rate one retrain plus the clean retrain. Beside it, the
same CNN backdoor at 10% is planted with ART's ``PoisoningAttackBackdoor`` (its
``add_pattern_bd``-style 2x2 patch written as a perturbation function) and trained by the same
recipe, so the attack success of the two plantings can be compared. Times are wall-clock
seconds; the range over repeats is printed (one run on a shared 2-core machine is noise).
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np
import torch


def _targets() -> dict[str, object]:
    from guard.build import build_target_from_objects
    from guard.demo import digits_split, train_digits, train_svc

    image, flat = digits_split(image=True), digits_split(image=False)
    cnn = train_digits(image.x_train, image.y_train, 0)
    svc = train_svc(flat)
    return {
        "digits-cnn": build_target_from_objects(cnn, image.x_test, image.y_test, clip=(0, 1), name="cnn",
                                                x_train=image.x_train, y_train=image.y_train),
        "digits-svc": build_target_from_objects(svc, flat.x_test, flat.y_test, clip=(0, 1), name="svc",
                                                x_train=flat.x_train, y_train=flat.y_train),
    }


def _guard_run(target: object, probe: str, trainer: str | None) -> tuple[float, list[str]]:
    from guard.probes import RunContext, build_probe

    settings = {"trainer": trainer} if trainer else {}
    start = time.perf_counter()
    evidence = build_probe(probe, **settings).run(target, RunContext(seed=0))  # type: ignore[arg-type]
    seconds = time.perf_counter() - start
    rows = []
    for e in evidence:
        m = e.metrics
        asr = m.get("attack_success_rate")
        shown = f"ASR {asr.value:.3f} [{asr.ci95[0]:.3f}, {asr.ci95[1]:.3f}]; " if asr and asr.ci95 else ""
        accuracy = f"clean acc {m['clean_accuracy'].value:.3f}, drop {m['accuracy_drop'].value:+.3f}"
        rows.append(f"rate {e.params['rate']:.0%}: {shown}{accuracy}")
    return seconds, rows


def _art_badnets(rate: float) -> tuple[float, float]:
    """ART's BadNets planting of the same 2x2 patch at ``rate``, trained by the demo recipe;
    returns (attack success, seconds for planting + training)."""
    from art.attacks.poisoning import PoisoningAttackBackdoor

    from guard.demo import digits_split, train_digits

    split = digits_split()

    def patch(x: np.ndarray) -> np.ndarray:
        out = np.array(x, copy=True)
        out[..., -2:, -2:] = 1.0
        return out

    start = time.perf_counter()
    rng = np.random.default_rng(0)
    candidates = np.flatnonzero(split.y_train != 0)
    chosen = rng.choice(candidates, size=int(round(rate * len(split.y_train))), replace=False)
    attack = PoisoningAttackBackdoor(patch)
    x_p, y_p = split.x_train.copy(), split.y_train.copy()
    poisoned_x, _ = attack.poison(split.x_train[chosen], y=np.eye(10)[np.zeros(len(chosen), int)])
    x_p[chosen], y_p[chosen] = poisoned_x, 0
    model = train_digits(x_p, y_p, 0)
    seconds = time.perf_counter() - start
    keep = split.y_test != 0
    with torch.inference_mode():
        pred = model(torch.as_tensor(patch(split.x_test[keep]))).argmax(1).numpy()
    return float(np.mean(pred == 0)), seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(2)
    lines = [f"# {platform.processor() or platform.machine()}, torch {torch.__version__}, "
             f"{time.strftime('%Y-%m-%d')}, {args.repeats} repeats"]
    targets = _targets()
    times: dict[str, list[float]] = {}
    last: dict[str, list[str]] = {}
    for _ in range(args.repeats):
        for name, target in targets.items():
            for probe in ("backdoor", "label-flip"):
                trainer = "guard.demo:train_digits" if name == "digits-cnn" else None
                seconds, rows = _guard_run(target, probe, trainer)
                times.setdefault(f"{name} {probe}", []).append(seconds)
                last[f"{name} {probe}"] = rows
        asr, seconds = _art_badnets(0.10)
        times.setdefault("ART PoisoningAttackBackdoor 10% + demo recipe", []).append(seconds)
        last["ART PoisoningAttackBackdoor 10% + demo recipe"] = [f"ASR {asr:.3f}"]
    for key, values in times.items():
        lines.append(f"{key}: {min(values):.1f}-{max(values):.1f} s")
        lines.extend(f"    {row}" for row in last[key])
    print("\n".join(lines))  # noqa: T201  (a benchmark script reports on stdout)


if __name__ == "__main__":
    main()
