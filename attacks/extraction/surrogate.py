"""The copy: a fresh network trained on the answers by ART's extraction attacks.

CopycatCNN (Correia-Silva et al. 2018, https://arxiv.org/abs/1806.05476) trains the copy on
the target's predicted labels; Knockoff Nets (Orekondy et al. 2019,
https://arxiv.org/abs/1812.02766), with random sampling, on its probabilities (soft
cross-entropy). Both run as ART implements them, against a victim that replays the answers
Guard collected (:class:`Replay`): the query budget, the query order and refused queries are
Guard's to count, and ART sees exactly the answered inputs.

The copy's architecture: for a PyTorch target, its own architecture re-initialised (the
attacker who knows the architecture, the strongest case); otherwise, or when asked
(``architecture = "mlp"``), or when the module cannot be re-initialised, a one-hidden-layer
perceptron on inputs standardised with the queried inputs' statistics.

ART draws from NumPy's and torch's global generators (its query selection, the weight
initialisation, the training shuffle): :func:`global_seed` seeds them for one copy and gives
the caller back exactly the state it had, so each copy is reproducible and nothing leaks.
"""

from __future__ import annotations

import copy
import random
from collections import defaultdict, deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from guard.attacks.extraction.queries import Answers, Output
from guard.target import Target

Architecture = Literal["auto", "mlp"]
MLP_HIDDEN = 256
QUERY_BATCH = 512
"""How ART batches its (replayed) queries and the copy's predictions."""


def copy_seed(seed: int, budget: int) -> int:
    """The seed of the copy trained at ``budget``: derived from the audit's seed, the same for
    the label and the probability attack (same queries, same initial weights: the two differ
    only in what the target answered)."""
    return int(np.random.SeedSequence([seed, budget]).generate_state(1, dtype=np.uint32)[0])


@contextmanager
def global_seed(seed: int) -> Iterator[None]:
    """Python's, NumPy's and torch's global generators seeded for what runs inside, and given
    back exactly as they were."""
    saved = random.getstate(), np.random.get_state(), torch.random.get_rng_state()
    try:
        random.seed(seed)
        np.random.seed(seed)
        torch.manual_seed(seed)
        yield
    finally:
        random.setstate(saved[0])
        np.random.set_state(saved[1])
        torch.random.set_rng_state(saved[2])


