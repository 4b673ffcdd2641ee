"""Small models shared by the tests: importable by name, so pickles and --arch can find them."""

from __future__ import annotations

import torch
from sklearn.linear_model import LogisticRegression
from torch import nn


class TinyDigitsCNN(nn.Module):
    """A one-convolution network for 1x8x8 digits in [0, 1]; trains in a fraction of a second."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 8, 3, padding=1)
        self.head = nn.Linear(8 * 4 * 4, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = torch.max_pool2d(torch.relu(self.conv(x)), 2)
        out: torch.Tensor = self.head(z.flatten(1))
        return out


class HomeMadeClassifier(LogisticRegression):
    """A scikit-learn subclass from outside scikit-learn: skops loading must refuse it."""
