"""Probes: what measures a target (or its model file) and returns Evidence. Never a verdict.

A probe describes itself, and everything else is derived from that description:

* ``id`` (``evasion.pgd``) and short ``aliases`` (``pgd``) name it on the command line;
* ``requires``: the capabilities it needs of a target (gradients, train data, ...);
* ``settings``: one frozen dataclass with defaults, validated in ``__post_init__``. The
  generic ``--set pgd.steps=100`` option, the ``[tool.guard.probes.pgd]`` table of a spec
  file and the pytest plugin's keyword arguments are all read through it. A numeric field
  declares the values it accepts (:func:`bounded`: finite, a least and a greatest value), so
  ``steps = 9223372036854775807`` is one error before any work, whichever way it came;
* ``emits``: the evidence it produces (:class:`EmittedEvidence`: metrics, params, the params
  that key one measurement, flags). ``policies/catalogue/evidence.yaml`` must agree with it
  (a test checks), so a control can never read a metric no probe writes;
* ``traits``: what the validity checks read (``black-box``, ``single-step``);
* ``stage``: ``model`` probes attack a loaded :class:`~guard.target.Target`; ``artifact``
  probes inspect the model file's bytes before anything is loaded (scan, signature,
  encryption), and may refuse to let it load.

Registration is explicit: Guard's own probes are the modules in :data:`BUILTIN_MODULES`;
another package adds probes through the ``guard.probes`` entry-point group (each entry
point names a :class:`Probe` subclass). See ``docs/probes.md``.
"""

from __future__ import annotations

import dataclasses
import importlib
import math
import tomllib
import types
import typing
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from guard.errors import ConfigError
from guard.evidence import Evidence
from guard.target import Capability, Target

ProgressFn = Callable[[str, int, int], None]
ENTRY_POINT_GROUP = "guard.probes"
BUILTIN_MODULES = (
    "guard.defenses.crypto.probes",
    "guard.defenses.scan.probe",
    "guard.attacks.evasion.gradient",
    "guard.attacks.evasion.apgd",
    "guard.attacks.evasion.hopskipjump",
    "guard.attacks.poisoning.model_scan",
    "guard.defenses.poison.probe",
    "guard.defenses.provenance.probe",
    "guard.attacks.poisoning.susceptibility",
    "guard.defenses.pii.probe",
    "guard.attacks.privacy.membership",
    "guard.attacks.extraction.probes",
    "guard.defenses.sanitize.probe",
    "guard.defenses.access.probes",
)
"""Guard's own probes, in the order an audit runs them (artifact probes first)."""

TRAITS = frozenset({"black-box", "single-step"})


def no_progress(label: str, done: int, total: int) -> None:
    """Default progress sink: says nothing."""


@dataclass(frozen=True, slots=True)
class Range:
    """The values a numeric setting accepts: finite, from ``lo`` to ``hi`` (both included),
    whole numbers only when ``integer``. Declared on a settings field with :func:`bounded`."""

    lo: float
    hi: float
    integer: bool = False

    def admits(self, value: Any) -> bool:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        if isinstance(value, float) and (self.integer or not math.isfinite(value)):
            return False
        return self.lo <= value <= self.hi  # exact for ints of any size (no float conversion)

    def describe(self) -> str:
        if self.integer:
            if self.lo == 1:
                return f"a positive integer up to {int(self.hi)}"
            return f"an integer from {int(self.lo)} to {int(self.hi)}"
        if self.lo > 0:
            return f"positive and finite, from {self.lo:g} to {self.hi:g}"
        return f"a finite number from {self.lo:g} to {self.hi:g}"

    def check(self, name: str, value: Any) -> None:
        """Raise a ConfigError naming ``name``, the value and the range unless every value
        (one, or each of a tuple) is admitted; None (an optional setting left unset) passes."""
        for item in value if isinstance(value, tuple) else (value,):
            if item is not None and not self.admits(item):
                raise ConfigError(f"{name} must be {self.describe()}, got {_shown(item)}")


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def bounded(default: Any, lo: float, hi: float, *, integer: bool = False) -> Any:
    """A settings field whose values must lie in ``[lo, hi]``: ``steps: int = bounded(40, 1,
    100_000, integer=True)``. :func:`build_settings` and :func:`check_ranges` read it."""
    return field(default=default, metadata={"range": Range(lo, hi, integer)})


