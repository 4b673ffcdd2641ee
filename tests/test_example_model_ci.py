"""examples/model-ci: the release model passes its gates; the weak variant fails them."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "model-ci"


@pytest.fixture
def example(pytester: pytest.Pytester) -> pytest.Pytester:
    shutil.copytree(EXAMPLE, pytester.path, dirs_exist_ok=True)
    return pytester


def test_release_model_passes(example: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MODEL_VARIANT", raising=False)
    out = example.runpytest_subprocess("-p", "no:cacheprovider", "--guard-report", "rep")
    out.assert_outcomes(passed=3)
    out.stdout.fnmatch_lines(["*= guard =*", "test_release_candidate:  clean *failing: none"])
    assert (example.path / "rep" / "report.html").is_file()


def test_weak_model_fails_with_numbers(example: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODEL_VARIANT", "weak")
    out = example.runpytest_subprocess("-p", "no:cacheprovider")
    out.assert_outcomes(passed=1, failed=2)
    out.stdout.fnmatch_lines(["*is not robust enough*", "*95% CI*n=200*is below the required*"])
