"""The personal-data scan of whole tables: recall and false positives on a generated table of
fictional people whose every personal cell is known, numeric feature tables that must come
back clean, exact k-anonymity on hand-made tables, the three formats, and the probe."""

from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer, load_diabetes, load_digits, load_iris, load_wine
from sklearn.linear_model import LogisticRegression

from guard.build import build_target_from_objects
from guard.defenses.pii import table as table_module
from guard.defenses.pii.anonymity import measure_values
from guard.defenses.pii.detect import ColumnDetector
from guard.defenses.pii.scan import ScanReport, scan_file
from guard.defenses.pii.synthetic import SyntheticTable, write_demo_table
from guard.errors import ConfigError, DataError
from guard.policies.catalogue import load_catalogue
from guard.probes import RunContext, build_probe, probe_class
from guard.target import Target

ROWS = 400


Demo = tuple[Path, SyntheticTable, ScanReport]


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Demo:
    path = tmp_path_factory.mktemp("pii") / "people.csv"
    table = write_demo_table(path, rows=ROWS, seed=7)
    return path, table, scan_file(path)


def cell_kinds(report: ScanReport, table: SyntheticTable) -> dict[tuple[int, str], set[str]]:
    """The kinds the scan's detectors (with what each column confirmed) give every cell."""
    detectors = {c.name: ColumnDetector(c.name, confirmed=c.confirmed) for c in report.scans}
    out = {}
    for i, row in enumerate(table.rows):
        for column, value in zip(table.columns, row, strict=True):
            found = {h.kind for h in detectors[column].cell(value).hits}
            if found:
                out[(i, column)] = found
    return out


def test_recall_and_no_false_positives_on_known_cells(demo: Demo) -> None:
    _, table, report = demo
    found = cell_kinds(report, table)
    hit = sum(kind in found.get(cell, set()) for cell, kind in table.truth.items())
    recall = hit / len(table.truth)
    assert len(table.truth) > 4000 and recall >= 0.99, recall
    false = {cell: kinds for cell, kinds in found.items()
             if table.truth.get(cell) not in kinds or len(kinds) > 1}
    assert false == {}
    assert not [cell for cell in found if cell[1] in table.numeric_columns]
    # the totals the policy controls read agree with the cells
    by_kind = Counter(table.truth.values())
    special = sum(n for kind, n in by_kind.items() if kind in ("religion", "health", "ethnicity"))
    assert report.pii_findings == len(table.truth) - special
    assert report.special_category_findings == special
    assert report.kinds() == dict(sorted(by_kind.items()))
    assert {c.name for c in report.columns_with_pii}.isdisjoint(table.numeric_columns)


def test_each_column_reports_kinds_counts_and_masked_examples(demo: Demo) -> None:
    path, table, report = demo
    doc = report.to_dict()
    columns = {c["name"]: c for c in doc["columns"]}
    email = columns["email"]["kinds"]["email"]
    assert email["count"] == ROWS and email["fraction"] == 1.0
    assert len(email["examples"]) == 3
    assert all(e.endswith(("@***.org", "@***.com", "@***.net")) for e in email["examples"])
    raw = path.read_text(encoding="utf-8")
    for column in doc["columns"]:
        for entry in [*column["kinds"].values(), *column["special_categories"].values()]:
            for example in entry["examples"]:
                assert "***" in example or "*" in example
                assert example not in raw or len(example) < 4, example  # never a raw value
    assert columns["national_id"]["kinds"]["national_id"]["schemes"].keys() == {
        "de_idnr", "es_dni", "fr_nir", "gb_nino", "nl_bsn"}
    assert set(columns["religion"]["special_categories"]) == {"religion"}
    assert doc["quasi_identifiers"] == ["date_of_birth", "age", "sex", "postcode"]
    assert columns["age"]["quasi_identifier"] == "age" and columns["age"]["kinds"] == {}
    assert {"k_anonymity", "unique_share", "l_diversity"} <= set(doc)
    assert doc["l_diversity"] is None  # no sensitive column named


@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_jsonl_and_parquet_give_the_csv_numbers(demo: Demo, tmp_path: Path,
                                                fmt: str) -> None:
    _, _, csv_report = demo
    other = tmp_path / f"people.{fmt}"
    write_demo_table(other, rows=ROWS, seed=7)
    report = scan_file(other)
    assert report.format == fmt
    assert report.kinds() == csv_report.kinds()
    assert (report.pii_findings, report.special_category_findings) == (
        csv_report.pii_findings, csv_report.special_category_findings)
    assert report.anonymity == csv_report.anonymity


SKLEARN = {"breast_cancer": load_breast_cancer, "wine": load_wine, "digits": load_digits, "iris": load_iris,
           "diabetes": load_diabetes}


