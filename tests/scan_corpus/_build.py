"""Byte-level builders for the corpus: pickle opcodes, zip/tar/npy/lz4 containers, ZipCrypto.

Everything here assembles bytes; nothing is ever unpickled. Pickle streams are written opcode
by opcode (``pickletools`` names in comments) so that a stream can start, frame, memoize and
nest exactly as a hostile file would, which ``pickle.dumps`` never does.

``TARGETS`` names the callables the payloads reach. The corpus always uses the real ones
(``os.system``, ``builtins.exec``); a developer who wants to prove that a stream really loads
can point them at a harmless function of their own and load *that* twin instead.
"""

from __future__ import annotations

import io
import pickletools
import shlex
import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

TARGETS: dict[str, tuple[str, str]] = {
    "system": ("os", "system"),  # called with one shell command
    "exec": ("builtins", "exec"),  # called with one Python source string
}

# -- payload text ----------------------------------------------------------------------------


def shell_cmd(canary: Path) -> str:
    """The shell command every shell payload runs: create the canary."""
    return f"touch {shlex.quote(str(canary))}"


def py_code(canary: Path) -> str:
    """The Python source every code payload runs: create the canary."""
    return f"open({str(canary)!r}, 'w').close()"


def py_expr(canary: Path) -> str:
    """An expression (for ``eval``-style sinks) that creates the canary."""
    return f"open({str(canary)!r}, 'w').close()"


# -- opcodes -----------------------------------------------------------------------------------

MARK = b"("
STOP = b"."
POP = b"0"
TUPLE = b"t"
TUPLE1 = b"\x85"
TUPLE2 = b"\x86"
TUPLE3 = b"\x87"
EMPTY_TUPLE = b")"
EMPTY_DICT = b"}"
EMPTY_LIST = b"]"
REDUCE = b"R"
BUILD = b"b"
NEWOBJ = b"\x81"
STACK_GLOBAL = b"\x93"
MEMOIZE = b"\x94"
SETITEM = b"s"
SETITEMS = b"u"
APPEND = b"a"
APPENDS = b"e"
NONE = b"N"
NEWTRUE = b"\x88"
NEWFALSE = b"\x89"


def proto(n: int) -> bytes:
    return b"\x80" + bytes([n])


def frame(body: bytes, declared: int | None = None) -> bytes:
    """FRAME opcode with ``body``; ``declared`` overrides the length it claims."""
    return b"\x95" + struct.pack("<Q", len(body) if declared is None else declared) + body


def ustr(text: str) -> bytes:
    """Push a str: SHORT_BINUNICODE, or BINUNICODE when long."""
    raw = text.encode("utf-8")
    if len(raw) < 256:
        return b"\x8c" + bytes([len(raw)]) + raw
    return b"X" + struct.pack("<I", len(raw)) + raw


def binstr(text: str) -> bytes:
    """Push a str the protocol 1-2 way (SHORT_BINSTRING / BINSTRING)."""
    raw = text.encode("ascii")
    if len(raw) < 256:
        return b"U" + bytes([len(raw)]) + raw
    return b"T" + struct.pack("<i", len(raw)) + raw


def textstr(text: str) -> bytes:
    """Push a str the protocol 0 way: STRING with a repr-quoted argument."""
    return b"S" + repr(text).encode("ascii") + b"\n"


def pbytes(raw: bytes) -> bytes:
    """Push bytes: SHORT_BINBYTES, BINBYTES or BINBYTES8."""
    if len(raw) < 256:
        return b"C" + bytes([len(raw)]) + raw
    if len(raw) < 1 << 32:
        return b"B" + struct.pack("<I", len(raw)) + raw
    return b"\x8e" + struct.pack("<Q", len(raw)) + raw


