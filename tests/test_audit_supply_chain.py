"""guard audit with the supply-chain checks and policies: encrypted models, signatures, gates."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from guard.cli import cli
from guard.demo import digits_split, train_cnn

FAST = ["--samples", "40", "--steps", "5", "--eps", "0.1", "--attack", "fgsm", "--format", "json"]


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.output


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("model")
    split = digits_split()
    model = train_cnn(split, epochs=2)
    paths = {"model": folder / "cnn.pt", "data": folder / "eval.npz", "key": folder / "k.key",
             "signer": folder / "signer.pem"}
    torch.save(model.state_dict(), paths["model"])
    np.savez(paths["data"], x=split.x_test[:60], y=split.y_test[:60])
    assert run("keygen", "-o", str(paths["key"]))[0] == 0
    assert run("keygen", "--signing", "-o", str(paths["signer"]))[0] == 0
    code, out = run("encrypt", str(paths["model"]), "--key", str(paths["key"]))
    assert code == 0, out
    paths["enc"] = folder / "cnn.pt.enc"
    code, out = run("sign", str(paths["model"]), "--key", str(paths["signer"]), "-o",
                    str(folder / "model.sig.json"))
    assert code == 0, out
    paths["manifest"] = folder / "model.sig.json"
    return paths


def base(files: dict[str, Path], model: str = "model") -> list[str]:
    return ["audit", "--model", str(files[model]), "--arch", "guard.demo:DigitsCNN", "--data",
            str(files["data"]), "--clip", "0,1", *FAST]


def evidence(out_dir: Path) -> dict[str, dict]:
    doc = json.loads((out_dir / "report.json").read_text())
    return {e["probe"]: e for e in doc["evidence"]}


def test_encrypted_model_is_audited_in_memory(files: dict[str, Path], tmp_path: Path) -> None:
    before = set(files["enc"].parent.iterdir())
    code, out = run(*base(files, "enc"), "--key", str(files["key"]), "--out", str(tmp_path))
    assert code == 0, out
    ev = evidence(tmp_path)
    assert ev["supply_chain.encryption"]["metrics"]["encrypted_at_rest"]["value"] == 1
    assert "evasion.fgsm" in ev
    assert set(files["enc"].parent.iterdir()) == before, "no plaintext may touch the disk"


def test_encrypted_model_needs_a_key(files: dict[str, Path], tmp_path: Path) -> None:
    code, out = run(*base(files, "enc"), "--out", str(tmp_path))
    assert code == 2 and "is encrypted" in out


def test_wrong_key_is_exit_1(files: dict[str, Path], tmp_path: Path) -> None:
    other = tmp_path / "other.key"
    assert run("keygen", "-o", str(other))[0] == 0
    code, out = run(*base(files, "enc"), "--key", str(other), "--out", str(tmp_path / "o"))
    assert code == 1, out
    assert "error" in out.lower() and not (tmp_path / "o" / "report.json").exists()


def test_signature_verified_before_load(files: dict[str, Path], tmp_path: Path) -> None:
    code, out = run(*base(files), "--verify-with", str(files["signer"]) + ".pub",
                    "--manifest", str(files["manifest"]), "--out", str(tmp_path))
    assert code == 0, out
    sig = evidence(tmp_path)["supply_chain.signature"]
    assert sig["metrics"]["verified"]["value"] == 1


def test_tampered_model_fails_verification(files: dict[str, Path], tmp_path: Path) -> None:
    tampered = tmp_path / "cnn.pt"
    data = bytearray(files["model"].read_bytes())
    data[len(data) // 2] ^= 1
    tampered.write_bytes(bytes(data))
    manifest = tmp_path / "model.sig.json"
    manifest.write_bytes(files["manifest"].read_bytes())
    args = base(files)
    args[args.index("--model") + 1] = str(tampered)
    code, out = run(*args, "--verify-with", str(files["signer"]) + ".pub", "--manifest",
                    str(manifest), "--out", str(tmp_path / "o"))
    assert code == 1 and "cnn.pt" in out
    assert not (tmp_path / "o" / "report.json").exists()


def test_policy_gate_exit_codes_and_waiver(files: dict[str, Path], tmp_path: Path) -> None:
    # 40 samples is below GRD-EVA-04's minimum of 100: a low-severity failure
    code, out = run(*base(files), "--policy", "gdpr", "--fail-on", "low", "--out", str(tmp_path / "a"))
    assert code == 1, out
    assert "GRD-EVA-04" in out
    doc = json.loads((tmp_path / "a" / "report.json").read_text())
    status = {f["control"]: f["status"] for f in doc["findings"]}
    assert status["GRD-EVA-04"] == "fail" and status["GRD-SUP-02"] == "fail"
    assert status["GRD-PRV-01"] == "not_assessed"
    code, out = run(*base(files), "--policy", "gdpr", "--fail-on", "critical", "--out", str(tmp_path / "b"))
    assert code == 0, out
    waivers = tmp_path / "waivers.yaml"
    waivers.write_text(
        "waivers:\n"
        "  - {control: GRD-EVA-04, target: '*', reason: smoke test, approver: dpo@example.org, "
        "expires: 2999-01-01}\n"
        "  - {control: GRD-SUP-02, target: '*', reason: lab model, approver: dpo@example.org, "
        "expires: 2999-01-01}\n"
    )
    code, out = run(*base(files), "--policy", "gdpr", "--fail-on", "low", "--waivers", str(waivers),
                    "--out", str(tmp_path / "c"))
    assert code == 0, out


def test_waivers_without_policy_is_usage_error(files: dict[str, Path], tmp_path: Path) -> None:
    code, out = run(*base(files), "--waivers", str(tmp_path / "w.yaml"), "--out", str(tmp_path))
    assert code == 2 and "--policy" in out


def test_report_rerenders_and_rejudges(files: dict[str, Path], tmp_path: Path) -> None:
    code, out = run(*base(files), "--out", str(tmp_path / "a"))
    assert code == 0, out
    report = tmp_path / "a" / "report.json"
    code, out = run("report", str(report), "--format", "json,html", "--out", str(tmp_path / "b"))
    assert code == 0, out
    assert evidence(tmp_path / "b") == evidence(tmp_path / "a")
    code, out = run("report", str(report), "--policy", "gdpr", "--fail-on", "low", "--format", "json",
                    "--out", str(tmp_path / "c"))
    assert code == 1, out
    doc = json.loads((tmp_path / "c" / "report.json").read_text())
    assert any(f["control"] == "GRD-EVA-04" and f["status"] == "fail" for f in doc["findings"])


def test_report_of_unknown_schema_is_clear(tmp_path: Path) -> None:
    bad = tmp_path / "r.json"
    bad.write_text('{"schema": "guard.audit/99"}')
    code, out = run("report", str(bad), "--out", str(tmp_path))
    assert code == 2 and "guard.audit/99" in out


def test_signature_covers_the_bytes_that_load_under_a_concurrent_swap(
        files: dict[str, Path], tmp_path: Path) -> None:
    """A thread swaps the signed model for another one (atomic renames) while audits run:
    an audit either fails verification or loads exactly the signed bytes, never the other."""
    import hashlib
    import os
    import threading

    signed = files["model"].read_bytes()
    folder = tmp_path / "swap"
    folder.mkdir()
    model = folder / "cnn.pt"
    model.write_bytes(signed)
    (folder / "model.sig.json").write_bytes(files["manifest"].read_bytes())
    staged = {True: tmp_path / "signed.pt", False: tmp_path / "other.pt"}
    staged[True].write_bytes(signed)
    # another valid state dict of the same network (weights scaled): unsigned, but loads fine
    torch.save({k: v * 2 for k, v in files_model_state(files).items()}, staged[False])
    stop = threading.Event()

    def swap() -> None:
        flip = False
        while not stop.is_set():
            tmp = folder / f".swap{int(flip)}"
            tmp.write_bytes(staged[flip].read_bytes())
            os.replace(tmp, model)
            flip = not flip

    args = base(files)
    args[args.index("--model") + 1] = str(model)
    worker = threading.Thread(target=swap, daemon=True)
    worker.start()
    outcomes = []
    try:
        for i in range(40):  # at least 12 audits, and on until both outcomes were seen
            if i >= 12 and len(set(outcomes)) > 1:
                break
            out_dir = tmp_path / f"o{i}"
            code, out = run(*args, "--verify-with", str(files["signer"]) + ".pub", "--manifest",
                            str(folder / "model.sig.json"), "--out", str(out_dir))
            if code == 0:
                doc = json.loads((out_dir / "report.json").read_text())
                outcomes.append(doc["target"]["digests"]["model"])
            else:
                assert code == 1 and "modified" in out, out
                outcomes.append("refused")
    finally:
        stop.set()
        worker.join()
    want = "sha256:" + hashlib.sha256(signed).hexdigest()
    assert all(o in (want, "refused") for o in outcomes), outcomes
    assert want in outcomes and "refused" in outcomes, outcomes  # the swap really raced the audits


def files_model_state(files: dict[str, Path]) -> dict[str, torch.Tensor]:
    state: dict[str, torch.Tensor] = torch.load(files["model"], weights_only=True)
    return state
