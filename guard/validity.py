"""Cross-checks between evasion results (AutoAttack's sanity checks, Croce & Hein 2020).

A number that contradicts another measured number on the same samples is evidence that an
attack was too weak, so each contradiction becomes a flag on the evidence it casts doubt on:

* robust accuracy that rises with epsilon (a larger ball contains the smaller one);
* a black-box attack beating a white-box one at the same budget (gradient masking);
* a single-step attack beating an iterative one at the same budget.
"""

from __future__ import annotations

from collections import defaultdict

from guard.evidence import Evidence, Flag


def _traits(probe: str) -> frozenset[str]:
    """What the probe declares about itself (``black-box``, ``single-step``)."""
    from guard.probes import registry

    cls = registry().get(probe)
    return cls.traits if cls is not None else frozenset()


def _flag(e: Evidence, flag: Flag) -> None:
    """Add a flag the probe declares it may carry (its ``emits.flags``); others are not its."""
    from guard.probes import registry

    cls = registry().get(e.probe)
    if cls is None or flag.code in cls.emits.flags:
        e.flags.append(flag)


def _robust(e: Evidence) -> float | None:
    m = e.metrics.get("robust_accuracy")
    return None if m is None else m.value


def add_validity_flags(evidence: list[Evidence]) -> None:
    """Append flags in place to evasion evidence of one target."""
    evasion = [e for e in evidence if _robust(e) is not None and "eps" in e.params]
    by_probe: dict[tuple[str, str], list[Evidence]] = defaultdict(list)
    for e in evasion:
        by_probe[(e.probe, str(e.params.get("norm")))].append(e)
    for entries in by_probe.values():
        entries.sort(key=lambda e: float(e.params["eps"]))
        lowest = None
        for e in entries:
            r = _robust(e)
            if lowest is not None and r is not None and r > lowest[0]:
                _flag(
                    e,
                    Flag(
                        "non_monotone",
                        f"robust accuracy {r:.1%} at eps {e.params['eps']:g} is higher than "
                        f"{lowest[0]:.1%} at the smaller eps {lowest[1]:g}: the attack is too "
                        "weak at this budget (more steps or restarts)",
                    )
                )
            if r is not None and (lowest is None or r < lowest[0]):
                lowest = (r, float(e.params["eps"]))
    by_budget: dict[tuple[str, float], list[Evidence]] = defaultdict(list)
    for e in evasion:
        by_budget[(str(e.params.get("norm")), float(e.params["eps"]))].append(e)
    for (norm, eps), group in by_budget.items():
        _compare(group, "black-box", "blackbox_beats_whitebox", norm, eps)
        _compare(group, "single-step", "single_step_beats_iterative", norm, eps)


def _compare(group: list[Evidence], kind: str, code: str, norm: str, eps: float) -> None:
    """Flag every stronger-by-design entry (an iterative white-box attack: neither trait)
    that a weaker-by-design probe (one with the ``kind`` trait) beats."""
    weak = [e for e in group if kind in _traits(e.probe)]
    strong = [e for e in group if not _traits(e.probe) & {"black-box", "single-step"}]
    for w in weak:
        rw = _robust(w)
        for s in strong:
            rs = _robust(s)
            if rw is None or rs is None or rw >= rs:
                continue
            # Same n means the same samples (seeded prefix); otherwise the weaker-by-design
            # attack must win beyond both 95% intervals before the flag is raised.
            mw, ms = w.metrics["robust_accuracy"], s.metrics["robust_accuracy"]
            if mw.n != ms.n and (mw.ci95 is None or ms.ci95 is None or mw.ci95[1] >= ms.ci95[0]):
                continue
            _flag(
                s,
                Flag(
                    code,
                    f"{kind} {w.probe} leaves {rw:.1%} robust at L{norm} eps {eps:g}, below "
                    f"{s.probe}'s {rs:.1%}: {s.probe} underestimates the threat here",
                )
            )
