"""Static scanners for ONNX, TensorFlow SavedModel/GraphDef/keras_metadata and Keras configs/HDF5.

Fixtures in tests/data/scan/ were written by tests/data/scan/make_fixtures.py with the real
libraries (Keras 3, onnx, h5py, torch.onnx) or, for TensorFlow, a hand-written protobuf
encoder; these tests need none of those libraries.
"""

from __future__ import annotations

import random
import tracemalloc
import zipfile
from pathlib import Path

import pytest

from guard.defenses.scan import keras as keras_scan
from guard.defenses.scan.context import Findings, LimitReached
from guard.defenses.scan.keras import RULE_HELP as KERAS_HELP
from guard.defenses.scan.keras import scan_h5, scan_keras_config
from guard.defenses.scan.onnx import RULE_HELP as ONNX_HELP
from guard.defenses.scan.onnx import external_path_problem, scan_onnx
from guard.defenses.scan.protobuf import LEN, ProtobufError, ProtoReader
from guard.defenses.scan.results import ScanFinding, Severity
from guard.defenses.scan.rules import RULE_HELP as PICKLE_HELP
from guard.defenses.scan.savedmodel import RULE_HELP as TF_HELP
from guard.defenses.scan.savedmodel import (
    scan_graph_def,
    scan_keras_metadata,
    scan_protobuf_model,
    scan_saved_model,
)

DATA = Path(__file__).parent / "data" / "scan"
FIXTURES = sorted(p for p in DATA.iterdir() if p.suffix != ".py")
C, H, M = Severity.CRITICAL, Severity.HIGH, Severity.MEDIUM


# -- a protobuf writer for hand-made inputs ------------------------------------------------------
def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def f_varint(number: int, value: int) -> bytes:
    return varint(number << 3) + varint(value)


def f_msg(number: int, *parts: bytes) -> bytes:
    body = b"".join(parts)
    return varint(number << 3 | LEN) + varint(len(body)) + body


def f_str(number: int, text: str) -> bytes:
    return f_msg(number, text.encode())


def onnx_model(graph: bytes, *extra: bytes) -> bytes:
    return f_varint(1, 8) + f_msg(7, graph) + f_msg(8, f_str(1, ""), f_varint(2, 17)) + b"".join(extra)


def onnx_node(op: str, domain: str = "", *attrs: bytes) -> bytes:
    return f_str(4, op) + f_str(7, domain) + b"".join(attrs)


# -- running the scanners --------------------------------------------------------------------
def scan_path(path: Path) -> tuple[str | None, tuple[ScanFinding, ...]]:
    """What the integration will do: a config.json, a .keras zip's entries, else sniff by content."""
    data = path.read_bytes()
    findings = Findings()
    fmt: str | None
    if path.suffix == ".json":
        scan_keras_config(data, path.name, findings)
        fmt = "keras-config"
    elif path.suffix == ".keras":
        with zipfile.ZipFile(path) as z:
            scan_keras_config(z.read("config.json"), "config.json", findings)
            for name in z.namelist():
                if name.endswith(".h5"):
                    entry = z.read(name)
                    assert scan_h5(entry, 0, len(entry), name, findings)
        fmt = "keras"
    elif scan_h5(data, 0, len(data), "", findings):
        fmt = "hdf5"
    else:
        fmt = scan_protobuf_model(data, 0, len(data), "", findings)
    return fmt, findings.as_tuple()


