"""Fidelity of Guard's extraction probes against the query budget, beside ART run directly.

Run (from the repository root, in Guard's virtual environment)::

    .venv/bin/python benchmarks/extraction_budget.py --seeds 5

The targets are the demo's: the digits CNN (``guard.demo.train_cnn``, 15 epochs) and the RBF
SVC, with the 1,197 training digits as the attacker's query pool and the 600 test digits
held out. For every seed and every budget (50, 100, 250, 500 and 1,000 queries) a copy is
trained from scratch and its agreement with the target on the held-out digits is measured:

* Guard's ``extraction.copycat`` (labels) and ``extraction.knockoff`` (probabilities), as the
  audit runs them (the seed is ``RunContext.seed``);
* ART's CopycatCNN run directly on the CNN: its own query selection from the pool (NumPy's
  global generator seeded with the seed), the victim ART's ``PyTorchClassifier`` of the
  target, the thief a fresh ``DigitsCNN``: once with Guard's training recipe (batch 64,
  Adam 2e-3, 30 epochs and at least 200 steps) and once with ART's defaults (batch 1, 10
  epochs, the same Adam), which is what the issue measured;
* ART's KnockoffNets run directly with ``use_probability=True`` against the same
  ``PyTorchClassifier``: its ``predict`` returns logits, so the copy is fitted to logits
  taken for probabilities (the trap Guard's probe avoids by softmaxing).

Each cell is the range (min-max) of fidelity over the seeds, then the mean; n = 600 held-out
digits (a single run's Wilson interval is about +-1.5 points at 0.95). Seconds are the mean
wall time of one sweep of the five budgets on this machine (shared, 2 cores: noisy).
"""

from __future__ import annotations

import argparse
import platform
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

BUDGETS = (50, 100, 250, 500, 1000)


def _targets() -> dict[str, Any]:
    from guard.build import build_target_from_objects
    from guard.demo import digits_split, train_cnn, train_svc

    image, flat = digits_split(image=True), digits_split(image=False)
    return {
        "digits CNN": build_target_from_objects(train_cnn(image), image.x_test, image.y_test, clip=(0, 1),
                                                name="cnn", x_train=image.x_train, y_train=image.y_train),
        "RBF SVC": build_target_from_objects(train_svc(flat), flat.x_test, flat.y_test, clip=(0, 1),
                                             name="svc", x_train=flat.x_train, y_train=flat.y_train),
    }


def guard_sweep(probe: str) -> Callable[[Any, int], list[float]]:
    from guard.probes import RunContext, build_probe

    def sweep(target: Any, seed: int) -> list[float]:
        evidence = build_probe(probe, budgets=BUDGETS).run(target, RunContext(seed=seed))
        return [e.metrics["fidelity"].value for e in evidence]

    return sweep


def art_sweep(attack_name: str, recipe: str) -> Callable[[Any, int], list[float]]:
    """ART's attack on the CNN directly: its selection, its victim wrapper, a fresh DigitsCNN."""
    from art.attacks.extraction import CopycatCNN, KnockoffNets
    from art.estimators.classification import PyTorchClassifier

    from guard.attacks.extraction.probes import MIN_STEPS
    from guard.attacks.extraction.queries import epochs_for
    from guard.demo import DigitsCNN

    def sweep(target: Any, seed: int) -> list[float]:
        victim = PyTorchClassifier(target.model.torch_module(), torch.nn.CrossEntropyLoss(), (1, 8, 8), 10,
                                   clip_values=(0.0, 1.0))
        reference = target.model.predict(target.x_eval)
        out = []
        for budget in BUDGETS:
            batch, epochs = (64, epochs_for(budget, 30, 64, MIN_STEPS)) if recipe == "guard" else (1, 10)
            np.random.seed(seed)
            torch.manual_seed(seed)
            thief_net = DigitsCNN()
            thief = PyTorchClassifier(thief_net, torch.nn.CrossEntropyLoss(), (1, 8, 8), 10,
                                      clip_values=(0.0, 1.0),
                                      optimizer=torch.optim.Adam(thief_net.parameters(), lr=2e-3))
            common = {"batch_size_fit": batch, "batch_size_query": 256, "nb_epochs": epochs,
                      "nb_stolen": budget}
            attack = (CopycatCNN(victim, **common) if attack_name == "copycat" else
                      KnockoffNets(victim, sampling_strategy="random", use_probability=True, verbose=False,
                                   **common))
            stolen = attack.extract(target.x_train, thieved_classifier=thief)
            out.append(float(np.mean(stolen.predict(target.x_eval).argmax(axis=1) == reference)))
        return out

    return sweep


def _cell(values: list[float]) -> str:
    return f"{min(values):.2f}-{max(values):.2f} ({np.mean(values):.3f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=5, help="seeds 0..N-1 (default 5)")
    parser.add_argument("--art-default-seeds", type=int, default=3,
                        help="seeds for ART's default recipe, batch 1 (slow; default 3)")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads (default 2)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    targets = _targets()
    rows: list[tuple[str, str, str, Callable[[Any, int], list[float]], int]] = [
        ("digits CNN", "Guard extraction.copycat", "labels", guard_sweep("copycat"), args.seeds),
        ("digits CNN", "ART CopycatCNN direct, Guard's recipe", "labels", art_sweep("copycat", "guard"),
         args.seeds),
        ("digits CNN", "ART CopycatCNN direct, ART's defaults (batch 1, 10 epochs)", "labels",
         art_sweep("copycat", "art"), args.art_default_seeds),
        ("digits CNN", "Guard extraction.knockoff", "probabilities (softmax)", guard_sweep("knockoff"),
         args.seeds),
        ("digits CNN", "ART KnockoffNets direct on PyTorchClassifier", "logits taken for probabilities",
         art_sweep("knockoff", "guard"), args.seeds),
        ("RBF SVC", "Guard extraction.copycat", "labels", guard_sweep("copycat"), args.seeds),
        ("RBF SVC", "Guard extraction.knockoff", "probabilities", guard_sweep("knockoff"), args.seeds),
    ]
    print(f"# {platform.processor() or platform.machine()}, torch {torch.__version__}, "  # noqa: T201
          f"{args.threads} threads, seeds 0-{args.seeds - 1}")
    header = " | ".join(str(b) for b in BUDGETS)
    print(f"| target | attack | answers | {header} | seconds per sweep |")  # noqa: T201
    print("|---|---|---|" + "---|" * len(BUDGETS) + "---|")  # noqa: T201
    for name, attack, answers, sweep, seeds in rows:
        results, seconds = [], []
        for seed in range(seeds):
            start = time.perf_counter()
            results.append(sweep(targets[name], seed))
            seconds.append(time.perf_counter() - start)
        cells = " | ".join(_cell([r[i] for r in results]) for i in range(len(BUDGETS)))
        print(f"| {name} | {attack} | {answers} | {cells} | {np.mean(seconds):.1f} |", flush=True)  # noqa: T201


if __name__ == "__main__":
    main()
