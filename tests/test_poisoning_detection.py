"""Poisoned-sample detection: planted poison with a known mask, checked for precision, recall
and AUROC against it, with clean controls; the audit probe's evidence; ``guard data
detect-poison`` on real files; bad input."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from poison_fixtures import backdoored_digits, flipped_table
from sklearn.metrics import roc_auc_score
from torch import nn

from guard.build import build_target_from_objects
from guard.cli import cli
from guard.defenses.poison.detect import DetectionResult, detect_poison, suspected_targets
from guard.defenses.poison.probe import PoisonDetection
from guard.defenses.poison.representation import representation
from guard.defenses.poison.tabular import MarginGate
from guard.defenses.poison.thresholds import (
    CORE_THRESHOLD,
    INPUT_CORE_THRESHOLD,
    MARGIN_LOW,
    MARGIN_THRESHOLD,
)
from guard.errors import ConfigError, DataError
from guard.models.sklearn_adapter import SklearnModel
from guard.models.torch_adapter import TorchModel
from guard.probes import RunContext, build_probe

torch.set_num_threads(1)


def quality(result: DetectionResult, mask: np.ndarray) -> tuple[float, float, float]:
    """Precision, recall and AUROC of the flags and scores against the planted mask."""
    flags = np.zeros(len(mask), dtype=bool)
    flags[result.flagged] = True
    hits = int(np.sum(flags & mask))
    return hits / max(int(flags.sum()), 1), hits / int(mask.sum()), float(roc_auc_score(mask, result.scores))


def flag_rate(result: DetectionResult) -> float:
    return len(result.flagged) / result.n


def cnn_detection(rate: float, seed: int = 0) -> tuple[DetectionResult, np.ndarray]:
    run = backdoored_digits(rate, seed)
    return detect_poison(TorchModel(run.model, 10), run.x_train, run.y_train, seed=seed), run.mask


def svc_on_flat_digits() -> tuple[SklearnModel, np.ndarray, np.ndarray]:
    """The demo's scikit-learn target and its clean training set."""
    from guard.demo import digits_split, train_svc

    split = digits_split(image=False)
    return SklearnModel(train_svc(split)), split.x_train, split.y_train


# -- the digits CNN (the setting: 2x2 trigger, target class 0) ---------------------------


@pytest.mark.parametrize(("rate", "floor"), [(0.10, 0.9), (0.03, 0.8)])
def test_backdoor_found_in_digits_cnn(rate: float, floor: float) -> None:
    result, mask = cnn_detection(rate)
    precision, recall, auroc = quality(result, mask)
    assert precision >= floor and recall >= floor, (precision, recall)
    assert auroc >= 0.99
    assert result.suspected_targets == (0,)
    assert result.threshold == CORE_THRESHOLD and result.fpr == 0.001
    assert "head.1" in result.representation  # the first nn.Linear's input, not the penultimate


def test_clean_digits_cnn_is_hardly_flagged() -> None:
    result, _ = cnn_detection(0.0)
    assert flag_rate(result) <= 0.01
    assert result.suspected_targets == ()


def test_penultimate_layer_misses_the_backdoor() -> None:
    """Why the default layer is the first nn.Linear's input: after it the backdoor is learnt."""
    run = backdoored_digits(0.1, 0)
    result = detect_poison(TorchModel(run.model, 10), run.x_train, run.y_train, layer="head.3")
    assert "head.3" in result.representation
    assert quality(result, run.mask)[1] < 0.5


# -- scikit-learn models and tables ---------------------------------------------------------------


