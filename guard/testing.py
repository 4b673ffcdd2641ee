"""Guard inside a model's own test suite: audit an object, assert on the interval.

:func:`audit_model` accepts what a test has at hand (a torch module, a fitted scikit-learn
estimator or a model file; arrays, a dict of arrays or a data file), runs the audit and
returns a :class:`GuardResult` whose assertions fail with the numbers, the 95% interval,
the threshold and the sample size. Assertions are decided on the interval so CI does not
flap on noise: by default a robustness gate fails only when the whole interval lies below
the threshold.
"""

from __future__ import annotations

import hashlib
import json
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from guard.audit import Gate
from guard.errors import ConfigError
from guard.evidence import AuditResult, Finding

Strictness = Literal["interval", "point", "conservative"]
STRICTNESS: tuple[str, ...] = ("interval", "point", "conservative")

PROFILES: dict[str, dict[str, Any]] = {
    # quick: CI-friendly, PGD only; thorough: more samples and steps, and every probe that
    # ``guard audit --profile thorough`` runs (attacks None): evasion, membership inference,
    # extraction, poisoning, the data scans, each where the test gives what it needs
    "quick": {"samples": 200, "steps": 20, "attacks": ("pgd",)},
    "thorough": {"samples": 1000, "steps": 100, "attacks": None},
}


class GuardAssertionError(AssertionError):
    """A gate that failed; the message carries value, interval, threshold and n."""


@dataclass(frozen=True, slots=True, kw_only=True)
class GuardSettings:
    """Session-wide settings: command-line options over ``[tool.guard]`` over defaults."""

    profile: str = "quick"
    seed: int = 0
    policies: tuple[str, ...] = ()
    fail_on: str = "high"
    strictness: str = "interval"
    clip: tuple[float, float] | None | str = "undeclared"
    thresholds: dict[str, Any] = field(default_factory=dict)
    report_dir: Path | None = None
    waivers: Path | None = None
    baseline: Path | None = None
    probes: dict[str, dict[str, Any]] = field(default_factory=dict)
    """One probe's settings by probe id, from ``[tool.guard.probes.<id>]``."""

    def __post_init__(self) -> None:
        from guard.audit import parse_fail_on

        if self.profile not in PROFILES:
            raise ConfigError(f"profile must be one of {', '.join(PROFILES)}, got {self.profile!r}")
        object.__setattr__(self, "fail_on", parse_fail_on(self.fail_on, "fail_on"))
        if self.strictness not in STRICTNESS:
            raise ConfigError(
                f"strictness must be one of {', '.join(STRICTNESS)}, got {self.strictness!r}"
            )


