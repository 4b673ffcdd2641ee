import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import train  # noqa: E402


@pytest.fixture(scope="session")
def model():
    return train.train()


@pytest.fixture(scope="session")
def eval_data():
    _, _, x_test, y_test = train.split()
    return x_test, y_test


@pytest.fixture(scope="session")
def train_data():
    x_train, y_train, _, _ = train.split()
    return x_train, y_train
