"""The audit service: the one orchestrator behind ``guard audit``, ``guard report`` and the
pytest plugin.

Given what to audit (model files, or a target built in memory) and a plan, it reads each
model file once, runs the artifact probes on those bytes (signature, encryption, scan; the
scan refuses what could run code), loads the model from the same bytes, runs the model
probes, judges the evidence with the policy setup (packs, waivers, baseline, thresholds)
and returns an :class:`Outcome`. The outcome knows its gate: which findings fail the run at
a ``--fail-on`` level, and so its exit code (black's ``Report.return_code`` is the model).
The HTML verdict, the terminal table, the plugin's summary and the exit code all read that
one decision, which is written into report.json as each audit's ``gate``.

The service owns seeding and timing: every probe runs with the plan's seed, and the global
random state a caller had (Python's, NumPy's, torch's) is restored afterwards, so auditing
inside a test suite changes nothing for the tests that follow. It never judges evidence
itself (policies do) and never prints (entry points do).
"""

from __future__ import annotations

import datetime as dt
import platform
import random
import time
import types
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from guard import SEVERITY_ORDER, __version__
from guard.errors import ConfigError
from guard.evidence import AuditResult, Evidence, Finding
from guard.probes import (
    SEED,
    Artifact,
    ArtifactProbe,
    Probe,
    ProgressFn,
    RunContext,
    no_progress,
    prepare_probe,
    probe_class,
    probes,
    setting_names,
)
from guard.target import Target
from guard.validity import add_validity_flags

FAIL_ON = (*SEVERITY_ORDER, "never")
"""The one ``--fail-on`` vocabulary of every command: a severity, or ``never`` (exit 0)."""
DEFAULT_FAIL_ON = "high"
PROFILES = ("quick", "thorough")
_EMPTY: Mapping[str, Any] = types.MappingProxyType({})


def parse_fail_on(value: str | None, where: str = "--fail-on", default: str = DEFAULT_FAIL_ON) -> str:
    """A ``--fail-on`` value checked against :data:`FAIL_ON` (``none``, the old spelling of
    ``never``, still reads)."""
    if value is None:
        return default
    text = str(value).strip().lower()
    if text == "none":
        return "never"
    if text not in FAIL_ON:
        raise ConfigError(f"{where} must be one of {', '.join(FAIL_ON)}, got {value!r}")
    return text


# -- what to run ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditPlan:
    """Which probes run with which settings.

    ``attacks`` names model probes (ids or aliases); None runs each default probe that
    applies to the target (white-box attacks where there are gradients, else black-box).
    ``probe_settings`` apply to every probe that declares them (``--eps``, ``--steps``);
    ``scoped`` holds settings for one probe alone (``--set pgd.steps=100``,
    ``[probes.pgd]`` in a spec file), keyed by probe id.
    """

    attacks: tuple[str, ...] | None = None
    probe_settings: Mapping[str, Any] = field(default_factory=dict)
    scoped: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    seed: int = 0
    profile: str = "quick"
    """``quick`` runs the default probes; ``thorough`` adds the slow ones (poisoning
    simulations that retrain the model) where the target offers what they need."""

    def __post_init__(self) -> None:
        SEED.check("seed", self.seed)
        if self.profile not in PROFILES:
            raise ConfigError(f"profile must be one of {', '.join(PROFILES)}, got {self.profile!r}")

    def default_model_probes(self) -> list[str]:
        """The ids of the model probes an audit naming none runs under this profile."""
        return [c.id for c in probes() if c.stage == "model"
                and (c.default or (self.profile == "thorough" and c.thorough))]

    def _build(self, name: str) -> Probe:
        cls = probe_class(name)
        return prepare_probe(cls.id, self.probe_settings, self.scoped.get(cls.id, _EMPTY))

    def validate(self) -> None:
        """Build every probe the plan can run, and every probe a setting names, so a bad or
        misspelt setting fails before any work (a setting no probe of the audit takes too)."""
        for name in self.attacks or ():
            if probe_class(name).stage != "model":
                raise ConfigError(f"{name!r} inspects the model file and always runs on one; "
                                  "--attack names model probes")
        names = [c.id for c in probes() if c.stage == "artifact"]
        names += ([probe_class(n).id for n in self.attacks] if self.attacks
                  else self.default_model_probes())
        for name in dict.fromkeys([*names, *(probe_class(p).id for p in self.scoped)]):
            self._build(name)
        taken = {n for name in names for n in setting_names(probe_class(name))}
        unused = sorted(set(self.probe_settings) - taken)
        if unused:
            raise ConfigError(f"no probe of this audit has a setting {unused[0]!r} (it runs "
                              f"{', '.join(n for n in names if probe_class(n).stage == 'model')})")

    def artifact_probes(self) -> list[ArtifactProbe]:
        return [p for p in (self._build(c.id) for c in probes() if c.stage == "artifact")
                if isinstance(p, ArtifactProbe)]

    def skipped(self, target: Target) -> list[tuple[str, str]]:
        """The probes the thorough profile adds that do not run on ``target``, and why (a user
        who asked for the thorough profile is told what it left out)."""
        if self.attacks or self.profile != "thorough":
            return []
        out = []
        for cls in probes():
            if cls.stage == "model" and cls.thorough and not cls.default:
                probe = self._build(cls.id)
                if not probe.applies_to(target):
                    out.append((cls.id, probe.why_not(target)))
        return out

    def model_probes(self, target: Target) -> list[Probe]:
        if self.attacks:
            chosen = [self._build(name) for name in self.attacks]
        else:
            chosen = [p for p in (self._build(name) for name in self.default_model_probes())
                      if p.applies_to(target)]
        for probe in chosen:
            probe.check(target)
        return chosen


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelFiles:
    """A model file and its data, as a user names them (``--model``, ``--data``, ...)."""

    model: Path
    data: Path
    clip: tuple[float, float] | None
    arch: str | None = None
    label_column: str | None = None
    name: str | None = None
    train_data: Path | None = None
    """A separate training-data file (``--train-data``), for the probes that retrain."""