def field_range(settings_type: Any, name: str) -> Range | None:
    """The declared range of one settings field, or None."""
    for f in dataclasses.fields(settings_type):
        if f.name == name:
            found = f.metadata.get("range")
            return found if isinstance(found, Range) else None
    return None


def check_ranges(settings: Any) -> None:
    """Check every field of a settings object against its declared range (``__post_init__``
    calls it, so a probe built directly in Python is held to the same ranges)."""
    for f in dataclasses.fields(settings):
        declared = f.metadata.get("range")
        if isinstance(declared, Range):
            declared.check(f.name, getattr(settings, f.name))


SEED = Range(0, 2**32 - 1, integer=True)
"""The seeds Guard accepts: NumPy's global generator (which ART draws from) takes no other."""


@dataclass(frozen=True, slots=True, kw_only=True)
class RunContext:
    """What the service hands every probe: the seed and where to report progress."""

    seed: int = 0
    progress: ProgressFn = field(default=no_progress)

    def __post_init__(self) -> None:
        SEED.check("seed", self.seed)


@dataclass(frozen=True, slots=True, kw_only=True)
class NoSettings:
    """The settings of a probe that takes none."""


@dataclass(frozen=True, slots=True, kw_only=True)
class EmittedEvidence:
    """What a probe's Evidence carries: the catalogue entry it must match."""

    title: str
    metrics: tuple[str, ...]
    params: tuple[str, ...]
    key: tuple[str, ...] = ()
    flags: tuple[str, ...] = ()


@dataclass(slots=True)
class Artifact:
    """A model file read once: every artifact probe works on these bytes, and they load.

    ``content`` starts as ``raw``; the encryption probe replaces it with the plaintext.
    ``options`` are the user's settings for the file (keys, manifest, pickle opt-in).
    """

    path: Path
    raw: bytes
    content: bytes


class Probe(ABC):
    """A probe measures one thing. Settings are validated when it is built."""

    id: ClassVar[str]
    category: ClassVar[str]
    aliases: ClassVar[tuple[str, ...]] = ()
    requires: ClassVar[frozenset[Capability]] = frozenset()
    settings_type: ClassVar[type[Any]] = NoSettings
    emits: ClassVar[EmittedEvidence]
    traits: ClassVar[frozenset[str]] = frozenset()
    stage: ClassVar[str] = "model"
    default: ClassVar[bool] = False
    """Whether an audit runs it when the user names no probe (for targets it applies to)."""
    thorough: ClassVar[bool] = False
    """Whether the thorough profile adds it to the default probes (slow: it retrains, say)."""

    def __init__(self, settings: Any = None) -> None:
        self.settings = self.settings_type() if settings is None else settings

    def check(self, target: Target) -> None:
        target.require(self.id, self.requires)

    def applies_to(self, target: Target) -> bool:
        """Whether a default audit of ``target`` should run this probe."""
        return self.requires <= target.capabilities

    def why_not(self, target: Target) -> str:
        """Why a default audit of ``target`` does not run this probe (when it does not)."""
        missing = sorted(c.value for c in self.requires - target.capabilities)
        return f"needs {', '.join(missing)}" if missing else "does not apply to this target"

    @abstractmethod
    def run(self, target: Target, ctx: RunContext) -> list[Evidence]:
        """Measure and return evidence; never decide pass or fail."""


class ArtifactProbe(Probe):
    """A probe of the model file's bytes, run before the model is loaded."""

    stage: ClassVar[str] = "artifact"
    category: ClassVar[str] = "supply_chain"
    default: ClassVar[bool] = True

    @abstractmethod
    def inspect(self, artifact: Artifact, ctx: RunContext) -> list[Evidence]:
        """Evidence about the file; raise a :class:`guard.errors.GuardError` to stop the audit."""

    def run(self, target: Target, ctx: RunContext) -> list[Evidence]:
        raise ConfigError(f"{self.id} inspects a model file; give the audit a model file")


P = TypeVar("P", bound=type[Probe])
_REGISTRY: dict[str, type[Probe]] = {}
_ORDER: list[type[Probe]] = []
_LOADED = False


def register(cls: P) -> P:
    """Class decorator: make a probe available under its id and aliases."""
    _check_declaration(cls)
    for key in (cls.id, *cls.aliases):
        other = _REGISTRY.get(key)
        if other is not None and other is not cls:
            raise ConfigError(f"probe id {key!r} registered twice ({other.__module__}.{other.__name__}, "
                              f"{cls.__module__}.{cls.__name__})")
        _REGISTRY[key] = cls
    if cls not in _ORDER:
        _ORDER.append(cls)
    return cls