MALICIOUS: dict[str, tuple[str, list[tuple[str, str, Severity]]]] = {
    # Keras
    "keras_lambda.keras": ("keras", [("keras-lambda", "", C)]),
    "keras_lambda.h5": ("hdf5", [("keras-lambda", "", C)]),
    "keras_lambda_userblock.h5": ("hdf5", [("keras-lambda", "", C)]),
    "keras_config_os_system.json": ("keras-config", [("code-execution", "os.system", C)]),
    "keras_config_module_import.json": ("keras-config", [("code-execution", "subprocess.Popen", C),
                                                         ("code-execution", "builtins.exec", C)]),
    "keras_config_get_file.json": ("keras-config", [("keras-unsafe-api", "keras.utils.get_file", H)]),
    "keras_config_unsafe_deserialization.json": ("keras-config", [
        ("keras-unsafe-api", "keras.config.enable_unsafe_deserialization", C), ("keras-lambda", "", C)]),
    "keras_config_string_lookup.json": ("keras-config", [("keras-file-reference", "/etc/passwd", H)]),
    "keras_config_tfsmlayer.json": ("keras-config", [("keras-external-model", "", H)]),
    "keras_config_torch_wrapper.json": ("keras-config", [("keras-pickle", "", C)]),
    "keras_config_custom_layer.json": ("keras-config", [
        ("untrusted-import", "my_project.layers.Attention", M)]),
    # ONNX
    "onnx_external_traversal.onnx": ("onnx", [("onnx-external-path", "../../etc/passwd", H)]),
    "onnx_external_absolute.onnx": ("onnx", [("onnx-external-path", "/etc/passwd", H)]),
    "onnx_external_in_subgraph.onnx": ("onnx", [("onnx-external-path", "../../../../root/.ssh/id_rsa", H)]),
    "onnx_ep_context_path.onnx": ("onnx", [("onnx-external-path", "../../../etc/shadow", H)]),
    "onnx_custom_op.onnx": ("onnx", [("onnx-custom-op", "com.evil.ops.EvilOp", M),
                                     ("onnx-custom-op", "com.evil.ops", M)]),
    "onnx_custom_op_in_function.onnx": ("onnx", [("onnx-custom-op", "ai.onnx.contrib.Backdoor", M),
                                                 ("onnx-custom-op", "ai.onnx.contrib", M)]),
    # TensorFlow
    "tf_pyfunc_saved_model.pb": ("tf-savedmodel", [("tf-python-op", "PyFunc", C)]),
    "tf_file_ops_saved_model.pb": ("tf-savedmodel", [
        ("tf-file-op", "ReadFile", H), ("tf-file-op", "WriteFile", H), ("tf-file-op", "MatchingFiles", H),
        ("tf-file-op", "PrintV2", H), ("tf-file-op", "Save", H)]),
    "tf_hidden_function_saved_model.pb": ("tf-savedmodel", [("tf-python-op", "EagerPyFunc", C),
                                                            ("tf-file-op", "ReadFile", H)]),
    "tf_asset_traversal_saved_model.pb": ("tf-savedmodel", [("tf-asset-path", "../../../../etc/passwd", H)]),
    "tf_keras_object_lambda_saved_model.pb": ("tf-savedmodel", [("keras-lambda", "", C)]),
    "tf_frozen_graph_pyfunc.pb": ("tf-graphdef", [("tf-python-op", "PyFuncStateless", C)]),
    "tf_keras_metadata_lambda.pb": ("keras-metadata", [("keras-lambda", "", C)]),
}

BENIGN: dict[str, str | None] = {
    "keras_benign.keras": "keras",
    "keras_benign.h5": "hdf5",
    "onnx_benign.onnx": "onnx",
    "onnx_benign_external.onnx": "onnx",
    "onnx_benign_local_function.onnx": "onnx",
    "tf_benign_saved_model.pb": "tf-savedmodel",
    "tf_benign_tf1_saved_model.pb": "tf-savedmodel",
    "tf_keras_metadata.pb": "keras-metadata",
    "tf_fingerprint.pb": None,  # not a model: every scanner declines it
    "onnx_benign_external.onnx.data": None,  # raw tensor bytes
}
if (DATA / "onnx_benign_torch_export.onnx").exists():  # written only where torch.onnx.export worked
    BENIGN["onnx_benign_torch_export.onnx"] = "onnx"


def test_every_fixture_is_listed_and_small() -> None:
    names = {p.name for p in FIXTURES}
    assert names == set(MALICIOUS) | set(BENIGN)
    assert all(p.stat().st_size < 200_000 for p in FIXTURES)


@pytest.mark.parametrize("name", sorted(MALICIOUS))
def test_malicious_fixture_is_rated(name: str) -> None:
    expected_fmt, expected = MALICIOUS[name]
    fmt, findings = scan_path(DATA / name)
    assert fmt == expected_fmt
    got = {(f.rule, f.global_name): f.severity for f in findings}
    for rule, global_name, severity in expected:
        assert got.get((rule, global_name)) == severity, (rule, global_name, findings)
    assert max(f.severity for f in findings) == max(s for _, _, s in expected)


