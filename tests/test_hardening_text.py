"""Attacker-chosen text is shown, never obeyed: terminals, the scan table, Markdown and HTML.

A model's file name, a plug-in's probe id or an import name inside a pickle can hold an ESC
(a terminal escape sequence), a BEL, a backspace, rich markup (``[bold red]``) or a
right-to-left override that makes ``model<U+202E>gnp.exe<U+202C>.skops`` read as
``modelexe.png``. Every human-readable output spells those characters out
(:func:`guard.textsafe.visible`); JSON and SARIF keep the exact strings.

Every hostile character in this file is written as an escape, so the file itself stays plain.
"""

from __future__ import annotations

import io
import json
import os
import re
import types
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from fuzzing import FUZZ, assert_handled
from hypothesis import given
from hypothesis import strategies as st
from report_fixtures import audit

from guard.cli import cli
from guard.textsafe import HIDDEN_CATEGORIES, json_text, plain, visible

RLO_NAME = "model\u202egnp.exe\u202c.skops"
HOSTILE_NAME = "m\x1b[2Jo\x07d\x08[bold red]" + RLO_NAME
"""ESC (with a clear-screen sequence after it), BEL, backspace, rich markup and the override."""
HOSTILE_SHOWN = "m\\x1b[2Jo\\x07d\\x08[bold red]model<U+202E>gnp.exe<U+202C>.skops"
RAW = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u00ad\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]")
"""What must never reach a terminal, a Markdown file or a page raw (newline and tab are the
files' own layout; inside a value :func:`visible` escapes them too)."""


def raw_in(text: str) -> list[str]:
    return [f"U+{ord(ch):04X}" for ch in RAW.findall(text)]


# -- visible: every category -----------------------------------------------------------------


@pytest.mark.parametrize(("text", "shown"), [
    ("\x00", "\\x00"),                  # C0
    ("\x07", "\\x07"),                  # BEL
    ("\x08", "\\x08"),                  # backspace
    ("\x1b[31m", "\\x1b[31m"),          # ESC: the sequence after it is harmless text
    ("a\nb", "a\\nb"),                  # a single-line field cannot take a line break
    ("a\tb", "a\\tb"),
    ("a\rb", "a\\rb"),
    ("\x7f", "\\x7f"),                  # DEL
    ("\x85", "\\x85"),                  # C1: NEL
    ("\x9b", "\\x9b"),                  # C1: CSI, an escape sequence in one character
    ("\u202a\u202b\u202c\u202d\u202e", "<U+202A><U+202B><U+202C><U+202D><U+202E>"),  # embeddings, overrides
    ("\u2066\u2067\u2068\u2069", "<U+2066><U+2067><U+2068><U+2069>"),  # isolates
    ("\u200e\u200f\u061c", "<U+200E><U+200F><U+061C>"),               # marks
    ("a\u200bb", "a<U+200B>b"),         # zero-width space (Cf)
    ("\u200d\u2060\ufeff\u00ad", "<U+200D><U+2060><U+FEFF><U+00AD>"),  # other format characters
    ("\U000e0041", "<U+E0041>"),        # a tag character: invisible, beyond the BMP
    ("\u2028\u2029", "<U+2028><U+2029>"),  # line and paragraph separators
    ("\ud800", "<U+D800>"),             # lone surrogates, as a file name's undecodable byte is
    ("bad\udcff", "bad<U+DCFF>"),
    (RLO_NAME, "model<U+202E>gnp.exe<U+202C>.skops"),
    (HOSTILE_NAME, HOSTILE_SHOWN),
])
def test_visible_spells_out_every_hidden_category(text: str, shown: str) -> None:
    assert visible(text) == shown
    assert visible(shown) == shown  # idempotent: what it returns is all visible


@pytest.mark.parametrize("text", ["model.skops", "digits cnn", "é ü ß", "日本語のモデル", "a\u00a0b",
                                  "\u05e9\u05dc\u05d5\u05dd", "emoji \U0001f600", "[bold red]x[/]",
                                  "C:\\models\\x1b", ""])
def test_visible_keeps_printable_text(text: str) -> None:
    """Letters of any script, non-breaking spaces and brackets are what they look like."""
    assert visible(text) == text


