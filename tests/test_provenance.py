"""Data provenance: ``guard data manifest`` / ``guard data verify`` and the ``data.provenance``
probe, on real files written by numpy and the csv module from scikit-learn's wine data."""

from __future__ import annotations

import base64
import csv
import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner, Result
from sklearn.datasets import load_wine

from guard.cli import cli
from guard.defenses.crypto import VerificationError, write_signing_keypair
from guard.defenses.crypto.signing import load_public_key
from guard.defenses.provenance.document import SCHEMA, ManifestError, decode, encode
from guard.defenses.provenance.manifest import build_manifest
from guard.defenses.provenance.rows import cells_digest
from guard.defenses.provenance.verify import diff_rows, verify_data
from guard.errors import ConfigError, DataError
from guard.probes import RunContext, build_probe, probe_class
from guard.target import Target


def run(*args: object, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(cli, [str(a) for a in args], env=env)


@pytest.fixture(scope="module")
def wine() -> tuple[np.ndarray, np.ndarray, list[str]]:
    bunch = load_wine()
    return bunch.data, bunch.target, list(bunch.feature_names)


def write_csv(path: Path, x: np.ndarray, y: np.ndarray, names: list[str], *,
              lineterminator: str = "\r\n") -> None:
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh, lineterminator=lineterminator)
        writer.writerow([*names, "label"])
        for features, label in zip(x, y, strict=True):
            writer.writerow([*(f"{v:g}" for v in features), int(label)])


@pytest.fixture()
def data(tmp_path: Path, wine: tuple[np.ndarray, np.ndarray, list[str]]) -> Path:
    """A training-data folder: the wine set as CSV, .npz and .npy, and a notes file."""
    x, y, names = wine
    folder = tmp_path / "data"
    folder.mkdir()
    write_csv(folder / "wine.csv", x, y, names)
    np.savez(folder / "wine.npz", x=x, y=y)
    np.save(folder / "x.npy", x.astype(np.float32))
    (folder / "notes.txt").write_text("collected 2024-05\n")
    return folder


@pytest.fixture()
def manifest(data: Path) -> Path:
    out = data / "manifest.json"
    result = run("data", "manifest", data, "-o", out)
    assert result.exit_code == 0, result.output
    assert "4 files" in result.output and f"{178 * 4} rows" in result.output  # csv, x, y, x.npy
    return out


def verify_json(path: Path, *extra: object) -> tuple[int, dict[str, Any]]:
    result = run("data", "verify", path, "--format", "json", *extra)
    return result.exit_code, json.loads(result.stdout)


# -- unchanged, changed, added, removed, missing ---------------------------------------------------


def test_unchanged_data_verifies(manifest: Path) -> None:
    result = run("data", "verify", manifest)
    assert result.exit_code == 0, result.output
    assert "verified" in result.output and "712 rows unchanged" in result.output
    doc = json.loads(manifest.read_text())
    assert doc["schema"] == SCHEMA
    assert [f["path"] for f in doc["files"]] == ["notes.txt", "wine.csv", "wine.npz", "x.npy"]
    assert doc["folders"] == ["."]


def test_one_changed_csv_row_is_located(manifest: Path, data: Path) -> None:
    lines = (data / "wine.csv").read_bytes().split(b"\r\n")
    lines[42] = lines[42].replace(b",", b",9", 1)  # line 43: data row 41
    (data / "wine.csv").write_bytes(b"\r\n".join(lines))
    result = run("data", "verify", manifest)
    assert result.exit_code == 1, result.output
    assert "wine.csv: row 41 (line 43) changed" in result.output.splitlines()
    code, doc = verify_json(manifest)
    assert code == 1
    assert doc["changes"] == [{"file": "wine.csv", "row": 41, "kind": "changed", "line": 43}]
    assert (doc["files_changed"], doc["rows_changed"], doc["rows_checked"]) == (1, 1, 712)


def test_one_changed_npz_row_is_located(manifest: Path, data: Path,
                                        wine: tuple[np.ndarray, np.ndarray, list[str]]) -> None:
    x, y, _ = wine
    changed = x.copy()
    changed[17, 3] += 0.5
    np.savez(data / "wine.npz", x=changed, y=y)
    code, doc = verify_json(manifest)
    assert code == 1
    assert doc["changes"] == [{"file": "wine.npz", "row": 17, "kind": "changed", "array": "x"}]
    assert "wine.npz: array x row 17 changed" in run("data", "verify", manifest).output


