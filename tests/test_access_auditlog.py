"""The hash-chained audit log: every kind of tampering named at the right line, concurrent
appends from processes and threads, refusals on open, and ``guard log verify``'s exit codes."""

from __future__ import annotations

import hashlib
import json
import multiprocessing as mp
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from guard.defenses.access.auditlog import ZERO_HASH, AuditLog, AuditLogError, verify_log

if TYPE_CHECKING:  # the CLI loads only where used: spawned workers import this module
    from click.testing import Result

    from guard.cli import GuardGroup

KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))
SIGNER = Ed25519PrivateKey.from_private_bytes(bytes(range(100, 132)))
N = 8


def cli() -> GuardGroup:
    """``guard`` with only ``log`` registered, mapping errors to exit codes as ``guard`` does."""
    from guard.cli import GuardGroup
    from guard.cli.log import log

    group = GuardGroup(name="guard")
    group.add_command(log)
    return group


def run(*args: object, env: dict[str, str] | None = None) -> Result:
    from click.testing import CliRunner

    return CliRunner().invoke(cli(), ["log", *map(str, args)], env=env)


def write_log(path: Path, n: int = N, **keys: Any) -> list[dict[str, Any]]:
    with AuditLog(path, **keys) as log:
        return [log.append({"principal": f"user{i % 3}", "operation": "labels", "n": i + 1,
                            "outcome": "served", "status": 200, "reason": None, "time_unix": 1.5 + i})
                for i in range(n)]


def lines_of(path: Path) -> list[bytes]:
    data = path.read_bytes()
    assert data.endswith(b"\n")
    return data[:-1].split(b"\n")


def put_lines(path: Path, lines: list[bytes]) -> None:
    path.write_bytes(b"".join(line + b"\n" for line in lines))


def sha(line: bytes) -> str:
    return hashlib.sha256(line).hexdigest()


def pem(tmp_path: Path, key: Ed25519PrivateKey, name: str = "pub.pem") -> Path:
    out = tmp_path / name
    out.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                  serialization.PublicFormat.SubjectPublicKeyInfo))
    return out


# --- the format -----------------------------------------------------------------------------------

