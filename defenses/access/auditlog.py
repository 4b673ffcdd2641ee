"""A tamper-evident audit log: JSON lines, each chained to the one before by its SHA-256.

Every guarded request becomes one line (UTF-8, in fact pure ASCII)::

    {"seq":0,"prev":"000...000",<fields, keys sorted>,"hmac":"<hex>","sig":"<hex>"}

``seq`` counts from 0; ``prev`` is the SHA-256 (hex) of the previous line's bytes without
its line break, 64 zeros for the first. ``hmac`` (HMAC-SHA256, with ``hmac_key``) and ``sig``
(Ed25519, with ``signing_key``) are optional and cover the record's canonical bytes without
those two keys -- ``json.dumps(sort_keys=True, separators=(",", ":"), ensure_ascii=True,
allow_nan=False)`` -- after the domain tag ``b"guard audit log v1\\x00"``, so neither can be
replayed as a MAC or signature over anything else made with the same key. A line is written
in exactly one form (:func:`_render`); :func:`verify_log` refuses any other spelling.

JSON escaping (``ensure_ascii``) turns a line break, any control character and every
non-ASCII character inside a field into a ``\\uXXXX`` or ``\\n`` escape, so no field value can
start a second line or forge a record.

What each layer detects, honestly:

* the bare chain detects a record edited, removed, inserted or reordered anywhere but at the
  end: the last record can be edited, and the last records cut off at a line break, unseen;
  and anyone can rewrite the log from some point on, since anyone can recompute SHA-256;
* an HMAC stops whoever lacks the key from editing records or forging new ones, the last one
  included (the key sits with the server, so a compromised server can still forge);
* a signature lets anyone check with the public key alone, and only the holder of the
  private key can forge;
* nothing inside the file can prove that its end is still there. Keep the head (the hash of
  the last line, which ``guard log verify`` prints) and the record count somewhere the server
  cannot write, and pass them as ``expect_head`` / ``expect_records``.

Appends are safe across threads and processes: each one takes a thread lock and
``flock(LOCK_EX)``, checks the file's size against the size this process left it at (the
last record's hash and seq are cached, and the tail is read again only when another writer
grew the file), and writes the line with one ``O_APPEND`` write. A file left ending in a
partial line (a crash or a full disk mid-write) is refused, never chained onto; the error
says how to cut the partial line off. Renaming the log away (rotation) is followed: the next
append starts a new file, a chain of its own from seq 0. (POSIX only: it needs ``flock``.)
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import stat
import threading
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import hmac as crypto_hmac
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from guard.errors import GuardInputError, InputFileError
from guard.limits import limit

MAX_RECORD_BYTES = 1 << 20
"""The longest line (its line break included) the log writes or reads: a bound on memory."""
ZERO_HASH = "0" * 64
RESERVED = frozenset({"seq", "prev", "hmac", "sig"})
DOMAIN = b"guard audit log v1\x00"
MIN_HMAC_KEY_BYTES = 16
_HEX64 = re.compile(r"[0-9a-f]{64}")
_HEX128 = re.compile(r"[0-9a-f]{128}")
_BLOCK = 8192


class AuditLogError(GuardInputError):
    """A log that cannot be appended to as given: not a Guard audit log, a partial last
    record, other keys than it was written with, or a file that shrank under the writer."""


class _BadRecord(ValueError):
    """One line that is not a well-formed record; the message says why (no line number)."""


@dataclass(frozen=True)
class LogCheck:
    """What :func:`verify_log` found.

    ``records``: the records that passed every check before the first bad one (all of them
    when ``ok``). ``first_bad``: the 1-based line of the first failed check (for a cut-off
    end, the line where the first missing record belongs; None when ok, or when no single
    line can be named). ``problem``: one line, None when ok. ``signed`` / ``hmac``: whether
    signatures / HMACs were checked. ``head``: the hash of the last intact line, None for an
    empty log. ``note``: what was present but not checked (HMACs or signatures without a key).
    """

    ok: bool
    records: int
    first_bad: int | None
    problem: str | None
    signed: bool
    hmac: bool
    head: str | None = None
    note: str | None = None


def canonical(value: Any) -> str:
    """The one JSON spelling the log MACs and signs (ASCII, sorted keys, no NaN)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)


