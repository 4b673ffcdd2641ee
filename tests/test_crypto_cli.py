"""``guard keygen/encrypt/decrypt/rekey`` through CliRunner: outputs, messages, exit codes 0/1/2."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from guard.cli import cli


def run(*args: object) -> Result:
    return CliRunner().invoke(cli, [str(a) for a in args])


@pytest.fixture()
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "model.pt").write_bytes(os.urandom(5000))
    assert run("keygen", "-o", "k.key").exit_code == 0
    return tmp_path


def test_keygen_encrypt_decrypt(folder: Path) -> None:
    assert (folder / "k.key").stat().st_mode & 0o777 == 0o600
    result = run("encrypt", "model.pt", "--key", "k.key", "--chunk-size", 1024)
    assert result.exit_code == 0 and "model.pt.enc" in result.stdout and "key id" in result.stdout
    result = run("decrypt", "model.pt.enc", "--key", "k.key", "-o", "back.pt")
    assert result.exit_code == 0, result.output
    assert (folder / "back.pt").read_bytes() == (folder / "model.pt").read_bytes()


def test_decrypt_default_output_and_refusals(folder: Path) -> None:
    run("encrypt", "model.pt", "--key", "k.key")
    result = run("decrypt", "model.pt.enc", "--key", "k.key")
    assert result.exit_code == 2 and "exists" in result.output  # model.pt is still there
    os.rename(folder / "model.pt", folder / "orig.pt")
    assert run("decrypt", "model.pt.enc", "--key", "k.key").exit_code == 0
    assert (folder / "model.pt").read_bytes() == (folder / "orig.pt").read_bytes()
    assert run("decrypt", "orig.pt", "--key", "k.key").exit_code == 2  # no .enc: needs -o
    assert run("keygen", "-o", "k.key").exit_code == 2  # never overwrite a key silently
    assert run("encrypt", "orig.pt").exit_code == 2  # no key given
    assert run("encrypt", "missing.pt", "--key", "k.key").exit_code == 2


def test_integrity_failures_exit_1_with_one_line_and_no_output(folder: Path) -> None:
    run("encrypt", "model.pt", "--key", "k.key")
    run("keygen", "-o", "other.key")
    result = run("decrypt", "model.pt.enc", "--key", "other.key", "-o", "out.pt")
    assert result.exit_code == 1 and result.stderr.startswith("error: wrong key")
    enc = folder / "model.pt.enc"
    data = bytearray(enc.read_bytes())
    data[len(data) // 2] ^= 0x10
    enc.write_bytes(bytes(data))
    result = run("decrypt", "model.pt.enc", "--key", "k.key", "-o", "out.pt")
    assert result.exit_code == 1 and result.stderr.count("\n") == 1
    assert "fails authentication" in result.stderr
    enc.write_bytes(bytes(data[:-10]))
    assert run("decrypt", "model.pt.enc", "--key", "k.key", "-o", "out.pt").exit_code == 1
    result = run("decrypt", "model.pt", "--key", "k.key", "-o", "out.pt")
    assert result.exit_code == 1 and "not a Guard-encrypted file" in result.stderr
    assert not (folder / "out.pt").exists() and not list(folder.glob(".*.tmp"))


def test_env_key_passphrase_and_rekey(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODEL_KEY", (folder / "k.key").read_text())
    monkeypatch.setenv("MODEL_PW", "a long passphrase")
    assert run("encrypt", "model.pt", "--key-env", "MODEL_KEY").exit_code == 0
    result = run("rekey", "model.pt.enc", "--key", "k.key", "--new-passphrase-env", "MODEL_PW")
    assert result.exit_code == 0 and "scrypt" in result.stdout
    assert run("decrypt", "model.pt.enc", "--key", "k.key", "-o", "a.pt").exit_code == 1
    assert run("decrypt", "model.pt.enc", "--passphrase-env", "MODEL_PW", "-o", "a.pt").exit_code == 0
    assert (folder / "a.pt").read_bytes() == (folder / "model.pt").read_bytes()
    result = run("rekey", "model.pt.enc", "--passphrase-env", "MODEL_PW", "--new-key", "k.key",
                 "--new-key-env", "MODEL_KEY")
    assert result.exit_code == 2 and "--new-key FILE" in result.output


def test_loose_key_file_permissions_warn(folder: Path) -> None:
    os.chmod(folder / "k.key", 0o644)
    result = run("encrypt", "model.pt", "--key", "k.key")
    assert result.exit_code == 0 and "chmod 600" in result.stderr
