"""Probes: what attacks a target and returns Evidence. Registered by id, found by discovery.

Adding a probe is adding one module under ``guard.attacks`` (or ``guard.defenses``) that
decorates its class with :func:`register`; :func:`registry` imports those packages'
modules once, so no list elsewhere needs editing.
"""

from __future__ import annotations

import importlib
import pkgutil
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

from guard.errors import ConfigError
from guard.evidence import Evidence
from guard.target import Capability, Target

ProgressFn = Callable[[str, int, int], None]


def no_progress(label: str, done: int, total: int) -> None:
    """Default progress sink: says nothing."""


@dataclass(frozen=True, slots=True, kw_only=True)
class RunContext:
    """What the runner hands every probe: the seed and where to report progress."""

    seed: int = 0
    progress: ProgressFn = field(default=no_progress)


class Probe(ABC):
    """A probe measures one thing about a target. Settings are validated when it is built."""

    id: ClassVar[str]
    category: ClassVar[str]
    requires: ClassVar[frozenset[Capability]] = frozenset()
    aliases: ClassVar[tuple[str, ...]] = ()

    @abstractmethod
    def run(self, target: Target, ctx: RunContext) -> list[Evidence]:
        """Measure and return evidence; never decide pass or fail."""

    def check(self, target: Target) -> None:
        target.require(self.id, self.requires)


ProbeFactory = Callable[..., Probe]
P = TypeVar("P", bound=type[Probe])
_REGISTRY: dict[str, type[Probe]] = {}
_DISCOVERED = False
_PROBE_PACKAGES = ("guard.attacks", "guard.defenses")


def register(cls: P) -> P:
    """Class decorator: make a probe available under its id and aliases."""
    for key in (cls.id, *cls.aliases):
        other = _REGISTRY.get(key)
        if other is not None and other is not cls:
            raise RuntimeError(f"probe id {key!r} registered twice ({other.__name__}, {cls.__name__})")
        _REGISTRY[key] = cls
    return cls


def _discover() -> None:
    global _DISCOVERED
    if _DISCOVERED:
        return
    for package_name in _PROBE_PACKAGES:
        package = importlib.import_module(package_name)
        prefix = package.__name__ + "."
        for info in pkgutil.walk_packages(package.__path__, prefix):
            importlib.import_module(info.name)
    _DISCOVERED = True


def registry() -> dict[str, type[Probe]]:
    _discover()
    return dict(_REGISTRY)


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


def build_probe(name: str, **settings: Any) -> Probe:
    """Build a probe, passing only the settings it declares (ids differ in what they take)."""
    cls = probe_class(name)
    accepted = getattr(cls, "accepts", None)
    if accepted is not None:
        settings = {k: v for k, v in settings.items() if k in accepted}
    return cls(**settings)
