"""The bundled demo: two small digit classifiers trained offline in seconds, then cached.

scikit-learn ships the 8x8 digits data set, so the demo needs no download: a small CNN
(torch) and an RBF support-vector machine (scikit-learn) are trained with a fixed seed,
saved in safe formats (a state dict in safetensors, a skops file) in the user's cache
folder, and loaded back through the same safe loaders a user's model goes through.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from guard.config import AuditOptions

DEMO_SEED = 0
DIGITS_CLIP = (0.0, 1.0)


class DigitsCNN(nn.Module):
    """A two-convolution network for 1x8x8 digits with inputs in [0, 1]."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(16, 32, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(32 * 4 * 4, 64), nn.ReLU(), nn.Linear(64, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.head(self.features(x))
        return out


@dataclass(frozen=True, slots=True)
class DigitsSplit:
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def digits_split(seed: int = DEMO_SEED, image: bool = True) -> DigitsSplit:
    """scikit-learn's digits scaled to [0, 1]: 1,197 train and 600 test samples."""
    from sklearn.datasets import load_digits

    data = load_digits()
    x = (data.data / 16.0).astype(np.float32)
    if image:
        x = x.reshape(-1, 1, 8, 8)
    y = data.target.astype(np.int64)
    order = np.random.default_rng(seed).permutation(len(y))
    train, test = order[:-600], order[-600:]
    return DigitsSplit(x[train], y[train], x[test], y[test])


def train_cnn(split: DigitsSplit, seed: int = DEMO_SEED, epochs: int = 15) -> DigitsCNN:
    """Adam, batch 64: about 98% test accuracy in a few seconds on 2 cores."""
    return train_digits(split.x_train, split.y_train, seed, epochs=epochs)


def train_digits(x: np.ndarray, y: np.ndarray, seed: int, epochs: int = 15) -> DigitsCNN:
    """The demo CNN's training recipe as a ``--trainer``: ``guard.demo:train_digits`` is
    called as ``train(x, y, seed) -> nn.Module`` by the poisoning probes."""
    torch.manual_seed(seed)
    model = DigitsCNN()
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    xt = torch.as_tensor(np.asarray(x, dtype=np.float32))
    yt = torch.as_tensor(np.asarray(y, dtype=np.int64))
    gen = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(epochs):
        for batch in torch.split(torch.randperm(len(yt), generator=gen), 64):
            opt.zero_grad()
            loss = nn.functional.cross_entropy(model(xt[batch]), yt[batch])
            loss.backward()  # type: ignore[no-untyped-call]
            opt.step()
    return model.eval()


DEMO_TRAINER = "guard.demo:train_digits"
"""The ``--trainer`` of the demo CNN (``guard audit --demo --attack backdoor`` uses it)."""


def train_svc(split: DigitsSplit) -> object:
    """An RBF SVC on flattened digits (deterministic: libsvm without probability)."""
    from sklearn.svm import SVC

    svc = SVC(kernel="rbf", C=10.0, gamma="scale")
    svc.fit(split.x_train.reshape(len(split.x_train), -1), split.y_train)
    return svc


def demo_paths(cache: Path) -> dict[str, Path]:
    return {
        "cnn": cache / "digits-cnn.safetensors",
        "svc": cache / "digits-svc.skops",
        "data_image": cache / "digits-test-image.npz",
        "data_flat": cache / "digits-test-flat.npz",
    }


def cache_dir() -> Path:
    """GUARD_CACHE_DIR, else the user's cache folder (e.g. ~/.cache/guard-ml/demo-v1)."""
    import os

    import platformdirs

    root = os.environ.get("GUARD_CACHE_DIR") or platformdirs.user_cache_dir("guard-ml")
    return Path(root) / "demo-v1"


def _npz_bytes(**arrays: np.ndarray) -> bytes:
    import io

    buf = io.BytesIO()
    np.savez(buf, **arrays)  # type: ignore[arg-type]
    return buf.getvalue()


def ensure_demo_files(cache: Path | None = None) -> dict[str, Path]:
    """Train and save the demo models and data unless the cache already holds them."""
    import skops.io
    from safetensors.torch import save

    from guard.fsio import atomic_write_bytes

    paths = demo_paths(cache or cache_dir())
    if all(p.is_file() for p in paths.values()):
        return paths
    image = digits_split(image=True)
    flat = digits_split(image=False)
    cnn = train_cnn(image)
    state = {k: v.contiguous() for k, v in cnn.state_dict().items()}
    atomic_write_bytes(paths["cnn"], save(state))
    atomic_write_bytes(paths["svc"], skops.io.dumps(train_svc(flat)))
    atomic_write_bytes(paths["data_image"], _npz_bytes(
        x=image.x_test, y=image.y_test, x_train=image.x_train, y_train=image.y_train))
    atomic_write_bytes(paths["data_flat"], _npz_bytes(
        x=flat.x_test, y=flat.y_test, x_train=flat.x_train, y_train=flat.y_train))
    return paths


DEMO_PII_TABLE = "people-synthetic.csv"


def demo_pii_table(cache: Path | None = None) -> Path:
    """A small table of fictional people (generated with a fixed seed, never real data) for
    the demo's personal-data scan; written once to the cache."""
    from guard.defenses.pii.synthetic import write_demo_table

    path = (cache or cache_dir()) / DEMO_PII_TABLE
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        write_demo_table(path, rows=200, seed=DEMO_SEED)
    return path


DEMO_ACCESS_POLICY = "access-demo.toml"
DEMO_ACCESS_TOML = """\
# The demo's access policy: guard audit --demo attacks its models behind it, in process.
[roles.analyst]
permissions = ["predict"]                      # labels only
[roles.scientist]
permissions = ["predict", "predict_proba"]
output = { round = 2 }
[principals.alice]
roles = ["analyst"]
budget = { per_minute = 600, total = 1000 }
[principals.carol]
roles = ["scientist"]
budget = { per_minute = 600, total = 200 }
[monitor]
action = "block"
"""
DEMO_EXTRACTION_BUDGET = 500
"""The query budget the demo's extraction-resistance probe attacks with (above carol's 200)."""


def demo_access_policy(cache: Path | None = None) -> Path:
    """The demo's access policy file (rewritten when it differs, so a stale copy never
    stays); its ledger and tokens are never touched: the probes use a temporary copy."""
    from guard.fsio import atomic_write_bytes

    path = (cache or cache_dir()) / DEMO_ACCESS_POLICY
    body = DEMO_ACCESS_TOML.encode()
    if not path.is_file() or path.read_bytes() != body:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, body)
    return path


def demo_options(cache: Path | None = None) -> list[AuditOptions]:
    """The two demo targets as ``guard audit`` options: they go through exactly the checks
    and safe loaders a user's files go through."""
    paths = ensure_demo_files(cache)
    clip = f"{DIGITS_CLIP[0]},{DIGITS_CLIP[1]}"
    return [
        AuditOptions(model=str(paths["cnn"]), data=str(paths["data_image"]),
                     arch="guard.demo:DigitsCNN", clip=clip, name="digits-cnn"),
        AuditOptions(model=str(paths["svc"]), data=str(paths["data_flat"]), clip=clip, name="digits-svc"),
    ]
