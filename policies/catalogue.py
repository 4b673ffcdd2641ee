"""Guard's catalogues, as data: the evidence controls may read and the ids they may cite.

``catalogue/evidence.yaml`` lists each probe id with its metrics, parameters and flags; one
file per framework (``gdpr.yaml``, ``ccpa.yaml``, ...) lists the article, section or
technique ids Guard knows. Packs are checked against both when they load, so a misspelt
metric or a citation of an article that does not exist (``32(1)(e)``) is an error at load
time rather than a control that never fires or a report that cites nonsense.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from guard.policies.source import LocatedDict, LocatedList, PolicyError, Problem, load_yaml


@dataclass(frozen=True, slots=True)
class EvidenceSpec:
    """One probe id a control may read, and what its evidence carries."""

    name: str
    title: str
    metrics: tuple[str, ...]
    params: tuple[str, ...]
    key: tuple[str, ...]
    flags: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Framework:
    """A regulation or framework: the ids a control may cite under its key, with titles."""

    key: str
    title: str
    ids: Mapping[str, str]
    group_pattern: str
    name: str = ""
    """The short name a citation starts with (``GDPR``, ``OWASP-ML``)."""
    order: int = 1000
    cite_prefix: str = ""
    """Written before an id that begins with a digit (``Art. `` for GDPR, ``§`` for CCPA)."""

    def cite(self, ref: str) -> str:
        """A citation a reader recognises: ``GDPR Art. 32(1)(d)``, ``ATLAS AML.T0015``."""
        prefix = self.cite_prefix if ref[:1].isdigit() else ""
        return f"{self.name or self.key} {prefix}{ref}"

    def group(self, ref: str) -> str:
        """The article (or section, technique) an id belongs to: ``32(1)(d)`` -> ``32``."""
        match = re.match(self.group_pattern, ref)
        return match.group(1) if match else ref


@dataclass(frozen=True, slots=True)
class Catalogue:
    evidence: Mapping[str, EvidenceSpec]
    frameworks: Mapping[str, Framework]

    def match(self, pattern: str) -> tuple[str, ...]:
        """Probe ids matching a name or a glob (``evasion.*``), in catalogue order."""
        return tuple(name for name in self.evidence if fnmatch.fnmatchcase(name, pattern))


def catalogue_dir() -> Any:
    return resources.files("guard.policies").joinpath("catalogue")


@cache
def load_catalogue() -> Catalogue:
    """The shipped catalogue (read once per process)."""
    folder = catalogue_dir()
    evidence = _evidence(load_yaml(folder.joinpath("evidence.yaml"), "catalogue file"),
                         str(folder.joinpath("evidence.yaml")))
    frameworks: dict[str, Framework] = {}
    for entry in sorted(folder.iterdir(), key=lambda p: p.name):
        if entry.name.endswith(".yaml") and entry.name != "evidence.yaml":
            framework = _framework(load_yaml(entry, "catalogue file"), str(entry))
            frameworks[framework.key] = framework
    ordered = dict(sorted(frameworks.items(), key=lambda kv: (kv[1].order, kv[0])))
    evidence.update(_plugin_evidence(evidence))
    return Catalogue(evidence=evidence, frameworks=ordered)


def _plugin_evidence(shipped: Mapping[str, EvidenceSpec]) -> dict[str, EvidenceSpec]:
    """What probes from other packages (the ``guard.probes`` entry points) declare they emit,
    so their own policy packs can read it. Guard's probes are in evidence.yaml (a test keeps
    the two in step)."""
    from guard.probes import plugin_probes

    out: dict[str, EvidenceSpec] = {}
    for cls in plugin_probes():
        if cls.id in shipped:
            continue
        e = cls.emits
        out[cls.id] = EvidenceSpec(name=cls.id, title=e.title, metrics=e.metrics, params=e.params,
                                   key=e.key, flags=e.flags)
    return out


def _names(value: Any, file: str, line: int | None, what: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise PolicyError(Problem(file, line, f"{what} must be a list of names"))
    return tuple(value)


def _evidence(doc: Any, file: str) -> dict[str, EvidenceSpec]:
    table = doc.get("evidence") if isinstance(doc, dict) else None
    if not isinstance(table, LocatedDict):
        raise PolicyError(Problem(file, None, "expected a mapping 'evidence: {probe id: ...}'"))
    out: dict[str, EvidenceSpec] = {}
    for name, entry in table.items():
        line = table.line_of(name)
        if not isinstance(entry, LocatedDict):
            raise PolicyError(Problem(file, line, f"evidence '{name}' must be a mapping"))
        unknown = set(entry) - {"title", "metrics", "params", "key", "flags"}
        if unknown:
            raise PolicyError(Problem(file, line, f"evidence '{name}': unknown keys {sorted(unknown)}"))
        params = _names(entry.get("params", []), file, entry.line_of("params"), "params")
        key = _names(entry.get("key", []), file, entry.line_of("key"), "key")
        if not set(key) <= set(params):
            raise PolicyError(Problem(file, entry.line_of("key"), "key must name listed params"))
        out[name] = EvidenceSpec(
            name=name,
            title=str(entry.get("title", "")),
            metrics=_names(entry.get("metrics"), file, entry.line_of("metrics"), "metrics"),
            params=params,
            key=key,
            flags=_names(entry.get("flags", []), file, entry.line_of("flags"), "flags"),
        )
    return out


def _framework(doc: Any, file: str) -> Framework:
    if not isinstance(doc, LocatedDict) or not isinstance(doc.get("framework"), str):
        raise PolicyError(Problem(file, None, "expected 'framework: KEY' and 'ids: {id: title}'"))
    ids = doc.get("ids")
    if not isinstance(ids, LocatedDict) or not ids:
        raise PolicyError(Problem(file, doc.line_of("ids"), "'ids' must map each id to its title"))
    pattern = doc.get("group", r"^(.*)$")
    try:
        re.compile(pattern)
    except (re.error, TypeError) as exc:
        raise PolicyError(Problem(file, doc.line_of("group"), f"'group' is not a regex: {exc}")) from None
    order = doc.get("order", 1000)
    if isinstance(order, bool) or not isinstance(order, int):
        raise PolicyError(Problem(file, doc.line_of("order"), "'order' must be an integer"))
    return Framework(
        key=doc["framework"],
        title=str(doc.get("title", doc["framework"])),
        ids={str(k): str(v) for k, v in ids.items()},
        group_pattern=pattern,
        name=str(doc.get("name", doc["framework"])),
        order=order,
        cite_prefix=str(doc.get("cite_prefix", "")),
    )


def check_references(
    refs: Any, catalogue: Catalogue, file: str, line: int | None
) -> tuple[dict[str, tuple[str, ...]], list[Problem]]:
    """A control's ``references`` mapping, checked against the catalogue.

    Ids are taken as written in the file (see :mod:`guard.policies.source`), so ``1798.150``
    stays a CCPA section rather than becoming a float.
    """
    problems: list[Problem] = []
    out: dict[str, tuple[str, ...]] = {}
    if not isinstance(refs, LocatedDict) or not refs:
        need = "a control needs 'references' to at least one regulation or framework"
        return out, [Problem(file, line, need)]
    for key, ids in refs.items():
        where = refs.line_of(key)
        framework = catalogue.frameworks.get(key)
        if framework is None:
            known = ", ".join(catalogue.frameworks)
            problems.append(Problem(file, where, f"unknown framework '{key}' in references (known: {known})"))
            continue
        if not isinstance(ids, LocatedList) or not ids:
            problems.append(Problem(file, where, f"references.{key} must be a non-empty list of ids"))
            continue
        written: list[str] = []
        for i, raw in enumerate(ids.raw):
            ref = raw if raw is not None else str(ids[i])
            if ref not in framework.ids:
                message = f"'{ref}' is not in Guard's {key} catalogue ({framework.title})"
                problems.append(Problem(file, ids.line_of(i), message))
            written.append(ref)
        out[key] = tuple(written)
    return out, problems