# -- how it is judged ------------------------------------------------------------------------------


@dataclass(slots=True)
class PolicySetup:
    """Packs, waivers, baseline and thresholds, loaded and validated before any probe runs."""

    packs: list[Any] = field(default_factory=list)
    waivers: Any = None
    baseline: Any = None
    thresholds: Any = None

    @classmethod
    def load(cls, policy: Sequence[Any] = (), *, waivers: Path | str | None = None,
             baseline: Path | str | None = None, thresholds: Any = None,
             thresholds_file: Path | None = None) -> PolicySetup:
        """Load everything now; ``--waivers`` or ``--baseline`` without a pack is a usage error."""
        if not policy:
            for flag, value in (("--waivers", waivers), ("--baseline", baseline)):
                if value:
                    raise ConfigError(f"{flag} needs at least one --policy to apply to")
            return cls()
        from guard.policies import load_baseline, load_pack, load_thresholds, load_waivers
        from guard.policies.engine import check_inputs

        if thresholds is None and thresholds_file is not None:
            thresholds = load_thresholds(thresholds_file)
        packs = [p if not isinstance(p, str | Path) else load_pack(p) for p in policy]
        loaded_waivers = load_waivers(Path(waivers)) if waivers else None
        # names, kinds and ranges of the overrides, and the waivers' control ids: checked
        # here, before any probe runs, not when the evidence is judged after the attacks
        overrides = check_inputs(packs, thresholds=thresholds, waivers=loaded_waivers)
        return cls(
            packs=packs,
            waivers=loaded_waivers,
            baseline=load_baseline(Path(baseline)) if baseline else None,
            thresholds=overrides,
        )

    @property
    def active(self) -> bool:
        return bool(self.packs)

    def judge(self, result: AuditResult) -> None:
        """Fill ``result.findings`` (left as they are without a pack)."""
        if not self.packs:
            return
        from guard.policies import evaluate

        result.findings = evaluate(result, self.packs, thresholds=self.thresholds,
                                   waivers=self.waivers, baseline=self.baseline)


@dataclass(frozen=True, slots=True)
class Gate:
    """The decision of one audit at a ``--fail-on`` level: what every renderer shows."""

    fail_on: str
    judged: bool
    failing: tuple[Finding, ...]

    @classmethod
    def of(cls, result: AuditResult, fail_on: str) -> Gate:
        from guard.policies import gating_findings

        level = parse_fail_on(fail_on)
        failing = tuple(gating_findings(result.findings, level)) if level != "never" else ()
        return cls(level, bool(result.findings), failing)

    @property
    def passed(self) -> bool:
        return not self.failing

    def to_dict(self) -> dict[str, Any]:
        return {"fail_on": self.fail_on, "judged": self.judged, "passed": self.passed,
                "failing": [f.control for f in self.failing]}


@dataclass(slots=True)
class Outcome:
    """Every audited target's result, and the gate they are held to."""

    results: list[AuditResult]
    fail_on: str = DEFAULT_FAIL_ON

    def gates(self, fail_on: str | None = None) -> list[Gate]:
        return [Gate.of(r, fail_on or self.fail_on) for r in self.results]

    @property
    def judged(self) -> bool:
        return any(r.findings for r in self.results)

    def return_code(self, fail_on: str | None = None) -> int:
        """1 when a finding of any target fails the gate at ``fail_on`` (default the
        outcome's own level), else 0."""
        return int(any(not g.passed for g in self.gates(fail_on)))

    def seal(self) -> Outcome:
        """Record each result's gate in it (report.json's ``gate``), for every renderer."""
        for result, gate in zip(self.results, self.gates(), strict=True):
            result.gate = gate.to_dict() if gate.judged else None
        return self


