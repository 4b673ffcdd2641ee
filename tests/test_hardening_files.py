"""Input files Guard reads whole: bounded, never blocking, one-line errors; temp files a
killed writer leaves are cleaned up; the limits table and its documentation agree."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from guard.cli import cli
from guard.errors import ConfigError, InputFileError
from guard.fsio import atomic_write_bytes, read_input, read_input_text, remove_stale_temps
from guard.limits import LIMITS, limit, parse_size

ROOT = Path(__file__).resolve().parents[1]


def invoke(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args), env=env)
    assert "Traceback" not in result.output, result.output
    return result.exit_code, result.output


@pytest.fixture
def fifo(tmp_path: Path) -> Path:
    path = tmp_path / "pipe"
    os.mkfifo(path)
    return path


def test_read_input_refuses_fifo_device_folder_and_oversize_at_once(tmp_path: Path, fifo: Path) -> None:
    start = time.perf_counter()
    with pytest.raises(InputFileError, match="FIFO, device or socket"):
        read_input(fifo, "policy pack", "policy_bytes")
    with pytest.raises(InputFileError, match="FIFO, device or socket"):
        read_input("/dev/zero", "policy pack", "policy_bytes")
    with pytest.raises(InputFileError, match="is a folder"):
        read_input(tmp_path, "policy pack", "policy_bytes")
    with pytest.raises(InputFileError, match="no such file"):
        read_input(tmp_path / "absent.yaml", "policy pack", "policy_bytes")
    assert time.perf_counter() - start < 2

    big = tmp_path / "big.yaml"
    big.write_bytes(b"#" * (limit("policy_bytes") + 1))
    raise_it = r"larger than the 4 MiB \(raise it with GUARD_LIMIT_POLICY_BYTES\)"
    with pytest.raises(InputFileError, match=raise_it):
        read_input(big, "policy pack", "policy_bytes")
    binary = tmp_path / "bin.yaml"
    binary.write_bytes(b"title: \xff\xfe")
    with pytest.raises(InputFileError, match="not UTF-8 text"):
        read_input_text(binary, "policy pack", "policy_bytes")


def test_a_limit_is_raised_by_its_environment_variable(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    big = tmp_path / "big.yaml"
    big.write_bytes(b"#" * (5 << 20))
    monkeypatch.setenv("GUARD_LIMIT_POLICY_BYTES", "8MiB")
    assert limit("policy_bytes") == 8 << 20
    assert len(read_input(big, "policy pack", "policy_bytes")) == 5 << 20
    monkeypatch.setenv("GUARD_LIMIT_POLICY_BYTES", "lots")
    with pytest.raises(ConfigError, match="GUARD_LIMIT_POLICY_BYTES='lots'"):
        limit("policy_bytes")
    monkeypatch.setenv("GUARD_LIMIT_POLICY_BYTES", "0")
    with pytest.raises(ConfigError, match="must be positive"):
        limit("policy_bytes")
    assert [parse_size(t) for t in ("4096", "64MiB", "2G", "1 kb")] == [4096, 64 << 20, 2 << 30, 1024]


def test_key_manifest_and_model_files_that_block_or_never_end(tmp_path: Path, fifo: Path) -> None:
    plain = tmp_path / "model.bin"
    plain.write_bytes(os.urandom(1000))
    start = time.perf_counter()
    for args in (
        ("decrypt", str(plain), "-o", str(tmp_path / "out"), "--key", str(fifo)),
        ("decrypt", str(plain), "-o", str(tmp_path / "out"), "--key", "/dev/zero"),
        ("encrypt", str(plain), "-o", str(tmp_path / "out"), "--key", str(fifo)),
        ("verify", str(fifo), "--pubkey", str(fifo)),
        ("verify", "/dev/zero", "--pubkey", "/dev/zero"),
        ("audit", "--model", str(fifo), "--data", str(fifo), "--clip", "0,1"),
    ):
        code, output = invoke(*args)
        assert code == 2, (args, output)
        assert len(output.strip().splitlines()) == 1, (args, output)
        assert re.search(r"FIFO|device|too large|larger than", output), (args, output)
    assert time.perf_counter() - start < 20


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_killed_writer_leaves_a_temp_that_the_next_write_removes(tmp_path: Path) -> None:
    out = tmp_path / "plain.bin"
    # A real SIGKILL in the middle of an atomic write: the temp file stays, the target never appears.
    script = (
        "import os, signal, sys\n"
        "from guard.fsio import atomic_writer\n"
        "with atomic_writer(__import__('pathlib').Path(sys.argv[1]), 0o600) as fh:\n"
        "    fh.write(b'secret plaintext' * 4096); fh.flush()\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    killed = subprocess.run([sys.executable, "-c", script, str(out)], check=False)
    assert killed.returncode == -9
    left = list(tmp_path.glob(".plain.bin.*.tmp"))
    assert len(left) == 1 and not out.exists()
    assert left[0].stat().st_mode & 0o777 == 0o600

    mine = tmp_path / f".plain.bin.{os.getpid()}.keep.tmp"  # a live writer's: never touched
    mine.write_bytes(b"x")
    other = tmp_path / ".plain.bin.notapid.tmp"  # not of our naming: never touched
    other.write_bytes(b"x")
    stale = tmp_path / f".plain.bin.{_dead_pid()}.abc.tmp"
    stale.write_bytes(b"x")
    atomic_write_bytes(out, b"done")
    assert out.read_bytes() == b"done"
    assert not left[0].exists() and not stale.exists()
    assert mine.exists() and other.exists()
    assert remove_stale_temps(out) == []


def test_decrypt_cleans_up_after_a_killed_decrypt(tmp_path: Path) -> None:
    key = tmp_path / "k.key"
    src = tmp_path / "model.pt"
    src.write_bytes(os.urandom(4096))
    assert invoke("keygen", "--out", str(key))[0] == 0
    assert invoke("encrypt", str(src), "--key", str(key), "--out", str(tmp_path / "model.pt.enc"))[0] == 0
    stale = tmp_path / f".plain.pt.{_dead_pid()}.x1y2.tmp"
    stale.write_bytes(b"half the plaintext")
    stale.chmod(0o600)
    code, output = invoke("decrypt", str(tmp_path / "model.pt.enc"), "--key", str(key),
                          "--out", str(tmp_path / "plain.pt"))
    assert code == 0, output
    assert (tmp_path / "plain.pt").read_bytes() == src.read_bytes()
    assert not stale.exists()


def test_a_changed_passphrase_header_reads_as_wrong_key_or_tampered_header(tmp_path: Path) -> None:
    src = tmp_path / "model.pt"
    src.write_bytes(os.urandom(4096))
    env = {"PASS": "correct horse battery staple"}
    enc = tmp_path / "model.pt.enc"
    assert invoke("encrypt", str(src), "--passphrase-env", "PASS", "--out", str(enc), env=env)[0] == 0
    data = bytearray(enc.read_bytes())
    data[12] ^= 0x01  # the first salt byte (header layout: defenses/crypto/header.py)
    enc.write_bytes(bytes(data))
    code, output = invoke("decrypt", str(enc), "--passphrase-env", "PASS", "--out",
                          str(tmp_path / "out.pt"), env=env)
    assert code == 1 and "wrong key or tampered header" in output, output


def test_missing_model_from_a_pyproject_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "pyproject.toml").write_text('[tool.guard]\nsteps = 3\n')
    monkeypatch.chdir(tmp_path)
    code, output = invoke("audit")
    assert code == 2 and output.strip().splitlines() == ["Error: missing --model and --data (or use --demo)"]


def test_docs_list_every_limit_with_its_default_and_variable() -> None:
    text = (ROOT / "docs" / "limits.md").read_text(encoding="utf-8")
    for entry in LIMITS.values():
        row = next((line for line in text.splitlines() if f"`{entry.env}`" in line), None)
        assert row is not None, f"docs/limits.md does not list {entry.env}"
        assert f"`{entry.name}`" in row, row


def test_a_signed_file_swapped_for_a_fifo_fails_verification_at_once(tmp_path: Path) -> None:
    model = tmp_path / "model"
    model.mkdir()
    (model / "weights.bin").write_bytes(os.urandom(2048))
    key = tmp_path / "signing.pem"
    assert invoke("keygen", "--signing", "--out", str(key))[0] == 0
    manifest = tmp_path / "model.sig.json"
    assert invoke("sign", str(model), "--key", str(key), "--out", str(manifest))[0] == 0
    (model / "weights.bin").unlink()
    os.mkfifo(model / "weights.bin")
    start = time.perf_counter()
    code, output = invoke("verify", str(manifest), "--pubkey", str(tmp_path / "signing.pem.pub"))
    assert code == 1 and "weights.bin" in output, output
    assert time.perf_counter() - start < 10


def test_an_escaping_base_exception_is_exit_3_in_one_line() -> None:
    """pyo3's PanicException derives from BaseException: the CLI's one mapping catches it too."""
    import click

    from guard.cli import GuardGroup

    class Panic(BaseException):
        pass

    @click.group(cls=GuardGroup)
    def group() -> None:
        pass

    @group.command()
    def boom() -> None:
        raise Panic("rust panicked")

    result = CliRunner().invoke(group, ["boom"])
    assert result.exit_code == 3 and "internal error: Panic: rust panicked" in result.output
    assert "Traceback" not in result.output


def test_an_error_naming_a_hostile_file_prints_it_visibly(tmp_path: Path) -> None:
    hostile = tmp_path / "m\x1b[2J\u202egnp.pt"
    code, output = invoke("audit", "--model", str(hostile), "--data", str(tmp_path / "d.npz"),
                          "--clip", "0,1")
    assert code == 2 and "\x1b" not in output and "\u202e" not in output
    assert "m\\x1b[2J<U+202E>gnp.pt" in output, output


@pytest.mark.parametrize("args", [["--eps", "1e-320"], ["--eps", "1e308"], ["--steps", str(2**63 - 1)],
                                  ["--seed", "-1"], ["--seed", str(2**63)]])
def test_bad_numbers_stop_the_audit_before_the_demo_models_are_built(
        args: list[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def never() -> None:
        raise AssertionError("the demo targets were built before the settings were checked")

    monkeypatch.setattr("guard.cli.audit._demo_files", never)
    code, output = invoke("audit", "--demo", *args, "--out", str(tmp_path / "o"))
    assert code == 2 and len(output.strip().splitlines()) == 1, output