def pint(value: int) -> bytes:
    if 0 <= value < 256:
        return b"K" + bytes([value])
    if 0 <= value < 65536:
        return b"M" + struct.pack("<H", value)
    if -(1 << 31) <= value < 1 << 31:
        return b"J" + struct.pack("<i", value)
    raw = value.to_bytes((value.bit_length() + 8) // 8, "little", signed=True)
    return b"\x8a" + bytes([len(raw)]) + raw


def glob(module: str, name: str) -> bytes:
    """GLOBAL (text) opcode; a dotted ``name`` needs protocol 4 to resolve."""
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def sglob(module: str, name: str) -> bytes:
    """STACK_GLOBAL with both operands pushed right before it."""
    return ustr(module) + ustr(name) + STACK_GLOBAL


def target(kind: str, stack: bool = True) -> bytes:
    module, name = TARGETS[kind]
    return sglob(module, name) if stack else glob(module, name)


def tup(*items: bytes) -> bytes:
    """A tuple of already-assembled items (TUPLE1/2/3 when short, MARK ... TUPLE otherwise)."""
    if not items:
        return EMPTY_TUPLE
    if len(items) <= 3:
        return b"".join(items) + (TUPLE1, TUPLE2, TUPLE3)[len(items) - 1]
    return MARK + b"".join(items) + TUPLE


def plist(*items: bytes) -> bytes:
    return EMPTY_LIST + (MARK + b"".join(items) + APPENDS if items else b"")


def pdict(pairs: Sequence[tuple[bytes, bytes]]) -> bytes:
    return EMPTY_DICT + (MARK + b"".join(k + v for k, v in pairs) + SETITEMS if pairs else b"")


def call(fn: bytes, *args: bytes) -> bytes:
    """``fn(*args)`` via REDUCE; leaves the result on the stack."""
    return fn + tup(*args) + REDUCE


def system_call(canary: Path, stack: bool = True) -> bytes:
    """Push ``os.system("touch canary")``'s result."""
    return call(target("system", stack), ustr(shell_cmd(canary)) if stack else textstr(shell_cmd(canary)))


def exec_call(canary: Path, stack: bool = True) -> bytes:
    """Push ``builtins.exec("open(canary, 'w').close()")``'s result."""
    arg = ustr(py_code(canary)) if stack else textstr(py_code(canary))
    return call(target("exec", stack), arg)


def stream(body: bytes, protocol: int | None = 4) -> bytes:
    """A whole pickle: PROTO (unless None), ``body`` (one value), STOP."""
    return (proto(protocol) if protocol is not None else b"") + body + STOP


def check_pickle(data: bytes) -> None:
    """Walk ``data`` with pickletools.dis (never executes it); raises if it is not a pickle
    the unpickler's grammar accepts (stack and mark discipline, memo, one value at STOP)."""
    pickletools.dis(data, out=io.StringIO())


def split_pickles(data: bytes, count: int) -> list[tuple[int, int]]:
    """(start, end) of the first ``count`` consecutive pickles in ``data`` (genops only)."""
    spans: list[tuple[int, int]] = []
    buf = io.BytesIO(data)
    for _ in range(count):
        start = buf.tell()
        for op, _arg, _pos in pickletools.genops(buf):
            if op.name == "STOP":
                break
        spans.append((start, buf.tell()))
    return spans


# -- zip ---------------------------------------------------------------------------------------


@dataclass
class ZipMember:
    """One archive entry, with every field a forger may want to lie about."""

    name: str
    data: bytes
    method: int = 0  # 0 stored, 8 deflate, 12 bzip2
    flags: int = 0
    central_flags: int | None = None  # flags in the central directory (default: same)
    crc: int | None = None  # override the CRC written in both headers
    local_name: str | None = None  # name in the local header when it differs
    in_central: bool = True  # False: a local header nobody's directory lists
    align: int = 64  # torch pads data to 64 bytes with an extra field
    payload: bytes | None = None  # bytes written after the local header (default: compressed data)
    extra: bytes = field(default=b"")


def _compress(method: int, data: bytes) -> bytes:
    if method == 0:
        return data
    if method == 8:
        c = zlib.compressobj(6, zlib.DEFLATED, -15)
        return c.compress(data) + c.flush()
    if method == 12:
        import bz2

        return bz2.compress(data)
    raise ValueError(f"method {method} not supported here")


def build_zip(members: Sequence[ZipMember], *, prefix: bytes = b"", cd_offset_delta: int = 0,
              eocd_count: int | None = None, comment: bytes = b"", offset_base: int = 0) -> bytes:
    """Assemble a zip from raw records (DOS time 1980-01-01, no data descriptors).

    ``prefix`` goes before the first local header (offsets are written as if it were absent
    when ``offset_base`` is its negative length, which readers that handle prepended data
    accept); ``cd_offset_delta`` shifts the central-directory offset in the end record;
    ``eocd_count`` lies about the number of entries.
    """
    out = bytearray(prefix)
    central = bytearray()
    n_central = 0
    for m in members:
        body = m.payload if m.payload is not None else _compress(m.method, m.data)
        crc = zlib.crc32(m.data) if m.crc is None else m.crc
        lname = (m.local_name if m.local_name is not None else m.name).encode()
        offset = len(out) + offset_base
        extra = m.extra
        if m.align:
            header_end = len(out) + 30 + len(lname) + len(extra)
            pad = (-header_end) % m.align
            if pad:
                if pad < 4:
                    pad += m.align
                extra = extra + struct.pack("<HH", 0x4246, pad - 4) + b"Z" * (pad - 4)
        out += struct.pack("<IHHHHHIIIHH", 0x04034B50, 20 if m.method != 12 else 46, m.flags,
                           m.method, 0, 0x21, crc, len(body), len(m.data), len(lname), len(extra))
        out += lname + extra + body
        if m.in_central:
            cname = m.name.encode()
            cflags = m.flags if m.central_flags is None else m.central_flags
            central += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 0x031E,
                                   20 if m.method != 12 else 46, cflags, m.method, 0, 0x21, crc,
                                   len(body), len(m.data), len(cname), 0, 0, 0, 0, 0o644 << 16,
                                   offset)
            central += cname
            n_central += 1
    cd_start = len(out) + offset_base + cd_offset_delta
    out += central
    count = n_central if eocd_count is None else eocd_count
    out += struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, count, count, len(central), cd_start,
                       len(comment)) + comment
    return bytes(out)


