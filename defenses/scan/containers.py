"""Tell a file's format by its bytes and walk every pickle inside it, however deeply nested.

Formats are told by content, never by name (a pickle renamed ``weights.safetensors`` or zipped
as ``notes.txt`` is still a pickle), and names only decide how loudly a stream that fails to
parse is reported. Containers (zip, tar, gzip/bz2/xz/zlib/lzma streams, ``.npy`` object
arrays, bytes inside a pickle) recurse up to ``ScanLimits.max_depth``; everything inflated is
counted against one budget per file, so a zip bomb ends as a ``resource-limit`` finding.
"""

from __future__ import annotations

import ast
import bz2
import io
import lzma
import re
import tarfile
import zlib
from collections.abc import Callable
from typing import Any

from guard.defenses.scan.context import Budget, Findings, LimitReached, MalformedPickle
from guard.defenses.scan.opcodes import PICKLE_START
from guard.defenses.scan.results import Severity
from guard.defenses.scan.rules import IMPORT_RULES
from guard.defenses.scan.walker import PickleWalker
from guard.defenses.scan.ziparchive import ZipEntry, has_central_directory, list_zip

PICKLE_SUFFIXES = (".pkl", ".pickle", ".joblib", ".dill", ".dat", ".data", ".pt", ".pth", ".bin",
                   ".ckpt", ".p", ".sav", ".npy")
"""Names worth opening inside an archive, whatever their first bytes."""
SURE_PICKLE_SUFFIXES = (".pkl", ".pickle", ".joblib", ".dill", ".p")
"""Names that make a stream a pickle even without a protocol header (other names also fit text,
IDL ``.sav`` files or raw data, so a protocol 0 stream under them is only tried)."""
_TORCH_LEGACY_MAGIC = b"\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19"
_MAX_TAR_MEMBERS = 100_000
_SIMPLE_DESCR = re.compile(
    r"\{'descr': '([^'\\]*)', 'fortran_order': (?:True|False), 'shape': \([0-9, ]*\), \}\s*")
_COMPRESSED_SUFFIX = re.compile(r"\.(gz|gzip|bz2|xz|lzma|z|zlib)$", re.IGNORECASE)
_ANY_DESCR = re.compile(r"'descr':\s*'([^'\\]*)'")
_OBJECT_DTYPE = re.compile(r"^[<>|=]?O\d*$")
_SEVERITY = {
    "zip-corrupt": Severity.HIGH, "zip-duplicate-name": Severity.HIGH,
    "zip-header-mismatch": Severity.HIGH, "zip-odd-flags": Severity.MEDIUM,
    "zip-hidden-entry": Severity.MEDIUM, "polyglot-file": Severity.MEDIUM,
}


def named_pickle(name: str) -> bool:
    """A name that says "pickle": inside an archive, only such entries are parsed as certain.

    Other entries (a checkpoint's tensor storages) are tried as pickles too, but random bytes
    that start like one must not turn into a parse-error or an "indirect call" finding.
    """
    lower = name.lower()
    return lower.endswith(SURE_PICKLE_SUFFIXES) or lower.rsplit("/", 1)[-1] in ("pickle", "sys_info")


def join(member: str, part: str) -> str:
    return f"{member}/{part}" if member else part