def test_plain_is_never_rich_markup() -> None:
    from rich.console import Console

    buffer = io.StringIO()
    Console(file=buffer, width=200, color_system=None).print(plain("[bold red]x[/]\x1b"))
    assert buffer.getvalue() == "[bold red]x[/]\\x1b\n"


def test_json_text_keeps_the_strings_and_shows_nothing_raw() -> None:
    value = {"path": HOSTILE_NAME + "\udcff\x9b\U000e0041", "n": [1, "\u2028"]}
    document = json_text(json.dumps(value, indent=2, ensure_ascii=False))
    assert json.loads(document) == value
    assert raw_in(document.replace("\n", "")) == []
    document.encode("utf-8")  # a lone surrogate, escaped, can be written at all


@FUZZ
@given(st.text(st.characters(exclude_categories=()), max_size=40))
def test_visible_leaves_no_hidden_character(text: str) -> None:
    """Whatever the input, surrogates included: nothing hidden left, idempotent, JSON exact."""
    import unicodedata

    shown = visible(text)
    assert not [ch for ch in shown if unicodedata.category(ch) in HIDDEN_CATEGORIES]
    assert visible(shown) == shown
    assert json.loads(json_text(json.dumps(text, ensure_ascii=False))) == text


# -- guard scan -------------------------------------------------------------------------------


def _pickle_importing(module: str, name: str) -> bytes:
    """A protocol-4 pickle that imports module.name (never loaded: the scanner reads it)."""
    m, n = module.encode(), name.encode()
    return b"\x80\x04\x8c" + bytes([len(m)]) + m + b"\x8c" + bytes([len(n)]) + n + b"\x93)\x81."


@pytest.fixture()
def hostile_files(tmp_path: Path) -> Path:
    folder = tmp_path / "models"
    folder.mkdir()
    for name in ("bell\x07.pkl", "back\x08space.pkl", "esc\x1b[2J.pkl", "[bold red]markup.pkl",
                 "model\u202egnp.exe\u202c.pkl"):
        (folder / name).write_bytes(_pickle_importing("collections", "OrderedDict"))
    (folder / "evil.pkl").write_bytes(_pickle_importing("os\x1b]0;pwned\x07", "sys\u202etem"))
    return folder


def test_scan_table_shows_escapes(hostile_files: Path) -> None:
    result = CliRunner().invoke(cli, ["scan", str(hostile_files)])
    out = result.output
    assert result.exit_code in (0, 1), out
    assert raw_in(out) == []
    for shown in ("bell\\x07.pkl", "back\\x08space.pkl", "esc\\x1b[2J.pkl", "[bold red]markup.pkl",
                  "model<U+202E>gnp.exe<U+202C>.pkl", "os\\x1b]0;pwned\\x07", "sys<U+202E>tem"):
        assert shown in out, shown


def test_scan_text_file_shows_escapes(hostile_files: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["scan", str(hostile_files), "-o", str(tmp_path / "scan.txt")])
    assert result.exit_code in (0, 1), result.output
    text = (tmp_path / "scan.txt").read_text()
    assert raw_in(text) == []
    assert "[bold red]markup.pkl" in text and "model<U+202E>gnp.exe<U+202C>.pkl" in text


@pytest.mark.parametrize("fmt", ["json", "sarif"])
def test_scan_json_and_sarif_keep_the_exact_names(hostile_files: Path, tmp_path: Path, fmt: str) -> None:
    result = CliRunner().invoke(cli, ["scan", str(hostile_files), "--format", fmt])
    assert result.exit_code in (0, 1), result.output
    assert raw_in(result.output.replace("\n", "")) == []  # spelled as JSON's \u escapes
    doc = json.loads(result.output)
    if fmt == "json":
        names = {Path(f["path"]).name for f in doc["files"]}
        assert "model\u202egnp.exe\u202c.pkl" in names and "esc\x1b[2J.pkl" in names
    else:
        [run] = doc["runs"]
        assert any("os\x1b]0;pwned\x07" in r["properties"]["global"] for r in run["results"])


