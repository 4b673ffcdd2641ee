"""Safe model loading: every format round-trips, and nothing in an audited file ever runs."""

from __future__ import annotations

import io
import json
import os
import pickle
import zipfile
from collections.abc import Callable
from pathlib import Path

import joblib
import numpy as np
import pytest
import skops.io
import torch
from fixtures_models import HomeMadeClassifier, TinyDigitsCNN
from safetensors.torch import save_file

from guard.errors import ModelLoadError, UnsafeModelError
from guard.models.loading import load_model
from guard.models.torch_adapter import TorchModel


def logits(module: torch.nn.Module, x: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        out: np.ndarray = module(torch.from_numpy(x)).numpy()
    return out


class WritesMarker:
    """Unpickling this runs code that creates a file: the proof that a loader executed it."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (exec, (f"open({str(self.marker)!r}, 'w').close()",))


def rewrite_zip(
    src: Path, dst: Path, edit: Callable[[str, bytes], bytes], extra: dict[str, bytes] | None = None
) -> None:
    """Copy a torch archive entry by entry through ``edit``; ``extra`` adds entries (no root)."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_STORED) as zout:
        root = zin.namelist()[0].partition("/")[0]
        for name in zin.namelist():
            zout.writestr(name, edit(name.partition("/")[2], zin.read(name)))
        for name, data in (extra or {}).items():
            zout.writestr(f"{root}/{name}", data)


# --- formats that load -------------------------------------------------------------------


def test_torchscript_round_trip(tmp_path: Path, cnn: TinyDigitsCNN, digits: dict) -> None:
    path = tmp_path / "model.pt"
    torch.jit.save(torch.jit.script(cnn), str(path))
    loaded = load_model(path)
    assert (loaded.framework, loaded.format) == ("torch", "torchscript")
    np.testing.assert_allclose(logits(loaded.obj, digits["x_test"]), logits(cnn, digits["x_test"]))


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory, cnn: TinyDigitsCNN) -> Path:
    path = tmp_path_factory.mktemp("pt2") / "model.pt2"
    batch = torch.export.Dim("batch")
    program = torch.export.export(
        cnn, (torch.zeros(4, 1, 8, 8),), dynamic_shapes=({0: batch},)
    )
    torch.export.save(program, path)
    return path


def test_torch_export_round_trip(exported: Path, cnn: TinyDigitsCNN, digits: dict) -> None:
    loaded = load_model(exported)
    assert (loaded.framework, loaded.format) == ("torch", "torch.export")
    np.testing.assert_allclose(
        logits(loaded.obj, digits["x_test"]), logits(cnn, digits["x_test"]), rtol=1e-5, atol=1e-5
    )
    # the adapter puts every module in eval mode; exported ones must allow it
    model = TorchModel(loaded.obj, 10, loaded.format)
    assert (model.predict(digits["x_test"]) == logits(cnn, digits["x_test"]).argmax(1)).all()


def test_state_dict_with_arch(
    tmp_path: Path, cnn: TinyDigitsCNN, digits: dict, user_arch: str
) -> None:
    path = tmp_path / "weights.pth"
    torch.save(cnn.state_dict(), path)
    loaded = load_model(path, arch=user_arch)
    assert (loaded.framework, loaded.format) == ("torch", "state_dict")
    assert type(loaded.obj).__module__ == "user_net"
    np.testing.assert_allclose(logits(loaded.obj.eval(), digits["x_test"]), logits(cnn, digits["x_test"]))


def test_checkpoint_dict_and_legacy_format(
    tmp_path: Path, cnn: TinyDigitsCNN, digits: dict, user_arch: str
) -> None:
    path = tmp_path / "ckpt.pt"
    torch.save({"state_dict": cnn.state_dict(), "epoch": 3}, path)
    assert load_model(path, arch=user_arch).format == "state_dict"
    legacy = tmp_path / "legacy.bin"
    torch.save(cnn.state_dict(), legacy, _use_new_zipfile_serialization=False)
    loaded = load_model(legacy, arch=user_arch)
    np.testing.assert_allclose(logits(loaded.obj.eval(), digits["x_test"]), logits(cnn, digits["x_test"]))


def test_safetensors_with_arch(
    tmp_path: Path, cnn: TinyDigitsCNN, digits: dict, user_arch: str
) -> None:
    path = tmp_path / "weights.safetensors"
    save_file(cnn.state_dict(), str(path))
    loaded = load_model(path, arch=user_arch)
    assert (loaded.framework, loaded.format) == ("torch", "safetensors")
    np.testing.assert_allclose(logits(loaded.obj.eval(), digits["x_test"]), logits(cnn, digits["x_test"]))