class FileScanner:
    """Scans one file's bytes into ``findings`` under ``budget``; ``scan`` returns the format."""

    def __init__(self, budget: Budget, findings: Findings) -> None:
        self.budget, self.findings = budget, findings
        self.limits = budget.limits

    def report(self, severity: Severity, rule: str, detail: str, offset: int, member: str) -> None:
        self.findings.report(severity, rule, "", detail, offset, member)

    def scan(self, data: Any, start: int, end: int, member: str, depth: int, hint: str,
             trial: bool = False) -> str:
        """Scan ``data[start:end]``; ``trial`` for bytes that only might be a file (inside a pickle)."""
        if depth > self.limits.max_depth:
            raise LimitReached(f"containers nested deeper than {self.limits.max_depth}")
        if end <= start:
            return "empty"
        head = bytes(data[start:start + 16])
        if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
            return self._zip(data, start, end, member, depth)
        if head.startswith(b"\x93NUMPY"):
            return self._npy(data, start, end, member, depth)
        if end - start >= 262 and data[start + 257:start + 262] == b"ustar":
            return self._tar(data, start, end, member, depth)
        codec = _codec(head)
        if codec is not None:
            return self._inflated(codec, data, start, end, member, depth, trial, hint)
        fmt = "other"
        if head[:1] == b"\x80" and len(head) > 1 and head[1] <= 5:
            fmt = self._pickles(data, start, end, member, depth, certain=not trial)
        elif len(head) >= 9 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") < end - start:
            fmt = "safetensors"
        elif head[0] in PICKLE_START:
            certain = not trial and named_pickle(hint)
            fmt = self._pickles(data, start, end, member, depth, certain=certain)
        if has_central_directory(data, start, end):
            self._zip(data, start, end, member, depth)
        return fmt

    # -- pickles -----------------------------------------------------------------------------
    def _pickles(self, data: Any, start: int, end: int, member: str, depth: int, *, certain: bool,
                 resync: bool = False) -> str:
        """Every pickle stream from ``start``: torch's legacy files hold five, joblib's one."""
        pos, streams, fmt = start, 0, "pickle"
        legacy = bytes(data[start:start + len(_TORCH_LEGACY_MAGIC)]) == _TORCH_LEGACY_MAGIC
        while pos < end and streams < self.limits.max_streams:
            scratch = Findings()
            walker = PickleWalker(data, pos, end, budget=self.budget, findings=scratch, member=member,
                                  base=start, joblib=True, on_blob=self._blob_hook(member, depth))
            try:
                stop = walker.walk()
            except MalformedPickle as exc:
                first = streams == 0
                if first and certain:
                    self.findings.merge(scratch)
                    self.report(Severity.MEDIUM, "malformed-pickle", f"cannot parse: {exc}", exc.offset,
                                member)
                else:
                    self._merge_trial(scratch)
                if first and not certain and len(scratch) == 0:
                    return "other"
                break
            except LimitReached:
                self.findings.merge(scratch)
                raise
            if certain and (streams == 0 or data[pos] == 0x80):
                self.findings.merge(scratch)
            else:
                self._merge_trial(scratch)
            if walker.wrappers:
                fmt = "joblib"
                self._as_plain_pickle(data, pos, end, member, depth)
            streams += 1
            pos = stop
            if pos >= end or data[pos] not in PICKLE_START:
                break
        if legacy:
            fmt, resync = "torch-legacy", True
        if resync and pos < end:
            self._resync(data, pos, end, member, depth, start)
        return fmt

    def _merge_trial(self, scratch: Findings, only_new: bool = False) -> None:
        """Keep from a walk over bytes that may not be a pickle only what chance cannot produce.

        Random tensor or text bytes parse as a few opcodes now and then, and can call an int
        (``indirect-call``) or import a garbage name (``untrusted-import``); they never spell
        ``os.system`` between newlines. So only high and critical imports are kept.
        """
        self.findings.merge(scratch, min_severity=Severity.HIGH, rules=IMPORT_RULES, only_new=only_new)

    def _as_plain_pickle(self, data: Any, start: int, end: int, member: str, depth: int) -> None:
        """joblib's raw array bytes are opcodes to ``pickle.load``; walk them as it would."""
        scratch = Findings()
        walker = PickleWalker(data, start, end, budget=self.budget, findings=scratch, member=member,
                              base=start, joblib=False, on_blob=self._blob_hook(member, depth))
        try:
            walker.walk()
        except MalformedPickle:
            pass  # expected: pickle.load fails on array bytes, after the imports merged below
        self._merge_trial(scratch, only_new=True)

    def _resync(self, data: Any, pos: int, end: int, member: str, depth: int, base: int) -> None:
        """Legacy torch files interleave pickles with raw storage bytes: find each next pickle."""
        hit = data.find(b"\x80\x02", pos, end)
        while hit >= 0:
            scratch = Findings()
            walker = PickleWalker(data, hit, end, budget=self.budget, findings=scratch, member=member,
                                  base=base, joblib=False, on_blob=self._blob_hook(member, depth))
            try:
                nxt = walker.walk()
            except MalformedPickle:
                nxt = hit + 2
            self._merge_trial(scratch)
            hit = data.find(b"\x80\x02", nxt, end)

    def _blob_hook(self, member: str, depth: int) -> Callable[[Any, int, int, int], None]:
        def look_inside(buf: Any, start: int, length: int, offset: int) -> None:
            head = bytes(buf[start:start + 8])
            if not _may_be_file(head):
                return
            inner = join(member, f"<bytes at {offset}>")
            scratch = Findings()
            nested = FileScanner(self.budget, scratch)
            fmt = nested.scan(buf, start, start + length, inner, depth + 1, "", trial=True)
            self.findings.merge(scratch)
            if fmt != "other" and len(scratch):
                self.report(Severity.INFO, "nested-file", f"bytes argument holds a {fmt} file", offset,
                            member)
        return look_inside

    # -- containers --------------------------------------------------------------------------
    def _zip(self, data: Any, start: int, end: int, member: str, depth: int) -> str:
        listing = list_zip(data, start, end)
        for rule, detail, offset in listing.problems:
            self.report(_SEVERITY.get(rule, Severity.MEDIUM), rule, detail, offset, member)
        names = [e.name for e in listing.entries]
        for entry in listing.entries:
            if entry.data_start >= 0:
                self._zip_entry(data, start, entry, member, depth)
        if any(n.endswith("/constants.pkl") for n in names) and any("/code/" in n for n in names):
            return "torchscript"
        if any(n.endswith("data.pkl") for n in names):
            return "torch-zip"
        if names and all(n.endswith(".npy") for n in names):
            return "npz"
        return "zip"

    def _zip_entry(self, data: Any, origin: int, entry: ZipEntry, member: str, depth: int) -> None:
        inner = join(member, entry.name)
        where = entry.header_offset - origin
        lo, hi = entry.data_start, entry.data_start + entry.csize
        if entry.method == 0:
            head = bytes(data[lo:min(hi, lo + 16)])
        elif entry.method in (8, 12):
            head = _peek(entry.method, data, lo, hi)
        else:
            self.report(Severity.MEDIUM, "unsupported-compression", f"{entry.name!r} uses compression "
                        f"method {entry.method}, which Guard cannot inspect", where, member)
            return
        if not _worth_a_look(head, entry.name):
            return
        if entry.method == 0:
            buf, b_lo, b_hi = data, lo, hi
        else:
            buf, _ = self._inflate("deflate" if entry.method == 8 else "bz2", data, lo, hi, inner)
            b_lo, b_hi = 0, len(buf)
        # An entry known only from its local header may defer its CRC to a data descriptor.
        deferred = entry.source != "central" and entry.flags & 0x0008
        if not deferred and zlib.crc32(memoryview(buf)[b_lo:b_hi]) != entry.crc:
            self.report(Severity.HIGH, "zip-crc-mismatch", f"{entry.name!r}: CRC-32 does not match; "
                        "readers that skip the check load what others refuse", where, member)
        self.scan(buf, b_lo, b_hi, inner, depth + 1, entry.name, trial=not named_pickle(entry.name))

    def _tar(self, data: Any, start: int, end: int, member: str, depth: int) -> str:
        try:
            with tarfile.open(fileobj=_Window(data, start, end), mode="r:") as archive:
                for count, info in enumerate(archive):
                    if count >= _MAX_TAR_MEMBERS:
                        raise LimitReached(f"tar archive with more than {_MAX_TAR_MEMBERS} members")
                    if not info.isfile():
                        continue
                    lo = start + info.offset_data
                    name = info.name
                    base = name.rsplit("/", 1)[-1]
                    if base in ("storages", "tensors"):
                        self._pickles(data, lo, lo + info.size, join(member, name), depth + 1,
                                      certain=True, resync=True)
                    else:
                        self.scan(data, lo, min(end, lo + info.size), join(member, name), depth + 1, name,
                                  trial=not named_pickle(name))
        except (tarfile.TarError, EOFError, ValueError, OSError) as exc:
            self.report(Severity.MEDIUM, "malformed-archive", f"tar archive unreadable: {exc}", 0, member)
        return "tar"

    def _npy(self, data: Any, start: int, end: int, member: str, depth: int) -> str:
        """``.npy``: an object array's data is a pickle, which ``np.load(allow_pickle=True)`` runs."""
        major = data[start + 6] if end - start > 6 else 0
        size_len = 2 if major == 1 else 4
        hdr_at = start + 8 + size_len
        if major not in (1, 2, 3) or hdr_at > end:
            self.report(Severity.MEDIUM, "malformed-archive", "npy header truncated", 0, member)
            return "numpy"
        hdr_len = int.from_bytes(bytes(data[start + 8:hdr_at]), "little")
        if hdr_at + hdr_len > end or hdr_len > 1 << 20:
            self.report(Severity.MEDIUM, "malformed-archive", "npy header truncated", 0, member)
            return "numpy"
        text = bytes(data[hdr_at:hdr_at + hdr_len]).decode("latin-1")
        simple = _SIMPLE_DESCR.fullmatch(text)  # numpy's own layout; literal_eval for anything else
        try:
            header = {"descr": simple.group(1)} if simple else ast.literal_eval(text)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            # Python 2 headers say "(1L, 2L)", which numpy still reads: take the descr alone.
            found = _ANY_DESCR.search(text)
            header = {"descr": found.group(1)} if found else None
        if not isinstance(header, dict) or "descr" not in header:
            self.report(Severity.MEDIUM, "malformed-archive", "npy header is not a dict with 'descr'", 0,
                        member)
            return "numpy"
        if _holds_objects(header["descr"]):
            self._pickles(data, hdr_at + hdr_len, end, member, depth + 1, certain=True)
        return "numpy"

    def _inflated(self, codec: str, data: Any, start: int, end: int, member: str, depth: int,
                  trial: bool, hint: str) -> str:
        if codec in ("lz4", "7z"):
            self.report(Severity.MEDIUM, "unsupported-compression", f"{codec} data: Guard cannot "
                        "look inside", 0, member)
            return codec
        lo = start
        if codec == "zfile":  # joblib < 0.10: "ZF", the length as "0x..." padded to 19, then zlib
            lo, codec = start + 21, "zlib"
            if data[lo:lo + 1] == b" ":  # joblib <= 0.8.4 padded one more
                lo += 1
        out, whole = self._inflate(codec, data, lo, end, member, loud=not trial)
        # A stream that inflates whole is real compressed data: its content is taken as a file.
        inner_name = _COMPRESSED_SUFFIX.sub("", hint)  # model.pkl.gz holds model.pkl
        inner = self.scan(out, 0, len(out), join(member, f"<{codec}>"), depth + 1, inner_name,
                          trial=not whole)
        return f"{codec}:{inner}"

    def _inflate(self, codec: str, data: Any, start: int, end: int, member: str,
                 loud: bool = True) -> tuple[bytes, bool]:
        """Decompress with a hard cap on output: a bomb stops at the cap, not at the memory limit.

        Corrupt data is inflated as far as it goes and that much is scanned, since a streaming
        loader (``pickle.load(gzip.open(...))``) runs the opcodes before it meets the damage.
        It is reported only when ``loud``: bytes that merely looked compressed are not.
        """
        cap = min(self.limits.max_member_bytes,
                  self.limits.max_inflated_bytes - self.budget.inflated) + 1
        decompress, finished = _decompressor(codec)
        out = bytearray()
        whole = True
        view = memoryview(data)[start:end] if not isinstance(data, memoryview) else data[start:end]
        chunk = 1 << 20
        try:
            for at in range(0, len(view), chunk):
                out += decompress(bytes(view[at:at + chunk]), cap - len(out))
                if len(out) >= cap:
                    break
        except (zlib.error, OSError, lzma.LZMAError, EOFError, ValueError) as exc:
            whole = False
            if loud:
                self.report(Severity.MEDIUM, "malformed-archive", f"{codec} data corrupt ({exc})", 0,
                            member)
        self.budget.charge_inflated(len(out))
        if len(out) >= cap:
            raise LimitReached(f"{member or 'stream'} inflates past {cap - 1} bytes")
        return bytes(out), whole and finished()


