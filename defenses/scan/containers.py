"""Tell a file's format by its bytes and walk every pickle inside it, however deeply nested.

Formats are told by content, never by name (a pickle renamed ``weights.safetensors`` or zipped
as ``notes.txt`` is still a pickle), and names only decide how loudly a stream that fails to
parse is reported. Containers (zip, tar, gzip/bz2/xz/zlib/lzma streams, ``.npy`` object
arrays, bytes inside a pickle) recurse up to ``ScanLimits.max_depth``; everything inflated is
counted against one budget per file, so a zip bomb ends as a ``resource-limit`` finding.
"""

from __future__ import annotations

import ast
import json
import lzma
import re
import tarfile
import warnings
import zlib
from collections.abc import Callable
from enum import IntEnum
from typing import Any

from guard.defenses.scan.compression import ZIP_METHODS, codec, decompressor
from guard.defenses.scan.context import Budget, Findings, LimitReached, MalformedPickle
from guard.defenses.scan.fileview import MAX_READ, FileView, NeedsMapping
from guard.defenses.scan.keras import scan_h5, scan_keras_config
from guard.defenses.scan.opcodes import KIND
from guard.defenses.scan.results import Severity
from guard.defenses.scan.rules import IMPORT_RULES
from guard.defenses.scan.savedmodel import scan_protobuf_model
from guard.defenses.scan.sniff import Window, is_safetensors, is_tar
from guard.defenses.scan.walker import PickleWalker
from guard.defenses.scan.ziparchive import ZipEntry, has_central_directory, list_zip

SURE_PICKLE_SUFFIXES = (".pkl", ".pickle", ".joblib", ".dill", ".p", ".debug_pkl")
"""Names that make a stream a pickle even without a protocol header: one that does not parse
is reported (other names also fit text, IDL ``.sav`` files or raw data)."""
TORCH_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt", ".pkl.gz")
"""Names ``torch.load`` is given: a stream under them is unpickled, but may be raw data too."""
MODEL_SUFFIXES = (".onnx", ".pb", ".h5", ".hdf5", ".keras", ".json")
"""Other model formats an archive may hold, whose first bytes are no pickle opcode."""
_MAX_JSON_CONFIG = 256 << 20


class Level(IntEnum):
    """How sure the scanner is that bytes are a pickle some loader will run.

    ``TRIAL``: only might be (a tensor storage-like entry, a bytes value): a walk that reaches
    ``STOP`` proves it is, and then every finding counts; one that fails keeps only the high
    and critical imports it met, since random bytes never spell ``os.system`` between newlines.
    ``NAMED``: a name ``torch.load`` is given (``.pt``, ``.bin``): every import counts, but a
    stream that does not parse may be raw data, so that is not reported. ``CERTAIN``: a
    protocol header or a pickle's name: a stream that does not parse is reported too.
    """

    TRIAL = 0
    NAMED = 1
    CERTAIN = 2
_TORCH_LEGACY_MAGIC = b"\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19"
_MAX_TAR_MEMBERS = 100_000
_SIMPLE_DESCR = re.compile(
    r"\{'descr': '([^'\\]*)', 'fortran_order': (?:True|False), 'shape': \([0-9, ]*\), \}\s*")
_COMPRESSED_SUFFIX = re.compile(r"\.(gz|gzip|bz2|xz|lzma|z|zlib)$", re.IGNORECASE)
_ANY_DESCR = re.compile(r"'descr':\s*'([^'\\]*)'")
_OBJECT_DTYPE = re.compile(r"^[<>|=]?O\d*$")
_SEVERITY = {
    "zip-corrupt": Severity.MEDIUM, "zip-duplicate-name": Severity.MEDIUM,
    "zip-header-mismatch": Severity.MEDIUM, "zip-odd-flags": Severity.MEDIUM,
    "zip-hidden-entry": Severity.MEDIUM, "polyglot-file": Severity.MEDIUM,
}


def named_pickle(name: str) -> bool:
    """A name that says "pickle": inside an archive, only such entries are parsed as certain.

    Other entries (a checkpoint's tensor storages) are tried as pickles too, but random bytes
    that start like one must not turn into a parse-error or an "indirect call" finding.
    """
    lower = name.lower()
    return lower.endswith(SURE_PICKLE_SUFFIXES) or lower.rsplit("/", 1)[-1] in ("pickle", "sys_info")