@dataclass(slots=True)
class GuardResult:
    """One audit, with assertions for tests."""

    result: AuditResult
    settings: GuardSettings
    key: str = ""
    label: str | None = None
    """The name the test gave (a cached audit of the same model may carry another)."""

    @property
    def name(self) -> str:
        return self.label or str(self.result.target.get("name", "model"))

    def robust_accuracy(self, *, attack: str | None = None, eps: float | None = None) -> list[
        tuple[str, dict[str, Any], Any]
    ]:
        """(probe, params, Metric) for each evasion measurement matching the filters."""
        rows = []
        for ev in self.result.evidence:
            if not ev.probe.startswith("evasion.") or "robust_accuracy" not in ev.metrics:
                continue
            if attack is not None and ev.probe not in (attack, f"evasion.{attack}"):
                continue
            if eps is not None and not np.isclose(float(ev.params.get("eps", -1)), eps):
                continue
            rows.append((ev.probe, ev.params, ev.metrics["robust_accuracy"]))
        return rows

    def assert_robust(
        self,
        min_accuracy: float,
        *,
        attack: str | None = None,
        eps: float | None = None,
        strictness: str | None = None,
    ) -> None:
        """Fail when robust accuracy is below ``min_accuracy`` under any matching attack.

        ``interval`` (default) fails only when the upper bound of the 95% interval is below
        the threshold; ``conservative`` fails when the lower bound is; ``point`` compares the
        estimate itself.
        """
        __tracebackhide__ = True
        if not 0.0 <= min_accuracy <= 1.0:
            raise ConfigError(f"min_accuracy must lie in [0, 1], got {min_accuracy}")
        mode = strictness or self.settings.strictness
        if mode not in STRICTNESS:
            raise ConfigError(f"strictness must be one of {', '.join(STRICTNESS)}, got {mode!r}")
        rows = self.robust_accuracy(attack=attack, eps=eps)
        if not rows:
            raise GuardAssertionError(
                f"{self.name}: no robust-accuracy evidence matches attack={attack!r} eps={eps!r}"
            )
        failures = []
        for probe, params, metric in rows:
            lo, hi = metric.ci95 if metric.ci95 is not None else (metric.value, metric.value)
            decided = {"interval": hi, "point": metric.value, "conservative": lo}[mode]
            if decided < min_accuracy:
                failures.append(
                    f"  {probe} (L{params.get('norm')} eps {params.get('eps'):g}): robust accuracy "
                    f"{metric.value:.1%} (95% CI {lo:.1%}-{hi:.1%}, n={metric.n}) is below the "
                    f"required {min_accuracy:.1%} [{mode}: {_why(mode)}]"
                )
        if failures:
            raise GuardAssertionError(
                f"{self.name} is not robust enough:\n" + "\n".join(failures)
            )

    def apply_policy(self, pack: str) -> list[Finding]:
        """Evaluate a policy pack on this audit (with the session's waivers, baseline and
        thresholds, as ``guard audit`` would); its findings join the result's."""
        findings = _judged(self.result, self.settings, [pack]).findings
        self.result.findings = _merge_findings(self.result.findings, findings)
        self.result.gate = Gate.of(self.result, self.settings.fail_on).to_dict()
        return findings

    def assert_policy(self, pack: str, *, fail_on: str | None = None) -> None:
        """Fail when a control of ``pack`` at or above ``fail_on`` fails the gate (neither
        waived nor known from the baseline)."""
        __tracebackhide__ = True
        from guard.audit import parse_fail_on

        level = parse_fail_on(fail_on, "fail_on", default=self.settings.fail_on)
        judged = AuditResult(target=self.result.target, evidence=self.result.evidence,
                             environment=self.result.environment, findings=self.apply_policy(pack))
        failing = Gate.of(judged, level).failing  # the pack's own findings, judged once
        if not failing:
            return
        lines = [f"{self.name} fails policy {pack!r} at --fail-on {level}:"]
        for f in failing:
            refs = "; ".join(
                f"{fw.upper()} {', '.join(ids)}" for fw, ids in f.references.items() if ids
            )
            lines.append(f"  [{f.severity}] {f.control} {f.title}: {f.detail} ({refs})")
        raise GuardAssertionError("\n".join(lines))


def _judged(result: AuditResult, settings: GuardSettings, packs: list[str]) -> AuditResult:
    """A copy of ``result`` judged by ``packs`` through the audit service's policy setup."""
    from guard.audit import PolicySetup

    copy = AuditResult(target=result.target, evidence=result.evidence, environment=result.environment)
    PolicySetup.load(packs, waivers=settings.waivers, baseline=settings.baseline,
                     thresholds=settings.thresholds).judge(copy)
    return copy


def _why(mode: str) -> str:
    return {
        "interval": "the whole 95% interval lies below the threshold",
        "point": "the estimate lies below the threshold",
        "conservative": "the lower end of the 95% interval lies below the threshold",
    }[mode]


def _merge_findings(old: list[Finding], new: list[Finding]) -> list[Finding]:
    seen = {f.control for f in new}
    return [f for f in old if f.control not in seen] + new


def _array_digest(h: Any, *arrays: np.ndarray | None) -> None:
    for a in arrays:
        if a is None:
            h.update(b"none")
            continue
        arr = np.ascontiguousarray(a)
        h.update(f"{arr.dtype}{arr.shape}".encode())
        h.update(arr.tobytes())


def model_digest(model: Any) -> str:
    """SHA-256 of a model's weights (torch), of its pickled form (an in-memory estimator the
    test built itself; nothing is loaded), or of a model file's bytes."""
    h = hashlib.sha256()
    if isinstance(model, str | Path):
        h.update(Path(model).read_bytes())
        return h.hexdigest()
    try:
        import torch

        if isinstance(model, torch.nn.Module):
            h.update(type(model).__qualname__.encode())
            for key, tensor in model.state_dict().items():
                h.update(key.encode())
                _array_digest(h, tensor.detach().cpu().numpy())
            return h.hexdigest()
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
    h.update(pickle.dumps(model, protocol=5))
    return h.hexdigest()


@dataclass(frozen=True, slots=True)
class EvalData:
    x: np.ndarray
    y: np.ndarray
    x_train: np.ndarray | None = None
    y_train: np.ndarray | None = None