@pytest.mark.parametrize("which", ["logreg", "svc_pipeline"])
def test_skops_round_trip(
    tmp_path: Path, which: str, request: pytest.FixtureRequest, digits: dict
) -> None:
    estimator = request.getfixturevalue(which)
    path = tmp_path / "model.skops"
    skops.io.dump(estimator, path)
    loaded = load_model(path)
    assert (loaded.framework, loaded.format) == ("sklearn", "skops")
    x = digits["flat_test"]
    assert (loaded.obj.predict(x) == estimator.predict(x)).all()


@pytest.mark.parametrize("suffix", [".pkl", ".joblib"])
def test_pickle_and_joblib_need_opt_in(
    tmp_path: Path, suffix: str, logreg: object, digits: dict
) -> None:
    path = tmp_path / f"model{suffix}"
    if suffix == ".pkl":
        path.write_bytes(pickle.dumps(logreg))
    else:
        joblib.dump(logreg, path)
    with pytest.raises(UnsafeModelError, match="--unsafe-allow-pickle"):
        load_model(path)
    loaded = load_model(path, unsafe_allow_pickle=True)
    assert (loaded.framework, loaded.format) == ("sklearn", suffix.lstrip(".").replace("pkl", "pickle"))
    x = digits["flat_test"]
    assert (loaded.obj.predict(x) == logreg.predict(x)).all()  # type: ignore[attr-defined]


def test_whole_pickled_module_needs_opt_in(tmp_path: Path, cnn: TinyDigitsCNN) -> None:
    path = tmp_path / "whole.pt"
    torch.save(cnn, path)
    with pytest.raises(UnsafeModelError, match="state_dict or TorchScript.*--unsafe-allow-pickle"):
        load_model(path)
    loaded = load_model(path, unsafe_allow_pickle=True)
    assert isinstance(loaded.obj, TinyDigitsCNN) and loaded.format == "pickle"


# --- malicious files: refused, and the payload never runs ---------------------------------


def test_payload_is_live_when_the_user_opts_in(tmp_path: Path) -> None:
    """Control: the malicious pickle really runs code, so the refusals below mean something."""
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps(WritesMarker(marker)))
    with pytest.raises(ModelLoadError, match="NoneType"):
        load_model(path, unsafe_allow_pickle=True)
    assert marker.exists()


@pytest.mark.parametrize("name", ["evil.pkl", "evil.joblib", "evil.pt", "evil.safetensors", "evil"])
def test_malicious_pickle_is_refused_without_running(tmp_path: Path, name: str) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / name
    payload = WritesMarker(marker)
    if name.endswith(".joblib"):
        joblib.dump(payload, path)
    elif name.endswith(".pt"):
        torch.save({"weight": torch.zeros(2), "extra": payload}, path)
    else:
        path.write_bytes(pickle.dumps(payload))
    with pytest.raises(UnsafeModelError):
        load_model(path)
    assert not marker.exists()