def line_hash(line: bytes) -> str:
    """The chain hash of one line (its bytes without the line break)."""
    return hashlib.sha256(line).hexdigest()


def _render(seq: int, prev: str, fields_json: str, mac: str | None, sig: str | None) -> str:
    """The single form a record is written in: seq, prev, the fields, hmac, sig."""
    inner = fields_json[1:-1]
    return (f'{{"seq":{seq},"prev":"{prev}"' + (f",{inner}" if inner else "")
            + (f',"hmac":"{mac}"' if mac is not None else "")
            + (f',"sig":"{sig}"' if sig is not None else "") + "}")


def _signed_bytes(seq: int, prev: str, fields: dict[str, Any]) -> bytes:
    return DOMAIN + canonical({**fields, "seq": seq, "prev": prev}).encode("ascii")


def _mac(key: bytes, message: bytes) -> str:
    h = crypto_hmac.HMAC(key, hashes.SHA256())
    h.update(message)
    return h.finalize().hex()


def _mac_ok(key: bytes, message: bytes, tag: str) -> bool:
    h = crypto_hmac.HMAC(key, hashes.SHA256())
    h.update(message)
    try:
        h.verify(bytes.fromhex(tag))
    except InvalidSignature:
        return False
    return True


def _sig_ok(key: Ed25519PublicKey, message: bytes, sig: str) -> bool:
    try:
        key.verify(bytes.fromhex(sig), message)
    except InvalidSignature:
        return False
    return True


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _BadRecord(f"the key {key!r} appears twice")
        out[key] = value
    return out


def _refuse_constant(name: str) -> Any:
    raise _BadRecord(f"{name} is not a number JSON allows")


_DECODER = json.JSONDecoder(object_pairs_hook=_no_duplicates, parse_constant=_refuse_constant)


def _too_deep(text: str, depth: int) -> bool:
    """Nested deeper than ``depth`` (counting brackets first: most records have one)."""
    if text.count("{") + text.count("[") <= depth:
        return False
    from guard.serialization import nesting_depth

    return nesting_depth(text) > depth


def parse_record(line: bytes) -> dict[str, Any]:
    """One line (without its line break) as a record; ``_BadRecord`` unless it is exactly
    what :class:`AuditLog` writes."""
    try:
        text = line.decode("ascii")
    except UnicodeDecodeError:
        raise _BadRecord("not a Guard audit record (it holds non-ASCII bytes)") from None
    if _too_deep(text, limit("json_depth")):
        raise _BadRecord("not a Guard audit record (nested deeper than the JSON depth limit)")
    try:
        record = _DECODER.decode(text)
    except _BadRecord as exc:
        raise _BadRecord(f"not a Guard audit record ({exc})") from None
    except ValueError as exc:
        raise _BadRecord(f"not a Guard audit record (not JSON: {exc})") from None
    if not isinstance(record, dict):
        raise _BadRecord("not a Guard audit record (not a JSON object)")
    seq, prev, mac, sig = (record.get(k) for k in ("seq", "prev", "hmac", "sig"))
    if type(seq) is not int or seq < 0 or not isinstance(prev, str) or not _HEX64.fullmatch(prev):
        raise _BadRecord("not a Guard audit record (no valid seq and prev)")
    if mac is not None and not (isinstance(mac, str) and _HEX64.fullmatch(mac)):
        raise _BadRecord(f"seq {seq}: its hmac is not 64 hex digits")
    if sig is not None and not (isinstance(sig, str) and _HEX128.fullmatch(sig)):
        raise _BadRecord(f"seq {seq}: its sig is not 128 hex digits")
    fields = {k: v for k, v in record.items() if k not in RESERVED}
    if _render(seq, prev, canonical(fields), mac, sig) != text:
        raise _BadRecord(f"seq {seq}: not in the one form Guard writes (spacing, key order or "
                         "escapes changed): the record was edited")
    return record


