"""Values that change how the stream is read: numpy dtypes, numpy scalars, joblib's arrays.

joblib writes raw numpy array bytes in the middle of the opcode stream, right after ``BUILD``
of a ``NumpyArrayWrapper`` (and a padding-length byte since joblib 1.2); ``joblib.load`` reads
``prod(shape) * itemsize`` bytes there, or for an object array a whole nested pickle. The walker
sizes the array from the wrapper's state and skips it. For that it evaluates, symbolically and
as numpy itself would, the few calls that build a wrapper's dtype and shape: ``numpy.dtype``
of a code or a structured list, the ``numpy.dtypes`` classes, and ``numpy...scalar(dtype,
bytes)`` integers. An array whose dtype cannot be known is read as joblib would read an
object array: a nested pickle, walked in turn.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from guard.defenses.scan.context import LimitReached, MalformedPickle
from guard.defenses.scan.values import Blob, Call, Dtype, Global, LongText, Mapping, Seq

if TYPE_CHECKING:
    from guard.defenses.scan.walker import PickleWalker

WRAPPER = "joblib.numpy_pickle.NumpyArrayWrapper"
_LATIN1 = frozenset({"latin1", "latin-1", "iso-8859-1", "iso8859-1", "l1"})
_SCALARS = frozenset({"numpy.core.multiarray.scalar", "numpy._core.multiarray.scalar"})
_DTYPE_MODULES = frozenset({"numpy.dtypes", "numpy._core._dtype"})
_MAX_DESCR_ITEMS = 32


def evaluates(func: Global) -> bool:
    """Whether :func:`evaluate` may know what calling ``func`` gives."""
    return (func.full in ("numpy.dtype", "_codecs.encode") or func.full in _SCALARS
            or (func.module in _DTYPE_MODULES and func.name.endswith("DType")))


def evaluate(w: PickleWalker, func: Global, args: Any, offset: int) -> Any:
    """What ``func(*args)`` evaluates to, for the calls that size joblib arrays or make bytes
    (protocol 2 writes bytes as ``_codecs.encode(text, "latin1")``, and those bytes may be a
    pickle a nested loader reads); None if the call is not one of them (the walker then keeps
    it as a plain :class:`Call`)."""
    if not isinstance(args, Seq):
        return None
    items = args.items
    if func.full == "_codecs.encode" and len(items) == 2 and items[1] in _LATIN1:
        raw = _latin1(w, items[0])
        if raw is None:
            return None
        w.blob_value(raw, offset)
        return Blob(-1, len(raw))
    if func.full == "numpy.dtype" and items:
        code = items[0]
        if isinstance(code, str):
            return Call(func, Dtype(code))
        descr = _literal(code)
        if isinstance(descr, list):
            return Call(func, Dtype.of_descr(descr))
        return None
    if func.module in _DTYPE_MODULES and func.name.endswith("DType"):
        return Call(func, Dtype.of_class(func.name))
    if func.full in _SCALARS and len(items) == 2 and isinstance(items[1], Blob):
        dtype = items[0].args if isinstance(items[0], Call) else None
        blob = items[1]
        if isinstance(dtype, Dtype) and blob.length <= 16:
            return _integer_scalar(dtype.code, bytes(w.data[blob.start:blob.start + blob.length]))
    return None


def _integer_scalar(code: str, raw: bytes) -> int | None:
    """The value of a numpy integer scalar pickled as (dtype, raw bytes), read by numpy."""
    import numpy

    try:
        dt = numpy.dtype(code)
    except (TypeError, ValueError):
        return None
    if dt.kind not in "iu" or dt.itemsize != len(raw):
        return None
    return int(numpy.frombuffer(raw, dtype=dt)[0])


def _latin1(w: PickleWalker, text: Any) -> bytes | None:
    try:
        if isinstance(text, str):
            return text.encode("latin-1")
        if isinstance(text, LongText) and text.start >= 0:
            return bytes(w.data[text.start:text.start + text.length]).decode(
                "utf-8", "surrogatepass").encode("latin-1")
    except UnicodeError:  # not latin-1 text: the loader's encode fails too
        return None
    return None


def _literal(value: Any, depth: int = 4) -> Any:
    """A plain Python value for a tracked literal (strings, ints, tuples, lists), else None."""
    if isinstance(value, str | int):
        return value
    if isinstance(value, Seq) and depth > 0 and value.size == len(value.items) <= _MAX_DESCR_ITEMS:
        parts = [_literal(v, depth - 1) for v in value.items]
        if any(p is None for p in parts):
            return None
        return tuple(parts) if value.kind == "tuple" else parts
    return None


def build(w: PickleWalker, inst: Any, state: Any, offset: int) -> None:
    """Apply ``BUILD``'s ``state`` to ``inst`` where it matters to reading the rest."""
    if not isinstance(inst, Call):
        return
    if isinstance(inst.args, Dtype) and isinstance(state, Seq):
        dtype, items = inst.args, state.items
        if len(items) > 5 and isinstance(items[5], int) and items[5] > 0:
            dtype.elsize = items[5]
        if len(items) > 4 and isinstance(items[4], Mapping):
            dtype.hasobject |= _fields_hold_objects(items[4])
        return
    if (w.joblib and isinstance(inst.func, Global) and inst.func.full == WRAPPER
            and isinstance(state, Mapping)):
        _skip_array(w, state, offset)


def _skip_array(w: PickleWalker, state: Mapping, offset: int) -> None:
    """Step over the array bytes joblib wrote after this wrapper (or walk its inner pickle)."""
    w.wrappers += 1
    shape, dtype = state.items.get("shape"), state.items.get("dtype")
    dt = dtype.args if isinstance(dtype, Call) else None
    if not isinstance(dt, Dtype) or dt.hasobject:
        # An object array is a nested pickle; so, as far as the scan can tell, is an array
        # whose dtype it cannot know: walk it, and only if that fails is the header bad.
        if w.depth >= w.limits.max_depth:
            raise LimitReached(f"joblib arrays nested deeper than {w.limits.max_depth}")
        try:
            w.pos = w.nested(w.pos).walk()
        except MalformedPickle:
            if isinstance(dt, Dtype):
                raise
            raise w.malformed("joblib array header without a dtype Guard can read", offset) from None
        return
    if state.items.get("numpy_array_alignment_bytes") is not None:
        if w.pos >= w.end:
            raise w.malformed("joblib array padding truncated", offset)
        w.pos += 1 + w.data[w.pos]
    itemsize = dt.itemsize()
    if not isinstance(shape, Seq) or shape.size != len(shape.items) or itemsize is None:
        raise w.malformed("joblib array header too complex to size", offset)
    count = 1
    for dim in shape.items:
        if not isinstance(dim, int) or dim < 0:
            raise w.malformed("joblib array shape is not integers", offset)
        count *= dim
    nbytes = count * itemsize
    if nbytes > w.end - w.pos:
        raise w.malformed(f"joblib array declares {nbytes} bytes past the end", offset)
    w.pos += nbytes


def _fields_hold_objects(fields: Mapping) -> bool:
    for value in fields.items.values():
        if isinstance(value, Seq) and value.items:
            first = value.items[0]
            dt = first.args if isinstance(first, Call) else None
            if isinstance(dt, Dtype) and dt.hasobject:
                return True
    return fields.size > len(fields.items)
