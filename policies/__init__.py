"""The policy engine: controls as data turn an audit's Evidence into Findings.

Controls live in YAML packs shipped in ``policies/packs/`` (``baseline`` defines them;
``gdpr``, ``ccpa``, ``eu-ai-act``, ``owasp-ml``, ``mitre-atlas`` and ``nist-ai-rmf`` select
them by the frameworks they cite). Conditions are CEL, never Python. Everything a pack,
waiver or threshold file says is validated against ``policies/catalogue/`` when it loads,
and every problem names its file and line.

Typical use::

    findings = evaluate(result, ["gdpr", "ccpa"], thresholds=load_thresholds(pyproject),
                        waivers=Path("waivers.yaml"), baseline=Path("old/report.json"))
    code = exit_code_for(findings, "high")
"""

from guard.policies.baseline import Baseline, load_baseline
from guard.policies.catalogue import Catalogue, EvidenceSpec, Framework, load_catalogue
from guard.policies.controls import Control
from guard.policies.engine import (
    controls_of,
    counts_against,
    evaluate,
    exit_code_for,
    gating_findings,
    resolve_packs,
)
from guard.policies.judge import ERROR, FAIL, NOT_ASSESSED, PASS, STATUSES, WAIVED
from guard.policies.packs import Pack, available_packs, load_pack
from guard.policies.source import PolicyError, Problem
from guard.policies.thresholds import ThresholdOverrides, load_thresholds
from guard.policies.waivers import Waiver, load_waivers

__all__ = [
    "ERROR", "FAIL", "NOT_ASSESSED", "PASS", "STATUSES", "WAIVED",
    "Baseline", "Catalogue", "Control", "EvidenceSpec", "Framework", "Pack", "PolicyError",
    "Problem", "ThresholdOverrides", "Waiver",
    "available_packs", "controls_of", "counts_against", "evaluate", "exit_code_for", "gating_findings",
    "load_baseline", "load_catalogue", "load_pack", "load_thresholds", "load_waivers",
    "resolve_packs",
]
