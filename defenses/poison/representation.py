"""The representation a poisoned-sample detector reads from a PyTorch model.

A backdoored network maps "trigger" to the target class somewhere between its input and its
output. The research behind Guard's detector (``benchmarks/poisoning_research/RESULTS.md``)
found that the layers *after* the first fully connected layer already carry the backdoor: a
linear probe fitted on clean samples of the penultimate layer still sends triggered inputs to
the target (AUROC 0.5), while on the input of the first ``nn.Linear`` (the flattened
convolutional features) triggered samples still look like their source class. So by default
the representation is the input of the first ``nn.Linear`` module the forward pass calls,
captured with a forward pre-hook (the rest of the forward pass is skipped). ``layer`` names
another module (a dotted name from ``named_modules()``) whose input is used instead. Where no
``nn.Linear`` is seen (an MLP's first layer takes the input itself; a TorchScript or exported
module runs its layers without Python hooks) the representation is the raw input, and says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from guard.errors import ConfigError

if TYPE_CHECKING:
    import torch
    from torch import nn

BATCH = 1024


@dataclass(frozen=True, slots=True)
class Representation:
    """Per-sample features and a sentence saying where they were taken."""

    features: np.ndarray  # (n, d) float64
    description: str
    raw: bool = False  # the model's own input, flattened


class _Captured(Exception):  # noqa: N818  (control flow, not an error: the forward pass stops)
    """Raised by the hook once the input it waits for has been seen."""

    def __init__(self, name: str, value: torch.Tensor) -> None:
        super().__init__(name)
        self.name = name
        self.value = value


def representation(module: nn.Module, x: np.ndarray, layer: str | None = None) -> Representation:
    """The flattened input of ``layer`` (default: the first ``nn.Linear`` called) for every
    sample of ``x``. A model whose first ``nn.Linear`` takes the raw input (an MLP) is read
    on the raw input, and a model without any ``nn.Linear`` (and no ``layer``) too; the
    description says which."""
    import torch
    from torch import nn

    flat = np.asarray(x, dtype=np.float32).reshape(len(x), -1)
    if isinstance(module, torch.jit.ScriptModule):
        if layer is not None:
            raise ConfigError("a TorchScript model cannot be read at a layer (it runs without "
                              "Python hooks); leave layer unset to read its raw input")
        return Representation(flat.astype(np.float64), "the raw input (a TorchScript model runs "
                              "its layers without Python hooks)", raw=True)
    named = dict(module.named_modules())
    if layer is not None:
        if layer not in named or not layer:
            known = ", ".join(n for n in list(named)[1:13] if n)
            raise ConfigError(f"layer {layer!r} is not a module of {type(module).__name__} "
                              f"(its modules include: {known})")
        watched = {layer: named[layer]}
    else:
        watched = {name: m for name, m in named.items() if isinstance(m, nn.Linear)}
    if not watched:
        return Representation(flat.astype(np.float64), f"the raw input ({type(module).__name__} "
                              "has no nn.Linear layer; name one with layer=...)", raw=True)
    chunks, seen = [], None
    for start in range(0, len(x), BATCH):
        got = _first_input(module, x[start:start + BATCH], watched)
        if got is None:
            if layer is not None:
                raise ConfigError(f"the forward pass never called layer {layer!r}; name a layer it calls")
            return Representation(flat.astype(np.float64), "the raw input (the forward pass calls "
                                  "none of its nn.Linear layers through Python; name one with layer=...)",
                                  raw=True)
        name, value = got
        if seen is not None and name != seen:
            raise ConfigError(f"the model calls a different first layer on different batches "
                              f"({seen!r}, then {name!r}); name one with layer=...")
        seen = name
        chunks.append(value)
    if seen is None:
        return Representation(flat.astype(np.float64), "the raw input (no samples)", raw=True)
    feats = np.concatenate(chunks).astype(np.float64)
    if feats.shape == flat.shape and np.array_equal(feats, flat.astype(np.float64)):
        return Representation(feats, f"the raw input (the first linear layer {seen!r} takes it)", raw=True)
    kind = f"the input of layer {seen!r}" if layer is not None else \
        f"the input of the first linear layer {seen!r}"
    return Representation(feats, f"{kind}, {feats.shape[1]} features")


def _first_input(module: nn.Module, x: np.ndarray, watched: dict[str, nn.Module]
                 ) -> tuple[str, np.ndarray] | None:
    """Run the forward pass until a watched module is called: its name and flattened input;
    None when none is (a TorchScript module runs its submodules without Python hooks)."""
    import torch

    def hook_for(name: str) -> Any:
        def hook(_mod: nn.Module, args: tuple[Any, ...]) -> None:
            if args and isinstance(args[0], torch.Tensor):
                raise _Captured(name, args[0].detach())
        return hook

    handles = [m.register_forward_pre_hook(hook_for(n)) for n, m in watched.items()]
    try:
        with torch.inference_mode():
            module(torch.as_tensor(np.ascontiguousarray(x), dtype=torch.float32))
    except _Captured as got:
        return got.name, got.value.reshape(len(x), -1).float().numpy()
    finally:
        for h in handles:
            h.remove()
    return None