class _Window(io.RawIOBase):
    """A read-only file over ``data[start:end]`` for :mod:`tarfile`, without copying it."""

    def __init__(self, data: Any, start: int, end: int) -> None:
        self._data, self._start, self._end, self._pos = data, start, end, start

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos - self._start

    def seek(self, offset: int, whence: int = 0) -> int:
        base = {0: self._start, 1: self._pos, 2: self._end}[whence]
        self._pos = min(max(self._start, base + offset), self._end)
        return self._pos - self._start

    def readinto(self, buffer: Any) -> int:
        n = min(len(buffer), self._end - self._pos)
        buffer[:n] = self._data[self._pos:self._pos + n]
        self._pos += n
        return n


_CODEC_FIRST = frozenset(b"\x1fB\xfd\x5dZx\x047")


def _codec(head: bytes) -> str | None:
    if not head or head[0] not in _CODEC_FIRST:
        return None
    if head.startswith(b"\x1f\x8b"):
        return "gzip"
    if head.startswith(b"BZh"):
        return "bz2"
    if head.startswith(b"\xfd7zXZ\x00"):
        return "xz"
    if head.startswith(b"\x5d\x00\x00"):
        return "lzma"
    if head.startswith(b"ZF"):
        return "zfile"
    if len(head) > 1 and head[0] == 0x78 and (head[0] * 256 + head[1]) % 31 == 0:
        return "zlib"
    if head.startswith(b"\x04\x22\x4d\x18"):
        return "lz4"
    if head.startswith(b"7z\xbc\xaf\x27\x1c"):
        return "7z"
    return None


