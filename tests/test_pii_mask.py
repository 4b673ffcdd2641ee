"""``mask_file``: every strategy removes what the scan found, in every format; the input is
never touched; keyed tokens are stable and keyed; generalising reaches the k asked for."""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

import pytest

from guard.defenses.pii.rewrite import mask_file
from guard.defenses.pii.scan import scan_file
from guard.defenses.pii.synthetic import SyntheticTable, write_demo_table
from guard.errors import ConfigError, DataError

KEY = bytes(range(32))
ROWS = 240


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, SyntheticTable]]:
    folder = tmp_path_factory.mktemp("mask")
    return {fmt: (folder / f"people.{fmt}", write_demo_table(folder / f"people.{fmt}", rows=ROWS, seed=11))
            for fmt in ("csv", "jsonl", "parquet")}


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


Sources = dict[str, tuple[Path, SyntheticTable]]


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
@pytest.mark.parametrize("strategy", ["redact", "hash", "mask", "drop", "generalize"])
def test_every_strategy_leaves_nothing_to_find(sources: Sources, tmp_path: Path, fmt: str,
                                               strategy: str) -> None:
    src, _ = sources[fmt]
    before = digest(src)
    out = tmp_path / f"masked.{fmt}"
    k = 5 if strategy == "generalize" else None
    result = mask_file(src, out, strategy=strategy, key=KEY if strategy == "hash" else None, k=k)
    assert digest(src) == before  # the input is never changed
    assert result.before is not None and result.before.pii_findings > 2000
    again = scan_file(out)
    assert (again.pii_findings, again.special_category_findings) == (0, 0), again.kinds()
    assert result.after is not None and result.after.pii_findings == 0
    assert again.rows == ROWS
    if strategy == "drop":
        assert "email" not in again.columns and "f_0" in again.columns and "religion" not in again.columns
    else:
        assert again.columns == result.before.columns
    if k is not None:
        assert result.generalisation is not None and result.generalisation.k >= k
        assert result.after.anonymity.k == result.generalisation.k >= k
        assert scan_file(out, quasi_identifiers=list(result.generalisation.columns)).anonymity.k >= k


def test_hash_tokens_are_stable_keyed_and_linkable(sources: dict[str, tuple[Path, SyntheticTable]],
                                                   tmp_path: Path) -> None:
    src, _ = sources["csv"]
    first, second, other = tmp_path / "a.csv", tmp_path / "b.csv", tmp_path / "c.csv"
    mask_file(src, first, strategy="hash", key=KEY)
    mask_file(src, second, strategy="hash", key=KEY)
    mask_file(src, other, strategy="hash", key=b"\x01" * 32)
    a, b, c = read_csv(first), read_csv(second), read_csv(other)
    assert a == b  # same key, same tokens
    assert all(ra["email"] != rc["email"] for ra, rc in zip(a, c, strict=True))  # another key, other tokens
    original = read_csv(src)
    by_value: dict[str, set[str]] = {}
    for row_in, row_out in zip(original, a, strict=True):
        by_value.setdefault(row_in["card_number"].replace(" ", ""), set()).add(row_out["card_number"])
        assert row_out["email"].startswith("pii_") and row_in["email"] not in row_out["email"]
        assert row_out["f_0"] == row_in["f_0"] and row_out["age"] == row_in["age"]
    assert all(len(tokens) == 1 for tokens in by_value.values())  # one card, one token (grouped or not)
    assert len(by_value) > 10


def test_spans_inside_free_text_are_replaced_alone(sources: dict[str, tuple[Path, SyntheticTable]],
                                                   tmp_path: Path) -> None:
    src, _ = sources["csv"]
    out = tmp_path / "r.csv"
    mask_file(src, out, strategy="redact")
    notes = [r["notes"] for r in read_csv(out)]
    assert any(n.startswith("Call me on [PHONE] after six") for n in notes)
    assert any(n.startswith("Write to [EMAIL] please") for n in notes)
    assert "prefers morning appointments" in notes or "paid in full" in notes
    contacts = [n for n in notes if n.startswith("Contact:")]
    assert contacts and set(contacts) == {"Contact: [PERSON_NAME]"}  # O'Neill and Jean-Luc whole
    births = [n for n in notes if n.startswith("born")]
    assert births and set(births) == {"born [DATE_OF_BIRTH]"}


def test_named_columns_are_masked_whole(sources: Sources, tmp_path: Path) -> None:
    src, _ = sources["csv"]
    out = tmp_path / "n.csv"
    result = mask_file(src, out, strategy="redact", columns=["notes", "group"])
    rows = read_csv(out)
    assert {r["notes"] for r in rows} <= {"[VALUE]", ""} and {r["group"] for r in rows} == {"[VALUE]"}
    assert result.after is not None and result.after.column("email").pii_cells == ROWS  # not named: left
    with pytest.raises(DataError, match="--columns names no column 'nope'"):
        mask_file(src, tmp_path / "x.csv", strategy="redact", columns=["nope"])