# -- running ---------------------------------------------------------------------------------------


def library_versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for key, dist in [("torch", "torch"), ("art", "adversarial-robustness-toolbox"),
                      ("sklearn", "scikit-learn"), ("numpy", "numpy")]:
        try:
            out[key] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[key] = None
    return out


def environment(seed: int) -> dict[str, Any]:
    return {
        "guard": __version__,
        "python": platform.python_version(),
        **library_versions(),
        "platform": platform.platform(),
        "seed": seed,
        "started_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }


@contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Seed Python's, NumPy's and torch's global generators for one probe (ART draws from
    NumPy's), and give the caller back exactly the state it had."""
    import torch

    SEED.check("seed", seed)  # NumPy's global generator takes no other; say so, not a ValueError
    saved = random.getstate(), np.random.get_state(), torch.random.get_rng_state()
    try:
        random.seed(seed)
        np.random.seed(seed)
        torch.manual_seed(seed)
        yield
    finally:
        random.setstate(saved[0])
        np.random.set_state(saved[1])
        torch.random.set_rng_state(saved[2])


def run_audit(
    target: Target,
    plan: AuditPlan,
    progress: ProgressFn = no_progress,
    evidence: Sequence[Evidence] = (),
) -> AuditResult:
    """The plan's model probes on one loaded target; ``evidence`` (from the artifact probes)
    leads the result. Probes are built and checked against the target before any runs."""
    chosen = plan.model_probes(target)
    env = environment(plan.seed)
    start = time.perf_counter()
    gathered = list(evidence)
    for probe in chosen:
        with seeded(plan.seed):
            gathered.extend(probe.run(target, RunContext(seed=plan.seed, progress=progress)))
    add_validity_flags(gathered)
    env["duration_s"] = round(time.perf_counter() - start, 3)
    skipped = plan.skipped(target)
    if skipped:
        env["skipped_probes"] = [{"probe": probe_id, "reason": reason} for probe_id, reason in skipped]
    return AuditResult(target=target.describe(), evidence=gathered, environment=env)


def inspect_file(path: Path, plan: AuditPlan) -> tuple[Artifact, list[Evidence]]:
    """Read the model file once and run every artifact probe on those bytes, in order."""
    from guard.models.loading import read_model_file

    raw = read_model_file(path)
    artifact = Artifact(path=path, raw=raw, content=raw)
    evidence: list[Evidence] = []
    ctx = RunContext(seed=plan.seed)
    for probe in plan.artifact_probes():
        evidence.extend(probe.inspect(artifact, ctx))
    return artifact, evidence


def load_files(files: ModelFiles, plan: AuditPlan) -> tuple[Target, list[Evidence]]:
    """The target of a model file and its data, loaded from the bytes the artifact probes passed."""
    from guard.build import build_target

    artifact, evidence = inspect_file(files.model, plan)
    scan = plan.scoped.get("supply_chain.scan", _EMPTY)
    target = build_target(
        files.model, files.data, arch=files.arch, clip=files.clip, label_column=files.label_column,
        unsafe_allow_pickle=bool(scan.get("unsafe_allow_pickle", False)), name=files.name,
        model_bytes=artifact.content, train_data=files.train_data,
    )
    return target, evidence


ProgressFactory = Callable[[str], Any]
"""Given a target's name, a context manager yielding its progress callback."""


@contextmanager
def _quiet(name: str) -> Iterator[ProgressFn]:
    yield no_progress


def audit(
    targets: Sequence[ModelFiles | Target],
    plan: AuditPlan,
    policy: PolicySetup | None = None,
    *,
    fail_on: str | None = None,
    progress: ProgressFactory = _quiet,
) -> Outcome:
    """Audit each target (a model file and its data, or a target already in memory), judge
    it, and return the outcome with its gate at ``fail_on``."""
    level = parse_fail_on(fail_on)
    plan.validate()
    setup = policy or PolicySetup()
    results = []
    for item in targets:
        if isinstance(item, ModelFiles):
            target, before = load_files(item, plan)
        else:
            target, before = item, []
        with progress(target.name) as report:
            result = run_audit(target, plan, report, evidence=before)
        setup.judge(result)
        results.append(result)
    return Outcome(results, level).seal()


def rejudge(results: Sequence[AuditResult], policy: PolicySetup, *, fail_on: str | None = None) -> Outcome:
    """Stored results (``guard report``): judged again where a pack is given, gated anew."""
    level = parse_fail_on(fail_on)
    for result in results:
        policy.judge(result)
    outcome = Outcome(list(results), level)
    return outcome.seal() if policy.active else outcome
