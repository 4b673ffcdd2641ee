"""Untrusted text made visible before it reaches a terminal, a Markdown file or a page.

File names, model names, probe ids from plug-ins and finding details may be chosen by whoever
supplied the model. Printed raw, an ESC starts a terminal escape sequence (it can move the
cursor, rewrite a line already printed, retitle the window), a backspace or carriage return
overwrites what came before, and a right-to-left override (U+202E) makes the file name
``model<U+202E>gnp.exe<U+202C>.skops`` read as ``modelexe.png``. :func:`visible` spells every
such character out, so what a reader sees is every character there is: ``\\x1b``, ``\\n``,
``<U+202E>``.

Only the human-readable outputs use it. JSON and SARIF keep the exact strings: they are data;
:func:`json_text` only spells the same characters as JSON's own ``\\u`` escapes.
"""

from __future__ import annotations

import functools
import unicodedata
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.text import Text

NAMED = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}
"""Controls with a well-known short escape; every other C0 or C1 control is ``\\xNN``."""
HIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
"""Controls (C0, DEL, C1), format characters (bidi controls, zero-width characters, tags),
lone surrogates, and the line and paragraph separators that start a new line."""
JSON_LAYOUT = frozenset("\n\r\t")
"""What json.dumps writes raw only between values, never inside a string."""
_LAYOUT_AS_SPACE = str.maketrans(dict.fromkeys(JSON_LAYOUT, " "))


def visible(text: str) -> str:
    """``text`` with each control, format or bidi character, and lone surrogate, spelled out.

    Characters below U+00A0 (C0, DEL, C1) become ``\\xNN`` (``\\t``, ``\\n``, ``\\r`` for the
    three everyone knows), everything else ``<U+XXXX>``. A single-line field cannot take a
    line break either, so newline and tab are escaped too. Printable text, spaces included,
    is returned unchanged.
    """
    if text.isprintable():  # no Cc, Cf, Cs, Zl, Zp (nor Co, Cn, Zs other than space)
        return text
    return "".join(_shown(ch) for ch in text)


def json_text(document: str) -> str:
    """JSON text (as ``json.dumps(..., ensure_ascii=False)`` writes it) with every character
    :func:`visible` would spell out written as a ``\\uXXXX`` escape instead.

    The strings the JSON holds are exactly the same once parsed; only their spelling in the
    file changes, so the file can be printed to a terminal, and a lone surrogate (a file
    name's undecodable byte) can be written as UTF-8 at all. Such characters only ever occur
    inside JSON strings, where ``\\u`` escapes are valid; a raw newline, tab or carriage
    return is the layout between values (JSON escapes them inside strings) and stays.
    """
    if document.translate(_LAYOUT_AS_SPACE).isprintable():
        return document
    return "".join(_json_escape(ch) if ch not in JSON_LAYOUT and _shown(ch) != ch else ch
                   for ch in document)


def _json_escape(ch: str) -> str:
    point = ord(ch)
    if point <= 0xFFFF:
        return f"\\u{point:04x}"
    point -= 0x10000  # beyond the BMP: a UTF-16 surrogate pair, as JSON spells it
    return f"\\u{0xD800 + (point >> 10):04x}\\u{0xDC00 + (point & 0x3FF):04x}"


@functools.lru_cache(maxsize=1024)
def _shown(ch: str) -> str:
    if ch.isprintable() or unicodedata.category(ch) not in HIDDEN_CATEGORIES:
        return ch
    if ch in NAMED:
        return NAMED[ch]
    point = ord(ch)
    return f"\\x{point:02x}" if point < 0xA0 else f"<U+{point:04X}>"


def plain(value: object) -> Text:
    """A terminal table cell or title: :func:`visible`, and never read as rich markup.

    rich parses ``[bold red]`` or ``[link=...]`` in a string it is given; a :class:`Text`
    is printed as it is, so a file name with brackets in it prints its brackets.
    """
    from rich.text import Text

    return Text(visible(str(value)))


def valid_unicode(text: str) -> str:
    """``text`` if it is valid Unicode; else its lone surrogates as ``\\xNN`` byte escapes.

    A file name with a byte that is not UTF-8 reaches Python as a lone surrogate
    (``surrogateescape``); no UTF-8 file can hold one, and Guard's readers refuse one. The
    byte is spelt as ``ls -b`` would show it (``bad\\xff.skops``), which reads back the same.
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        escaped = all(0xDC80 <= ord(ch) <= 0xDCFF for ch in text if 0xD800 <= ord(ch) <= 0xDFFF)
        raw = text.encode("utf-8", "surrogateescape" if escaped else "surrogatepass")
        return raw.decode("utf-8", "backslashreplace")
    return text


def valid_document(value: Any) -> Any:
    """A JSON-ready document with every string (keys too) made :func:`valid_unicode`."""
    if isinstance(value, str):
        return valid_unicode(value)
    if isinstance(value, dict):
        return {valid_unicode(k) if isinstance(k, str) else k: valid_document(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [valid_document(v) for v in value]
    return value
