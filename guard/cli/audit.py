"""``guard audit``: attack a model (or the bundled demo models), judge it, write the reports.

This command only parses options: the audit service (:mod:`guard.audit`) reads the model
file once, runs the artifact probes (signature, encryption, scan) and the attacks, judges
the evidence with the policy packs and decides the gate; the exit code is the outcome's
``return_code``. ``--demo`` judges against the baseline, GDPR and CCPA packs and shows the
findings without gating on them unless ``--fail-on`` is given.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from guard.cli.options import COLUMN_LIST, FAIL_ON, FAIL_ON_HELP, FLOAT_LIST, INT_LIST, NAME_LIST
from guard.config import AuditOptions, discover_pyproject, load_spec
from guard.errors import ConfigError

DEFAULT_OUT = "guard-report"
DEFAULT_FORMATS = ("json", "html")
DEMO_POLICIES = ("baseline", "gdpr", "ccpa")
PII_PROBE = "data.pii_scan"
RESISTANCE_PROBE = "defense.extraction_resistance"
SHARED_SETTINGS = ("eps", "norm", "steps", "step_size", "samples", "batch_size", "trainer", "budgets",
                   "endpoint", "token_env", "access_policy")
"""Options that set the same-named setting of every probe declaring it (the evasion family;
``--trainer`` for the probes that retrain the recipe; ``--budgets``, ``--endpoint`` and
``--token-env`` for the extraction attacks; ``--access-policy`` for the runtime-defense probes)."""


@click.command()
@click.option("--demo", is_flag=True, help="Audit the bundled digits models (trained offline, cached).")
@click.option("--model", help="Model file: .pt/.pth (state dict, with --arch), .safetensors, "
              "TorchScript, .pt2 (torch.export), .skops; add .enc with a key option.")
@click.option("--arch", help="MODULE:CLASS building the network for a state dict (your code).")
@click.option("--data", help="Evaluation data: .npz with x, y (and x_train, y_train) or .csv.")
@click.option("--clip", help="Input range 'LO,HI', or 'none' for unbounded features. Required.")
@click.option("--label-column", help="The label column of a .csv data file.")
@click.option("--train-data", help="Training data for the probes that retrain or inspect it (.npz with "
              "x_train, y_train or x, y; or .csv); default: x_train, y_train of --data.")
@click.option("--trainer", help="MODULE:FUNCTION training a PyTorch model, called as train(x, y, seed) "
              "-> nn.Module (poisoning simulations; scikit-learn models retrain by clone and fit).")
@click.option("--data-manifest", help="A manifest from guard data manifest: verify the training data "
              "against it (file by file, row by row).")
@click.option("--data-manifest-key", help="Public key of the data manifest's signer: its signature "
              "must verify (without it a signed manifest's hashes are checked, not its signature).")
@click.option("--budgets", type=INT_LIST,
              help="Query budgets of the extraction attacks, e.g. 50,100,250,500,1000.")
@click.option("--endpoint", help="Run the extraction attacks against this HTTP endpoint (POST /v1/predict "
              "protocol of guard serve) instead of the model in memory.")
@click.option("--token-env", help="Environment variable holding the endpoint's bearer token.")
@click.option("--pii-data", multiple=True, help="A raw data table (CSV, JSON lines, Parquet) to scan for "
              "personal data (repeatable; default: the audit's data files when they are tables).")
@click.option("--quasi-identifiers", type=COLUMN_LIST, help="Columns that together may identify a person "
              "(age, postcode, ...), for k-anonymity (default: detected from the headers).")
@click.option("--sensitive", help="The sensitive column whose l-diversity the scan reports.")
@click.option("--access-policy", help="The access policy (TOML) the model is served under (guard serve): "
              "its access control, budgets, output hardening and audit log are attacked in process.")
@click.option("--audit-log", help="A deployment's audit log (guard serve --log) to verify as well.")
@click.option("--audit-log-key-env", help="Environment variable holding that log's HMAC key.")
@click.option("--profile", type=click.Choice(["quick", "thorough"]),
              help="quick (default): the default probes; thorough: also the poisoning simulations, "
              "which retrain the model.")
@click.option("--attack", "attacks", multiple=True,
              help="A model probe by id or alias, e.g. pgd (repeatable; `guard probes` lists them; "
              "default: by model type).")
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
@click.option("--fail-on", type=FAIL_ON, help=FAIL_ON_HELP + " Default high; with --demo, never.")
@click.option("--set", "sets", multiple=True, metavar="PROBE.KEY=VALUE",
              help="One probe's setting, e.g. pgd.steps=100 or hopskipjump.queries=2000 (repeatable).")
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
def audit(config_path: Path | None, demo: bool, show_progress: bool | None, sets: tuple[str, ...],
          **flags: Any) -> int:
    """Attack a model's robustness, judge it against policy packs, write the reports."""
    from guard import audit as service
    from guard.cli.output import check_out, print_findings, print_summary, progress_reporter, write_report_set
    from guard.probes import parse_set
    from guard.reports import check_formats

    opts, spec = _options(flags, config_path)
    formats = list(opts.format or DEFAULT_FORMATS)
    check_formats(formats)  # before any attack: a typo, a missing Chromium or a bad --out fails fast
    out = check_out(Path(opts.out or DEFAULT_OUT), formats)
    fail_on = service.parse_fail_on(opts.fail_on, "fail_on", default="never" if demo else "high")
    policy = opts.policy or (DEMO_POLICIES if demo else ())
    setup = service.PolicySetup.load(policy, waivers=opts.waivers, baseline=opts.baseline,
                                     thresholds_file=spec)
    on_command_line = {k for k, v in flags.items() if v not in (None, ()) and k in SHARED_SETTINGS}
    scoped = _scoped(opts, spec, on_command_line)
    for probe_id, values in parse_set(sets).items():
        scoped.setdefault(probe_id, {}).update(values)
    shared = {k: getattr(opts, k) for k in SHARED_SETTINGS if getattr(opts, k) is not None}
    plan = service.AuditPlan(
        attacks=opts.attacks or None, probe_settings=shared, scoped=scoped,
        seed=opts.seed if opts.seed is not None else 0, profile=opts.profile or "quick",
    )
    if demo and "trainer" not in shared and _takes(plan, "trainer"):
        from dataclasses import replace

        from guard.demo import DEMO_TRAINER

        plan = replace(plan, probe_settings={**shared, "trainer": DEMO_TRAINER})
    if demo and "paths" not in scoped.get(PII_PROBE, {}) and _runs(plan, PII_PROBE):
        from dataclasses import replace

        from guard.demo import demo_pii_table

        table = {**scoped.get(PII_PROBE, {}), "paths": (str(demo_pii_table()),)}
        plan = replace(plan, scoped={**scoped, PII_PROBE: table})
    if demo and "access_policy" not in shared and _takes(plan, "access_policy"):
        from dataclasses import replace

        from guard.demo import DEMO_EXTRACTION_BUDGET, demo_access_policy

        resistance = dict(scoped.get(RESISTANCE_PROBE, {}))
        if "budgets" not in shared:
            resistance.setdefault("budgets", (DEMO_EXTRACTION_BUDGET,))
        policy_file = str(demo_access_policy())
        plan = replace(plan, probe_settings={**plan.probe_settings, "access_policy": policy_file},
                       scoped={**plan.scoped, RESISTANCE_PROBE: resistance})
    plan.validate()  # every setting's name and range, before the demo models are even built
    targets = _demo_files() if demo else [_files(opts)]
    outcome = service.audit(targets, plan, setup, fail_on=fail_on,
                            progress=lambda name: progress_reporter(name, show_progress))
    for result in outcome.results:
        for skipped in result.environment.get("skipped_probes", ()):
            click.echo(f"note: {result.target['name']}: {skipped['probe']} not run: {skipped['reason']}",
                       err=True)
    print_summary(outcome.results)
    if outcome.judged:
        print_findings(outcome)
    write_report_set(outcome.results, out, formats)
    return outcome.return_code()


