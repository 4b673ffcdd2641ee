"""examples/custom-probe: a probe plug-in installed for real is found, run, cataloged and judged.

The example is pip-installed into a temporary folder (no build isolation, no index: nothing
is downloaded) and Guard runs in a subprocess with that folder on PYTHONPATH, so the probe
arrives the way a user's does: through the ``guard.probes`` entry point in its dist-info.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "custom-probe"
GUARD = [sys.executable, "-c", "from guard.cli import main; main()"]  # guard.cli has no __main__
SIGMAS = [0.1, 0.3]
SAMPLES = 60


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The example's source (copied, so the build leaves nothing in the repository) and the
    folder pip installed it into."""
    if importlib.util.find_spec("pip") is None:
        pytest.skip("pip is not installed for this interpreter")
    root = tmp_path_factory.mktemp("custom-probe")
    src, site = root / "src", root / "site"
    shutil.copytree(EXAMPLE, src, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__",
                                                                ".pytest_cache"))
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation",
                    "--no-index", "--disable-pip-version-check", "--quiet", "--target", str(site),
                    str(src)], check=True, capture_output=True, text=True, timeout=300)
    return {"src": src, "site": site, "pack": src / "noise_pack.yaml", "work": root}


@pytest.fixture(scope="module")
def demo_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """GUARD_CACHE_DIR for the demo models: the user's cache when it already holds them (read
    only), else a folder for this module, trained once."""
    from guard.demo import cache_dir, demo_paths, ensure_demo_files

    if all(p.is_file() for p in demo_paths(cache_dir()).values()):
        return cache_dir().parent
    root = tmp_path_factory.mktemp("demo-cache")
    ensure_demo_files(root / "demo-v1")
    return root


def guard(installed: dict[str, Path], demo_cache: Path, *args: str,
          plugin: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "GUARD_CACHE_DIR": str(demo_cache)}
    paths = [str(installed["site"])] if plugin else []
    env["PYTHONPATH"] = os.pathsep.join(paths + [p for p in [os.environ.get("PYTHONPATH")] if p])
    return subprocess.run([*GUARD, *args], cwd=installed["work"], env=env, capture_output=True,
                          text=True, timeout=600)


def demo_audit(installed: dict[str, Path], demo_cache: Path, out: Path, *extra: str) -> tuple[
        subprocess.CompletedProcess[str], list[dict[str, Any]]]:
    done = guard(installed, demo_cache, "audit", "--demo", "--attack", "noise.gaussian",
                 "--set", f"noise.gaussian.sigma={SIGMAS}", "--set", f"gaussian.samples={SAMPLES}",
                 "--format", "json", "--out", str(out), "--no-progress", *extra)
    report = out / "report.json"
    audits = json.loads(report.read_text(encoding="utf-8"))["audits"] if report.is_file() else []
    return done, audits


def test_audit_runs_the_plugin_on_both_demo_targets(installed: dict[str, Path], demo_cache: Path,
                                                    tmp_path: Path) -> None:
    done, audits = demo_audit(installed, demo_cache, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert {a["target"]["name"]: a["target"]["framework"] for a in audits} == {
        "digits-cnn": "torch", "digits-svc": "sklearn"}
    for audit in audits:
        noise = [e for e in audit["evidence"] if e["probe"] == "noise.gaussian"]
        assert [e["params"] for e in noise] == [{"sigma": s, "samples": SAMPLES} for s in SIGMAS]
        for e in noise:
            assert set(e["metrics"]) == {"clean_accuracy", "noisy_accuracy"}
            for metric in e["metrics"].values():
                lo, hi = metric["ci95"]
                assert metric["n"] == SAMPLES and lo <= metric["value"] <= hi
        assert not any(e["probe"].startswith("evasion.") for e in audit["evidence"])


def test_example_pack_is_valid_only_with_the_plugin(installed: dict[str, Path], demo_cache: Path) -> None:
    done = guard(installed, demo_cache, "policy", "check", str(installed["pack"]))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "ok, pack 'noise' with 1 controls: NOISE-01" in done.stdout
    without = guard(installed, demo_cache, "policy", "check", str(installed["pack"]), plugin=False)
    assert without.returncode == 2
    assert "unknown evidence name 'noise.gaussian'" in without.stderr


def test_example_pack_judges_the_plugin_evidence(installed: dict[str, Path], demo_cache: Path,
                                                 tmp_path: Path) -> None:
    done, audits = demo_audit(installed, demo_cache, tmp_path, "--policy", str(installed["pack"]),
                              "--fail-on", "medium")
    statuses = []
    for audit in audits:
        [finding] = audit["findings"]
        assert finding["control"] == "NOISE-01" and finding["evidence"] == ["noise.gaussian"]
        assert finding["status"] in ("pass", "fail"), finding
        cited = {k: v for k, v in finding["references"].items() if v}
        assert cited == {"eu_ai_act": ["15(1)", "15(4)"], "nist_ai_rmf": ["MEASURE 2.7"]}
        assert audit["gate"]["passed"] == (finding["status"] == "pass")
        statuses.append(finding["status"])
    assert len(statuses) == 2
    assert done.returncode == int("fail" in statuses), done.stdout + done.stderr


def test_example_own_tests_pass(installed: dict[str, Path]) -> None:
    env = {**os.environ, "PYTHONPATH": str(installed["site"])}
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
                          cwd=installed["src"], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert " passed" in done.stdout and "failed" not in done.stdout
