from pathlib import Path

import pytest

from guard.defenses.access.policy import AccessPolicy, OutputRule, combine
from guard.errors import ConfigError

ISSUE = """
[roles.analyst]
permissions = ["predict"]
[roles.scientist]
permissions = ["predict", "predict_proba"]
output = { round = 2 }
[principals.alice]
roles = ["analyst"]
budget = { per_minute = 600, total = 10000 }
"""


def test_issue_shape_loads(tmp_path: Path) -> None:
    f = tmp_path / "access.toml"
    f.write_text(ISSUE)
    p = AccessPolicy.load(f)
    assert p.permissions_of("alice") == frozenset({"predict"})
    assert p.principals["alice"].budget is not None
    assert p.principals["alice"].budget.total == 10000
    assert p.roles["scientist"].output.round == 2
    assert p.state == tmp_path / "access.db"


@pytest.mark.parametrize(
    ("extra", "key"),
    [
        ('[principals.bob]\nroles = ["nobody"]\n', "principals.bob.roles"),
        ('[roles.x]\npermissions = ["delete"]\n', "roles.x.permissions"),
        ('[roles.x]\npermisions = ["predict"]\n', "roles.x.permisions"),
        ("[principals.bob]\nroles = []\nbudget = { total = -1 }\n", "principals.bob.budget.total"),
        ("[principals.bob]\nroles = []\nbudget = { total = 0 }\n", "principals.bob.budget.total"),
        ('[principals.bob]\nroles = []\nbudget = { per_minute = "a" }\n', "principals.bob.budget.per_minute"),
        ("[principals.bob]\nroles = []\nbudget = { total = true }\n", "principals.bob.budget.total"),
        # red-team findings: each used to load and then fail every request, or crash the CLI
        ("[roles.x]\npermissions = []\noutput = { round = 9223372036854775807 }\n", "roles.x.output.round"),
        ("[principals.bob]\nroles = []\nbudget = { per_minute = 0.5 }\n", "principals.bob.budget.per_minute"),
        ('state = "a\\u0000b"\n', "state"),
        ('[principals."evil\\nfake"]\nroles = []\n', "principals.evil"),
    ],
)
def test_bad_policy_one_line_naming_file_and_key(tmp_path: Path, extra: str, key: str) -> None:
    f = tmp_path / "p.toml"
    f.write_text(ISSUE + extra)
    with pytest.raises(ConfigError) as info:
        AccessPolicy.load(f)
    msg = str(info.value)
    assert "\n" not in msg and str(f) in msg and key in msg


def test_most_restrictive_combination() -> None:
    r = combine([OutputRule(top_k=3, round=4), OutputRule(top_k=2), OutputRule(label_only=True, round=1)])
    assert r == OutputRule(label_only=True, top_k=2, round=1)