def test_records_chain_and_verify(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    written = write_log(path, hmac_key=KEY, signing_key=SIGNER)
    lines = lines_of(path)
    assert len(lines) == N and [json.loads(line)["seq"] for line in lines] == list(range(N))
    assert json.loads(lines[0])["prev"] == ZERO_HASH
    assert all(json.loads(lines[i])["prev"] == sha(lines[i - 1]) for i in range(1, N))
    assert [json.loads(line) for line in lines] == written  # append returns what verify reads
    check = verify_log(path, hmac_key=KEY, public_key=SIGNER.public_key())
    assert check.ok and check.records == N and check.hmac and check.signed and check.problem is None
    assert check.head == sha(lines[-1])
    unkeyed = verify_log(path)
    assert unkeyed.ok and not unkeyed.hmac and unkeyed.note is not None and "HMACs" in unkeyed.note


def test_reopen_continues_the_chain(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    write_log(path, 3, hmac_key=KEY)
    with AuditLog(path, hmac_key=KEY) as log:
        rec = log.append({"x": 1})
    assert rec["seq"] == 3 and rec["prev"] == sha(lines_of(path)[2])
    assert verify_log(path, hmac_key=KEY).records == 4


def test_a_newline_in_a_field_cannot_forge_a_record(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    forged = '{"seq":1,"prev":"' + "0" * 64 + '","principal":"admin"}'
    evil = {"reason": f"x\n{forged}\r\n\u2028\x1b[2J\x00", "principal": "mallory\u202egnp.exe"}
    with AuditLog(path) as log:
        log.append(evil)
        log.append({"principal": "bob"})
    data = path.read_bytes()
    assert data.count(b"\n") == 2 and data.isascii()
    assert json.loads(lines_of(path)[0])["reason"] == evil["reason"]  # kept exactly, escaped
    assert verify_log(path).records == 2
    result = run("show", path, "--last", 5)
    assert result.exit_code == 0 and len(result.output.splitlines()) == 2 and "\x1b" not in result.output


@pytest.mark.parametrize(("fields", "error", "words"), [
    ({"seq": 5}, ValueError, "reserved"),
    ({"prev": "x"}, ValueError, "reserved"),
    ({"hmac": "x"}, ValueError, "reserved"),
    ({"sig": "x"}, ValueError, "reserved"),
    ({"t": float("nan")}, ValueError, "JSON"),
    ({"t": object()}, TypeError, "JSON-serialisable"),
    ({1: "a"}, TypeError, "strings"),
    ({"big": "x" * (1 << 20)}, ValueError, "limit"),
    (["not", "a", "dict"], TypeError, "dict"),
])
def test_unwritable_fields_are_refused_and_nothing_is_written(
        tmp_path: Path, fields: Any, error: type[Exception], words: str) -> None:
    path = tmp_path / "audit.log"
    with AuditLog(path) as log:
        with pytest.raises(error, match=words):
            log.append(fields)
        assert log.append({"ok": True})["seq"] == 0
    assert verify_log(path).records == 1


# --- tampering ------------------------------------------------------------------------------------

def _edit(i: int) -> Callable[[list[bytes]], list[bytes]]:
    def go(lines: list[bytes]) -> list[bytes]:
        lines[i] = lines[i].replace(b'"principal":"user', b'"principal":"USER')
        return lines
    return go


def _remove(lines: list[bytes]) -> list[bytes]:
    del lines[3]
    return lines


def _swap(lines: list[bytes]) -> list[bytes]:
    lines[2], lines[3] = lines[3], lines[2]
    return lines


def _insert_copy(lines: list[bytes]) -> list[bytes]:
    lines.insert(5, lines[1])
    return lines


def _insert_forged(lines: list[bytes]) -> list[bytes]:
    """A record forged by someone who can hash: right seq and prev, a made-up hmac and sig."""
    forged = json.loads(lines[5])
    forged.update(prev=sha(lines[4]), principal="admin", hmac="ab" * 32, sig="cd" * 64)
    lines.insert(5, json.dumps(forged, separators=(",", ":")).encode())
    return lines


def _respace(lines: list[bytes]) -> list[bytes]:
    lines[-1] = json.dumps(json.loads(lines[-1])).encode()  # same record, other spelling
    return lines


def _duplicate_key(lines: list[bytes]) -> list[bytes]:
    lines[2] = lines[2][:-1] + b',"principal":"admin"}'
    return lines


TAMPERING = [  # (what, change, check with the keys?, first bad line, words in the problem)
    ("edited field, chain only", _edit(2), False, 4, "hash chain broken: line 3 was edited"),
    ("edited field, keyed", _edit(2), True, 3, "HMAC does not match"),
    ("edited last record, keyed", _edit(N - 1), True, N, "HMAC does not match"),
    ("removed record", _remove, False, 4, "1 record(s) removed"),
    ("swapped records", _swap, False, 3, "reordered"),
    ("inserted copy", _insert_copy, False, 6, "inserted"),
    ("inserted forgery, chain only", _insert_forged, False, 7, "inserted"),
    ("inserted forgery, keyed", _insert_forged, True, 6, "HMAC does not match"),
    ("respaced record", _respace, False, N, "form Guard writes"),
    ("duplicate key", _duplicate_key, False, 3, "appears twice"),
    ("first record removed", lambda lines: lines[1:], False, 1, "first records were removed"),
]


Change = Callable[[list[bytes]], list[bytes]]


@pytest.mark.parametrize(("what", "change", "keyed", "line", "words"), TAMPERING,
                         ids=[t[0] for t in TAMPERING])
def test_tampering_is_named_at_its_line(tmp_path: Path, what: str, change: Change, keyed: bool, line: int,
                                        words: str) -> None:
    path = tmp_path / "audit.log"
    write_log(path, hmac_key=KEY, signing_key=SIGNER)
    keys: dict[str, Any] = {"hmac_key": KEY, "public_key": SIGNER.public_key()} if keyed else {}
    assert verify_log(path, **keys).ok  # the null control: the same check passes untouched
    put_lines(path, change(lines_of(path)))
    check = verify_log(path, **keys)
    assert not check.ok and check.first_bad == line, check.problem
    assert check.problem is not None and check.problem.startswith(f"line {line} ") and words in check.problem
    args = ["--hmac-key-env", "K", "--public-key", pem(tmp_path, SIGNER)] if keyed else []
    result = run("verify", path, *args, env={"K": KEY.hex()})
    assert result.exit_code == 1 and f"line {line} " in result.output and "Traceback" not in result.output


def test_an_edited_last_record_passes_the_bare_chain(tmp_path: Path) -> None:
    """What a bare chain cannot see, asserted so the docstring's claim stays true."""
    path = tmp_path / "audit.log"
    write_log(path)
    head = verify_log(path).head
    put_lines(path, _edit(N - 1)(lines_of(path)))
    assert verify_log(path).ok
    assert not verify_log(path, expect_head=head).ok


def test_truncated_last_line(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    write_log(path)
    size = path.stat().st_size
    os.truncate(path, size - 20)
    check = verify_log(path)
    assert not check.ok and check.first_bad == N and check.records == N - 1
    assert check.problem is not None and "incomplete" in check.problem
    assert run("verify", path).exit_code == 1


@pytest.mark.parametrize(("keys", "line", "words"), [
    ({"hmac_key": OTHER_KEY}, 1, "HMAC does not match: the key is not the one"),
    ({"public_key": Ed25519PrivateKey.generate().public_key()}, 1, "signature does not verify"),
])
def test_wrong_keys_fail_at_line_1(tmp_path: Path, keys: dict[str, Any], line: int, words: str) -> None:
    path = tmp_path / "audit.log"
    write_log(path, hmac_key=KEY, signing_key=SIGNER)
    check = verify_log(path, **keys)
    assert not check.ok and check.first_bad == line and check.problem is not None and words in check.problem


def test_keys_given_for_a_log_without_them(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    write_log(path)
    check = verify_log(path, hmac_key=KEY)
    assert not check.ok and check.first_bad == 1 and "no hmac" in (check.problem or "")
    check = verify_log(path, public_key=SIGNER.public_key())
    assert not check.ok and check.first_bad == 1 and "no signature" in (check.problem or "")


def test_stripped_hmacs_are_noticed_without_a_key(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    write_log(path, hmac_key=KEY)
    lines = lines_of(path)
    bare = json.loads(lines[4])
    del bare["hmac"]
    lines[4] = (json.dumps(bare, separators=(",", ":"))).encode()
    put_lines(path, lines)
    check = verify_log(path)
    assert not check.ok and check.first_bad == 5 and "mixed in" in (check.problem or "")


def test_cut_off_end_needs_an_external_head_or_count(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    write_log(path, hmac_key=KEY)
    full = verify_log(path, hmac_key=KEY)
    early_head = sha(lines_of(path)[4])
    put_lines(path, lines_of(path)[:-2])  # cut at a line break: nothing inside the file shows it
    assert verify_log(path, hmac_key=KEY).ok
    cut = verify_log(path, hmac_key=KEY, expect_records=N)
    assert not cut.ok and cut.first_bad == N - 1 and "cut off" in (cut.problem or "")
    assert not verify_log(path, expect_head=full.head).ok
    assert verify_log(path, expect_head=early_head).ok  # a head kept earlier: the log only grew
    assert verify_log(path, expect_head=early_head, expect_records=5).ok
    assert not verify_log(path, expect_head=early_head, expect_records=6).ok
    assert run("verify", path, "--expect-head", full.head).exit_code == 1
    assert run("verify", path, "--expect-records", N).exit_code == 1
    assert run("verify", path, "--expect-head", f"sha256:{early_head.upper()}").exit_code == 0


# --- refusals when appending ----------------------------------------------------------------------

def test_partial_last_line_is_refused_until_cut_off(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    write_log(path, 3)
    good = path.stat().st_size
    with AuditLog(path) as live:
        with path.open("ab") as fh:
            fh.write(b'{"seq":3,"prev":"ab')  # another writer's write, cut short
        with pytest.raises(AuditLogError, match="incomplete"):
            live.append({"x": 1})
    with pytest.raises(AuditLogError, match=f"incomplete record .*`truncate -s {good} "):
        AuditLog(path)
    assert path.stat().st_size == good + 19  # nothing was chained onto it
    os.truncate(path, good)
    with AuditLog(path) as log:
        assert log.append({"x": 1})["seq"] == 3
    assert verify_log(path).records == 4


@pytest.mark.parametrize("content", [
    b"hello world\n",
    b"not json at all",
    b'{"seq":0}\n',
    b'{"seq":4,"prev":"' + b"0" * 64 + b'"}\n',
    b"\xff\xfe binary\n",
    b"x" * 3000,
])
def test_a_file_that_is_not_a_log_is_refused_and_left_alone(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "notes.txt"
    path.write_bytes(content)
    with pytest.raises(AuditLogError, match="audit log"):
        AuditLog(path)
    assert path.read_bytes() == content
    assert run("verify", path).exit_code == 1


def test_keys_must_match_the_log_on_open(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    write_log(path, 2, hmac_key=KEY, signing_key=SIGNER)
    with pytest.raises(AuditLogError, match="carries HMACs"):
        AuditLog(path, signing_key=SIGNER)
    with pytest.raises(AuditLogError, match="HMAC does not match"):
        AuditLog(path, hmac_key=OTHER_KEY, signing_key=SIGNER)
    with pytest.raises(AuditLogError, match="signature does not verify"):
        AuditLog(path, hmac_key=KEY, signing_key=Ed25519PrivateKey.generate())
    plain = tmp_path / "plain.log"
    write_log(plain, 2)
    with pytest.raises(AuditLogError, match="without HMACs"):
        AuditLog(plain, hmac_key=KEY)
    with pytest.raises(AuditLogError, match="at least 16 bytes"):
        AuditLog(tmp_path / "new.log", hmac_key=b"short")
    assert not (tmp_path / "new.log").exists()


def test_a_log_cut_under_a_live_writer_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    with AuditLog(path) as log:
        for i in range(4):
            log.append({"i": i})
        put_lines(path, lines_of(path)[:2])  # same file, fewer records
        with pytest.raises(AuditLogError, match="shrank"):
            log.append({"i": 4})


def test_another_writer_in_between_is_picked_up(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    with AuditLog(path) as a, AuditLog(path) as b:
        for i in range(6):
            (a if i % 3 else b).append({"i": i})
    assert verify_log(path).records == 6


def test_rotation_starts_a_new_chain(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    with AuditLog(path) as log:
        log.append({"i": 0})
        log.append({"i": 1})
        os.rename(path, tmp_path / "audit.log.1")
        assert log.append({"i": 2})["seq"] == 0
    assert verify_log(tmp_path / "audit.log.1").records == 2
    assert verify_log(path).records == 1


def test_closed_log_refuses(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit.log")
    log.close()
    log.close()
    with pytest.raises(ValueError, match="closed"):
        log.append({"x": 1})


# --- concurrency ----------------------------------------------------------------------------------

def _append_worker(path: str, proc: int, threads: int, per_thread: int, start: Any = None) -> None:
    log = AuditLog(Path(path), hmac_key=KEY)
    errors: list[BaseException] = []
    if start is not None:
        start.wait(60)  # every process appends at the same time, not as each finishes starting

    def work(t: int) -> None:
        try:
            for i in range(per_thread):
                log.append({"proc": proc, "thread": t, "i": i})
        except BaseException as exc:  # noqa: BLE001 (re-raised below, in the main thread)
            errors.append(exc)

    pool = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    log.close()
    if errors:
        raise errors[0]


def _assert_each_once(path: Path, expected: set[tuple[int, int, int]]) -> None:
    check = verify_log(path, hmac_key=KEY)
    assert check.ok, check.problem
    records = [json.loads(line) for line in lines_of(path)]
    assert [r["seq"] for r in records] == list(range(len(expected)))
    seen = [(r["proc"], r["thread"], r["i"]) for r in records]
    assert len(seen) == len(set(seen)) and set(seen) == expected


def test_processes_and_threads_append_each_record_once(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    ctx = mp.get_context("spawn")
    start = ctx.Barrier(5)
    procs = [ctx.Process(target=_append_worker, args=(str(path), p, 4, 50, start)) for p in range(4)]
    for p in procs:
        p.start()
    _append_worker(str(path), 9, 2, 50, start)  # this process too, meanwhile, with its own descriptor
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]
    expected = {(p, t, i) for p in range(4) for t in range(4) for i in range(50)}
    _assert_each_once(path, expected | {(9, t, i) for t in range(2) for i in range(50)})


@pytest.mark.skipif("fork" not in mp.get_all_start_methods(), reason="no fork on this platform")
def test_a_log_opened_before_fork_is_shared_safely(tmp_path: Path) -> None:
    """Children inherit the descriptor (and its flock): each must reopen to exclude the others."""
    path = tmp_path / "audit.log"
    log = AuditLog(path, hmac_key=KEY)
    log.append({"proc": -1, "thread": 0, "i": 0})

    ctx = mp.get_context("fork")
    procs = [ctx.Process(target=_fork_child, args=(log, p)) for p in range(3)]
    for p in procs:
        p.start()
    for i in range(1, 101):
        log.append({"proc": -1, "thread": 0, "i": i})
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0, 0]
    log.close()
    expected = {(p, 0, i) for p in range(3) for i in range(100)} | {(-1, 0, i) for i in range(101)}
    _assert_each_once(path, expected)


def _fork_child(log: AuditLog, proc: int) -> None:
    for i in range(100):
        log.append({"proc": proc, "thread": 0, "i": i})


# --- the CLI --------------------------------------------------------------------------------------

def test_cli_intact_lines(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    write_log(path, hmac_key=KEY, signing_key=SIGNER)
    head = verify_log(path).head
    result = run("verify", path, "--hmac-key-env", "K", env={"K": KEY.hex()})
    assert result.exit_code == 0, result.output
    assert result.stdout == f"intact: {N} records (chain, hmac checked), head {head}\n"
    result = run("verify", path, "--public-key", pem(tmp_path, SIGNER), "--hmac-key-env", "K",
                 env={"K": KEY.hex()})
    assert result.exit_code == 0 and "(chain, hmac, signature checked)" in result.stdout
    result = run("verify", path)
    assert result.exit_code == 0 and "(chain checked)" in result.stdout
    assert "warning:" in result.stderr and "not checked" in result.stderr
    empty = tmp_path / "empty.log"
    empty.touch()
    assert run("verify", empty).stdout == "intact: 0 records (an empty log)\n"


def test_cli_bad_input_exits_2_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    write_log(path, hmac_key=KEY)
    (tmp_path / "bad.pem").write_text("not a key")
    cases: list[tuple[list[object], dict[str, str]]] = [
        (["verify", tmp_path / "missing.log"], {}),
        (["verify", path, "--hmac-key-env", "K"], {"K": ""}),
        (["verify", path, "--hmac-key-env", "K"], {"K": "not-a-key"}),
        (["verify", path, "--hmac-key", tmp_path / "missing.key"], {}),
        (["verify", path, "--public-key", tmp_path / "bad.pem"], {}),
        (["verify", path, "--expect-head", "abc"], {}),
        (["verify", path, "--expect-records", "-1"], {}),
        (["verify", tmp_path], {}),
        (["show", tmp_path / "missing.log"], {}),
        (["verify", path, "--hmac-key-env", "K", "--hmac-key", tmp_path / "bad.pem"], {"K": KEY.hex()}),
    ]
    for args, env in cases:
        result = run(*args, env=env)
        assert result.exit_code == 2, (args, result.output)
        errors = [ln for ln in result.stderr.splitlines() if ln.lower().startswith("error")]
        assert len(errors) == 1 and "Traceback" not in result.output, result.output


def test_cli_escapes_what_it_prints(tmp_path: Path) -> None:
    path = tmp_path / "evil\x1b[31m.log"
    path.write_bytes(b'{"seq":0,"prev":"' + b"0" * 64 + b'","k\x1b[2J":1}\n')
    result = run("verify", path)
    assert result.exit_code == 1 and "\x1b" not in result.output and "\\x1b" in result.output


# --- with GuardedModel ----------------------------------------------------------------------------

def test_guarded_model_requests_are_logged_and_verify(tmp_path: Path) -> None:
    import numpy as np
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    from guard.build import build_target_from_objects
    from guard.defenses.access.guarded import AccessDenied, GuardedModel
    from guard.defenses.access.policy import AccessPolicy

    x, y = load_iris(return_X_y=True)
    x = x.astype(np.float32)
    target = build_target_from_objects(LogisticRegression(max_iter=300).fit(x, y), x, y, clip="none",
                                       name="iris")
    policy = tmp_path / "access.toml"
    policy.write_text('[roles.a]\npermissions = ["predict"]\n[principals.alice]\nroles = ["a"]\n')
    path = tmp_path / "audit.log"
    with AuditLog(path, hmac_key=KEY) as log:
        guarded = GuardedModel(target.model, AccessPolicy.load(policy), log=log)
        token = guarded.tokens.create("alice")
        guarded.predict(x[:4], token=token)
        with pytest.raises(AccessDenied):
            guarded.predict(x[:1], token=token + "x")
    assert verify_log(path, hmac_key=KEY).records == 2
    records = [json.loads(line) for line in lines_of(path)]
    outcomes = [(r["outcome"], r["status"], r["n"]) for r in records]
    assert outcomes == [("served", 200, 4), ("refused", 401, None)]
    assert token not in path.read_text()


@pytest.mark.parametrize("damage", [b'{"seq":1,"prev":"abc', b"garbage but a complete line\n"])
def test_a_damaged_tail_is_refused_on_every_append_not_only_the_first(tmp_path: Path, damage: bytes) -> None:
    """Red-team finding: a writer that refused a damaged tail once used to start a second chain
    at seq 0 inside the same file on its next append (fused onto a partial line)."""
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path)
    log.append({"a": 1})
    with open(path, "ab") as f:
        f.write(damage)  # a crash mid-write, or another writer
    before = path.read_bytes()
    for _ in range(3):
        with pytest.raises(AuditLogError):
            log.append({"a": 2})
    assert path.read_bytes() == before