class Standardise(nn.Module):
    """``(x - mean) / std`` per feature, on flattened inputs (constant features left at 0)."""

    def __init__(self, x: np.ndarray) -> None:
        super().__init__()
        flat = x.reshape(len(x), -1).astype(np.float64)
        std = flat.std(axis=0)
        std[std < 1e-8] = 1.0
        self.mean: torch.Tensor
        self.std: torch.Tensor
        self.register_buffer("mean", torch.as_tensor(flat.mean(axis=0), dtype=torch.float32))
        self.register_buffer("std", torch.as_tensor(std, dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = (x.flatten(1) - self.mean) / self.std
        return out


def mlp(x: np.ndarray, n_classes: int) -> nn.Module:
    """The generic copy: standardise, one hidden ReLU layer, class scores."""
    features = int(np.prod(x.shape[1:]))
    return nn.Sequential(Standardise(x), nn.Linear(features, MLP_HIDDEN), nn.ReLU(),
                         nn.Linear(MLP_HIDDEN, n_classes))


def resettable(module: nn.Module) -> list[nn.Module] | None:
    """The layers whose ``reset_parameters`` re-draw every parameter of ``module``, or None
    when some parameter belongs to no such layer (or there are none)."""
    layers: list[nn.Module] = [m for m in module.modules() if callable(getattr(m, "reset_parameters", None))]
    covered = {id(p) for m in layers for p in m.parameters(recurse=False)}
    params = list(module.parameters())
    if not params or any(id(p) not in covered for p in params):
        return None
    return layers


def reinitialised(module: nn.Module) -> nn.Module | None:
    """A copy of ``module``'s architecture with fresh weights (each layer's own
    ``reset_parameters``, in registration order: the draws of building the class anew), or
    None when it cannot be (:func:`resettable`, or the module does not copy)."""
    if resettable(module) is None:
        return None
    try:
        fresh = copy.deepcopy(module)
    except (TypeError, RuntimeError, copy.Error):
        return None
    layers = resettable(fresh) or []
    with torch.no_grad():
        for m in layers:
            getattr(m, "reset_parameters")()  # noqa: B009  (checked callable in resettable)
    for p in fresh.parameters():
        p.requires_grad_(True)
    return fresh.float().train()


MLP_NAME = f"mlp({MLP_HIDDEN}) on standardised inputs"


def describe_architecture(target: Target, architecture: Architecture) -> str:
    """The name :func:`copy_architecture` gives the copy (without building it)."""
    module = target.model.torch_module() if target.model.framework == "torch" else None
    if architecture == "mlp" or module is None:
        return MLP_NAME
    if resettable(module) is None:
        return f"{MLP_NAME} ({type(module).__name__} cannot be re-initialised)"
    return f"{type(module).__name__} (the target's architecture, re-initialised)"


def copy_architecture(target: Target, x: np.ndarray, architecture: Architecture) -> tuple[nn.Module, str]:
    """The untrained copy and its name for the evidence (draws from torch's global generator)."""
    module = target.model.torch_module() if target.model.framework == "torch" else None
    if architecture == "auto" and module is not None:
        fresh = reinitialised(module)
        if fresh is not None:
            return fresh, describe_architecture(target, architecture)
        name = f"{MLP_NAME} ({type(module).__name__} cannot be re-initialised)"
        return mlp(x, target.model.n_classes), name
    return mlp(x, target.model.n_classes), MLP_NAME


class Replay:
    """ART's victim: answers each input with the answer the target gave it (ART shuffles the
    inputs before asking, so answers are found by the input's bytes)."""

    def __init__(self, x: np.ndarray, targets: np.ndarray) -> None:
        self._targets = targets
        self._index: dict[bytes, deque[int]] = defaultdict(deque)
        for i, row in enumerate(np.ascontiguousarray(x, dtype=np.float32)):
            self._index[row.tobytes()].append(i)
        self.asked = 0

    def __call__(self, x: np.ndarray) -> np.ndarray:
        rows = np.ascontiguousarray(x, dtype=np.float32)
        self.asked += len(rows)
        picked = []
        for row in rows:
            found = self._index.get(row.tobytes())
            if not found:
                raise RuntimeError("ART asked for an input that was never queried")
            i = found.popleft()
            found.append(i)  # a duplicate input asked again gets its answers in turn
            picked.append(i)
        out: np.ndarray = self._targets[np.asarray(picked, dtype=np.int64)]
        return out


@dataclass(frozen=True, slots=True, kw_only=True)
class Recipe:
    """How the copy is trained: epochs (already raised for small budgets), batch, Adam's rate."""

    epochs: int
    batch_size: int
    learning_rate: float
    architecture: Architecture


@dataclass(frozen=True, slots=True)
class StolenCopy:
    classifier: Any
    """ART's PyTorchClassifier around the trained copy."""
    surrogate: str

    def predict(self, x: np.ndarray) -> np.ndarray:
        """The copy's labels, from its network directly (ART's predict would start a torch
        DataLoader, which draws from torch's global generator)."""
        module: nn.Module = self.classifier.model
        module.eval()
        out = []
        with torch.inference_mode():
            for start in range(0, len(x), QUERY_BATCH):
                batch = torch.as_tensor(np.ascontiguousarray(x[start:start + QUERY_BATCH], dtype=np.float32))
                out.append(module(batch).argmax(dim=1).numpy())
        labels: np.ndarray = np.concatenate(out) if out else np.zeros(0, dtype=np.int64)
        return labels


def steal(target: Target, answers: Answers, output: Output, recipe: Recipe, seed: int) -> StolenCopy:
    """Train a copy from scratch on ``answers`` with ART's CopycatCNN (labels) or KnockoffNets
    (probabilities, random sampling), every random draw from ``seed``."""
    from art.attacks.extraction import CopycatCNN, KnockoffNets
    from art.estimators.classification import BlackBoxClassifier, PyTorchClassifier

    shape = tuple(answers.x.shape[1:])
    k = target.model.n_classes
    with global_seed(seed):
        module, name = copy_architecture(target, answers.x, recipe.architecture)
        thief = PyTorchClassifier(
            model=module, loss=nn.CrossEntropyLoss(), input_shape=shape, nb_classes=k,
            optimizer=torch.optim.Adam(module.parameters(), lr=recipe.learning_rate),
            clip_values=target.input_spec.clip, device_type="cpu",
        )
        victim = BlackBoxClassifier(Replay(answers.x, answers.targets), input_shape=shape, nb_classes=k)
        common = {"batch_size_fit": recipe.batch_size, "batch_size_query": QUERY_BATCH,
                  "nb_epochs": recipe.epochs, "nb_stolen": answers.count}
        attack: Any
        if output == "labels":
            attack = CopycatCNN(victim, **common)
        else:
            attack = KnockoffNets(victim, sampling_strategy="random", use_probability=True, verbose=False,
                                  **common)
        stolen = attack.extract(answers.x, thieved_classifier=thief)
    return StolenCopy(stolen, name)
