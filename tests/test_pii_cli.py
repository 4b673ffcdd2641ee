"""``guard data scan`` and ``guard data mask`` from the command line: exit codes, output, and
bad input (one line, exit 2, never a traceback)."""

from __future__ import annotations

import base64
import json
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from guard.cli import cli
from guard.defenses.pii.synthetic import write_demo_table


def run(*args: object, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(cli, [str(a) for a in args], env=env)


@pytest.fixture(scope="module")
def people(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cli") / "people.csv"
    write_demo_table(path, rows=120, seed=5)
    return path


@pytest.fixture(scope="module")
def key(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("key") / "pii.key"
    result = run("keygen", "-o", path)
    assert result.exit_code == 0, result.output
    return path


def test_scan_text_and_json(people: Path) -> None:
    result = run("data", "scan", people)
    assert result.exit_code == 1, result.output  # personal data found
    lines = result.output.splitlines()
    assert lines[0] == f"{people}: 120 rows, 32 columns (csv)"
    assert any(line.split()[:2] == ["email", "email"] and "100.0%" in line for line in lines)
    assert any("religion (Art. 9)" in line for line in lines)
    assert "quasi-identifiers: date_of_birth, age, sex, postcode" in result.output
    result = run("data", "scan", people, "--format", "json", "--sensitive", "religion", "--quasi-identifiers",
                 "age,sex", "--quasi-identifiers", "postcode")
    doc = json.loads(result.stdout)
    assert doc["quasi_identifiers"] == ["age", "sex", "postcode"] and doc["sensitive"] == "religion"
    numbers = ("k_anonymity", "unique_share", "l_diversity", "pii_findings", "special_category_findings")
    for key_name in numbers:
        assert isinstance(doc[key_name], int | float), key_name
    assert doc["rows_scanned"] == 120


def test_scan_exit_codes(tmp_path: Path) -> None:
    clean = tmp_path / "clean.csv"
    clean.write_text("a,b\n0.1,2\n0.3,4\n")
    assert run("data", "scan", clean).exit_code == 0
    ages = tmp_path / "ages.csv"
    ages.write_text("age,b\n" + "".join(f"{20 + i},{i}\n" for i in range(10)))
    assert run("data", "scan", ages).exit_code == 0
    assert run("data", "scan", ages, "--min-k", "2").exit_code == 1  # every age unique
    out = tmp_path / "scan.json"
    result = run("data", "scan", ages, "--format", "json", "-o", out)
    assert result.exit_code == 0 and json.loads(out.read_text())["k_anonymity"] == 1


def test_mask_then_scan_is_clean(people: Path, key: Path, tmp_path: Path) -> None:
    out = tmp_path / "masked.csv"
    result = run("data", "mask", people, "-o", out, "--strategy", "hash", "--key", key, "--k", "3")
    assert result.exit_code == 0, result.output
    assert "a scan of the copy finds 0 cells of personal data and 0 of special-category data" in result.output
    assert run("data", "scan", out).exit_code == 0
    doc = json.loads(run("data", "scan", out, "--format", "json", "--quasi-identifiers",
                         "date_of_birth,age,sex,postcode").stdout)
    assert doc["k_anonymity"] >= 3
    again = run("data", "mask", people, "-o", out, "--strategy", "hash", "--key", key, "--k", "3", "--force",
                "--format", "json")
    assert again.exit_code == 0 and json.loads(again.stdout)["after"]["k_anonymity"] == doc["k_anonymity"]
    partial = run("data", "mask", people, "-o", tmp_path / "p.csv", "--columns", "email")
    assert partial.exit_code == 1 and "still holding personal data" in partial.output


def test_progress_on_request(people: Path) -> None:
    result = run("data", "scan", people, "--progress")
    assert "[guard] scanning people.csv: 100% of" in result.stderr
    assert "[guard]" not in run("data", "scan", people).stderr  # not a terminal: quiet by default


def test_progress_bar_on_a_terminal(people: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import guard.cli.output

    monkeypatch.setattr(guard.cli.output, "interactive", lambda stream=None: True)
    result = run("data", "scan", people, "--format", "json")  # rich's bar: on stderr, never stdout
    assert result.exit_code == 1 and json.loads(result.stdout)["rows_scanned"] == 120
    assert "[guard]" not in result.stderr  # the bar, not the plain lines
    assert run("data", "scan", people, "--no-progress").stderr == ""


def test_hostile_names_are_shown_escaped(tmp_path: Path) -> None:
    path = tmp_path / "h.csv"
    path.write_text('"\x1b[2Jcontact\u202e",x\na@example.org,1\nb@example.org,2\n', encoding="utf-8")
    result = run("data", "scan", path)
    assert result.exit_code == 1
    assert "\x1b" not in result.output and "\u202e" not in result.output
    assert "\\x1b[2Jcontact<U+202E>" in result.output


HUGE_FIELD = "a," + "x" * 200_000 + "\n"


@pytest.mark.parametrize(("name", "content", "message"), [
    ("ragged.csv", b"a,b\n1,2\n3\n", "line 3 has 1 cells, the header has 2"),
    ("latin1.csv", "name,city\nJos\xe9,Paris\n".encode("latin-1"), "line 2: not UTF-8 text"),
    ("huge.csv", ("h,i\n" + HUGE_FIELD).encode(), "a field is longer than 131072 characters"),
    ("long.csv", b"h\n" + b"x" * (5 << 20) + b"\n", "line 2 is longer than"),
    ("empty.csv", b"", "empty file"),
    ("quote.csv", b'a,b\n"unterminated,1\n2,3\n', "line 2: cannot read CSV (a quoted field opened on this "
     "line is never closed)"),
    # a quote opened in the header swallowed the whole file: it read as 0 rows, exit 0
    ("header_quote.csv", b'"a,b\n1,x@example.com\n', "line 1: cannot read CSV (a quoted field opened"),
    ("after_quote.csv", b'a,b\n1,"2"x\n', "line 2: cannot read CSV (',' expected after '\"'"),
    ("blank_header.csv", b"\na,b\n1,2\n", "line 1 is blank, expected a header row"),
    ("list.jsonl", b'{"a": 1}\n[1, 2]\n', "line 2: a JSON list, expected an object per line"),
    ("broken.jsonl", b'{"a": 1}\n{"a": \n', "line 2: not JSON"),
    ("deep.jsonl", b'{"a": ' + b"[" * 500 + b"]" * 500 + b"}\n", "nested deeper"),
    ("garbage.parquet", b"PAR1 not really", "not a Parquet file"),
    ("table.xlsx", b"PK\x03\x04", "unsupported table format .xlsx"),
    ("wide.csv", b",".join([b"c"] * 20_001) + b"\n1\n", "more than 20000 columns"),
])
def test_bad_input_is_one_line_exit_2(tmp_path: Path, name: str, content: bytes, message: str) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    for command in (["data", "scan", path], ["data", "mask", path, "-o", tmp_path / f"out{path.suffix}"]):
        result = run(*command)
        assert result.exit_code == 2, (name, result.output)
        assert message in result.output and len(result.output.strip().splitlines()) == 1, result.output
        assert "Traceback" not in result.output
    assert not (tmp_path / f"out{path.suffix}").exists()


def test_missing_files_and_columns(people: Path, tmp_path: Path) -> None:
    cases = [
        (["data", "scan", tmp_path / "nope.csv"], "no such file"),
        (["data", "scan", people, "--quasi-identifiers", "age,shoe_size"], "names no column 'shoe_size'"),
        (["data", "scan", people, "--sensitive", "salary"], "--sensitive names no column 'salary'"),
        (["data", "mask", people, "-o", tmp_path / "o.csv", "--k", "3", "--quasi-identifiers", "height"],
         "names no column 'height'"),
        (["data", "mask", people, "-o", people], "is the input file"),
        (["data", "mask", people, "-o", tmp_path / "o.csv", "--strategy", "hash"], "needs --key"),
        (["data", "mask", people, "-o", tmp_path / "o.csv", "--strategy", "generalize"], "needs --k"),
        (["data", "mask", people, "-o", tmp_path / "o.csv", "--key", people], "the key of --strategy hash"),
    ]
    for args, message in cases:
        result = run(*args)
        assert result.exit_code == 2, (args, result.output)
        assert message in result.output and len(result.output.strip().splitlines()) == 1, result.output
    folder = tmp_path / "d.csv"
    folder.mkdir()
    assert run("data", "scan", folder).exit_code == 2


@pytest.mark.parametrize("content", [
    "guard-kek-v1:" + base64.b64encode(b"k" * 16).decode() + "\n",  # a 128-bit key
    base64.b64encode(b"k" * 33).decode() + "\n",
    "00" * 31 + "\n",
])
def test_a_key_of_the_wrong_size_is_refused(people: Path, tmp_path: Path, content: str) -> None:
    bad = tmp_path / "bad.key"
    bad.write_text(content)
    out = tmp_path / "o.csv"
    result = run("data", "mask", people, "-o", out, "--strategy", "hash", "--key", bad)
    assert result.exit_code == 2 and "not a 256-bit key" in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1 and not out.exists()
    raw = tmp_path / "raw.key"
    raw.write_bytes(bytes(range(16)) + b"\xff" * 16)
    result = run("data", "mask", people, "-o", out, "--strategy", "hash", "--key", raw)
    assert result.exit_code == 2 and "not a key file" in result.output and not out.exists()


def test_parquet_without_pyarrow_says_how_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "t.parquet"
    write_demo_table(path, rows=10, seed=1)
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    result = run("data", "scan", path)
    assert result.exit_code == 2
    assert result.output.strip() == "Error: Parquet files need pyarrow: pip install guard-ml[parquet]"


@pytest.mark.slow
def test_a_large_table_streams_in_bounded_memory(tmp_path: Path) -> None:
    """Peak memory of a scan does not grow with the table: 4 MB and 60 MB of the same rows."""
    import subprocess

    code = ("import sys; from guard.defenses.pii.scan import scan_file; r = scan_file(sys.argv[1]); "
            "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1]; "
            "print(r.rows, r.pii_findings, hwm)")
    line = "".join(f"{i * 0.001:.6f}," for i in range(30)) + "user@example.org,+44 7700 900123,42\n"
    header = ",".join(f"f{i}" for i in range(30)) + ",email,phone,age\n"
    peaks = []
    for rows in (20_000, 300_000):
        path = tmp_path / f"t{rows}.csv"
        path.write_text(header + line * rows)
        out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True,
                             check=True)
        n, found, hwm_kib = (int(v) for v in out.stdout.split())
        assert (n, found) == (rows, 2 * rows)
        peaks.append(hwm_kib)
        path.unlink()
    assert peaks[1] - peaks[0] < 16 * 1024, peaks  # 15x the rows, under 16 MiB more (8 bytes a row of hashes)
