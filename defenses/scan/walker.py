"""Walk a pickle's opcodes over a buffer, simulating the stack and memo; never unpickle.

The unpickler is a stack machine: an import happens at ``GLOBAL``/``INST`` and at
``STACK_GLOBAL``, whose module and name are whatever strings are on the stack (pushed
directly, or fetched from the memo by ``BINGET`` after a ``MEMOIZE`` long before). Scanners
that look at the previous opcode or two are bypassed by routing the names through the memo,
so this walker keeps the stack, the mark stack and the memo as the unpickler does, with the
symbolic values of :mod:`guard.defenses.scan.values`. Arguments are read straight from the
buffer: a declared length past the end is a truncation, never an allocation, and a tensor's
bytes are skipped, not copied.

joblib writes raw numpy array bytes in the middle of the opcode stream, after ``BUILD`` of a
``NumpyArrayWrapper``; in joblib mode the walker sizes them from the wrapper's shape and dtype
and skips them (object arrays are a nested pickle there, walked in turn).
"""

from __future__ import annotations

import codecs
import warnings
from collections.abc import Callable
from typing import Any

from guard.defenses.scan import joblib_arrays
from guard.defenses.scan.context import Budget, Findings, LimitReached, MalformedPickle
from guard.defenses.scan.opcodes import DISPATCH, I32, KIND, NONE, U32, read_argument
from guard.defenses.scan.results import Severity
from guard.defenses.scan.rules import CALLS_ARGUMENT, is_nested_loader, rate_import
from guard.defenses.scan.values import (
    NUMBER,
    OPAQUE,
    Blob,
    Call,
    Global,
    LongText,
    Mapping,
    Seq,
    Token,
    brief,
)

__all__ = ["BlobHook", "PickleWalker"]

BlobHook = Callable[[Any, int, int, int], None]
"""Called with (buffer, start, length, opcode offset) for each bytes argument, to look inside it."""

_KEEP_CHARS = 1024
_MAX_LINE = 1 << 20
_BATCH = range(1 << 16)
_RECONSTRUCTORS = frozenset({"copyreg._reconstructor", "copyreg.__newobj__", "copy_reg._reconstructor"})
UNKNOWN = Token("unknown")


def _untrusted_origin(value: Any, depth: int = 8) -> str | None:
    """The import outside the allowlist that made ``value`` (so it may be a callable: a
    ``functools.partial``, an object with ``__call__``), or None: values that only allowlisted
    constructors made (tensors, containers, numbers) cannot be called."""
    while isinstance(value, Call) and depth > 0:
        func = value.func
        if isinstance(func, Global):
            rating = rate_import(func.module, func.name)
            # low: scikit-learn and torch module classes, whose instances are no callables
            return func.full if rating is not None and rating.severity >= Severity.MEDIUM else None
        value, depth = func, depth - 1
    if isinstance(value, Call) or value is UNKNOWN:
        return "<computed at load time>"
    return None