def test_resaved_npz_changes_the_file_but_no_row(manifest: Path, data: Path,
                                                 wine: tuple[np.ndarray, np.ndarray, list[str]]) -> None:
    x, y, _ = wine
    np.savez_compressed(data / "wine.npz", x=x, y=y)  # the same arrays, other bytes
    code, doc = verify_json(manifest)
    assert code == 1 and doc["rows_changed"] == 0
    [change] = doc["changes"]
    assert (change["file"], change["row"]) == ("wine.npz", None)
    assert "every row is the same" in change["detail"]


def test_added_and_removed_rows(manifest: Path, data: Path,
                                wine: tuple[np.ndarray, np.ndarray, list[str]]) -> None:
    x, y, names = wine
    # a row inserted before data row 100 of the CSV, one removed from the .npy, two appended to y
    write_csv(data / "wine.csv", np.insert(x, 100, x[5] + 1, axis=0), np.insert(y, 100, 2), names)
    np.save(data / "x.npy", np.delete(x.astype(np.float32), 10, axis=0))
    np.savez(data / "wine.npz", x=x, y=np.append(y, [0, 1]))
    code, doc = verify_json(manifest)
    assert code == 1
    assert doc["changes"] == [
        {"file": "wine.csv", "row": 100, "kind": "added", "line": 102},
        {"file": "wine.npz", "row": 178, "kind": "added", "array": "y"},
        {"file": "wine.npz", "row": 179, "kind": "added", "array": "y"},
        {"file": "x.npy", "row": 10, "kind": "removed"},
    ]
    assert doc["rows_changed"] == 4 and doc["rows_checked"] == 712 + 3


def test_line_endings_and_quoting_leave_rows_alone(manifest: Path, data: Path,
                                                   wine: tuple[np.ndarray, np.ndarray, list[str]]) -> None:
    x, y, names = wine
    write_csv(data / "wine.csv", x, y, names, lineterminator="\n")
    text = (data / "wine.csv").read_text().replace(",1\n", ',"1"\n')
    (data / "wine.csv").write_text(text)
    code, doc = verify_json(manifest)
    assert code == 1 and doc["rows_changed"] == 0 and len(doc["changes"]) == 1
    assert cells_digest(["1", "a,b"]) != cells_digest(["1,a", "b"])
    cells = ["a\x00b", "é", '"q"', "\\", "line\nbreak", "\udc80"]  # \udc80: a byte that is not UTF-8
    text = json.dumps(cells, ensure_ascii=False, separators=(",", ":"))  # the documented definition
    assert cells_digest(cells) == hashlib.sha256(text.encode("utf-8", "surrogateescape")).digest()


def test_empty_csv_and_header_change(tmp_path: Path) -> None:
    (tmp_path / "empty.csv").write_bytes(b"")
    (tmp_path / "t.csv").write_text("a,b\n1,2\n")
    out = tmp_path / "m.json"
    assert run("data", "manifest", tmp_path / "empty.csv", tmp_path / "t.csv", "-o", out).exit_code == 0
    assert run("data", "verify", out).exit_code == 0
    (tmp_path / "t.csv").write_text("a,c\n1,2\n")
    code, doc = verify_json(out)
    assert code == 1 and doc["changes"] == [{"file": "t.csv", "row": None, "kind": "changed", "line": 1,
                                             "detail": "the header row"}]


def test_missing_and_new_files_name_the_file(manifest: Path, data: Path) -> None:
    (data / "x.npy").unlink()
    (data / "extra.csv").write_text("a,b\n1,2\n")
    result = run("data", "verify", manifest)
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert "x.npy: missing" in lines
    assert "extra.csv: added (a new file in a recorded folder)" in lines
    assert "changed: 2 of 5 files, 178 of 712 rows" in result.output


