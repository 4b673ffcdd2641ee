"""Model extraction: fidelity rises with the query budget; Guard's copy is ART's CopycatCNN
and KnockoffNets run directly; probabilities are softmaxed, never logits; the copy of a
linear model is near perfect and a copy trained on random answers is at chance; the HTTP
endpoint gives the same evidence as the model in memory, a query budget (HTTP 429) stops
the querying; every bad input is one line and the token appears nowhere."""

from __future__ import annotations

import json
import random
import socket
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import skops.io
import torch
from click.testing import CliRunner
from extraction_server import TOKEN, Behaviour, serving
from sklearn.linear_model import LogisticRegression

from guard.attacks.extraction import endpoint as endpoint_module
from guard.attacks.extraction.endpoint import EndpointError
from guard.attacks.extraction.probes import DEFAULT_BUDGETS, MIN_STEPS
from guard.attacks.extraction.queries import (
    LocalOracle,
    checked_probabilities,
    default_budgets,
    epochs_for,
    query_split,
)
from guard.attacks.extraction.surrogate import Recipe, copy_seed, reinitialised, steal
from guard.build import build_target_from_objects
from guard.cli import cli
from guard.demo import DigitsCNN, digits_split, train_digits
from guard.errors import ConfigError
from guard.evidence import Evidence
from guard.policies.catalogue import load_catalogue
from guard.probes import RunContext, build_probe, probe_class
from guard.target import Target

FAST = {"epochs": 3}  # small budgets below train for MIN_STEPS steps anyway


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread() -> Any:
    """One intra-op thread: on a shared 2-core machine two spinning threads per process are slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def image() -> Any:
    return digits_split(image=True)


@pytest.fixture(scope="module")
def flat() -> Any:
    return digits_split(image=False)


@pytest.fixture(scope="module")
def cnn_target(image: Any) -> Target:
    """The demo's digits CNN (its recipe, fewer epochs: about 97% accurate)."""
    model = train_digits(image.x_train, image.y_train, seed=0, epochs=6)
    return build_target_from_objects(model, image.x_test, image.y_test, clip=(0.0, 1.0), name="cnn",
                                     x_train=image.x_train, y_train=image.y_train)


@pytest.fixture(scope="module")
def linear(flat: Any) -> LogisticRegression:
    return LogisticRegression(max_iter=2000).fit(flat.x_train, flat.y_train)


@pytest.fixture(scope="module")
def lr_target(flat: Any, linear: LogisticRegression) -> Target:
    return build_target_from_objects(linear, flat.x_test, flat.y_test, clip=(0.0, 1.0), name="lr",
                                     x_train=flat.x_train, y_train=flat.y_train)


def run(name: str, target: Target, seed: int = 0, **settings: Any) -> list[Evidence]:
    return build_probe(name, **settings).run(target, RunContext(seed=seed))


def by_budget(evidence: list[Evidence]) -> dict[int, Evidence]:
    return {e.params["budget"]: e for e in evidence}


def one_line(message: str) -> str:
    assert "\n" not in message and TOKEN not in message, message
    return message


# -- the measurement ------------------------------------------------------------------------------


def test_fidelity_rises_with_the_budget_on_the_digits_cnn(cnn_target: Target) -> None:
    evidence = run("copycat", cnn_target)  # the quick default: 50, 250, 1000 label queries
    assert [e.params["budget"] for e in evidence] == list(DEFAULT_BUDGETS)
    fidelity = [e.metrics["fidelity"] for e in evidence]
    values = [m.value for m in fidelity]
    assert values == sorted(values) and len(set(values)) == len(values), values
    assert fidelity[-1].ci95 is not None and fidelity[0].ci95 is not None
    assert fidelity[-1].ci95[0] > fidelity[0].ci95[1]  # the rise is beyond the intervals
    assert values[-1] >= 0.95  # the issue measured 0.99 at 1,000 label queries
    for e in evidence:
        assert e.metrics["queries"].value == e.params["budget"]
        assert e.metrics["fidelity"].n == len(cnn_target.y_eval)  # held out: the evaluation data
        assert e.params["pool"] == len(cnn_target.x_train) and e.params["source"] == "model"
        assert e.params["surrogate"].startswith("DigitsCNN")


