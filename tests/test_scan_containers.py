"""Formats and containers: every pickle inside a file is found, however it is wrapped or damaged.

The zip tests patch bytes the way published picklescan bypasses do (encrypted flag, bad CRC,
broken central directory, an entry only a local header knows of) and check that Guard still
finds the payload and reports the damage itself. Nothing is ever loaded.
"""

from __future__ import annotations

import bz2
import gzip
import io
import os
import pickle
import struct
import tarfile
import zipfile
import zlib
from pathlib import Path

import joblib
import numpy as np
import pytest
import torch

from guard.defenses.scan import ScanLimits, ScanResult, Severity, scan_bytes, scan_file


class SystemCall:
    def __init__(self, cmd: str = "touch /tmp/guard-never") -> None:
        self.cmd = cmd

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (self.cmd,))


EVIL = pickle.dumps(SystemCall(), protocol=2)
SYSTEM = f"{os.system.__module__}.system"


def found(result: ScanResult) -> set[tuple[str, str, str]]:
    return {(f.rule, f.global_name, f.member) for f in result.findings}


def rule_set(result: ScanResult) -> set[str]:
    return {f.rule for f in result.findings}


def zip_of(entries: dict[str, bytes], method: int = zipfile.ZIP_STORED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=method) as archive:
        for name, payload in entries.items():
            archive.writestr(name, payload)
    return buf.getvalue()


def torch_bytes(obj: object, **kwargs: object) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf, **kwargs)
    return buf.getvalue()


def test_torch_zip_checkpoint_clean_and_evil() -> None:
    clean = scan_bytes(torch_bytes({"w": torch.zeros(3), "b": torch.ones(2, dtype=torch.int64)}), "m.pt")
    assert clean.format == "torch-zip" and clean.status == "clean" and not clean.findings
    evil = scan_bytes(torch_bytes({"w": torch.zeros(3), "x": SystemCall()}), "m.pt")
    assert evil.status == "unsafe"
    assert any(r == "code-execution" and m.endswith("data.pkl") for r, _, m in found(evil))


def test_every_pickle_in_a_torch_zip_not_only_data_pkl() -> None:
    buf = io.BytesIO(torch_bytes({"w": torch.zeros(3)}))
    with zipfile.ZipFile(buf, "a") as archive:
        archive.writestr("archive/extra/sidecar.bin", EVIL)
    result = scan_bytes(buf.getvalue(), "m.pt")
    assert ("code-execution", SYSTEM, "archive/extra/sidecar.bin") in found(result)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_whole_module_and_torchscript() -> None:
    model = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.ReLU())
    pickled = scan_bytes(torch_bytes(model), "m.pt")
    assert pickled.status == "clean" and "torch-module-types" in rule_set(pickled)
    buf = io.BytesIO()
    torch.jit.save(torch.jit.script(model), buf)
    scripted = scan_bytes(buf.getvalue(), "m.pt")
    assert scripted.format == "torchscript" and scripted.status == "clean"


def test_legacy_torch_pickle_file() -> None:
    result = scan_bytes(torch_bytes({"w": torch.zeros(3), "x": SystemCall()},
                                    _use_new_zipfile_serialization=False), "old.pt")
    assert result.format == "torch-legacy" and ("code-execution", SYSTEM, "") in found(result)
    clean = scan_bytes(torch_bytes({"w": torch.zeros(3)}, _use_new_zipfile_serialization=False), "o.pt")
    assert clean.status == "clean"


def test_legacy_torch_tar_with_pickle_after_raw_storage() -> None:
    """torch < 0.4 tar: 'storages' interleaves small pickles with raw bytes; hide one in between."""
    storages = pickle.dumps(2, protocol=2) + pickle.dumps(("0", "cpu", 4), protocol=2)
    storages += struct.pack("<q", 3) + b"\x00" * 12 + EVIL
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as archive:
        for name, payload in {"sys_info": pickle.dumps({"protocol_version": 1001}, protocol=2),
                              "storages": storages}.items():
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            archive.addfile(info, io.BytesIO(payload))
    result = scan_bytes(buf.getvalue(), "ancient.pt")
    assert result.format == "tar" and ("code-execution", SYSTEM, "storages") in found(result)


@pytest.mark.parametrize("compress", [0, "zlib", "gzip", "bz2", "xz", "lzma"])
def test_joblib_plain_and_compressed(compress: object) -> None:
    buf = io.BytesIO()
    joblib.dump({"a": np.arange(1000.0), "labels": np.array(["x", "y"]), "x": SystemCall()}, buf,
                compress=compress)
    result = scan_bytes(buf.getvalue(), "model.joblib")
    assert result.format.endswith("joblib")
    assert any(rule == "code-execution" for rule, _, _ in found(result))
    assert "malformed-pickle" not in rule_set(result)