def _fields_of(record: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if k not in RESERVED}


def _check_hmac_key(hmac_key: bytes | None) -> None:
    if hmac_key is None:
        return
    if not isinstance(hmac_key, bytes):
        raise TypeError(f"hmac_key must be bytes, got {type(hmac_key).__name__}")
    if len(hmac_key) < MIN_HMAC_KEY_BYTES:
        raise AuditLogError(f"an HMAC key must be at least {MIN_HMAC_KEY_BYTES} bytes, got {len(hmac_key)}")


_OPEN_LOGS: weakref.WeakSet[AuditLog] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    # A lock held by another thread at fork time would stay held forever in the child.
    for log in list(_OPEN_LOGS):
        log._lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


class AuditLog:
    """Append-only writer of a hash-chained audit log (see the module docstring).

    ``fsync=False`` (the default) leaves each record in the kernel's page cache: it survives
    the process crashing or being killed, not a power loss or kernel crash. ``fsync=True``
    makes each record durable before :meth:`append` returns, at the cost measured in the
    report for issue 13 (a few milliseconds per record on ordinary disks).

    Opening checks an existing file: its first and last lines must be Guard records (seq 0
    and 64 zeros first), it must not end in a partial line, and it must carry HMACs and
    signatures exactly when keys are given here (the last record's verified with them), so
    a log is never silently continued with other keys or none.
    """

    def __init__(self, path: Path, *, hmac_key: bytes | None = None,
                 signing_key: Ed25519PrivateKey | None = None, fsync: bool = False) -> None:
        _check_hmac_key(hmac_key)
        if signing_key is not None and not isinstance(signing_key, Ed25519PrivateKey):
            raise TypeError(f"signing_key must be an Ed25519PrivateKey, got {type(signing_key).__name__}")
        self.path = Path(path)
        self.fsync = fsync
        self._hmac_key = hmac_key
        self._signing_key = signing_key
        self._public_key = signing_key.public_key() if signing_key is not None else None
        self._lock = threading.Lock()
        self._fd = -1
        self._pid = os.getpid()
        self._ident = (0, 0)
        self._size = 0
        self._next_seq = 0
        self._last_hash = ZERO_HASH
        with self._lock:
            self._open()
        _OPEN_LOGS.add(self)

    def __enter__(self) -> AuditLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the file; further appends raise ValueError. Closing twice is harmless."""
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
            self._fd = -2

    def append(self, fields: dict[str, Any]) -> dict[str, Any]:
        """Write one record holding ``fields`` and return it as written (as verify reads it).

        ``fields`` must be a dict with string keys and JSON values; ``seq``, ``prev``,
        ``hmac`` and ``sig`` are the log's own. Raises TypeError or ValueError for fields that
        cannot be written, :class:`AuditLogError` when the file cannot be continued.
        """
        fields_json = self._encode(fields)
        with self._lock:
            if self._fd == -2:
                raise ValueError(f"audit log {self.path} is closed")
            self._follow()
            fcntl.flock(self._fd, fcntl.LOCK_EX)
            try:
                size = os.fstat(self._fd).st_size
                if size != self._size:
                    self._load_tail(size, first_open=False)
                record, line = self._build(fields_json)
                self._write(line)
                self._size = size + len(line)
                self._next_seq += 1
                self._last_hash = line_hash(line[:-1])
            finally:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
        return record

    @staticmethod
    def _encode(fields: dict[str, Any]) -> str:
        if not isinstance(fields, dict):
            raise TypeError(f"an audit record is a dict of fields, got {type(fields).__name__}")
        bad = [k for k in fields if not isinstance(k, str)]
        if bad:
            raise TypeError(f"audit record field names must be strings, got {bad[0]!r}")
        clash = sorted(RESERVED.intersection(fields))
        if clash:
            raise ValueError(f"audit record field {clash[0]!r} is reserved for the log itself "
                             f"(reserved: {', '.join(sorted(RESERVED))})")
        try:
            text = canonical(fields)
        except TypeError as exc:
            raise TypeError(f"audit record fields must be JSON-serialisable: {exc}") from None
        except RecursionError:
            raise ValueError("audit record fields are nested too deep to write") from None
        except ValueError as exc:  # NaN or infinity, a circular reference, a huge int
            raise ValueError(f"audit record fields cannot be written as JSON: {exc}") from None
        if _too_deep(text, limit("json_depth") - 1):
            raise ValueError("audit record fields are nested deeper than the JSON depth limit")
        if len(text) > MAX_RECORD_BYTES - 400:
            raise ValueError(f"audit record fields take {len(text)} bytes as JSON, over the "
                             f"{MAX_RECORD_BYTES - 400}-byte limit of one record")
        return text

    def _build(self, fields_json: str) -> tuple[dict[str, Any], bytes]:
        seq, prev = self._next_seq, self._last_hash
        fields = json.loads(fields_json)  # what verify will read back: lists for tuples, and so on
        mac = sig = None
        if self._hmac_key is not None or self._signing_key is not None:
            message = _signed_bytes(seq, prev, fields)
            if self._hmac_key is not None:
                mac = _mac(self._hmac_key, message)
            if self._signing_key is not None:
                sig = self._signing_key.sign(message).hex()
        line = (_render(seq, prev, fields_json, mac, sig) + "\n").encode("ascii")
        record: dict[str, Any] = {"seq": seq, "prev": prev, **fields}
        if mac is not None:
            record["hmac"] = mac
        if sig is not None:
            record["sig"] = sig
        return record, line

    def _write(self, line: bytes) -> None:
        done = 0
        try:
            while done < len(line):  # under flock, so a short write's rest cannot interleave
                done += os.write(self._fd, line[done:])
            if self.fsync:
                os.fdatasync(self._fd) if hasattr(os, "fdatasync") else os.fsync(self._fd)
        except OSError as exc:
            self._size = -1  # whatever reached the file, read it again before the next append
            raise AuditLogError(f"cannot write to audit log {self.path}: {exc.strerror or exc}") from None

    def _follow(self) -> None:
        """Reopen after a fork (a shared file description would share the flock) or when the
        path names another file than ours (the log was rotated)."""
        if self._fd < 0 or os.getpid() != self._pid:
            self._open()
            return
        try:
            info = os.stat(self.path)
        except FileNotFoundError:
            self._open()
            return
        except OSError:
            return
        if (info.st_dev, info.st_ino) != self._ident:
            self._open()

    def _open(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        created = not self.path.exists()
        flags = os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC | os.O_NONBLOCK
        try:
            fd = os.open(self.path, flags, 0o640)
        except OSError as exc:
            raise AuditLogError(f"cannot open audit log {self.path}: {exc.strerror or exc}") from None
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise AuditLogError(f"audit log {self.path} is not a regular file")
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                self._fd = fd
                self._load_tail(os.fstat(fd).st_size, first_open=True)
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        except BaseException:
            os.close(fd)
            self._fd = -1
            raise
        self._pid, self._ident = os.getpid(), (info.st_dev, info.st_ino)
        if created and self.fsync:
            from guard.fsio import fsync_folder

            fsync_folder(self.path.parent)

    def _load_tail(self, size: int, *, first_open: bool) -> None:
        """Set the cached seq, hash and size from the file's last line (under flock)."""
        if not first_open and 0 <= size < self._size:
            raise AuditLogError(
                f"audit log {self.path} shrank from {self._size} to {size} bytes since this process "
                "last wrote to it: records were cut off; refusing to continue its chain")
        # The cache is set only once the tail checked out: a refused tail (a partial or foreign
        # last line) leaves it unknown, so every later append reads and refuses it again
        # instead of starting a second chain inside the file.
        self._size = -1
        if size == 0:
            self._size, self._next_seq, self._last_hash = 0, 0, ZERO_HASH
            return
        last = _last_line(self._fd, size, self.path)
        if first_open:
            first = os.pread(self._fd, min(size, MAX_RECORD_BYTES), 0).split(b"\n", 1)[0]
            head = self._checked(first, "first")
            if head["seq"] != 0 or head["prev"] != ZERO_HASH:
                raise AuditLogError(f"{self.path} is not the start of a Guard audit log (its first "
                                    f"record has seq {head['seq']}); refusing to append to it")
        tail = self._checked(last, "last", verify_sig=first_open)
        self._size, self._next_seq, self._last_hash = size, tail["seq"] + 1, line_hash(last)

    def _checked(self, line: bytes, which: str, *, verify_sig: bool = True) -> dict[str, Any]:
        try:
            record = parse_record(line)
        except _BadRecord as exc:
            raise AuditLogError(f"{self.path} is not a Guard audit log, or is damaged: its {which} line is "
                                f"{exc}; refusing to append to it") from None
        for name, key, present in (("HMAC", self._hmac_key, "hmac" in record),
                                   ("signature", self._signing_key, "sig" in record)):
            if present and key is None:
                raise AuditLogError(f"{self.path} carries {name}s: open it with its {name} key "
                                    "(records without one would weaken the whole log)")
            if key is not None and not present:
                raise AuditLogError(f"{self.path} was written without {name}s: start a new log file "
                                    f"to add them")
        message = _signed_bytes(record["seq"], record["prev"], _fields_of(record))
        if self._hmac_key is not None and not _mac_ok(self._hmac_key, message, record["hmac"]):
            raise AuditLogError(f"{self.path}: the {which} record's HMAC does not match this key "
                                "(another key, or the record was edited)")
        if verify_sig and self._public_key is not None and not _sig_ok(self._public_key, message,
                                                                       record["sig"]):
            raise AuditLogError(f"{self.path}: the {which} record's signature does not verify with "
                                "this key (another key, or the record was edited)")
        return record