def test_malicious_torch_save_names_the_global(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save(WritesMarker(marker), path)
    with pytest.raises(UnsafeModelError, match=r"pickled Python objects.*exec"):
        load_model(path)
    assert not marker.exists()


def test_skops_with_foreign_type_is_refused(tmp_path: Path, digits: dict) -> None:
    model = HomeMadeClassifier(max_iter=50).fit(digits["flat_train"][:100], digits["y_train"][:100])
    path = tmp_path / "model.skops"
    skops.io.dump(model, path)
    with pytest.raises(UnsafeModelError, match="fixtures_models.HomeMadeClassifier"):
        load_model(path)


def test_skops_with_numpy_testing_function_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "model.skops"
    skops.io.dump({"f": np.testing.assert_equal}, path)
    with pytest.raises(UnsafeModelError, match="numpy.testing"):
        load_model(path)


def _edit_json(target: str, change: Callable[[dict], None]) -> Callable[[str, bytes], bytes]:
    def edit(name: str, data: bytes) -> bytes:
        if name != target:
            return data
        doc = json.loads(data)
        change(doc)
        return json.dumps(doc).encode()

    return edit


def _set_first_expr(doc: dict, value: str) -> None:
    stack: list = [doc]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if "expr_str" in item:
                item["expr_str"] = value
                return
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    raise AssertionError("no expr_str in program")


def _evil_sample_inputs(marker: Path) -> Callable[[str, bytes], bytes]:
    def edit(name: str, data: bytes) -> bytes:
        if not name.startswith("data/sample_inputs/"):
            return data
        buf = io.BytesIO()
        torch.save(((torch.zeros(1), WritesMarker(marker)), {}), buf)
        return buf.getvalue()

    return edit


def _evil_pickled_weights(marker: Path) -> Callable[[str, bytes], bytes]:
    """Mark the first weight as pickled (torch then loads it with weights_only=False)."""
    config = "data/weights/model_weights_config.json"

    def flag(doc: dict) -> None:
        entry = next(iter(doc["config"].values()))
        entry["use_pickle"] = True
        entry["path_name"] = "weight_0"

    def edit(name: str, data: bytes) -> bytes:
        if name == config:
            return _edit_json(config, flag)(name, data)
        if name == "data/weights/weight_0":
            buf = io.BytesIO()
            torch.save(WritesMarker(marker), buf)
            return buf.getvalue()
        return data

    return edit


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("guards", "guard code"),
        ("sympy", "shape expression"),
        ("sample_inputs", "sample inputs hold pickled"),
        ("pickled_weights", "pickled weights"),
        ("aoti", "aotinductor"),
    ],
)
def test_malicious_torch_export_is_refused(
    tmp_path: Path, exported: Path, case: str, message: str
) -> None:
    """torch.export.load unpickles, evals sympy text and compiles guard code from the file."""
    marker = tmp_path / "pwned"
    code = f"open({str(marker)!r}, 'w').close() is None"  # runs if torch evaluates it
    edits: dict[str, Callable[[str, bytes], bytes]] = {
        "guards": _edit_json("models/model.json", lambda d: d.update(guards_code=[code])),
        "sympy": _edit_json("models/model.json", lambda d: _set_first_expr(d, code)),
        "sample_inputs": _evil_sample_inputs(marker),
        "pickled_weights": _evil_pickled_weights(marker),
        "aoti": lambda name, data: data,
    }
    extra = {"data/aotinductor/model/model.so": b"\x7fELF"} if case == "aoti" else None
    path = tmp_path / "evil.pt2"
    rewrite_zip(exported, path, edits[case], extra)
    with pytest.raises(UnsafeModelError, match=message):
        load_model(path)
    assert not marker.exists()


def test_rewritten_but_clean_torch_export_still_loads(tmp_path: Path, exported: Path) -> None:
    """The rewriting used above keeps a valid archive, so the refusals come from the vetting."""
    path = tmp_path / "copy.pt2"
    rewrite_zip(exported, path, lambda name, data: data)
    assert load_model(path).format == "torch.export"


def test_torch_export_graph_calling_python_is_refused(tmp_path: Path, exported: Path) -> None:
    def retarget(doc: dict) -> None:
        nodes = doc["graph_module"]["graph"]["nodes"]
        relu = next(n for n in nodes if n["target"] == "torch.ops.aten.relu.default")
        relu["target"] = "torch.os.system"

    path = tmp_path / "evil.pt2"
    rewrite_zip(exported, path, _edit_json("models/model.json", retarget))
    with pytest.raises(ModelLoadError):
        load_model(path)


# --- bad input: one clear ModelLoadError ---------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="no such file"):
        load_model(tmp_path / "nope.pt")


def test_directory(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="is a directory"):
        load_model(tmp_path)


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.pt"
    path.write_bytes(b"")
    with pytest.raises(ModelLoadError, match="empty"):
        load_model(path)


def test_unreadable_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "locked.pt"
    path.write_bytes(b"x")

    def deny(path: Path, limit: int) -> bytes:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr("guard.fsio.read_regular_file", deny)
    with pytest.raises(ModelLoadError, match="cannot read.*Permission denied"):
        load_model(path)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_fifo_as_model_file_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "model.pt"
    os.mkfifo(fifo)  # no writer: a plain open() would block forever
    with pytest.raises(ModelLoadError, match="FIFO, device or socket"):
        load_model(fifo)
    with pytest.raises(ModelLoadError, match="FIFO, device or socket"):
        load_model(Path("/dev/zero"))


@pytest.mark.parametrize("suffix", [".pt", ".skops", ".pt2"])
def test_truncated_zip(tmp_path: Path, suffix: str, cnn: TinyDigitsCNN, logreg: object) -> None:
    full = tmp_path / f"full{suffix}"
    if suffix == ".skops":
        skops.io.dump(logreg, full)
    else:
        torch.save(cnn.state_dict(), full)
    path = tmp_path / f"cut{suffix}"
    path.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    with pytest.raises(ModelLoadError, match="corrupt or truncated"):
        load_model(path)


