"""Train the digits classifier this repository ships (scikit-learn's bundled digits).

`python train.py --out models/digits.skops` saves it with skops (no pickle). The
MODEL_VARIANT=weak environment variable trains the weaker model used to show a failing CI.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.svm import SVC


def split() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Pixels scaled to [0, 1]; a fixed shuffled split: 1,497 train, 300 evaluation."""
    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype(np.float32)
    order = np.random.default_rng(0).permutation(len(y))
    train, test = order[:-300], order[-300:]
    return x[train], y[train], x[test], y[test]


def train(variant: str | None = None) -> object:
    variant = variant or os.environ.get("MODEL_VARIANT", "release")
    x_train, y_train, _, _ = split()
    if variant == "weak":
        # almost unregularised linear model: as accurate, far less robust
        return LogisticRegression(C=100.0, max_iter=5000).fit(x_train, y_train)
    return SVC(kernel="rbf", C=10.0).fit(x_train, y_train)


def main() -> None:
    import skops.io

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("models/digits.skops"))
    args = parser.parse_args()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    skops.io.dump(train(), args.out)
    _, _, x_test, y_test = split()
    np.savez(args.out.with_name("eval.npz"), x=x_test, y=y_test)


if __name__ == "__main__":
    main()
