"""National identifiers, payment cards and IBANs, each checked with its check digits.

Validation is python-stdnum's (Arthur de Jong's, https://arthurdejong.org/python-stdnum/):
length, structure, embedded dates and check digits, so a random number passes only by
chance: one in 10 for a Luhn or Verhoeff digit, one in 11 for the Dutch 11-proof, one in 97
for an IBAN or a French NIR.

Two ways a value is recognised:

* **formatted**: written the way the identifier is written (``123-45-6789``,
  ``390.533.447-05``, ``GB82 WEST 1234 5698 7654 32``, ``12345678Z``): found by its shape
  in any cell, free text included, then checked.
* **bare digits** (``4111111111111111``, ``111222333``): a whole cell of digits only, as a
  numeric column holds them. A number is a number: one bare value is never enough. A column's
  bare values count for a scheme only when its header names the scheme (``ssn``, ``bsn``,
  ``card_number``) or when at least :data:`BARE_MIN` of them pass the scheme's check and
  they are at least :data:`BARE_SHARE` of the column's candidates of that length. Random
  numbers pass a check digit one time in 10 to 97, so a column of them never gets there.
  Schemes without a check digit (US SSN, Danish CPR) never count bare without their header.
  A scheme that fails the share on a column's first :data:`BARE_TRIAL` candidates is not
  checked on the rest of that column.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from stdnum import iban as _iban
from stdnum import luhn
from stdnum.be import nn as _be_nn
from stdnum.br import cpf as _br_cpf
from stdnum.ca import sin as _ca_sin
from stdnum.de import idnr as _de_idnr
from stdnum.dk import cpr as _dk_cpr
from stdnum.es import dni as _es_dni
from stdnum.es import nie as _es_nie
from stdnum.fi import hetu as _fi_hetu
from stdnum.fr import nir as _fr_nir
from stdnum.in_ import aadhaar as _in_aadhaar
from stdnum.it import codicefiscale as _it_cf
from stdnum.nl import bsn as _nl_bsn
from stdnum.no import fodselsnummer as _no_fnr
from stdnum.pl import pesel as _pl_pesel
from stdnum.se import personnummer as _se_pn
from stdnum.us import ssn as _us_ssn

BARE_MIN = 5
BARE_SHARE = 0.9
BARE_TRIAL = 200
"""A scheme that fewer than 90% of a column's first 200 candidates pass is rejected for the
column there and then (and its check no longer run on the rest)."""

_NINO = re.compile(r"^(?!BG|GB|KN|NK|NT|TN|ZZ)[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z]\d{6}[A-D]$")


def _gb_nino(value: str) -> bool:
    """HMRC's format rules (the UK's National Insurance number has no check digit)."""
    return bool(_NINO.match(value.replace(" ", "").upper()))


def _stdnum(module: object) -> Callable[[str], bool]:
    check: Callable[[str], bool] = module.is_valid  # type: ignore[attr-defined]
    return check


@dataclass(frozen=True, slots=True)
class Scheme:
    """One national identifier: how it is written, how long it is bare, how it is checked."""

    name: str
    country: str
    check: Callable[[str], bool]
    formatted: re.Pattern[str] | None
    bare_lengths: tuple[int, ...] = ()
    """Lengths of the all-digit form that may count bare; empty: never bare without a header."""


def _shape(pattern: str) -> re.Pattern[str]:
    return re.compile(rf"(?<![\w.\-+/]){pattern}(?![\w\-+/]|\.\w)")


SCHEMES: dict[str, Scheme] = {s.name: s for s in (
    Scheme("us_ssn", "US", _stdnum(_us_ssn), _shape(r"\d{3}-\d{2}-\d{4}")),
    Scheme("gb_nino", "GB", _gb_nino, _shape(r"[A-Z]{2} ?\d{2} ?\d{2} ?\d{2} ?[A-D]")),
    Scheme("de_idnr", "DE", _stdnum(_de_idnr), _shape(r"\d{2} \d{3} \d{3} \d{3}"), (11,)),
    Scheme("fr_nir", "FR", _stdnum(_fr_nir),
           _shape(r"[12] \d{2} \d{2} (?:\d{2}|2[AB]) \d{3} \d{3} \d{2}"), (15,)),
    Scheme("es_dni", "ES", _stdnum(_es_dni), _shape(r"\d{8}-?[A-Z]")),
    Scheme("es_nie", "ES", _stdnum(_es_nie), _shape(r"[XYZ]-?\d{7}-?[A-Z]")),
    Scheme("it_codicefiscale", "IT", _stdnum(_it_cf),
           _shape(r"[A-Z]{6}\d{2}[A-EHLMPR-T]\d{2}[A-Z]\d{3}[A-Z]")),
    Scheme("nl_bsn", "NL", _stdnum(_nl_bsn), _shape(r"\d{4}\.\d{2}\.\d{3}"), (9,)),
    Scheme("se_personnummer", "SE", _stdnum(_se_pn), _shape(r"(?:\d{2})?\d{6}[-+]\d{4}"), (10, 12)),
    Scheme("fi_hetu", "FI", _stdnum(_fi_hetu), _shape(r"\d{6}[-+A-FU-Y]\d{3}[0-9A-Y]")),
    Scheme("pl_pesel", "PL", _stdnum(_pl_pesel), None, (11,)),
    Scheme("no_fodselsnummer", "NO", _stdnum(_no_fnr), _shape(r"\d{6} \d{5}"), (11,)),
    Scheme("be_nn", "BE", _stdnum(_be_nn), _shape(r"\d{2}\.\d{2}\.\d{2}-\d{3}\.\d{2}"), (11,)),
    Scheme("dk_cpr", "DK", _stdnum(_dk_cpr), None),
    Scheme("in_aadhaar", "IN", _stdnum(_in_aadhaar), _shape(r"[2-9]\d{3} \d{4} \d{4}"), (12,)),
    Scheme("br_cpf", "BR", _stdnum(_br_cpf), _shape(r"\d{3}\.\d{3}\.\d{3}-\d{2}"), (11,)),
    Scheme("ca_sin", "CA", _stdnum(_ca_sin), None, (9,)),
)}
"""The identifiers recognised, by name. Formatted shapes are found in any cell; ``dk_cpr``
(a date and four digits, no check digit since 2007), ``pl_pesel`` and ``ca_sin`` (nine
grouped digits, like many phone numbers) only under their header, or bare as above."""

NO_CHECK_DIGIT = frozenset({"us_ssn", "gb_nino", "dk_cpr"})
"""Schemes checked by their format and ranges alone."""
_LETTERED_NAMES = ("gb_nino", "es_dni", "es_nie", "it_codicefiscale", "fi_hetu")
LETTERED = tuple((s, s.formatted) for s in SCHEMES.values()
                 if s.formatted is not None and s.name in _LETTERED_NAMES)
"""Schemes written with letters: looked for in any cell that holds letters and digits."""
DIGIT_SHAPED = tuple((s, s.formatted) for s in SCHEMES.values()
                     if s.formatted is not None and s.name not in _LETTERED_NAMES)
"""Schemes written as grouped digits: checked against each run of digits and separators."""
BARE_BY_LENGTH: dict[int, tuple[Scheme, ...]] = {}
for _s in SCHEMES.values():
    for _n in _s.bare_lengths:
        BARE_BY_LENGTH[_n] = (*BARE_BY_LENGTH.get(_n, ()), _s)


def valid_id(scheme: Scheme, value: str) -> bool:
    try:
        return bool(scheme.check(value))
    except (ValueError, TypeError, IndexError):  # stdnum's checks are total, but be safe on odd input
        return False


# -- payment cards ------------------------------------------------------------------------------

_IIN: tuple[tuple[int, int, tuple[int, ...]], ...] = (
    # (prefix range low, high, allowed lengths), prefixes compared on the first 6 digits
    (400000, 499999, (13, 16, 19)),  # Visa
    (510000, 559999, (16,)), (222100, 272099, (16,)),  # Mastercard
    (340000, 349999, (15,)), (370000, 379999, (15,)),  # American Express
    (601100, 601199, (16, 19)), (644000, 659999, (16, 19)),  # Discover
    (352800, 358999, (16, 17, 18, 19)),  # JCB
    (300000, 305999, (14, 16, 19)), (360000, 369999, (14, 16, 19)), (380000, 399999, (14, 16, 19)),  # Diners
    (620000, 629999, (16, 17, 18, 19)),  # UnionPay
    (500000, 509999, (12, 13, 14, 15, 16, 17, 18, 19)), (560000, 589999, (12, 13, 14, 15, 16, 17, 18, 19)),
    (630000, 639999, (12, 13, 14, 15, 16, 17, 18, 19)), (670000, 699999, (12, 13, 14, 15, 16, 17, 18, 19)),
    (220000, 220499, (16, 17, 18, 19)),  # Mir
)


def valid_card(digits: str) -> bool:
    """A payment card number: 12 to 19 digits, a known issuer prefix for its length, and Luhn."""
    n = len(digits)
    if not 12 <= n <= 19 or not digits.isdigit():
        return False
    prefix = int(digits[:6])
    if not any(lo <= prefix <= hi and n in lengths for lo, hi, lengths in _IIN):
        return False
    return bool(luhn.is_valid(digits))


_CARD_GROUPS = re.compile(r"^\d{4}(?:[ -]\d{4}){2}[ -]\d{1,7}$|^\d{4}[ -]\d{6}[ -]\d{4,5}$")


def card_grouping_ok(text: str) -> bool:
    """Separators as cards print them: 4-4-4-4(-3), or 4-6-5 (Amex), 4-6-4 (Diners)."""
    return bool(_CARD_GROUPS.match(text))


def valid_iban(compact: str) -> bool:
    try:
        return bool(_iban.is_valid(compact))
    except (ValueError, TypeError, IndexError):
        return False