def flips_and_clean(name: str, seed: int) -> tuple[DetectionResult, DetectionResult, np.ndarray]:
    """The tabular rule on a table with 10% flipped labels and on the same table clean."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x, y_flipped, y_true, mask = flipped_table(name, 0.1, seed)
    model = SklearnModel(make_pipeline(StandardScaler(), LogisticRegression()).fit(x, y_flipped))
    return detect_poison(model, x, y_flipped, seed=seed), detect_poison(model, x, y_true, seed=seed), mask


@pytest.mark.parametrize("name", ["breast_cancer", "wine"])
def test_flipped_labels_found_in_tables(name: str) -> None:
    result, clean, mask = flips_and_clean(name, 0)
    precision, recall, auroc = quality(result, mask)
    assert precision >= 0.8 and recall >= 0.8, (precision, recall)
    assert auroc >= 0.95
    assert result.threshold == 1.0 and "not used" in result.representation
    assert result.suspected_targets == ()  # flips land in every class: no backdoor target
    # the noisy table is read at the lower margin threshold, the clean one at the high one
    assert f"exceeds {MARGIN_LOW:g} (the threshold of a noisy table" in result.rule
    assert f"exceeds {MARGIN_THRESHOLD:g} (the threshold of a clean-looking table" in clean.rule
    assert flag_rate(clean) <= 0.01
    assert clean.suspected_targets == ()


def test_margin_gate_opens_only_on_a_noisy_table() -> None:
    gate = MarginGate(high=0.8, low=0.4, low_rate=0.015, alpha=0.001)
    margin = np.full(1000, -0.9)
    margin[:15] = 0.6  # 1.5%: what a clean table may hold above the low threshold
    counted = np.ones(1000, dtype=bool)
    threshold, p = gate.test(margin, counted)
    assert threshold == 0.8 and p > 0.1
    margin[:60] = 0.6  # 6%: a noisy table
    threshold, p = gate.test(margin, counted)
    assert threshold == 0.4 and p < 1e-6
    counted[:50] = False  # rows a trigger signal explains are not counted
    assert gate.test(margin, counted)[0] == 0.8
    assert gate.test(np.full(10, -1.0), np.zeros(10, dtype=bool)) == (0.8, 1.0)


def test_demo_svc_clean_training_set_is_hardly_flagged() -> None:
    model, x, y = svc_on_flat_digits()
    result = detect_poison(model, x, y)
    assert flag_rate(result) <= 0.01
    assert result.suspected_targets == ()


def test_tabular_trigger_found_by_pair_ties() -> None:
    from sklearn.datasets import load_breast_cancer

    from guard.attacks.poisoning.triggers import plant_backdoor, tabular_trigger

    x, y = load_breast_cancer(return_X_y=True)
    x_p, y_p, mask = plant_backdoor(x, y, 0.1, 1, tabular_trigger(x, y), seed=0)
    from sklearn.ensemble import RandomForestClassifier

    model = SklearnModel(RandomForestClassifier(20, random_state=0).fit(x_p, y_p))
    result = detect_poison(model, x_p, y_p)
    precision, recall, _ = quality(result, mask)
    assert precision >= 0.8 and recall >= 0.9, (precision, recall)
    assert result.suspected_targets == (1,)
    # the relabelled rows sit deep in the other class, but their trigger explains them: the
    # table is not read as noisy (which would flag more clean rows)
    assert "the threshold of a clean-looking table" in result.rule


# -- suspected targets ------------------------------------------------------------------------------


def test_flags_everywhere_name_no_target() -> None:
    y = np.repeat(np.arange(4), 100)
    spread = np.zeros(400, dtype=bool)
    spread[::10] = True  # 10 flags in every class: label noise
    assert suspected_targets(y, spread, 4, 0.001, 4)[0] == ()
    one = np.zeros(400, dtype=bool)
    one[:30] = True  # 30 flags in class 0 only
    targets, counts = suspected_targets(y, one, 4, 0.001, 4)
    assert targets == (0,)
    assert [c.flagged for c in counts] == [30, 0, 0, 0]
    few = np.zeros(400, dtype=bool)
    few[:3] = True  # below the minimum count
    assert suspected_targets(y, few, 4, 0.001, 4)[0] == ()


# -- the representation -------------------------------------------------------------------------------


def test_representation_of_an_mlp_is_its_input() -> None:
    mlp = nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 3)).eval()
    x = np.random.default_rng(0).random((20, 1, 8, 8), dtype=np.float32)
    rep = representation(mlp, x)
    assert rep.features.shape == (20, 64) and "raw input" in rep.description
    inner = representation(mlp, x, layer="3")
    assert inner.features.shape == (20, 16) and "'3'" in inner.description
    with pytest.raises(ConfigError, match="not a module"):
        representation(mlp, x, layer="nope")


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")
def test_torchscript_model_is_read_on_its_input() -> None:
    """Hooks cannot see inside TorchScript: the raw input, at the input-space threshold."""
    run = backdoored_digits(0.03, 0)
    scripted = torch.jit.script(run.model)
    result = detect_poison(TorchModel(scripted, 10), run.x_train, run.y_train)
    assert "raw input" in result.representation and result.threshold == INPUT_CORE_THRESHOLD
    precision, recall, _ = quality(result, run.mask)
    assert precision >= 0.8 and recall >= 0.8, (precision, recall)


# -- the audit probe ----------------------------------------------------------------------------------


def test_probe_evidence_matches_its_declaration() -> None:
    run = backdoored_digits(0.1, 0)
    target = build_target_from_objects(run.model, run.x_test, run.y_test, clip=(0.0, 1.0), name="cnn",
                                       x_train=run.x_train, y_train=run.y_train)
    probe = build_probe("detect-poison")
    assert probe.applies_to(target) and PoisonDetection.default
    (evidence,) = probe.run(target, RunContext(seed=0))
    emits = PoisonDetection.emits
    assert evidence.probe == "poisoning.detection" and evidence.seed == 0 and evidence.duration_s > 0
    assert set(evidence.metrics) == set(emits.metrics) and set(evidence.params) == set(emits.params)
    p = evidence.params
    assert p["suspected_targets"] == [0] and p["samples"] == len(run.y_train) and p["fpr"] == 0.001
    assert len(p["flagged_indices"]) == 100 and p["flagged_truncated"] is True
    frac = evidence.metrics["suspicious_fraction"]
    assert frac.n == len(run.y_train) and frac.ci95 is not None and frac.ci95[0] > 0.05
    assert evidence.metrics["flagged"].value > 100
    assert evidence.metrics["backdoor_detected"].value == 1.0


@pytest.mark.parametrize("bad", [{"threshold": -1.0}, {"target_alpha": 0.9}, {"layer": " "}, {"steps": 3}])
def test_probe_rejects_bad_settings(bad: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        build_probe("poisoning.detection", **bad)


def test_api_rejects_mismatched_labels() -> None:
    model, x, y = svc_on_flat_digits()
    with pytest.raises(DataError, match="one label per sample"):
        detect_poison(model, x, y[:-3])
    with pytest.raises(DataError, match="outside"):
        detect_poison(model, x, y + 5)
    with pytest.raises(ConfigError, match="only a PyTorch model"):
        detect_poison(model, x, y, layer="head.1")


# -- guard data detect-poison ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    import skops.io
    from safetensors.torch import save_file

    folder = tmp_path_factory.mktemp("poison")
    run = backdoored_digits(0.1, 0)
    model, x_flat, y_flat = svc_on_flat_digits()
    paths = {name: folder / name for name in
             ("cnn.safetensors", "svc.skops", "poisoned.npz", "flat.npz", "no_train.npz", "short.npz",
              "train_only.npz", "train.csv")}
    save_file({k: v.contiguous() for k, v in run.model.state_dict().items()}, str(paths["cnn.safetensors"]))
    skops.io.dump(model.estimator, paths["svc.skops"])
    np.savez(paths["poisoned.npz"], x=run.x_test, y=run.y_test, x_train=run.x_train, y_train=run.y_train)
    np.savez(paths["flat.npz"], x=x_flat[:50], y=y_flat[:50], x_train=x_flat, y_train=y_flat)
    np.savez(paths["no_train.npz"], x=run.x_test, y=run.y_test)
    np.savez(paths["train_only.npz"], x_train=x_flat, y_train=y_flat)
    with open(paths["train.csv"], "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow([*(f"p{i}" for i in range(x_flat.shape[1])), "label"])
        writer.writerows([*row, int(label)] for row, label in zip(x_flat, y_flat, strict=True))
    np.savez(paths["short.npz"], x=run.x_test, y=run.y_test, x_train=run.x_train, y_train=run.y_train[:-7])
    return paths


CNN = ("--arch", "guard.demo:DigitsCNN")


def detect(files: dict[str, Path], data: str, model: str, *extra: str) -> tuple[int, str]:
    args = ["data", "detect-poison", "--data", str(files[data]), "--model", str(files[model]), *extra]
    result = CliRunner().invoke(cli, args)
    return result.exit_code, result.output


def test_cli_json_on_a_backdoored_cnn(files: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    code, text = detect(files, "poisoned.npz", "cnn.safetensors", *CNN, "--format", "json", "-o", str(out))
    assert code == 0, text
    doc = json.loads(out.read_text())
    assert {"flagged", "scores", "suspected_targets", "threshold", "fpr", "method", "representation",
            "n", "flagged_fraction", "calibration"} <= set(doc)
    run = backdoored_digits(0.1, 0)
    assert doc["n"] == len(doc["scores"]) == len(run.y_train)
    assert doc["suspected_targets"] == [0] and doc["fpr"] == 0.001
    assert set(doc["flagged_fraction"]) == {"value", "n", "ci95"}
    mask = np.zeros(doc["n"], dtype=bool)
    mask[doc["flagged"]] = True
    assert np.sum(mask & run.mask) >= 0.9 * run.mask.sum()
    assert all(np.isfinite(doc["scores"]))


def test_cli_text_on_the_demo_svc(files: dict[str, Path]) -> None:
    code, text = detect(files, "flat.npz", "svc.skops")
    assert code == 0, text
    assert "suspected backdoor targets: none" in text and "false-positive rate" in text
    assert "of 1197 samples" in text


def test_cli_scores_against_a_known_poison_mask(files: dict[str, Path], tmp_path: Path) -> None:
    run = backdoored_digits(0.1, 0)
    np.save(tmp_path / "mask.npy", run.mask)
    code, text = detect(files, "poisoned.npz", "cnn.safetensors", *CNN, "--format", "json",
                        "--known-poison", str(tmp_path / "mask.npy"))
    assert code == 0, text
    scored = json.loads(text)["against_known_poison"]
    assert scored["poisoned"] == 120 and scored["precision"]["value"] >= 0.9
    assert scored["recall"]["value"] >= 0.9 and scored["auroc"] >= 0.99
    assert scored["recall"]["n"] == 120 and len(scored["recall"]["ci95"]) == 2
    code, text = detect(files, "poisoned.npz", "cnn.safetensors", *CNN,
                        "--known-poison", str(tmp_path / "mask.npy"))
    assert code == 0 and "against the known poison (120 samples): precision" in text


@pytest.mark.parametrize(("mask", "message"), [
    (np.zeros(10, dtype=bool), "the mask has 10 entries, the training set 1197 samples"),
    (np.zeros((1197, 2), dtype=bool), "1-D array"),
    (np.full(1197, 0.5), "booleans or 0/1"),
])
def test_cli_bad_known_poison_mask_is_one_line_exit_2(files: dict[str, Path], tmp_path: Path,
                                                      mask: np.ndarray, message: str) -> None:
    np.save(tmp_path / "mask.npy", mask)
    code, text = detect(files, "poisoned.npz", "cnn.safetensors", *CNN,
                        "--known-poison", str(tmp_path / "mask.npy"))
    assert code == 2 and message in text and len(text.strip().splitlines()) == 1, text


@pytest.mark.parametrize("data", ["train_only.npz", "train.csv"])
def test_cli_reads_a_training_set_alone(files: dict[str, Path], data: str) -> None:
    code, text = detect(files, data, "svc.skops", "--label-column", "label", "--format", "json")
    assert code == 0, text
    doc = json.loads(text)
    assert doc["n"] == 1197 and doc["suspected_targets"] == []


@pytest.mark.parametrize(("data", "message"), [("no_train.npz", "has no x_train/y_train"),
                                               ("short.npz", "y_train")])
def test_cli_bad_data_is_one_line_exit_2(files: dict[str, Path], data: str, message: str) -> None:
    code, text = detect(files, data, "cnn.safetensors", *CNN)
    assert code == 2
    assert message in text and len(text.strip().splitlines()) == 1


def test_cli_bad_setting_exit_2(files: dict[str, Path]) -> None:
    code, text = detect(files, "poisoned.npz", "cnn.safetensors", *CNN, "--set", "threshold=-3")
    assert code == 2 and "threshold" in text


# -- thorough: more seeds --------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_digits_cnn_over_seeds(seed: int) -> None:
    for rate, floor in ((0.10, 0.9), (0.03, 0.8)):
        result, mask = cnn_detection(rate, seed)
        precision, recall, auroc = quality(result, mask)
        assert precision >= floor and recall >= floor and auroc >= 0.99, (rate, precision, recall)
        assert result.suspected_targets == (0,)
    clean, _ = cnn_detection(0.0, seed)
    assert flag_rate(clean) <= 0.01 and clean.suspected_targets == ()


WINE_6 = pytest.mark.xfail(
    reason="recall 14/18: four flips, all class-1 wines (which lie between classes 0 and 2) "
           "relabelled 0, stay unflagged, one at a negative margin and three at 0.40-0.45, just "
           "under the noisy-table threshold", strict=False)


@pytest.mark.slow
@pytest.mark.parametrize(("name", "seed"), [
    pytest.param(name, seed, marks=WINE_6 if (name, seed) == ("wine", 6) else ())
    for name in ("breast_cancer", "wine") for seed in range(1, 10)])
def test_table_flips_over_seeds(name: str, seed: int) -> None:
    result, clean, mask = flips_and_clean(name, seed)
    precision, recall, auroc = quality(result, mask)
    assert precision >= 0.8 and recall >= 0.8 and auroc >= 0.95, (precision, recall)
    assert flag_rate(clean) <= 0.01 and clean.suspected_targets == ()
