"""Shared setup: digits + BadNets poisoning + Guard's DigitsCNN recipe, cached to disk.

Every script sets OMP_NUM_THREADS=1 / torch.set_num_threads(1) (2 shared cores).
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

torch.set_num_threads(1)

from guard.demo import DigitsCNN, DigitsSplit, digits_split, train_cnn  # noqa: E402

LAB = Path("/tmp/poison_lab")
CACHE = LAB / "cache"
CACHE.mkdir(exist_ok=True)
TARGET = 0


def add_trigger(x: np.ndarray, trigger: str = "br") -> np.ndarray:
    """BadNets trigger, x is (n,1,8,8). "br": bottom-right 2x2 pixels set to 1 (the brief's);
    "tl": top-left 2x2; "pat": 4 scattered pixels (a stress variant)."""
    x = x.copy()
    if trigger == "br":
        x[:, 0, 6:8, 6:8] = 1.0
    elif trigger == "tl":
        x[:, 0, 0:2, 0:2] = 1.0
    elif trigger == "pat":
        for r, c in ((0, 7), (2, 0), (5, 7), (7, 3)):
            x[:, 0, r, c] = 1.0
    else:
        raise ValueError(trigger)
    return x


def poisoned_split(seed: int, rate: float, target: int = TARGET, trigger: str = "br") -> tuple[DigitsSplit, np.ndarray]:
    """Guard's digits split (seed), with round(rate*n) non-target training samples
    triggered and relabelled to TARGET (replacement: the training set size stays 1197)."""
    split = digits_split(seed=seed, image=True)
    n = len(split.y_train)
    mask = np.zeros(n, bool)
    n_p = int(round(rate * n))
    if n_p:
        rng = np.random.default_rng(10_000 + seed)
        cand = np.flatnonzero(split.y_train != target)
        idx = rng.choice(cand, n_p, replace=False)
        mask[idx] = True
    x = split.x_train.copy()
    y = split.y_train.copy()
    x[mask] = add_trigger(x[mask], trigger)
    y[mask] = target
    return DigitsSplit(x, y, split.x_test, split.y_test), mask


def train_with_trace(split: DigitsSplit, seed: int, epochs: int = 15):
    """Exactly guard.demo.train_cnn's loop (same RNG use, so identical weights), plus the
    per-sample training loss after every epoch (eval mode, no RNG use)."""
    torch.manual_seed(seed)
    model = DigitsCNN()
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    x = torch.as_tensor(split.x_train)
    y = torch.as_tensor(split.y_train)
    gen = torch.Generator().manual_seed(seed)
    losses = []
    for _ in range(epochs):
        model.train()
        for batch in torch.split(torch.randperm(len(y), generator=gen), 64):
            opt.zero_grad()
            loss = nn.functional.cross_entropy(model(x[batch]), y[batch])
            loss.backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            losses.append(nn.functional.cross_entropy(model(x), y, reduction="none").numpy())
    return model.eval(), np.stack(losses)  # (epochs, n)


@torch.no_grad()
def representations(model: DigitsCNN, x: np.ndarray) -> dict[str, np.ndarray]:
    xt = torch.as_tensor(x)
    f = model.features(xt)                       # (n,32,4,4) after conv-relu-conv-relu-pool
    flat = torch.flatten(f, 1)                   # 512
    h = model.head[2](model.head[1](flat))       # penultimate: Linear(512,64)+ReLU -> 64
    logits = model.head[3](h)
    return {"conv": flat.numpy(), "penult": h.numpy(), "logits": logits.numpy()}


def _tag(seed, rate, target, trigger):
    extra = "" if (target, trigger) == (TARGET, "br") else f"_t{target}{trigger}"
    return f"s{seed}_r{rate:.2f}{extra}"


def get_run(seed: int, rate: float, target: int = TARGET, trigger: str = "br") -> dict:
    """Train (or load from cache) one model; returns arrays + metadata."""
    tag = _tag(seed, rate, target, trigger)
    path = CACHE / f"run_{tag}.npz"
    if path.exists():
        d = dict(np.load(path))
        return d
    split, mask = poisoned_split(seed, rate, target, trigger)
    t0 = time.perf_counter()
    model, losses = train_with_trace(split, seed)
    t_train = time.perf_counter() - t0
    reps = representations(model, split.x_train)
    with torch.no_grad():
        xt = torch.as_tensor(split.x_test)
        acc = float((model(xt).argmax(1).numpy() == split.y_test).mean())
        nt = split.y_test != target
        asr = float((model(torch.as_tensor(add_trigger(split.x_test[nt], trigger))).argmax(1).numpy() == target).mean())
    torch.save(model.state_dict(), CACHE / f"model_{tag}.pt")
    d = dict(x=split.x_train, y=split.y_train, y_orig=digits_split(seed=seed).y_train, mask=mask,
             losses=losses, acc=acc, asr=asr, t_train=t_train, **reps)
    np.savez(path, **d)
    return d


def load_model(seed: int, rate: float, target: int = TARGET, trigger: str = "br") -> DigitsCNN:
    get_run(seed, rate, target, trigger)
    m = DigitsCNN()
    m.load_state_dict(torch.load(CACHE / f"model_{_tag(seed, rate, target, trigger)}.pt"))
    return m.eval()


def prf(flags: np.ndarray, mask: np.ndarray) -> tuple[float, float]:
    tp = int((flags & mask).sum())
    p = tp / max(int(flags.sum()), 1)
    r = tp / max(int(mask.sum()), 1)
    return p, r
