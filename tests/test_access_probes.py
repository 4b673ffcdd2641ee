"""The runtime-defense probes: access control, extraction resistance, audit log. Each is run
on a sound guard (the numbers a control passes on) and on a sabotaged one (the check must
fail), and extraction through a guard that changes nothing must equal the bare attack."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from guard.build import build_target_from_objects
from guard.defenses.access import BudgetLedger, Charge, GuardedModel, TokenStore
from guard.demo import digits_split
from guard.errors import ConfigError
from guard.evidence import Evidence
from guard.probes import RunContext, build_probe
from guard.target import Target

POLICY = """
[roles.analyst]
permissions = ["predict"]
[roles.scientist]
permissions = ["predict", "predict_proba"]
output = { round = 2 }
[principals.alice]
roles = ["analyst"]
budget = { per_minute = 600, total = 120 }
[principals.carol]
roles = ["scientist"]
budget = { total = 80 }
"""


@pytest.fixture(scope="module")
def target() -> Target:
    split = digits_split(image=False)
    model = LogisticRegression(max_iter=500).fit(split.x_train, split.y_train)
    return build_target_from_objects(model, split.x_test, split.y_test, clip=(0.0, 1.0), name="lr",
                                     x_train=split.x_train, y_train=split.y_train)


def policy_file(tmp_path: Path, text: str = POLICY) -> str:
    path = tmp_path / "access.toml"
    path.write_text(text)
    return str(path)


def run(name: str, target: Target, **settings: Any) -> list[Evidence]:
    return build_probe(name, **settings).run(target, RunContext(seed=0))


def value(evidence: Evidence, metric: str) -> float:
    return evidence.metrics[metric].value


def test_a_sound_guard_refuses_every_way_in_and_spends_budgets_exactly(target: Target,
                                                                         tmp_path: Path) -> None:
    [ev] = run("access-control", target, access_policy=policy_file(tmp_path))
    assert value(ev, "unauthenticated_served") == 0 and ev.metrics["unauthenticated_served"].n == 12
    # the one forbidden operation: alice's probabilities
    assert value(ev, "forbidden_served") == 0 and ev.metrics["forbidden_served"].n == 1
    assert value(ev, "permitted_refused") == 0 and ev.metrics["permitted_refused"].n == 3
    assert value(ev, "budget_overrun") == 0 and value(ev, "budget_shortfall") == 0
    assert {r["principal"]: (r["allowance"], r["answered"]) for r in ev.params["budget_results"]} == {
        "alice": (120, 120), "carol": (80, 80)}
    assert value(ev, "principals_unbudgeted") == 0 and value(ev, "raw_probability_principals") == 0
    assert ev.params["failures"] == []
    assert not (tmp_path / "access.db").exists()  # the audit never touches the deployment's ledger


def test_an_unbudgeted_principal_and_raw_probabilities_are_counted(target: Target, tmp_path: Path) -> None:
    text = POLICY + '[roles.open]\npermissions = ["predict_proba"]\n[principals.dave]\nroles = ["open"]\n'
    [ev] = run("access-control", target, access_policy=policy_file(tmp_path, text))
    assert ev.params["unbudgeted"] == ["dave"] and ev.params["raw_probability"] == ["dave"]
    assert value(ev, "forbidden_served") == 0 and ev.metrics["forbidden_served"].n == 2


def test_a_broken_authentication_is_caught(target: Target, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(TokenStore, "authenticate", lambda self, token: "carol")  # any token is carol's
    [ev] = run("access-control", target, access_policy=policy_file(tmp_path))
    assert value(ev, "unauthenticated_served") > 0
    assert any("made-up token" in f for f in ev.params["failures"])


def test_a_budget_that_does_not_hold_is_caught(target: Target, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    calls = {"n": 0}

    def leaky(self: BudgetLedger, principal: str, n: int, budget: Any, now: float | None = None) -> Charge:
        calls["n"] += n
        return Charge(calls["n"] <= 400, None, None, None if calls["n"] <= 400 else "over")

    monkeypatch.setattr(BudgetLedger, "charge", leaky)
    [ev] = run("access-control", target, access_policy=policy_file(tmp_path))
    assert value(ev, "budget_overrun") > 0


def test_extraction_through_a_guard_that_changes_nothing_equals_the_bare_attack(
        target: Target, tmp_path: Path) -> None:
    """Null control: full probabilities, no budget, no monitor: the same answers, so the same copy."""
    open_policy = ('[roles.open]\npermissions = ["predict", "predict_proba"]\n'
                   '[principals.eve]\nroles = ["open"]\n')
    [ev] = run("extraction-resistance", target, access_policy=policy_file(tmp_path, open_policy),
               budgets=(100,), epochs=3)
    assert ev.params["principal"] == "eve" and ev.params["output"] == "probabilities"
    assert value(ev, "fidelity_guarded") == value(ev, "fidelity_raw")
    assert value(ev, "fidelity_reduction") == 0 and value(ev, "queries_answered") == 100
    assert ev.params["stopped_by"] is None


def test_a_total_budget_caps_what_the_attacker_gets(target: Target, tmp_path: Path) -> None:
    [ev] = run("extraction-resistance", target, access_policy=policy_file(tmp_path), budgets=(300,), epochs=3)
    # alice may ask more (120 labels) but carol gets probabilities: the attacker wants carol
    assert ev.params["principal"] == "carol" and ev.params["output"] == "probabilities"
    assert value(ev, "queries_answered") == 80 and value(ev, "queries_refused") == 220
    assert ev.params["stopped_by"] == "total budget" and ev.params["hardening"] == "rounded to 2 decimals"
    assert value(ev, "fidelity_guarded") <= value(ev, "fidelity_raw")
    lo, hi = ev.metrics["fidelity_reduction"].ci95 or (0, 0)
    assert lo <= value(ev, "fidelity_reduction") <= hi


def test_a_named_principal_must_exist(target: Target, tmp_path: Path) -> None:
    probe = build_probe("extraction-resistance", access_policy=policy_file(tmp_path), principal="mallory")
    with pytest.raises(ConfigError, match="unknown principal 'mallory'"):
        probe.check(target)


def test_the_audit_log_probe_catches_a_log_that_skips_refusals(target: Target, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    [ev] = run("audit-log", target, access_policy=policy_file(tmp_path))
    assert value(ev, "logged") == 1 and value(ev, "log_verified") == 1
    assert value(ev, "tamper_detected") == 1 and ev.metrics["tamper_detected"].n == 3
    assert value(ev, "secrets_logged") == 0

    original = GuardedModel._log

    def served_only(self: GuardedModel, record: dict[str, Any]) -> None:
        if record.get("outcome") == "served":
            original(self, record)

    monkeypatch.setattr(GuardedModel, "_log", served_only)
    [bad] = run("audit-log", target, access_policy=policy_file(tmp_path))
    assert value(bad, "logged") < 1 and value(bad, "log_verified") == 0


def test_a_deployment_log_is_verified(target: Target, tmp_path: Path) -> None:
    from guard.defenses.access.auditlog import AuditLog

    path = tmp_path / "served.log"
    with AuditLog(path) as log:
        for i in range(4):
            log.append({"principal": "alice", "n": i})
    [ev] = run("audit-log", target, access_policy=policy_file(tmp_path), audit_log=str(path))
    assert value(ev, "deployment_log_verified") == 1 and value(ev, "deployment_log_records") == 4
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join([lines[0], lines[2], lines[1], lines[3]]))
    [bad] = run("audit-log", target, access_policy=policy_file(tmp_path), audit_log=str(path))
    assert value(bad, "deployment_log_verified") == 0 and "line 2" in bad.params["deployment_problem"]


def test_without_a_policy_the_probes_do_not_apply(target: Target) -> None:
    for name in ("access-control", "extraction-resistance", "audit-log"):
        probe = build_probe(name)
        assert not probe.applies_to(target) and "--access-policy" in probe.why_not(target)


@pytest.mark.parametrize("text, message", [
    ("[roles.a]\npermissions = ['fly']\n", "unknown permission 'fly'"),
    ("[principals.a]\nroles = ['ghost']\n", "unknown role 'ghost'"),
    ("[roles.a]\npermissions = ['predict']\n[principals.b]\nroles = ['a']\nbudget = { total = -1 }\n",
     "budget.total"),
    ("[roles.a\n", "not valid TOML"),
])
def test_a_bad_policy_is_one_line_before_any_work(target: Target, tmp_path: Path, text: str,
                                                   message: str) -> None:
    probe = build_probe("access-control", access_policy=policy_file(tmp_path, text))
    with pytest.raises(ConfigError, match=message.replace("[", r"\[")):
        probe.check(target)


def test_guard_audit_access_policy_end_to_end(target: Target, tmp_path: Path) -> None:
    import json

    import skops.io
    from click.testing import CliRunner

    from guard.cli import cli

    split = digits_split(image=False)
    model = LogisticRegression(max_iter=300).fit(split.x_train, split.y_train)
    (tmp_path / "m.skops").write_bytes(skops.io.dumps(model))
    np.savez(tmp_path / "d.npz", x=split.x_test, y=split.y_test)
    args = ["audit", "--model", str(tmp_path / "m.skops"), "--data", str(tmp_path / "d.npz"), "--clip", "0,1",
            "--attack", "access-control", "--attack", "audit-log", "--access-policy", policy_file(tmp_path),
            "--policy", "baseline", "--format", "json", "--out", str(tmp_path / "out"), "--no-progress",
            "--fail-on", "never"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    doc = json.loads((tmp_path / "out" / "report.json").read_text())
    doc = doc["audits"][0] if "audits" in doc else doc
    status = {f["control"]: f["status"] for f in doc["findings"]}
    assert status["GRD-ACC-01"] == "pass" and status["GRD-ACC-02"] == "pass"
    assert status["GRD-LOG-01"] == "pass" and status["GRD-ACC-03"] == "not_assessed"
    bad = CliRunner().invoke(cli, [*args[:-10], "--access-policy", str(tmp_path / "nope.toml"),
                                   "--format", "json", "--out", str(tmp_path / "o2"), "--no-progress"])
    assert bad.exit_code == 2 and "nope.toml" in bad.output and "Traceback" not in bad.output