def test_generalising_to_k_on_named_quasi_identifiers(tmp_path: Path) -> None:
    src = tmp_path / "q.csv"
    with src.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["age", "zip", "sex", "y"])
        for i in range(60):
            writer.writerow([20 + i % 37, f"{10000 + (i * 7) % 23:05d}", "FM"[i % 2], i % 2])
    assert scan_file(src).anonymity.k == 1
    for k in (2, 5, 10):
        out = tmp_path / f"q{k}.csv"
        result = mask_file(src, out, strategy="generalize", k=k, quasi_identifiers=["age", "zip"])
        g = result.generalisation
        assert g is not None and g.columns == ("age", "zip") and g.k >= k
        measured = scan_file(out, quasi_identifiers=["age", "zip"]).anonymity
        assert measured.k == g.k
        assert g.suppressed_rows <= 0.05 * 60
        assert [r["y"] for r in read_csv(out)] == [str(i % 2) for i in range(60)]  # labels untouched
    with pytest.raises(DataError, match="more than the table's 60 rows"):
        mask_file(src, tmp_path / "q100.csv", strategy="generalize", k=100, quasi_identifiers=["age"])


def test_refusals(sources: dict[str, tuple[Path, SyntheticTable]], tmp_path: Path) -> None:
    src, _ = sources["csv"]
    with pytest.raises(ConfigError, match="is the input file"):
        mask_file(src, src, strategy="redact")
    link = tmp_path / "link.csv"
    link.symlink_to(src)
    with pytest.raises(ConfigError, match="is the input file"):
        mask_file(src, link, strategy="redact", overwrite=True)
    existing = tmp_path / "e.csv"
    existing.write_text("keep me")
    with pytest.raises(ConfigError, match="exists; pass --force"):
        mask_file(src, existing, strategy="redact")
    assert existing.read_text() == "keep me"
    with pytest.raises(ConfigError, match="needs --key"):
        mask_file(src, tmp_path / "h.csv", strategy="hash")
    with pytest.raises(ConfigError, match="needs --k"):
        mask_file(src, tmp_path / "g.csv", strategy="generalize")
    with pytest.raises(ConfigError, match="input's format"):
        mask_file(src, tmp_path / "g.jsonl", strategy="redact")
    assert not (tmp_path / "h.csv").exists() and not (tmp_path / "g.csv").exists()


def test_formula_cells_are_neutralised(tmp_path: Path) -> None:
    src = tmp_path / "f.csv"
    src.write_text('email,note,n\n"=HYPERLINK(""http://x"",""bob@example.org"")",+cmd|calc,-1.5\n'
                   "a@example.org,@SUM(A1),-2\n", encoding="utf-8")
    out = tmp_path / "o.csv"
    result = mask_file(src, out, strategy="redact")
    rows = read_csv(out)
    assert rows[0]["email"] == "'=HYPERLINK(\"http://x\",\"[EMAIL]\")"
    assert rows[0]["note"] == "'+cmd|calc" and rows[1]["note"] == "'@SUM(A1)"
    assert [r["n"] for r in rows] == ["-1.5", "-2"]  # numbers stay numbers
    assert result.formulas_neutralised == 3
    kept = tmp_path / "k.csv"
    mask_file(src, kept, strategy="redact", neutralize_formulas=False)
    assert read_csv(kept)[0]["note"] == "+cmd|calc"
    for row in rows:
        assert all(not v.startswith(("=", "+", "@")) for v in row.values())


def test_masked_jsonl_keeps_types_and_structure(tmp_path: Path) -> None:
    src = tmp_path / "n.jsonl"
    src.write_text(json.dumps({"id": 1, "contact": {"email": "p@example.org", "n": 2.5},
                               "phones": ["+44 7700 900123", "none here"], "ok": True}) + "\n")
    out = tmp_path / "o.jsonl"
    mask_file(src, out, strategy="mask")
    [record] = [json.loads(line) for line in out.read_text().splitlines()]
    assert record == {"id": 1, "contact": {"email": "p***@***.org", "n": 2.5},
                      "phones": ["*** **** ****23", "none here"], "ok": True}


def test_headers_are_written_as_they_were(tmp_path: Path) -> None:
    src = tmp_path / "d.csv"
    src.write_bytes("\ufeffemail,email, ,n\r\na@example.org,b@example.org,x,1\r\n".encode())
    report = scan_file(src)
    assert report.columns == ["email", "email#2", "(column 3)", "n"] and report.pii_findings == 2
    out = tmp_path / "o.csv"
    mask_file(src, out, strategy="redact")
    assert out.read_text(encoding="utf-8").splitlines() == ["email,email, ,n", "[EMAIL],[EMAIL],x,1"]
    dropped = tmp_path / "p.csv"
    mask_file(src, dropped, strategy="drop")
    assert dropped.read_text(encoding="utf-8").splitlines() == [" ,n", "x,1"]
