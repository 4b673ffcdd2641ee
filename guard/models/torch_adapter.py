"""Adapter for a PyTorch ``nn.Module`` whose forward returns class logits."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

PREDICT_BATCH = 1024


class TorchModel:
    """A torch classifier in eval mode on the CPU; ``predict_proba`` is softmax of the logits."""

    framework = "torch"

    def __init__(self, module: torch.nn.Module, n_classes: int, source: str = "") -> None:
        self._module = module.eval().float()
        for p in self._module.parameters():
            p.requires_grad_(False)
        self.n_classes = n_classes
        self._source = source

    def logits(self, x: np.ndarray) -> np.ndarray:
        outs = []
        with torch.inference_mode():
            for start in range(0, len(x), PREDICT_BATCH):
                batch = torch.as_tensor(x[start : start + PREDICT_BATCH], dtype=torch.float32)
                outs.append(self._module(batch).float().numpy())
        if not outs:
            return np.zeros((0, self.n_classes), dtype=np.float32)
        return np.concatenate(outs)

    def predict(self, x: np.ndarray) -> np.ndarray:
        labels: np.ndarray = self.logits(x).argmax(axis=1)
        return labels

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        z = self.logits(x).astype(np.float64)
        z -= z.max(axis=1, keepdims=True)
        e = np.exp(z)
        proba: np.ndarray = e / e.sum(axis=1, keepdims=True)
        return proba

    def torch_module(self) -> torch.nn.Module:
        return self._module

    def describe(self) -> dict[str, Any]:
        return {
            "class": type(self._module).__name__,
            "parameters": int(sum(p.numel() for p in self._module.parameters())),
            "format": self._source,
        }
