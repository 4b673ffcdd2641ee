"""Class ``pickle-start``: valid pickles whose first byte is not PROTO (0x80).

``pickle.load`` reads from byte 0 whatever that byte is: a FRAME, a constant, a container, a
text integer. A scanner that sniffs "pickle" by a ``\\x80`` header, or by a short list of usual
first bytes, skips all of these; each is followed by an ``os.system``/``exec`` payload and
ends with exactly one value on the stack, so ``pickletools.dis`` accepts it.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from pathlib import Path

from . import _build as b
from ._common import Spec, torch_zip

Variant = tuple[str, str, Callable[[Path], bytes]]


def _sys(c: Path) -> bytes:
    return b.system_call(c)


def _exe(c: Path) -> bytes:
    return b.exec_call(c)


def _variants() -> list[Variant]:
    """(stem, what the first bytes are, builder)."""
    return [
        ("frame-first", "FRAME (0x95) as the first opcode, no PROTO; the frame holds the payload",
         lambda c: b.frame(_sys(c) + b.STOP)),
        ("frame-empty-first", "an empty FRAME (length 0) first, payload outside any frame",
         lambda c: b.frame(b"") + _sys(c) + b.STOP),
        ("newtrue-first", "NEWTRUE (0x88) then POP, then the payload",
         lambda c: b.NEWTRUE + b.POP + _sys(c) + b.STOP),
        ("newfalse-first", "NEWFALSE (0x89) then POP, then the payload",
         lambda c: b.NEWFALSE + b.POP + _exe(c) + b.STOP),
        ("none-first", "NONE ('N') then POP, then the payload",
         lambda c: b.NONE + b.POP + _sys(c) + b.STOP),
        ("empty-set-first", "EMPTY_SET (0x8f) ... ADDITEMS: the loaded value is {os.system(...)}",
         lambda c: b"\x8f" + b.MARK + _sys(c) + b"\x90" + b.STOP),
        ("frozenset-mark-first", "MARK, payload, FROZENSET (0x91): a frozenset built from a mark",
         lambda c: b.MARK + _sys(c) + b"\x91" + b.STOP),
        ("mark-tuple-first", "MARK first, payload, TUPLE: the value is (result,)",
         lambda c: b.MARK + _exe(c) + b.TUPLE + b.STOP),
        ("binbytes-first", "BINBYTES ('B') holding a fake safetensors header, POP, payload",
         lambda c: b"B" + struct.pack("<I", 24) + struct.pack("<Q", 16) + b'{"__metadata__"'
         + b"\x00" + b.POP + _sys(c) + b.STOP),
        ("short-binbytes-first", "SHORT_BINBYTES ('C') holding PK\\x03\\x04, POP, payload",
         lambda c: b"C\x08PK\x03\x04\x14\x00\x00\x00" + b.POP + _sys(c) + b.STOP),
        ("bytearray8-first", "BYTEARRAY8 (0x96, a protocol 5 opcode) first, without PROTO 5",
         lambda c: b"\x96" + struct.pack("<Q", 6) + b"\x93NUMPY" + b.POP + _exe(c) + b.STOP),
        ("binbytes8-first", "BINBYTES8 (0x8e) first", lambda c: b"\x8e" + struct.pack("<Q", 4)
         + b"7z\xbc\xaf" + b.POP + _sys(c) + b.STOP),
        ("binunicode8-first", "BINUNICODE8 (0x8d) first", lambda c: b"\x8d" + struct.pack("<Q", 5)
         + b"hello" + b.POP + _sys(c) + b.STOP),
        ("readonly-buffer-first", "SHORT_BINBYTES + READONLY_BUFFER (0x98) first",
         lambda c: b"C\x02ok\x98" + b.POP + _sys(c) + b.STOP),
        ("int-text-first", "protocol 0 INT ('I12345\\n') first",
         lambda c: b"I12345\n" + b.POP + _sys(c) + b.STOP),
        ("int-bool-text-first", "INT 'I01\\n' (protocol 0's True) first",
         lambda c: b"I01\n" + b.POP + _exe(c) + b.STOP),
        ("long-text-first", "protocol 0 LONG ('L...L\\n') first",
         lambda c: b"L123456789012345678901234567890L\n" + b.POP + _sys(c) + b.STOP),
        ("float-text-first", "protocol 0 FLOAT ('F1.5\\n') first",
         lambda c: b"F1.5\n" + b.POP + _sys(c) + b.STOP),
        ("unicode-text-first", "protocol 0 UNICODE ('V...\\n') first",
         lambda c: b"Vweights\n" + b.POP + _sys(c) + b.STOP),
        ("binint-first", "BININT ('J') first", lambda c: b"J\x01\x00\x00\x00" + b.POP + _sys(c) + b.STOP),
        ("binfloat-first", "BINFLOAT ('G') first",
         lambda c: b"G" + struct.pack(">d", 0.5) + b.POP + _exe(c) + b.STOP),
        ("long1-first", "LONG1 (0x8a) first", lambda c: b"\x8a\x02\x01\x02" + b.POP + _sys(c) + b.STOP),
        ("long4-first", "LONG4 (0x8b) first",
         lambda c: b"\x8b" + struct.pack("<i", 2) + b"\x01\x02" + b.POP + _sys(c) + b.STOP),
        ("empty-tuple-first", "EMPTY_TUPLE (')') first", lambda c: b.EMPTY_TUPLE + b.POP + _sys(c) + b.STOP),
        ("empty-dict-setitem", "EMPTY_DICT first; the payload is a dict value via SETITEM",
         lambda c: b.EMPTY_DICT + b.ustr("state_dict") + _sys(c) + b.SETITEM + b.STOP),
        ("empty-list-append", "EMPTY_LIST first; the payload is appended (APPEND)",
         lambda c: b.EMPTY_LIST + _exe(c) + b.APPEND + b.STOP),
        ("stack-global-first", "SHORT_BINUNICODE 'os' first: STACK_GLOBAL with no PROTO at all",
         lambda c: _sys(c) + b.STOP),
        ("second-proto", "PROTO 2 and a benign list, then a second PROTO 4 and FRAME mid-stream",
         lambda c: b.proto(2) + b.EMPTY_LIST + b.POP + b.proto(4)
         + b.frame(_sys(c) + b.STOP)),
        ("proto-late", "a BININT1 first, PROTO 5 only later, then the payload",
         lambda c: b"K\x07" + b.POP + b.proto(5) + _exe(c) + b.STOP),
        ("proto0-global-first", "protocol 0 GLOBAL ('c') first, STRING argument, no PROTO",
         lambda c: b.system_call(c, stack=False) + b.STOP),
    ]


_EXTENSIONS = (".pkl", ".pt", ".bin", ".joblib", "", ".txt", ".pth", ".ckpt", ".npy", ".dat",
               ".safetensors", ".json")


def build(canary: Path) -> list[Spec]:
    specs: list[Spec] = []
    for i, (stem, what, make) in enumerate(_variants()):
        data = make(canary)
        b.check_pickle(data)
        ext = _EXTENSIONS[i % len(_EXTENSIONS)]
        where = f"top-level file named '{ext or '(no extension)'}'"
        loaders = ("pickle.load, joblib.load, np.load(allow_pickle=True), torch.load(file object)"
                   if ext == ".safetensors" else "pickle.load, joblib.load, np.load(allow_pickle=True), "
                   "torch.load")
        specs.append(Spec(f"{stem}-toplevel{ext}", "pickle-start", f"{what}; {where} ({loaders} run it)",
                          data))
        specs.append(Spec(f"{stem}-torchzip.pt", "pickle-start",
                          f"{what}; as archive/data.pkl of a real torch.save zip (CRCs valid)",
                          torch_zip(data)))
    return specs
