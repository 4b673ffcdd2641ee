"""A seeded table of fictional people, with the kind of every personal-data cell recorded:
for tests (recall, false positives, masking) and for ``guard audit --demo``.

Nobody in it is real. Email addresses are at the reserved example domains (RFC 2606); phone
numbers are in Ofcom's drama range (+44 7700 900xxx) and the North American fictional
555-01xx range; payment cards are the issuers' published test numbers; IP addresses are in
the documentation ranges (RFC 5737, RFC 3849); names are drawn at random from common first
names and surnames; IBANs and national identifiers are random digits with their check
digits computed, so they are well-formed but belong to no one on purpose. Beside them are
numeric feature columns (floats, counts, 16-digit and 9-digit reference numbers, epoch
times) that a scan must not report.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stdnum.de import idnr
from stdnum.es import dni
from stdnum.fr import nir
from stdnum.nl import bsn
from stdnum.us import ssn

from guard.defenses.pii.table import table_format
from guard.fsio import atomic_writer

FIRST = ("Alex", "Sam", "Maria", "Wei", "Aisha", "Jonas", "Priya", "Liam", "Sofia", "Kenji", "Amara", "Mateo",
         "Elif", "Noah", "Chloe", "Omar", "Ingrid", "Tomás", "Zanele", "Yuki", "Fatima", "Lars", "Ana",
         "Dmitri")
LAST = ("Smith", "García", "Müller", "Chen", "Okafor", "Novak", "Rossi", "Kowalski", "Nguyen", "Haddad",
        "Johansson", "Silva", "Dubois", "Patel", "Tanaka", "O'Neill", "Jensen", "Moreau", "Kim", "Ivanova")
DOMAINS = ("example.org", "example.com", "example.net")
TEST_CARDS = ("4111111111111111", "4012888888881881", "4242424242424242", "5555555555554444",
              "5105105105105100", "2223003122003222", "378282246310005", "371449635398431",
              "6011111111111117", "6011000990139424", "3530111333300000", "3566002020360505",
              "30569309025904", "38520000023237", "6200000000000005")
NANP_AREAS = ("202", "212", "312", "415", "617", "713")
RELIGIONS = ("Christian", "Muslim", "Jewish", "Hindu", "Buddhist", "Sikh", "Atheist", "Catholic")
DIAGNOSES = ("Type 2 diabetes", "Asthma", "Hypertension", "Epilepsy", "Depression", "HIV positive")
ETHNICITIES = ("Hispanic or Latino", "White British", "Black Caribbean", "Asian American", "Mixed race")
NEUTRAL_NOTES = ("prefers morning appointments", "paid in full", "no remarks", "renewal due in spring",
                 "asked for a paper invoice", "")
NUMERIC = ("customer_id", "f_0", "f_1", "f_2", "f_3", "f_4", "f_5", "visits", "balance", "score", "ratio",
           "ref_number", "big_ref", "created_at", "label")
COLUMNS = ("customer_id", "full_name", "email", "phone", "date_of_birth", "age", "sex", "postcode", "ssn",
           "national_id", "iban", "card_number", "ip_address", "notes", "religion", "diagnosis", "ethnicity",
           "group", *NUMERIC[1:])
QUASI_IDENTIFIERS = ("date_of_birth", "age", "sex", "postcode")
REFERENCE_DAY = dt.date(2025, 1, 1)


@dataclass(slots=True)
class SyntheticTable:
    """The table's rows (text cells) and, for each cell holding personal data, its kind."""

    columns: tuple[str, ...]
    rows: list[list[str]]
    truth: dict[tuple[int, str], str] = field(default_factory=dict)
    numeric_columns: tuple[str, ...] = NUMERIC
    quasi_identifiers: tuple[str, ...] = QUASI_IDENTIFIERS


