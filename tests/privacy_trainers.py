"""Training recipes for the membership-inference tests, named as ``--trainer
privacy_trainers:NAME`` (the tests folder is on ``sys.path`` under pytest)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


class Net(nn.Sequential):
    """A small MLP on 1x8x8 digits: the architecture of the tests' PyTorch targets."""

    def __init__(self) -> None:
        super().__init__(nn.Flatten(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))


def fast(x: np.ndarray, y: np.ndarray, seed: int) -> nn.Module:
    """Full-batch Adam for 150 steps: fits a few hundred digits completely (overfits)."""
    torch.manual_seed(seed)
    model = Net()
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    xt, yt = torch.as_tensor(x), torch.as_tensor(y)
    for _ in range(150):
        opt.zero_grad()
        nn.functional.cross_entropy(model(xt), yt).backward()  # type: ignore[no-untyped-call]
        opt.step()
    return model.eval()


def raises(x: np.ndarray, y: np.ndarray, seed: int) -> nn.Module:
    raise RuntimeError("the recipe is broken")
