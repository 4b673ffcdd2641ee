"""pytest plugin: robustness and compliance gates in a model's own test suite.

Registered through the ``pytest11`` entry point, so installing Guard is enough. Options
share the ``--guard-`` prefix and fall back to ``[tool.guard]`` in the project's
pyproject.toml. The ``guard_audit`` fixture audits a model object or file; the ``guard``
marker audits a test's ``model`` and ``eval_data`` fixtures and applies gates after the
test body. Results are cached per model digest, data digest and settings for the session,
summarised in the terminal, and written as one combined report (merged across
pytest-xdist workers) with ``--guard-report DIR``.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any

import pytest

from guard.errors import ConfigError, GuardError

_FAIL_ON = ("info", "low", "medium", "high", "critical", "never")  # guard.audit.FAIL_ON, kept
# literal so that loading the plugin (in every pytest run of the environment) imports nothing

MARKER_ARGS = frozenset({"attacks", "eps", "policy", "min_accuracy", "fail_on", "clip", "strictness",
                         "samples", "steps", "norm"})
_WORKER_KEY = "guard_results"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("guard", "Guard robustness and compliance gates")
    group.addoption("--guard-report", metavar="DIR", default=None,
                    help="write the combined Guard report (json, html, ...) of every audit here")
    group.addoption("--guard-policy", action="append", default=None, metavar="PACK",
                    help="policy pack applied to every audit (repeatable), e.g. gdpr")
    group.addoption("--guard-fail-on", default=None,
                    choices=list(_FAIL_ON),
                    help="severity at which a failing control fails assert_policy and the "
                         "session's gate (default high; never: report only)")
    group.addoption("--guard-profile", default=None, choices=["quick", "thorough"],
                    help="attack effort: quick (default) or thorough")
    group.addoption("--guard-seed", type=int, default=None, help="seed for audits (default 0)")
    group.addoption("--guard-strictness", default=None,
                    choices=["interval", "point", "conservative"],
                    help="how robustness gates read the 95%% interval (default interval)")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "guard(attacks=[...], eps=..., policy=..., min_accuracy=..., fail_on=..., clip=...): "
        "audit the test's `model` and `eval_data` fixtures after the test body and fail on "
        "the gates",
    )
    session = GuardSession(config)
    config.stash[_SESSION] = session
    config.pluginmanager.register(session, "guard-session")
    # pytest rejects an unknown hook, so xdist's hook is registered only where xdist is installed.
    if config.pluginmanager.hasplugin("xdist"):
        config.pluginmanager.register(_XdistHooks(session), "guard-xdist")


class _XdistHooks:
    """pytest-xdist's controller hook: collect what each worker audited."""

    def __init__(self, session: GuardSession) -> None:
        self.session = session

    @pytest.hookimpl
    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        for key, doc in getattr(node, "workeroutput", {}).get(_WORKER_KEY, {}).items():
            self.session.remote.setdefault(key, doc)


_SESSION = pytest.StashKey["GuardSession"]()


def _tool_guard(rootpath: Path) -> tuple[dict[str, Any], str]:
    """The ``[tool.guard]`` table of the project's pyproject.toml (empty without one), and
    where it came from for error messages."""
    path = rootpath / "pyproject.toml"
    where = f"{path} [tool.guard]"
    if not path.is_file():
        return {}, where
    from guard.config import read_toml, tool_table
    from guard.errors import GuardInputError

    try:
        table = tool_table(read_toml(path, "pyproject"), path)
    except GuardInputError as exc:
        raise pytest.UsageError(f"guard: {exc}") from None
    table = {} if table is None else table
    if not isinstance(table, dict):
        raise pytest.UsageError(f"guard: {where}: expected a table")
    return table, where