def pickle_level(head: bytes, hint: str, trial: bool) -> Level:
    """How certain a stream starting with ``head`` named ``hint`` is to be a pickle."""
    if trial:
        return Level.TRIAL
    if head[:1] == b"\x80" and len(head) > 1 and head[1] <= 5:
        return Level.CERTAIN
    if named_pickle(hint):
        return Level.CERTAIN
    return Level.NAMED if hint.lower().endswith(TORCH_SUFFIXES) else Level.TRIAL


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
        """Scan ``data[start:end]``; ``trial`` for bytes that only might be a file (inside a pickle).

        Containers are told by structure that is validated in full; anything else is read as
        ``pickle.load`` would read it: from its first byte, whatever that byte is.
        """
        if depth > self.limits.max_depth:
            raise LimitReached(f"containers nested deeper than {self.limits.max_depth}")
        if end <= start:
            return "empty"
        head = bytes(data[start:start + 16])
        if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
            return self._zip(data, start, end, member, depth)
        fmt = self._by_content(data, start, end, member, depth, trial, hint, head)
        if has_central_directory(data, start, end):  # a zip behind a prefix: zipfile and torch read it
            self._zip(data, start, end, member, depth)
        return fmt

    def _by_content(self, data: Any, start: int, end: int, member: str, depth: int, trial: bool,
                    hint: str, head: bytes) -> str:
        if head.startswith(b"\x93NUMPY"):
            return self._npy(data, start, end, member, depth)
        if is_tar(data, start, end):
            return self._tar(data, start, end, member, depth)
        compression = codec(head)
        if compression is not None:
            return self._inflated(compression, data, start, end, member, depth, trial, hint)
        if scan_h5(data, start, end, member, self.findings, budget=self.budget):
            return "hdf5"
        fmt = "safetensors" if is_safetensors(data, start, end) else "other"
        if KIND[head[0]] >= 0:
            level = Level.TRIAL if fmt == "safetensors" else pickle_level(head, hint, trial)
            walked = self._pickles(data, start, end, member, depth, level=level)
            if walked != "other" and fmt == "safetensors":
                self.report(Severity.MEDIUM, "polyglot-file", "a valid safetensors file that is also "
                            "a pickle: torch.load runs the pickle", 0, member)
            elif walked != "other":
                fmt = walked
        if fmt == "other":
            fmt = scan_protobuf_model(data, start, end, member, self.findings, budget=self.budget) or fmt
        if fmt == "other" and _keras_config_json(data, start, end):
            scan_keras_config(bytes(data[start:end]), member, self.findings)
            fmt = "keras-config"
        return fmt

    # -- pickles -----------------------------------------------------------------------------
    def _pickles(self, data: Any, start: int, end: int, member: str, depth: int, *, level: Level,
                 resync: bool = False) -> str:
        """Every pickle stream from ``start`` (a second ``pickle.load`` reads the next one):
        torch's legacy files hold five, joblib's one. ``other`` if the bytes are no pickle."""
        pos, streams, fmt = start, 0, "pickle"
        legacy = bytes(data[start:start + len(_TORCH_LEGACY_MAGIC)]) == _TORCH_LEGACY_MAGIC
        while pos < end and streams < self.limits.max_streams:
            scratch = Findings()
            walker = PickleWalker(data, pos, end, budget=self.budget, findings=scratch, member=member,
                                  base=start, joblib=True, on_blob=self._blob_hook(member, depth))
            first = streams == 0
            try:
                stop = walker.walk()
            except MalformedPickle as exc:
                if first and level is Level.CERTAIN:
                    self.findings.merge(scratch)
                    self.report(Severity.MEDIUM, "malformed-pickle", f"cannot parse: {exc}", exc.offset,
                                member)
                elif first and level is Level.NAMED:
                    self.findings.merge(scratch, rules=IMPORT_RULES)
                else:
                    self._merge_trial(scratch)
                if first and level is not Level.CERTAIN and len(scratch) == 0:
                    return "other"
                break
            except LimitReached:
                self.findings.merge(scratch)
                raise
            self.findings.merge(scratch)  # it reached STOP: a pickle, whatever it started with
            if walker.wrappers:
                fmt = "joblib"
                self._as_plain_pickle(data, pos, end, member, depth)
            streams += 1
            pos = stop
            if pos >= end or KIND[data[pos]] < 0:
                break
            level = Level.TRIAL  # what follows a pickle is another only if it parses as one
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
        storages = _storage_names(names)
        keras = "config.json" in names and ("metadata.json" in names or "model.weights.h5" in names)
        for entry in listing.entries:
            if entry.data_start < 0 or entry.name in storages:
                continue
            if entry.name == "schema.json":  # skops: every type it would rebuild is rated
                self._document(data, start, entry, member, _scan_skops_schema)
            elif entry.name == "config.json" and keras:  # layers and the objects it names
                self._document(data, start, entry, member, scan_keras_config)
            else:
                self._zip_entry(data, start, entry, member, depth)
        if "schema.json" in names:
            return "skops"
        if keras:
            return "keras"
        if any(n.endswith("/constants.pkl") for n in names) and any("/code/" in n for n in names):
            return "torchscript"
        if any(n.endswith("data.pkl") for n in names):
            return "torch-zip"
        if names and all(n.endswith(".npy") for n in names):
            return "npz"
        return "zip"

    def _entry_bytes(self, data: Any, origin: int, entry: ZipEntry,
                     member: str) -> tuple[Any, int, int] | None:
        """(buffer, start, end) of an entry's content, inflated under the budget; None (and a
        finding) when its compression cannot be opened."""
        lo, hi = entry.data_start, entry.data_start + entry.csize
        method = 0 if entry.flags & 0x0001 else entry.method
        if method == 0:
            if isinstance(data, FileView):  # read what is walked; the rest of the file stays on disk
                if hi - lo > MAX_READ:
                    raise NeedsMapping(entry.name)
                return data.read(lo, hi), 0, hi - lo
            return data, lo, hi
        if method not in ZIP_METHODS:
            self.report(Severity.MEDIUM, "unsupported-compression", f"{entry.name!r} uses compression "
                        f"method {entry.method}, which Guard cannot inspect", entry.header_offset - origin,
                        member)
            return None
        buf, _ = self._inflate(ZIP_METHODS[method], data, lo, hi, join(member, entry.name))
        return buf, 0, len(buf)

    def _document(self, data: Any, origin: int, entry: ZipEntry, member: str,
                  rate: Callable[[bytes, str, Findings], None]) -> None:
        """An archive's JSON description of its model (skops' ``schema.json``, Keras'
        ``config.json``), rated by the format's own scanner."""
        found = self._entry_bytes(data, origin, entry, member)
        if found is not None:
            buf, lo, hi = found
            rate(bytes(buf[lo:hi]), join(member, entry.name), self.findings)

    def _zip_entry(self, data: Any, origin: int, entry: ZipEntry, member: str, depth: int) -> None:
        inner = join(member, entry.name)
        where = entry.header_offset - origin
        lo, hi = entry.data_start, entry.data_start + entry.csize
        encrypted = bool(entry.flags & 0x0001)
        # torch ignores the encrypted flag and reads the bytes as they are: so does the scan.
        method = 0 if encrypted else entry.method
        if method != 0 and method not in ZIP_METHODS:
            self._entry_bytes(data, origin, entry, member)  # reports it
            return
        head = bytes(data[lo:min(hi, lo + 16)])
        if method != 0:
            peeked = _peek(ZIP_METHODS[method], data, lo, hi, 1 << 16)
            if peeked.startswith(b"\x93NUMPY") and not _npy_may_hold_objects(peeked):
                return  # a plain array: np.load never unpickles its data, so it need not be inflated
            head = peeked[:16]
        if not (named_pickle(entry.name) or entry.name.lower().endswith(TORCH_SUFFIXES + MODEL_SUFFIXES)
                or _may_be_file(head)):
            return
        found = self._entry_bytes(data, origin, entry, member)
        if found is None:
            return
        buf, b_lo, b_hi = found
        # An entry known only from its local header may defer its CRC to a data descriptor.
        deferred = entry.source != "central" and entry.flags & 0x0008
        if not (deferred or encrypted) and zlib.crc32(memoryview(buf)[b_lo:b_hi]) != entry.crc:
            self.report(Severity.MEDIUM, "zip-crc-mismatch", f"{entry.name!r}: CRC-32 does not match; "
                        "readers that skip the check (torch) load what others refuse", where, member)
        before = len(self.findings)
        fmt = self.scan(buf, b_lo, b_hi, inner, depth + 1, entry.name, trial=encrypted)
        if encrypted:
            if fmt != "other" or len(self.findings) > before:
                self.report(Severity.MEDIUM, "zip-odd-flags", f"{entry.name!r} is flagged encrypted, "
                            "but its bytes are a readable file: torch ignores the flag and loads it",
                            where, member)
            else:
                self.report(Severity.INFO, "zip-encrypted-entry", f"{entry.name!r} is encrypted; its "
                            "bytes are no pickle or archive a loader would read", where, member)

    def _tar(self, data: Any, start: int, end: int, member: str, depth: int) -> str:
        try:
            with tarfile.open(fileobj=Window(data, start, end), mode="r:") as archive:
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
                                      level=Level.CERTAIN, resync=True)
                    else:
                        self.scan(data, lo, min(end, lo + info.size), join(member, name), depth + 1, name,
                                  trial=not named_pickle(name))
        except (tarfile.TarError, EOFError, ValueError, OSError) as exc:
            self.report(Severity.MEDIUM, "malformed-archive", f"tar archive unreadable: {exc}", 0, member)
        return "tar"

    def _npy(self, data: Any, start: int, end: int, member: str, depth: int) -> str:
        """``.npy``: an object array's data is a pickle, which ``np.load(allow_pickle=True)`` runs."""
        header = npy_header(data, start, end)
        if isinstance(header, str):
            self.report(Severity.MEDIUM, "malformed-archive", header, 0, member)
            return "numpy"
        descr, data_at = header
        if _holds_objects(descr):
            self._pickles(data, data_at, end, member, depth + 1, level=Level.CERTAIN)
        return "numpy"

    def _inflated(self, compression: str, data: Any, start: int, end: int, member: str, depth: int,
                  trial: bool, hint: str) -> str:
        if compression == "7z":
            self.report(Severity.MEDIUM, "unsupported-compression", "7z data: Guard cannot look inside",
                        0, member)
            return compression
        lo = start
        if compression == "zfile":  # joblib < 0.10: "ZF", the length as "0x..." padded to 19, then zlib
            lo, compression = start + 21, "zlib"
            if data[lo:lo + 1] == b" ":  # joblib <= 0.8.4 padded one more
                lo += 1
        out, whole = self._inflate(compression, data, lo, end, member, loud=not trial)
        # A stream that inflates whole is real compressed data: its content is taken as a file.
        inner_name = _COMPRESSED_SUFFIX.sub("", hint)  # model.pkl.gz holds model.pkl
        inner = self.scan(out, 0, len(out), join(member, f"<{compression}>"), depth + 1, inner_name,
                          trial=not whole)
        return f"{compression}:{inner}"

    def _inflate(self, compression: str, data: Any, start: int, end: int, member: str,
                 loud: bool = True) -> tuple[bytes, bool]:
        """Decompress with a hard cap on output: a bomb stops at the cap, not at the memory limit.

        Corrupt data is inflated as far as it goes and that much is scanned, since a streaming
        loader (``pickle.load(gzip.open(...))``) runs the opcodes before it meets the damage.
        It is reported only when ``loud``: bytes that merely looked compressed are not.
        """
        cap = min(self.limits.max_member_bytes,
                  self.limits.max_inflated_bytes - self.budget.inflated) + 1
        decompress, finished = decompressor(compression)
        out = bytearray()
        whole = True
        if isinstance(data, FileView):
            view = memoryview(data.read(start, end))
        else:
            view = memoryview(data)[start:end] if not isinstance(data, memoryview) else data[start:end]
        chunk = 1 << 20
        try:
            for at in range(0, len(view), chunk):
                out += decompress(bytes(view[at:at + chunk]), cap - len(out))
                if len(out) >= cap:
                    break
            if len(out) < cap and not finished():  # output held back for want of room
                out += decompress(b"", cap - len(out))
        except (zlib.error, OSError, lzma.LZMAError, EOFError, ValueError) as exc:
            whole = False
            if loud:
                self.report(Severity.MEDIUM, "malformed-archive", f"{compression} data corrupt ({exc})",
                            0, member)
        self.budget.charge_inflated(len(out))
        if len(out) >= cap:
            raise LimitReached(f"{member or 'stream'} inflates past {cap - 1} bytes")
        return bytes(out), whole and finished()


