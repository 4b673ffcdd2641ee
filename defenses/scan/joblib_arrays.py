"""``BUILD`` targets that change how the stream is read: numpy dtypes and joblib's arrays.

joblib writes raw numpy array bytes in the middle of the opcode stream, right after ``BUILD``
of a ``NumpyArrayWrapper`` (and a padding-length byte since joblib 1.2); ``joblib.load`` reads
``prod(shape) * itemsize`` bytes there, or for an object array a whole nested pickle. The walker
sizes the array from the wrapper's state, the dtype having been rebuilt symbolically from
``numpy.dtype(code, ...)`` and its ``BUILD`` state, and skips it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from guard.defenses.scan.context import LimitReached
from guard.defenses.scan.values import Call, Dtype, Global, Mapping, Seq

if TYPE_CHECKING:
    from guard.defenses.scan.walker import PickleWalker

WRAPPER = "joblib.numpy_pickle.NumpyArrayWrapper"


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
    if not isinstance(dt, Dtype):
        raise w.malformed("joblib array header without a dtype", offset)
    if dt.hasobject:
        if w.depth >= w.limits.max_depth:
            raise LimitReached(f"joblib arrays nested deeper than {w.limits.max_depth}")
        w.pos = w.nested(w.pos).walk()
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
