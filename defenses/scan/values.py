"""The symbolic values the opcode walker keeps on its stack and memo instead of real objects.

The walker never builds the objects a pickle describes; it keeps just enough to name what gets
imported and called: strings (for ``STACK_GLOBAL`` names built on the stack or through the
memo), the globals themselves, calls, and small containers (joblib's array headers, numpy
dtypes). Containers keep at most a few items, so a memo or ``DUP`` bomb costs no more memory
than its opcodes.
"""

from __future__ import annotations

import functools
import warnings
from typing import Any, cast


class Token:
    """A value the walker does not need to know (a float, a persistent id, ...)."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"<{self.name}>"


OPAQUE = Token("value")
NUMBER = Token("number")
"""A float or a very long integer: never a string, never callable."""


class LongText:
    """A string too long to keep; it can name no import. ``start`` is where its UTF-8 bytes
    lie in the stream (-1 when escapes were decoded), so a call that turns it into bytes
    (protocol 2's ``_codecs.encode(text, "latin1")``) can still be read."""

    __slots__ = ("length", "start")

    def __init__(self, length: int, start: int = -1) -> None:
        self.length = length
        self.start = start


class Blob:
    """A bytes argument, kept as a span of the stream so large tensors are never copied;
    ``start`` -1: bytes computed at load time that were already scanned."""

    __slots__ = ("start", "length")

    def __init__(self, start: int, length: int) -> None:
        self.start = start
        self.length = length


class Global:
    """What ``GLOBAL``/``STACK_GLOBAL``/``INST`` imported."""

    __slots__ = ("module", "name", "full", "special")

    def __init__(self, module: str, name: str) -> None:
        self.module = module
        self.name = name
        self.full = f"{module}.{name}"
        self.special = True  # whether calling it needs a closer look (set once, at import)


class Call:
    """The result of calling ``func`` (``REDUCE``, ``NEWOBJ``, ``OBJ``, ``INST``)."""

    __slots__ = ("func", "args")

    def __init__(self, func: Any, args: Any) -> None:
        self.func = func
        self.args = args


class Seq:
    """A list, tuple, set or frozenset: its size and its first few items."""

    __slots__ = ("kind", "items", "size")

    def __init__(self, kind: str, items: list[Any], size: int) -> None:
        self.kind = kind
        self.items = items
        self.size = size


class Mapping:
    """A dict: its size and its first few items."""

    __slots__ = ("items", "size")

    def __init__(self) -> None:
        self.items: dict[Any, Any] = {}
        self.size = 0


class Dtype:
    """A numpy dtype rebuilt by ``numpy.dtype(code, ...)``: enough to size joblib's raw arrays.

    The code is read the way numpy reads it (``'object'`` spelled as a word holds objects just
    like ``'O8'``); a code numpy refuses is sized as unknown.
    """

    __slots__ = ("code", "elsize", "hasobject")

    def __init__(self, code: str) -> None:
        self.code = code
        self.elsize = -1
        known = _numpy_dtype(code)
        self.hasobject = code.startswith("O") if known is None else known[1]
        if known is not None and known[0] > 0:
            self.elsize = known[0]

    @classmethod
    def of_descr(cls, descr: list[Any]) -> Dtype:
        """A structured dtype from its literal field list, read by numpy; holds objects if
        numpy cannot read it (so its data is walked, never skipped blind)."""
        dt = cls("V")
        known = _numpy_descr(repr(descr))
        dt.hasobject = True if known is None else known[1]
        if known is not None and known[0] > 0:
            dt.elsize = known[0]
        return dt

    @classmethod
    def of_class(cls, name: str) -> Dtype:
        """The dtype a ``numpy.dtypes.<name>()`` instance is (``ObjectDType`` holds objects)."""
        import numpy

        kind = vars(numpy.dtypes).get(name)
        dt = cls("V")
        dt.hasobject = True
        if isinstance(kind, type) and issubclass(kind, numpy.dtype):
            try:
                made: Any = cast(Any, kind)()  # numpy.dtypes classes build with no argument
            except (TypeError, ValueError):
                return dt
            dt.code, dt.hasobject = made.str, bool(made.hasobject)
            if made.itemsize > 0:
                dt.elsize = int(made.itemsize)
        return dt

    def itemsize(self) -> int | None:
        if self.elsize > 0:
            return self.elsize
        kind, digits = self.code[:1], self.code[1:]
        if kind in ("M", "m"):
            return 8
        if not digits.isdigit():
            return None
        return int(digits) * (4 if kind == "U" else 1)


@functools.lru_cache(maxsize=256)
def _numpy_descr(text: str) -> tuple[int, bool] | None:
    """(itemsize, hasobject) of a structured descr given as the repr of its literal list."""
    import ast

    from numpy.lib.format import descr_to_dtype

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            dt = descr_to_dtype(ast.literal_eval(text))
    except (TypeError, ValueError, KeyError, IndexError, SyntaxError, OverflowError, MemoryError,
            RecursionError):
        return None
    return int(dt.itemsize), bool(dt.hasobject)


@functools.lru_cache(maxsize=1024)
def _numpy_dtype(code: str) -> tuple[int, bool] | None:
    """(itemsize, hasobject) of ``numpy.dtype(code)``, or None if numpy refuses the code."""
    if len(code) > 64:
        return None
    import numpy

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            dt = numpy.dtype(code)
    except (TypeError, ValueError, KeyError, SyntaxError, OverflowError, MemoryError):
        return None
    return int(dt.itemsize), bool(dt.hasobject)


def brief(value: Any, budget: int = 120) -> str:
    """A short, bounded description of a value for a finding's detail (attacker-chosen text)."""
    text = _brief(value, 2)
    return text if len(text) <= budget else text[: budget - 3] + "..."


def _brief(value: Any, depth: int) -> str:
    if isinstance(value, str):
        return repr(value[:80])
    if isinstance(value, bool | int | type(None)):
        return repr(value) if not isinstance(value, int) or abs(value) < 10**18 else "<int>"
    if isinstance(value, Global):
        return value.full
    if isinstance(value, Call):
        return f"{_brief(value.func, 0)}(...)"
    if isinstance(value, Blob):
        return f"<{value.length} bytes>"
    if isinstance(value, LongText):
        return f"<{value.length} chars>"
    if isinstance(value, Seq):
        if depth <= 0:
            return f"<{value.kind} of {value.size}>"
        inner = ", ".join(_brief(v, depth - 1) for v in value.items[:4])
        more = ", ..." if value.size > 4 else ""
        return f"({inner}{more})" if value.kind == "tuple" else f"[{inner}{more}]"
    if isinstance(value, Mapping):
        return f"<dict of {value.size}>"
    if isinstance(value, Dtype):
        return f"dtype({value.code!r})"
    return repr(value) if isinstance(value, Token) else "<value>"
