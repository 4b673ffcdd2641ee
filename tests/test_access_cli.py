import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from guard.cli import cli
from guard.defenses.access.tokens import TokenStore

POLICY = '[roles.a]\npermissions = ["predict"]\n[principals.alice]\nroles = ["a"]\n'


def _run(*args: str) -> "subprocess.CompletedProcess[str]":
    return subprocess.run(
        [sys.executable, "-m", "guard", "token", *args], capture_output=True, text=True, timeout=60
    )


def test_create_list_revoke_subprocess(tmp_path: Path) -> None:
    f = tmp_path / "access.toml"
    f.write_text(POLICY)
    r = _run("create", "--policy", str(f), "--principal", "alice")
    assert r.returncode == 0
    tok = r.stdout.strip().splitlines()[-1]
    assert TokenStore(tmp_path / "access.db").authenticate(tok) == "alice"
    r = _run("list", "--policy", str(f))
    assert tok.split("_")[1] in r.stdout and tok.split("_")[2] not in r.stdout
    r = _run("revoke", "--policy", str(f), "--id", tok.split("_")[1])
    assert r.returncode == 0 and "revoked 1" in r.stdout
    assert TokenStore(tmp_path / "access.db").authenticate(tok) is None


@pytest.mark.parametrize(
    ("policy", "args"),
    [
        (POLICY, ("create", "--principal", "bob")),
        (POLICY + '[principals.c]\nroles = ["zz"]\n', ("create", "--principal", "alice")),
        ("not = [toml", ("list",)),
        (POLICY, ("revoke",)),
    ],
)
def test_bad_input_exit_2_one_line(tmp_path: Path, policy: str, args: tuple[str, ...]) -> None:
    f = tmp_path / "access.toml"
    f.write_text(policy)
    cmd = ["token", args[0], "--policy", str(f), *args[1:]]
    res = CliRunner().invoke(cli, cmd)
    assert res.exit_code == 2, res.output
    assert len(res.output.strip().splitlines()) == 1