def as_eval_data(data: Any) -> EvalData | Path:
    """(x, y), {"x": ..., "y": ...} (optionally x_train, y_train), or a data file's path."""
    if isinstance(data, str | Path):
        return Path(data)
    if isinstance(data, dict):
        missing = {"x", "y"} - set(data)
        if missing:
            raise ConfigError(f"eval data dict needs keys x and y (missing: {', '.join(sorted(missing))})")
        return EvalData(np.asarray(data["x"]), np.asarray(data["y"]),
                        None if data.get("x_train") is None else np.asarray(data["x_train"]),
                        None if data.get("y_train") is None else np.asarray(data["y_train"]))
    if isinstance(data, tuple | list) and len(data) in (2, 4):
        arrays = [np.asarray(a) for a in data]
        return EvalData(*arrays)
    raise ConfigError(
        f"eval data must be (x, y), a dict with x and y, or a path; got {type(data).__name__}"
    )


def cache_key(model_id: str, data: EvalData | Path, plan: dict[str, Any]) -> str:
    h = hashlib.sha256(model_id.encode())
    if isinstance(data, Path):
        h.update(data.read_bytes())
    else:
        _array_digest(h, data.x, data.y, data.x_train, data.y_train)
    h.update(json.dumps(plan, sort_keys=True, default=str).encode())
    return h.hexdigest()


def profile_probes(profile: str) -> tuple[str, ...]:
    """The probes a profile runs when the test names none: quick's own list, or (thorough)
    every model probe ``guard audit --profile thorough`` runs; the audit then skips, saying
    why, each one the test gave too little for (membership inference without training data)."""
    from guard.audit import AuditPlan

    named = PROFILES[profile]["attacks"]
    return tuple(named) if named is not None else tuple(AuditPlan(profile=profile).default_model_probes())


def audit_model(
    model: Any,
    data: Any,
    settings: GuardSettings,
    *,
    attacks: list[str] | tuple[str, ...] | None = None,
    eps: float | list[float] | tuple[float, ...] | None = None,
    clip: tuple[float, float] | None | str = "undeclared",
    name: str | None = None,
    arch: str | None = None,
    cache: dict[str, AuditResult] | None = None,
    **probe_settings: Any,
) -> tuple[str, GuardResult]:
    """Audit and return (cache key, result); a cached result is reused for the same key.

    The audit goes through the audit service: a model file gets the same artifact probes
    (encryption state, scan) as ``guard audit``, and the global random state is untouched.
    """
    from guard import audit as service
    from guard.build import build_target_from_objects
    from guard.probes import probe_class, setting_names

    declared = clip if clip != "undeclared" else settings.clip
    if declared == "undeclared":
        raise ConfigError(
            "declare the input range: guard_audit(..., clip=(0, 1)) or clip=None for unbounded "
            "features, or clip in [tool.guard] of pyproject.toml; Guard does not guess it"
        )
    profile = PROFILES[settings.profile]
    chosen: tuple[str, ...] = tuple(attacks) if attacks else tuple(profile["attacks"] or ())
    runs = chosen or profile_probes(settings.profile)
    for attack in runs:
        probe_class(attack)  # unknown names fail before any work
    # The profile's effort applies to the probes that have such settings; the test's own
    # settings must each belong to a probe it runs (a typo is an error, not a default).
    taken = {n for attack in runs for n in setting_names(probe_class(attack))}
    knobs: dict[str, Any] = {k: profile[k] for k in ("samples", "steps") if k in taken}
    knobs.update(probe_settings)
    if eps is not None:
        knobs["eps"] = (float(eps),) if isinstance(eps, int | float) else tuple(float(e) for e in eps)
    plan_doc = {"attacks": runs, "profile": settings.profile, "settings": knobs, "scoped": settings.probes,
                "seed": settings.seed, "clip": declared}
    eval_data = as_eval_data(data)
    key = cache_key(model_digest(model), eval_data, plan_doc)
    if cache is not None and key in cache:
        return key, GuardResult(cache[key], settings, key, name)
    subject: service.ModelFiles | Any
    if isinstance(model, str | Path):
        if not isinstance(eval_data, Path):
            raise ConfigError("a model file needs a data file too (npz or csv)")
        from guard.build import checked_clip

        subject = service.ModelFiles(model=Path(model), data=eval_data, clip=checked_clip(declared),
                                     arch=arch, name=name)
    else:
        if isinstance(eval_data, Path):
            from guard.data import load_data

            loaded = load_data(eval_data)
            eval_data = EvalData(loaded.x_eval, loaded.y_eval, loaded.x_train, loaded.y_train)
        subject = build_target_from_objects(
            model, eval_data.x, eval_data.y, clip=declared,
            name=name or type(model).__name__, x_train=eval_data.x_train, y_train=eval_data.y_train,
        )
    plan = service.AuditPlan(attacks=chosen, probe_settings=knobs, scoped=settings.probes,
                             seed=settings.seed, profile=settings.profile)
    [result] = service.audit([subject], plan).results
    if cache is not None:
        cache[key] = result
    return key, GuardResult(result, settings, key, name)
