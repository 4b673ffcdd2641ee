"""The pickle opcode table: how each opcode's argument is read, and what it does to the stack.

:class:`~guard.defenses.scan.walker.PickleWalker` runs the few opcodes that make up nearly
every real pickle inline, for speed; every opcode (those included) has a handler here, looked
up in :data:`DISPATCH`, so the semantics live in one place. Handlers mirror CPython's
``_pickle.c``: an opcode the unpickler would reject raises :class:`MalformedPickle`.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from guard.defenses.scan.context import LimitReached, MalformedPickle
from guard.defenses.scan.results import Severity
from guard.defenses.scan.values import OPAQUE, Blob, Global, Mapping, Seq

if TYPE_CHECKING:
    from guard.defenses.scan.walker import PickleWalker

U16 = struct.Struct("<H").unpack_from
I32 = struct.Struct("<i").unpack_from
U32 = struct.Struct("<I").unpack_from
U64 = struct.Struct("<Q").unpack_from

# Argument kinds.
(NONE, _U1, _U2, _I4, _U4, _U8, _F8, _LINE, _LINES2, _LEN1, _LEN4S, _LEN4, _LEN8) = range(13)
_SPEC = {
    "(": NONE, ".": NONE, "0": NONE, "1": NONE, "2": NONE, "F": _LINE, "I": _LINE,
    "J": _I4, "K": _U1, "L": _LINE, "M": _U2, "N": NONE, "P": _LINE, "Q": NONE, "R": NONE,
    "S": _LINE, "T": _LEN4S, "U": _LEN1, "V": _LINE, "X": _LEN4, "a": NONE, "b": NONE,
    "c": _LINES2, "d": NONE, "}": NONE, "e": NONE, "g": _LINE, "h": _U1, "i": _LINES2,
    "j": _U4, "l": NONE, "]": NONE, "o": NONE, "p": _LINE, "q": _U1, "r": _U4, "s": NONE,
    "t": NONE, ")": NONE, "u": NONE, "G": _F8, "B": _LEN4, "C": _LEN1,
    "\x80": _U1, "\x81": NONE, "\x82": _U1, "\x83": _U2, "\x84": _I4, "\x85": NONE,
    "\x86": NONE, "\x87": NONE, "\x88": NONE, "\x89": NONE, "\x8a": _LEN1, "\x8b": _LEN4S,
    "\x8c": _LEN1, "\x8d": _LEN8, "\x8e": _LEN8, "\x8f": NONE, "\x90": NONE, "\x91": NONE,
    "\x92": NONE, "\x93": NONE, "\x94": NONE, "\x95": _U8, "\x96": _LEN8, "\x97": NONE,
    "\x98": NONE,
}
_FIXED: dict[int, tuple[int, Callable[[Any, int], tuple[int]] | None]] = {
    _U2: (2, U16), _I4: (4, I32), _U4: (4, U32), _U8: (8, U64), _F8: (8, None),
}
KIND = [-1] * 256
for _code, _kind in _SPEC.items():
    KIND[ord(_code)] = _kind

PICKLE_START = frozenset(b"(.]})NI\x80cKJMFGLSTUVX\x8c")
"""First bytes a real pickle starts with; anything else is not worth a trial walk."""

Handler = Callable[["PickleWalker", Any, int], None]


def read_argument(w: PickleWalker, kind: int, offset: int) -> Any:
    """Read the argument at ``w.pos``; bytes arguments come back as (start, length), uncopied."""
    data, pos, end = w.data, w.pos, w.end
    if kind == _U1:
        if pos + 1 > end:
            raise w.malformed("truncated argument", offset)
        w.pos = pos + 1
        return data[pos]
    fixed = _FIXED.get(kind)
    if fixed is not None:
        size, reader = fixed
        if pos + size > end:
            raise w.malformed("truncated argument", offset)
        w.pos = pos + size
        return None if reader is None else reader(data, pos)[0]
    if kind == _LINE:
        return w.line(offset)
    if kind == _LINES2:
        return w.line(offset), w.line(offset)
    if kind == _LEN1:
        if pos + 1 > end:
            raise w.malformed("truncated argument", offset)
        n, pos = data[pos], pos + 1
    else:
        size = 8 if kind == _LEN8 else 4
        if pos + size > end:
            raise w.malformed("truncated argument", offset)
        n = (U64 if size == 8 else I32 if kind == _LEN4S else U32)(data, pos)[0]
        pos += size
        if n < 0:
            raise w.malformed("negative length", offset)
    if n > end - pos:
        raise w.malformed(f"declares {n} bytes, {end - pos} remain", offset)
    w.pos = pos + n
    return pos, n


def _push(value: Any) -> Handler:
    def push(w: PickleWalker, arg: Any, offset: int) -> None:
        w.stack.append(value)
    return push


def _push_arg(w: PickleWalker, arg: Any, offset: int) -> None:
    w.stack.append(arg)


def _text(w: PickleWalker, arg: Any, offset: int) -> None:
    start, n = arg
    w.stack.append(w.text(start, n, w.data[offset]))
    if w.data[offset] in (0x54, 0x55) and n >= 8:  # BINSTRING, SHORT_BINSTRING may hold bytes
        w.blob(start, n, offset)


def _bytes(w: PickleWalker, arg: Any, offset: int) -> None:
    w.blob(arg[0], arg[1], offset)
    w.stack.append(Blob(arg[0], arg[1]))


def _number(w: PickleWalker, arg: Any, offset: int) -> None:
    w.stack.append(w.number(w.data[offset], arg, offset))


def _text_line(w: PickleWalker, arg: Any, offset: int) -> None:
    w.stack.append(w.text_line(w.data[offset], arg, offset))


def _mark(w: PickleWalker, arg: Any, offset: int) -> None:
    if len(w.metastack) >= w.limits.max_stack:
        raise LimitReached(f"more than {w.limits.max_stack} nested MARKs")
    w.metastack.append(w.stack)
    w.stack = []


def _tuple_n(n: int) -> Handler:
    def tuple_n(w: PickleWalker, arg: Any, offset: int) -> None:
        if len(w.stack) < n:
            raise w.malformed("stack underflow", offset)
        items = w.stack[len(w.stack) - n:]
        del w.stack[len(w.stack) - n:]
        w.stack.append(Seq("tuple", items, n))
    return tuple_n


def _collection(kind: str) -> Handler:
    def collection(w: PickleWalker, arg: Any, offset: int) -> None:
        items = w.pop_mark(offset)
        if kind == "dict":
            mapping = Mapping()
            w.fill(mapping, items)
            w.stack.append(mapping)
        else:
            w.stack.append(w.seq(kind, items))
    return collection


def _empty(kind: str) -> Handler:
    def empty(w: PickleWalker, arg: Any, offset: int) -> None:
        w.stack.append(Mapping() if kind == "dict" else Seq(kind, [], 0))
    return empty


def _append(w: PickleWalker, arg: Any, offset: int) -> None:
    op = w.data[offset]
    items = [w.pop(offset)] if op == 0x61 else w.pop_mark(offset)  # APPEND, or APPENDS/ADDITEMS
    target = w.top(offset)
    if isinstance(target, Seq):
        room = w.limits.tracked_items - len(target.items)
        if room > 0:
            target.items.extend(items[:room])
        target.size += len(items)


def _setitems(w: PickleWalker, arg: Any, offset: int) -> None:
    if w.data[offset] == 0x73:  # SETITEM
        value = w.pop(offset)
        items = [w.pop(offset), value]
    else:
        items = w.pop_mark(offset)
    if len(items) % 2:
        raise w.malformed("odd number of items for SETITEMS", offset)
    target = w.top(offset)
    if isinstance(target, Mapping):
        w.fill(target, items)


def _reduce(w: PickleWalker, arg: Any, offset: int) -> None:
    args = w.pop(offset)
    func = w.pop(offset)
    w.stack.append(w.call(func, args, offset, "REDUCE"))


def _build(w: PickleWalker, arg: Any, offset: int) -> None:
    state = w.pop(offset)
    w.build(w.top(offset), state, offset)


def _newobj(w: PickleWalker, arg: Any, offset: int) -> None:
    if w.data[offset] == 0x92:  # NEWOBJ_EX: cls, args, kwargs
        w.pop(offset)
    args = w.pop(offset)
    cls = w.pop(offset)
    w.stack.append(w.call(cls, args, offset, "NEWOBJ"))


def _stack_global(w: PickleWalker, arg: Any, offset: int) -> None:
    name = w.pop(offset)
    module = w.pop(offset)
    w.stack.append(w.stack_global(module, name, offset))


def _global(w: PickleWalker, arg: Any, offset: int) -> None:
    module, name = (w.decode_name(x, offset) for x in arg)
    w.stack.append(w.import_global(module, name, offset, "GLOBAL"))


def _inst(w: PickleWalker, arg: Any, offset: int) -> None:
    module, name = (w.decode_name(x, offset) for x in arg)
    args = w.pop_mark(offset)
    cls = w.import_global(module, name, offset, "INST")
    w.stack.append(w.call(cls, w.seq("tuple", args), offset, "INST"))


def _obj(w: PickleWalker, arg: Any, offset: int) -> None:
    items = w.pop_mark(offset)
    if not items:
        raise w.malformed("OBJ without a class", offset)
    w.stack.append(w.call(items[0], w.seq("tuple", items[1:]), offset, "OBJ"))


def _memo(w: PickleWalker, arg: Any, offset: int) -> None:
    op = w.data[offset]
    if op in (0x67, 0x70):  # GET, PUT: decimal text
        try:
            arg = int(arg) if arg is not None and len(arg) < 40 else -1
        except ValueError:
            raise w.malformed("bad memo index", offset) from None
        if arg < 0:
            raise w.malformed("negative memo index", offset)
    if op in (0x67, 0x68, 0x6A):
        w.memo_get(arg, offset)
    else:
        w.memo_put(len(w.memo) if op == 0x94 else arg, offset)


def _proto(w: PickleWalker, arg: Any, offset: int) -> None:
    if arg > 5:
        raise w.malformed(f"unsupported pickle protocol {arg}", offset)


def _frame(w: PickleWalker, arg: Any, offset: int) -> None:
    """Frames only group opcodes. The C unpickler refuses one longer than the remaining bytes,
    but the pure-Python one (which joblib uses) reads on: walk on, as the laxer loader would."""


def _pop(w: PickleWalker, arg: Any, offset: int) -> None:
    if w.stack:
        w.stack.pop()
    else:
        w.pop_mark(offset)


def _pop_mark(w: PickleWalker, arg: Any, offset: int) -> None:
    w.pop_mark(offset)


def _dup(w: PickleWalker, arg: Any, offset: int) -> None:
    w.stack.append(w.top(offset))


def _persid(w: PickleWalker, arg: Any, offset: int) -> None:
    if w.data[offset] == 0x51:  # BINPERSID takes its id from the stack
        w.pop(offset)
    w.stack.append(OPAQUE)


def _extension(w: PickleWalker, arg: Any, offset: int) -> None:
    w.report(Severity.MEDIUM, "extension-code", f"copyreg extension {arg}",
             "imports whatever the loading process registered under this code", offset)
    w.stack.append(Global("copyreg-extension", str(arg)))


def _readonly(w: PickleWalker, arg: Any, offset: int) -> None:
    w.top(offset)


def _stop(w: PickleWalker, arg: Any, offset: int) -> None:  # pragma: no cover - the loop stops first
    raise MalformedPickle("STOP handled by the walker", offset)


_HANDLERS: dict[str, Handler] = {
    "(": _mark, ".": _stop, "0": _pop, "1": _pop_mark, "2": _dup,
    "F": _number, "I": _number, "J": _push_arg, "K": _push_arg, "L": _number, "M": _push_arg,
    "G": _number, "\x8a": _number, "\x8b": _number,
    "N": _push(None), "\x88": _push(True), "\x89": _push(False),
    "S": _text_line, "V": _text_line, "T": _text, "U": _text, "X": _text, "\x8c": _text, "\x8d": _text,
    "B": _bytes, "C": _bytes, "\x8e": _bytes, "\x96": _bytes,
    "\x97": _push(OPAQUE), "\x98": _readonly,
    "]": _empty("list"), ")": _empty("tuple"), "}": _empty("dict"), "\x8f": _empty("set"),
    "l": _collection("list"), "t": _collection("tuple"), "d": _collection("dict"),
    "\x91": _collection("frozenset"),
    "\x85": _tuple_n(1), "\x86": _tuple_n(2), "\x87": _tuple_n(3),
    "a": _append, "e": _append, "\x90": _append, "s": _setitems, "u": _setitems,
    "g": _memo, "h": _memo, "j": _memo, "p": _memo, "q": _memo, "r": _memo, "\x94": _memo,
    "\x82": _extension, "\x83": _extension, "\x84": _extension,
    "c": _global, "\x93": _stack_global, "R": _reduce, "b": _build, "i": _inst, "o": _obj,
    "\x81": _newobj, "\x92": _newobj, "\x80": _proto, "\x95": _frame, "P": _persid, "Q": _persid,
}
DISPATCH: list[Handler | None] = [None] * 256
for _code, _handler in _HANDLERS.items():
    DISPATCH[ord(_code)] = _handler
