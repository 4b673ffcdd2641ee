"""The opcode walker against hand-built payloads, including published scanner bypasses.

Every payload is built here, byte by byte or by pickling an object whose ``__reduce__`` names
the dangerous call; nothing is ever unpickled. Each test also checks that the payload's side
effect (creating a marker file) never happened.
"""

from __future__ import annotations

import os
import pickle
import struct
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from guard.defenses.scan import ScanLimits, ScanResult, Severity, rate_import, scan_bytes


@pytest.fixture()
def marker(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "pwned"
    yield path
    assert not path.exists(), "a payload ran"


class SystemCall:
    """Pickles as ``os.system(cmd)``; only ever dumped."""

    def __init__(self, cmd: str) -> None:
        self.cmd = cmd

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (self.cmd,))


def u(text: str) -> bytes:
    """SHORT_BINUNICODE."""
    raw = text.encode()
    return b"\x8c" + bytes([len(raw)]) + raw


def rules(result: ScanResult) -> set[tuple[str, str]]:
    return {(f.rule, f.global_name) for f in result.findings}


def severe(result: ScanResult) -> Severity:
    worst = result.worst
    return worst.severity if worst else Severity.INFO


@pytest.mark.parametrize("protocol", range(6))
def test_reduce_payload_flagged_in_every_protocol(protocol: int, marker: Path) -> None:
    data = pickle.dumps([1, SystemCall(f"touch {marker}")], protocol=protocol)
    result = scan_bytes(data, "payload.pkl")
    assert result.status == "unsafe"
    assert ("code-execution", f"{os.system.__module__}.system") in rules(result)
    assert "touch" in result.findings[0].detail  # the call and its argument are named


def test_names_split_across_the_memo(marker: Path) -> None:
    """Module and name memoized early, fetched by BINGET much later: defeats look-behind scanners."""
    data = (b"\x80\x04" + u("os") + b"\x94" + u("system") + b"\x94" + b"00"  # MEMOIZE twice, POP twice
            + b"]" + u("filler") + b"a0"  # unrelated work in between
            + b"h\x00h\x01\x93" + u(f"touch {marker}") + b"\x85R.")
    result = scan_bytes(data, "split.pkl")
    assert ("code-execution", "os.system") in rules(result)
    assert result.findings[0].offset == data.index(b"\x93")


def test_names_through_put_and_long_binget(marker: Path) -> None:
    data = (b"\x80\x02" + b"X\x02\x00\x00\x00osq\x07" + b"X\x06\x00\x00\x00systemr\x08\x00\x00\x00" + b"00"
            + b"h\x07j\x08\x00\x00\x00\x93" + u(f"touch {marker}") + b"\x85R.")
    assert ("code-execution", "os.system") in rules(scan_bytes(data, "put.pkl"))


def test_protocol_zero_text_pickle(marker: Path) -> None:
    data = f"cos\nsystem\n(S'touch {marker}'\ntR.".encode()
    result = scan_bytes(data, "model.bin")
    assert result.format == "pickle" and ("code-execution", "os.system") in rules(result)


def test_inst_and_obj_opcodes(marker: Path) -> None:
    inst = f"(S'touch {marker}'\nisubprocess\ncall\n.".encode()
    obj = b"(cbuiltins\nexec\n" + f"S'open(\"{marker}\", \"w\")'\n".encode() + b"o."
    assert ("code-execution", "subprocess.call") in rules(scan_bytes(inst, "a.pkl"))
    assert ("code-execution", "builtins.exec") in rules(scan_bytes(obj, "b.pkl"))


def test_python2_builtin_names() -> None:
    assert severe(scan_bytes(b"c__builtin__\neval\n(S'1'\ntR.", "py2.pkl")) is Severity.CRITICAL
    assert rate_import("__builtin__", "set") is None
    assert rate_import("copy_reg", "_reconstructor") is None


def test_name_computed_at_load_time_is_unresolved(marker: Path) -> None:
    """STACK_GLOBAL's name is str('system') computed by REDUCE: no literal for a list to match."""
    data = (b"\x80\x04" + u("os") + b"cbuiltins\nstr\n" + u("system") + b"\x85R"
            + b"\x93" + u(f"touch {marker}") + b"\x85R.")
    result = scan_bytes(data, "computed.pkl")
    assert result.worst is not None and result.worst.rule == "unresolved-import"
    assert result.worst.severity is Severity.CRITICAL