@pytest.mark.parametrize("name", sorted(BENIGN))
def test_benign_fixture_is_clean(name: str) -> None:
    fmt, findings = scan_path(DATA / name)
    assert fmt == BENIGN[name]
    assert [f for f in findings if f.severity >= Severity.MEDIUM] == []


def test_benign_external_data_is_info_and_saver_ops_are_not_flagged() -> None:
    _, findings = scan_path(DATA / "onnx_benign_external.onnx")
    assert {(f.rule, f.severity) for f in findings} == {("onnx-external-data", Severity.INFO)}
    for name in ("tf_benign_saved_model.pb", "tf_benign_tf1_saved_model.pb"):
        _, findings = scan_path(DATA / name)
        assert not any(f.global_name in ("SaveV2", "RestoreV2", "MergeV2Checkpoints", "Save",
                                         "RestoreSlice") for f in findings), findings


def test_local_function_is_not_a_custom_op() -> None:
    _, findings = scan_path(DATA / "onnx_custom_op_in_function.onnx")
    assert not any("pkg.local" in f.global_name for f in findings)


def test_formats_decline_each_other() -> None:
    """Each scanner returns False, reporting nothing, for the other formats' files."""
    for path in FIXTURES:
        data = path.read_bytes()
        own = MALICIOUS.get(path.name, (BENIGN.get(path.name),))[0]
        for fmt, scanner in (("onnx", scan_onnx), ("tf-savedmodel", scan_saved_model),
                             ("keras-metadata", scan_keras_metadata), ("tf-graphdef", scan_graph_def),
                             ("hdf5", scan_h5)):
            if fmt == own or (own == "keras" and fmt == "hdf5"):
                continue
            findings = Findings()
            assert not scanner(data, 0, len(data), "", findings), (path.name, fmt)
            assert len(findings) == 0


def test_offsets_are_relative_to_start_and_views_work() -> None:
    """The bytes may sit inside a larger buffer (an archive entry): same findings, same offsets."""
    for name in ("onnx_external_traversal.onnx", "tf_hidden_function_saved_model.pb", "keras_lambda.h5"):
        data = (DATA / name).read_bytes()
        _, alone = scan_path(DATA / name)
        padded = b"\x00" * 1000 + data + b"\xff" * 100
        for buf in (padded, bytearray(padded), memoryview(padded)):
            findings = Findings()
            if name.endswith(".h5"):
                assert scan_h5(buf, 1000, 1000 + len(data), "", findings)
            else:
                assert scan_protobuf_model(buf, 1000, 1000 + len(data), "", findings)
            assert findings.as_tuple() == alone


