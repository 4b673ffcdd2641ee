"""Personal data in one cell: what kind, and where in the cell.

Every detector is a shape plus a check, offline and without a model: an email address by
its syntax; a phone number by its shape, then ``phonenumbers`` (Google's libphonenumber
metadata) for its length or validity in its country; a payment card by issuer prefix,
length and Luhn; an IBAN and national identifiers by python-stdnum's check digits
(:mod:`.ids`); IP addresses by :mod:`ipaddress`; a date of birth and a person's name only
where the column's header, or the words before them in the cell ("born", "DOB:", "Mr",
"my name is"), say so; GDPR Art. 9 special categories by header or by a whole cell's value
(:mod:`.vocab`).

Numbers are not personal data by default. A cell that parses as a number (``0.25``, ``-3``,
``1e-5``, ``12345``) is only ever one under a telling header (``phone``, ``ssn``,
``date_of_birth``), or as a *bare* identifier that the whole column confirms (:mod:`.ids`).
This is what keeps a table of numeric features from being reported as full of people, the
mistake Presidio makes on numeric CSV cells (microsoft/presidio issue 1173).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

import phonenumbers

from guard.defenses.pii import ids, names, vocab
from guard.defenses.pii.dates import DATE_TEXT, birth_date

PII_KINDS = ("email", "phone", "payment_card", "iban", "national_id", "ipv4", "ipv6", "date_of_birth",
             "person_name")
"""Kinds of direct personal data; the Art. 9 kinds are :data:`vocab.SPECIAL_CATEGORIES`."""
_PRIORITY = {kind: i for i, kind in enumerate(PII_KINDS)}
CARD = "payment_card"
PHONE_REGIONS = ("US", "GB")
"""Where a number written without a country code (``(202) 555-0143``, ``020 7946 0123``) is
looked up; one written with ``+`` is looked up in its own country."""


@dataclass(frozen=True, slots=True)
class Hit:
    """One item of personal data: ``kind``, at ``text[start:end]`` of the cell (stripped)."""

    kind: str
    start: int
    end: int
    detail: str = ""
    """The scheme of a national identifier (``us_ssn``), else empty."""
    special: bool = False


@dataclass(frozen=True, slots=True)
class Bare:
    """A cell of bare digits: candidate for the :mod:`.ids` schemes of its length, ``valid``
    for those whose check it passes. Counted once the whole column confirms a scheme."""

    length: int
    valid: frozenset[str]


@dataclass(frozen=True, slots=True)
class CellResult:
    hits: tuple[Hit, ...] = ()
    bare: Bare | None = None
    masked: bool = False
    """Already pseudonymised, redacted or masked (a token, ``[EMAIL]``, ``j***``)."""
    pending_name: bool = False
    """Shaped like a person's name under a header that may mean one (``name``, ``customer``):
    a name once the whole column confirms it (:mod:`.names`)."""


EMPTY = CellResult()
MASKED = CellResult(masked=True)
PENDING_NAME = CellResult(pending_name=True)
PERSON_NAME = "person_name"

_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_EMAIL = re.compile(r"(?<![\w.%+\-])[A-Za-z0-9][A-Za-z0-9._%+\-]{0,63}@"
                    r"(?:[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?\.){1,8}[A-Za-z]{2,24}(?![\w\-])")
_DIGITS = re.compile(r"(?<![\w+\-.(/])[+(]?\d[\d \-().]{4,30}\d(?![\w\-/]|\.\d)")
_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
_IPV4 = re.compile(rf"(?<![\w.])(?:{_OCTET}\.){{3}}{_OCTET}(?!\d|\.\d)")
_IPV6 = re.compile(r"(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f.]{0,15}(?![\w:])")
_IBAN = re.compile(r"(?<![A-Za-z0-9])[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}(?![A-Za-z0-9])")
_PHONE_INTL = re.compile(r"\+\d{1,3}[ .\-]?(?:\(\d{1,4}\)[ .\-]?)?\d[\d .\-]{5,16}\d")
_PHONE_NANP = re.compile(r"(?:1[ .\-]?)?(?:\(\d{3}\) ?|\d{3}[ .\-])\d{3}[ .\-]\d{4}")
_PHONE_TRUNK = re.compile(r"0\d{1,4}[ \-]\d{2,4}(?:[ \-]?\d{2,4}){1,2}")
_NAME_SHAPE = re.compile(r"[^\W\d_]{1,40}(?:(?:[ '\-\u2019]|\. ?|, )[^\W\d_]{1,40}){0,5}\.?")
_NAME_WORD = r"[A-Z][^\W\d_]*(?:['\u2019\-][^\W\d_]+)*"
_CAP_NAME = rf"({_NAME_WORD}(?: {_NAME_WORD}){{0,2}})"
_NAME_CONTEXT = re.compile(r"\b(?:(?:Mr|Mrs|Ms|Miss|Mx|Dr|Prof|Sir|Dame)\.? |(?:[Mm]y name is|[Nn]ame ?:|"
                           r"[Cc]alled|[Dd]ear|[Ss]igned|[Pp]atient ?:|[Cc]ontact ?:) ?)" + _CAP_NAME)
_DOB_CONTEXT = re.compile(r"(?i:\b(?:born(?: on)?|d\.?o\.?b\.?|date of birth|birth ?date|birthday) ?[:\-]? ?)"
                          rf"({DATE_TEXT})")
_HAS_DIGIT = re.compile(r"\d").search
_HAS_LETTER = re.compile(r"[^\W\d_]").search
_NON_DIGIT = re.compile(r"\D")
_MASKED = re.compile(r"pii_[0-9a-f]{16,64}|\[[A-Z][A-Z0-9_ ]*\]")
_NAME_WORDS = re.compile(r"[^\W\d_]+(?:['\u2019][^\W\d_]+)*")
_WHOLE_FLOAT = re.compile(r"(\d+)\.0*")


def looks_masked(text: str) -> bool:
    """A pseudonymisation token, a redaction placeholder, or a partly masked value."""
    return "***" in text or _MASKED.fullmatch(text) is not None


class ColumnDetector:
    """The detectors for one column, tuned by its header once. ``confirmed`` are the
    :class:`Bare` schemes the whole column confirmed, and ``person_name`` when it confirmed
    its pending names (a second pass, for masking, gets them)."""

    def __init__(self, name: str, *, confirmed: frozenset[str] = frozenset()) -> None:
        h = vocab.header(name)
        self.name = name
        self.special = vocab.special_category_of(h)
        self.special_values = not h.has(*vocab.NOT_SPECIAL_VALUE_WORDS)
        name_kind = vocab.name_header(h)
        self.name_hint = name_kind == "strong" or (name_kind == "weak" and PERSON_NAME in confirmed)
        self.name_pending = name_kind == "weak" and not self.name_hint
        self.dob_hint = h.has(*vocab.DOB_WORDS) or h.has_all("birth", "date") or h.has_all("date", "birth")
        self.phone_hint = (h.has(*vocab.PHONE_WORDS) or h.has_all("cell", "phone")
                           or h.has_all("cell", "number"))
        self.bare_card = not h.has(*vocab.NOT_CARD_WORDS)
        """Whether bare digits may count as a card here (not under ``imei``, ``sku``, ``gift_card``)."""
        self.card_hint = self.bare_card and (h.has(*vocab.CARD_WORDS) or h.has_all("card", "number")
                                             or h.has_all("credit", "card"))
        self.iban_hint = h.has(*vocab.IBAN_WORDS)
        self.ip_ok = not h.has(*vocab.NOT_IP_WORDS)
        named = [s for w, schemes in vocab.ID_SCHEMES_BY_WORD.items() if h.has(w) for s in schemes]
        if h.has(*vocab.GENERIC_ID_WORDS) or h.has_all("national", "id"):
            named = sorted(ids.SCHEMES, key=lambda n: n in ids.NO_CHECK_DIGIT)  # check digits say more: first
        self.id_hint = tuple(ids.SCHEMES[s] for s in dict.fromkeys(named))
        self.confirmed = confirmed
        self._cache: dict[str, CellResult] = {}

    def cell(self, value: str) -> CellResult:
        cached = self._cache.get(value)
        if cached is not None:
            return cached
        result = self._cell(value)
        if len(self._cache) < 4096 and len(value) <= 64:
            self._cache[value] = result
        return result

    def _cell(self, value: str) -> CellResult:
        s = value.strip()
        if not s or s.casefold() in vocab.MISSING:
            return EMPTY
        masked = looks_masked(s)
        lead: list[Hit] = []
        if self.special and not masked:
            lead.append(Hit(self.special, 0, len(s), special=True))
        if _NUMBER.fullmatch(s):
            return self._number(s, lead)
        hits = self._patterns(s)
        pending = False
        if not masked:
            if self.name_pending and not hits:
                pending = self._name_shaped(s) and not organisation(s)
            hits.extend(self._by_header(s))
            if not self.special and self.special_values and len(s) <= 60:
                category = vocab.SPECIAL_VALUES.get(vocab.normal(s))
                if category is not None:
                    lead.append(Hit(category, 0, len(s), special=True))
            if " " in s and len(s) > 8:
                hits.extend(self._context(s))
        found = (*lead, *_resolve(hits))
        if not found:
            return PENDING_NAME if pending else MASKED if masked else EMPTY
        return CellResult(found)

    # -- numbers ------------------------------------------------------------------------------

    def _number(self, s: str, lead: list[Hit]) -> CellResult:
        hits = list(lead)
        bare_digits = s.isascii() and s.isdigit()
        whole = _WHOLE_FLOAT.fullmatch(s) if not bare_digits and s.isascii() else None
        if whole is not None and (self.dob_hint or self.phone_hint or self.card_hint or self.id_hint):
            # an integer column written as floats (a missing value makes pandas write 2025550143.0)
            digits = whole.group(1)
            found = self._number(digits, [])
            return CellResult((*lead, *(Hit(h.kind, 0, len(s), h.detail) for h in found.hits)))
        if self.dob_hint and bare_digits and birth_date(s, compact=True):
            hits.append(Hit("date_of_birth", 0, len(s)))
        elif self.phone_hint and bare_digits and _bare_phone(s):
            hits.append(Hit("phone", 0, len(s)))
        elif bare_digits and (self.card_hint or CARD in self.confirmed) and ids.valid_card(s):
            hits.append(Hit(CARD, 0, len(s)))
        elif bare_digits:
            scheme = next((sc for sc in self.id_hint if ids.valid_id(sc, s)), None)
            if scheme is None:
                scheme = next((ids.SCHEMES[n] for n in self.confirmed if n != CARD
                               and len(s) in ids.SCHEMES[n].bare_lengths
                               and ids.valid_id(ids.SCHEMES[n], s)), None)
            if scheme is not None:
                hits.append(Hit("national_id", 0, len(s), scheme.name))
            elif not lead and len(s) >= 9:
                return CellResult(bare=_bare(s, card=self.bare_card))
        return CellResult(tuple(hits)) if hits else EMPTY

    # -- shapes anywhere in the cell -----------------------------------------------------------

    def _patterns(self, s: str) -> list[Hit]:
        hits: list[Hit] = []
        if "@" in s:
            hits.extend(Hit("email", m.start(), m.end()) for m in _EMAIL.finditer(s))
        if _HAS_DIGIT(s):
            for m in _DIGITS.finditer(s):
                hit = self._digits(m.group(), m.start())
                if hit is not None:
                    hits.append(hit)
            if "." in s and self.ip_ok:
                hits.extend(Hit("ipv4", m.start(), m.end()) for m in _IPV4.finditer(s)
                            if _public_v4(m.group()))
            if _HAS_LETTER(s):
                hits.extend(self._lettered(s))
        if ":" in s and self.ip_ok:
            hits.extend(Hit("ipv6", m.start(), m.end()) for m in _IPV6.finditer(s) if _ipv6(m.group()))
        return hits

    def _digits(self, text: str, at: int) -> Hit | None:
        digits = _NON_DIGIT.sub("", text)
        n = len(digits)
        plain = text[0] not in "+(" and "." not in text and ")" not in text
        grouped = digits == text or ids.card_grouping_ok(text)
        if 13 <= n <= 19 and plain and grouped and ids.valid_card(digits):
            return Hit(CARD, at, at + len(text))
        for scheme, shape in ids.DIGIT_SHAPED:
            if shape.fullmatch(text) and ids.valid_id(scheme, text):
                return Hit("national_id", at, at + len(text), scheme.name)
        if digits == text:
            if self.phone_hint and _phone(text, hinted=True):
                return Hit("phone", at, at + len(text))
            return None
        if 7 <= n <= 15 and (_phone(text, hinted=self.phone_hint)):
            return Hit("phone", at, at + len(text))
        return None

    def _lettered(self, s: str) -> list[Hit]:
        hits = []
        for m in _IBAN.finditer(s):
            span = _iban_span(m.group())
            if span:
                hits.append(Hit("iban", m.start(), m.start() + span))
        for scheme, shape in ids.LETTERED:
            for m in shape.finditer(s):
                if ids.valid_id(scheme, m.group()):
                    hits.append(Hit("national_id", m.start(), m.end(), scheme.name))
        return hits

    # -- what the header says the whole cell is --------------------------------------------------

    def _name_shaped(self, s: str) -> bool:
        return (len(s) >= 2 and _NAME_SHAPE.fullmatch(s) is not None
                and vocab.normal(s) not in vocab.NOT_A_NAME)

    def _by_header(self, s: str) -> list[Hit]:
        whole = len(s)
        if self.name_hint and self._name_shaped(s):
            return [Hit(PERSON_NAME, 0, whole)]
        if self.dob_hint and birth_date(s):
            return [Hit("date_of_birth", 0, whole)]
        if self.iban_hint and ids.valid_iban(s.replace(" ", "").upper()):
            return [Hit("iban", 0, whole)]
        compact = s.replace(" ", "").replace("-", "").replace(".", "")
        if self.card_hint and compact.isdigit() and ids.valid_card(compact):
            return [Hit(CARD, 0, whole)]
        scheme = next((sc for sc in self.id_hint if ids.valid_id(sc, s)), None)
        if scheme is not None:
            return [Hit("national_id", 0, whole, scheme.name)]
        return []

    def _context(self, s: str) -> list[Hit]:
        hits = [Hit("person_name", m.start(1), m.end(1)) for m in _NAME_CONTEXT.finditer(s)]
        hits.extend(Hit("date_of_birth", m.start(1), m.end(1)) for m in _DOB_CONTEXT.finditer(s)
                    if birth_date(m.group(1)))
        return hits


def known_name(text: str) -> bool:
    """Whether a name-shaped value holds a common given name, family name or honorific."""
    return any(w.casefold() in names.KNOWN for w in _NAME_WORDS.findall(text))


def organisation(text: str) -> bool:
    """Whether a name-shaped value names an organisation (``Acme Corp``, ``Initech GmbH``)."""
    return any(w.casefold() in names.ORGANISATION_WORDS for w in _NAME_WORDS.findall(text))


def _bare(s: str, *, card: bool = True) -> Bare:
    valid = {CARD} if card and 13 <= len(s) <= 19 and ids.valid_card(s) else set()
    valid.update(sc.name for sc in ids.BARE_BY_LENGTH.get(len(s), ()) if ids.valid_id(sc, s))
    return Bare(len(s), frozenset(valid))


def bare_candidates(length: int, *, card: bool = True) -> tuple[str, ...]:
    """The keys a bare number of ``length`` digits is a candidate for."""
    card_key = (CARD,) if card and 13 <= length <= 19 else ()
    return (*card_key, *(sc.name for sc in ids.BARE_BY_LENGTH.get(length, ())))


def _resolve(hits: list[Hit]) -> list[Hit]:
    """Non-overlapping hits: the longer first, then the kind earlier in :data:`PII_KINDS`."""
    if len(hits) < 2:
        return hits
    chosen: list[Hit] = []
    for hit in sorted(hits, key=lambda h: (-(h.end - h.start), _PRIORITY.get(h.kind, 99), h.start)):
        if all(hit.end <= c.start or hit.start >= c.end for c in chosen):
            chosen.append(hit)
    return sorted(chosen, key=lambda h: h.start)


def _phone(text: str, *, hinted: bool) -> bool:
    """A phone number: written as one (``+44 ...``, ``(202) 555-0143``, ``020 7946 0123``) and
    valid in its country; under a phone header any possible number of 7 to 15 digits."""
    try:
        if text.startswith("+"):
            if not (hinted or _PHONE_INTL.fullmatch(text)):
                return False
            return bool(phonenumbers.is_possible_number(phonenumbers.parse(text, None)))
        shaped = _PHONE_NANP.fullmatch(text) or _PHONE_TRUNK.fullmatch(text)
        if not (shaped or hinted):
            return False
        for region in PHONE_REGIONS:
            number = phonenumbers.parse(text, region)
            if phonenumbers.is_valid_number(number) or (hinted and phonenumbers.is_possible_number(number)):
                return True
    except phonenumbers.NumberParseException:
        return False
    return False


def _bare_phone(digits: str) -> bool:
    """Digits under a phone header: a number of the US or UK plan, or one in international form
    stored without its ``+`` (``447700900123`` in an integer column)."""
    return _phone(digits, hinted=True) or (8 <= len(digits) <= 15 and _phone(f"+{digits}", hinted=True))


def _public_v4(text: str) -> bool:
    first = int(text.split(".", 1)[0])
    return first not in (0, 127) and first < 224


def _ipv6(text: str) -> bool:
    try:
        address = ipaddress.IPv6Address(text.rstrip("."))
    except ValueError:
        return False
    return not (address.is_unspecified or address.is_loopback)


def _iban_span(candidate: str) -> int:
    """The length of the valid IBAN at the start of ``candidate`` (cut at its spaces), or 0."""
    pieces = candidate.split(" ")
    for cut in range(len(pieces), 0, -1):
        text = " ".join(pieces[:cut])
        if len(text.replace(" ", "")) >= 15 and ids.valid_iban(text.replace(" ", "")):
            return len(text)
    return 0

