"""Packs: named lists of controls, shipped as YAML in ``policies/packs/`` or written by users.

A control is defined once (the ``baseline`` pack holds Guard's) and other packs *select* it
by the frameworks it cites, so the GDPR pack is "every control with a GDPR reference" and a
control's text is never copied between packs. A pack file::

    pack: gdpr
    title: ...
    framework: gdpr            # optional: the framework a report's regulation view groups by
    select:                    # optional: controls taken from other packs
      - from: baseline         # a shipped pack's name, or a path relative to this file
        framework: gdpr        # optional: only controls citing this framework
        ids: [GRD-EVA-01]      # optional: only these controls
    controls: [...]            # optional: controls defined here (see guard.policies.controls)
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from guard.policies.catalogue import Catalogue, load_catalogue
from guard.policies.controls import Control, parse_control
from guard.policies.source import LocatedDict, LocatedList, PolicyError, Problem, load_yaml

PACK_KEYS = ("pack", "title", "description", "framework", "select", "controls")
SELECT_KEYS = ("from", "framework", "ids")


@dataclass(frozen=True, slots=True)
class Pack:
    """A list of controls with a name; ``framework`` names the regulation it is a view of."""

    name: str
    title: str
    controls: tuple[Control, ...]
    description: str = ""
    framework: str | None = None
    file: str = ""

    def control(self, control_id: str) -> Control | None:
        return next((c for c in self.controls if c.id == control_id), None)


def packs_dir() -> Any:
    from importlib import resources

    return resources.files("guard.policies").joinpath("packs")


def available_packs() -> list[str]:
    """The names of the packs shipped with Guard, sorted."""
    return sorted(p.name.removesuffix(".yaml") for p in packs_dir().iterdir() if p.name.endswith(".yaml"))


def load_pack(name_or_path: str | Path) -> Pack:
    """A shipped pack by name (``gdpr``) or a pack file by path, fully validated.

    Raises :class:`PolicyError` listing every problem with its file and line.
    """
    if isinstance(name_or_path, str) and name_or_path in available_packs():
        return _shipped(name_or_path)
    return _load(name_or_path, base=None, stack=(), loaded=_Loaded())


@cache
def _shipped(name: str) -> Pack:
    """Shipped packs never change while Guard runs: parse each once per process."""
    return _load(name, base=None, stack=(), loaded=_Loaded())


@dataclass(slots=True)
class _Loaded:
    """The pack files one load has read, by real path: each is read and checked once, however
    many select rules name it (a pack selecting 1,000 times from one that selects 1,000 times
    from a third reads three files, not a million), and a failed one lists its problems once."""

    packs: dict[str, Pack] = field(default_factory=dict)
    failed: dict[str, PolicyError] = field(default_factory=dict)
    reported: dict[int, PolicyError] = field(default_factory=dict)


def _resolve(name_or_path: str | Path, base: Path | None) -> Any:
    text = str(name_or_path)
    if text in available_packs() and not Path(text).suffix:
        return packs_dir().joinpath(f"{text}.yaml")
    path = Path(text)
    if base is not None and not path.is_absolute():
        path = base / path
    try:
        found = path.exists()
    except (OSError, ValueError) as exc:  # a name too long, a NUL byte
        raise PolicyError(Problem(text, None, f"no such pack: {exc}")) from None
    if not found:
        shipped = ", ".join(available_packs())
        raise PolicyError(Problem(text, None, f"no such pack: not a shipped pack ({shipped}) nor a file"))
    return path


def _load(name_or_path: str | Path, base: Path | None, stack: tuple[str, ...], loaded: _Loaded) -> Pack:
    resource = _resolve(name_or_path, base)
    file = str(resource)
    key = os.path.realpath(resource) if isinstance(resource, Path) else file
    if key in stack:
        cycle = " -> ".join((*stack, key))
        raise PolicyError(Problem(file, None, f"packs select from each other in a cycle: {cycle}"))
    if key in loaded.packs:
        return loaded.packs[key]
    if key in loaded.failed:
        raise loaded.failed[key]
    folder = Path(file).parent if isinstance(resource, Path) else None
    try:
        doc = load_yaml(resource, "policy pack")
        pack = _parse_pack(doc, file, folder, (*stack, key), load_catalogue(), loaded)
    except PolicyError as exc:
        loaded.failed[key] = exc
        raise
    loaded.packs[key] = pack
    return pack


def _text(doc: LocatedDict, key: str, file: str, problems: list[Problem]) -> str | None:
    """An optional text field (title, description); a list or mapping there is a problem."""
    value = doc.get(key)
    if value is None or isinstance(value, str):
        return value
    problems.append(Problem(file, doc.line_of(key), f"'{key}' must be text, not {_kind(value)}"))
    return None


def _kind(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return f"{type(value).__name__} {value!r}"


def _parse_pack(
    doc: Any, file: str, folder: Path | None, stack: tuple[str, ...], catalogue: Catalogue,
    loaded: _Loaded,
) -> Pack:
    if not isinstance(doc, LocatedDict):
        need = "a pack file must be a mapping with 'pack' and 'controls' or 'select'"
        raise PolicyError(Problem(file, None, need))
    problems: list[Problem] = []
    for key in sorted(set(doc) - set(PACK_KEYS)):
        known = ", ".join(PACK_KEYS)
        problems.append(Problem(file, doc.line_of(key), f"unknown key '{key}' (known: {known})"))
    name = doc.get("pack")
    if not isinstance(name, str) or not name:
        problems.append(Problem(file, doc.line_of("pack"), "'pack' must name the pack"))
        name = Path(file).stem
    title = _text(doc, "title", file, problems)
    description = _text(doc, "description", file, problems)
    framework = _framework(doc, file, catalogue, problems)
    controls: list[Control] = []
    seen: dict[str, Control] = {}
    for control, line in _selected(doc, file, folder, stack, loaded, problems):
        _add(control, line, file, controls, seen, problems)
    for control, line in _own(doc, file, catalogue, problems):
        _add(control, line, file, controls, seen, problems)
    if not controls and not problems:
        problems.append(Problem(file, doc.line, "the pack has no controls"))
    if problems:
        raise PolicyError(problems)
    return Pack(
        name=name,
        title=title or name,
        description=" ".join((description or "").split()),
        framework=framework,
        controls=tuple(controls),
        file=file,
    )


def _framework(rule: LocatedDict, file: str, catalogue: Catalogue, problems: list[Problem]) -> str | None:
    framework = rule.get("framework")
    if framework is None:
        return None
    if not isinstance(framework, str) or framework not in catalogue.frameworks:
        shown = framework if isinstance(framework, str) else _kind(framework)
        known = ", ".join(catalogue.frameworks)
        problems.append(Problem(file, rule.line_of("framework"),
                                f"unknown framework '{shown}' (known: {known})"))
        return None
    return framework


def _add(
    control: Control,
    line: int | None,
    file: str,
    out: list[Control],
    seen: dict[str, Control],
    problems: list[Problem],
) -> None:
    """Keep a control once; the same id from two different definitions is an error."""
    first = seen.get(control.id)
    if first is None:
        seen[control.id] = control
        out.append(control)
    elif first.location != control.location:
        problems.append(Problem(file, line,
                                f"duplicate control id '{control.id}' (also defined at {first.location})"))


def _own(
    doc: LocatedDict, file: str, catalogue: Catalogue, problems: list[Problem]
) -> list[tuple[Control, int | None]]:
    if "controls" not in doc:
        return []
    entries = doc["controls"]
    if not isinstance(entries, LocatedList):
        problems.append(Problem(file, doc.line_of("controls"), "'controls' must be a list of controls"))
        return []
    out = []
    for i, entry in enumerate(entries):
        control, found = parse_control(entry, file, entries.line_of(i), catalogue)
        problems.extend(found)
        if control is not None:
            out.append((control, control.line))
    return out


def _selected(
    doc: LocatedDict, file: str, folder: Path | None, stack: tuple[str, ...], loaded: _Loaded,
    problems: list[Problem],
) -> list[tuple[Control, int | None]]:
    if "select" not in doc:
        return []
    rules = doc["select"]
    if not isinstance(rules, LocatedList):
        problems.append(Problem(file, doc.line_of("select"),
                                "'select' must be a list of {from, framework, ids}"))
        return []
    out: list[tuple[Control, int | None]] = []
    for i, rule in enumerate(rules):
        line = rules.line_of(i)
        if not isinstance(rule, LocatedDict) or not isinstance(rule.get("from"), str):
            problems.append(Problem(file, line, "a select rule needs 'from: PACK'"))
            continue
        for key in sorted(set(rule) - set(SELECT_KEYS)):
            known = ", ".join(SELECT_KEYS)
            problems.append(Problem(file, rule.line_of(key), f"unknown key '{key}' (known: {known})"))
        try:
            source = _load(rule["from"], folder, stack, loaded) if rule["from"] not in available_packs() \
                else _shipped(rule["from"])
        except PolicyError as exc:
            first = id(exc) not in loaded.reported
            loaded.reported[id(exc)] = exc
            shown = ":" if first else " (its problems are listed above)"
            problems.append(Problem(file, rule.line_of("from"),
                                    f"cannot select from '{rule['from']}'{shown}"))
            if first:
                problems.extend(exc.problems)
            continue
        chosen = list(source.controls)
        framework = _framework(rule, file, load_catalogue(), problems)
        if framework is not None:
            chosen = [c for c in chosen if framework in c.references]
        ids = rule.get("ids")
        if ids is not None:
            if not isinstance(ids, LocatedList) or not all(isinstance(x, str) for x in ids):
                problems.append(Problem(file, rule.line_of("ids"), "'ids' must list control ids"))
                continue
            for j, control_id in enumerate(ids):
                if source.control(control_id) is None:
                    problems.append(Problem(file, ids.line_of(j),
                                            f"pack '{source.name}' has no control '{control_id}'"))
            chosen = [c for c in chosen if c.id in ids]
        out.extend((c, line) for c in chosen)
    return out
