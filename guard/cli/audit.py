"""``guard audit``: attack a model (or the bundled demo models) and write the reports."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from guard.cli.options import FLOAT_LIST, NAME_LIST
from guard.config import AuditOptions, discover_pyproject, load_spec
from guard.errors import ConfigError
from guard.evidence import AuditResult

DEFAULT_OUT = "guard-report"
DEFAULT_FORMATS = ("json", "html")


@click.command()
@click.option("--demo", is_flag=True, help="Audit the bundled digits models (trained offline, cached).")
@click.option("--model", help="Model file: .pt/.pth (state dict, with --arch), .safetensors, "
              "TorchScript, .pt2 (torch.export), .skops.")
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
@click.option("--format", "format", type=NAME_LIST, help="Report formats: json,html (default both).")
@click.option("--config", "config_path", type=click.Path(path_type=Path),
              help="Spec file (guard.toml); default: [tool.guard] in ./pyproject.toml.")
@click.option("--name", help="Target name in reports (default: the model file's name).")
@click.option("--unsafe-allow-pickle", is_flag=True, default=None,
              help="Load pickle/joblib files. They can run code: only for files you trust.")
@click.option("--progress/--no-progress", "show_progress", default=None,
              help="Progress bars (default: on a terminal outside CI).")
def audit(config_path: Path | None, demo: bool, show_progress: bool | None, **flags: Any) -> None:
    """Attack a model's robustness and write JSON and HTML evidence."""
    from guard.audit import AuditPlan, run_audit
    from guard.cli.output import print_summary, progress_reporter
    from guard.reports import write_reports

    opts = _options(flags, config_path)
    plan = AuditPlan(
        attacks=opts.attacks or None,
        probe_settings=_probe_settings(opts),
        seed=opts.seed if opts.seed is not None else 0,
    )
    targets = _demo_targets() if demo else [_user_target(opts)]
    out_dir = Path(opts.out or DEFAULT_OUT)
    results: list[AuditResult] = []
    for target in targets:
        with progress_reporter(target.name, show_progress) as progress:
            results.append(run_audit(target, plan, progress))
    print_summary(results)
    written = write_reports(results, out_dir, list(opts.format or DEFAULT_FORMATS))
    for path in written:
        click.echo(f"wrote {path}")


def _options(flags: dict[str, Any], config_path: Path | None) -> AuditOptions:
    given = {k: v for k, v in flags.items() if v not in (None, ())}
    cli_opts = AuditOptions(**given)
    spec = config_path if config_path is not None else discover_pyproject(Path.cwd())
    if spec is None:
        return cli_opts
    return cli_opts.merged_over(load_spec(spec))


def _probe_settings(opts: AuditOptions) -> dict[str, Any]:
    keys = ("eps", "norm", "steps", "step_size", "samples", "batch_size")
    return {k: getattr(opts, k) for k in keys if getattr(opts, k) is not None}


def _user_target(opts: AuditOptions) -> Any:
    from guard.build import build_target, parse_clip

    missing = [flag for flag, value in (("--model", opts.model), ("--data", opts.data)) if not value]
    if missing:
        raise click.UsageError(f"missing {' and '.join(missing)} (or use --demo)")
    if opts.clip is None:
        raise ConfigError(
            "declare the input range with --clip LO,HI (e.g. 0,1 for images) or --clip none "
            "for unbounded features; Guard does not guess it"
        )
    return build_target(
        Path(opts.model),  # type: ignore[arg-type]
        Path(opts.data),  # type: ignore[arg-type]
        arch=opts.arch,
        clip=parse_clip(opts.clip),
        label_column=opts.label_column,
        unsafe_allow_pickle=bool(opts.unsafe_allow_pickle),
        name=opts.name,
    )


def _demo_targets() -> list[Any]:
    from guard.demo import demo_targets

    return demo_targets()