def read_zip_members(data: bytes) -> list[tuple[str, bytes]]:
    """(name, bytes) of every entry of a well-formed zip, in order (a real torch.save output)."""
    import zipfile

    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return [(info.filename, zf.read(info)) for info in zf.infolist()]


def torch_zip_with(base: bytes, replace: dict[str, bytes], **kw: object) -> list[ZipMember]:
    """The members of a real torch.save archive, with entries replaced by suffix (``data.pkl``)."""
    members: list[ZipMember] = []
    for name, content in read_zip_members(base):
        for suffix, new in replace.items():
            if name.endswith(suffix):
                content = new
        members.append(ZipMember(name, content))
    return members


# -- ZipCrypto (traditional PKWARE encryption) ----------------------------------------------


def _crc_byte(crc: int, b: int) -> int:
    return zlib.crc32(bytes([b]), crc ^ 0xFFFFFFFF) ^ 0xFFFFFFFF


def zipcrypto_encrypt(plain: bytes, password: bytes, crc: int, salt: bytes) -> bytes:
    """Encrypt ``plain`` with ZipCrypto; ``salt`` is the 11 fixed bytes of the 12-byte header
    (the 12th is the CRC's high byte, which readers check). Deterministic, unlike ``zip -e``."""
    keys = [0x12345678, 0x23456789, 0x34567890]

    def update(c: int) -> None:
        keys[0] = _crc_byte(keys[0], c)
        keys[1] = (keys[1] + (keys[0] & 0xFF)) & 0xFFFFFFFF
        keys[1] = (keys[1] * 134775813 + 1) & 0xFFFFFFFF
        keys[2] = _crc_byte(keys[2], keys[1] >> 24)

    for c in password:
        update(c)
    out = bytearray()
    for c in salt[:11] + bytes([crc >> 24 & 0xFF]) + plain:
        temp = (keys[2] | 2) & 0xFFFF
        k = ((temp * (temp ^ 1)) >> 8) & 0xFF
        out.append(c ^ k)
        update(c)
    return bytes(out)


# -- tar (v7 and ustar headers) ----------------------------------------------------------------