def _decompressor(codec: str) -> tuple[Callable[[bytes, int], bytes], Callable[[], bool]]:
    """(decompress(chunk, max_out), reached_end_of_stream) for one stream."""
    if codec in ("deflate", "zlib", "gzip"):
        wbits = {"deflate": -15, "zlib": 15, "gzip": 31}[codec]
        z = zlib.decompressobj(wbits)
        return (lambda chunk, room: z.decompress(z.unconsumed_tail + chunk, room)), (lambda: z.eof)
    if codec == "bz2":
        b = bz2.BZ2Decompressor()
        return (lambda chunk, room: b.decompress(chunk, room)), (lambda: b.eof)
    fmt = lzma.FORMAT_ALONE if codec == "lzma" else lzma.FORMAT_XZ
    x = lzma.LZMADecompressor(format=fmt)
    return (lambda chunk, room: x.decompress(chunk, room)), (lambda: x.eof)


def _peek(method: int, data: Any, lo: int, hi: int) -> bytes:
    try:
        if method == 8:
            return zlib.decompressobj(-15).decompress(bytes(data[lo:min(hi, lo + 4096)]), 16)
        return bz2.BZ2Decompressor().decompress(bytes(data[lo:min(hi, lo + 65536)]), 16)
    except (zlib.error, OSError, EOFError, ValueError):
        return b""


def _may_be_file(head: bytes) -> bool:
    return bool(head) and (
        (head[0] == 0x80 and len(head) > 1 and head[1] <= 5)
        or head[0] in PICKLE_START
        or head.startswith((b"PK\x03\x04", b"\x93NUMPY"))
        or _codec(head) not in (None, "lz4", "7z")
    )


def _worth_a_look(head: bytes, name: str) -> bool:
    return name.lower().endswith(PICKLE_SUFFIXES) or _may_be_file(head)


def _holds_objects(descr: Any) -> bool:
    if isinstance(descr, str):
        return bool(_OBJECT_DTYPE.match(descr))
    if isinstance(descr, list | tuple):
        return any(_holds_objects(part) for part in descr)
    return False