# -- hostile input never raises ----------------------------------------------------------------
def _mutations(data: bytes, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    n = len(data)
    out = [data[:cut] for cut in sorted({0, 1, 7, n // 3, n // 2, n - 1}) if cut < n]
    for _ in range(12):
        flipped = bytearray(data)
        for _ in range(rng.choice((1, 1, 3))):
            flipped[rng.randrange(n)] ^= 1 << rng.randrange(8)
        out.append(bytes(flipped))
    out.append(rng.randbytes(n))
    out.append(data[: n // 2] + rng.randbytes(n - n // 2))
    return out


def _scan_everything(data: bytes) -> None:
    for scanner in (scan_onnx, scan_saved_model, scan_graph_def, scan_keras_metadata, scan_h5):
        try:
            scanner(data, 0, len(data), "m", Findings())
        except LimitReached:
            pass
    scan_keras_config(data, "m", Findings())


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.name)
def test_truncated_flipped_and_garbage_copies_never_raise(path: Path) -> None:
    data = path.read_bytes()
    variants = _mutations(data, seed=len(data))
    if path.suffix == ".keras":
        with zipfile.ZipFile(path) as z:
            for name in z.namelist():
                variants += _mutations(z.read(name), seed=len(name))
    for variant in variants:
        _scan_everything(variant)


def test_every_single_byte_cut_of_a_small_onnx_model() -> None:
    data = (DATA / "onnx_custom_op_in_function.onnx").read_bytes()
    for cut in range(len(data)):
        findings = Findings()
        if not scan_onnx(data, 0, cut, "", findings):
            assert len(findings) == 0


# -- the protobuf reader's bounds ----------------------------------------------------------------
def _walk(reader: ProtoReader, start: int, end: int, depth: int) -> None:
    for f in reader.fields(start, end, depth):
        if f.wire_type == LEN:
            _walk(reader, f.start, f.end, depth + 1)


def test_deep_nesting_is_malformed_not_a_recursion_error() -> None:
    data = b""
    for _ in range(5000):
        data = f_msg(1, data)
    with pytest.raises(ProtobufError, match="nested deeper"):
        _walk(ProtoReader(data), 0, len(data), 0)
    graph = onnx_node("Relu")
    for _ in range(300):  # If nodes nested in then_branch subgraphs, 300 deep
        graph = f_msg(1, onnx_node("If", "", f_msg(5, f_str(1, "then_branch"), f_msg(6, graph))))
    findings = Findings()
    assert not scan_onnx(onnx_model(graph), 0, len(onnx_model(graph)), "", findings)
    assert len(findings) == 0


def test_huge_declared_lengths_allocate_nothing() -> None:
    bomb = f_varint(1, 8) + varint(7 << 3 | LEN) + varint(1 << 62) + b"\x0a\x00"
    tracemalloc.start()
    try:
        for scanner in (scan_onnx, scan_saved_model, scan_graph_def, scan_keras_metadata):
            assert not scanner(bomb, 0, len(bomb), "", Findings())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20
    with pytest.raises(ProtobufError, match="declares"):
        list(ProtoReader(bomb).fields(0, len(bomb)))


def test_malformed_wire_data() -> None:
    for bad in (b"\x08" + b"\xff" * 11,  # varint of 11 bytes
                b"\x08",  # truncated varint
                b"\x00\x01",  # field number 0
                b"\x0e\x00",  # wire type 6
                b"\x0c",  # end-group with no start
                b"\x0b\x08\x01",  # group never closed
                b"\x0d\x01\x02"):  # truncated fixed32
        with pytest.raises(ProtobufError):
            list(ProtoReader(bad).fields(0, len(bad)))


def test_field_count_and_deadline_are_limits() -> None:
    data = f_varint(1, 1) * 5000
    with pytest.raises(LimitReached, match="protobuf fields"):
        list(ProtoReader(data, max_fields=1000).fields(0, len(data)))
    data = f_varint(1, 1) * 40_000
    with pytest.raises(LimitReached, match="time"):
        list(ProtoReader(data, deadline=0.0).fields(0, len(data)))


def test_groups_are_skipped_like_parsers_skip_unknown_groups() -> None:
    group = varint(9 << 3 | 3) + f_varint(1, 5) + varint(2 << 3 | 3) + varint(2 << 3 | 4) + varint(9 << 3 | 4)
    data = group + f_varint(3, 7)
    assert [(f.number, f.value) for f in ProtoReader(data).fields(0, len(data))] == [(3, 7)]
    with pytest.raises(ProtobufError, match="group"):
        list(ProtoReader(data, skip_groups=False).fields(0, len(data)))
    with pytest.raises(ProtobufError, match="closes group"):
        bad = varint(9 << 3 | 3) + varint(8 << 3 | 4)
        list(ProtoReader(bad).fields(0, len(bad)))


def test_unknown_fields_and_merged_messages_cannot_hide_findings() -> None:
    """Protobuf parsers keep unknown and mistyped fields as unknown, and merge a repeated
    singular message: neither may make the scanner give up or miss a second graph."""
    data = (DATA / "onnx_external_traversal.onnx").read_bytes()
    group = varint(99 << 3 | 3) + f_varint(1, 1) + varint(99 << 3 | 4)
    second_graph = f_msg(7, f_msg(1, onnx_node("Sneaky", "com.evil")))
    for variant in (data + f_varint(99, 1) + group, f_varint(7, 3) + data, data + second_graph,
                    f_str(1, "ir_version as a string") + data):
        findings = Findings()
        assert scan_onnx(variant, 0, len(variant), "", findings)
        rules = {(f.rule, f.global_name) for f in findings.as_tuple()}
        assert ("onnx-external-path", "../../etc/passwd") in rules
        if variant.endswith(second_graph):
            assert ("onnx-custom-op", "com.evil.Sneaky") in rules


def test_onnx_needs_ir_version_and_graph() -> None:
    for data in (f_msg(7, f_msg(1, onnx_node("Relu"))),  # no ir_version
                 f_varint(1, 8) + f_str(2, "pytorch"),  # no graph
                 f_varint(1, 1 << 40) + f_msg(7, f_msg(1, onnx_node("Relu"))),  # ir_version too new
                 f_varint(1, 8) + f_msg(7, f_str(2, "empty graph"))):  # nothing in the graph
        assert not scan_onnx(data, 0, len(data), "", Findings())
    data = onnx_model(f_msg(1, onnx_node("Relu")))
    assert scan_onnx(data, 0, len(data), "", Findings())
    data = f_varint(1, (1 << 64) - 1) + f_msg(7, f_msg(1, onnx_node("X", "com.evil")))  # ir_version -1
    findings = Findings()
    assert scan_onnx(data, 0, len(data), "", findings)
    assert [f.rule for f in findings.as_tuple()] == ["onnx-custom-op"]


@pytest.mark.parametrize("location, hostile", [
    ("weights.bin", False), ("data/weights.bin", False), ("model.onnx.data", False), ("a..b", False),
    ("../weights.bin", True), ("data/../../x", True), ("/etc/passwd", True), ("\\\\server\\share", True),
    ("C:\\Windows\\win.ini", True), ("c:x", True), ("file:///etc/passwd", True),
    ("https://attacker.invalid/w", True), ("w.bin\x00.txt", True), ("~/.ssh/id_rsa", True),
    ("data\\..\\..\\x", True),
])
def test_external_path_problem(location: str, hostile: bool) -> None:
    assert (external_path_problem(location) is not None) == hostile


# -- Keras specifics -----------------------------------------------------------------------------
def test_keras_config_that_is_not_json_is_reported_not_raised() -> None:
    for text in (b"{not json", b"[" * 100_000, b"\xff\xfe\x00", b""):
        findings = Findings()
        scan_keras_config(text, "config.json", findings)
        assert [f.rule for f in findings.as_tuple()] == ["malformed-archive"]


def test_keras_config_size_is_a_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(keras_scan, "_MAX_CONFIG_BYTES", 100)
    with pytest.raises(LimitReached):
        scan_keras_config(b" " * 101, "config.json", Findings())


def test_keras_legacy_lambda_and_function_references() -> None:
    legacy = (b'{"class_name": "Sequential", "config": {"layers": [{"class_name": "Lambda", "config": '
              b'{"function": ["4wEAAAA=", null, null], "function_type": "lambda", "module": "__main__"}},'
              b' {"class_name": "Lambda", "config": {"function": "system", "function_type": "function",'
              b' "module": "posix"}}, {"class_name": "Dense", "config": {"activation": {"module": '
              b'"builtins", "class_name": "function", "config": "relu"}}}]}}')
    findings = Findings()
    scan_keras_config(legacy, "", findings)
    got = {(f.rule, f.global_name, f.severity) for f in findings.as_tuple()}
    assert got == {("keras-lambda", "", C), ("code-execution", "posix.system", C)}


def test_hdf5_json_is_found_whatever_the_key_order() -> None:
    config = b'{"zz": 1, "config": {"layers": [{"config": {}, "class_name": "TorchModuleWrapper"}]}}'
    blob = b"\x89HDF\r\n\x1a\n" + b"\x00" * 100 + b'{"' + b"\x01" * 50 + config + b"\x00" * 8
    findings = Findings()
    assert scan_h5(blob, 0, len(blob), "", findings)
    assert [f.rule for f in findings.as_tuple()] == ["keras-pickle"]
    assert not scan_h5(blob[1:], 0, len(blob) - 1, "", Findings())
    userblock = b"#!" + b"\x00" * 1022 + blob
    assert scan_h5(userblock, 0, len(userblock), "", Findings())


def test_rule_help_covers_every_rule_reported() -> None:
    helps = KERAS_HELP | ONNX_HELP | TF_HELP
    assert not set(helps) & set(PICKLE_HELP)
    rules = {f.rule for path in FIXTURES for f in scan_path(path)[1]}
    assert rules <= set(helps) | set(PICKLE_HELP)
