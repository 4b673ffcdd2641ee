"""The cell detectors of the personal-data scan: every kind on values written as people write
them, the numbers that must stay numbers, header hints, and the masked examples."""

from __future__ import annotations

import pytest

from guard.defenses.pii import ids
from guard.defenses.pii.dates import birth_date, parse_date
from guard.defenses.pii.detect import ColumnDetector, looks_masked
from guard.defenses.pii.masking import Pseudonymiser, canonical, partial
from guard.defenses.pii.vocab import header, special_category_of


def kinds(value: str, column: str = "notes") -> set[str]:
    result = ColumnDetector(column).cell(value)
    return {h.kind for h in result.hits}


FOUND = [
    ("john.smith@example.org", "email"),
    ("Write to a.b+tag@mail.example.co.uk today", "email"),
    ("+44 7700 900123", "phone"),
    ("Call me on +1 (202) 555-0143 after six", "phone"),
    ("(202) 555-0143", "phone"),
    ("020 7946 0123", "phone"),
    ("4111 1111 1111 1111", "payment_card"),
    ("card 4111111111111111 expired", "payment_card"),
    ("3782-822463-10005", "payment_card"),
    ("GB82 WEST 1234 5698 7654 32", "iban"),
    ("pay DE89370400440532013000 now", "iban"),
    ("SSN 123-45-6789", "national_id"),
    ("12345678Z", "national_id"),
    ("X1234567L", "national_id"),
    ("RSSMRA85T10A562S", "national_id"),
    ("131052-308T", "national_id"),
    ("811228-9874", "national_id"),
    ("390.533.447-05", "national_id"),
    ("AB 12 34 56 C", "national_id"),
    ("2341 2341 2346", "national_id"),
    ("1 95 10 99 126 111 46", "national_id"),
    ("client at 203.0.113.7", "ipv4"),
    ("2001:db8::8a2e:370:7334", "ipv6"),
    ("born 12 March 1985", "date_of_birth"),
    ("DOB: 1990-01-02, allergic to nuts", "date_of_birth"),
    ("Dear Maria Rossi,", "person_name"),
    ("my name is Kenji Tanaka", "person_name"),
    ("Contact: Fatima O'Neill-Smith", "person_name"),
]


@pytest.mark.parametrize(("value", "kind"), FOUND)
def test_each_kind_is_found_where_it_is_written(value: str, kind: str) -> None:
    assert kind in kinds(value), (value, kinds(value))


NOT_PERSONAL = [
    "0.12345", "-3", "1e-05", "12345", "2.5E+10", "nan", "  42 ", "-0.0",  # numbers
    "2023-01-05 12:30:00", "12:30:45", "v1.2.3.4", "3.14", "1,234,567",  # times, versions, amounts
    "4111111111111112",  # fails Luhn
    "GB82 WEST 1234 5698 7654 33",  # fails mod 97
    "123-45-678",  # too short for an SSN
    "hello world", "prefers morning appointments", "Team A",
    "000-12-3456",  # area 000 is never issued
    "555-0143",  # a 7-digit local number, no header saying phone
    "127.0.0.1", "0.0.0.0", "::1", "::",  # loopback and unspecified addresses
    "white", "conservative", "straight",  # words that name a special category only in context
]


@pytest.mark.parametrize("value", NOT_PERSONAL)
def test_values_that_are_not_personal_data(value: str) -> None:
    assert kinds(value) == set()
    assert kinds(value, "feature_17") == set()


def test_numbers_count_only_under_a_header_that_says_what_they_are() -> None:
    assert kinds("5550143", "phone") == {"phone"}
    assert kinds("5550143", "reading") == set()
    assert kinds("123456789", "SSN") == {"national_id"}
    assert kinds("123456789", "quantity") == set()
    assert kinds("4111111111111111", "card_number") == {"payment_card"}
    assert kinds("19850312", "DateOfBirth") == {"date_of_birth"}
    assert kinds("19850312", "order_date") == set()
    assert kinds("0.5", "phone") == set()


def test_bare_digits_are_candidates_until_the_column_confirms_them() -> None:
    result = ColumnDetector("ref").cell("4111111111111111")
    assert result.hits == () and result.bare is not None and "payment_card" in result.bare.valid
    confirmed = ColumnDetector("ref", confirmed=frozenset({"payment_card"})).cell("4111111111111111")
    assert [h.kind for h in confirmed.hits] == ["payment_card"]
    assert ColumnDetector("ref").cell("4111111111111112").bare.valid == frozenset()  # type: ignore[union-attr]


def test_a_generic_id_header_prefers_schemes_with_check_digits() -> None:
    [hit] = ColumnDetector("national_id").cell("111222333").hits  # a valid BSN, and SSN-shaped
    assert hit.detail == "nl_bsn"


