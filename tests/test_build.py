"""Building targets: model and data must fit each other, and the input range is declared."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import skops.io
import torch
from fixtures_models import TinyDigitsCNN
from sklearn.linear_model import LogisticRegression
from torch import nn

from guard.build import build_target, build_target_from_objects, parse_clip
from guard.errors import ConfigError, DataError, TargetMismatchError
from guard.target import Capability


@pytest.mark.parametrize(
    ("text", "expected"),
    [("0,1", (0.0, 1.0)), (" -1.5 , 2 ", (-1.5, 2.0)), ("none", None), ("None", None)],
)
def test_parse_clip(text: str, expected: tuple[float, float] | None) -> None:
    assert parse_clip(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("0", "expected 'lo,hi'"),
        ("0,1,2", "expected 'lo,hi'"),
        ("a,b", "expected 'lo,hi'"),
        ("", "expected 'lo,hi'"),
        ("1,0", "lower bound must be below upper bound"),
        ("1,1", "lower bound must be below upper bound"),
        ("0,inf", "bounds must be finite"),
    ],
)
def test_parse_clip_refuses_garbage(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_clip(text)


@pytest.fixture
def image_data(tmp_path: Path, digits: dict[str, np.ndarray]) -> Path:
    path = tmp_path / "digits.npz"
    np.savez(
        path,
        x=digits["x_test"],
        y=digits["y_test"],
        x_train=digits["x_train"],
        y_train=digits["y_train"],
    )
    return path


@pytest.fixture
def flat_data(tmp_path: Path, digits: dict[str, np.ndarray]) -> Path:
    path = tmp_path / "flat.npz"
    np.savez(path, x=digits["flat_test"], y=digits["y_test"])
    return path


def test_build_torch_target_from_files(
    tmp_path: Path, cnn: TinyDigitsCNN, image_data: Path, user_arch: str, digits: dict
) -> None:
    model_path = tmp_path / "digits-cnn.pt"
    torch.save(cnn.state_dict(), model_path)
    target = build_target(model_path, image_data, arch=user_arch, clip=(0.0, 1.0))
    assert target.name == "digits-cnn" and target.artifact == model_path
    assert target.model.framework == "torch" and target.model.n_classes == 10
    assert target.input_spec.shape == (1, 8, 8) and target.input_spec.clip == (0.0, 1.0)
    assert target.x_train is not None and target.x_eval.dtype == np.float32
    assert target.capabilities == frozenset(Capability)
    with torch.inference_mode():
        expected = cnn(torch.from_numpy(digits["x_test"])).argmax(1).numpy()
    assert (target.model.predict(target.x_eval) == expected).all()
    assert target.model.describe()["format"] == "state_dict"


def test_build_sklearn_target_from_files(
    tmp_path: Path, svc_pipeline: object, flat_data: Path, digits: dict
) -> None:
    model_path = tmp_path / "svc.skops"
    skops.io.dump(svc_pipeline, model_path)
    target = build_target(model_path, flat_data, clip="0,1", name="svc")
    assert target.name == "svc" and target.model.framework == "sklearn"
    assert target.input_spec.shape == (64,) and target.x_train is None
    expected = svc_pipeline.predict(digits["flat_test"])  # type: ignore[attr-defined]
    assert (target.model.predict(target.x_eval) == expected).all()


def test_csv_feature_names_reach_the_input_spec(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 2))
    y = (x[:, 0] > 0).astype(int)
    model_path = tmp_path / "lr.skops"
    skops.io.dump(LogisticRegression().fit(x, y), model_path)
    rows = "\n".join(f"{a},{b},{c}" for (a, b), c in zip(x, y, strict=True))
    data_path = tmp_path / "d.csv"
    data_path.write_text(f"height,weight,sick\n{rows}\n")
    target = build_target(model_path, data_path, clip=None, label_column="sick")
    assert target.input_spec.feature_names == ("height", "weight")
    assert target.input_spec.clip is None


@pytest.mark.parametrize(("which", "message"), [("x", "x has"), ("x_train", "x_train has")])
def test_data_outside_declared_clip(cnn: TinyDigitsCNN, digits: dict, which: str, message: str) -> None:
    x, x_train = digits["x_test"].copy(), digits["x_train"].copy()
    (x if which == "x" else x_train)[0, 0, 0, 0] = 1.5
    with pytest.raises(DataError, match=rf"{message} values in \[0, 1.5\], outside .* \[0, 1\]"):
        build_target_from_objects(
            cnn, x, digits["y_test"], clip=(0, 1), name="t", x_train=x_train, y_train=digits["y_train"]
        )


def test_torch_model_rejecting_the_data_shape(cnn: TinyDigitsCNN, digits: dict) -> None:
    with pytest.raises(TargetMismatchError, match=r"model rejected input of shape \(4, 64\): "):
        build_target_from_objects(cnn, digits["flat_test"], digits["y_test"], clip=(0, 1), name="t")


class ThreeDOutput(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(len(x), 8, 8)


class TupleOutput(nn.Module):
    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return x, x


class OneScore(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1)[:, :1]


@pytest.mark.parametrize(
    ("module", "message"),
    [
        (ThreeDOutput(), r"model output has shape \(4, 8, 8\)"),
        (TupleOutput(), "model returned a tuple"),
        (OneScore(), r"model output has shape \(4, 1\).*n_classes >= 2"),
    ],
)
def test_torch_output_that_is_not_class_scores(
    module: nn.Module, message: str, digits: dict
) -> None:
    with pytest.raises(TargetMismatchError, match=message):
        build_target_from_objects(module, digits["x_test"], digits["y_test"], clip=(0, 1), name="t")


def test_torch_labels_out_of_range(cnn: TinyDigitsCNN, digits: dict) -> None:
    y_train = digits["y_train"].copy()
    y_train[5] = 12
    with pytest.raises(
        TargetMismatchError, match="labels out of range: model has 10 classes, data has label 12"
    ):
        build_target_from_objects(
            cnn,
            digits["x_test"],
            digits["y_test"],
            clip=(0, 1),
            name="t",
            x_train=digits["x_train"],
            y_train=y_train,
        )


def test_sklearn_feature_count_mismatch(logreg: LogisticRegression, digits: dict) -> None:
    with pytest.raises(TargetMismatchError, match="model expects 64 features, data has 32"):
        build_target_from_objects(
            logreg, digits["flat_test"][:, :32], digits["y_test"], clip=None, name="t"
        )


def test_sklearn_unknown_labels(digits: dict) -> None:
    few = LogisticRegression(max_iter=200).fit(
        digits["flat_train"][digits["y_train"] < 3], digits["y_train"][digits["y_train"] < 3]
    )
    with pytest.raises(TargetMismatchError, match="not classes the model knows"):
        build_target_from_objects(few, digits["flat_test"], digits["y_test"], clip=None, name="t")


def test_unfitted_estimator(digits: dict) -> None:
    with pytest.raises(TargetMismatchError, match="not a fitted scikit-learn classifier"):
        build_target_from_objects(
            LogisticRegression(), digits["flat_test"], digits["y_test"], clip=None, name="t"
        )


def test_object_that_is_no_model(digits: dict) -> None:
    with pytest.raises(TargetMismatchError, match="neither a torch module nor"):
        build_target_from_objects("model", digits["flat_test"], digits["y_test"], clip=None, name="t")


def test_in_memory_objects_get_the_same_checks(logreg: LogisticRegression, digits: dict) -> None:
    x = digits["flat_test"].copy()
    x[3, 3] = np.nan
    with pytest.raises(DataError, match="x has 1 NaN values"):
        build_target_from_objects(logreg, x, digits["y_test"], clip=None, name="t")
    with pytest.raises(ConfigError, match="lower bound must be below"):
        build_target_from_objects(logreg, digits["flat_test"], digits["y_test"], clip=(1, 0), name="t")
    with pytest.raises(ConfigError, match="name must not be empty"):
        build_target_from_objects(logreg, digits["flat_test"], digits["y_test"], clip=None, name="")
    target = build_target_from_objects(
        logreg, digits["flat_test"], digits["y_test"], clip="none", name="lr"
    )
    assert target.artifact is None and target.input_spec.clip is None


def test_clip_is_checked_before_loading_anything(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--clip 'zero,one'"):
        build_target(tmp_path / "missing.pt", tmp_path / "missing.npz", clip="zero,one")