@pytest.mark.parametrize("name", sorted(SKLEARN))
def test_numeric_feature_tables_hold_no_personal_data(tmp_path: Path, name: str) -> None:
    """Presidio tags numeric CSV cells as PERSON (microsoft/presidio issue 1173); Guard must not."""
    bunch = SKLEARN[name]()
    names = ([str(n) for n in getattr(bunch, "feature_names", [])]
             or [f"f{i}" for i in range(bunch.data.shape[1])])
    path = tmp_path / f"{name}.csv"
    header = ",".join([*(n.replace(",", " ") for n in names), "target"])
    np.savetxt(path, np.column_stack([bunch.data, bunch.target]), delimiter=",", header=header, comments="",
               fmt="%.10g")
    report = scan_file(path)
    assert report.rows == len(bunch.data)
    assert (report.pii_findings, report.special_category_findings) == (0, 0), report.kinds()
    assert report.kinds() == {}


def test_numeric_traps_hold_no_personal_data(tmp_path: Path) -> None:
    """Integers the length of cards and identifiers pass a check digit one time in 10 to 97:
    a column of them must not be read as cards or identifiers."""
    rng = np.random.default_rng(0)
    path = tmp_path / "traps.csv"
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["id16", "id9", "id11", "id15", "id12", "epoch_ms", "amount", "neg", "sci"])
        for _ in range(3000):
            writer.writerow([rng.integers(10**15, 10**16), rng.integers(10**8, 10**9),
                             rng.integers(10**10, 10**11),
                             rng.integers(10**14, 10**15), rng.integers(2 * 10**11, 10**12),
                             rng.integers(1_500_000_000_000, 1_800_000_000_000), f"{rng.normal(50, 20):.2f}",
                             f"{-rng.random():.6f}", f"{rng.random() * 1e-9:.3e}"])
    report = scan_file(path)
    assert (report.pii_findings, report.special_category_findings) == (0, 0), report.kinds()


def test_a_column_of_bare_card_numbers_is_confirmed(tmp_path: Path) -> None:
    path = tmp_path / "cards.csv"
    cards = ["4111111111111111", "5555555555554444", "378282246310005", "6011111111111117",
             "4242424242424242"]
    path.write_text("ref,x\n" + "".join(f"{c},{i}\n" for i, c in enumerate(cards * 3)))
    report = scan_file(path)
    assert report.column("ref").kinds["payment_card"].count == 15 and report.pii_findings == 15
    path.write_text("ref,x\n" + "".join(f"{c},{i}\n" for i, c in enumerate(cards[:4])))
    assert scan_file(path).pii_findings == 0  # four bare numbers are not enough to say


HAND_MADE = [  # age, zip, sex, diagnosis
    ("34", "12345", "F", "flu"), ("34", "12345", "f ", "asthma"), ("34", "12345", "F", "flu"),
    ("35", "12345", "M", "flu"), ("35", "12345", "M", "flu"),
    ("40", "54321", "F", "cancer"), ("40", "54321", "F", "asthma"), ("40", "54321", "F", "flu"),
    ("40", "54321", "F", "gout"),
    ("51", "99999", "M", "flu"),
]


