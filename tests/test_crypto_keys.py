"""Key-encryption keys: key files, environment variables, passphrases, key ids, atomic output."""

from __future__ import annotations

import base64
import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from guard.defenses.crypto import CryptoInputError, RawKey, encrypt_file, key_source, load_key_file
from guard.defenses.crypto import files as crypto_files
from guard.defenses.crypto.keys import (
    Passphrase,
    generate_key,
    key_file_too_open,
    key_id,
    parse_key,
    write_key_file,
)

KEY = RawKey(bytes(32), "test key")


def test_key_file_round_trip_mode_and_refusal_to_overwrite(tmp_path: Path) -> None:
    key = generate_key()
    path = tmp_path / "k.key"
    write_key_file(path, key)
    assert path.stat().st_mode & 0o777 == 0o600 and not key_file_too_open(path)
    assert load_key_file(path).key == key
    assert key_id(key).hex() in path.read_text()
    with pytest.raises(CryptoInputError, match="overwrite"):
        write_key_file(path, generate_key())
    assert load_key_file(path).key == key
    os.chmod(path, 0o644)
    assert key_file_too_open(path)


def test_key_text_forms() -> None:
    key = os.urandom(32)
    b64 = base64.b64encode(key).decode()
    for text in (b64, key.hex(), f"# comment\nguard-kek-v1:{b64}\n", f"  {b64}  \n"):
        assert parse_key(text, "x").key == key
    for bad in ("", "abc", base64.b64encode(os.urandom(16)).decode(), "a\nb"):
        with pytest.raises(CryptoInputError):
            parse_key(bad, "x")


def test_key_sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key = generate_key()
    write_key_file(tmp_path / "k.key", key)
    monkeypatch.setenv("GUARD_TEST_KEY", key.hex())
    monkeypatch.setenv("GUARD_TEST_PW", "pässwörd")
    assert isinstance(key_source(key_file=tmp_path / "k.key"), RawKey)
    from_env = key_source(key_env="GUARD_TEST_KEY")
    assert isinstance(from_env, RawKey) and from_env.key == key
    source = key_source(passphrase_env="GUARD_TEST_PW")
    assert isinstance(source, Passphrase) and source.secret == "pässwörd".encode()
    assert "pässwörd" not in repr(source) and key.hex() not in repr(from_env)
    with pytest.raises(CryptoInputError, match="exactly one"):
        key_source()
    with pytest.raises(CryptoInputError, match="--new-key"):
        key_source(tmp_path / "k.key", "GUARD_TEST_KEY", option_prefix="new-")
    with pytest.raises(CryptoInputError, match="not set"):
        key_source(key_env="GUARD_TEST_UNSET")
    with pytest.raises(CryptoInputError, match="not found"):
        key_source(key_file=tmp_path / "missing.key")


def test_key_ids_differ_and_passphrases_are_salted() -> None:
    assert key_id(bytes(32)) != key_id(bytes(31) + b"\x01")
    phrase = Passphrase(b"same", "p", log_n=10)
    first, second = phrase.new_params(), phrase.new_params()
    assert first.salt != second.salt and phrase.derive(first) != phrase.derive(second)


def test_a_failed_encryption_leaves_no_output(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = tmp_path / "model.pt"
    src.write_bytes(b"weights" * 1000)

    def broken(fin: io.BufferedReader, fout: io.BufferedWriter, *args: object, **kw: object) -> None:
        fout.write(b"partial ciphertext")
        raise KeyboardInterrupt

    monkeypatch.setattr(crypto_files, "encrypt_stream", broken)
    with pytest.raises(KeyboardInterrupt):
        encrypt_file(src, tmp_path / "model.pt.enc", KEY)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt"]


def test_outputs_are_never_clobbered(tmp_path: Path) -> None:
    src = tmp_path / "model.pt"
    src.write_bytes(b"w")
    (tmp_path / "model.pt.enc").write_bytes(b"keep")
    with pytest.raises(CryptoInputError, match="overwrite"):
        encrypt_file(src, tmp_path / "model.pt.enc", KEY)
    with pytest.raises(CryptoInputError, match="is the input"):
        encrypt_file(src, src, KEY, overwrite=True)
    assert (tmp_path / "model.pt.enc").read_bytes() == b"keep" and src.read_bytes() == b"w"


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs a FIFO to hold the encryption open")
def test_sigkill_during_encryption_leaves_nothing_under_the_final_name(tmp_path: Path) -> None:
    """The source is a FIFO, so the child is provably mid-encryption (temp file growing) when killed."""
    fifo, out = tmp_path / "model.fifo", tmp_path / "model.pt.enc"
    os.mkfifo(fifo)
    code = (
        "import sys; from pathlib import Path; from guard.defenses.crypto import RawKey, encrypt_file; "
        "encrypt_file(Path(sys.argv[1]), Path(sys.argv[2]), RawKey(bytes(32), 't'), chunk_size=1024)"
    )
    child = subprocess.Popen([sys.executable, "-c", code, str(fifo), str(out)])
    with open(fifo, "wb") as writer:
        writer.write(os.urandom(64 * 1024))
        writer.flush()
        deadline = time.monotonic() + 20
        while not any(p.name.endswith(".tmp") and p.stat().st_size > 1024 for p in tmp_path.iterdir()):
            assert time.monotonic() < deadline and child.poll() is None, "child never started writing"
            time.sleep(0.01)
        child.send_signal(signal.SIGKILL)
        child.wait()
    assert child.returncode == -signal.SIGKILL
    assert not out.exists()