def test_scan_json_of_an_undecodable_file_name_is_written(tmp_path: Path) -> None:
    """A name with a byte that is not UTF-8 holds a lone surrogate; the report still writes."""
    name = os.fsdecode(b"bad\xff.pkl")
    (tmp_path / name).write_bytes(_pickle_importing("collections", "OrderedDict"))
    out = tmp_path / "scan.json"
    result = CliRunner().invoke(cli, ["scan", str(tmp_path / name), "--format", "json", "-o", str(out)])
    assert result.exit_code == 0, result.output
    [entry] = json.loads(out.read_text())["files"]
    assert entry["path"].endswith(name)


# -- guard audit: the terminal, report.md, report.html, report.json ---------------------------


@dataclass(frozen=True)
class Audited:
    output: str
    out: Path


@pytest.fixture(scope="module")
def audited(tmp_path_factory: pytest.TempPathFactory) -> Audited:
    """One audit of a tiny skops model whose file name is hostile."""
    import numpy as np
    import skops.io
    from sklearn.linear_model import LogisticRegression

    folder = tmp_path_factory.mktemp("hostile")
    rng = np.random.default_rng(0)
    x = rng.random((60, 4)).astype(np.float32)
    y = (x[:, 0] > 0.5).astype(np.int64)
    skops.io.dump(LogisticRegression().fit(x, y), folder / HOSTILE_NAME)
    np.savez(folder / "eval.npz", x=x, y=y)
    out = folder / "reports"
    result = CliRunner().invoke(cli, [
        "audit", "--model", str(folder / HOSTILE_NAME), "--data", str(folder / "eval.npz"),
        "--clip", "0,1", "--attack", "pgd", "--eps", "0.1", "--samples", "30", "--steps", "3",
        "--policy", "baseline", "--fail-on", "never", "--format", "json,html,md", "--out", str(out),
    ])
    assert result.exit_code == 0, result.output
    return Audited(result.output, out)


def test_audit_terminal_shows_escapes_and_reads_no_markup(audited: Audited) -> None:
    """The progress lines, the summary table's title and the findings table."""
    assert raw_in(audited.output) == []
    stem = HOSTILE_SHOWN.removesuffix(".skops")
    progress = [line for line in audited.output.splitlines() if line.startswith("[guard] ")]
    assert progress and all(line.startswith(f"[guard] {stem}: ") for line in progress)
    assert f"{stem} (sklearn," in audited.output  # the summary table's title
    assert f"{stem}: findings" in audited.output


def test_audit_markdown_shows_escapes(audited: Audited) -> None:
    text = (audited.out / "report.md").read_text()
    assert raw_in(text) == []
    assert f"### `{HOSTILE_SHOWN.removesuffix('.skops')}`" in text


def test_audit_html_shows_escapes(audited: Audited) -> None:
    page = (audited.out / "report.html").read_text()
    assert raw_in(page) == []
    shown = HOSTILE_SHOWN.removesuffix(".skops").replace("<", "&lt;").replace(">", "&gt;")
    assert f"<h2>{shown}</h2>" in page
    assert "<U+202E>" not in page  # autoescape still applies to the escape itself


def test_audit_json_keeps_the_exact_name(audited: Audited) -> None:
    doc = json.loads((audited.out / "report.json").read_text())
    assert doc["target"]["name"] == HOSTILE_NAME.removesuffix(".skops")
    assert doc["target"]["artifact"].endswith(HOSTILE_NAME)


# -- the renderers on their own: Markdown cells, HTML and its SVG, the rich progress bar -------


def _hostile_audit() -> dict[str, Any]:
    """The report fixtures' audit with hostile text in a finding, a flag and a chart label."""
    from guard.reports.json_report import audit_dicts

    [doc] = audit_dicts([audit(HOSTILE_NAME, "torch", "Net\u202e", with_findings=True)])
    doc["findings"][0]["title"] = "title | with `code`\nand a line \u202eesrever"
    doc["findings"][0]["detail"] = "detail \x1b[2J\u2066isolated\u2069"
    doc["findings"][0]["control"] = "GRD|X\n`"
    for ev in doc["evidence"]:
        for flag in ev.get("flags") or ():
            flag["detail"] = "flag \u202edetail\x08"
        if ev["probe"] == "privacy.membership_inference":
            ev["params"]["attack"] = "loss\u202ethreshold\x1b"
    return doc