def tar_member(name: str, data: bytes, *, ustar: bool = False, mtime: int = 0) -> bytes:
    """One 512-byte-aligned tar member. ``ustar=False`` writes a pre-POSIX v7 header (no magic),
    the format of torch's pre-0.4 ``tar`` checkpoints; Python's tarfile reads both."""
    header = bytearray(512)
    header[0:len(name)] = name.encode()
    header[100:108] = b"0000644\x00"
    header[108:116] = b"0000000\x00"
    header[116:124] = b"0000000\x00"
    header[124:136] = f"{len(data):011o}\x00".encode()
    header[136:148] = f"{mtime:011o}\x00".encode()
    header[148:156] = b" " * 8
    header[156:157] = b"0"
    if ustar:
        header[257:265] = b"ustar\x0000"
    checksum = sum(header)
    header[148:156] = f"{checksum:06o}\x00 ".encode()
    pad = (-len(data)) % 512
    return bytes(header) + data + b"\x00" * pad


def tar_archive(members: Sequence[tuple[str, bytes]], *, ustar: bool = False) -> bytes:
    return b"".join(tar_member(n, d, ustar=ustar) for n, d in members) + b"\x00" * 1024


# -- .npy headers ------------------------------------------------------------------------------


def npy(header: str, data: bytes, version: tuple[int, int] = (1, 0), pad: bool = True) -> bytes:
    """A .npy file: magic, version, header length, ``header`` text (padded to 64), data."""
    raw = header.encode("utf-8" if version[0] >= 3 else "latin1")
    size = 2 if version[0] == 1 else 4
    if pad:
        total = 6 + 2 + size + len(raw) + 1
        raw = raw + b" " * ((-total) % 64) + b"\n"
    length = struct.pack("<H" if size == 2 else "<I", len(raw))
    return b"\x93NUMPY" + bytes(version) + length + raw + data


# -- LZ4 frame (uncompressed blocks), for joblib's compress="lz4" ------------------------------

_P1, _P2, _P3, _P4, _P5 = 2654435761, 2246822519, 3266489917, 668265263, 374761393
_M32 = 0xFFFFFFFF


def _rotl(x: int, r: int) -> int:
    return ((x << r) | (x >> (32 - r))) & _M32


def xxh32(data: bytes, seed: int = 0) -> int:
    """xxHash32, as the LZ4 frame format uses for its header and content checksums."""
    n, i = len(data), 0
    if n >= 16:
        v = [(seed + _P1 + _P2) & _M32, (seed + _P2) & _M32, seed & _M32, (seed - _P1) & _M32]
        while i + 16 <= n:
            for j in range(4):
                lane = struct.unpack_from("<I", data, i + 4 * j)[0]
                v[j] = (_rotl((v[j] + lane * _P2) & _M32, 13) * _P1) & _M32
            i += 16
        h = (_rotl(v[0], 1) + _rotl(v[1], 7) + _rotl(v[2], 12) + _rotl(v[3], 18)) & _M32
    else:
        h = (seed + _P5) & _M32
    h = (h + n) & _M32
    while i + 4 <= n:
        h = (_rotl((h + struct.unpack_from("<I", data, i)[0] * _P3) & _M32, 17) * _P4) & _M32
        i += 4
    while i < n:
        h = (_rotl((h + data[i] * _P5) & _M32, 11) * _P1) & _M32
        i += 1
    h ^= h >> 15
    h = (h * _P2) & _M32
    h ^= h >> 13
    h = (h * _P3) & _M32
    h ^= h >> 16
    return h


def lz4_frame(data: bytes, block: int = 65536, content_checksum: bool = True) -> bytes:
    """An LZ4 frame whose blocks are all stored uncompressed (block size with its high bit set),
    which every LZ4 frame decoder accepts; no lz4 library is needed to write it."""
    flg = 0x40 | 0x20 | (0x04 if content_checksum else 0)  # version 01, independent blocks
    bd = 0x40  # 64 KiB maximum block size
    descriptor = bytes([flg, bd])
    out = bytearray(b"\x04\x22\x4d\x18" + descriptor + bytes([(xxh32(descriptor) >> 8) & 0xFF]))
    for i in range(0, len(data), block):
        chunk = data[i:i + block]
        out += struct.pack("<I", len(chunk) | 0x80000000) + chunk
    out += b"\x00\x00\x00\x00"
    if content_checksum:
        out += struct.pack("<I", xxh32(data))
    return bytes(out)
