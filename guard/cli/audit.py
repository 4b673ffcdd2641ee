"""``guard audit``: attack a model (or the bundled demo models), judge it, write the reports.

Before a user's model is loaded: its signature is verified (``--verify-with``), the file is
scanned without executing it, and an encrypted file is decrypted into memory (``--key``).
Each step becomes evidence. After the attacks, policy packs (``--policy``) turn evidence
into findings; the exit code is 1 when a non-waived finding at or above ``--fail-on`` fails.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from guard import SEVERITY_ORDER
from guard.cli.options import FLOAT_LIST, NAME_LIST
from guard.config import AuditOptions, discover_pyproject, load_spec
from guard.errors import ConfigError, ExitCode
from guard.evidence import AuditResult, Evidence

DEFAULT_OUT = "guard-report"
DEFAULT_FORMATS = ("json", "html")


@dataclass(slots=True)
class PolicySetup:
    """Packs, waivers, baseline and thresholds, all loaded (validated) before any attack."""

    packs: list[Any] = field(default_factory=list)
    waivers: Any = None
    baseline: Any = None
    thresholds: Any = None
    fail_on: str = "high"


@click.command()
@click.option("--demo", is_flag=True, help="Audit the bundled digits models (trained offline, cached).")
@click.option("--model", help="Model file: .pt/.pth (state dict, with --arch), .safetensors, "
              "TorchScript, .pt2 (torch.export), .skops; add .enc with a key option.")
@click.option("--arch", help="MODULE:CLASS building the network for a state dict (your code).")
@click.option("--data", help="Evaluation data: .npz with x, y (and x_train, y_train) or .csv.")
@click.option("--clip", help="Input range 'LO,HI', or 'none' for unbounded features. Required.")
@click.option("--label-column", help="The label column of a .csv data file.")
@click.option("--attack", "attacks", multiple=True,
              help="fgsm, pgd, apgd, hopskipjump (repeatable; default: by model type).")
@click.option("--eps", type=FLOAT_LIST, help="Perturbation budgets, e.g. 0.05,0.1.")
@click.option("--norm", type=click.Choice(["inf", "2"]), help="Threat model norm (default inf).")
@click.option("--steps", type=click.IntRange(min=1), help="Attack iterations (default 40).")
@click.option("--step-size", type=click.FloatRange(min=0, min_open=True),
              help="Step size (default 2.5*eps/steps).")
@click.option("--samples", type=click.IntRange(min=1), help="Samples to attack (default 500).")
@click.option("--batch-size", type=click.IntRange(min=1), help="Attack batch size (default 500).")
@click.option("--seed", type=int, help="Seed for sampling and random starts (default 0).")
@click.option("--out", help=f"Output folder (default {DEFAULT_OUT}).")
@click.option("--format", "format", type=NAME_LIST,
              help="Report formats: json,html,sarif,junit,md,pdf (default json,html).")
@click.option("--policy", multiple=True, help="Policy pack to judge the evidence with (repeatable): "
              "baseline, gdpr, ccpa, eu-ai-act, owasp-ml, mitre-atlas, nist-ai-rmf, or a pack file.")
@click.option("--waivers", help="Waivers file (control, target, reason, approver, expiry).")
@click.option("--baseline", help="An earlier report.json: fail only on new or worsened findings.")
@click.option("--fail-on", type=click.Choice([*SEVERITY_ORDER, "none"]),
              help="Exit 1 when a finding at or above this severity fails (default high).")
@click.option("--key", help="Key file for an encrypted model (decrypted in memory only).")
@click.option("--key-env", help="Environment variable holding the model's key.")
@click.option("--passphrase-env", help="Environment variable holding the model's passphrase.")
@click.option("--verify-with", help="Public key: verify the model against --manifest before loading.")
@click.option("--manifest", help="Signature manifest (from guard sign) covering the model file.")
@click.option("--config", "config_path", type=click.Path(path_type=Path),
              help="Spec file (guard.toml); default: [tool.guard] in ./pyproject.toml.")
@click.option("--name", help="Target name in reports (default: the model file's name).")
@click.option("--unsafe-allow-pickle", is_flag=True, default=None,
              help="Load pickle/joblib files that the scan passes. They can run code: only files you trust.")
@click.option("--progress/--no-progress", "show_progress", default=None,
              help="Progress bars (default: on a terminal outside CI).")
def audit(config_path: Path | None, demo: bool, show_progress: bool | None, **flags: Any) -> int:
    """Attack a model's robustness, judge it against policy packs, write the reports."""
    from guard.audit import AuditPlan, run_audit
    from guard.cli.output import print_findings, print_summary, progress_reporter
    from guard.demo import demo_options
    from guard.reports import check_formats, write_reports

    opts, spec = _options(flags, config_path)
    formats = list(opts.format or DEFAULT_FORMATS)
    check_formats(formats)  # before any attack: a typo or a missing Chromium fails fast
    setup = _policy_setup(opts, spec)
    plan = AuditPlan(
        attacks=opts.attacks or None,
        probe_settings=_probe_settings(opts),
        seed=opts.seed if opts.seed is not None else 0,
    )
    prepared = [_user_target(d) for d in demo_options()] if demo else [_user_target(opts)]
    results: list[AuditResult] = []
    for target, before in prepared:
        with progress_reporter(target.name, show_progress) as progress:
            result = run_audit(target, plan, progress, evidence=before)
        if setup.packs:
            from guard.policies import evaluate

            result.findings = evaluate(result, setup.packs, thresholds=setup.thresholds,
                                       waivers=setup.waivers, baseline=setup.baseline)
        results.append(result)
    print_summary(results)
    if setup.packs:
        print_findings(results, setup.fail_on)
    for path in write_reports(results, Path(opts.out or DEFAULT_OUT), formats):
        click.echo(f"wrote {path}")
    return _exit_code(results, setup)