def test_getattr_chain_is_critical_and_indirect(marker: Path) -> None:
    data = (b"\x80\x04cbuiltins\ngetattr\ncbuiltins\n__import__\n" + u("os") + b"\x85R" + u("system")
            + b"\x86R" + u(f"touch {marker}") + b"\x85R.")
    found = rules(scan_bytes(data, "chain.pkl"))
    assert ("code-execution", "builtins.getattr") in found
    assert ("code-execution", "builtins.__import__") in found
    assert ("indirect-call", "builtins.getattr") in found  # the call names the import that made it


def test_dunder_attribute_path_is_critical() -> None:
    data = b"\x80\x04" + u("torch._utils") + u("_rebuild_tensor_v2.__globals__") + b"\x93."
    result = scan_bytes(data, "dunder.pkl")
    assert result.worst is not None and result.worst.rule == "attribute-traversal"


def test_ratings_follow_the_tiers() -> None:
    assert rate_import("torch._utils", "_rebuild_tensor_v2") is None
    assert rate_import("collections", "OrderedDict") is None
    assert rate_import("numpy.core.multiarray", "_reconstruct") is None
    assert rate_import("torch.jit._pickle", "build_intlist") is None
    for module, name, severity in [
        ("os", "system", Severity.CRITICAL), ("runpy", "run_path", Severity.CRITICAL),
        ("operator", "methodcaller", Severity.CRITICAL), ("pkgutil", "resolve_name", Severity.CRITICAL),
        ("torch.hub", "load", Severity.CRITICAL), ("numpy.f2py", "compile", Severity.CRITICAL),
        ("types", "CodeType", Severity.CRITICAL), ("pickle", "loads", Severity.CRITICAL),
        ("requests.api", "get", Severity.HIGH), ("shutil", "rmtree", Severity.HIGH),
        ("mypkg.model", "Net", Severity.MEDIUM), ("sklearn.svm._classes", "SVC", Severity.LOW),
    ]:
        rating = rate_import(module, name)
        assert rating is not None and rating.severity is severity, (module, name)


def test_benign_pickles_are_clean() -> None:
    import collections

    import numpy as np

    for obj in ({"a": [1, 2.5, "x", b"y", None, True]}, collections.OrderedDict(w=np.zeros(3)),
                {1, 2}, frozenset({3}), bytearray(b"abc"), (1, (2, (3,)))):
        for protocol in range(6):
            result = scan_bytes(pickle.dumps(obj, protocol=protocol), "ok.pkl")
            assert result.status == "clean", (obj, protocol, result.findings)


def test_second_pickle_in_the_same_file(marker: Path) -> None:
    """``pickle.load`` twice on one file: the payload sits in the second stream."""
    data = pickle.dumps({"benign": 1}) + pickle.dumps(SystemCall(f"touch {marker}"))
    assert severe(scan_bytes(data, "two.pkl")) is Severity.CRITICAL


def test_nested_pickle_in_a_bytes_argument(marker: Path) -> None:
    inner = pickle.dumps(SystemCall(f"touch {marker}"))
    outer = pickle.dumps({"blob": inner, "weights": [0.5] * 10})
    result = scan_bytes(outer, "outer.pkl")
    hit = [f for f in result.findings if f.rule == "code-execution"]
    assert hit and hit[0].member.startswith("<bytes at")


def test_pickle_that_loads_another(marker: Path) -> None:
    class Loads:
        def __reduce__(self) -> tuple[object, tuple[bytes]]:
            return (pickle.loads, (pickle.dumps(SystemCall(f"touch {marker}")),))

    found = rules(scan_bytes(pickle.dumps(Loads()), "loader.pkl"))
    assert ("code-execution", "_pickle.loads") in found and ("code-execution", "posix.system") in found


def test_extension_registry_opcode() -> None:
    result = scan_bytes(b"\x80\x02\x82\x01)R.", "ext.pkl")
    assert ("extension-code", "copyreg extension 1") in rules(result)