def test_truncated_npz_and_any_array_names(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "images.npz", images=rng.random((50, 2, 3)), labels=np.arange(50),
             fortran=np.asfortranarray(rng.random((50, 4))), scalar=np.float64(3.5))
    out = tmp_path / "m.json"
    assert run("data", "manifest", tmp_path / "images.npz", "-o", out).exit_code == 0
    [record] = json.loads(out.read_text())["files"]
    assert [(a["name"], a["rows"]) for a in record["arrays"]] == [
        ("images", 50), ("labels", 50), ("fortran", 50), ("scalar", 0)]
    data = (tmp_path / "images.npz").read_bytes()
    (tmp_path / "images.npz").write_bytes(data[: len(data) // 2])
    result = run("data", "verify", out)
    assert result.exit_code == 1
    assert "images.npz: changed (not an .npz (zip) file, or truncated" in result.output
    assert "150 of 150 rows" in result.output  # rows that cannot be read count as changed


def test_changes_are_bounded_and_names_made_visible(tmp_path: Path) -> None:
    evil = tmp_path / "evil\x1b[2J.csv"
    evil.write_text("a\n" + "".join(f"{i}\n" for i in range(30)))
    out = tmp_path / "m.json"
    assert run("data", "manifest", evil, "-o", out).exit_code == 0
    evil.write_text("a\n" + "".join(f"{i + 1}\n" for i in range(30)))
    result = run("data", "verify", out, "--max-changes", "3")
    assert result.exit_code == 1
    assert "\x1b" not in result.output and "evil\\x1b[2J.csv: row 0 (line 2) changed" in result.output
    assert "... and 27 more" in result.output


# -- bad manifests and inputs: exit 2, one line ------------------------------------------------


def _edit(doc: dict[str, Any], path: list[Any], value: object) -> dict[str, Any]:
    node: Any = doc
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return doc


BAD_FIELDS = [
    (["schema"], "guard.data-manifest/2", "schema"),
    (["files"], {"a": 1}, "a list of files"),
    (["files", 1, "sha256"], "abc", "64 lowercase hex"),
    (["files", 1, "sha256"], "A" * 64, "64 lowercase hex"),
    (["files", 1, "path"], "/etc/passwd", "not a relative path"),
    (["files", 1, "path"], "../outside.csv", "not a relative path"),
    (["files", 1, "size"], -1, "negative"),
    (["files", 1, "size"], True, "whole number"),
    (["files", 1, "rows"], 3, "rows says 3"),
    (["files", 1, "row_sha256"], "not base64!", "not base64"),
    (["files", 1, "format"], "parquet", "not one of"),
    (["files", 2, "arrays", 0, "shape"], [178, "13"], "whole numbers"),
    (["folders"], ["../.."], "not a relative path"),
]


@pytest.mark.parametrize(("path", "value", "message"), BAD_FIELDS, ids=[m for _, _, m in BAD_FIELDS])
def test_malformed_field_exits_2_in_one_line(manifest: Path, path: list[object], value: object,
                                             message: str) -> None:
    doc = json.loads(manifest.read_text())
    manifest.write_text(json.dumps(_edit(doc, path, value)))
    result = run("data", "verify", manifest)
    assert result.exit_code == 2, result.output
    assert message in result.output and len(result.output.strip().splitlines()) == 1, result.output
    with pytest.raises(ManifestError):
        verify_data(manifest)


@pytest.mark.parametrize("content", [b"", b"garbage", b"\xff\xfe\x00", b"[" * 100_000, b"[1, 2]",
                                     b'{"schema": "guard.data-manifest/1", "files": [], "folders": [NaN]}'])
def test_garbage_and_truncated_manifests_exit_2(manifest: Path, content: bytes) -> None:
    for data in (content, manifest.read_bytes()[:200]):
        manifest.write_bytes(data)
        result = run("data", "verify", manifest)
        assert result.exit_code == 2, result.output
        assert len(result.output.strip().splitlines()) == 1 and "Traceback" not in result.output


def test_manifest_of_missing_or_unusable_input_exits_2(tmp_path: Path) -> None:
    out = tmp_path / "m.json"
    for args, message in (
        (["missing.csv"], "missing.csv: no such file or folder"),
        ([tmp_path.parent], "lies outside"),
    ):
        result = run("data", "manifest", *args, "-o", out)
        assert result.exit_code == 2 and message in result.output, result.output
        assert len(result.output.strip().splitlines()) == 1
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    result = run("data", "manifest", tmp_path / "objects.npy", "-o", out)
    assert result.exit_code == 2 and "could run code" in result.output
    (tmp_path / "broken.npz").write_bytes(b"PK\x03\x04 not really")
    result = run("data", "manifest", tmp_path / "broken.npz", "-o", out)
    assert result.exit_code == 2 and "broken.npz" in result.output
    assert not out.exists()
    assert run("data", "verify", tmp_path / "none.json").exit_code == 2


def test_output_never_overwrites_a_file_that_is_no_manifest(tmp_path: Path) -> None:
    (tmp_path / "t.csv").write_text("a,b\n1,2\n")
    before = (tmp_path / "t.csv").read_bytes()
    result = run("data", "manifest", tmp_path, "-o", tmp_path / "t.csv")  # -o names a recorded data file
    assert result.exit_code == 2 and "is not a data manifest" in result.output
    assert (tmp_path / "t.csv").read_bytes() == before
    assert run("data", "manifest", tmp_path, "-o", tmp_path / "m.json").exit_code == 0
    again = run("data", "manifest", tmp_path, "-o", tmp_path / "m.json")  # an earlier manifest: replaced
    assert again.exit_code == 0
    empty = tmp_path / "empty.json"
    empty.write_text('{"schema": "guard.data-manifest/1", "folders": [], "files": []}')
    result = run("data", "verify", empty)
    assert result.exit_code == 2 and "records no file" in result.output


def test_a_symlink_in_place_of_a_recorded_file_or_folder_is_a_change(tmp_path: Path) -> None:
    data, elsewhere = tmp_path / "data", tmp_path / "elsewhere"
    (data / "sub").mkdir(parents=True)
    elsewhere.mkdir()
    (data / "t.csv").write_text("a\n1\n")
    (data / "sub" / "a.csv").write_text("a\n2\n")
    assert run("data", "manifest", data, "-o", data / "m.json").exit_code == 0
    (data / "t.csv").rename(elsewhere / "t.csv")
    (data / "t.csv").symlink_to(elsewhere / "t.csv")  # same bytes, behind a link
    (data / "sub").rename(elsewhere / "sub")
    (data / "sub").symlink_to(elsewhere / "sub")
    result = run("data", "verify", data / "m.json")
    assert result.exit_code == 1
    assert "t.csv: changed (is a symlink" in result.output
    assert "sub/a.csv: changed (lies in sub/, which is a symlink" in result.output


# -- signatures ----------------------------------------------------------------------------------


@pytest.fixture()
def keys(tmp_path: Path) -> tuple[Path, Path]:
    write_signing_keypair(tmp_path / "release.pem")
    write_signing_keypair(tmp_path / "other.pem")
    return tmp_path / "release.pem", tmp_path / "other.pem"


def test_signed_manifest_verifies_only_with_its_key(data: Path, keys: tuple[Path, Path]) -> None:
    release, other = keys
    out = data / "signed.json"
    made = run("data", "manifest", data / "wine.csv", data / "wine.npz", "-o", out, "--sign-key", release)
    assert made.exit_code == 0 and "signed by sha256:" in made.output, made.output
    good = run("data", "verify", out, "--pubkey", f"{release}.pub")
    assert good.exit_code == 0 and "signature by sha256:" in good.output, good.output
    wrong = run("data", "verify", out, "--public-key", f"{other}.pub")
    assert wrong.exit_code == 1 and "does not verify" in wrong.output
    unchecked = run("data", "verify", out)
    assert unchecked.exit_code == 0 and "signature was not checked" in unchecked.output
    code, doc = verify_json(out)
    assert doc["signature"] == {"signed": True, "checked": False, "signer": None,
                                "keyids": [json.loads(out.read_text())["signatures"][0]["keyid"]]}
    unsigned = data / "plain.json"
    assert run("data", "manifest", data / "wine.csv", "-o", unsigned).exit_code == 0
    stripped = run("data", "verify", unsigned, "--pubkey", f"{release}.pub")
    assert stripped.exit_code == 1 and "is not signed" in stripped.output


def test_flipped_bit_in_signed_manifest_fails(data: Path, keys: tuple[Path, Path]) -> None:
    release, _ = keys
    out = data / "signed.json"
    assert run("data", "manifest", data / "wine.csv", "-o", out, "--sign-key", release).exit_code == 0
    original = out.read_bytes()
    pub = load_public_key(Path(f"{release}.pub"))
    decode(original, "signed.json", pub)  # verifies as written
    for at in range(0, len(original), max(1, len(original) // 400)):  # payload, signature, key id, layout
        for bit in (0x01, 0x20, 0x80):
            flipped = bytearray(original)
            flipped[at] ^= bit
            with pytest.raises(VerificationError):
                decode(bytes(flipped), "signed.json", pub)
    out.write_bytes(original.replace(b'"payload": "', b'"payload": "A', 1))
    assert run("data", "verify", out, "--pubkey", f"{release}.pub").exit_code == 1


def test_passphrase_protected_signing_key(data: Path, tmp_path: Path) -> None:
    write_signing_keypair(tmp_path / "locked.pem", passphrase=b"correct horse")
    out = data / "signed.json"
    env = {"DATA_KEY_PASS": "correct horse"}
    result = run("data", "manifest", data / "notes.txt", "-o", out, "--sign-key", tmp_path / "locked.pem",
                 "--passphrase-env", "DATA_KEY_PASS", env=env)
    assert result.exit_code == 0, result.output
    assert run("data", "verify", out, "--pubkey", tmp_path / "locked.pem.pub").exit_code == 0
    assert run("data", "manifest", data / "notes.txt", "-o", out, "--sign-key",
               tmp_path / "locked.pem").exit_code == 2


# -- the library -----------------------------------------------------------------------------------


DIFFS = [
    ("same", [1, 2, 3], [1, 2, 3], []),
    ("one changed", [1, 2, 3, 4], [1, 9, 3, 4], [("changed", 1, 1)]),
    ("inserted", [1, 2, 3, 4], [1, 2, 9, 3, 4], [("added", 2, 1)]),
    ("deleted", [1, 2, 3, 4], [1, 3, 4], [("removed", 1, 1)]),
    ("appended", [1, 2], [1, 2, 3, 4], [("added", 2, 2)]),
    ("emptied", [1, 2], [], [("removed", 0, 2)]),
    ("change and insert", [1, 2, 3, 4, 5], [1, 8, 3, 9, 4, 5], [("changed", 1, 1), ("added", 3, 1)]),
    ("run of changes", [1, 2, 3, 4], [1, 7, 8, 4], [("changed", 1, 2)]),
]


@pytest.mark.parametrize(("old", "new", "expected"), [d[1:] for d in DIFFS], ids=[d[0] for d in DIFFS])
def test_diff_rows(old: list[int], new: list[int], expected: list[tuple[str, int, int]]) -> None:
    def packed(rows: list[int]) -> bytes:
        return b"".join(cells_digest([str(r)]) for r in rows)

    assert diff_rows(packed(old), packed(new)) == expected


def test_large_arrays_diff_by_position_beyond_the_window() -> None:
    old = b"".join(i.to_bytes(32, "big") for i in range(20_000))
    new = bytearray(old)
    new[32 * 5000] ^= 1
    assert diff_rows(old, bytes(new) + old[:64]) == [("changed", 5000, 1), ("added", 20_000, 2)]


def test_library_round_trip_and_row_counts(data: Path) -> None:
    out = data / "m.json"
    recorded = build_manifest([data / "wine.npz", data / "x.npy"], out)
    assert [a.name for a in recorded.files[0].arrays] == ["x", "y"]
    out.write_bytes(encode(recorded))
    report = verify_data(out)
    assert report.verified and report.rows_checked == 3 * 178 and report.problem == ""
    doc = json.loads(out.read_text())
    x_rows = base64.b64decode(doc["files"][0]["arrays"][0]["row_sha256"])
    x = np.load(data / "wine.npz")["x"]
    assert x_rows[:32] == hashlib.sha256(np.ascontiguousarray(x[0]).tobytes()).digest()
    with pytest.raises(DataError, match="no such file"):
        build_manifest([data / "nope.npz"], out)


# -- the probe -----------------------------------------------------------------------------------


@pytest.fixture()
def audit_files(data: Path, manifest: Path,
                wine: tuple[np.ndarray, np.ndarray, list[str]]) -> tuple[Path, Path]:
    import skops.io
    from sklearn.tree import DecisionTreeClassifier

    x, y, _ = wine
    model = data.parent / "model.skops"
    skops.io.dump(DecisionTreeClassifier(max_depth=3, random_state=0).fit(x, y), model)
    np.savez(data.parent / "eval.npz", x=x[:40], y=y[:40])
    return model, data.parent / "eval.npz"


def _evidence(manifest: Path, target: Target, **settings: object) -> dict[str, Any]:
    probe = build_probe("provenance", manifest=str(manifest), **settings)
    [ev] = probe.run(target, RunContext())
    cls = probe_class("data.provenance")
    assert set(ev.metrics) == set(cls.emits.metrics) and set(ev.params) == set(cls.emits.params)
    return ev.to_dict()


def test_probe_evidence_and_coverage(data: Path, manifest: Path, audit_files: tuple[Path, Path],
                                     keys: tuple[Path, Path]) -> None:
    from guard.build import build_target, build_target_from_objects

    model, eval_data = audit_files
    covered = build_target(model, data / "wine.npz", clip="none")  # its data file is in the manifest
    elsewhere = build_target(model, eval_data, clip="none")
    ev = _evidence(manifest, covered)
    metrics = ev["metrics"]
    assert metrics["verified"] == {"value": 1.0} and metrics["covers_audit_data"] == {"value": 1.0}
    assert metrics["rows_changed"]["n"] == 712 and metrics["files_checked"] == {"value": 4.0}
    assert ev["params"]["signed"] is False and ev["params"]["changes"] == []
    assert _evidence(manifest, elsewhere)["metrics"]["covers_audit_data"] == {"value": 0.0}
    # with a separate training-data file, that file is what the manifest must cover: the data
    # file being in it says nothing about the training set
    unrecorded_train = build_target(model, data / "wine.npz", clip="none", train_data=eval_data)
    assert _evidence(manifest, unrecorded_train)["metrics"]["covers_audit_data"] == {"value": 0.0}
    recorded_train = build_target(model, eval_data, clip="none", train_data=data / "wine.npz")
    assert _evidence(manifest, recorded_train)["metrics"]["covers_audit_data"] == {"value": 1.0}
    with np.load(eval_data) as arrays:
        x, y = arrays["x"], arrays["y"]
    from sklearn.tree import DecisionTreeClassifier

    in_memory = build_target_from_objects(DecisionTreeClassifier().fit(x, y), x, y, clip="none",
                                          name="in-memory")  # no data file, so no digest to match
    assert not in_memory.digests
    assert _evidence(manifest, in_memory)["metrics"]["covers_audit_data"] == {"value": 0.0}
    lines = (data / "wine.csv").read_bytes().split(b"\r\n")
    lines[2] = lines[2].replace(b",", b",1", 1)
    (data / "wine.csv").write_bytes(b"\r\n".join(lines))
    changed = _evidence(manifest, covered)
    assert changed["metrics"]["verified"] == {"value": 0.0}
    assert changed["metrics"]["rows_changed"]["value"] == pytest.approx(1 / 712)
    assert changed["params"]["changes"] == [{"file": "wine.csv", "row": 1, "kind": "changed", "line": 3}]
    assert changed["params"]["problem"].startswith("wine.csv: row 1")


def test_probe_signature_and_bad_manifest(data: Path, keys: tuple[Path, Path],
                                          audit_files: tuple[Path, Path]) -> None:
    from guard.build import build_target

    release, other = keys
    target = build_target(audit_files[0], audit_files[1], clip="none")
    out = data / "signed.json"
    assert run("data", "manifest", data, "-o", out, "--sign-key", release).exit_code == 0
    good = _evidence(out, target, public_key=f"{release}.pub")
    assert good["params"]["signed"] is True and good["params"]["signer_fingerprint"].startswith("sha256:")
    bad = _evidence(out, target, public_key=f"{other}.pub")
    assert bad["metrics"]["verified"] == {"value": 0.0} and "does not verify" in bad["params"]["problem"]
    out.write_text("{}")
    with pytest.raises(ConfigError, match="not a data manifest"):
        _evidence(out, target)
    probe = probe_class("provenance")()
    assert not probe.applies_to(target)
    with pytest.raises(ConfigError, match="give the manifest"):
        build_probe("provenance", public_key="k.pub")


def test_audit_runs_the_probe_with_data_manifest(data: Path, manifest: Path, audit_files: tuple[Path, Path],
                                                 tmp_path: Path) -> None:
    model, _ = audit_files
    result = run("audit", "--model", model, "--data", data / "wine.npz", "--clip", "none", "--attack",
                 "provenance", "--data-manifest", manifest, "--format", "json", "--out", tmp_path / "o")
    assert result.exit_code in (0, 1), result.output
    doc = json.loads((tmp_path / "o" / "report.json").read_text())
    [ev] = [e for e in doc["evidence"] if e["probe"] == "data.provenance"]
    assert ev["metrics"]["verified"]["value"] == 1.0 and ev["metrics"]["covers_audit_data"]["value"] == 1.0