def _exit_code(results: list[AuditResult], setup: PolicySetup) -> int:
    if not setup.packs or setup.fail_on == "none":
        return int(ExitCode.OK)
    from guard.policies import exit_code_for

    return max(exit_code_for(r.findings, setup.fail_on) for r in results)


def _options(flags: dict[str, Any], config_path: Path | None) -> tuple[AuditOptions, Path | None]:
    given = {k: v for k, v in flags.items() if v not in (None, ())}
    cli_opts = AuditOptions(**given)
    spec = config_path if config_path is not None else discover_pyproject(Path.cwd())
    if spec is None:
        return cli_opts, None
    return cli_opts.merged_over(load_spec(spec)), spec


def _policy_setup(opts: AuditOptions, spec: Path | None) -> PolicySetup:
    fail_on = opts.fail_on or "high"
    if fail_on not in (*SEVERITY_ORDER, "none"):
        raise ConfigError(f"fail_on must be one of {', '.join(SEVERITY_ORDER)} or none, got {fail_on!r}")
    if not opts.policy:
        for flag, value in (("--waivers", opts.waivers), ("--baseline", opts.baseline)):
            if value:
                raise ConfigError(f"{flag} needs at least one --policy to apply to")
        return PolicySetup(fail_on=fail_on)
    from guard.policies import load_baseline, load_pack, load_thresholds, load_waivers

    return PolicySetup(
        packs=[load_pack(p) for p in opts.policy],
        waivers=load_waivers(Path(opts.waivers)) if opts.waivers else None,
        baseline=load_baseline(Path(opts.baseline)) if opts.baseline else None,
        thresholds=load_thresholds(spec) if spec is not None else None,
        fail_on=fail_on,
    )


def _probe_settings(opts: AuditOptions) -> dict[str, Any]:
    keys = ("eps", "norm", "steps", "step_size", "samples", "batch_size")
    return {k: getattr(opts, k) for k in keys if getattr(opts, k) is not None}


def _user_target(opts: AuditOptions) -> tuple[Any, list[Evidence]]:
    from guard.build import build_target, parse_clip
    from guard.cli.supply_chain import prepare_model

    missing = [flag for flag, value in (("--model", opts.model), ("--data", opts.data)) if not value]
    if missing:
        raise click.UsageError(f"missing {' and '.join(missing)} (or use --demo)")
    if opts.clip is None:
        raise ConfigError(
            "declare the input range with --clip LO,HI (e.g. 0,1 for images) or --clip none "
            "for unbounded features; Guard does not guess it"
        )
    clip = parse_clip(opts.clip)
    model_path = Path(opts.model)  # type: ignore[arg-type]
    content, evidence = prepare_model(model_path, opts)
    target = build_target(
        model_path,
        Path(opts.data),  # type: ignore[arg-type]
        arch=opts.arch,
        clip=clip,
        label_column=opts.label_column,
        unsafe_allow_pickle=bool(opts.unsafe_allow_pickle),
        name=opts.name,
        model_bytes=content,
    )
    return target, evidence