def _check_declaration(cls: type[Probe]) -> None:
    where = f"probe {cls.__module__}.{cls.__name__}"
    if not isinstance(getattr(cls, "id", None), str) or "." not in cls.id:
        raise ConfigError(f"{where}: id must be a dotted string such as 'evasion.pgd'")
    if not dataclasses.is_dataclass(cls.settings_type):
        raise ConfigError(f"{where}: settings_type must be a dataclass")
    if not isinstance(getattr(cls, "emits", None), EmittedEvidence):
        raise ConfigError(f"{where}: emits must be an EmittedEvidence")
    if not set(cls.emits.key) <= set(cls.emits.params):
        raise ConfigError(f"{where}: emits.key must name params it emits")
    if not isinstance(getattr(cls, "category", None), str):
        cls.category = cls.id.split(".")[0]
    unknown = cls.traits - TRAITS
    if unknown:
        raise ConfigError(f"{where}: unknown traits {sorted(unknown)}; known: {sorted(TRAITS)}")
    if cls.stage not in ("model", "artifact"):
        raise ConfigError(f"{where}: stage must be 'model' or 'artifact'")


def _load() -> None:
    global _LOADED
    if _LOADED:
        return
    for name in BUILTIN_MODULES:
        importlib.import_module(name)
    plugin_probes()
    _LOADED = True  # only once everything imported: a failed import is reported on every call


_PLUGINS: list[type[Probe]] | None = None


def plugin_probes() -> list[type[Probe]]:
    """The probes other packages add through the ``guard.probes`` entry points (loaded once;
    Guard's own are not imported for this, so the policy catalogue can ask cheaply)."""
    global _PLUGINS
    if _PLUGINS is not None:
        return list(_PLUGINS)
    found: list[type[Probe]] = []
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        try:
            cls = ep.load()
        except Exception as exc:  # noqa: BLE001  (a broken plug-in is named, not a traceback)
            raise ConfigError(f"probe plug-in {ep.name!r} ({ep.value}) failed to load: "
                              f"{type(exc).__name__}: {exc}") from None
        if not (isinstance(cls, type) and issubclass(cls, Probe)):
            raise ConfigError(f"probe plug-in {ep.name!r} ({ep.value}) is not a guard.probes.Probe class")
        found.append(register(cls))
    _PLUGINS = found
    return list(found)


def registry() -> dict[str, type[Probe]]:
    """Every probe by id and alias."""
    _load()
    return dict(_REGISTRY)


def probes() -> list[type[Probe]]:
    """Every registered probe once, Guard's in :data:`BUILTIN_MODULES` order, then plug-ins."""
    _load()

    def rank(cls: type[Probe]) -> int:
        module = cls.__module__
        return BUILTIN_MODULES.index(module) if module in BUILTIN_MODULES else len(BUILTIN_MODULES)

    return sorted(_ORDER, key=rank)  # stable: registration order within a module


def probe_class(name: str) -> type[Probe]:
    """The probe for an id (``evasion.pgd``) or a short alias (``pgd``)."""
    known = registry()
    cls = known.get(name)
    if cls is None:
        ids = sorted({c.id for c in known.values()})
        aliases = sorted({a for c in known.values() for a in c.aliases})
        raise ConfigError(
            f"unknown attack {name!r}; known: {', '.join(aliases)} (ids: {', '.join(ids)})"
        )
    return cls


# -- settings ----------------------------------------------------------------------------------


def setting_names(cls: type[Probe]) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(cls.settings_type))