def test_markdown_table_cells_stay_one_cell_on_one_row() -> None:
    from guard.reports.markdown import render_markdown

    text = render_markdown([_hostile_audit()])
    assert raw_in(text) == []
    rows = [line for line in text.splitlines() if line.startswith("| ")]
    [row] = [line for line in rows if "GRD\\|X" in line]
    cells = re.split(r"(?<!\\)\|", row)
    assert len(cells) == 6, row  # four cells between five unescaped bars
    assert "\\n" in row and "<U+202E>" not in row and "&lt;U+202E&gt;" in row
    assert not any(line.startswith("and a line") for line in text.splitlines())


def test_html_page_and_charts_show_bidi_controls() -> None:
    from guard.reports.html import render_html

    page = render_html([_hostile_audit()])
    assert raw_in(page) == []
    assert "Net&lt;U+202E&gt;" in page
    assert "detail \\x1b[2J&lt;U+2066&gt;isolated&lt;U+2069&gt;" in page
    assert "flag &lt;U+202E&gt;detail\\x08" in page
    svg = "".join(re.findall(r"<svg.*?</svg>", page, re.DOTALL))
    assert "loss&lt;U+202E&gt;threshold\\x1b" in svg  # the ROC chart's legend and tooltips


def test_rich_progress_bar_shows_escapes(monkeypatch: pytest.MonkeyPatch) -> None:
    from rich.console import Console

    from guard.cli import output

    buffer = io.StringIO()

    def console(**_: Any) -> Console:
        return Console(file=buffer, force_terminal=True, color_system=None, width=300)

    monkeypatch.setattr(output, "Console", console)
    with output.progress_reporter(HOSTILE_NAME, enabled=True) as report:
        report("evasion.pgd [bold]eps\x1b", 0, 2)
        report("evasion.pgd [bold]eps\x1b", 1, 2)
    drawn = buffer.getvalue()
    assert f"{HOSTILE_SHOWN}: evasion.pgd [bold]eps\\x1b" in drawn


# -- guard probes: a plug-in's id, aliases and defaults ----------------------------------------


class _Colour:
    def __repr__(self) -> str:
        return "\x1b[31mred\u202e"


@dataclass(frozen=True)
class _Settings:
    colour: object = _Colour()


def test_probes_table_shows_a_plugins_escapes(monkeypatch: pytest.MonkeyPatch) -> None:
    import guard.probes

    plugin = types.SimpleNamespace(id="plug\x1b[2J.in\u202eexe", aliases=("[bold]alias[/]",), stage="model",
                                   requires=frozenset(), default=False, settings_type=_Settings)

    def installed() -> Iterator[Any]:
        yield plugin

    monkeypatch.setattr(guard.probes, "probes", installed)
    result = CliRunner().invoke(cli, ["probes"])
    assert result.exit_code == 0, result.output
    assert raw_in(result.output) == []
    for shown in ("plug\\x1b[2J.in<U+202E>exe", "[bold]alias[/]", "colour=\\x1b[31mred<U+202E>"):
        assert shown in result.output, shown


# -- any name at all --------------------------------------------------------------------------

NAMES = st.text(st.characters(exclude_characters="/\x00\u2502", exclude_categories=("Cs",)),
                min_size=1, max_size=30).filter(lambda s: s not in (".", "..") and len(s.encode()) < 200)


def _first_column(table: str) -> str:
    """The scan table's file column, its folded pieces joined, without white space."""
    body = table.split("\u2521", 1)[1]  # below the header rule
    pieces = [line.split("\u2502")[1] for line in body.splitlines() if line.startswith("\u2502")]
    return "".join("".join(pieces).split())


@FUZZ
@given(name=NAMES)
def test_any_file_name_scans_visibly_and_exactly(name: str, tmp_path_factory: pytest.TempPathFactory) -> None:
    folder = tmp_path_factory.mktemp("name")
    path = folder / name
    path.write_bytes(_pickle_importing("collections", "OrderedDict"))
    table = assert_handled(["scan", str(path)]).result.output
    assert raw_in(table) == []
    assert _first_column(table).endswith("".join(visible(name).split()))  # folded, never hidden
    document = assert_handled(["scan", str(path), "--format", "json"]).result.output
    assert raw_in(document.replace("\n", "")) == []
    assert json.loads(document)["files"][0]["path"] == str(path)