def write_rows(path: Path, header: list[str], rows: list[tuple[str, ...]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def test_k_anonymity_unique_share_and_l_diversity_exactly(tmp_path: Path) -> None:
    path = write_rows(tmp_path / "hand.csv", ["age", "zip", "sex", "diagnosis"], HAND_MADE)
    # classes: (34,12345,F) x3 (case and spaces ignored), (35,12345,M) x2, (40,54321,F) x4, (51,99999,M) x1
    report = scan_file(path, sensitive="diagnosis")
    a = report.anonymity
    assert report.quasi_identifiers == ["age", "zip", "sex"]
    assert (a.k, a.unique_rows, a.classes, a.l) == (1, 1, 4, 1)
    doc = report.to_dict()
    assert (doc["k_anonymity"], doc["unique_share"], doc["l_diversity"]) == (1, 0.1, 1)
    without_last = write_rows(tmp_path / "hand2.csv", ["age", "zip", "sex", "diagnosis"], HAND_MADE[:-1])
    b = scan_file(without_last, sensitive="diagnosis").anonymity
    assert (b.k, b.unique_rows, b.classes, b.l) == (2, 0, 3, 1)  # the (35, M) class holds only "flu"
    c = scan_file(without_last, quasi_identifiers=["zip"], sensitive="diagnosis").anonymity
    assert (c.k, c.classes, c.l) == (4, 2, 2)  # 12345: flu, asthma; 54321: cancer, asthma, flu, gout
    d = scan_file(without_last, quasi_identifiers=["diagnosis"]).anonymity
    assert (d.k, d.unique_rows, d.classes) == (1, 2, 4)
    assert measure_values([r[:3] for r in HAND_MADE], [r[3] for r in HAND_MADE]) == a


def test_batches_give_the_same_answer(demo: Demo,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    path, _, whole = demo
    monkeypatch.setattr(table_module, "BATCH_ROWS", 7)
    split = scan_file(path)
    assert split.kinds() == whole.kinds() and split.anonymity == whole.anonymity
    assert [c.to_dict(ROWS) for c in split.scans] == [c.to_dict(ROWS) for c in whole.scans]


def test_quasi_identifiers_found_by_their_values(tmp_path: Path) -> None:
    rows = [("M" if i % 3 else "F", ["SW1A 1AA", "EC1A 1BB", "M1 1AE"][i % 3], str(i)) for i in range(30)]
    report = scan_file(write_rows(tmp_path / "v.csv", ["g", "where", "n"], rows))
    assert report.quasi_identifiers == ["g", "where"]
    assert report.column("g").quasi_identifier == "sex"
    assert report.column("where").quasi_identifier == "postcode"
    assert report.anonymity.k == 10


def test_nested_json_lines(tmp_path: Path) -> None:
    path = tmp_path / "nested.jsonl"
    records = [{"id": i, "contact": {"email": f"p{i}@example.org", "city": "Leeds"},
                "phones": ["+44 7700 900123", "+44 7700 900124"], "score": 0.5} for i in range(4)]
    records.append({"id": 9, "late": "x1@example.net"})
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    report = scan_file(path)
    assert report.columns == ["id", "contact.email", "contact.city", "phones[]", "score", "late"]
    assert report.column("contact.email").kinds["email"].count == 4
    assert report.column("phones[]").kinds["phone"].count == 8 and report.column("phones[]").pii_cells == 4
    assert report.pii_findings == 9 and report.rows == 5


def test_header_only_table(tmp_path: Path) -> None:
    report = scan_file(write_rows(tmp_path / "h.csv", ["email", "age"], []))
    assert (report.rows, report.pii_findings, report.anonymity.k) == (0, 0, 0)
    assert report.quasi_identifiers == ["age"]


def test_named_columns_must_exist(tmp_path: Path) -> None:
    path = write_rows(tmp_path / "hand.csv", ["age", "zip", "sex", "diagnosis"], HAND_MADE)
    with pytest.raises(DataError, match="--quasi-identifiers names no column 'postcode'; columns are age"):
        scan_file(path, quasi_identifiers=["age", "postcode"])
    with pytest.raises(DataError, match="--sensitive names no column 'illness'"):
        scan_file(path, sensitive="illness")
    jsonl = tmp_path / "t.jsonl"
    jsonl.write_text('{"age": 3}\n')
    with pytest.raises(DataError, match="--sensitive names no column 'x'"):
        scan_file(jsonl, sensitive="x")


# -- the probe -------------------------------------------------------------------------------------


def small_target(tmp_path: Path, files: dict[str, Path]) -> Target:
    x = np.random.default_rng(0).random((20, 3))
    y = np.arange(20) % 2
    target = build_target_from_objects(LogisticRegression().fit(x, y), x, y, clip="none", name="lr")
    target.files = dict(files)
    return target


def test_probe_evidence_matches_what_it_declares(demo: Demo,
                                                 tmp_path: Path) -> None:
    path, _, report = demo
    cls = probe_class("pii-scan")
    assert cls.id == "data.pii_scan" and cls.category == "data" and cls.default
    spec = load_catalogue().evidence[cls.id]
    assert set(spec.metrics) == set(cls.emits.metrics) and set(spec.params) == set(cls.emits.params)
    target = small_target(tmp_path, {"data": path})
    probe = build_probe("pii-scan", sensitive="religion")
    assert probe.applies_to(target)
    [ev] = probe.run(target, RunContext(seed=3))
    assert set(ev.metrics) == set(cls.emits.metrics) and set(ev.params) == set(cls.emits.params)
    assert ev.params["path"] == "people.csv" and ev.seed == 3
    assert ev.metrics["pii_findings"].value == report.pii_findings
    assert ev.metrics["special_category_findings"].value == report.special_category_findings
    assert ev.metrics["rows_scanned"].value == ROWS and ev.metrics["k_anonymity"].value == 1
    assert ev.metrics["unique_share"].n == ROWS and ev.metrics["l_diversity"].value >= 1
    assert ev.metrics["columns_with_pii"].value == len(report.columns_with_pii)
    json.dumps(ev.to_dict())  # plain JSON values only
    [plain] = build_probe("pii-scan").run(target, RunContext())
    assert "l_diversity" not in plain.metrics


def test_probe_chooses_its_files(demo: Demo, tmp_path: Path) -> None:
    path, _, _ = demo
    npz = tmp_path / "train.npz"
    np.savez(npz, x=np.zeros((2, 2)))
    arrays_only = small_target(tmp_path, {"data": npz})
    probe = build_probe("data.pii_scan")
    assert not probe.applies_to(arrays_only)
    reason = probe.why_not(arrays_only)
    assert "train.npz holds numeric arrays" in reason and "--pii-data" in reason
    with pytest.raises(ConfigError, match="--pii-data"):
        probe.run(arrays_only, RunContext())
    assert not probe.applies_to(small_target(tmp_path, {}))
    given = build_probe("data.pii_scan", paths=(str(path),))
    assert given.applies_to(arrays_only)
    assert [e.params["path"] for e in given.run(arrays_only, RunContext())] == ["people.csv"]
    both = small_target(tmp_path, {"data": path, "train_data": path})
    assert len(build_probe("data.pii_scan").run(both, RunContext())) == 1  # the same file once
    with pytest.raises(ConfigError, match="sensitive"):
        build_probe("data.pii_scan", sensitive=" ")
