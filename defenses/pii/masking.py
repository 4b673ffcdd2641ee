"""What replaces a value of personal data: a placeholder, a keyed token or a partial mask.

* :func:`placeholder`: ``[EMAIL]``, ``[PHONE]``: the value is gone, its kind stays.
* :class:`Pseudonymiser`: ``pii_`` and 20 hex digits of HMAC-SHA256 under a secret key: the
  same value always maps to the same token (rows stay linkable, a join still works), and
  without the key nobody can map a token back or test a guess. The key is a Guard key file
  (``guard keygen``); the HMAC key is derived from it with HKDF-SHA256 for this purpose only,
  so the same file can never be misused as an encryption key through this. Pseudonymised data
  is still personal data (GDPR Recital 26): the key holder can re-identify.
* :func:`partial`: ``j***@***.org``, ``**** **** **** 1111``: enough for a person to
  recognise the kind and check a sample, never the value. The scan's examples are these.

A partial mask keeps only ASCII letters, digits and a few separators of the original and
writes every other character as ``*``, so an example can never carry markup, a terminal
escape or a bidi control from a cell into a report; it never starts with ``=``, ``+``, ``-``
or ``@`` (a spreadsheet would read a formula).
"""

from __future__ import annotations

import hmac
from hashlib import sha256

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

TOKEN_PREFIX = "pii_"
TOKEN_HEX = 20
_HKDF_INFO = b"guard pii pseudonymisation v1"
_SEPARATORS = frozenset(" -./()")
_SAFE_TEXT_MAX = 48


def placeholder(kind: str) -> str:
    return f"[{kind.upper()}]"


class Pseudonymiser:
    """Keyed, deterministic tokens: HMAC-SHA256 under a key derived from a 256-bit Guard key."""

    def __init__(self, key: bytes) -> None:
        self._key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_HKDF_INFO).derive(key)

    def token(self, kind: str, value: str) -> str:
        digest = hmac.new(self._key, canonical(kind, value).encode("utf-8"), sha256).hexdigest()
        return f"{TOKEN_PREFIX}{digest[:TOKEN_HEX]}"


def canonical(kind: str, value: str) -> str:
    """The form two spellings of one value share: ``+44 7700 900123`` and ``+447700900123``
    give one token, as do ``John@Example.org`` and ``john@example.org``."""
    if kind in ("phone", "payment_card", "iban", "national_id"):
        keep = "".join(c for c in value if c.isalnum()).upper()
        return f"+{keep}" if kind == "phone" and value.lstrip().startswith("+") else keep
    return " ".join(value.casefold().split())


def partial(kind: str, value: str) -> str:
    """A partial mask of ``value`` (of ``kind``) that shows its shape, not its content."""
    text = value.strip()[:200]
    if kind == "email" and "@" in text:
        local, _, domain = text.rpartition("@")
        tld = domain.rsplit(".", 1)[-1] if "." in domain else ""
        return f"{_first(local)}***@***.{_ascii_word(tld)}" if tld else f"{_first(local)}***@***"
    if kind in ("phone", "national_id", "iban", "payment_card"):
        keep = {"payment_card": 4, "iban": 2}.get(kind, 2)
        shown = _keep_last(text, keep)
        if kind == "iban" and len(text) > 2 and text[:2].isascii() and text[:2].isalpha():
            shown = text[:2].upper() + shown[2:]
        return _safe(shown)
    if kind == "ipv4":
        return f"{_ascii_word(text.split('.', 1)[0])}.*.*.*"
    if kind == "ipv6":
        return f"{_ascii_word(text.split(':', 1)[0])}:*:*"
    if kind == "date_of_birth":
        return _safe("".join(c if c in _SEPARATORS else "*" for c in text))
    return _initials(text)


def _keep_last(text: str, keep: int) -> str:
    """Every letter and digit as ``*`` except the last ``keep`` of them; separators stay."""
    total = sum(c.isalnum() for c in text)
    out, seen = [], 0
    for c in text:
        if c.isalnum():
            seen += 1
            out.append(c if seen > total - keep and c.isascii() else "*")
        else:
            out.append(c if c in _SEPARATORS else "*")
    return "".join(out)


def _initials(text: str) -> str:
    """``J*** S***``: each word's first letter (an ASCII letter or digit, else ``*``), then ``***``."""
    words = text.split()[:6]
    return " ".join(f"{_first(w)}***" for w in words) or "***"


def _first(word: str) -> str:
    c = word[:1]
    return c if c.isascii() and c.isalnum() else "*"


def _ascii_word(text: str) -> str:
    cleaned = "".join(c if c.isascii() and c.isalnum() else "*" for c in text[:12])
    return cleaned or "*"


def _safe(text: str) -> str:
    """Only ASCII letters, digits, ``*`` and separators; never a leading formula character."""
    cleaned = "".join(c if (c.isascii() and c.isalnum()) or c in _SEPARATORS or c == "*" else "*"
                      for c in text[:_SAFE_TEXT_MAX])
    return "*" + cleaned[1:] if cleaned[:1] in ("-", "+", "=", "@") else cleaned