def test_joblib_array_bytes_that_pickle_load_would_run() -> None:
    """joblib skips its array bytes; plain ``pickle.load`` runs them as opcodes. Hide a payload there."""
    buf = io.BytesIO()
    joblib.dump({"a": np.arange(100.0)}, buf)
    data = buf.getvalue()
    array = np.arange(100.0).tobytes()
    at = data.index(array)
    pad_at = data.rindex(b"ub", 0, at) + 2  # the padding-length byte follows BUILD (and SETITEMS)
    payload = b"os\nsystem\n(S'touch /tmp/guard-never'\ntR"
    padding = payload + b"N0" * ((0x63 - len(payload)) // 2)
    padding += b"N" * (0x63 - len(padding))
    crafted = data[:pad_at] + b"c" + padding + array + data[at + len(array):]
    result = scan_bytes(crafted, "model.joblib")
    assert result.format == "joblib" and ("code-execution", "os.system", "") in found(result)


def test_joblib_object_array_holds_a_nested_pickle() -> None:
    buf = io.BytesIO()
    joblib.dump({"a": np.arange(5.0), "o": np.array([1, SystemCall()], dtype=object)}, buf)
    assert any(f.rule == "code-execution" for f in scan_bytes(buf.getvalue(), "m.joblib").findings)


def test_sklearn_model_is_low_not_failing() -> None:
    from sklearn.ensemble import RandomForestClassifier

    x = np.random.default_rng(0).random((40, 3))
    model = RandomForestClassifier(n_estimators=3, random_state=0).fit(x, np.arange(40) % 2)
    buf = io.BytesIO()
    joblib.dump(model, buf)
    result = scan_bytes(buf.getvalue(), "forest.joblib")
    assert result.status == "clean" and rule_set(result) == {"sklearn-types"}
    assert not result.fails(Severity.MEDIUM)


def test_npy_and_npz_object_arrays() -> None:
    buf = io.BytesIO()
    np.save(buf, np.array([1, SystemCall()], dtype=object), allow_pickle=True)
    assert scan_bytes(buf.getvalue(), "a.npy").status == "unsafe"
    buf = io.BytesIO()
    np.save(buf, np.arange(10))
    assert scan_bytes(buf.getvalue(), "a.npy").status == "clean"
    buf = io.BytesIO()
    np.savez(buf, w=np.arange(3), o=np.array([SystemCall()], dtype=object))
    result = scan_bytes(buf.getvalue(), "a.npz")
    assert ("code-execution", SYSTEM, "o.npy") in found(result)


def test_pickle_zipped_under_any_name_and_method() -> None:
    for method in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2):
        result = scan_bytes(zip_of({"docs/readme.txt": EVIL}, method), "bundle.dat")
        assert ("code-execution", SYSTEM, "docs/readme.txt") in found(result), method


def _patch_flags(data: bytes, flag: int) -> bytes:
    out = bytearray(data)
    for sig, at in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        pos = out.find(sig)
        old = struct.unpack_from("<H", out, pos + at)[0]
        struct.pack_into("<H", out, pos + at, old | flag)
    return bytes(out)


def test_zip_entry_flagged_encrypted() -> None:
    data = _patch_flags(zip_of({"archive/data.pkl": EVIL}), 0x0001)
    with pytest.raises(RuntimeError):  # Python's zipfile refuses, the published bypass
        zipfile.ZipFile(io.BytesIO(data)).read("archive/data.pkl")
    result = scan_bytes(data, "m.pt")
    assert {"zip-odd-flags", "code-execution"} <= rule_set(result)


def test_zip_bad_crc_is_a_finding_and_still_scanned() -> None:
    data = bytearray(zip_of({"archive/data.pkl": EVIL}))
    for sig, at in ((b"PK\x03\x04", 14), (b"PK\x01\x02", 16)):
        pos = data.find(sig)
        struct.pack_into("<I", data, pos + at, 0xDEADBEEF)
    result = scan_bytes(bytes(data), "m.pt")
    assert {"zip-crc-mismatch", "code-execution"} <= rule_set(result)
    assert result.worst is not None and result.worst.severity is Severity.CRITICAL


def test_zip_without_central_directory() -> None:
    data = zip_of({"a.txt": b"hello", "archive/data.pkl": EVIL})
    broken = data[: data.find(b"PK\x01\x02")]
    result = scan_bytes(broken, "m.pt")
    assert {"zip-corrupt", "code-execution"} <= rule_set(result)