class GuardSession:
    """Stateful part of the plugin: settings, the audit cache, results for the reports."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.cache: dict[str, Any] = {}  # cache key -> AuditResult (findings fill in later)
        self.remote: dict[str, dict[str, Any]] = {}  # cache key -> report dict from a worker
        self._settings: Any = None

    @property
    def settings(self) -> Any:
        if self._settings is None:
            self._settings = self._build_settings()
        return self._settings

    def _build_settings(self) -> Any:
        """Command-line options over ``[tool.guard]`` (checked as ``guard audit`` checks it)."""
        from guard.build import parse_clip
        from guard.config import options_from_table
        from guard.probes import scoped_settings
        from guard.testing import GuardSettings

        opt = self.config.getoption
        tool, where = _tool_guard(self.config.rootpath)
        try:
            spec = options_from_table(tool, where)
            report = opt("guard_report") or tool.get("report")
            if report is not None and not isinstance(report, str):
                raise ConfigError(f"{where}: 'report' must be a folder name, got {report!r}")
            return GuardSettings(
                profile=opt("guard_profile") or tool.get("profile", "quick"),
                seed=opt("guard_seed") if opt("guard_seed") is not None else (spec.seed or 0),
                policies=tuple(opt("guard_policy") or spec.policy or ()),
                fail_on=opt("guard_fail_on") or spec.fail_on or "high",
                strictness=opt("guard_strictness") or tool.get("strictness", "interval"),
                clip="undeclared" if spec.clip is None else parse_clip(spec.clip),
                thresholds=dict(tool.get("thresholds", {})),
                report_dir=None if report is None else Path(report),
                waivers=self._relative(spec.waivers),
                baseline=self._relative(spec.baseline),
                probes=scoped_settings(spec.probes or {}, where),
            )
        except GuardError as exc:
            raise pytest.UsageError(f"guard: {exc}") from None

    def _relative(self, path: str | None) -> Path | None:
        """A file named in [tool.guard], read from the project's root."""
        if path is None:
            return None
        return Path(path) if Path(path).is_absolute() else self.config.rootpath / path

    @property
    def policy(self) -> Any:
        """The session's packs, waivers, baseline and thresholds, loaded once."""
        if getattr(self, "_policy", None) is None:
            from guard.audit import PolicySetup

            s = self.settings
            try:
                self._policy = PolicySetup.load(s.policies, waivers=s.waivers, baseline=s.baseline,
                                                thresholds=s.thresholds)
            except GuardError as exc:
                raise pytest.UsageError(f"guard: {exc}") from None
        return self._policy

    def audit(self, model: Any, data: Any, **kwargs: Any) -> Any:
        from guard.audit import Gate
        from guard.testing import audit_model

        _, result = audit_model(model, data, self.settings, cache=self.cache, **kwargs)
        if self.policy.active and not result.result.findings:
            self.policy.judge(result.result)
        if result.result.findings:
            result.result.gate = Gate.of(result.result, self.settings.fail_on).to_dict()
        return result

    def documents(self) -> dict[str, dict[str, Any]]:
        """Every audit of the session as report dicts, this process's and its workers'."""
        docs = dict(self.remote)
        docs.update({key: result.to_dict() for key, result in self.cache.items()})
        return docs

    def failing(self, doc: dict[str, Any]) -> list[str]:
        """The controls that fail this audit's gate (the decision the audit service recorded)."""
        gate = doc.get("gate") or {}
        return sorted(str(c) for c in gate.get("failing", []))

    @pytest.hookimpl
    def pytest_sessionstart(self, session: pytest.Session) -> None:
        """Check the settings before any test runs: a bad [tool.guard] is a usage error."""
        _ = self.settings, self.policy

    # -- the marker ---------------------------------------------------------------------

    @pytest.hookimpl
    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        from guard.probes import probe_class

        for item in items:
            for mark in item.iter_markers("guard"):
                if mark.args:
                    raise pytest.UsageError(
                        f"{item.nodeid}: @pytest.mark.guard takes keyword arguments only "
                        f"({', '.join(sorted(MARKER_ARGS))})"
                    )
                unknown = set(mark.kwargs) - MARKER_ARGS
                if unknown:
                    raise pytest.UsageError(
                        f"{item.nodeid}: @pytest.mark.guard got unknown argument(s) "
                        f"{', '.join(sorted(unknown))}; known: {', '.join(sorted(MARKER_ARGS))}"
                    )
                attacks = mark.kwargs.get("attacks", [])
                if isinstance(attacks, str) or not isinstance(attacks, list | tuple):
                    raise pytest.UsageError(f"{item.nodeid}: guard marker attacks must be a list")
                for attack in attacks:
                    try:
                        probe_class(attack)
                    except GuardError as exc:
                        raise pytest.UsageError(f"{item.nodeid}: guard marker: {exc}") from None

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_call(self, item: pytest.Item) -> Generator[None, Any, Any]:
        __tracebackhide__ = True
        outcome = yield
        mark = item.get_closest_marker("guard")
        if mark is None:
            return outcome
        funcargs: dict[str, Any] = getattr(item, "funcargs", {})
        missing = [name for name in ("model", "eval_data") if name not in funcargs]
        if missing:
            raise pytest.UsageError(
                f"{item.nodeid}: @pytest.mark.guard needs the test to request fixtures "
                f"{', '.join(missing)}"
            )
        kw = dict(mark.kwargs)
        policy = kw.pop("policy", None)
        min_accuracy = kw.pop("min_accuracy", None)
        fail_on = kw.pop("fail_on", None)
        strictness = kw.pop("strictness", None)
        data = funcargs["eval_data"]
        train = funcargs.get("train_data")
        if train is not None and isinstance(data, tuple | list) and len(data) == 2:
            data = (*data, *train)
        result = self.audit(funcargs["model"], data, name=item.name, **kw)
        if min_accuracy is not None:
            result.assert_robust(float(min_accuracy), strictness=strictness)
        for pack in [policy] if isinstance(policy, str) else list(policy or []):
            result.assert_policy(pack, fail_on=fail_on)
        return outcome

    # -- summary, xdist and reports -------------------------------------------------------

    @pytest.hookimpl
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        workeroutput = getattr(self.config, "workeroutput", None)
        if workeroutput is not None:  # an xdist worker hands its results to the controller
            workeroutput[_WORKER_KEY] = self.documents()
            return
        docs = self.documents()
        if docs and self.settings.report_dir is not None:
            from guard.reports import write_reports
            from guard.serialization import audit_result_from_dict

            results = [audit_result_from_dict(doc) for doc in docs.values()]
            self.written = write_reports(results, self.settings.report_dir, _report_formats())

    @pytest.hookimpl
    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        docs = self.documents()
        if not docs or hasattr(self.config, "workeroutput"):
            return
        terminalreporter.section("guard")
        from guard.textsafe import visible

        for doc in docs.values():
            terminalreporter.write_line(visible(_summary_line(doc, self.failing(doc))))
        for path in getattr(self, "written", []):
            terminalreporter.write_line(f"guard report: {visible(str(path))}")