def test_header_words_and_special_categories() -> None:
    assert header("DateOfBirth").words == ("date", "of", "birth")
    assert header("patient_Name").joined == "patientname"
    assert special_category_of(header("Religion")) == "religion"
    assert special_category_of(header("hiv_status")) == "health"
    assert special_category_of(header("trade_union_member")) == "trade_union"
    assert special_category_of(header("sexual orientation")) == "sexual_orientation"
    assert special_category_of(header("genotype")) == "genetic"
    assert special_category_of(header("fingerprint_template")) == "biometric"
    assert special_category_of(header("Ethnicity")) == "ethnicity"
    assert special_category_of(header("political_party")) == "political_opinion"
    for harmless in ("sex", "age", "union_id", "orientation", "mean radius", "condition", "third_party"):
        assert special_category_of(header(harmless)) is None, harmless


def test_special_categories_by_whole_cell_value() -> None:
    assert kinds("Muslim", "group") == {"religion"}
    assert kinds("hispanic or latino", "x") == {"ethnicity"}
    assert kinds("Type 2 diabetes", "x") == {"health"}
    assert kinds("a Muslim-owned bakery", "x") == set()  # inside free text: not matched
    result = ColumnDetector("diagnosis").cell("anything at all")
    assert [(h.kind, h.special) for h in result.hits] == [("health", True)]
    assert ColumnDetector("diagnosis").cell("n/a").hits == ()


def test_names_need_a_header_or_words_before_them() -> None:
    assert kinds("Jean-Luc O'Brien", "full_name") == {"person_name"}
    assert kinds("Jean-Luc O'Brien", "product_name") == set()
    assert kinds("Jean-Luc O'Brien", "comment") == set()
    assert kinds("Unknown", "name") == set()
    assert kinds("R2-D2", "name") == set()


def test_masked_values_are_not_found_again() -> None:
    for value in ("[EMAIL]", "pii_0123456789abcdef0123", "J*** S***", "***-**-**89"):
        assert looks_masked(value)
        assert ColumnDetector("full_name").cell(value).masked
        assert ColumnDetector("religion").cell(value).hits == ()
    assert not looks_masked("John Smith")


def test_partial_masks_show_shape_never_value() -> None:
    assert partial("email", "john.smith@example.org") == "j***@***.org"
    assert partial("payment_card", "4111 1111 1111 1111") == "**** **** **** 1111"
    assert partial("phone", "+44 7700 900123") == "*** **** ****23"
    assert partial("ipv4", "203.0.113.7") == "203.*.*.*"
    assert partial("date_of_birth", "1985-03-12") == "****-**-**"
    assert partial("person_name", "Maria Rossi") == "M*** R***"
    assert partial("iban", "GB82 WEST 1234 5698 7654 32") == "GB** **** **** **** **** 32"


@pytest.mark.parametrize("hostile", [
    "\x1b[31mEve\x1b[0m@example.org", "<script>alert(1)</script> Smith", "\u202eevil\u202c Name",
    "=HYPERLINK(\"http://x\") Bob", "+cmd|' /C calc'!A0", "@SUM(1+1)", "-2+3+cmd",
])
def test_masked_examples_carry_no_markup_controls_or_formulas(hostile: str) -> None:
    for kind in ("email", "person_name", "phone", "national_id", "health", "date_of_birth", "ipv4", "ipv6"):
        shown = partial(kind, hostile)
        assert all(c.isascii() and (c.isalnum() or c in " -./()*@:") for c in shown), (kind, shown)
        assert shown[:1] not in ("=", "+", "-", "@"), (kind, shown)


def test_pseudonyms_are_keyed_deterministic_and_canonical() -> None:
    a, b = Pseudonymiser(b"k" * 32), Pseudonymiser(b"j" * 32)
    token = a.token("email", "John@Example.org")
    assert token == a.token("email", " john@example.org ") and token.startswith("pii_") and len(token) == 24
    assert token != b.token("email", "john@example.org")
    assert a.token("phone", "+44 7700 900123") == a.token("phone", "+447700900123")
    assert a.token("phone", "+44 7700 900123") != a.token("phone", "+44 7700 900124")
    assert canonical("iban", "gb82 west 1234 5698 7654 32") == "GB82WEST12345698765432"
    assert not ColumnDetector("email").cell(token).hits


def test_dates() -> None:
    assert str(parse_date("12/03/1985")) == "1985-03-12"
    assert str(parse_date("March 12, 1985")) == "1985-03-12"
    assert str(parse_date("12-Mar-1985")) == "1985-03-12"
    assert parse_date("1985-02-30") is None
    assert parse_date("19850312") is None and str(parse_date("19850312", compact=True)) == "1985-03-12"
    assert birth_date("2999-01-01") is None and birth_date("1850-01-01") is None


def test_card_rules() -> None:
    assert ids.valid_card("4111111111111111") and ids.valid_card("378282246310005")
    assert not ids.valid_card("1234567812345670")  # Luhn-valid, but no issuer starts with 1
    assert not ids.valid_card("41111111111111")  # Visa has no 14-digit numbers
    assert ids.card_grouping_ok("4111 1111 1111 1111") and not ids.card_grouping_ok("41 11111111 111111")