def _runs(plan: Any, probe_id: str) -> bool:
    """Whether the plan runs the probe ``probe_id`` (named, or among the defaults)."""
    from guard.probes import probe_class

    names = plan.attacks or plan.default_model_probes()
    return any(probe_class(name).id == probe_id for name in names)


def _takes(plan: Any, setting: str) -> bool:
    """Whether a model probe the plan runs declares ``setting``."""
    from guard.probes import probe_class, setting_names

    names = plan.attacks or plan.default_model_probes()
    return any(setting in setting_names(probe_class(name)) for name in names)


def _options(flags: dict[str, Any], config_path: Path | None) -> tuple[AuditOptions, Path | None]:
    given = {k: v for k, v in flags.items() if v not in (None, ())}
    cli_opts = AuditOptions(**given)
    spec = config_path if config_path is not None else discover_pyproject(Path.cwd())
    if spec is None:
        return cli_opts, None
    return cli_opts.merged_over(load_spec(spec)), spec


def _scoped(opts: AuditOptions, spec: Path | None,
            given_on_command_line: set[str]) -> dict[str, dict[str, Any]]:
    """The supply-chain options as their probes' settings, over the spec file's [probes.*]
    (whose values yield to the same setting given on the command line: flags win over files)."""
    from guard.probes import scoped_settings

    scoped = scoped_settings(opts.probes or {}, str(spec) if spec is not None else "spec file")
    for values in scoped.values():
        for key in given_on_command_line:
            values.pop(key, None)
    given: dict[str, dict[str, Any]] = {
        "supply_chain.signature": {"verify_with": opts.verify_with, "manifest": opts.manifest},
        "supply_chain.encryption": {"key": opts.key, "key_env": opts.key_env,
                                    "passphrase_env": opts.passphrase_env},
        "supply_chain.scan": {"unsafe_allow_pickle": opts.unsafe_allow_pickle},
        "data.provenance": {"manifest": opts.data_manifest, "public_key": opts.data_manifest_key},
        "data.pii_scan": {"paths": opts.pii_data, "quasi_identifiers": opts.quasi_identifiers,
                          "sensitive": opts.sensitive},
        "defense.audit_log": {"audit_log": opts.audit_log, "log_hmac_key_env": opts.audit_log_key_env},
    }
    for probe_id, values in given.items():
        chosen = {k: v for k, v in values.items() if v is not None}
        if chosen:
            scoped.setdefault(probe_id, {}).update(chosen)
    return scoped


def _files(opts: AuditOptions) -> Any:
    from guard.audit import ModelFiles
    from guard.build import parse_clip

    missing = [flag for flag, value in (("--model", opts.model), ("--data", opts.data)) if not value]
    if missing:
        raise ConfigError(f"missing {' and '.join(missing)} (or use --demo)")
    if opts.clip is None:
        raise ConfigError(
            "declare the input range with --clip LO,HI (e.g. 0,1 for images) or --clip none "
            "for unbounded features; Guard does not guess it"
        )
    return ModelFiles(model=Path(opts.model), data=Path(opts.data),  # type: ignore[arg-type]
                      clip=parse_clip(opts.clip), arch=opts.arch, label_column=opts.label_column,
                      name=opts.name, train_data=Path(opts.train_data) if opts.train_data else None)


def _demo_files() -> list[Any]:
    from guard.demo import demo_options

    return [_files(d) for d in demo_options()]