def _last_line(fd: int, size: int, path: Path) -> bytes:
    """The last complete line (without its break), read backwards, bounded."""
    if os.pread(fd, 1, size - 1) != b"\n":
        cut = _previous_break(fd, size, path)
        raise AuditLogError(
            f"audit log {path} ends in an incomplete record ({size - cut} bytes after the last line "
            f"break, at byte {cut}: a write cut short by a crash or a full disk). Guard will not chain "
            f"onto it: keep a copy of the file, then cut the partial record off with "
            f"`truncate -s {cut} {path}`")
    start = _previous_break(fd, size - 1, path)
    return os.pread(fd, size - 1 - start, start)


def _previous_break(fd: int, end: int, path: Path) -> int:
    """The offset just after the last line break before ``end`` (0 if none)."""
    pos = end
    while pos > 0 and end - pos <= MAX_RECORD_BYTES:
        step = min(_BLOCK, pos)
        block = os.pread(fd, step, pos - step)
        found = block.rfind(b"\n")
        if found >= 0:
            return pos - step + found + 1
        pos -= step
    if pos > 0:
        raise AuditLogError(f"{path} is not a Guard audit log: no line break in its last "
                            f"{MAX_RECORD_BYTES} bytes")
    return 0


class _Chain:
    """The running state of :func:`verify_log`: feeds one line at a time, keeps no lines."""

    def __init__(self, hmac_key: bytes | None, public_key: Ed25519PublicKey | None) -> None:
        self.hmac_key, self.public_key = hmac_key, public_key
        self.records = 0
        self.prev_hash = ZERO_HASH
        self.layout: tuple[bool, bool] | None = None  # (has hmac, has sig) of line 1

    def feed(self, lineno: int, raw: bytes, at_end: bool) -> str | None:
        """None when the line is a good next record; else the problem, without its prefix."""
        if not raw.endswith(b"\n"):
            if len(raw) >= MAX_RECORD_BYTES:
                return f"longer than {MAX_RECORD_BYTES} bytes without a line break: not a Guard audit record"
            if at_end:
                return ("incomplete (no line break at its end): a write was cut short, or the file "
                        "was cut in the middle of a record")
            return "the file ended while it was being read (cut by another process?)"
        line = raw[:-1]
        try:
            record = parse_record(line)
        except _BadRecord as exc:
            return str(exc)
        seq, expected = record["seq"], self.records
        if seq != expected:
            if lineno == 1:
                return "a log starts at seq 0: its first records were removed"
            if seq > expected:
                return (f"it follows seq {expected - 1}: {seq - expected} record(s) removed before it, "
                        "or records reordered")
            return f"it follows seq {expected - 1}: a record was inserted, repeated or reordered"
        if record["prev"] != self.prev_hash:
            if lineno == 1:
                return "prev is not 64 zeros, so this is not the start of a log"
            return (f"hash chain broken: line {lineno - 1} was edited, or records were removed, "
                    "inserted or reordered before this one")
        layout = ("hmac" in record, "sig" in record)
        if self.layout is None:
            self.layout = layout
        elif layout != self.layout:
            return ("carries an hmac or sig where line 1 does not, or lacks one line 1 has: records "
                    "were mixed in from another log, or stripped")
        message = _signed_bytes(seq, record["prev"], _fields_of(record))
        if self.hmac_key is not None:
            if not layout[0]:
                return "has no hmac, but an HMAC key was given: the log was written without one"
            if not _mac_ok(self.hmac_key, message, record["hmac"]):
                why = "the key is not the one the log was written with, or " if lineno == 1 else ""
                return f"HMAC does not match: {why}the record was edited or forged"
        if self.public_key is not None:
            if not layout[1]:
                return "has no signature, but a public key was given: the log was written unsigned"
            if not _sig_ok(self.public_key, message, record["sig"]):
                why = "the log was signed by another key, or " if lineno == 1 else ""
                return f"signature does not verify: {why}the record was edited or forged"
        self.prev_hash = line_hash(line)
        self.records += 1
        return None


