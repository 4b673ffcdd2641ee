"""The pytest plugin, exercised with pytester: gates, reports, summary, options, caching."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

# In-process pytester runs drop the modules an inner run imported; import the policy engine
# and renderers here so every inner run shares one copy (PyYAML's loaders keep state).
import guard.policies  # noqa: F401
import guard.reports  # noqa: F401

pytest_plugins = ["pytester"]

MODEL_CONFTEST = '''
import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression

import guard.audit

CALLS = []
_original = guard.audit.run_audit


def _counting(*args, **kwargs):
    CALLS.append(args[0].name)
    return _original(*args, **kwargs)


guard.audit.run_audit = _counting


@pytest.fixture(scope="session")
def eval_data():
    x, y = load_digits(return_X_y=True)
    return (x[1000:1300] / 16.0).astype(np.float32), y[1000:1300]


@pytest.fixture(scope="session")
def model():
    x, y = load_digits(return_X_y=True)
    return LogisticRegression(max_iter=500).fit(x[:1000] / 16.0, y[:1000])
'''


@pytest.fixture
def repo(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeconftest(MODEL_CONFTEST)
    pytester.makepyprojecttoml('[tool.guard]\nclip = [0, 1]\n')
    return pytester


def test_passing_gate_and_summary(repo: pytest.Pytester) -> None:
    repo.makepyfile(
        """
        def test_robust(guard_audit, model, eval_data):
            result = guard_audit(model, eval_data, attacks=["pgd"], eps=0.01)
            result.assert_robust(min_accuracy=0.5)
        """
    )
    out = repo.runpytest()
    out.assert_outcomes(passed=1)
    out.stdout.fnmatch_lines(["*= guard =*", "test_robust:  clean *  robust@0.01 *%*n=200*failing: none"])


def test_failing_gate_shows_numbers(repo: pytest.Pytester) -> None:
    repo.makepyfile(
        """
        def test_weak(guard_audit, model, eval_data):
            guard_audit(model, eval_data, attacks=["pgd"], eps=0.3).assert_robust(min_accuracy=0.9)
        """
    )
    out = repo.runpytest()
    out.assert_outcomes(failed=1)
    out.stdout.fnmatch_lines([
        "*GuardAssertionError: test_weak is not robust enough:*",
        "*evasion.pgd (Linf eps 0.3): robust accuracy *% (95% CI *%-*%, n=200) is below the "
        "required 90.0% [[]interval: the whole 95% interval lies below the threshold]*",
    ])


def test_interval_decides_not_the_estimate(repo: pytest.Pytester) -> None:
    repo.makepyfile(
        """
        def test_edge(guard_audit, model, eval_data):
            result = guard_audit(model, eval_data, attacks=["pgd"], eps=0.02, samples=50)
            (_, _, metric), = result.robust_accuracy()
            lo, hi = metric.ci95
            threshold = (metric.value + hi) / 2  # above the estimate, inside the interval
            result.assert_robust(min_accuracy=threshold)  # interval: passes
            try:
                result.assert_robust(min_accuracy=threshold, strictness="point")
            except AssertionError:
                pass
            else:
                raise RuntimeError("point strictness should have failed")
        """
    )
    repo.runpytest().assert_outcomes(passed=1)


def test_cache_and_report_files(repo: pytest.Pytester) -> None:
    repo.makepyfile(
        """
        from conftest import CALLS

        def test_one(guard_audit, model, eval_data):
            guard_audit(model, eval_data, attacks=["fgsm"], eps=0.05, name="digits")

        def test_two(guard_audit, model, eval_data):
            guard_audit(model, eval_data, attacks=["fgsm"], eps=0.05, name="digits")

        def test_only_one_audit_ran():
            assert CALLS == ["digits"]
        """
    )
    out = repo.runpytest("--guard-report", "rep", "--guard-seed", "7")
    out.assert_outcomes(passed=3)
    doc = json.loads((repo.path / "rep" / "report.json").read_text())
    assert doc["environment"]["seed"] == 7
    assert (repo.path / "rep" / "report.html").is_file()
    out.stdout.fnmatch_lines(["guard report: *report.json", "guard report: *report.html"])


def test_marker_gate(repo: pytest.Pytester) -> None:
    repo.makepyfile(
        """
        import pytest

        @pytest.mark.guard(attacks=["pgd"], eps=0.01, min_accuracy=0.5)
        def test_release_candidate(model, eval_data):
            pass

        @pytest.mark.guard(attacks=["pgd"], eps=0.4, min_accuracy=0.95)
        def test_too_strict(model, eval_data):
            pass
        """
    )
    out = repo.runpytest()
    out.assert_outcomes(passed=1, failed=1)
    out.stdout.fnmatch_lines(["*test_too_strict is not robust enough*"])


@pytest.mark.parametrize(
    ("marker", "message"),
    [('attaks=["pgd"]', "unknown argument(s) attaks"), ('attacks=["cw"]', "unknown attack 'cw'"),
     ('"pgd"', "keyword arguments only"), ('attacks="pgd"', "attacks must be a list")],
)
def test_bad_marker_is_usage_error(repo: pytest.Pytester, marker: str, message: str) -> None:
    repo.makepyfile(
        f"""
        import pytest

        @pytest.mark.guard({marker})
        def test_x(model, eval_data):
            pass
        """
    )
    out = repo.runpytest()
    assert out.ret == pytest.ExitCode.USAGE_ERROR
    out.stderr.fnmatch_lines([f"*{message}*"])


def test_clip_must_be_declared(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(MODEL_CONFTEST)
    pytester.makepyfile(
        """
        def test_x(guard_audit, model, eval_data):
            guard_audit(model, eval_data, attacks=["pgd"], eps=0.1)
        """
    )
    out = pytester.runpytest()
    out.assert_outcomes(failed=1)
    out.stdout.fnmatch_lines(["*declare the input range*"])


def test_options_and_pyproject(repo: pytest.Pytester) -> None:
    repo.makepyprojecttoml('[tool.guard]\nclip = [0, 1]\nprofile = "thorough"\nseed = 3\n')
    repo.makepyfile(
        """
        def test_settings(guard_config):
            assert guard_config.profile == "thorough" and guard_config.seed == 3
            assert guard_config.clip == (0.0, 1.0) and guard_config.strictness == "point"
        """
    )
    repo.runpytest("--guard-strictness", "point").assert_outcomes(passed=1)
    repo.runpytest("--guard-profile", "quick", "-k", "nothing").assert_outcomes()
    out = repo.runpytest("--guard-profile", "nope")
    assert out.ret == pytest.ExitCode.USAGE_ERROR


def test_xdist_results_merge_into_one_report(repo: pytest.Pytester) -> None:
    pytest.importorskip("xdist")
    for name, eps in (("a", 0.05), ("b", 0.1)):
        repo.makepyfile(**{f"test_{name}": f"""
            def test_{name}(guard_audit, model, eval_data):
                guard_audit(model, eval_data, attacks=["fgsm"], eps={eps}, name="{name}")
            """})
    out = repo.runpytest_subprocess("-n", "2", "--guard-report", "rep")
    out.assert_outcomes(passed=2)
    doc = json.loads((Path(repo.path) / "rep" / "report.json").read_text())
    assert sorted(a["target"]["name"] for a in doc["audits"]) == ["a", "b"]
    out.stdout.fnmatch_lines(["*= guard =*"])


def test_assert_policy_lists_failing_controls_and_articles(repo: pytest.Pytester) -> None:
    repo.makepyprojecttoml(
        "[tool.guard]\nclip = [0, 1]\n\n[tool.guard.thresholds]\nmin_robust_accuracy = 0.99\n"
    )
    repo.makepyfile(
        """
        def test_policy(guard_audit, model, eval_data):
            result = guard_audit(model, eval_data, attacks=["pgd"], eps=0.1)
            result.assert_policy("gdpr", fail_on="critical")  # nothing critical fails
            result.assert_policy("gdpr", fail_on="high")
        """
    )
    out = repo.runpytest()
    out.assert_outcomes(failed=1)
    out.stdout.fnmatch_lines([
        "*fails policy 'gdpr' at --fail-on high:*",
        "*[[]high[]] GRD-EVA-01 *GDPR 32(1)(b)*",
        "test_policy:  clean *failing: GRD-EVA-01*",
    ])


def test_guard_policy_option_judges_every_audit(repo: pytest.Pytester) -> None:
    repo.makepyprojecttoml(
        "[tool.guard]\nclip = [0, 1]\n\n[tool.guard.thresholds]\nmin_robust_accuracy = 0.99\n"
    )
    repo.makepyfile(
        """
        def test_plain(guard_audit, model, eval_data):
            guard_audit(model, eval_data, attacks=["pgd"], eps=0.1)
        """
    )
    out = repo.runpytest("--guard-policy", "gdpr", "--guard-report", "rep")
    out.assert_outcomes(passed=1)
    out.stdout.fnmatch_lines(["test_plain:  clean *failing: GRD-EVA-01*"])
    doc = json.loads((repo.path / "rep" / "report.json").read_text())
    assert any(f["control"] == "GRD-EVA-01" and f["status"] == "fail" for f in doc["findings"])


@pytest.mark.parametrize(
    ("table", "message"),
    [("clip = 5", "'clip' must be"), ("sede = 3", "unknown key 'sede'"),
     ('fail_on = "urgent"', "fail_on must be one of"), ("report = 3", "'report' must be a folder")],
)
def test_bad_tool_guard_table_is_usage_error(pytester: pytest.Pytester, table: str, message: str) -> None:
    pytester.makepyprojecttoml(f"[tool.guard]\n{table}\n")
    pytester.makepyfile("def test_x(guard_config):\n    pass\n")
    out = pytester.runpytest()
    assert out.ret == pytest.ExitCode.USAGE_ERROR
    out.stderr.fnmatch_lines([f"*{message}*"])


def test_plugin_works_without_xdist(repo: pytest.Pytester) -> None:
    """Without pytest-xdist, the plugin must not register xdist's hooks (pytest rejects an
    unknown hook at start-up with a PluginValidationError)."""
    repo.makepyfile(
        """
        def test_robust(guard_audit, model, eval_data):
            guard_audit(model, eval_data, attacks=["fgsm"], eps=0.01).assert_robust(min_accuracy=0.5)
        """
    )
    out = repo.runpytest_subprocess("-p", "no:xdist")
    out.assert_outcomes(passed=1)
    assert "PluginValidationError" not in out.stderr.str() + out.stdout.str()


def test_session_policy_uses_waivers_and_the_gate(repo: pytest.Pytester) -> None:
    """[tool.guard] packs, waivers and fail_on reach the plugin as they reach guard audit: a
    waived control neither fails assert_policy nor appears as failing in the summary, and
    the written report carries the same gate."""
    repo.makepyprojecttoml('[tool.guard]\nclip = [0, 1]\npolicy = ["baseline"]\nwaivers = "waivers.yaml"\n')
    (repo.path / "waivers.yaml").write_text(
        "waivers:\n  - control: GRD-EVA-01\n    target: '*'\n    reason: known weak at this budget\n"
        "    approver: jane\n    expires: 2099-12-31\n  - control: GRD-SUP-02\n    target: '*'\n"
        "    reason: in-memory model\n    approver: jane\n    expires: 2099-12-31\n", encoding="utf-8")
    repo.makepyfile(
        """
        def test_weak_but_waived(guard_audit, model, eval_data):
            result = guard_audit(model, eval_data, attacks=["pgd"], eps=0.3, name="weak")
            statuses = {f.control: f.status for f in result.result.findings}
            assert statuses["GRD-EVA-01"] == "waived", statuses
            result.assert_policy("baseline")
        """
    )
    out = repo.runpytest("--guard-report", "rep")
    out.assert_outcomes(passed=1)
    out.stdout.fnmatch_lines(["*weak:*failing: none*"])
    doc = json.loads((repo.path / "rep" / "report.json").read_text())
    assert doc["gate"] == {"fail_on": "high", "judged": True, "passed": True, "failing": []}


def test_global_random_state_survives_an_audit(repo: pytest.Pytester) -> None:
    repo.makepyfile(
        """
        import random

        import numpy as np

        def test_state(guard_audit, model, eval_data):
            np.random.seed(5)
            random.seed(5)
            expected = np.random.random(), random.random()
            np.random.seed(5)
            random.seed(5)
            guard_audit(model, eval_data, attacks=["fgsm"], eps=0.05)
            assert (np.random.random(), random.random()) == expected
        """
    )
    repo.runpytest().assert_outcomes(passed=1)


def test_probe_tables_in_tool_guard_reach_the_plugin(repo: pytest.Pytester) -> None:
    repo.makepyprojecttoml('[tool.guard]\nclip = [0, 1]\n\n[tool.guard.probes.pgd]\ntargets = 0\n')
    repo.makepyfile(
        """
        def test_targets(guard_audit, model, eval_data):
            result = guard_audit(model, eval_data, attacks=["pgd"], eps=0.05)
            assert {e.params["targets"] for e in result.result.evidence if e.probe == "evasion.pgd"} == {0}
        """
    )
    repo.runpytest().assert_outcomes(passed=1)
    repo.makepyprojecttoml('[tool.guard]\nclip = [0, 1]\n\n[tool.guard.probes.pgd]\ntargetz = 0\n')
    out = repo.runpytest()
    assert out.ret != 0
    out.stdout.fnmatch_lines(["*has no setting 'targetz'*"])


def test_thorough_profile_runs_what_guard_audit_thorough_runs() -> None:
    """The thorough profile is not a fixed list that new probes miss: it is the audit's own
    thorough selection, privacy and theft included; quick stays PGD only."""
    from guard.testing import profile_probes

    thorough = profile_probes("thorough")
    assert {"evasion.pgd", "evasion.apgd", "privacy.membership_inference", "extraction.copycat",
            "extraction.knockoff", "data.pii_scan", "poisoning.label_flip"} <= set(thorough)
    assert profile_probes("quick") == ("pgd",)


@pytest.mark.slow
def test_thorough_profile_measures_membership_and_extraction() -> None:
    import numpy as np
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression

    from guard.testing import GuardSettings, audit_model

    x, y = load_breast_cancer(return_X_y=True)
    x = ((x - x.mean(0)) / x.std(0)).astype(np.float32)
    model = LogisticRegression(max_iter=500).fit(x[:300], y[:300])
    data = {"x": x[300:], "y": y[300:], "x_train": x[:300], "y_train": y[:300]}
    _, result = audit_model(model, data, GuardSettings(profile="thorough"), clip=None)
    probes = {e.probe for e in result.result.evidence}
    assert {"evasion.pgd", "privacy.membership_inference", "extraction.copycat"} <= probes
