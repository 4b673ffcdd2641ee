"""Intervals, validity flags and the probe registry."""

from __future__ import annotations

import math

import pytest

from guard.errors import ConfigError
from guard.evidence import Evidence
from guard.probes import build_probe, probe_class, registry
from guard.stats import Metric, wilson_interval
from guard.validity import add_validity_flags


def test_wilson_interval_known_values() -> None:
    lo, hi = wilson_interval(50, 100)
    assert math.isclose(lo, 0.4038, abs_tol=1e-4) and math.isclose(hi, 0.5962, abs_tol=1e-4)
    assert wilson_interval(0, 10)[0] == 0.0 and wilson_interval(10, 10)[1] == 1.0
    assert 0 < wilson_interval(0, 10)[1] < 0.35
    with pytest.raises(ValueError):
        wilson_interval(11, 10)


def test_metric_proportion_carries_n_and_interval() -> None:
    m = Metric.proportion(41, 100)
    assert m.value == 0.41 and m.n == 100 and m.ci95 is not None
    assert m.ci95[0] < 0.41 < m.ci95[1]
    assert Metric.from_dict(m.to_dict()) == m


def _ev(probe: str, eps: float, robust: int, n: int = 100, norm: str = "inf") -> Evidence:
    return Evidence(probe=probe, params={"eps": eps, "norm": norm},
                    metrics={"robust_accuracy": Metric.proportion(robust, n)})


def test_non_monotone_flag() -> None:
    evs = [_ev("evasion.pgd", 0.05, 60), _ev("evasion.pgd", 0.1, 70), _ev("evasion.pgd", 0.2, 10)]
    add_validity_flags(evs)
    assert [f.code for f in evs[1].flags] == ["non_monotone"]
    assert evs[0].flags == [] and evs[2].flags == []


def test_blackbox_and_single_step_flags() -> None:
    pgd, hsj, fgsm = _ev("evasion.pgd", 0.1, 50), _ev("evasion.hopskipjump", 0.1, 30), \
        _ev("evasion.fgsm", 0.1, 40)
    add_validity_flags([pgd, hsj, fgsm])
    codes = sorted(f.code for f in pgd.flags)
    assert codes == ["blackbox_beats_whitebox", "single_step_beats_iterative"]
    assert hsj.flags == [] and fgsm.flags == []


def test_no_flags_when_consistent() -> None:
    evs = [_ev("evasion.pgd", 0.1, 30), _ev("evasion.fgsm", 0.1, 50),
           _ev("evasion.hopskipjump", 0.1, 45), _ev("evasion.pgd", 0.2, 5)]
    add_validity_flags(evs)
    assert all(not e.flags for e in evs)


def test_different_sample_sizes_flag_only_beyond_intervals() -> None:
    pgd = _ev("evasion.pgd", 0.1, 250, n=500)
    close = _ev("evasion.hopskipjump", 0.1, 45, n=100)
    add_validity_flags([pgd, close])
    assert pgd.flags == []
    far = _ev("evasion.hopskipjump", 0.1, 20, n=100)
    add_validity_flags([pgd, far])
    assert [f.code for f in pgd.flags] == ["blackbox_beats_whitebox"]


def test_registry_knows_ids_and_aliases() -> None:
    ids = {cls.id for cls in registry().values()}
    assert {"evasion.fgsm", "evasion.pgd", "evasion.apgd", "evasion.hopskipjump"} <= ids
    assert probe_class("pgd") is probe_class("evasion.pgd")
    with pytest.raises(ConfigError, match="unknown attack 'cw'"):
        probe_class("cw")


@pytest.mark.parametrize(
    ("settings", "message"),
    [({"eps": (-0.1,)}, "eps must be positive"), ({"norm": "1"}, "norm must be"),
     ({"steps": 0}, "steps must be a positive integer"), ({"targets": -1}, "targets must be"),
     ({"step_size": float("nan")}, "step_size must be positive")],
)
def test_settings_are_validated_with_the_parameter_named(settings: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        build_probe("pgd", **settings)


def test_hopskipjump_budget_validated() -> None:
    with pytest.raises(ConfigError, match="queries"):
        build_probe("hopskipjump", queries=5)
