"""The paired comparison of champion and challenger: intervals on constructed cases whose answer is known
(clearly better, clearly worse, a gain within the noise on both sides of the tolerance), the flipped cases
by name, McNemar against a binomial worked by hand, trial noise and the cluster bootstrap, determinism,
and every degenerate input."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from scipy import stats

from factory_pipelines.lib.evals.paired import PairedComparison, compare


def ids(n: int) -> list[str]:
    return [f"case-{i:04d}" for i in range(n)]


def flips(n: int, champion_passes: int, fixed: int, broken: int) -> tuple[np.ndarray, np.ndarray]:
    """Binary K=1 sides over n cases: the champion passes the first `champion_passes`; the challenger
    breaks the first `broken` of those and fixes the first `fixed` the champion failed."""
    champion = np.zeros(n)
    champion[:champion_passes] = 1
    challenger = champion.copy()
    challenger[:broken] = 0
    challenger[champion_passes:champion_passes + fixed] = 1
    return champion[:, None], challenger[:, None]


def normal_half_width(result: PairedComparison, d: np.ndarray) -> float:
    return stats.norm.ppf(0.5 + result.confidence / 2) * d.std(ddof=1) / math.sqrt(len(d))


def test_clearly_better_challenger_interval_above_zero_and_passes() -> None:
    champion, challenger = flips(400, 320, fixed=60, broken=5)
    result = compare("action_accuracy", champion, challenger, ids(400), tolerance=0.02)
    assert result.champion_mean == pytest.approx(0.80)
    assert result.challenger_mean == pytest.approx(0.9375)
    assert result.difference == pytest.approx(55 / 400)
    assert 0.09 < result.low < result.difference < result.high < 0.18
    assert result.significant and result.passes() and result.passes(0.0)
    # the percentile interval of a mean over 400 cases is close to the normal one
    d = (challenger - champion)[:, 0]
    assert (result.high - result.low) / 2 == pytest.approx(normal_half_width(result, d), rel=0.08)


def test_clearly_worse_challenger_interval_below_minus_tolerance_and_fails() -> None:
    champion, challenger = flips(400, 320, fixed=5, broken=60)
    result = compare("action_accuracy", champion, challenger, ids(400), tolerance=0.02)
    assert result.difference == pytest.approx(-55 / 400)
    assert result.low < result.high < -0.02
    assert result.significant and not result.passes()
    assert not result.passes(0.1)  # the upper bound is near -0.10: even a loose tolerance does not save it
    assert result.passes(0.2)


def test_tiny_gain_within_noise_passes_only_while_lower_bound_is_above_minus_tolerance() -> None:
    # +0.01 over 20 discordant cases: the interval holds 0 but its lower bound is about -0.012
    champion, challenger = flips(400, 320, fixed=12, broken=8)
    small = compare("category_accuracy", champion, challenger, ids(400), tolerance=0.02)
    assert small.difference == pytest.approx(0.01)
    assert -0.02 < small.low < 0 < small.high
    assert not small.significant
    assert small.passes() and not small.passes(0.0) and not small.passes(abs(small.low) - 1e-9)
    assert small.passes(abs(small.low))
    assert small.p_value == pytest.approx(stats.binomtest(12, 20).pvalue) and small.p_value > 0.3

    # a smaller mean gain (+0.005) but 58 discordant cases: the lower bound falls below -0.02
    champion, challenger = flips(400, 320, fixed=30, broken=28)
    noisy = compare("category_accuracy", champion, challenger, ids(400), tolerance=0.02)
    assert noisy.difference == pytest.approx(0.005) and noisy.difference > 0
    assert noisy.low < -0.02 < 0 < noisy.high
    assert not noisy.passes()


def test_flipped_cases_are_named_by_majority_of_trials() -> None:
    case_ids = ["ok", "fixed-3of3", "fixed-2of3", "broken", "tie-fixed?", "both-fail", "broken-1of3"]
    champion = np.array([[1, 1, 1], [0, 0, 0], [0, 1, 0], [1, 1, 0], [0, 0, 0], [0, 0, 0], [1, 1, 1]])
    challenger = np.array([[1, 1, 1], [1, 1, 1], [1, 1, 0], [0, 0, 0], [0, 0, 0], [1, 0, 0], [1, 0, 0]])
    result = compare("policy_compliance", champion, challenger, case_ids, tolerance=0.0)
    assert result.fixed == ("fixed-3of3", "fixed-2of3")
    assert result.broken == ("broken", "broken-1of3")
    assert result.trials == (3, 3)
    # with an even K a tie is not a majority: 1 of 2 fails, 2 of 2 passes
    even = compare("policy_compliance", [[1, 0], [0, 0], [1, 1]], [[1, 1], [1, 0], [0, 1]], ["a", "b", "c"], 0.0)
    assert even.fixed == ("a",) and even.broken == ("c",)


def test_mcnemar_p_value_matches_the_binomial_by_hand() -> None:
    # 8 fixed, 2 broken: under H0 each discordant case is fixed with p = 1/2, so
    # p = 2 * P(X <= 2 | n=10) = 2 * (C(10,0) + C(10,1) + C(10,2)) / 2**10 = 2 * 56 / 1024 = 0.109375
    champion, challenger = flips(50, 30, fixed=8, broken=2)
    result = compare("field_accuracy", champion, challenger, ids(50), tolerance=0.02)
    assert len(result.fixed) == 8 and len(result.broken) == 2
    assert result.p_value == pytest.approx(0.109375, abs=1e-12)
    # 9 fixed, 0 broken: 2 / 2**9
    champion, challenger = flips(50, 30, fixed=9, broken=0)
    assert compare("field_accuracy", champion, challenger, ids(50), 0.02).p_value == pytest.approx(2 / 512)


def test_continuous_metric_has_no_mcnemar_and_lower_is_better_gates_the_upper_bound() -> None:
    rng = np.random.default_rng(7)
    champion = rng.lognormal(0.0, 0.4, size=(300, 4))  # seconds per ticket, 4 trials
    faster = champion * 0.8 + rng.normal(0, 0.05, size=champion.shape)
    result = compare("latency_s", champion, faster, ids(300), tolerance=0.05, kind="continuous",
                     higher_is_better=False)
    assert result.p_value is None and result.fixed == () and result.broken == ()
    assert result.high < 0 and result.passes()
    slower = compare("latency_s", champion, champion * 1.2, ids(300), tolerance=0.05, kind="continuous",
                     higher_is_better=False)
    assert slower.low > 0.05 and not slower.passes()
    assert slower.passes(slower.high + 1e-9)


def test_trial_noise_widens_the_interval_and_more_trials_narrow_it_back() -> None:
    rng = np.random.default_rng(3)
    n = 500
    champion = rng.normal(1.0, 0.3, size=(n, 1))  # deterministic champion, K=1
    expected = champion + 0.05 + rng.normal(0, 0.1, size=(n, 1))  # challenger's per-case expected score

    def noisy(k: int) -> np.ndarray:
        noise = rng.normal(0, 0.5, size=(n, k))
        return expected + noise - noise.mean()  # trial noise with the overall mean kept exactly

    width = {}
    for label, challenger in (("deterministic", expected), ("K=1", noisy(1)), ("K=20", noisy(20))):
        result = compare("groundedness", champion, challenger, ids(n), 0.02, kind="continuous")
        assert result.difference == pytest.approx(float((expected - champion).mean()), abs=1e-12)
        width[label] = result.high - result.low
    assert width["deterministic"] < width["K=20"] < width["K=1"]
    # case-mean variance is 0.1^2 + 0.5^2 / K: the widths follow its square root
    assert width["K=1"] / width["deterministic"] == pytest.approx(math.sqrt(0.26 / 0.01), rel=0.15)
    assert width["K=20"] / width["deterministic"] == pytest.approx(math.sqrt(0.0225 / 0.01), rel=0.15)


def test_cases_are_resampled_with_their_trials_together() -> None:
    """K identical trials per case carry no more information than one: the interval is exactly the K=1
    one (a bootstrap over trials would narrow it by sqrt(K))."""
    champion, challenger = flips(300, 200, fixed=30, broken=12)
    once = compare("action_accuracy", champion, challenger, ids(300), 0.02, seed=11)
    repeated = compare("action_accuracy", np.repeat(champion, 5, axis=1), np.repeat(challenger, 5, axis=1),
                       ids(300), 0.02, seed=11)
    assert repeated.interval == once.interval and repeated.trials == (5, 5)
    assert repeated.fixed == once.fixed and repeated.p_value == once.p_value
    # and a trial-level bootstrap of the same 1,500 pairs would be about sqrt(5) narrower
    trial_d = np.repeat(challenger - champion, 5, axis=1).ravel()
    pooled = stats.bootstrap((trial_d,), np.mean, n_resamples=2000, method="percentile",
                             rng=np.random.default_rng(0)).confidence_interval
    assert (once.high - once.low) / (pooled.high - pooled.low) == pytest.approx(math.sqrt(5), rel=0.1)


def test_interval_is_scipys_percentile_bootstrap_of_the_case_differences() -> None:
    rng = np.random.default_rng(5)
    champion = (rng.random((120, 3)) < 0.7).astype(int)
    challenger = (rng.random((120, 2)) < 0.75).astype(bool)  # K may differ between the sides
    result = compare("action_accuracy", champion, challenger, ids(120), 0.02, n_resamples=999, seed=42)
    d = challenger.mean(axis=1) - champion.mean(axis=1)
    expected = stats.bootstrap((d,), np.mean, n_resamples=999, method="percentile",
                               rng=np.random.default_rng(42)).confidence_interval
    assert result.interval == pytest.approx((expected.low, expected.high), abs=1e-12)
    assert result.trials == (3, 2) and result.method == "percentile" and result.n_resamples == 999
    bca = compare("action_accuracy", champion, challenger, ids(120), 0.02, n_resamples=999, seed=42, method="BCa")
    assert bca.method == "BCa" and bca.low < bca.difference < bca.high and bca.interval != result.interval


def test_same_seed_same_interval_other_seed_another() -> None:
    rng = np.random.default_rng(9)
    champion, challenger = rng.normal(size=(200, 3)), rng.normal(0.1, 1, size=(200, 3))
    first = compare("cost", champion, challenger, ids(200), 0.02, kind="continuous", seed=123)
    again = compare("cost", champion.copy(), challenger.copy(), ids(200), 0.02, kind="continuous", seed=123)
    other = compare("cost", champion, challenger, ids(200), 0.02, kind="continuous", seed=124)
    assert again == first
    assert other.interval != first.interval and other.difference == first.difference
    assert compare("cost", champion, challenger, ids(200), 0.02, kind="continuous") == \
        compare("cost", champion, challenger, ids(200), 0.02, kind="continuous")  # the default seed is fixed


def test_identical_sides_give_zero_difference_and_a_zero_width_interval() -> None:
    rng = np.random.default_rng(1)
    scores = (rng.random((100, 4)) < 0.6).astype(float)
    result = compare("action_accuracy", scores, scores.copy(), ids(100), tolerance=0.02)
    assert (result.difference, result.low, result.high, result.standard_error) == (0.0, 0.0, 0.0, 0.0)
    assert result.method == "constant" and result.fixed == () and result.broken == () and result.p_value == 1.0
    assert result.passes() and result.passes(0.0) and not result.significant  # no regression at all
    # trials that differ but average the same per case are identical sides too
    swapped = compare("action_accuracy", scores, scores[:, ::-1], ids(100), tolerance=0.02)
    assert swapped.interval == (0.0, 0.0) and swapped.fixed == ()


def test_all_equal_values_give_the_constant_difference() -> None:
    everything = compare("schema_validity", np.zeros((10, 2)), np.ones((10, 2)), ids(10), 0.0)
    assert everything.interval == (1.0, 1.0) and everything.method == "constant"
    assert len(everything.fixed) == 10 and everything.p_value == pytest.approx(2 / 2**10)
    all_pass = compare("schema_validity", np.ones((10, 1)), np.ones((10, 1)), ids(10), 0.01)
    assert all_pass.interval == (0.0, 0.0) and all_pass.p_value == 1.0 and all_pass.passes()


def test_result_is_frozen_and_describes_itself() -> None:
    champion, challenger = flips(100, 70, fixed=6, broken=2)
    result = compare("action_accuracy", champion, challenger, ids(100), 0.02)
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.low = 1.0  # type: ignore[misc]
    line = result.describe()
    assert line.startswith("action_accuracy: champion 0.7, challenger 0.74, difference +0.04 [")
    assert "6 fixed, 2 broken" in line and line.endswith(f"{'passes' if result.passes() else 'fails'} at tolerance 0.02")


@pytest.mark.parametrize(("champion", "challenger", "case_ids", "kwargs", "message"), [
    (np.zeros((0, 3)), np.zeros((0, 3)), [], {}, "at least 2 cases, got 0"),
    ([[1]], [[0]], ["only"], {}, "at least 2 cases, got 1"),
    (np.ones((3, 2)), np.ones((4, 2)), ids(3), {}, "challenger has 4 cases, the case ids 3"),
    (np.ones((3, 2)), np.ones((3, 2)), ids(4), {}, "champion has 3 cases, the case ids 4"),
    (np.ones((3, 2, 2)), np.ones((3, 2)), ids(3), {}, "must be (cases, trials), got shape (3, 2, 2)"),
    (np.ones((3, 0)), np.ones((3, 2)), ids(3), {}, "champion has no trials"),
    (np.ones((3, 2)), np.ones((3, 2)), ["a", "b", "a"], {}, "duplicate case ids ['a']"),
    ([[1.0], [np.nan], [0.5]], np.ones((3, 1)), ["a", "b", "c"], {"kind": "continuous"},
     "champion score of case 'b', trial 0, is nan"),
    (np.ones((3, 1)), [[1.0], [0.5], [np.inf]], ["a", "b", "c"], {"kind": "continuous"},
     "challenger score of case 'c', trial 0, is inf"),
    (np.ones((3, 1)), [[1], [0.5], [0]], ["a", "b", "c"], {}, "case 'b', trial 0, is 0.5; a binary metric"),
    ([["x"], ["y"]], np.ones((2, 1)), ["a", "b"], {}, "champion scores are not numbers"),
    (np.ones((3, 1)), np.ones((3, 1)), ids(3), {"kind": "ordinal"}, "kind must be 'binary' or 'continuous'"),
    (np.ones((3, 1)), np.ones((3, 1)), ids(3), {"confidence": 1.0}, "confidence must lie in (0, 1)"),
    (np.ones((3, 1)), np.ones((3, 1)), ids(3), {"tolerance": -0.01}, "tolerance must be a finite number >= 0"),
    (np.ones((3, 1)), np.ones((3, 1)), ids(3), {"tolerance": math.nan}, "tolerance must be a finite number"),
    (np.ones((3, 1)), np.ones((3, 1)), ids(3), {"n_resamples": 0}, "n_resamples must be a positive integer"),
    (np.ones((3, 1)), np.ones((3, 1)), ids(3), {"method": "basic"}, "method must be 'percentile' or 'BCa'"),
])
def test_bad_inputs_are_refused_with_the_metric_and_the_reason(champion, challenger, case_ids, kwargs,
                                                               message) -> None:
    kwargs = {"tolerance": 0.02, **kwargs}
    with pytest.raises(ValueError, match="^accuracy: ") as raised:
        compare("accuracy", champion, challenger, case_ids, **kwargs)
    assert message in str(raised.value)


def test_passes_refuses_a_negative_tolerance() -> None:
    champion, challenger = flips(100, 70, fixed=6, broken=2)
    with pytest.raises(ValueError, match="tolerance must be a finite number >= 0"):
        compare("accuracy", champion, challenger, ids(100), 0.02).passes(-0.1)
