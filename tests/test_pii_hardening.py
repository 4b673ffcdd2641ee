"""Cases an attacker or an ordinary messy table brings to the personal-data scan: headers that
say "name" without saying whose, numbers with a Luhn digit that are not cards, ages of houses,
star signs, integer columns written as floats, and options that contradict each other."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from click.testing import CliRunner

from guard.cli import cli
from guard.defenses.pii.scan import ScanReport, scan_file
from guard.errors import ConfigError

PEOPLE = ["Maria Garcia", "John Smith", "Wei Zhang", "Fatima Khan", "Olga Ivanova", "Peter Jones"] * 5
PRODUCTS = ["Widget Pro", "Turbo Blender", "Solar Lamp", "Night Owl", "Blue Comet", "Iron Gate"] * 5
CARDS = ["4111111111111111", "5500005555555559", "4012888888881881", "378282246310005"] * 5


def write(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    with path.open("w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(header)
        out.writerows(rows)
    return path


def kinds(report: ScanReport) -> dict[str, dict[str, int]]:
    return {c.name: {k: v.count for k, v in (c.kinds | c.special).items()} for c in report.scans}


def test_a_name_column_is_names_only_when_its_values_are_people(tmp_path: Path) -> None:
    rows = [list(r) for r in zip(PEOPLE, PRODUCTS, strict=True)]
    mixed = scan_file(write(tmp_path / "a.csv", ["name", "product"], rows))
    assert kinds(mixed) == {"name": {"person_name": 30}, "product": {}}
    assert mixed.column("name").pii_cells == 30
    products = scan_file(write(tmp_path / "b.csv", ["name"], [[p] for p in PRODUCTS]))
    assert kinds(products) == {"name": {}}
    firms = ["Acme Corp", "Initech GmbH", "Wayne Enterprises", "Globex Inc"] * 5
    assert kinds(scan_file(write(tmp_path / "c.csv", ["customer"], [[f] for f in firms]))) == {"customer": {}}
    assert kinds(scan_file(write(tmp_path / "d.csv", ["customer"], [[p] for p in PEOPLE]))) == {
        "customer": {"person_name": 30}}


def test_luhn_numbers_that_are_not_cards(tmp_path: Path) -> None:
    report = scan_file(write(tmp_path / "cards.csv", ["gift_card", "card", "imei"],
                             [[c, c, "490154203237518"] for c in CARDS]))
    assert kinds(report) == {"gift_card": {}, "card": {"payment_card": 20}, "imei": {}}


def test_ages_of_things_and_star_signs(tmp_path: Path) -> None:
    rows = [[str(10 + i), str(20 + i), "Cancer", "Muslim", "Cancer"] for i in range(20)]
    report = scan_file(write(tmp_path / "e.csv", ["HouseAge", "age", "zodiac", "religion", "notes"], rows))
    assert report.column("HouseAge").quasi_identifier is None
    assert report.column("age").quasi_identifier == "age"
    assert kinds(report)["zodiac"] == {}
    assert kinds(report)["religion"] == {"religion": 20} and kinds(report)["notes"] == {"health": 20}


def test_phone_numbers_stored_as_numbers(tmp_path: Path) -> None:
    # pandas writes an integer column with a missing value as floats; an international number
    # stored as an integer loses its "+"
    rows = [["2025550143.0", "447700900123"]] * 10
    report = scan_file(write(tmp_path / "f.csv", ["phone", "mobile"], rows))
    assert kinds(report) == {"phone": {"phone": 10}, "mobile": {"phone": 10}}


def test_a_sensitive_column_cannot_also_be_a_quasi_identifier(tmp_path: Path) -> None:
    path = write(tmp_path / "g.csv", ["age", "diagnosis"], [["30", "flu"]] * 10)
    with pytest.raises(ConfigError, match="l-diversity is 1 by definition"):
        scan_file(path, quasi_identifiers=["age", "diagnosis"], sensitive="diagnosis")
    detected = scan_file(path, sensitive="age")  # what an attacker learns is not what they know
    assert "age" not in detected.quasi_identifiers


def test_cli_refuses_writing_over_its_input_and_two_keys(tmp_path: Path) -> None:
    path = write(tmp_path / "h.csv", ["email"], [["ann@example.com"]] * 3)
    before = path.read_bytes()
    result = CliRunner().invoke(cli, ["data", "scan", str(path), "--format", "json", "-o", str(path)])
    assert result.exit_code == 2 and "is the input file" in result.output
    assert path.read_bytes() == before
    key = tmp_path / "k.key"
    assert CliRunner().invoke(cli, ["keygen", "-o", str(key)]).exit_code == 0
    result = CliRunner().invoke(cli, ["data", "mask", str(path), "-o", str(tmp_path / "o.csv"), "--strategy",
                                      "hash", "--key", str(key), "--key-env", "SOME_KEY"])
    assert result.exit_code == 2 and "not both" in result.output


def test_parquet_strings_stored_as_binary_are_read(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    path = tmp_path / "hive.parquet"
    values = pa.array([b"ann@example.com", b"\xff\xfe"] * 5, type=pa.binary())
    pq.write_table(pa.table({"email": values}), path)
    assert kinds(scan_file(path)) == {"email": {"email": 5}}


def test_the_column_limit_is_one_of_guards_limits(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``table_columns`` is in guard.limits (listed in docs/limits.md) and its variable moves it."""
    from guard.errors import DataError

    path = write(tmp_path / "six.csv", [f"c{i}" for i in range(6)], [["1"] * 6])
    assert scan_file(path).rows == 1
    monkeypatch.setenv("GUARD_LIMIT_TABLE_COLUMNS", "5")
    with pytest.raises(DataError, match="more than 5 columns.*GUARD_LIMIT_TABLE_COLUMNS"):
        scan_file(path)