def test_truncated_after_the_payload_still_flags(marker: Path) -> None:
    """The unpickler runs REDUCE before it meets the damage, so what came first must be reported."""
    data = pickle.dumps(SystemCall(f"touch {marker}"), protocol=2)[:-1] + b"\xff"
    found = rules(scan_bytes(data, "broken.pkl"))
    assert ("code-execution", "posix.system") in found and ("malformed-pickle", "") in found


def test_declared_length_past_the_end_allocates_nothing() -> None:
    data = b"\x80\x04\x8e" + struct.pack("<Q", 1 << 62) + b"tiny"
    result = scan_bytes(data, "huge.pkl")
    assert result.status == "error" and ("malformed-pickle", "") in rules(result)


def test_memo_and_dup_bomb_is_linear() -> None:
    """Each level's list holds the previous one many times: exponential if expanded, linear here."""
    parts = [b"\x80\x04]\x94"]
    for level in range(1, 2000):
        parts.append(b"](" + b"h" + bytes([(level - 1) % 256]) + b"2" * 50 + b"e\x94")
    data = b"".join(parts) + b"."
    start = time.perf_counter()
    result = scan_bytes(data, "bomb.pkl")
    assert time.perf_counter() - start < 2.0
    assert result.status in ("clean", "error")


def test_limits_end_bombs_as_findings() -> None:
    many_memo = b"\x80\x04" + b"N\x94" * 5000 + b"."
    deep_marks = b"\x80\x04" + b"(" * 5000 + b"."
    long_stream = b"\x80\x04" + b"N0" * 200_000 + b"N."
    for data, limits in [(many_memo, ScanLimits(max_memo=1000)), (deep_marks, ScanLimits(max_stack=100)),
                         (long_stream, ScanLimits(max_opcodes=100_000))]:
        result = scan_bytes(data, "bomb.pkl", limits)
        assert result.status == "error"
        assert result.worst is not None and result.worst.rule == "resource-limit"
        assert result.worst.severity is Severity.HIGH


def test_not_a_pickle_is_not_flagged() -> None:
    assert scan_bytes(b"class Foo:\n    x = 1\n", "notes.txt").status == "clean"
    assert scan_bytes(b"\x00\x01\x02binary", "blob.raw").format == "other"
    assert scan_bytes(b"", "empty.pkl").status == "clean"


def _reference_walk(walker: object) -> int:
    """Every opcode through the dispatch table, none inline: the walker's fast path must agree."""
    from guard.defenses.scan.opcodes import DISPATCH, KIND, NONE, read_argument

    w: Any = walker
    while True:
        offset = w.pos
        op = w.data[offset]
        w.pos += 1
        if op == 0x2E:
            return int(w.pos)
        kind = KIND[op]
        arg = None if kind == NONE else read_argument(w, kind, offset)
        handler = DISPATCH[op]
        assert handler is not None
        handler(w, arg, offset)


def test_inline_opcodes_match_the_dispatch_table(marker: Path) -> None:
    import collections

    import numpy as np

    from guard.defenses.scan.context import Budget, Findings
    from guard.defenses.scan.opcodes import DISPATCH, KIND
    from guard.defenses.scan.values import brief
    from guard.defenses.scan.walker import PickleWalker

    assert all((KIND[op] >= 0) == (DISPATCH[op] is not None) for op in range(256))
    objects = [{"k": [1, -7, 70000, 2.5, "s" * 300, b"b", None, True, (1, 2, 3), {4}]},
               collections.OrderedDict(a=np.arange(4)), [SystemCall(f"touch {marker}")] * 3]
    for obj in objects:
        for protocol in range(6):
            data = pickle.dumps(obj, protocol=protocol)
            outcomes = []
            for walk in (PickleWalker.walk, _reference_walk):
                findings = Findings()
                w = PickleWalker(data, 0, len(data), budget=Budget(ScanLimits()), findings=findings,
                                 member="", base=0)
                end = walk(w)
                outcomes.append((end, [brief(v) for v in w.stack], len(w.memo), findings.as_tuple()))
            assert outcomes[0] == outcomes[1], (obj, protocol)