class PickleWalker:
    """One pickle stream in ``data[start:end]``; findings name ``member``, offsets from ``base``.

    ``data`` is ``bytes``, ``bytearray`` or ``mmap`` (slices must have ``.decode``), never a
    ``memoryview``.
    """

    def __init__(self, data: Any, start: int, end: int, *, budget: Budget, findings: Findings,
                 member: str, base: int, joblib: bool = False, on_blob: BlobHook | None = None,
                 depth: int = 0) -> None:
        self.data, self.pos, self.end = data, start, end
        self.budget, self.findings, self.member, self.base = budget, findings, member, base
        self.joblib, self.on_blob, self.depth = joblib, on_blob, depth
        self.stack: list[Any] = []
        self.metastack: list[list[Any]] = []
        self.memo: dict[int, Any] = {}
        self.imports = 0
        self.wrappers = 0
        self.limits = budget.limits

    # -- reporting ---------------------------------------------------------------------------
    def report(self, severity: Severity, rule: str, name: str, detail: str, offset: int) -> None:
        self.findings.report(severity, rule, name, detail, offset - self.base, self.member)

    def import_global(self, module: str, name: str, offset: int, how: str) -> Global:
        self.imports += 1
        g = Global(module, name)
        rating = rate_import(module, name)
        if rating is not None:
            self.report(rating.severity, rating.rule, g.full, f"{rating.reason} ({how})", offset)
        # Most calls are allowlisted rebuilds (a tensor, an array): those need no closer look.
        g.special = rating is not None or g.full in _RECONSTRUCTORS or g.full in CALLS_ARGUMENT or (
            joblib_arrays.evaluates(g) or is_nested_loader(module, name))
        return g

    def call(self, func: Any, args: Any, offset: int, op: str) -> Any:
        if type(func) is Global and not func.special:
            return Call(func, args)
        if isinstance(func, Global):
            if func.full in _RECONSTRUCTORS and isinstance(args, Seq) and args.items:
                first = args.items[0]
                if isinstance(first, Global):
                    return Call(first, args)
            known = joblib_arrays.evaluate(self, func, args, offset)
            if known is not None:
                return known
            if is_nested_loader(func.module, func.name) and isinstance(args, Seq) and not (
                    args.items and isinstance(args.items[0], Blob)):
                self.report(Severity.HIGH, "nested-loader", func.full,
                            f"{op} hands {func.full} bytes computed at load time, which the scan "
                            "cannot read", offset)
            through = CALLS_ARGUMENT.get(func.full)
            if through is not None and isinstance(args, Seq) and len(args.items) > through:
                self.passed_callable(func, args.items[through], offset)
            if self.findings.awaits_call(func.full, self.member):
                self.findings.note_call(func.full, self.member, f"called by {op} with {brief(args)}")
        elif func is not UNKNOWN:
            origin = _untrusted_origin(func)
            if origin is not None:
                self.report(Severity.HIGH, "indirect-call", origin,
                            f"{op} calls {brief(func)}, a value computed at load time by {origin}, "
                            "outside the allowlist", offset)
            else:  # a str, a tensor, a plain container: calling it fails (TypeError) at load
                self.report(Severity.MEDIUM, "indirect-call", "",
                            f"{op} calls {brief(func)}, which is not callable: the file is broken "
                            "or crafted", offset)
        return Call(func, args)

    def passed_callable(self, func: Global, arg: Any, offset: int) -> None:
        """An allowlisted rebuild that calls its argument must be handed an allowlisted callable."""
        if isinstance(arg, Global):
            rating = rate_import(arg.module, arg.name)
            if rating is None:
                return
            severity = max(rating.severity, Severity.HIGH)
            self.report(severity, "call-through", arg.full,
                        f"{func.full} calls its argument {arg.full} ({rating.reason})", offset)
        elif isinstance(arg, Call):
            self.report(Severity.HIGH, "call-through", "",
                        f"{func.full} calls {brief(arg)}, a value computed at load time", offset)

    # -- stack helpers -----------------------------------------------------------------------
    def pop(self, offset: int) -> Any:
        if not self.stack:
            raise MalformedPickle("stack underflow", offset - self.base)
        return self.stack.pop()

    def pop_mark(self, offset: int) -> list[Any]:
        if not self.metastack:
            raise MalformedPickle("MARK expected", offset - self.base)
        items = self.stack
        self.stack = self.metastack.pop()
        return items

    def top(self, offset: int) -> Any:
        if not self.stack:
            raise MalformedPickle("stack underflow", offset - self.base)
        return self.stack[-1]

    def seq(self, kind: str, items: list[Any]) -> Seq:
        return Seq(kind, items[: self.limits.tracked_items], len(items))

    def text(self, start: int, n: int, op: int) -> Any:
        if n > _KEEP_CHARS:
            return LongText(n, start if op not in (0x54, 0x55) else -1)
        raw = bytes(self.data[start:start + n])
        if op in (0x54, 0x55):  # BINSTRING, SHORT_BINSTRING: Python 2 str, bytes-like
            return raw.decode("latin-1")
        return raw.decode("utf-8", "surrogatepass")

    def line(self, offset: int) -> bytes | None:
        """A newline-terminated argument; None for one too long to keep (over 1 MiB)."""
        nl = self.data.find(b"\n", self.pos, self.end)
        if nl < 0:
            raise MalformedPickle("truncated line argument", offset - self.base)
        line = bytes(self.data[self.pos:nl]) if nl - self.pos <= _MAX_LINE else None
        self.pos = nl + 1
        return line

    # -- the loop ----------------------------------------------------------------------------
    def walk(self) -> int:
        """Follow opcodes to ``STOP``; returns the offset just after it.

        The opcodes that make up nearly every real pickle (memo traffic, short strings, ints,
        floats, marks, tuples, list and dict fills) run inline here; the rest go through
        :meth:`_argument` and :meth:`_step`, which handle every opcode the same way.
        """
        data, end, memo, metastack = self.data, self.end, self.memo, self.metastack
        max_memo, tracked = self.limits.max_memo, self.limits.tracked_items
        max_stack, call, number = self.limits.max_stack, self.call, NUMBER
        pos, stack, done = self.pos, self.stack, -1
        offset = pos
        try:
            while True:
                self.budget.charge_opcodes(done + 1)
                for done in _BATCH:  # the budget is charged once per batch of opcodes
                    if pos >= end:
                        raise MalformedPickle("pickle ends without STOP", pos - self.base)
                    offset = pos
                    op = data[pos]
                    pos += 1
                    # A three-way split on the opcode's value, then each group ordered by how
                    # often its opcodes occur in real checkpoints (torch writes protocol 2, pickle
                    # and joblib protocol 4/5). One-byte arguments are read without a bounds check:
                    # past the stream's end they read at most a byte or two of what follows, and
                    # the loop stops at the next opcode.
                    if op >= 0x80:
                        if op == 0x94:  # MEMOIZE
                            n = len(memo)
                            if n >= max_memo:
                                raise LimitReached(f"more than {max_memo} memo entries")
                            memo[n] = stack[-1]
                        elif op == 0x8C:  # SHORT_BINUNICODE
                            n = data[pos]
                            if pos + 1 + n > end:
                                raise MalformedPickle("truncated argument", offset - self.base)
                            stack.append(data[pos + 1:pos + 1 + n].decode("utf-8", "surrogatepass"))
                            pos += 1 + n
                        elif op <= 0x87 and op >= 0x85:  # TUPLE1-3
                            n = op - 0x84
                            if len(stack) < n:
                                raise IndexError
                            items = stack[-n:]
                            del stack[-n:]
                            stack.append(Seq("tuple", items, n))
                        elif op == 0x89 or op == 0x88:  # NEWFALSE, NEWTRUE
                            stack.append(op == 0x88)
                        else:
                            pos, stack = self.step(op, pos, stack, offset)
                    elif op >= 0x5D:
                        if op == 0x72:  # LONG_BINPUT
                            if pos + 4 > end:
                                raise MalformedPickle("truncated argument", offset - self.base)
                            index = U32(data, pos)[0]
                            pos += 4
                            if len(memo) >= max_memo and index not in memo:
                                raise LimitReached(f"more than {max_memo} memo entries")
                            memo[index] = stack[-1]
                        elif op == 0x68:  # BINGET
                            stack.append(memo[data[pos]])
                            pos += 1
                        elif op == 0x71:  # BINPUT
                            index = data[pos]
                            pos += 1
                            if len(memo) >= max_memo and index not in memo:
                                raise LimitReached(f"more than {max_memo} memo entries")
                            memo[index] = stack[-1]
                        elif op == 0x74:  # TUPLE
                            items = stack
                            stack = metastack.pop()
                            stack.append(Seq("tuple", items[:tracked], len(items)))
                        elif op == 0x5D:  # EMPTY_LIST
                            stack.append(Seq("list", [], 0))
                        elif op == 0x65 or op == 0x75:  # APPENDS, SETITEMS
                            items = stack
                            stack = metastack.pop()
                            target = stack[-1]
                            if op == 0x65:
                                if type(target) is Seq:
                                    room = tracked - len(target.items)
                                    if room > 0:
                                        target.items.extend(items[:room])
                                    target.size += len(items)
                            else:
                                if len(items) % 2:
                                    raise MalformedPickle("odd number of items for SETITEMS",
                                                          offset - self.base)
                                if type(target) is Mapping:
                                    self.fill(target, items)
                        elif op == 0x6A:  # LONG_BINGET
                            if pos + 4 > end:
                                raise MalformedPickle("truncated argument", offset - self.base)
                            stack.append(memo[U32(data, pos)[0]])
                            pos += 4
                        elif op == 0x7D:  # EMPTY_DICT
                            stack.append(Mapping())
                        else:
                            pos, stack = self.step(op, pos, stack, offset)
                    elif op == 0x4A:  # BININT
                        if pos + 4 > end:
                            raise MalformedPickle("truncated argument", offset - self.base)
                        stack.append(I32(data, pos)[0])
                        pos += 4
                    elif op == 0x4B:  # BININT1
                        stack.append(data[pos])
                        pos += 1
                    elif op == 0x28:  # MARK
                        if len(metastack) >= max_stack:
                            raise LimitReached(f"more than {max_stack} nested MARKs")
                        metastack.append(stack)
                        stack = []
                    elif op == 0x58:  # BINUNICODE (protocols 1-3 write every string this way)
                        if pos + 4 > end:
                            raise MalformedPickle("truncated argument", offset - self.base)
                        n = U32(data, pos)[0]
                        if pos + 4 + n > end:
                            raise MalformedPickle(f"declares {n} bytes past the end", offset - self.base)
                        if n > _KEEP_CHARS:
                            stack.append(LongText(n, pos + 4))
                        else:
                            stack.append(data[pos + 4:pos + 4 + n].decode("utf-8", "surrogatepass"))
                        pos += 4 + n
                    elif op == 0x52:  # REDUCE
                        args = stack.pop()
                        func = stack.pop()
                        self.pos, self.stack = pos, stack
                        stack.append(call(func, args, offset, "REDUCE"))
                        pos = self.pos
                    elif op == 0x47:  # BINFLOAT
                        if pos + 8 > end:
                            raise MalformedPickle("truncated argument", offset - self.base)
                        stack.append(number)
                        pos += 8
                    elif op == 0x4D:  # BININT2
                        stack.append(data[pos] | data[pos + 1] << 8)
                        pos += 2
                    elif op == 0x29:  # EMPTY_TUPLE
                        stack.append(Seq("tuple", [], 0))
                    elif op == 0x51:  # BINPERSID: torch's storages
                        stack.pop()
                        stack.append(OPAQUE)
                    elif op == 0x4E:  # NONE
                        stack.append(None)
                    elif op == 0x2E:  # STOP
                        if not stack:  # the unpickler pops its result here
                            raise MalformedPickle("STOP with an empty stack", offset - self.base)
                        self.pos, self.stack = pos, stack
                        self.budget.charge_opcodes(done + 1)
                        return pos
                    else:
                        pos, stack = self.step(op, pos, stack, offset)
        except IndexError:
            raise MalformedPickle("stack underflow or MARK expected", offset - self.base) from None
        except KeyError as exc:
            raise MalformedPickle(f"memo key {exc} not defined", offset - self.base) from None
        except UnicodeDecodeError:  # the unpickler stops here too
            raise MalformedPickle("string argument is not valid UTF-8", offset - self.base) from None

    def step(self, op: int, pos: int, stack: list[Any], offset: int) -> tuple[int, list[Any]]:
        """Any opcode the loop does not inline: read its argument, run its handler."""
        kind = KIND[op]
        if kind < 0:
            raise MalformedPickle(f"invalid opcode 0x{op:02x}", offset - self.base)
        self.pos, self.stack = pos, stack
        arg = None if kind == NONE else read_argument(self, kind, offset)
        DISPATCH[op](self, arg, offset)  # type: ignore[misc]  # KIND >= 0: a handler exists
        return self.pos, self.stack

    # -- pieces ------------------------------------------------------------------------------
    def fill(self, mapping: Mapping, items: list[Any]) -> None:
        room = self.limits.tracked_items - len(mapping.items)
        for i in range(0, min(len(items) - 1, 2 * room), 2):
            key = items[i]
            if isinstance(key, str | int):
                mapping.items[key] = items[i + 1]
        mapping.size += len(items) // 2

    def memo_put(self, index: int, offset: int) -> None:
        if len(self.memo) >= self.limits.max_memo and index not in self.memo:
            raise LimitReached(f"more than {self.limits.max_memo} memo entries")
        self.memo[index] = self.top(offset)

    def memo_get(self, index: int, offset: int) -> None:
        try:
            self.stack.append(self.memo[index])
        except KeyError:
            raise MalformedPickle(f"memo key {index} not defined", offset - self.base) from None

    def blob(self, start: int, length: int, offset: int) -> None:
        if self.on_blob is not None and length >= 8:
            self.on_blob(self.data, start, length, offset - self.base)

    def blob_value(self, value: bytes, offset: int) -> None:
        """Look inside bytes computed at load time (not a span of the stream)."""
        if self.on_blob is not None and len(value) >= 8:
            self.on_blob(value, 0, len(value), offset - self.base)

    def decode_name(self, raw: bytes | None, offset: int) -> str:
        if raw is None:
            raise MalformedPickle("import name longer than 1 MiB", offset - self.base)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise MalformedPickle("GLOBAL name is not UTF-8", offset - self.base) from None

    def text_line(self, op: int, raw: bytes | None, offset: int) -> Any:
        if raw is None:
            return LongText(_MAX_LINE)
        if op == 0x56:
            text = codecs.decode(raw, "raw_unicode_escape")
            return text if len(text) <= _KEEP_CHARS else LongText(len(text))
        if len(raw) < 2 or raw[0] != raw[-1] or raw[:1] not in (b"'", b'"'):
            raise MalformedPickle("STRING argument is not quoted", offset - self.base)
        with warnings.catch_warnings():  # a file's bad escapes are the loader's concern
            warnings.simplefilter("ignore")
            value, _ = codecs.escape_decode(raw[1:-1])
        self.blob_value(value, offset)  # escapes decoded: not a span of the stream, so the copy
        return value.decode("latin-1") if len(value) <= _KEEP_CHARS else LongText(len(value))

    def number(self, op: int, arg: Any, offset: int) -> Any:
        if op in (0x47, 0x46):
            return NUMBER
        if op in (0x8A, 0x8B):
            start, n = arg
            if n > 16:
                return NUMBER
            return int.from_bytes(bytes(self.data[start:start + n]), "little", signed=True)
        if arg is None:
            return NUMBER
        text = arg.strip()
        if op == 0x49 and text in (b"00", b"01"):
            return text == b"01"
        if op == 0x4C and text.endswith(b"L"):
            text = text[:-1]
        if len(text) > 40:
            return NUMBER
        try:
            return int(text)
        except ValueError:
            raise MalformedPickle("bad integer literal", offset - self.base) from None

    def stack_global(self, module: Any, name: Any, offset: int) -> Any:
        if isinstance(module, str) and isinstance(name, str):
            return self.import_global(module, name, offset, "STACK_GLOBAL")
        if any(v is None or v is NUMBER or isinstance(v, bool | int | Blob | Seq | Mapping | Global)
               for v in (module, name)):
            # Literals that are not strings: the unpickler refuses them ("STACK_GLOBAL requires str").
            raise MalformedPickle("STACK_GLOBAL operands are not strings", offset - self.base)
        self.imports += 1
        self.report(Severity.CRITICAL, "unresolved-import", f"{brief(module)}.{brief(name)}",
                     "STACK_GLOBAL names are not literal strings: computed at load time to hide the "
                     "import", offset)
        return UNKNOWN

    def build(self, inst: Any, state: Any, offset: int) -> None:
        joblib_arrays.build(self, inst, state, offset)

    def nested(self, pos: int) -> PickleWalker:
        """A walker for a pickle embedded at ``pos`` (joblib's object arrays), sharing everything."""
        return PickleWalker(self.data, pos, self.end, budget=self.budget, findings=self.findings,
                            member=self.member, base=self.base, joblib=self.joblib,
                            on_blob=self.on_blob, depth=self.depth + 1)

    def malformed(self, message: str, offset: int) -> MalformedPickle:
        return MalformedPickle(message, offset - self.base)
