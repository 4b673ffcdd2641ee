"""Input sanitization: the validator's refusals, squeezers against ART's, the detector's
calibrated false-positive rate, and the sanitizer behind GuardedModel."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from guard.build import build_target_from_objects
from guard.defenses.access.guarded import GuardedModel
from guard.defenses.access.policy import AccessPolicy
from guard.defenses.sanitize import (
    BitDepth,
    InputRejected,
    InputValidator,
    MedianSmooth,
    Sanitizer,
    SqueezeDetector,
    conformal_threshold,
)
from guard.errors import ConfigError, DataError
from guard.stats import wilson_interval

# -- validation ------------------------------------------------------------------------------------

FLAT = InputValidator((4,), lo=0.0, hi=1.0, max_rows=5)
IMAGE = InputValidator((1, 2, 2), lo=0.0, hi=1.0)


@pytest.mark.parametrize(("validator", "x", "message"), [
    (FLAT, [["a", "b", "c", "d"]], "inputs are not numeric: they hold text"),
    (FLAT, [[0.1, None, 0.2, 0.3]], "inputs are not numeric: they hold None"),
    (FLAT, [[0.1, {"x": 1}, 0.2, 0.3]], "inputs are not numeric: they hold a dict"),
    (FLAT, [[True, False, True, False]], "inputs are booleans, not numbers"),
    (FLAT, np.ones((1, 4), dtype=complex), "inputs are complex numbers"),
    (FLAT, [[0.1, 0.2, 0.3, 0.4], [0.1, 0.2]], "inputs are ragged"),
    (IMAGE, [[[0.1, 0.2], [0.3]]], "inputs are ragged"),
    (FLAT, [[[[[0.1]]]]], "got lists nested deeper"),
    (FLAT, [0.1, 0.2, 0.3, 0.4], "got one row without the batch dimension: wrap it in a list"),
    (FLAT, np.zeros((2, 2, 2)),
     "expected a batch of rows of shape (4,) (an array of rank 2), got an array of shape (2, 2, 2)"),
    (FLAT, np.zeros((2, 3)), "expected rows of shape (4,), got (3,)"),
    (IMAGE, np.zeros((2, 1, 3, 2)), "expected rows of shape (1, 2, 2), got (1, 3, 2)"),
    (FLAT, [], "the batch is empty"),
    (FLAT, np.zeros((0, 4)), "the batch is empty"),
    (FLAT, [[0.0] * 4] * 6, "the batch has 6 rows; at most 5 are accepted per request"),
    (FLAT, np.zeros((6, 4)), "the batch has 6 rows; at most 5"),
    (FLAT, [[0.1, 0.2, 0.3, 0.4], [0.1, float("nan"), 0.3, 0.4]], "row 1 contains NaN"),
    (FLAT, [[0.1, 0.2, 0.3, 0.4], [0.1, 0.2, 0.3, float("inf")]], "row 1 contains infinity"),
    (FLAT, [[0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0], [0.5, 7.2, 0, 0]],
     "row 3 has values outside [0, 1]: max 7.2"),
    (FLAT, [[0, 0, -0.5, 0]], "row 0 has values outside [0, 1]: min -0.5"),
    (FLAT, [[10**400, 0, 0, 0]], "integer too large"),
])
def test_each_refusal_names_the_problem(validator: InputValidator, x: Any, message: str) -> None:
    with pytest.raises(InputRejected) as refused:
        validator.check(x)
    assert message in str(refused.value), str(refused.value)
    assert "\n" not in str(refused.value)
    assert refused.value.status == 422


def test_overflow_of_the_dtype_is_refused_with_the_row() -> None:
    unbounded = InputValidator((2,))
    with pytest.raises(InputRejected, match="row 1 has values too large for float32"):
        unbounded.check([[0.0, 1.0], [1e300, 0.0]])


def test_good_input_comes_back_as_a_float_batch() -> None:
    out = FLAT.check([[0, 1, 0.5, 0.25], [1, 1, 1, 1]])  # JSON: ints and floats mixed
    assert out.dtype == np.float32 and out.shape == (2, 4) and out.flags.c_contiguous
    assert np.array_equal(out[0], np.array([0, 1, 0.5, 0.25], dtype=np.float32))
    image = IMAGE.check(np.full((3, 1, 2, 2), 0.5, dtype=np.float64))
    assert image.dtype == np.float32 and image.shape == (3, 1, 2, 2)


def test_learned_per_feature_ranges_name_the_feature() -> None:
    reference = np.array([[18.0, 1.0], [90.0, 3.0], [40.0, 2.0]])
    validator = InputValidator.from_data(reference, margin=0.1, feature_names=("age", "children"))
    assert validator.check([[20.0, 1.0]]).shape == (1, 2)
    assert validator.check([[96.0, 1.0]]).shape == (1, 2)  # within the margin: 90 + 0.1 * 72
    with pytest.raises(InputRejected, match=r"row 1 has a value outside the accepted range of feature 'age' "
                                            r"\(column 0\): 140 is above 97\.2"):
        validator.check([[20.0, 1.0], [140.0, 1.0]])
    declared = InputValidator.from_data(reference / 100, clip=(0.0, 1.0))
    assert declared.lo == 0.0 and declared.hi == 1.0 and declared.shape == (2,)
    assert InputValidator.from_data(reference).lo is None  # neither clip nor margin: no range check


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"shape": ()}, "shape must be a tuple of positive integers"),
    ({"shape": (0, 3)}, "shape must be a tuple of positive integers"),
    ({"shape": (3,), "dtype": "int8"}, "dtype must be one of"),
    ({"shape": (3,), "max_rows": 0}, "max_rows must be a positive integer"),
    ({"shape": (3,), "lo": 1.0, "hi": 0.0}, "lo must not exceed hi"),
    ({"shape": (3,), "lo": float("nan")}, "lo must be finite"),
    ({"shape": (3,), "hi": np.ones(2)}, "per-feature bounds must have the row shape (3,)"),
])
def test_bad_validator_settings_are_config_errors(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        InputValidator(**kwargs)
    assert message in str(err.value)


def test_reference_data_is_checked() -> None:
    with pytest.raises(DataError, match="non-empty numeric batch"):
        InputValidator.from_data(np.zeros(4))
    with pytest.raises(DataError, match="NaN or infinity"):
        InputValidator.from_data(np.array([[np.nan, 1.0]]))


# -- squeezers against ART (the oracle) -------------------------------------------------------------


@pytest.mark.parametrize("bits", [1, 2, 4, 5, 8])
@pytest.mark.parametrize(("lo", "hi"), [(0.0, 1.0), (-1.0, 2.0)])
def test_bit_depth_equals_arts_feature_squeezing(bits: int, lo: float, hi: float,
                                                 digits: dict[str, np.ndarray]) -> None:
    from art.defences.preprocessor import FeatureSqueezing

    rng = np.random.default_rng(bits)
    inputs: list[np.ndarray] = [rng.uniform(lo, hi, (50, 1, 8, 8)).astype(np.float32),
              rng.uniform(lo, hi, (50, 64)),
              lo + (hi - lo) * digits["x_test"][:50]]
    art = FeatureSqueezing(clip_values=(lo, hi), bit_depth=bits)
    for x in inputs:
        ours = BitDepth(bits, lo, hi)(x)
        expected, _ = art(x)
        assert ours.shape == x.shape and ours.dtype == x.dtype
        np.testing.assert_allclose(ours, expected, rtol=0, atol=1e-6 * (hi - lo))
        assert len(np.unique(ours)) <= 2**bits


def test_bit_depth_clips_what_lies_outside_its_range() -> None:
    out = BitDepth(2)(np.array([[-3.0, 0.2, 0.5, 9.0]]))
    np.testing.assert_allclose(out, [[0.0, 1 / 3, 2 / 3, 1.0]])  # 0.5 rounds half to even: 1.5 -> 2


@pytest.mark.parametrize("size", [2, 3])
@pytest.mark.parametrize(("shape", "channels_first"), [((20, 1, 8, 8), True), ((20, 3, 8, 8), True),
                                                       ((20, 8, 8, 3), False)])
def test_median_smooth_equals_arts_spatial_smoothing(size: int, shape: tuple[int, ...],
                                                     channels_first: bool) -> None:
    from art.defences.preprocessor import SpatialSmoothing

    x = np.random.default_rng(size).uniform(0, 1, shape).astype(np.float32)
    ours = MedianSmooth(size, channels_first=channels_first)(x)
    expected, _ = SpatialSmoothing(window_size=size, channels_first=channels_first)(x)
    np.testing.assert_array_equal(ours, expected)
    assert not np.array_equal(ours, x)


def test_median_declines_flat_rows_and_says_why() -> None:
    median = MedianSmooth(2)
    assert median.unsuitable((1, 8, 8)) is None and median.unsuitable((8, 8)) is None
    reason = median.unsuitable((64,))
    assert reason is not None and "does not apply to flat rows of shape (64,)" in reason
    with pytest.raises(ConfigError, match="does not apply to flat rows"):
        median(np.zeros((3, 64)))
    with pytest.raises(ConfigError, match="median size must be an integer from 2 to 64"):
        MedianSmooth(1)
    with pytest.raises(ConfigError, match="bits must be an integer from 1 to 24"):
        BitDepth(0)


# -- the detector ---------------------------------------------------------------------------------


def test_conformal_threshold_is_the_right_order_statistic() -> None:
    scores = np.arange(1, 100, dtype=float)[::-1]  # 99 scores 1..99, shuffled order irrelevant
    # ceil((99 + 1) * 0.9) = 90th smallest
    assert conformal_threshold(scores, 0.1) == 90.0
    with pytest.raises(DataError, match="needs at least 19 clean inputs, got 10"):
        conformal_threshold(scores[:10], 0.05)


@pytest.fixture(scope="module")
def flat_split() -> dict[str, np.ndarray]:
    from guard.demo import digits_split

    split = digits_split(image=False)
    return {"x_train": split.x_train, "y_train": split.y_train, "x_test": split.x_test,
            "y_test": split.y_test}


@pytest.fixture(scope="module")
def lr_model(flat_split: dict[str, np.ndarray]) -> Any:
    model = LogisticRegression(max_iter=1000).fit(flat_split["x_train"], flat_split["y_train"])
    target = build_target_from_objects(model, flat_split["x_test"], flat_split["y_test"], clip=(0.0, 1.0),
                                       name="lr")
    return target.model


@pytest.mark.parametrize("fpr", [0.05, 0.2])
def test_calibrated_fpr_holds_on_held_out_clean_data(lr_model: Any, flat_split: dict[str, np.ndarray],
                                                     fpr: float) -> None:
    x = flat_split["x_test"]  # 600 clean inputs the model was not trained on
    detector = SqueezeDetector(lr_model, [BitDepth(3)], fpr=fpr).calibrate(x[:300])
    assert detector.calibration_n == 300 and detector.threshold is not None and detector.threshold > 0
    flagged = detector.flags(x[300:])
    lo, hi = wilson_interval(int(flagged.sum()), len(flagged))
    assert lo <= fpr + 0.05 and hi >= fpr - 0.05, (flagged.mean(), (lo, hi))
    assert detector.flags(x[:300]).mean() <= fpr  # in sample, at most fpr by construction
    # one split's rate varies with the split; over 20 seeded 300/300 splits the mean held-out
    # rate lies within [fpr - 1/301, fpr] in expectation (conformal), here within 2.5 points
    scores = detector.score(x)
    rates = []
    for seed in range(20):
        order = np.random.default_rng(seed).permutation(len(x))
        threshold = conformal_threshold(scores[order[:300]], fpr)
        rates.append(float(np.mean(scores[order[300:]] > threshold)))
    assert abs(float(np.mean(rates)) - fpr) <= 0.025, rates
    # a null control: a threshold calibrated for a five times larger rate misses by far
    loose = conformal_threshold(scores[:300], min(0.9, 5 * fpr))
    assert float(np.mean(scores[300:] > loose)) > 2 * fpr


def test_detector_scores_are_the_largest_l1_gap(lr_model: Any, flat_split: dict[str, np.ndarray]) -> None:
    x = flat_split["x_test"][:20]
    squeezers = [BitDepth(1), BitDepth(3)]
    detector = SqueezeDetector(lr_model, squeezers)
    p = lr_model.predict_proba(x)
    gaps = np.stack([np.abs(p - lr_model.predict_proba(s(x))).sum(1) for s in squeezers], axis=1)
    np.testing.assert_allclose(detector.score(x), gaps.max(axis=1))
    assert ((detector.score(x) >= 0) & (detector.score(x) <= 2)).all()
    with pytest.raises(ConfigError, match="call calibrate"):
        detector.flags(x)
    with pytest.raises(ConfigError, match="does not apply to flat rows"):
        SqueezeDetector(lr_model, [MedianSmooth(2)]).score(x)


# -- the sanitizer, alone and behind GuardedModel -----------------------------------------------------

POLICY = """
[roles.user]
permissions = ["predict", "predict_proba"]
[principals.alice]
roles = ["user"]
"""


class FakeLog:
    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []

    def append(self, fields: dict[str, Any]) -> None:
        self.records.append(fields)


def test_sanitizer_rejects_flagged_rows_and_squeezes_the_rest(lr_model: Any) -> None:
    # threshold 0: any row whose probabilities move under 1-bit squeezing is flagged; a row
    # already on the 1-bit grid squeezes to itself (score exactly 0) and is served
    detector = SqueezeDetector(lr_model, [BitDepth(1)], threshold=0.0)
    sanitizer = Sanitizer(InputValidator((64,), lo=0.0, hi=1.0), [BitDepth(1)], detector, transform=True)
    binary = (np.random.default_rng(0).uniform(size=(3, 64)) > 0.5).astype(np.float32)
    np.testing.assert_array_equal(sanitizer.check(binary), binary)
    grey = binary.copy()
    grey[1, :5] = 0.3
    with pytest.raises(InputRejected, match=r"row 1 looks adversarial: squeezing changes its prediction by "
                                            r"[0-9.]+ \(threshold 0\.000\)"):
        sanitizer.check(grey)
    served = Sanitizer(InputValidator((64,), lo=0.0, hi=1.0), [BitDepth(1)], transform=True).check(grey)
    np.testing.assert_array_equal(served, BitDepth(1)(grey))  # no detector: squeezed, not refused
    with pytest.raises(ConfigError, match="transform=True needs at least one squeezer"):
        Sanitizer(InputValidator((64,)), transform=True)
    with pytest.raises(ConfigError, match="does not apply to flat rows"):
        Sanitizer(InputValidator((64,)), [MedianSmooth(2)])


def test_guarded_model_refuses_through_the_sanitizer(lr_model: Any, flat_split: dict[str, np.ndarray],
                                                     tmp_path: Path) -> None:
    x = flat_split["x_test"]
    detector = SqueezeDetector(lr_model, [BitDepth(3)], fpr=0.05).calibrate(x[:200])
    sanitizer = Sanitizer(InputValidator.from_data(x, clip=(0.0, 1.0)), [BitDepth(3)], detector,
                          transform=True)
    (tmp_path / "access.toml").write_text(POLICY)
    log = FakeLog()
    policy = AccessPolicy.load(tmp_path / "access.toml")
    guarded = GuardedModel(lr_model, policy, sanitizer=sanitizer, log=log)
    clean_rows = x[200:400][~detector.flags(x[200:400])][:5]
    answer = guarded.predict(clean_rows.tolist(), principal="alice")  # JSON-like lists are accepted
    assert answer.labels is not None and len(answer.labels) == 5
    bad = clean_rows.copy()
    bad[2, 7] = np.nan
    with pytest.raises(InputRejected) as refused:
        guarded.predict(bad, principal="alice")
    assert refused.value.status == 422 and str(refused.value) == "row 2 contains NaN"
    noisy = np.random.default_rng(1).uniform(size=(10, 64))  # noise images: about half are flagged
    flagged = np.flatnonzero(detector.flags(noisy))
    assert len(flagged)
    more = f"; {len(flagged) - 1} more rows flagged" if len(flagged) > 1 else ""
    with pytest.raises(InputRejected, match=f"^row {flagged[0]} looks adversarial: .*\\){more}$"):
        guarded.predict(noisy, principal="alice", output="probabilities")
    outcomes = [(r["outcome"], r["status"]) for r in log.records]
    assert outcomes == [("served", 200), ("refused", 422), ("refused", 422)]
    assert "looks adversarial" in log.records[-1]["reason"]