def test_flipped_bit_is_caught(tmp_path: Path, cnn: TinyDigitsCNN, user_arch: str) -> None:
    path = tmp_path / "weights.pt"
    torch.save(cnn.state_dict(), path)
    data = bytearray(path.read_bytes())
    start = data.find(b"data/0") + 200  # inside the first tensor's bytes
    data[start] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(ModelLoadError, match="checksum mismatch"):
        load_model(path, arch=user_arch)


def test_truncated_safetensors(tmp_path: Path, cnn: TinyDigitsCNN, user_arch: str) -> None:
    path = tmp_path / "weights.safetensors"
    save_file(cnn.state_dict(), str(path))
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(ModelLoadError, match="corrupt safetensors"):
        load_model(path, arch=user_arch)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("model.onnx", b"\x08\x07\x12\x04onnx", "unknown model format"),
        ("model.pt", b"not a torch file at all", r"not a valid \.pt file"),
        ("notes.zip", None, "no model format Guard knows"),
    ],
)
def test_unknown_format(tmp_path: Path, name: str, content: bytes | None, message: str) -> None:
    path = tmp_path / name
    if content is None:
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("readme.txt", "hello")
    else:
        path.write_bytes(content)
    with pytest.raises(ModelLoadError, match=message):
        load_model(path)


def test_state_dict_without_arch(tmp_path: Path, cnn: TinyDigitsCNN) -> None:
    path = tmp_path / "weights.pt"
    torch.save(cnn.state_dict(), path)
    with pytest.raises(ModelLoadError, match="--arch module:Class"):
        load_model(path)


def test_not_a_state_dict(tmp_path: Path, user_arch: str) -> None:
    path = tmp_path / "numbers.pt"
    torch.save([1, 2, 3], path)
    with pytest.raises(ModelLoadError, match="list that is not a state dict"):
        load_model(path, arch=user_arch)


@pytest.fixture
def weights(tmp_path: Path, cnn: TinyDigitsCNN) -> Path:
    path = tmp_path / "weights.pt"
    torch.save(cnn.state_dict(), path)
    return path


@pytest.mark.parametrize(
    ("arch", "message"),
    [
        ("user_net.TinyDigitsCNN", "expected module:Class"),
        ("user_net:", "expected module:Class"),
        ("no_such_module_xyz:Net", "cannot import no_such_module_xyz"),
        ("user_net:Missing", "has no attribute 'Missing'"),
        ("user_net:HomeMadeClassifier", "not a torch.nn.Module class"),
    ],
)
def test_bad_arch(weights: Path, user_arch: str, arch: str, message: str) -> None:
    with pytest.raises(ModelLoadError, match=message):
        load_model(weights, arch=arch)


def _write_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, source: str) -> None:
    (tmp_path / f"{name}.py").write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))


def test_arch_module_failing_on_import(
    weights: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write_module(tmp_path, monkeypatch, "broken_net_mod", "raise RuntimeError('boom')\n")
    with pytest.raises(ModelLoadError, match="importing broken_net_mod failed.*boom"):
        load_model(weights, arch="broken_net_mod:Net")


def test_arch_class_needing_arguments(
    weights: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = (
        "from torch import nn\n"
        "class Net(nn.Module):\n"
        "    def __init__(self, width):\n"
        "        super().__init__()\n"
    )
    _write_module(tmp_path, monkeypatch, "args_net_mod", source)
    with pytest.raises(ModelLoadError, match=r"Net\(\) failed; the class must build with no arguments"):
        load_model(weights, arch="args_net_mod:Net")


def test_arch_key_and_shape_mismatch(
    weights: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = (
        "from torch import nn\n"
        "class Net(nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.conv = nn.Conv2d(1, 4, 3)\n"
        "        self.fc = nn.Linear(2, 2)\n"
    )
    _write_module(tmp_path, monkeypatch, "other_net_mod", source)
    with pytest.raises(ModelLoadError, match="weights do not fit") as caught:
        load_model(weights, arch="other_net_mod:Net")
    text = str(caught.value)
    assert "missing keys: fc.weight, fc.bias" in text
    assert "unexpected keys: head.weight, head.bias" in text
    assert "conv.weight (8, 1, 3, 3) vs (4, 1, 3, 3)" in text
    assert "\n" not in text


def test_graph_check_refuses_python_calls_torch_let_through(
    exported: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Defence in depth: even if torch's verifier accepted a Python call, Guard refuses it."""
    import os

    from guard.models.pt2_vetting import check_exported_graph

    program = torch.export.load(exported)
    node = next(n for n in program.graph_module.graph.nodes if n.op == "call_function")
    monkeypatch.setattr(node, "target", os.system)
    with pytest.raises(UnsafeModelError, match="system.*not a torch operator"):
        check_exported_graph(exported, program)