@pytest.mark.parametrize("output", ["labels", "probabilities"])
def test_guard_copy_is_art_run_directly_on_the_same_queries(cnn_target: Target, output: str) -> None:
    """ART's attack against ART's BlackBoxClassifier of the target's network (its arg-max one-hot,
    or its softmax), the thief a DigitsCNN built anew under the copy's seed: the same copy,
    prediction for prediction. (With a PyTorchClassifier victim ART's predict starts a torch
    DataLoader, which draws one number from torch's global generator and so shifts the
    thief's training shuffle: that copy differs in a prediction or two.)"""
    from art.attacks.extraction import CopycatCNN, KnockoffNets
    from art.estimators.classification import BlackBoxClassifier, PyTorchClassifier

    budget, seed = 60, 3
    split = query_split(cnn_target, seed, 10_000)
    x = split.pool[:budget]
    epochs = epochs_for(budget, 3, 64, MIN_STEPS)
    recipe = Recipe(epochs=epochs, batch_size=64, learning_rate=2e-3, architecture="auto")
    answers = LocalOracle(cnn_target.model).ask(x, output, lambda *_: None)  # type: ignore[arg-type]
    guard_copy = steal(cnn_target, answers, output, recipe, copy_seed(seed, budget))  # type: ignore[arg-type]

    module = cnn_target.model.torch_module()
    assert module is not None

    def network(q: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            logits = module(torch.as_tensor(q))
        if output == "labels":
            return np.eye(10, dtype=np.float32)[logits.argmax(dim=1).numpy()]
        # the model's probabilities as Guard takes them in, checked and renormalised: soft
        # targets train the copy, so a softmax computed here instead (a last bit apart) differs
        return checked_probabilities(np.asarray(cnn_target.model.predict_proba(q)).tolist(), len(q), 10)

    # each query answered once, as the model answered it in one batch: ART shuffles the inputs
    # before it asks, and a network's output can differ in its last bit with the batch around
    rows = np.ascontiguousarray(x, dtype=np.float32)
    answered = {row.tobytes(): a for row, a in zip(rows, network(rows), strict=True)}
    victim = BlackBoxClassifier(lambda q: np.stack([answered[r.tobytes()] for r in q.astype(np.float32)]),
                                (1, 8, 8), 10, clip_values=(0.0, 1.0))
    s = copy_seed(seed, budget)
    random.seed(s), np.random.seed(s), torch.manual_seed(s)
    fresh = DigitsCNN()
    thief = PyTorchClassifier(fresh, torch.nn.CrossEntropyLoss(), (1, 8, 8), 10, clip_values=(0.0, 1.0),
                              optimizer=torch.optim.Adam(fresh.parameters(), lr=2e-3))
    common = {"batch_size_fit": 64, "nb_epochs": epochs, "nb_stolen": budget}
    attack = (CopycatCNN(victim, **common) if output == "labels" else
              KnockoffNets(victim, sampling_strategy="random", use_probability=True, verbose=False, **common))
    direct = attack.extract(x, thieved_classifier=thief).predict(split.held_out).argmax(axis=1)
    np.testing.assert_array_equal(guard_copy.predict(split.held_out), direct)

    probe = "copycat" if output == "labels" else "knockoff"
    [ev] = run(probe, cnn_target, seed=seed, budgets=(budget,), **FAST)
    reference = cnn_target.model.predict(split.held_out)
    assert ev.metrics["fidelity"].value == np.mean(direct == reference)
    assert ev.metrics["accuracy"].value == np.mean(direct == split.held_out_labels)


def test_knockoff_trains_on_softmax_probabilities_never_logits(cnn_target: Target,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """ART's PyTorchClassifier.predict gives logits; the copy must be fitted to their softmax."""
    from art.estimators.classification import PyTorchClassifier

    from guard.attacks.evasion.art_adapter import torch_classifier

    probe_x = cnn_target.x_train[:20]
    logits = torch_classifier(cnn_target, 20).predict(probe_x)
    assert not np.allclose(logits.sum(axis=1), 1.0, atol=0.05) or (logits < 0).any()  # the trap is real

    seen: list[tuple[np.ndarray, np.ndarray]] = []
    fit = PyTorchClassifier.fit

    def spy(self: Any, x: np.ndarray, y: np.ndarray, *args: Any, **kwargs: Any) -> None:
        seen.append((np.array(x), np.array(y)))
        fit(self, x, y, *args, **kwargs)

    monkeypatch.setattr(PyTorchClassifier, "fit", spy)
    run("knockoff", cnn_target, budgets=(40,), **FAST)
    [(x, y)] = seen
    assert y.shape == (40, 10) and (y >= 0).all()
    np.testing.assert_allclose(y.sum(axis=1), 1.0, atol=1e-5)
    module = cnn_target.model.torch_module()
    assert module is not None
    with torch.no_grad():
        expected = torch.softmax(module(torch.as_tensor(x)), dim=1).numpy()
    np.testing.assert_allclose(y, expected, atol=1e-5)
    assert not (y == y.max(axis=1, keepdims=True)).all()  # soft targets, not one-hot labels


@pytest.mark.parametrize("probe", ["copycat", "knockoff"])
def test_a_copy_of_a_linear_model_is_near_perfect(lr_target: Target, probe: str) -> None:
    [ev] = run(probe, lr_target, budgets=(1000,))
    assert ev.metrics["fidelity"].value >= 0.97, ev.metrics["fidelity"]
    assert ev.params["surrogate"].startswith("mlp(")


def test_a_copy_of_random_answers_is_at_chance(lr_target: Target) -> None:
    """The null control: an endpoint answering uniformly random labels teaches nothing."""
    rng = np.random.default_rng(0)

    def random_labels(x: np.ndarray, output: str) -> dict[str, Any]:
        return {"labels": rng.integers(0, 10, len(x)).tolist()}

    with serving(lr_target.model, Behaviour(answer=random_labels, token=None)) as server:
        [ev] = run("copycat", lr_target, budgets=(500,), endpoint=server.url, **FAST)
    fidelity = ev.metrics["fidelity"]
    assert fidelity.ci95 is not None and fidelity.ci95[0] < 0.15 and fidelity.value < 0.2, fidelity
    assert {f.code for f in ev.flags} == {"endpoint_mismatch", "no_better_than_constant"}


def test_seeded_reproducible_and_global_state_untouched(lr_target: Target) -> None:
    before = random.getstate(), np.random.get_state()[1].copy(), torch.random.get_rng_state().clone()
    first = [e.to_dict() for e in run("knockoff", lr_target, seed=5, budgets=(30, 90), **FAST)]
    after = random.getstate(), np.random.get_state()[1], torch.random.get_rng_state()
    assert before[0] == after[0] and np.array_equal(before[1], after[1]) and torch.equal(before[2], after[2])
    again = [e.to_dict() for e in run("knockoff", lr_target, seed=5, budgets=(30, 90), **FAST)]
    other = [e.to_dict() for e in run("knockoff", lr_target, seed=6, budgets=(30, 90), **FAST)]
    for d in first + again + other:
        d.pop("duration_s")
    assert first == again
    assert first != other


def test_the_copy_leaves_the_target_untouched(cnn_target: Target) -> None:
    module = cnn_target.model.torch_module()
    assert module is not None
    weights = {k: v.clone() for k, v in module.state_dict().items()}
    run("copycat", cnn_target, budgets=(30,), **FAST)
    assert all(torch.equal(weights[k], v) for k, v in module.state_dict().items())
    assert not any(p.requires_grad for p in module.parameters())


def test_architecture_falls_back_to_an_mlp(cnn_target: Target) -> None:
    class Odd(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.scale = torch.nn.Parameter(torch.ones(1))  # no layer can reset it
            self.linear = torch.nn.Linear(64, 10)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            out: torch.Tensor = self.linear(x.flatten(1)) * self.scale
            return out

    assert reinitialised(Odd()) is None
    fresh = reinitialised(torch.nn.Linear(4, 2))
    assert fresh is not None and all(p.requires_grad for p in fresh.parameters())
    [ev] = run("copycat", cnn_target, budgets=(30,), architecture="mlp", **FAST)
    assert ev.params["surrogate"].startswith("mlp(")


def test_evidence_matches_emits_and_the_catalogue(lr_target: Target) -> None:
    catalogue = load_catalogue().evidence
    for name in ("copycat", "knockoff"):
        cls = probe_class(name)
        spec = catalogue[cls.id]
        assert set(spec.metrics) == set(cls.emits.metrics) and tuple(spec.key) == ("budget",)
        for ev in run(name, lr_target, budgets=(20,), **FAST):
            assert ev.probe == cls.id
            assert set(ev.params) <= set(cls.emits.params) and set(cls.emits.key) <= set(ev.params)
            assert set(ev.metrics) == {"fidelity", "accuracy", "target_accuracy", "queries"}
            assert {f.code for f in ev.flags} <= set(cls.emits.flags)
            for rate in ("fidelity", "accuracy", "target_accuracy"):
                assert ev.metrics[rate].n == len(lr_target.y_eval) and ev.metrics[rate].ci95 is not None
            assert ev.params["output"] == ("labels" if name == "copycat" else "probabilities")
    assert probe_class("extraction") is probe_class("copycat")


# -- the query pool and budgets ------------------------------------------------------------------


def test_without_training_data_the_pool_and_held_out_halves_are_disjoint(flat: Any, linear: Any) -> None:
    target = build_target_from_objects(linear, flat.x_test[:200], flat.y_test[:200], clip=(0.0, 1.0),
                                       name="lr")
    split = query_split(target, 0, 10_000)
    assert len(split.pool) == 100 and len(split.held_out) == 100
    rows = {r.tobytes() for r in split.held_out}
    assert not any(r.tobytes() in rows for r in split.pool)
    evidence = run("copycat", target, **FAST)  # the default budgets, cut to the pool
    assert [e.params["budget"] for e in evidence] == [50, 100]
    assert evidence[0].params["pool"] == 100 and evidence[0].metrics["fidelity"].n == 100
    with pytest.raises(ConfigError, match=r"budget 250 is larger than the query pool of 100 inputs"):
        build_probe("copycat", budgets=(50, 250)).check(target)


def test_default_budgets_fit_the_pool() -> None:
    assert default_budgets(5000, DEFAULT_BUDGETS) == (50, 250, 1000)
    assert default_budgets(300, DEFAULT_BUDGETS) == (50, 250, 300)
    assert default_budgets(20, DEFAULT_BUDGETS) == (20,)
    assert epochs_for(1000, 30, 64, 200) == 30 and epochs_for(50, 30, 64, 200) == 200


def test_a_budget_larger_than_the_pool_is_one_line(lr_target: Target) -> None:
    with pytest.raises(ConfigError) as caught:
        build_probe("knockoff", budgets=(100, 5000)).check(lr_target)
    message = one_line(str(caught.value))
    assert "budget 5000" in message and "1197" in message and "training inputs" in message


@pytest.mark.parametrize(("settings", "message"), [
    ({"budgets": (0,)}, "budgets must be a positive integer"),
    ({"budgets": (-5, 10)}, "budgets must be a positive integer"),
    ({"budgets": []}, "budgets: give at least one"),
    ({"budgets": (10, 10)}, "each budget once"),
    ({"budgets": tuple(range(1, 40))}, "at most 32"),
    ({"budgets": ["many"]}, "budgets must be an integer"),
    ({"epochs": 0}, "epochs must be"),
    ({"fit_batch_size": 10**9}, "fit_batch_size must be"),
    ({"learning_rate": float("nan")}, "learning_rate must be"),
    ({"architecture": "resnet"}, "architecture must be one of"),
    ({"endpoint": "ftp://host/x"}, "http:// or https://"),
    ({"endpoint": "127.0.0.1:8000/v1/predict"}, "http:// or https://"),
    ({"endpoint": "http:///v1/predict"}, "no host"),
    ({"endpoint": "http://user:pw@host/v1"}, "credentials"),
    ({"endpoint": "http://host:99999/v1"}, "not a valid URL"),
    ({"endpoint": "http://host/a b"}, "without spaces"),
    ({"token_env": "GUARD_TOKEN"}, "no endpoint is given"),
    ({"endpoint": "http://127.0.0.1/v1", "token_env": "BAD-NAME"}, "token_env must name"),
    ({"timeout": 0}, "timeout must be"),
])
def test_bad_settings_are_one_line_errors_naming_the_setting(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        build_probe("copycat", **settings)
    assert str(caught.value).startswith("extraction.copycat")
    one_line(str(caught.value))


def test_checked_probabilities_renormalise_hardened_rows_and_refuse_logits() -> None:
    top1 = checked_probabilities([[0.0, 0.6, 0.0]], 1, 3)  # a top-1 output: the rest zeroed
    np.testing.assert_allclose(top1, [[0.0, 1.0, 0.0]])
    rounded = checked_probabilities([[0.34, 0.33, 0.34]], 1, 3)  # rounding may add a little
    np.testing.assert_allclose(rounded.sum(), 1.0, atol=1e-6)
    with pytest.raises(ValueError, match="logits"):
        checked_probabilities([[-2.0, 3.5, 0.1]], 1, 3)


# -- the endpoint ----------------------------------------------------------------------------------


@pytest.fixture
def token(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("GUARD_TEST_TOKEN", TOKEN)
    return "GUARD_TEST_TOKEN"


@pytest.mark.parametrize("probe", ["copycat", "knockoff"])
def test_endpoint_gives_the_evidence_of_the_model_in_memory(lr_target: Target, token: str, probe: str,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    settings = {"budgets": (40, 100), "query_batch_size": 32, **FAST}
    local = run(probe, lr_target, **settings)
    with serving(lr_target.model) as server:
        remote = run(probe, lr_target, endpoint=server.url, token_env=token, **settings)
    assert server.answered == 100 and set(server.seen) == {f"Bearer {TOKEN}"}  # asked once, for the largest
    for here, there in zip(local, remote, strict=True):
        assert there.params["source"] == "endpoint" and there.params["endpoint"] == server.url
        assert there.metrics["fidelity"] == here.metrics["fidelity"]
        assert there.metrics["accuracy"] == here.metrics["accuracy"]
        assert there.metrics["refused"].value == 0 and not there.flags
    text = json.dumps([e.to_dict() for e in remote]) + caplog.text
    assert TOKEN not in text


def test_a_query_budget_stops_the_querying_and_is_counted(lr_target: Target, token: str) -> None:
    with serving(lr_target.model, Behaviour(budget=100)) as server:
        evidence = by_budget(run("copycat", lr_target, budgets=(50, 150), endpoint=server.url,
                                 token_env=token, query_batch_size=40, **FAST))
    # 40 + 40; the third batch of 40 was refused with 429, so a batch of 20 was asked and answered,
    # then one of 10 refused, 5, 2 and 1: the budget is used to the last query
    assert server.answered == 100
    assert evidence[50].metrics["queries"].value == 50 and evidence[50].metrics["refused"].value == 0
    assert not evidence[50].flags
    capped = evidence[150]
    assert capped.metrics["queries"].value == 100 and capped.metrics["refused"].value == 50
    assert [f.code for f in capped.flags] == ["query_refused"]
    assert "100 of its 150" in capped.flags[0].detail
    assert capped.metrics["fidelity"].n == len(lr_target.y_eval)  # still measured: on what was answered


def test_a_budget_smaller_than_one_batch_is_still_used(lr_target: Target, token: str) -> None:
    with serving(lr_target.model, Behaviour(budget=120)) as server:
        [ev] = run("copycat", lr_target, budgets=(300,), endpoint=server.url, token_env=token, **FAST)
    # batches of 256 halved until one fits
    assert server.answered == 120 and ev.metrics["queries"].value == 120
    assert [f.code for f in ev.flags] == ["query_refused"] and "fidelity" in ev.metrics


def test_an_endpoint_refusing_everything_gives_no_copy(lr_target: Target, token: str) -> None:
    with serving(lr_target.model, Behaviour(budget=0)) as server:
        [ev] = run("copycat", lr_target, budgets=(30,), endpoint=server.url, token_env=token)
    assert ev.metrics["queries"].value == 0 and ev.metrics["refused"].value == 30
    assert "fidelity" not in ev.metrics and [f.code for f in ev.flags] == ["query_refused"]
    assert ev.params["surrogate"] == "mlp(256) on standardised inputs"  # as when copies are trained


def _endpoint_error(target: Target, behaviour: Behaviour, probe: str = "copycat", **settings: Any) -> str:
    with serving(target.model, behaviour) as server, pytest.raises(EndpointError) as caught:
        run(probe, target, budgets=(20,), endpoint=server.url, **FAST, **settings)
    return one_line(str(caught.value))


def test_bad_or_missing_token_is_one_line_naming_the_status(lr_target: Target, token: str) -> None:
    wrong = Behaviour(token="another-token")  # the server echoes what it got: redacted
    message = _endpoint_error(lr_target, wrong, token_env=token)
    assert "HTTP 401" in message and token in message and "***" in message
    message = _endpoint_error(lr_target, Behaviour())
    assert "HTTP 401" in message and "token_env" in message
    message = _endpoint_error(lr_target, Behaviour(outputs=("labels",)), "knockoff", token_env=token)
    assert "HTTP 403" in message and "forbids" in message


def test_missing_token_variable_is_one_line_before_any_query(lr_target: Target, token: str,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(token)
    with serving(lr_target.model) as server:
        with pytest.raises(ConfigError, match=f"environment variable {token} is not set"):
            build_probe("copycat", endpoint=server.url, token_env=token).check(lr_target)
    assert server.seen == []
    monkeypatch.setenv(token, "two words")
    with pytest.raises(ConfigError, match="characters a bearer token cannot"):
        build_probe("copycat", endpoint="http://127.0.0.1:9/x", token_env=token).check(lr_target)


def test_the_token_never_crosses_a_network_in_clear_text(lr_target: Target, token: str) -> None:
    with pytest.raises(ConfigError, match="over plain http to another machine") as caught:
        build_probe("copycat", endpoint="http://example.com/v1/predict", token_env=token).check(lr_target)
    one_line(str(caught.value))


def _labels(values: list[Any]) -> Any:
    return lambda x, output: {"labels": (values * len(x))[:len(x)]}


@pytest.mark.parametrize(("behaviour", "probe", "message"), [
    (Behaviour(raw=b"<html>oops</html>"), "copycat", "not JSON"),
    (Behaviour(raw=b"[" * 100_000), "copycat", "not JSON"),
    (Behaviour(answer=lambda x, o: {"answer": []}), "copycat", "without 'labels'"),
    (Behaviour(answer=lambda x, o: [1, 2]), "copycat", "without 'labels'"),
    (Behaviour(answer=lambda x, o: {"labels": [0] * (len(x) - 1)}), "copycat", "labels for 20 inputs"),
    (Behaviour(answer=_labels([12])), "copycat", "label 12 is not a class of the model"),
    (Behaviour(answer=_labels([1.0])), "copycat", "not a class index"),
    (Behaviour(answer=_labels([True])), "copycat", "not a class index"),
    (Behaviour(answer=lambda x, o: {"probabilities": [[1 / 3] * 3] * len(x)}), "knockoff",
     "probabilities for 3 classes; the model has 10"),
    (Behaviour(answer=lambda x, o: {"probabilities": [[5.0, -1.0] * 5] * len(x)}), "knockoff", "logits"),
    (Behaviour(answer=lambda x, o: {"probabilities": [[float("nan")] + [0.1] * 9] * len(x)}), "knockoff",
     "NaN"),
    (Behaviour(answer=lambda x, o: {"probabilities": [[0.5] * 10] * len(x)}), "knockoff", "sums to 5"),
    (Behaviour(answer=lambda x, o: {"probabilities": [[0.0] * 10] * len(x)}), "knockoff", "all zero"),
    (Behaviour(answer=lambda x, o: {"probabilities": [["a"] * 10] * len(x)}), "knockoff", "not a number"),
    (Behaviour(status=500), "copycat", "HTTP 500"),
    (Behaviour(status=422, error_body={"error": "inputs must be 3x32x32"}), "copycat", "rejected the inputs"),
    (Behaviour(status=413), "copycat", "lower query_batch_size"),
    (Behaviour(status=302, headers={"Location": "http://127.0.0.1:9/elsewhere"}), "copycat", "redirect"),
    (Behaviour(headers={"Content-Length": str(10**12)}, raw=b"{}"), "copycat", "announced an answer"),
])
def test_an_endpoint_answering_garbage_is_one_line(lr_target: Target, token: str, behaviour: Behaviour,
                                                   probe: str, message: str) -> None:
    assert message in _endpoint_error(lr_target, behaviour, probe, token_env=token)


def test_an_answer_over_the_size_bound_is_refused(lr_target: Target, token: str,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(endpoint_module, "MAX_ANSWER_BYTES", 1000)
    huge = Behaviour(answer=lambda x, o: {"labels": [0] * len(x), "padding": "x" * 5000}, length=False)
    assert "more than 1000 bytes" in _endpoint_error(lr_target, huge, token_env=token)


def test_unreachable_and_slow_endpoints_are_one_line(lr_target: Target) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(EndpointError, match="connection refused") as caught:
        run("copycat", lr_target, budgets=(10,), endpoint=f"http://127.0.0.1:{port}/v1/predict")
    one_line(str(caught.value))
    slow = Behaviour(token=None, delay_s=0.5)
    assert "within 0.1 s" in _endpoint_error(lr_target, slow, timeout=0.1)


# -- the command line ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def lr_files(tmp_path_factory: pytest.TempPathFactory, flat: Any, linear: Any) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("lr")
    paths = {"model": folder / "lr.skops", "data": folder / "digits.npz"}
    paths["model"].write_bytes(skops.io.dumps(linear))
    np.savez(paths["data"], x=flat.x_test[:300], y=flat.y_test[:300], x_train=flat.x_train[:400],
             y_train=flat.y_train[:400])
    return paths


def guard(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args))
    assert "Traceback" not in result.output and result.exit_code != 3, result.output
    return result.exit_code, result.output


def _audit(files: dict[str, Path], out: Path, *extra: str) -> list[str]:
    return ["audit", "--model", str(files["model"]), "--data", str(files["data"]), "--clip", "0,1",
            "--attack", "copycat", "--out", str(out), "--format", "json", *extra]


def test_cli_budget_larger_than_the_pool_exits_2_with_one_line(lr_files: dict[str, Path],
                                                               tmp_path: Path) -> None:
    code, out = guard(*_audit(lr_files, tmp_path / "o", "--budgets", "50,5000"))
    lines = out.strip().splitlines()
    assert code == 2 and len(lines) == 1, out
    assert "budget 5000 is larger than the query pool of 400 inputs" in lines[0]


def test_cli_audits_the_endpoint_and_policy_judges_it(lr_files: dict[str, Path], lr_target: Target,
                                                      tmp_path: Path, token: str) -> None:
    with serving(lr_target.model) as server:
        code, out = guard(*_audit(lr_files, tmp_path / "o", "--budgets", "20,60", "--endpoint", server.url,
                                  "--token-env", token, "--set", "copycat.epochs=2", "--policy", "baseline"))
    assert code in (0, 1), out
    report = (tmp_path / "o" / "report.json").read_text(encoding="utf-8")
    assert TOKEN not in report and TOKEN not in out
    doc = json.loads(report)
    audit = doc["audits"][0] if "audits" in doc else doc
    evidence = [e for e in audit["evidence"] if e["probe"] == "extraction.copycat"]
    assert [e["params"]["budget"] for e in evidence] == [20, 60]
    assert all(e["params"]["source"] == "endpoint" for e in evidence)
    [finding] = [f for f in audit["findings"] if f["control"] == "GRD-PRV-02"]
    assert finding["status"] in ("pass", "fail")