def build_settings(cls: type[Probe], shared: Mapping[str, Any] = types.MappingProxyType({}),
                   scoped: Mapping[str, Any] = types.MappingProxyType({})) -> Any:
    """The probe's settings: ``shared`` values it declares (``--eps`` applies to every probe
    with an ``eps``), then ``scoped`` ones meant for it alone (``--set pgd.steps=10``), which
    must all be its own. Values are coerced to the declared field types; errors name the key."""
    names = set(setting_names(cls))
    unknown = sorted(set(scoped) - names)
    if unknown:
        raise ConfigError(f"{cls.id} has no setting {unknown[0]!r}; its settings: "
                          f"{', '.join(sorted(names)) or '(none)'}")
    hints = typing.get_type_hints(cls.settings_type)
    values = {k: coerce(f"{cls.id}.{k}", v, hints[k]) for k, v in {**shared, **scoped}.items() if k in names}
    for key, value in values.items():  # before the dataclass sees an absurd value
        declared = field_range(cls.settings_type, key)
        if declared is not None:
            try:
                declared.check(key, value)
            except ConfigError as exc:
                raise ConfigError(f"{cls.id}: {exc}") from None
    try:
        return cls.settings_type(**values)
    except ConfigError as exc:
        raise ConfigError(f"{cls.id}: {exc}") from None
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{cls.id}: bad settings: {exc}") from None


def prepare_probe(name: str, shared: Mapping[str, Any] = types.MappingProxyType({}),
                  scoped: Mapping[str, Any] = types.MappingProxyType({})) -> Probe:
    """A probe with ``shared`` settings where it declares them and ``scoped`` ones for it alone."""
    cls = probe_class(name)
    return cls(build_settings(cls, shared, scoped))


def build_probe(name: str, /, **settings: Any) -> Probe:
    """A probe with these settings, every one of which it must declare."""
    return prepare_probe(name, scoped=settings)


def coerce(key: str, value: Any, hint: Any) -> Any:
    """``value`` (from TOML, the command line or Python) as the declared type ``hint``."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for option in (a for a in args if a is not type(None)):
            try:
                return coerce(key, value, option)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if errors else f"{key}: bad value {value!r}")
    if origin is tuple:
        items = list(value) if isinstance(value, list | tuple) else [value]
        inner = args[0] if args else Any
        return tuple(coerce(key, v, inner) for v in items)
    if hint is Any:
        return value
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{key} must be true or false, got {value!r}")
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{key} must be an integer, got {value!r}")
    if hint is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(f"{key} must be a number, got {value!r}")
    if hint is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{key} must be a string, got {value!r}")
    if origin is typing.Literal:
        if value in args:
            return value
        raise ConfigError(f"{key} must be one of {', '.join(map(repr, args))}, got {value!r}")
    return value


def parse_set(items: Iterable[str]) -> dict[str, dict[str, Any]]:
    """``--set PROBE.KEY=VALUE`` options as {probe id: {key: value}}. VALUE is read as a TOML
    value (``10``, ``0.5``, ``[0.1, 0.2]``, ``true``, ``"text"``), else taken as a string."""
    out: dict[str, dict[str, Any]] = {}
    for item in items:
        name, sep, raw = item.partition("=")
        probe, dot, key = name.strip().rpartition(".")
        if not sep or not dot or not probe or not key:
            raise ConfigError(f"--set {item!r}: expected PROBE.KEY=VALUE, e.g. pgd.steps=100")
        try:
            value = tomllib.loads(f"v = {raw.strip()}")["v"]
        except tomllib.TOMLDecodeError:
            value = raw.strip()
        try:
            cls = probe_class(probe)
        except ConfigError as exc:
            raise ConfigError(f"--set {item!r}: {exc}") from None
        out.setdefault(cls.id, {})[key.replace("-", "_")] = value
    return out


def scoped_settings(tables: Mapping[str, Any], where: str) -> dict[str, dict[str, Any]]:
    """A spec file's ``[probes.<name>]`` tables as {probe id: {key: value}}."""
    out: dict[str, dict[str, Any]] = {}
    for name, table in _flatten(tables):
        if not isinstance(table, dict):
            raise ConfigError(f"{where}: [probes.{name}] must be a table of settings")
        try:
            cls = probe_class(name)
        except ConfigError as exc:
            raise ConfigError(f"{where}: [probes.{name}]: {exc}") from None
        out.setdefault(cls.id, {}).update({k.replace("-", "_"): v for k, v in table.items()})
    return out


def _flatten(tables: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    """``[probes.noise.gaussian]`` is TOML for a table ``noise`` holding ``gaussian``: a name
    that is no probe, holding only tables, is read as the start of a dotted probe id."""
    out: list[tuple[str, Any]] = []
    known = registry()
    for name, table in tables.items():
        full = f"{prefix}{name}"
        if (full not in known and isinstance(table, dict) and table
                and all(isinstance(v, dict) for v in table.values())):
            out.extend(_flatten(table, f"{full}."))
        else:
            out.append((full, table))
    return out
