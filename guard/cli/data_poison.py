"""``guard data detect-poison``: score every training sample for signs of poisoning.

The model file goes through the same safe path as ``guard audit``: it is read once, the
artifact probes (signature, encryption, scan) inspect those bytes, and the model is loaded
from them. The command is a measurement: it exits 0 whether or not it flags anything, and 2
on bad input.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    import numpy as np

    from guard.defenses.poison.detect import DetectionResult

SHOWN_INDICES = 20


@click.command("detect-poison")
@click.option("--data", "data_path", required=True, type=click.Path(path_type=Path),
              help="Training data: .npz with x_train, y_train (and x, y), or a .csv read as "
              "training data (with --label-column).")
@click.option("--model", "model_path", required=True, type=click.Path(path_type=Path),
              help="Model file (as for guard audit): .safetensors or .pt state dict with --arch, "
              "TorchScript, .pt2, .skops.")
@click.option("--arch", help="MODULE:CLASS building the network for a state dict (your code).")
@click.option("--label-column", help="The label column of a .csv data file.")
@click.option("--clip", help="Input range 'LO,HI' to check the data against (default: not checked).")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="A short summary, or every score as JSON.")
@click.option("-o", "--out", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the output to this file (atomically) instead of standard output.")
@click.option("--seed", type=click.IntRange(0, 2**32 - 1), default=0, show_default=True,
              help="Seed of the detector's random choices.")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
              help="A detection setting (repeatable): layer=head.1, threshold=4.0, target_alpha=0.01.")
@click.option("--unsafe-allow-pickle", is_flag=True,
              help="Load pickle/joblib files that the scan passes. They can run code: only files you trust.")
@click.option("--known-poison", "known", type=click.Path(path_type=Path),
              help="A .npy mask, one boolean per training sample, True where it is poisoned: report "
              "precision, recall and AUROC against it (a red-team exercise, a pipeline test).")
def detect_poison(data_path: Path, model_path: Path, arch: str | None, label_column: str | None,
                  clip: str | None, fmt: str, out: Path | None, seed: int, sets: tuple[str, ...],
                  unsafe_allow_pickle: bool, known: Path | None) -> int:
    """Flag training samples that look poisoned (backdoor triggers, flipped labels)."""
    from guard.audit import AuditPlan, inspect_file
    from guard.build import build_training_target, parse_clip
    from guard.defenses.poison.detect import detect_poison as detect
    from guard.defenses.poison.probe import PoisonDetection
    from guard.probes import build_settings

    settings = build_settings(PoisonDetection, scoped=_parse_sets(sets))
    scoped = {"supply_chain.scan": {"unsafe_allow_pickle": True}} if unsafe_allow_pickle else {}
    artifact, _ = inspect_file(model_path, AuditPlan(seed=seed, scoped=scoped))
    target = build_training_target(model_path, data_path, clip=parse_clip(clip) if clip else None,
                                   arch=arch, label_column=label_column,
                                   unsafe_allow_pickle=unsafe_allow_pickle, model_bytes=artifact.content)
    x_train, y_train = target.x_eval, target.y_eval
    mask = None
    if known is not None:
        from guard.defenses.poison.scoring import read_mask

        mask = read_mask(known, len(y_train))  # before the detector runs: a bad mask costs nothing
    result = detect(target.model, x_train, y_train, seed=seed, layer=settings.layer,
                    threshold=settings.threshold, alpha=settings.target_alpha)
    if fmt == "json":
        from guard.textsafe import json_text

        document = {"data": str(data_path), "model": str(model_path), "seed": seed, **result.to_dict()}
        if mask is not None:
            from guard.defenses.poison.scoring import against_mask

            document["against_known_poison"] = against_mask(result.scores, result.flagged, mask)
        text = json_text(json.dumps(document, ensure_ascii=False, allow_nan=False, indent=1)) + "\n"
    else:
        text = summary(result, data_path, model_path)
        if mask is not None:
            text += known_summary(result, mask)
    if out is None:
        click.echo(text, nl=False)
    else:
        from guard.fsio import atomic_write_text
        from guard.textsafe import visible

        atomic_write_text(out, text)
        click.echo(f"wrote {visible(str(out))}", err=True)
    return 0


def summary(result: DetectionResult, data_path: Path, model_path: Path) -> str:
    """The text output: what was read, how many were flagged, why, and the top indices."""
    from guard.defenses.poison.detect import TABLE_METHOD
    from guard.stats import format_rate
    from guard.textsafe import visible

    frac = result.flagged_fraction
    lines = [
        f"data: {visible(str(data_path))}   model: {visible(str(model_path))}",
        f"method: {result.method} on {visible(result.representation)}",
        f"flagged: {len(result.flagged)} of {result.n} samples ({format_rate(frac.to_dict())})",
    ]
    units = " (scores are each signal's over its own threshold)" if result.method == TABLE_METHOD else ""
    if result.fpr is None:
        lines.append(f"threshold: {result.threshold:g}{units}, given: no false-positive rate is "
                     "calibrated for it")
    else:
        lines.append(f"threshold: {result.threshold:g}{units}, calibrated to a {result.fpr:.1%} "
                     f"false-positive rate on clean data ({result.calibration})")
    counts = {c.label: c for c in result.per_class}
    if result.suspected_targets:
        named = ", ".join(f"class {t} ({counts[t].flagged} of {counts[t].samples} flagged)"
                          for t in result.suspected_targets)
        lines.append(f"suspected backdoor targets: {named}")
    else:
        lines.append("suspected backdoor targets: none")
    if len(result.flagged):
        top = result.ranked_flags(SHOWN_INDICES)
        more = f" (and {len(result.flagged) - len(top)} more; --format json lists all)" \
            if len(result.flagged) > len(top) else ""
        lines.append(f"most suspicious samples: {', '.join(map(str, top))}{more}")
    lines.append(f"time: {result.seconds:.1f} s")
    return "\n".join(lines) + "\n"


def known_summary(result: DetectionResult, mask: np.ndarray) -> str:
    """Two lines: precision, recall and AUROC against the known-poison mask."""
    from guard.defenses.poison.scoring import against_mask
    from guard.stats import format_rate

    scored = against_mask(result.scores, result.flagged, mask)
    auroc = "n/a" if scored["auroc"] is None else f"{scored['auroc']:.3f}"
    return (f"against the known poison ({scored['poisoned']} samples): precision "
            f"{format_rate(scored['precision'])}, recall {format_rate(scored['recall'])}, AUROC {auroc}\n")


def _parse_sets(items: tuple[str, ...]) -> dict[str, Any]:
    """``KEY=VALUE`` (or ``detect-poison.KEY=VALUE``), VALUE read as a TOML value if it is one."""
    from guard.errors import ConfigError

    out: dict[str, Any] = {}
    for item in items:
        name, sep, raw = item.partition("=")
        key = name.strip().removeprefix("poisoning.detection.").removeprefix("detect-poison.")
        if not sep or not key:
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE, e.g. layer=head.1")
        try:
            value = tomllib.loads(f"v = {raw.strip()}")["v"]
        except tomllib.TOMLDecodeError:
            value = raw.strip()
        out[key.replace("-", "_")] = value
    return out


COMMANDS: list[click.Command] = [detect_poison]
