"""Assemble a :class:`~guard.target.Target` from files or in-memory objects, checking fit.

A model and its data that do not fit each other (input shape, number of classes, label
values, declared value range) would make every attack number meaningless, so the mismatch
is found here, once, with a message naming the observed values. The input range ``clip`` is
never guessed: images in [0, 1] and tabular features with no bounds need different attacks,
so the caller must declare it (a ``(lo, hi)`` pair, or None for unbounded).
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from guard.data import Dataset, load_data, load_training_data, make_dataset
from guard.errors import ConfigError, DataError, TargetMismatchError
from guard.models.loading import LoadedModel, load_model
from guard.target import InputSpec, ModelAdapter, Target

if TYPE_CHECKING:
    import torch

Clip = tuple[float, float] | None
_PROBE_SAMPLES = 4


def parse_clip(text: str) -> Clip:
    """Parse ``--clip``: "lo,hi" (e.g. "0,1") or "none" for unbounded features."""
    cleaned = text.strip().lower()
    if cleaned == "none":
        return None
    parts = cleaned.split(",")
    try:
        if len(parts) != 2:
            raise ValueError(text)
        lo, hi = float(parts[0]), float(parts[1])
    except ValueError:
        raise ConfigError(
            f"--clip {text!r}: expected 'lo,hi' (e.g. 0,1) or 'none' for unbounded inputs"
        ) from None
    return checked_clip((lo, hi))


def build_target(
    model_path: Path | str,
    data_path: Path | str,
    *,
    clip: Clip | str,
    arch: str | None = None,
    label_column: str | None = None,
    unsafe_allow_pickle: bool = False,
    name: str | None = None,
    model_bytes: bytes | None = None,
    train_data: Path | str | None = None,
) -> Target:
    """Load a model file and a data file safely and check that they fit each other.

    ``model_bytes`` is the model's content already in memory (read and scanned once, or
    decrypted from ``model_path``, say ``model.pt.enc``, then loaded as the file named
    without ``.enc``). ``train_data`` is a separate training-data file: its ``x_train`` and
    ``y_train`` (or, without them, its ``x`` and ``y``) replace the data file's own.
    """
    clip_range = checked_clip(clip)
    model_path = Path(model_path)
    loaded, shown = _load_model_file(model_path, arch, unsafe_allow_pickle, model_bytes)
    data_path = Path(data_path)
    dataset = load_data(data_path, label_column=label_column)
    train_digest = None
    if train_data is not None:
        dataset, train_digest = _with_train_data(dataset, Path(train_data), label_column)
    target = _assemble(
        loaded.obj,
        dataset,
        clip=clip_range,
        name=name or shown.stem,
        artifact=model_path,
        source=loaded.format,
    )
    data_digest = dataset.sha256 or file_sha256(data_path)  # taken through the descriptor that read it
    target.digests = {"model": _model_digest(model_path, model_bytes), "data": f"sha256:{data_digest}"}
    target.files = {"data": data_path}
    if train_digest is not None:
        target.digests["train_data"] = f"sha256:{train_digest}"
        target.files["train_data"] = Path(str(train_data))
    return target


def build_training_target(
    model_path: Path | str,
    data_path: Path | str,
    *,
    clip: Clip | str,
    arch: str | None = None,
    label_column: str | None = None,
    unsafe_allow_pickle: bool = False,
    model_bytes: bytes | None = None,
) -> Target:
    """A target whose data is a training set alone (``guard data detect-poison``): an
    ``.npz`` must hold ``x_train`` and ``y_train``, a ``.csv`` is read as the training set.
    Its training arrays double as its evaluation arrays, checked against the model the same way."""
    clip_range = checked_clip(clip)
    model_path = Path(model_path)
    loaded, shown = _load_model_file(model_path, arch, unsafe_allow_pickle, model_bytes)
    x, y, digest = load_training_data(Path(data_path), label_column=label_column, require_train=True)
    dataset = make_dataset(x, y, x_train=x, y_train=y)
    target = _assemble(loaded.obj, dataset, clip=clip_range, name=shown.stem, artifact=model_path,
                       source=loaded.format)
    target.digests = {"model": _model_digest(model_path, model_bytes), "train_data": f"sha256:{digest}"}
    target.files = {"train_data": Path(data_path)}
    return target


def _load_model_file(model_path: Path, arch: str | None, unsafe_allow_pickle: bool,
                     model_bytes: bytes | None) -> tuple[LoadedModel, Path]:
    """The loaded model and the name it is shown and loaded as: ``model.pt.enc`` decrypted
    into ``model_bytes`` loads (and is named) as ``model.pt``."""
    decrypted = model_bytes is not None and model_path.suffix == ".enc"
    shown = model_path.with_suffix("") if decrypted else model_path
    return load_model(shown, arch=arch, unsafe_allow_pickle=unsafe_allow_pickle, data=model_bytes), shown


def _model_digest(model_path: Path, model_bytes: bytes | None) -> str:
    """``sha256:HEX`` of the bytes that loaded (the file's, when none were given)."""
    digest = hashlib.sha256(model_bytes).hexdigest() if model_bytes is not None else file_sha256(model_path)
    return f"sha256:{digest}"


def _with_train_data(dataset: Dataset, path: Path, label_column: str | None) -> tuple[Dataset, str | None]:
    """The dataset with its training arrays taken from ``path`` (checked like the rest)."""
    x, y, digest = load_training_data(path, label_column=label_column)
    if x.shape[1:] != dataset.x_eval.shape[1:]:
        raise DataError(f"{path}: training samples have shape {x.shape[1:]}, the evaluation data's "
                        f"have {dataset.x_eval.shape[1:]}")
    merged = make_dataset(dataset.x_eval, dataset.y_eval, x_train=x, y_train=y,
                          feature_names=dataset.feature_names)
    return merged, digest


def file_sha256(path: Path) -> str:
    """SHA-256 of a file, read in 1 MiB chunks (for the report's reproducibility section)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def build_target_from_objects(
    model_obj: Any,
    x: np.ndarray,
    y: np.ndarray,
    *,
    clip: Clip | str,
    name: str,
    x_train: np.ndarray | None = None,
    y_train: np.ndarray | None = None,
    feature_names: tuple[str, ...] | None = None,
) -> Target:
    """The same checks as :func:`build_target` for a live ``nn.Module`` or fitted estimator."""
    clip_range = checked_clip(clip)
    dataset = make_dataset(x, y, x_train=x_train, y_train=y_train, feature_names=feature_names)
    return _assemble(model_obj, dataset, clip=clip_range, name=name, artifact=None, source="")


def checked_clip(clip: Clip | str) -> Clip:
    if isinstance(clip, str):
        return parse_clip(clip)
    if clip is None:
        return None
    if len(clip) != 2:
        raise ConfigError(f"clip {clip!r}: expected a (lo, hi) pair or None")
    lo, hi = float(clip[0]), float(clip[1])
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ConfigError(f"clip ({lo}, {hi}): bounds must be finite; use 'none' for unbounded")
    if lo >= hi:
        raise ConfigError(f"clip ({lo}, {hi}): lower bound must be below upper bound")
    return (lo, hi)


def _assemble(
    model_obj: Any,
    dataset: Dataset,
    *,
    clip: Clip,
    name: str,
    artifact: Path | None,
    source: str,
) -> Target:
    if not name:
        raise ConfigError("target name must not be empty")
    if clip is not None:
        _check_in_range(dataset, clip)
    model, y_eval, y_train = _adapt(model_obj, dataset, source)
    x_eval, x_train = dataset.x_eval, dataset.x_train
    dtype = str(x_eval.dtype)
    if model.framework == "torch":  # torch models compute in float32 (see TorchModel)
        dtype = "float32"
        x_eval = x_eval.astype(np.float32)
        x_train = None if x_train is None else x_train.astype(np.float32)
    spec = InputSpec(
        shape=tuple(int(d) for d in x_eval.shape[1:]),
        dtype=dtype,
        clip=clip,
        feature_names=dataset.feature_names,
    )
    return Target(
        name=name,
        model=model,
        x_eval=x_eval,
        y_eval=y_eval,
        input_spec=spec,
        x_train=x_train,
        y_train=y_train,
        artifact=artifact,
    )


def _check_in_range(dataset: Dataset, clip: tuple[float, float]) -> None:
    lo, hi = clip
    for label, x in (("x", dataset.x_eval), ("x_train", dataset.x_train)):
        if x is None:
            continue
        x_min, x_max = float(x.min()), float(x.max())
        if x_min < lo or x_max > hi:
            raise DataError(
                f"{label} has values in [{x_min:g}, {x_max:g}], outside the declared clip "
                f"range [{lo:g}, {hi:g}]; fix the data or declare the range it has"
            )


def _adapt(
    model_obj: Any, dataset: Dataset, source: str
) -> tuple[ModelAdapter, np.ndarray, np.ndarray | None]:
    """Wrap the model in its adapter and map labels to class indices 0..n_classes-1."""
    import torch

    if isinstance(model_obj, torch.nn.Module):
        return _adapt_torch(model_obj, dataset, source)
    if hasattr(model_obj, "predict"):
        return _adapt_sklearn(model_obj, dataset, source)
    raise TargetMismatchError(
        f"a {type(model_obj).__name__} is neither a torch module nor a scikit-learn estimator"
    )


def _adapt_torch(
    module: torch.nn.Module, dataset: Dataset, source: str
) -> tuple[ModelAdapter, np.ndarray, np.ndarray | None]:
    from guard.models.torch_adapter import TorchModel

    n_classes = _count_torch_classes(module.eval().float(), dataset.x_eval)
    for label, y in (("y", dataset.y_eval), ("y_train", dataset.y_train)):
        if y is None:
            continue
        outside = y[(y < 0) | (y >= n_classes)]
        if len(outside):
            raise TargetMismatchError(
                f"labels out of range: model has {n_classes} classes, data has label "
                f"{int(outside[0])} (in {label})"
            )
    return TorchModel(module, n_classes, source), dataset.y_eval, dataset.y_train


def _count_torch_classes(module: torch.nn.Module, x: np.ndarray) -> int:
    """Run the model on a few samples: it must accept the data's shape and return logits."""
    import torch

    sample = torch.as_tensor(np.ascontiguousarray(x[:_PROBE_SAMPLES]), dtype=torch.float32)
    shape = tuple(sample.shape)
    try:
        with torch.inference_mode():
            out = module(sample)
    except Exception as exc:  # the model's own code: whatever it raises means "does not fit"
        raise TargetMismatchError(
            f"model rejected input of shape {shape}: {_first_line(exc)}"
        ) from exc
    if not isinstance(out, torch.Tensor):
        raise TargetMismatchError(
            f"model returned a {type(out).__name__} for input of shape {shape}; "
            "expected a tensor of class scores"
        )
    if out.ndim != 2 or out.shape[0] != shape[0] or out.shape[1] < 2:
        raise TargetMismatchError(
            f"model output has shape {tuple(out.shape)} for input of shape {shape}; "
            f"expected ({shape[0]}, n_classes) class scores with n_classes >= 2"
        )
    return int(out.shape[1])


def _adapt_sklearn(
    estimator: Any, dataset: Dataset, source: str
) -> tuple[ModelAdapter, np.ndarray, np.ndarray | None]:
    from guard.models.sklearn_adapter import SklearnModel

    model = SklearnModel(estimator, source)
    flat = dataset.x_eval.reshape(len(dataset.x_eval), -1)
    expected = getattr(estimator, "n_features_in_", None)
    if expected is not None and int(expected) != flat.shape[1]:
        raise TargetMismatchError(
            f"model expects {int(expected)} features, data has {flat.shape[1]} per sample "
            f"(sample shape {dataset.x_eval.shape[1:]})"
        )
    try:
        estimator.predict(flat[:_PROBE_SAMPLES])
    except Exception as exc:  # the estimator's own code: whatever it raises means "does not fit"
        raise TargetMismatchError(
            f"model rejected input of shape {flat[:_PROBE_SAMPLES].shape}: {_first_line(exc)}"
        ) from exc
    try:
        y_eval = model.label_indices(dataset.y_eval)
        y_train = None if dataset.y_train is None else model.label_indices(dataset.y_train)
    except TypeError as exc:
        raise TargetMismatchError(
            f"model classes ({', '.join(str(c) for c in model.classes[:5])}) cannot be "
            "compared with integer labels"
        ) from exc
    return model, y_eval, y_train


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0][:200] if lines else type(exc).__name__
