"""Ed25519 manifests: sign files and folders, verify, and catch every kind of change."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from guard.cli import cli
from guard.defenses.crypto import (
    CryptoInputError,
    VerificationError,
    encryption_evidence,
    load_private_key,
    sign_paths,
    signature_evidence,
    verify_manifest,
    write_signing_keypair,
)
from guard.defenses.crypto.manifest import PREDICATE_TYPE, STATEMENT_TYPE, root_digest, safe_name
from guard.defenses.crypto.signing import PAYLOAD_TYPE, pae


def run(*args: object) -> Result:
    return CliRunner().invoke(cli, [str(a) for a in args])


@pytest.fixture()
def model(tmp_path: Path) -> Path:
    """A model folder (weights, config, a nested tokenizer) with a key pair beside it."""
    root = tmp_path / "model"
    (root / "tokenizer").mkdir(parents=True)
    (root / "weights.safetensors").write_bytes(os.urandom(3000))
    (root / "config.json").write_text('{"layers": 2}')
    (root / "tokenizer" / "vocab.txt").write_text("a\nb\n")
    (root / ".git").mkdir()
    (root / ".git" / "HEAD").write_text("ref: main")
    write_signing_keypair(tmp_path / "signer.pem")
    return root


def sign(model: Path) -> Path:
    manifest = model.parent / "model.sig.json"
    sign_paths([model], load_private_key(model.parent / "signer.pem"), manifest)
    return manifest


def test_keypair_files(tmp_path: Path) -> None:
    fp = write_signing_keypair(tmp_path / "k.pem")
    assert (tmp_path / "k.pem").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "k.pem.pub").read_text().startswith("-----BEGIN PUBLIC KEY-----")
    assert fp.startswith("sha256:") and len(fp) == 7 + 64
    with pytest.raises(CryptoInputError, match="overwrite"):
        write_signing_keypair(tmp_path / "k.pem")
    write_signing_keypair(tmp_path / "e.pem", passphrase=b"pw")
    with pytest.raises(CryptoInputError, match="encrypted"):
        load_private_key(tmp_path / "e.pem")
    with pytest.raises(CryptoInputError, match="wrong passphrase"):
        load_private_key(tmp_path / "e.pem", b"nope")
    load_private_key(tmp_path / "e.pem", b"pw")


def test_manifest_shape_is_a_dsse_envelope_of_an_in_toto_statement(model: Path) -> None:
    envelope = json.loads(sign(model).read_text())
    assert envelope["payloadType"] == PAYLOAD_TYPE and len(envelope["signatures"]) == 1
    statement = json.loads(base64.b64decode(envelope["payload"]))
    assert statement["_type"] == STATEMENT_TYPE and statement["predicateType"] == PREDICATE_TYPE
    names = [r["name"] for r in statement["predicate"]["resources"]]
    assert names == ["model/config.json", "model/tokenizer/vocab.txt", "model/weights.safetensors"]
    assert statement["subject"][0]["name"] == "model"
    assert statement["predicate"]["directories"] == ["model"]
    assert pae("t", b"ab") == b"DSSEv1 1 t 2 ab"


def test_verify_passes_and_gives_evidence(model: Path) -> None:
    manifest = sign(model)
    result = verify_manifest(manifest, model.parent / "signer.pem.pub").raise_if_failed()
    assert result.verified and result.signature_valid and len(result.files) == 3 and result.problem == ""
    evidence = signature_evidence(result, manifest).to_dict()
    assert evidence["probe"] == "supply_chain.signature"
    assert evidence["metrics"]["verified"]["value"] == 1.0
    assert evidence["params"]["signer_fingerprint"] == result.signer_fingerprint
    (model / ".git" / "HEAD").write_text("changed")  # ignored, like OpenSSF model signing
    assert verify_manifest(manifest, model.parent / "signer.pem.pub").verified


@pytest.mark.parametrize("change", ["modified", "missing", "unexpected"])
def test_a_changed_file_fails_and_is_named(model: Path, change: str) -> None:
    manifest = sign(model)
    if change == "modified":
        (model / "config.json").write_text('{"layers": 3}')
    elif change == "missing":
        (model / "config.json").unlink()
    else:
        (model / "tokenizer" / "extra.pkl").write_bytes(b"evil")
    result = verify_manifest(manifest, model.parent / "signer.pem.pub")
    assert not result.verified and result.signature_valid
    assert [(f.name, f.status) for f in result.failures] == [
        ("model/tokenizer/extra.pkl" if change == "unexpected" else "model/config.json", change)
    ]
    with pytest.raises(VerificationError):
        result.raise_if_failed()
    assert signature_evidence(result, manifest).metrics["files_failed"].value == 1.0


def test_tampered_manifest_or_other_key_fails(model: Path, tmp_path: Path) -> None:
    manifest = sign(model)
    write_signing_keypair(tmp_path / "other.pem")
    result = verify_manifest(manifest, tmp_path / "other.pem.pub")
    assert not result.verified and not result.signature_valid and "does not verify" in result.problem
    envelope = json.loads(manifest.read_text())
    statement = json.loads(base64.b64decode(envelope["payload"]))
    statement["predicate"]["resources"][0]["digest"] = "00" * 32  # attacker rewrites a digest
    envelope["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()
    manifest.write_text(json.dumps(envelope))
    assert not verify_manifest(manifest, model.parent / "signer.pem.pub").signature_valid
    for garbage in ("", "{", "[]", '{"payloadType": 1}', json.dumps({**envelope, "signatures": []})):
        manifest.write_text(garbage)
        assert not verify_manifest(manifest, model.parent / "signer.pem.pub").verified


def test_unsafe_names_and_inputs_are_refused(model: Path, tmp_path: Path) -> None:
    for bad in ("/etc/passwd", "../secret", "a/../../b", "", "a\\b"):
        with pytest.raises(ValueError):
            safe_name(bad)
    assert root_digest([]) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    key = load_private_key(tmp_path / "signer.pem")
    os.symlink(model / "config.json", model / "link.json")
    with pytest.raises(CryptoInputError, match="symlink"):
        sign_paths([model], key, tmp_path / "m.json")
    with pytest.raises(CryptoInputError, match="outside the base folder"):
        sign_paths([model / "config.json"], key, tmp_path / "sub" / "m.json", base_dir=tmp_path / "sub")
    with pytest.raises(CryptoInputError, match="not found"):
        verify_manifest(tmp_path / "none.json", tmp_path / "signer.pem.pub")
    with pytest.raises(CryptoInputError, match="public key"):
        verify_manifest(tmp_path / "none.json", tmp_path / "signer.pem")


def test_cli_keygen_sign_verify(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "weights.pt").write_bytes(b"w" * 100)
    (tmp_path / "notes.txt").write_text("n")
    result = run("keygen", "--signing", "-o", "private.pem")
    assert result.exit_code == 0 and "private.pem.pub" in result.stdout
    result = run("sign", "weights.pt", "notes.txt", "--key", "private.pem", "-o", "model.sig.json")
    assert result.exit_code == 0 and "signed 2 files" in result.stdout
    result = run("verify", "model.sig.json", "--pubkey", "private.pem.pub")
    assert result.exit_code == 0 and "verified 2 files" in result.stdout
    (tmp_path / "weights.pt").write_bytes(b"x" * 100)
    result = run("verify", "model.sig.json", "--pubkey", "private.pem.pub")
    assert result.exit_code == 1 and result.stderr.startswith("error: verification failed: weights.pt")
    assert run("verify", "model.sig.json", "--pubkey", "missing.pub").exit_code == 2
    assert run("sign", "nothing.pt", "--key", "private.pem").exit_code == 2


def test_cli_signs_a_folder_in_place(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "model"
    folder.mkdir()
    monkeypatch.chdir(folder)
    monkeypatch.setenv("SIGN_PW", "pw")
    (folder / "w.bin").write_bytes(b"w")
    assert run("keygen", "--signing", "-o", "../k.pem", "--passphrase-env", "SIGN_PW").exit_code == 0
    assert run("sign", ".", "--key", "../k.pem").exit_code == 2  # encrypted key, no passphrase
    assert run("sign", ".", "--key", "../k.pem", "--passphrase-env", "SIGN_PW").exit_code == 0
    assert run("verify", "model.sig.json", "--pubkey", "../k.pem.pub").exit_code == 0  # skips itself
    (folder / "new.bin").write_bytes(b"n")
    result = run("verify", "model.sig.json", "--pubkey", "../k.pem.pub")
    assert result.exit_code == 1 and "new.bin is unexpected" in result.stderr


def test_encryption_evidence(tmp_path: Path) -> None:
    from guard.defenses.crypto import RawKey, encrypt_file

    (tmp_path / "m.pt").write_bytes(b"m")
    info = encrypt_file(tmp_path / "m.pt", tmp_path / "m.pt.enc", RawKey(bytes(32), "k"))
    plain = encryption_evidence(tmp_path / "m.pt").to_dict()
    assert plain["probe"] == "supply_chain.encryption" and plain["metrics"]["encrypted_at_rest"]["value"] == 0
    enc = encryption_evidence(tmp_path / "m.pt.enc", decrypted=True).to_dict()
    assert enc["metrics"]["encrypted_at_rest"]["value"] == 1 and enc["metrics"]["authenticated"]["value"] == 1
    assert enc["params"]["algorithm"] == "AES-256-GCM" and enc["params"]["key_id"] == info.key_id
    json.dumps(enc)  # report.json must be able to hold it