def _scan_skops_schema(schema: bytes, member: str, findings: Findings) -> None:
    from guard.defenses.scan.skops import scan_skops_schema  # imports scikit-learn: only when needed

    scan_skops_schema(schema, member, findings)


def _peek(compression: str, data: Any, lo: int, hi: int, n: int) -> bytes:
    """The first ``n`` bytes a compressed zip entry inflates to (fewer if it is corrupt)."""
    decompress, _ = decompressor(compression)
    out = b""
    try:
        for at in range(lo, hi, 1 << 16):
            out += decompress(bytes(data[at:min(hi, at + (1 << 16))]), n - len(out))
            if len(out) >= n:
                break
    except (zlib.error, OSError, lzma.LZMAError, EOFError, ValueError):
        pass
    return out


def npy_header(data: Any, start: int, end: int) -> tuple[Any, int] | str:
    """(descr, offset of the array data) of the ``.npy`` at ``start``, or what is wrong with it."""
    major = data[start + 6] if end - start > 6 else 0
    size_len = 2 if major == 1 else 4
    hdr_at = start + 8 + size_len
    if major not in (1, 2, 3) or hdr_at > end:
        return "npy header truncated"
    hdr_len = int.from_bytes(bytes(data[start + 8:hdr_at]), "little")
    if hdr_at + hdr_len > end or hdr_len > 1 << 20:
        return "npy header truncated"
    text = bytes(data[hdr_at:hdr_at + hdr_len]).decode("latin-1")
    simple = _SIMPLE_DESCR.fullmatch(text)  # numpy's own layout; literal_eval for anything else
    try:
        header = {"descr": simple.group(1)} if simple else ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        # Python 2 headers say "(1L, 2L)", which numpy still reads: take the descr alone.
        found = _ANY_DESCR.search(text)
        header = {"descr": found.group(1)} if found else None
    if not isinstance(header, dict) or "descr" not in header:
        return "npy header is not a dict with 'descr'"
    return header["descr"], hdr_at + hdr_len