class _Pools:
    """Well-formed identifiers drawn once (checking random numbers one by one is slow)."""

    def __init__(self, rng: random.Random, size: int) -> None:
        self.ssn = [_ssn(rng) for _ in range(size)]
        self.national = [_national(rng, i) for i in range(size)]
        self.iban = [_iban(rng, cc) for cc in ("GB", "DE", "NL", "FR") for _ in range(max(1, size // 4))]


def _digits(rng: random.Random, n: int) -> str:
    return "".join(rng.choice("0123456789") for _ in range(n))


def _until(rng: random.Random, make: Any, check: Any) -> str:
    while True:
        value = make()
        if check(value):
            return str(value)


def _ssn(rng: random.Random) -> str:
    def make() -> str:
        return f"{rng.randint(1, 665):03d}-{rng.randint(1, 99):02d}-{rng.randint(1, 9999):04d}"

    return _until(rng, make, ssn.is_valid)


def _national(rng: random.Random, i: int) -> tuple[str, str]:
    """(scheme, value), cycling through the schemes the generator writes."""
    scheme = ("es_dni", "nl_bsn", "fr_nir", "de_idnr", "gb_nino")[i % 5]
    if scheme == "es_dni":
        body = _digits(rng, 8)
        return scheme, body + dni.calc_check_digit(body)
    if scheme == "nl_bsn":
        return scheme, _until(rng, lambda: str(rng.randint(100_000_000, 999_999_999)), bsn.is_valid)
    if scheme == "fr_nir":
        body = (f"{rng.choice('12')}{rng.randint(40, 99):02d}{rng.randint(1, 12):02d}"
                f"{rng.randint(1, 95):02d}{_digits(rng, 6)}")
        full = body + nir.calc_check_digits(body)
        return scheme, f"{full[0]} {full[1:3]} {full[3:5]} {full[5:7]} {full[7:10]} {full[10:13]} {full[13:]}"
    if scheme == "de_idnr":
        return scheme, _until(rng, lambda: str(rng.randint(10**10, 10**11 - 1)), idnr.is_valid)
    first = rng.choice("ABCEGHJKLMNPRSTWXYZ")
    second = rng.choice("ABCEGHJKLMNPRSTWXYZ")
    if first + second in ("GB", "NK", "NT", "TN", "ZZ", "BG", "KN"):
        first, second = "A", "B"
    return scheme, f"{first}{second}{_digits(rng, 6)}{rng.choice('ABCD')}"


def _iban(rng: random.Random, cc: str) -> str:
    letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    bban = {"GB": lambda: "".join(rng.choice(letters) for _ in range(4)) + _digits(rng, 14),
            "DE": lambda: _digits(rng, 18),
            "NL": lambda: "".join(rng.choice(letters) for _ in range(4)) + _digits(rng, 10),
            "FR": lambda: _digits(rng, 23)}[cc]()
    number = int("".join(str(int(c, 36)) for c in bban + cc + "00"))
    return f"{cc}{98 - number % 97:02d}{bban}"


def _grouped(text: str, size: int = 4) -> str:
    return " ".join(text[i:i + size] for i in range(0, len(text), size))


def _phone(rng: random.Random) -> str:
    if rng.random() < 0.5:
        return f"+44 7700 900{rng.randint(0, 999):03d}"
    area, line = rng.choice(NANP_AREAS), f"01{rng.randint(0, 99):02d}"
    return rng.choice((f"+1 {area}-555-{line}", f"({area}) 555-{line}", f"+1 ({area}) 555-{line}"))


def _row(rng: random.Random, i: int, pools: _Pools) -> tuple[list[str], dict[str, str]]:
    """One row's cells and the kind of each that holds personal data."""
    kinds: dict[str, str] = {}
    first, last = rng.choice(FIRST), rng.choice(LAST)
    born = dt.date(1940, 1, 1) + dt.timedelta(days=rng.randint(0, 65 * 365))
    age = REFERENCE_DAY.year - born.year - ((REFERENCE_DAY.month, REFERENCE_DAY.day) < (born.month, born.day))
    surname = last.lower().replace("'", "")
    email = f"{first.lower()[:1]}.{surname}{rng.randint(1, 999)}@{rng.choice(DOMAINS)}"
    email = email.encode("ascii", "ignore").decode()
    phone = _phone(rng) if rng.random() < 0.95 else ""
    _, national = pools.national[rng.randrange(len(pools.national))]
    iban = pools.iban[rng.randrange(len(pools.iban))]
    card = rng.choice(TEST_CARDS)
    ip = (f"{rng.choice(('192.0.2', '198.51.100', '203.0.113'))}.{rng.randint(1, 254)}" if rng.random() < 0.7
          else f"2001:db8::{rng.randint(1, 0xFFFF):x}")
    note_kind = rng.choice(("phone", "email", "date_of_birth", "person_name", "", "", ""))
    note = {"phone": f"Call me on {_phone(rng)} after six",
            "email": f"Write to {first.lower()[:1]}{rng.randint(10, 99)}@{rng.choice(DOMAINS)} please",
            "date_of_birth": f"born {born.day} {born.strftime('%B')} {born.year}",
            "person_name": f"Contact: {rng.choice(FIRST)} {rng.choice(LAST)}",
            "": rng.choice(NEUTRAL_NOTES)}[note_kind]
    group = rng.choice((*RELIGIONS[:3], "Team A", "Team B", "Team C"))
    cells = {
        "customer_id": str(i + 1), "full_name": f"{first} {last}", "email": email, "phone": phone,
        "date_of_birth": born.isoformat(), "age": str(age), "sex": rng.choice("FFMMX"),
        "postcode": rng.choice(("90210", "10001", "60614", "94103", "02139")),
        "ssn": pools.ssn[rng.randrange(len(pools.ssn))],
        "national_id": national, "iban": _grouped(iban) if rng.random() < 0.5 else iban,
        "card_number": _grouped(card) if len(card) == 16 and rng.random() < 0.5 else card, "ip_address": ip,
        "notes": note, "religion": rng.choice((*RELIGIONS, "")), "diagnosis": rng.choice(DIAGNOSES),
        "ethnicity": rng.choice(ETHNICITIES), "group": group,
        "f_0": f"{rng.gauss(0, 1):.6f}", "f_1": f"{rng.gauss(5, 2):.4f}", "f_2": f"{rng.random():.8f}",
        "f_3": str(rng.randint(0, 16)), "f_4": f"{rng.uniform(-100, 100):.3f}",
        "f_5": f"{rng.gauss(0, 1e-3):.3e}",
        "visits": str(rng.randint(0, 40)), "balance": f"{rng.uniform(0, 99999):.2f}",
        "score": f"{-rng.random():.5f}", "ratio": f"{rng.random() * 1e-6:.2e}",
        "ref_number": str(rng.randint(100_000_000, 999_999_999)),
        "big_ref": str(rng.randint(10**15, 10**16 - 1)),
        "created_at": str(rng.randint(1_500_000_000, 1_750_000_000)), "label": str(rng.randint(0, 1)),
    }
    for column, kind in (("full_name", "person_name"), ("email", "email"), ("phone", "phone"),
                         ("date_of_birth", "date_of_birth"), ("ssn", "national_id"),
                         ("national_id", "national_id"),
                         ("iban", "iban"), ("card_number", "payment_card"),
                         ("ip_address", "ipv4" if "." in ip else "ipv6"), ("religion", "religion"),
                         ("diagnosis", "health"), ("ethnicity", "ethnicity")):
        if cells[column]:
            kinds[column] = kind
    if note_kind:
        kinds["notes"] = note_kind
    if group in RELIGIONS:
        kinds["group"] = "religion"
    return [cells[c] for c in COLUMNS], kinds


def iter_rows(rows: int, seed: int = 0) -> Iterator[tuple[list[str], dict[str, str]]]:
    """The table's rows one by one, with their cells' kinds (for tables too large to hold)."""
    rng = random.Random(seed)
    pools = _Pools(rng, min(max(rows, 5), 500))
    for i in range(rows):
        yield _row(rng, i, pools)


def generate(rows: int = 200, seed: int = 0) -> SyntheticTable:
    """A table of ``rows`` fictional people; the same ``seed`` gives the same table."""
    table = SyntheticTable(COLUMNS, [])
    for i, (cells, kinds) in enumerate(iter_rows(rows, seed)):
        table.rows.append(cells)
        table.truth.update({(i, column): kind for column, kind in kinds.items()})
    return table


def write_demo_table(path: Path, rows: int = 200, seed: int = 0) -> SyntheticTable:
    """Write :func:`generate`'s table to ``path`` (.csv, .jsonl or .parquet, atomically) and
    return it, with the kind of every personal-data cell."""
    path = Path(path)
    table = generate(rows, seed)
    fmt = table_format(path)
    with atomic_writer(path) as fh:
        if fmt == "csv":
            write_csv(fh, table.rows)
        elif fmt == "jsonl":
            for cells in table.rows:
                fh.write((json.dumps(_typed(cells), ensure_ascii=False) + "\n").encode("utf-8"))
        else:
            _write_parquet(fh, table.rows)
    return table


def write_csv(fh: Any, rows: Any, header: tuple[str, ...] = COLUMNS) -> None:
    import csv

    text = io.TextIOWrapper(fh, encoding="utf-8", newline="")
    writer = csv.writer(text)
    writer.writerow(header)
    writer.writerows(rows)
    text.flush()
    text.detach()


def _typed(cells: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for column, value in zip(COLUMNS, cells, strict=True):
        if column in NUMERIC or column == "age":
            out[column] = float(value) if any(c in value for c in ".e") else int(value)
        else:
            out[column] = value or None
    return out


def _write_parquet(fh: Any, rows: list[list[str]]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    records = [_typed(cells) for cells in rows]
    table = pa.Table.from_pylist(records)
    pq.write_table(table, fh)
