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

from dataclasses import dataclass
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
    return _load(name_or_path, base=None, stack=())


@cache
def _shipped(name: str) -> Pack:
    """Shipped packs never change while Guard runs: parse each once per process."""
    return _load(name, base=None, stack=())


def _resolve(name_or_path: str | Path, base: Path | None) -> Any:
    text = str(name_or_path)
    if text in available_packs() and not Path(text).suffix:
        return packs_dir().joinpath(f"{text}.yaml")
    path = Path(text)
    if base is not None and not path.is_absolute():
        path = base / path
    if not path.exists():
        shipped = ", ".join(available_packs())
        raise PolicyError(Problem(text, None, f"no such pack: not a shipped pack ({shipped}) nor a file"))
    return path


def _load(name_or_path: str | Path, base: Path | None, stack: tuple[str, ...]) -> Pack:
    resource = _resolve(name_or_path, base)
    file = str(resource)
    if file in stack:
        cycle = " -> ".join((*stack, file))
        raise PolicyError(Problem(file, None, f"packs select from each other in a cycle: {cycle}"))
    doc = load_yaml(resource)
    folder = Path(file).parent if isinstance(resource, Path) else None
    return _parse_pack(doc, file, folder, (*stack, file), load_catalogue())


def _parse_pack(
    doc: Any, file: str, folder: Path | None, stack: tuple[str, ...], catalogue: Catalogue
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
    framework = doc.get("framework")
    if framework is not None and framework not in catalogue.frameworks:
        problems.append(Problem(file, doc.line_of("framework"), f"unknown framework '{framework}'"))
    controls: list[Control] = []
    seen: dict[str, Control] = {}
    for control, line in _selected(doc, file, folder, stack, problems):
        _add(control, line, file, controls, seen, problems)
    for control, line in _own(doc, file, catalogue, problems):
        _add(control, line, file, controls, seen, problems)
    if not controls and not problems:
        problems.append(Problem(file, doc.line, "the pack has no controls"))
    if problems:
        raise PolicyError(problems)
    return Pack(
        name=name,
        title=str(doc.get("title", name)),
        description=" ".join(str(doc.get("description", "")).split()),
        framework=framework,
        controls=tuple(controls),
        file=file,
    )


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
    doc: LocatedDict, file: str, folder: Path | None, stack: tuple[str, ...], problems: list[Problem]
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
            source = _load(rule["from"], folder, stack) if rule["from"] not in available_packs() \
                else _shipped(rule["from"])
        except PolicyError as exc:
            problems.append(Problem(file, rule.line_of("from"), f"cannot select from '{rule['from']}':"))
            problems.extend(exc.problems)
            continue
        chosen = list(source.controls)
        framework = rule.get("framework")
        if framework is not None:
            if framework not in load_catalogue().frameworks:
                problems.append(Problem(file, rule.line_of("framework"), f"unknown framework '{framework}'"))
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
