"""Property tests: report.json, baselines and signature manifests that a hand edit, a bug or an
attacker made, fed to the real CLI.

Each example starts from a real file (a report set written by ``write_reports`` from the
report fixtures; a manifest written by ``guard sign``) and changes one to three places in it:
a value replaced by any JSON value, a key removed, or a value replaced by raw text no writer
produces (``1e400``, ``NaN``, a 400-digit integer, a lone surrogate, brackets nested 100,000
deep). Some examples are then cut short. Whatever comes out, ``guard report``, ``guard report
--baseline`` and ``guard verify`` must end as :func:`tests.fuzzing.assert_handled` says: exit
0, 1 or 2, one line, no traceback, within the time and memory budget.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from fuzzing import FUZZ, assert_handled
from hypothesis import given
from hypothesis import strategies as st
from report_fixtures import two_audits

from guard.cli import cli
from guard.defenses.crypto.signing import PAYLOAD_TYPE, load_private_key, pae
from guard.reports import write_reports

HOLE = "\x00hole\x00"
"""Stands in for a raw fragment while the document is serialized, then is replaced by it."""

NASTY = [
    "1e400", "-1e400", "NaN", "Infinity", "-Infinity", "1" + "0" * 400, "-" + "9" * 5000,
    '"\\ud800"', '"\\udc00x"', '"a\\ud83d"', '"\\ud83d\\ude00"', '{"\\ud800": 1}',
    "[" * 64 + "]" * 64, "[" * 65 + "]" * 65, "[" * 100_000 + "]" * 100_000,
    '{"a":' * 5000 + "1" + "}" * 5000, "[" * 100_000, '"[[[[{{{{"', "1.5e308", "5e-324", "-0",
]

scalars = (st.none() | st.booleans() | st.integers(-(2**70), 2**70)
           | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=12))
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3)
                      | st.dictionaries(st.text(max_size=6), inner, max_size=3), max_leaves=8)
fragments = st.one_of(values.map(json.dumps), st.sampled_from(NASTY))


def same_kind(value: Any) -> st.SearchStrategy[Any]:
    """Another value of the same JSON type: the changes a schema lets through, which the
    renderers and the policy engine must take."""
    if isinstance(value, bool):
        return st.booleans()
    if isinstance(value, int):
        return st.integers(-(2**70), 2**70) | st.sampled_from([0, 1, -1, 2**63])
    if isinstance(value, float):
        edges = st.sampled_from([0.0, -0.0, 1.7e308, 5e-324])
        return st.floats(allow_nan=False, allow_infinity=False) | edges
    if isinstance(value, str):
        return st.text(max_size=30) | st.sampled_from(["", "<script>x</script>", "a\nb", "%s{0}", "\u2028"])
    if isinstance(value, list):
        return st.integers(0, len(value)).map(lambda k: value[:k]) | st.just(value[::-1])
    return values


def paths_of(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every place in a JSON document, the root included, parents before children."""
    yield prefix
    if isinstance(value, dict):
        for key, item in value.items():
            yield from paths_of(item, (*prefix, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from paths_of(item, (*prefix, i))


def mutated(document: Any, draw: st.DrawFn) -> str:
    """The document as text, changed in one to three places, sometimes cut short."""
    doc = json.loads(json.dumps(document))
    raw: list[str] = []
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(list(paths_of(doc))))
        action = draw(st.sampled_from(["replace", "same kind", "same kind", "delete", "add key"]))
        if not path and action != "same kind":
            raw.append(draw(fragments))
            doc = HOLE + str(len(raw) - 1)
            break
        target = doc
        for step in path:
            target = target[step]
        if action == "same kind" or (action == "add key" and isinstance(target, dict)):
            if isinstance(target, dict):
                target[draw(st.text(max_size=8))] = draw(values)
                continue
            replacement = draw(same_kind(target))
            if not path:
                doc = replacement
                continue
        *parent_path, last = path
        parent = doc
        for step in parent_path:
            parent = parent[step]
        if action == "delete":
            del parent[last]
        elif action == "same kind":
            parent[last] = replacement
        else:
            raw.append(draw(fragments))
            parent[last] = HOLE + str(len(raw) - 1)
    text = json.dumps(doc, indent=1)
    for i, fragment in enumerate(raw):
        text = text.replace(json.dumps(HOLE + str(i)), fragment)
    if draw(st.integers(0, 9)) == 0:
        text = text[:draw(st.integers(0, len(text)))]
    return text


@st.composite
def report_texts(draw: st.DrawFn, documents: list[Any]) -> str:
    return mutated(draw(st.sampled_from(documents)), draw)


@pytest.fixture(scope="module")
def report_set(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real set (one run id in every file) of two targets, and the one-target report.json."""
    folder = tmp_path_factory.mktemp("set")
    write_reports(two_audits(), folder, ["json", "html", "md", "sarif", "junit"])
    write_reports(two_audits()[:1], folder / "one", ["json"])
    return folder


def documents(report_set: Path) -> list[Any]:
    return [json.loads((report_set / name).read_text(encoding="utf-8"))
            for name in ("report.json", "one/report.json")]


def test_fuzzed_report_json(report_set: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    @FUZZ
    @given(data=st.data())
    def check(data: st.DataObject) -> None:
        folder = tmp_path_factory.mktemp("case")
        path = folder / "report.json"
        path.write_text(data.draw(report_texts(documents(report_set))), encoding="utf-8")
        policy = ["--policy", "baseline"] if data.draw(st.booleans()) else []
        assert_handled(["report", str(path), "--out", str(folder / "out"),
                        "--format", "json,html,sarif,junit,md", *policy])

    check()


def test_fuzzed_baseline(report_set: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    @FUZZ
    @given(data=st.data())
    def check(data: st.DataObject) -> None:
        folder = tmp_path_factory.mktemp("case")
        baseline = folder / "baseline.json"
        baseline.write_text(data.draw(report_texts(documents(report_set))), encoding="utf-8")
        assert_handled(["report", str(report_set / "report.json"), "--out", str(folder / "out"),
                        "--format", "json,md", "--policy", "baseline", "--baseline", str(baseline)])

    check()


@pytest.fixture(scope="module")
def signed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model file, a signing key pair and the manifest ``guard sign`` wrote for it."""
    folder = tmp_path_factory.mktemp("signed")
    (folder / "model.bin").write_bytes(b"weights" * 100)
    (folder / "weights").mkdir()
    (folder / "weights" / "a.bin").write_bytes(b"a")
    runner = CliRunner()
    for args in (["keygen", "--signing", "-o", str(folder / "key.pem")],
                 ["sign", str(folder / "model.bin"), str(folder / "weights"), "--key",
                  str(folder / "key.pem"), "-o", str(folder / "model.sig.json")]):
        result = runner.invoke(cli, args)
        assert result.exit_code == 0, result.output
    return folder


def test_fuzzed_manifest_envelope(signed: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    """The envelope is read before anything is authenticated: any change must be refused."""
    envelope = json.loads((signed / "model.sig.json").read_text(encoding="utf-8"))

    @FUZZ
    @given(data=st.data())
    def check(data: st.DataObject) -> None:
        manifest = tmp_path_factory.mktemp("case") / "model.sig.json"
        manifest.write_text(mutated(envelope, data.draw), encoding="utf-8")
        assert_handled(["verify", str(manifest), "--pubkey", str(signed / "key.pem.pub"),
                        "--base-dir", str(signed)], allowed=(0, 1, 2))

    check()


def test_fuzzed_signed_statement(signed: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    """A statement changed and then signed again with the right key: the signature holds, so
    what the statement says reaches the parser (names, digests, folders)."""
    envelope = json.loads((signed / "model.sig.json").read_text(encoding="utf-8"))
    statement = json.loads(base64.b64decode(envelope["payload"]))
    key = load_private_key(signed / "key.pem")

    @FUZZ
    @given(data=st.data())
    def check(data: st.DataObject) -> None:
        payload = mutated(statement, data.draw).encode("utf-8")
        signature = base64.b64encode(key.sign(pae(PAYLOAD_TYPE, payload))).decode()
        forged = {**envelope, "payload": base64.b64encode(payload).decode(),
                  "signatures": [{**envelope["signatures"][0], "sig": signature}]}
        manifest = tmp_path_factory.mktemp("case") / "model.sig.json"
        manifest.write_text(json.dumps(forged), encoding="utf-8")
        assert_handled(["verify", str(manifest), "--pubkey", str(signed / "key.pem.pub"),
                        "--base-dir", str(signed)])

    check()