def _snapshot(path: Path) -> tuple[int, int]:
    """An open descriptor of the log and its size at a record boundary: taken under a shared
    flock, so a write in progress by :class:`AuditLog` is either wholly in or wholly out."""
    from guard.fsio import NotRegularFile, open_regular

    try:
        fd, _ = open_regular(path)
    except FileNotFoundError:
        raise InputFileError(f"audit log {path}: no such file") from None
    except NotRegularFile as exc:
        raise InputFileError(f"audit log {path}: is {exc.kind}, not a regular file") from None
    except OSError as exc:
        raise InputFileError(f"audit log {path}: cannot read ({exc.strerror or exc})") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
        try:
            size = os.fstat(fd).st_size
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    except OSError:  # a file system without locks: the size as it is
        size = os.fstat(fd).st_size
    return fd, size


def verify_log(path: Path, *, hmac_key: bytes | None = None, public_key: Ed25519PublicKey | None = None,
               expect_head: str | None = None, expect_records: int | None = None) -> LogCheck:
    """Check a log line by line in bounded memory, and name the first bad record.

    Checks JSON and the one written form, seq counting from 0, the hash chain, HMACs when
    ``hmac_key`` is given and signatures when ``public_key`` is. What the file alone cannot
    show (see the module docstring): records cut off its end at a line break, or a log
    rewritten by someone able to recompute what is checked. ``expect_records`` (the log
    must hold at least that many records) and ``expect_head`` (the hash of a line you kept
    elsewhere: line ``expect_records`` when both are given, else any line) detect both.
    A missing or unreadable file, or a bad key, raises a :class:`GuardInputError`.
    """
    path = Path(path)
    _check_hmac_key(hmac_key)
    if public_key is not None and not isinstance(public_key, Ed25519PublicKey):
        raise TypeError(f"public_key must be an Ed25519PublicKey, got {type(public_key).__name__}")
    head_wanted = _expected_head(expect_head)
    if expect_records is not None and (type(expect_records) is not int or expect_records < 0):
        raise AuditLogError(f"expect_records must be a whole number >= 0, got {expect_records!r}")
    chain = _Chain(hmac_key, public_key)
    head_line: int | None = None
    fd, size = _snapshot(path)
    with os.fdopen(fd, "rb", buffering=1 << 16) as fh:
        remaining, lineno = size, 0
        while remaining > 0:
            lineno += 1
            raw = fh.readline(min(MAX_RECORD_BYTES, remaining))
            remaining -= len(raw)
            problem = chain.feed(lineno, raw, at_end=remaining == 0 and len(raw) > 0)
            if problem is not None:
                return _failed(chain, lineno, _where(lineno, raw, problem))
            if head_wanted is not None and chain.prev_hash == head_wanted and head_line is None:
                head_line = lineno
    records, last = chain.records, (chain.prev_hash if chain.records else None)
    if expect_records is not None and records < expect_records:
        return _failed(chain, records + 1, f"the log holds {records} records, {expect_records} were "
                                           "expected: records were cut off its end")
    if head_wanted is not None:
        line = expect_records if expect_records is not None and expect_records > 0 else None
        if line is not None and head_line != line:
            return _failed(chain, line, f"line {line}: its hash is not the expected head {head_wanted}: "
                                        "the log was rewritten up to there")
        if line is None and head_line is None:
            return _failed(chain, None, f"no line has the expected head hash {head_wanted}: records "
                                        "were cut off the end, or the log was rewritten")
    return LogCheck(True, records, None, None, public_key is not None, hmac_key is not None, last,
                    _note(chain, hmac_key, public_key))