def _npy_may_hold_objects(head: bytes) -> bool:
    header = npy_header(head, 0, len(head))
    return isinstance(header, str) or _holds_objects(header[0])


def _storage_names(names: list[str]) -> frozenset[str]:
    """A torch zip's tensor storages (``<root>/data/<n>`` beside ``<root>/data.pkl``): raw bytes
    that torch copies into tensors and never unpickles, so they are never walked."""
    roots = {n[: -len("data.pkl")] for n in names if n.endswith("data.pkl")}
    return frozenset(n for n in names if any(
        n.startswith(f"{root}data/") and n[len(root) + 5:].isdigit() for root in roots))


def _keras_config_json(data: Any, start: int, end: int) -> bool:
    """A standalone JSON document shaped like a Keras model config (``class_name``, ``config``)."""
    if end - start > _MAX_JSON_CONFIG or bytes(data[start:start + 64]).lstrip()[:1] != b"{":
        return False
    try:
        doc = json.loads(bytes(data[start:end]))
    except (ValueError, RecursionError):
        return False
    return isinstance(doc, dict) and "class_name" in doc and "config" in doc


def _may_be_file(head: bytes) -> bool:
    """Bytes a loader could read as a file: a pickle opcode first, or a container's magic."""
    return bool(head) and (
        KIND[head[0]] >= 0
        or head.startswith((b"PK\x03\x04", b"\x93NUMPY"))
        or codec(head) not in (None, "7z")
    )


def _holds_objects(descr: Any) -> bool:
    """Whether ``np.load`` makes an array of this descr hold Python objects (numpy's own reading
    of the descr: ``'object'`` spelled as a word is an object array too)."""
    import numpy
    from numpy.lib.format import descr_to_dtype

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return bool(descr_to_dtype(descr).hasobject)
    except (TypeError, ValueError, KeyError, IndexError, SyntaxError, RecursionError, MemoryError,
            OverflowError, AttributeError, numpy.exceptions.DTypePromotionError):
        return _looks_like_objects(descr)  # numpy refuses it: err on the side of looking inside


def _looks_like_objects(descr: Any) -> bool:
    if isinstance(descr, str):
        return bool(_OBJECT_DTYPE.match(descr)) or "O" in descr or "object" in descr
    if isinstance(descr, list | tuple):
        return any(_looks_like_objects(part) for part in descr)
    return False
