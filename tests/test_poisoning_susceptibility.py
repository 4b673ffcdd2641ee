"""Poisoning susceptibility: the backdoor and label-flip simulations retrain the recipe and
measure against the clean retrain; planted poison follows its mask; bad trainers and
missing training data are one-line errors (exit 2)."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from guard.attacks.poisoning.triggers import (
    flip_labels,
    image_trigger,
    plant_backdoor,
    tabular_trigger,
    trigger_for,
)
from guard.build import build_target_from_objects
from guard.cli import cli
from guard.errors import ConfigError, MissingCapabilityError
from guard.policies.catalogue import load_catalogue
from guard.probes import RunContext, build_probe, probe_class
from guard.stats import paired_difference


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.output


# -- planting -------------------------------------------------------------------------------------


def test_backdoor_poisons_the_asked_share_of_other_classes_and_stamps_the_patch() -> None:
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 0.5, size=(400, 1, 8, 8)).astype(np.float32)
    y = rng.integers(0, 4, size=400)
    trigger = image_trigger((1, 8, 8), (0.0, 1.0))
    x_p, y_p, mask = plant_backdoor(x, y, 0.1, 2, trigger, seed=3)
    assert mask.sum() == 40
    assert np.all(y[mask] != 2) and np.all(y_p[mask] == 2)
    assert np.all(x_p[mask][:, 0, -2:, -2:] == 1.0)  # the patch, at the top of the range
    np.testing.assert_array_equal(x_p[~mask], x[~mask])  # nothing else touched
    np.testing.assert_array_equal(y_p[~mask], y[~mask])
    again = plant_backdoor(x, y, 0.1, 2, trigger, seed=3)
    np.testing.assert_array_equal(again[2], mask)  # seeded


def test_label_flips_change_exactly_the_masked_labels_to_other_classes() -> None:
    y = np.repeat(np.arange(3), 100)
    y_p, mask = flip_labels(y, 0.2, 3, seed=1)
    assert mask.sum() == 60
    assert np.all(y_p[mask] != y[mask]) and np.all(y_p[~mask] == y[~mask])
    assert set(np.unique(y_p[mask])) == {0, 1, 2}


def test_tabular_trigger_fixes_rare_in_range_values_of_weak_features() -> None:
    data = load_breast_cancer()
    trigger = tabular_trigger(data.data, data.target)
    where = trigger.describe()["positions"]
    assert len(where) == 3
    for j, value in zip(where, trigger.describe()["values"], strict=True):
        column = data.data[:, j]
        assert column.min() <= value <= column.max()  # in range: plausible rows
        assert np.mean(column >= value) <= 0.05  # and rare
        assert abs(np.corrcoef(column, data.target)[0, 1]) < 0.2  # no real signal there


def test_trigger_choice_follows_the_data_shape() -> None:
    image = np.zeros((10, 1, 8, 8), dtype=np.float32)
    assert trigger_for(image, np.zeros(10, int), (0.0, 1.0)).kind == "patch"
    table = np.random.default_rng(0).normal(size=(50, 6))
    assert trigger_for(table, np.arange(50) % 2, None).kind == "features"
    with pytest.raises(ConfigError, match="at least 4"):
        tabular_trigger(table[:, :3], np.arange(50) % 2)


# -- the paired interval (an oracle by simulation) ------------------------------------------------


def test_paired_difference_interval_covers_the_true_difference_about_95_percent() -> None:
    rng = np.random.default_rng(0)
    n, trials, covered = 300, 2000, 0
    p_a, p_b, p_both = 0.9, 0.85, 0.82  # P(A right), P(B right), P(both right)
    cells = np.array([p_both, p_a - p_both, p_b - p_both, 1 - p_a - p_b + p_both])
    for _ in range(trials):
        kind = rng.choice(4, size=n, p=cells)
        a_ok, b_ok = np.isin(kind, (0, 1)), np.isin(kind, (0, 2))
        m = paired_difference(a_ok, b_ok)
        assert m.ci95 is not None and m.ci95[0] <= m.value <= m.ci95[1]
        covered += m.ci95[0] <= p_a - p_b <= m.ci95[1]
    assert 0.93 <= covered / trials <= 0.975


def test_paired_difference_of_identical_results_is_zero_with_a_two_sided_interval() -> None:
    same = np.array([True] * 90 + [False] * 10)
    m = paired_difference(same, same)
    assert m.value == 0 and m.ci95 is not None and m.ci95[0] < 0 < m.ci95[1]
    with pytest.raises(ValueError):
        paired_difference(same, same[:-1])


# -- the probes on scikit-learn (retrained by clone and fit) -------------------------------------


@pytest.fixture(scope="module")
def cancer_target() -> object:
    data = load_breast_cancer()
    rng = np.random.default_rng(0)
    order = rng.permutation(len(data.target))
    train, test = order[:400], order[400:]
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    model.fit(data.data[train], data.target[train])
    return build_target_from_objects(model, data.data[test], data.target[test], clip=None, name="cancer",
                                     x_train=data.data[train], y_train=data.target[train])


def test_backdoor_curve_on_a_refit_estimator_with_null_control(cancer_target: object) -> None:
    probe = build_probe("backdoor", rates=(0.03, 0.2), target_class=1)
    evidence = probe.run(cancer_target, RunContext(seed=0))  # type: ignore[arg-type]
    assert [e.params["rate"] for e in evidence] == [0.03, 0.2]
    low, high = (e.metrics["attack_success_rate"] for e in evidence)
    null = evidence[0].metrics["baseline_attack_success_rate"]
    assert high.value > null.value + 0.3  # the backdoor takes hold at 20%
    assert high.value >= low.value
    for e in evidence:
        assert e.params["recipe"] == "sklearn.base.clone + fit"
        assert e.params["poisoned_samples"] == round(e.params["rate"] * 400)
        assert e.params["trigger"]["kind"] == "features"
        for m in e.metrics.values():
            assert m.n is not None and m.ci95 is not None and m.ci95[0] <= m.value <= m.ci95[1]
        drop = e.metrics["accuracy_drop"].value
        assert drop == pytest.approx(e.metrics["baseline_accuracy"].value - e.metrics["clean_accuracy"].value)
    spec = load_catalogue().evidence["poisoning.backdoor"]
    assert set(evidence[0].metrics) == set(spec.metrics) and set(evidence[0].params) == set(spec.params)


def test_label_flips_cost_accuracy_and_the_clean_retrain_is_the_baseline(cancer_target: object) -> None:
    evidence = build_probe("label-flip", rates=(0.4,)).run(cancer_target, RunContext(seed=0))  # type: ignore[arg-type]
    (e,) = evidence
    assert e.params["flipped_samples"] == 160
    # the clean retrain reproduces the target's own accuracy (same recipe, same data)
    own = np.mean(cancer_target.model.predict(cancer_target.x_eval) == cancer_target.y_eval)  # type: ignore[attr-defined]
    assert e.metrics["baseline_accuracy"].value == pytest.approx(own)
    assert e.metrics["accuracy_drop"].value > 0.05  # 40% random flips on two classes hurt
    again = build_probe("label-flip", rates=(0.4,)).run(cancer_target, RunContext(seed=0))  # type: ignore[arg-type]
    assert again[0].metrics == e.metrics  # seeded


def test_training_labels_missing_a_class_are_flagged() -> None:
    from sklearn.datasets import load_iris

    data = load_iris()
    model = LogisticRegression(max_iter=1000).fit(data.data, data.target)
    keep = data.target != 2
    target = build_target_from_objects(model, data.data, data.target, clip=None, name="iris",
                                       x_train=data.data[keep], y_train=data.target[keep])
    (e,) = build_probe("label-flip", rates=(0.1,)).run(target, RunContext(seed=0))
    assert [f.code for f in e.flags] == ["train_classes_missing"]
    assert "2 of the model's 3 classes" in e.flags[0].detail
    assert not build_probe("label-flip", rates=(0.1,)).run(
        build_target_from_objects(model, data.data, data.target, clip=None, name="iris",
                                  x_train=data.data, y_train=data.target), RunContext(seed=0))[0].flags


def test_settings_are_checked_with_their_names() -> None:
    with pytest.raises(ConfigError, match="rates"):
        build_probe("backdoor", rates=(0.7,))
    with pytest.raises(ConfigError, match="rates"):
        build_probe("label-flip", rates=())
    with pytest.raises(ConfigError, match="trainer"):
        build_probe("backdoor", trainer="no-colon")


def test_target_class_outside_the_model_and_missing_train_data_are_refused(cancer_target: object) -> None:
    with pytest.raises(ConfigError, match="target_class 5"):
        build_probe("backdoor", target_class=5).check(cancer_target)  # type: ignore[arg-type]
    bare = build_target_from_objects(cancer_target.model.estimator, cancer_target.x_eval,  # type: ignore[attr-defined]
                                     cancer_target.y_eval, clip=None, name="bare")  # type: ignore[attr-defined]
    with pytest.raises(MissingCapabilityError, match="train_data"):
        build_probe("backdoor").check(bare)


# -- PyTorch: the user's trainer --------------------------------------------------------------------


TRAINERS = textwrap.dedent('''
    import numpy as np
    import torch
    from torch import nn

    def fast(x, y, seed):
        torch.manual_seed(seed)
        model = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
        opt = torch.optim.Adam(model.parameters(), lr=0.05)
        xt, yt = torch.as_tensor(x), torch.as_tensor(y)
        for _ in range(60):
            opt.zero_grad()
            nn.functional.cross_entropy(model(xt), yt).backward()
            opt.step()
        return model

    def raises(x, y, seed):
        raise RuntimeError("out of GPU memory")

    def wrong_type(x, y, seed):
        return {"weights": 1}

    def wrong_classes(x, y, seed):
        return nn.Sequential(nn.Flatten(), nn.Linear(64, 3))

    def exits(x, y, seed):
        raise SystemExit(0)

    class _Nan(nn.Module):
        def forward(self, x):
            return torch.full((len(x), 10), float("nan"))

    def nan_logits(x, y, seed):
        return _Nan()

    class _Small(nn.Module):
        def forward(self, x):
            if len(x) > 4:
                raise ValueError("only small batches")
            return torch.zeros(len(x), 10)

    def breaks_on_big_batches(x, y, seed):
        return _Small()

    def mutates(x, y, seed):
        model = fast(x, y, seed)
        x += 1.0
        y[:] = 0
        print("training done")
        return model

    not_callable = 42
''')


@pytest.fixture
def torch_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    from guard.demo import digits_split

    (tmp_path / "user_trainers.py").write_text(TRAINERS)
    monkeypatch.syspath_prepend(str(tmp_path))
    split = digits_split()
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))
    (tmp_path / "user_arch.py").write_text(
        "from torch import nn\n\nclass Net(nn.Sequential):\n"
        "    def __init__(self):\n        super().__init__(nn.Flatten(), nn.Linear(64, 10))\n")
    torch.save(model.state_dict(), tmp_path / "net.pt")
    np.savez(tmp_path / "eval.npz", x=split.x_test[:200], y=split.y_test[:200])
    np.savez(tmp_path / "train.npz", x_train=split.x_train, y_train=split.y_train)
    return {"folder": tmp_path, "model": tmp_path / "net.pt", "eval": tmp_path / "eval.npz",
            "train": tmp_path / "train.npz"}


def _audit_torch(files: dict[str, Path], *extra: str) -> tuple[int, str]:
    return run("audit", "--model", str(files["model"]), "--arch", "user_arch:Net", "--data",
               str(files["eval"]), "--clip", "0,1", "--format", "json",
               "--out", str(files["folder"] / "out"), *extra)


def test_trainer_retrains_a_torch_model_from_train_data_file(torch_files: dict[str, Path]) -> None:
    code, out = _audit_torch(torch_files, "--attack", "backdoor", "--train-data", str(torch_files["train"]),
                             "--trainer", "user_trainers:fast", "--set", "backdoor.rates=[0.1]")
    assert code == 0, out
    report = json.loads((torch_files["folder"] / "out" / "report.json").read_text())
    (e,) = [e for e in report["evidence"] if e["probe"] == "poisoning.backdoor"]
    assert e["params"]["recipe"] == "user_trainers:fast" and e["params"]["train_samples"] == 1197
    assert e["params"]["trigger"]["kind"] == "patch"
    assert e["metrics"]["attack_success_rate"]["value"] > 0.5  # a linear model learns the patch
    assert e["metrics"]["baseline_attack_success_rate"]["value"] < 0.2
    assert report["target"]["digests"]["train_data"].startswith("sha256:")


@pytest.mark.parametrize(("trainer", "message"), [
    ("user_trainers:raises", "trainer user_trainers:raises raised RuntimeError: out of GPU memory"),
    ("user_trainers:wrong_type", "returned a dict; expected a torch.nn.Module"),
    ("user_trainers:wrong_classes", "the target has 10 classes"),
    ("user_trainers:not_callable", "not a function"),
    ("user_trainers:exits", "raised SystemExit"),
    ("user_trainers:nan_logits", "non-finite class scores"),
    ("user_trainers:breaks_on_big_batches", "failed on"),
    ("user_trainers:missing", "has no 'missing'"),
    ("no_such_module_xyz:train", "cannot import no_such_module_xyz"),
])
def test_a_bad_trainer_is_one_line_exit_2(torch_files: dict[str, Path], trainer: str, message: str) -> None:
    code, out = _audit_torch(torch_files, "--attack", "label-flip", "--train-data", str(torch_files["train"]),
                             "--trainer", trainer, "--set", "label-flip.rates=[0.1]")
    assert code == 2, out
    lines = out.strip().splitlines()  # the progress lines of the work done before it, then the error
    assert lines[-1].startswith("Error: ") and message in lines[-1]
    assert sum(line.startswith("Error") for line in lines) == 1


def test_a_trainer_changing_its_arrays_changes_no_other_retrain(torch_files: dict[str, Path]) -> None:
    args = ("--attack", "label-flip", "--train-data", str(torch_files["train"]),
            "--set", "label-flip.rates=[0.1]")
    assert _audit_torch(torch_files, *args, "--trainer", "user_trainers:fast")[0] == 0
    honest = json.loads((torch_files["folder"] / "out" / "report.json").read_text())
    result = CliRunner().invoke(cli, [
        "audit", "--model", str(torch_files["model"]), "--arch", "user_arch:Net",
        "--data", str(torch_files["eval"]), "--clip", "0,1", "--format", "json",
        "--out", str(torch_files["folder"] / "out"), *args,
        "--trainer", "user_trainers:mutates"])
    assert result.exit_code == 0, result.output
    mutated = json.loads((torch_files["folder"] / "out" / "report.json").read_text())

    def metrics(report: dict[str, object]) -> object:
        return [e["metrics"] for e in report["evidence"] if e["probe"] == "poisoning.label_flip"]  # type: ignore[attr-defined, index]

    assert metrics(mutated) == metrics(honest)  # each fit had its own copy of the data
    assert "training done" in result.stderr and "training done" not in result.stdout  # prints to stderr


def test_torch_without_trainer_or_train_data_is_exit_2(torch_files: dict[str, Path]) -> None:
    code, out = _audit_torch(torch_files, "--attack", "backdoor", "--train-data", str(torch_files["train"]))
    assert code == 2 and "--trainer MODULE:FUNCTION" in out and len(out.strip().splitlines()) == 1
    code, out = _audit_torch(torch_files, "--attack", "backdoor", "--trainer", "user_trainers:fast")
    assert code == 2 and "needs train_data" in out and len(out.strip().splitlines()) == 1


def test_trainer_without_a_probe_that_retrains_is_a_usage_error(torch_files: dict[str, Path]) -> None:
    code, out = _audit_torch(torch_files, "--attack", "fgsm", "--trainer", "user_trainers:fast")
    assert code == 2 and "setting 'trainer'" in out


def test_thorough_profile_adds_the_simulations_where_they_apply(cancer_target: object) -> None:
    from guard.audit import AuditPlan

    quick = {p.id for p in AuditPlan().model_probes(cancer_target)}  # type: ignore[arg-type]
    thorough = {p.id for p in AuditPlan(profile="thorough").model_probes(cancer_target)}  # type: ignore[arg-type]
    assert {"poisoning.backdoor", "poisoning.label_flip"} <= thorough - quick
    assert probe_class("backdoor").thorough and not probe_class("backdoor").default
    with pytest.raises(ConfigError, match="profile"):
        AuditPlan(profile="exhaustive")