def _expected_head(value: str | None) -> str | None:
    if value is None:
        return None
    head = value.strip().lower().removeprefix("sha256:")
    if not _HEX64.fullmatch(head):
        raise AuditLogError(f"an expected head is 64 hex digits (a SHA-256), got {value[:80]!r}")
    return head


def _where(lineno: int, raw: bytes, problem: str) -> str:
    """``line 7 (seq 6): problem`` when the line's seq can be read, else ``line 7: problem``."""
    match = re.match(rb'\{\s*"seq"\s*:\s*(\d{1,19})\s*[,}]', raw)
    problem = re.sub(r"^seq \d+: ", "", problem)
    return f"line {lineno} (seq {int(match.group(1))}): {problem}" if match else f"line {lineno}: {problem}"


def _failed(chain: _Chain, first_bad: int | None, problem: str) -> LogCheck:
    head = chain.prev_hash if chain.records else None
    return LogCheck(False, chain.records, first_bad, problem, chain.public_key is not None,
                    chain.hmac_key is not None, head)


def _note(chain: _Chain, hmac_key: bytes | None, public_key: Ed25519PublicKey | None) -> str | None:
    has_mac, has_sig = chain.layout or (False, False)
    pairs = (("HMACs", has_mac, hmac_key), ("signatures", has_sig, public_key))
    unchecked = [what for what, present, key in pairs if present and key is None]
    if not unchecked:
        return None
    return f"the records carry {' and '.join(unchecked)} that were not checked (no key given)"


def tail_lines(path: Path, n: int) -> list[bytes]:
    """The last ``n`` lines of a log (without their breaks), read backwards and unverified;
    at most 64 MiB are read, so fewer lines come back from a log of huge records."""
    fd, size = _snapshot(Path(path))
    try:
        pos, buf, cap = size, b"", min(n * MAX_RECORD_BYTES, 64 << 20)
        while pos > 0 and buf.count(b"\n") <= n and size - pos < cap:
            step = min(1 << 16, pos)
            pos -= step
            buf = os.pread(fd, step, pos) + buf
    finally:
        os.close(fd)
    lines = buf.split(b"\n")
    if pos > 0:
        lines = lines[1:]  # the first piece may be the end of a longer line
    if lines and lines[-1] == b"":
        lines.pop()
    return lines[-n:]