def test_zip_entry_hidden_from_the_central_directory() -> None:
    hidden = zip_of({"payload.pkl": EVIL})
    local_part = hidden[: hidden.find(b"PK\x01\x02")]
    visible = zip_of({"weights.txt": b"0123456789"})
    cut = visible.find(b"PK\x01\x02")
    # Splice the hidden entry after the visible one and shift the central directory offset.
    data = bytearray(visible[:cut] + local_part + visible[cut:])
    eocd = data.rfind(b"PK\x05\x06")
    struct.pack_into("<I", data, eocd + 16, cut + len(local_part))
    assert zipfile.ZipFile(io.BytesIO(bytes(data))).namelist() == ["weights.txt"]
    result = scan_bytes(bytes(data), "m.zip")
    assert {"zip-hidden-entry", "code-execution"} <= rule_set(result)


def test_zip_duplicate_names() -> None:
    buf = io.BytesIO()
    with pytest.warns(UserWarning), zipfile.ZipFile(buf, "w") as archive:
        archive.writestr("archive/data.pkl", pickle.dumps({"ok": 1}))
        archive.writestr("archive/data.pkl", EVIL)
    assert {"zip-duplicate-name", "code-execution"} <= rule_set(scan_bytes(buf.getvalue(), "m.pt"))


def test_pickle_zip_polyglot() -> None:
    data = EVIL + zip_of({"weights.txt": b"0123456789", "inner.pkl": EVIL})
    result = scan_bytes(data, "model.pkl")
    members = {m for r, _, m in found(result) if r == "code-execution"}
    assert members == {"", "inner.pkl"} and "polyglot-file" in rule_set(result)


def test_nested_archives() -> None:
    inner_zip = zip_of({"deep/model.pkl": EVIL}, zipfile.ZIP_DEFLATED)
    tar_buf = io.BytesIO()
    with tarfile.open(fileobj=tar_buf, mode="w") as archive:
        info = tarfile.TarInfo("bundle/inner.zip")
        info.size = len(inner_zip)
        archive.addfile(info, io.BytesIO(inner_zip))
    outer = zip_of({"release.tar.gz": gzip.compress(tar_buf.getvalue())})
    result = scan_bytes(outer, "release.zip")
    hits = [f for f in result.findings if f.rule == "code-execution"]
    assert hits and hits[0].member == "release.tar.gz/<gzip>/bundle/inner.zip/deep/model.pkl"


def test_zip_bomb_stops_at_the_cap() -> None:
    bomb = zip_of({"data.pkl": b"\x80\x04" + b"N0" * (4 << 20) + b"N."}, zipfile.ZIP_DEFLATED)
    result = scan_bytes(bomb, "bomb.zip", ScanLimits(max_member_bytes=1 << 20))
    assert result.worst is not None and result.worst.rule == "resource-limit"
    nested = bz2.compress(bz2.compress(b"\x00" * (8 << 20)))
    assert scan_bytes(nested, "x.bz2", ScanLimits(max_member_bytes=1 << 20)).status == "error"


def test_nesting_depth_is_bounded() -> None:
    data = EVIL
    for _ in range(12):
        data = zip_of({"inner.zip": data})
    result = scan_bytes(data, "deep.zip", ScanLimits(max_depth=4))
    assert "resource-limit" in rule_set(result)


def test_cloudpickle_function_is_code() -> None:
    cloudpickle = pytest.importorskip("cloudpickle")
    result = scan_bytes(cloudpickle.dumps(lambda x: x + 1), "fn.pkl")
    assert result.worst is not None and result.worst.severity is Severity.CRITICAL


def test_files_from_disk(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(2)}, str(tmp_path / "w.safetensors"))
    (tmp_path / "evil.safetensors").write_bytes(zlib.compress(EVIL))  # renamed, zlib'd pickle
    assert scan_file(tmp_path / "w.safetensors").status == "clean"
    assert scan_file(tmp_path / "evil.safetensors").status == "unsafe"
    missing = scan_file(tmp_path / "nope.pkl")
    assert missing.status == "error" and rule_set(missing) == {"scan-error"}


def test_tensor_bytes_that_parse_as_opcodes_are_not_findings() -> None:
    """Random weights sometimes read as a few opcodes (calling an int); that is no finding."""
    noise = b"K\x05K\x03R." + np.random.default_rng(0).bytes(4096)
    checkpoint = zip_of({"archive/data.pkl": pickle.dumps({"w": 1}, protocol=2),
                         "archive/data/0": noise, "archive/data/1": b"\x80\x02" + noise})
    assert scan_bytes(checkpoint, "m.pt").findings == ()
    legacy = torch_bytes({"w": torch.zeros(3)}, _use_new_zipfile_serialization=False)
    assert scan_bytes(legacy + b"\x80\x02" + noise, "old.pt").findings == ()