def _report_formats() -> list[str]:
    from guard.reports import OFFLINE_FORMATS

    return list(OFFLINE_FORMATS)


def _summary_line(doc: dict[str, Any], failing: list[str]) -> str:
    from guard.stats import format_rate

    evasion = [e for e in doc["evidence"] if "robust_accuracy" in e["metrics"]]
    parts = [f"{doc['target']['name']}:"]
    if evasion:
        parts.append(f"clean {format_rate(evasion[0]['metrics']['clean_accuracy'])}")
        worst: dict[float, dict[str, Any]] = {}
        for e in evasion:
            eps = float(e["params"]["eps"])
            if eps not in worst or e["metrics"]["robust_accuracy"]["value"] < worst[eps]["value"]:
                worst[eps] = e["metrics"]["robust_accuracy"]
        parts += [f"robust@{eps:g} {format_rate(m)}" for eps, m in sorted(worst.items())]
        parts.append(f"n={evasion[0]['metrics']['clean_accuracy']['n']}")
    parts.append(f"failing: {', '.join(failing)}" if failing else "failing: none")
    return "  ".join(parts)


@pytest.fixture
def guard_config(request: pytest.FixtureRequest) -> Any:
    """The session's Guard settings (profile, seed, policies, fail-on, strictness, clip)."""
    return request.config.stash[_SESSION].settings


@pytest.fixture
def guard_audit(request: pytest.FixtureRequest) -> Callable[..., Any]:
    """``guard_audit(model, eval_data, attacks=[...], eps=..., clip=...) -> GuardResult``."""
    session = request.config.stash[_SESSION]

    def audit(model: Any, eval_data: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("name", request.node.name)
        return session.audit(model, eval_data, **kwargs)

    return audit
