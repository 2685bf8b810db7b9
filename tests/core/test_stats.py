"""pbrl.stats: IQM, stratified bootstrap intervals and performance profiles against numbers by hand."""

import numpy as np
import pytest

from pbrl import stats


def test_iqm_by_hand():
    assert stats.iqm(np.arange(1, 9)) == pytest.approx(4.5)  # mean(3, 4, 5, 6)
    # 12 scores pooled over [4 runs, 3 tasks]: cut 3 from each end -> middle 6 are 4..9
    x = np.arange(1, 13, dtype=float).reshape(4, 3)
    assert stats.iqm(x) == pytest.approx(np.mean([4, 5, 6, 7, 8, 9]))
    # an outlier does not move the IQM, it moves the mean
    y = np.array([1.0, 2, 3, 4, 5, 6, 7, 1000])
    assert stats.iqm(y) == pytest.approx(4.5)
    assert stats.aggregate(y, "mean") == pytest.approx(128.5)
    assert stats.optimality_gap([0.5, 1.0, 1.5]) == pytest.approx(0.5 / 3)


def test_stratified_interval_exact_distribution():
    # task A runs [0, 1], task B runs [5, 5, 5]; stratified resampling only moves task A:
    # the pooled mean is (k + 15) / 5 with k ~ Binomial(2, 1/2): 3.0 (1/4), 3.2 (1/2), 3.4 (1/4)
    scores = [np.array([0.0, 1.0]), np.array([5.0, 5.0, 5.0])]
    iv = stats.stratified_bootstrap_ci(scores, "mean", n_resamples=4000, seed=1)
    assert iv.value == pytest.approx(3.2)
    assert iv.low == pytest.approx(3.0)
    assert iv.high == pytest.approx(3.4)
    assert iv.n_runs == 5
    # a non-stratified bootstrap of the 5 pooled scores would reach 1.0 or 5.0; ours never leaves [3, 3.4]


def test_a_task_with_one_run_enters_every_replicate_as_a_constant():
    # uneven seeds per task (a study still running): task A runs [0, 1], task B one run [5]. The pooled mean
    # is (k + 5) / 3 with k ~ Binomial(2, 1/2): 5/3 (1/4), 2 (1/2), 7/3 (1/4). scipy refuses a sample of one
    # observation, which used to crash every report of such a grid.
    iv = stats.stratified_bootstrap_ci([np.array([0.0, 1.0]), np.array([5.0])], "mean", n_resamples=4000, seed=1)
    assert (iv.value, iv.n_runs) == (pytest.approx(2.0), 3)
    assert iv.low == pytest.approx(5 / 3) and iv.high == pytest.approx(7 / 3)
    iqm = stats.stratified_bootstrap_ci([np.array([0.2, 0.8, 0.4]), np.array([1.0])], "iqm", seed=0)
    assert iqm.low <= iqm.value <= iqm.high


def test_matrix_with_nan_equals_task_list():
    m = np.array([[0.0, 5.0], [1.0, 5.0], [np.nan, 5.0]])
    a = stats.stratified_bootstrap_ci(m, "mean", n_resamples=500, seed=3)
    b = stats.stratified_bootstrap_ci([[0.0, 1.0], [5.0, 5.0, 5.0]], "mean", n_resamples=500, seed=3)
    assert a == b


def test_iqm_interval_matches_independent_bootstrap():
    rng = np.random.default_rng(0)
    scores = rng.gamma(2.0, 1.0, size=(10, 4)) * np.array([1.0, 2.0, 3.0, 4.0])
    iv = stats.stratified_bootstrap_ci(scores, "iqm", n_resamples=4000, seed=0)
    # hand-written stratified bootstrap: resample rows within each column, pool, trimmed mean
    r2 = np.random.default_rng(123)
    reps = []
    for _ in range(4000):
        res = np.stack([scores[r2.integers(0, 10, 10), j] for j in range(4)], axis=1)
        s = np.sort(res.reshape(-1))
        reps.append(s[10:30].mean())  # 40 scores: drop 10 at each end
    lo, hi = np.quantile(reps, [0.025, 0.975])
    assert iv.value == pytest.approx(np.sort(scores.reshape(-1))[10:30].mean())
    width = hi - lo
    assert abs(iv.low - lo) < 0.08 * width and abs(iv.high - hi) < 0.08 * width


def test_mean_interval_matches_normal_theory():
    x = np.random.default_rng(5).normal(size=400)
    iv = stats.stratified_bootstrap_ci(x, "mean", n_resamples=3000, seed=0)
    half = 1.96 * x.std(ddof=1) / np.sqrt(len(x))
    assert (iv.high - iv.low) / 2 == pytest.approx(half, rel=0.12)
    assert iv.low < x.mean() < iv.high


def test_same_seed_same_interval_and_degenerate_cases():
    x = np.random.default_rng(2).normal(size=(5, 3))
    assert stats.stratified_bootstrap_ci(x, seed=4) == stats.stratified_bootstrap_ci(x, seed=4)
    one = stats.stratified_bootstrap_ci([[2.0], [4.0]], "mean")  # one run per task: nothing to resample
    assert (one.value, one.low, one.high) == (3.0, 3.0, 3.0)


def test_performance_profile_by_hand():
    scores = [np.array([0.0, 1.0, 2.0, 3.0]), np.array([10.0, 10.0])]
    prof, lo, hi = stats.performance_profile(scores, [1.5, 5.0, 20.0], n_resamples=500)
    np.testing.assert_allclose(prof, [0.75, 0.5, 0.0])  # (2/4 + 2/2) / 2, (0 + 1) / 2, 0
    assert np.all(lo <= prof + 1e-12) and np.all(hi >= prof - 1e-12)
    assert hi[1] == pytest.approx(0.5) and lo[1] == pytest.approx(0.5)  # task 2 always > 5, task 1 never
    assert lo[0] < 0.75 < hi[0]


def test_aggregate_metrics_table():
    d = {"a": np.ones((3, 2)), "b": np.arange(6.0).reshape(3, 2)}
    out = stats.aggregate_metrics(d, metrics=("iqm", "median"), n_resamples=200)
    assert out["a"]["iqm"].value == 1.0 and out["b"]["median"].value == 2.5
    assert out["b"]["iqm"].low <= out["b"]["iqm"].value <= out["b"]["iqm"].high


@pytest.mark.parametrize(
    "kwargs, msg",
    [
        ({"metric": "mode"}, "unknown metric 'mode'"),
        ({"confidence": 1.5}, "confidence must be in"),
        ({"method": "bogus"}, "method must be"),
    ],
)
def test_bad_arguments(kwargs, msg):
    with pytest.raises(ValueError, match=msg):
        stats.stratified_bootstrap_ci(np.ones((3, 2)), **kwargs)


def test_empty_task_column():
    with pytest.raises(ValueError, match="task column 1 has no finite score"):
        stats.aggregate([[1.0, 2.0], [np.nan]])


def test_probability_of_improvement_by_hand():
    # one task: X [0.9, 0.8], Y [0.1, 0.85]: pairs (0.9>0.1, 0.9>0.85, 0.8>0.1, 0.8<0.85) -> 3/4
    assert stats.probability_of_improvement(np.array([0.9, 0.8]), np.array([0.1, 0.85])).value == pytest.approx(0.75)
    # ties count one half; tasks weigh the same whatever their runs: task 1 gives 1.0, task 2 gives 0.5
    poi = stats.probability_of_improvement([[2.0, 3.0], [1.0]], [[0.0], [1.0, 1.0, 1.0]])
    assert (poi.value, poi.n_runs) == (pytest.approx(0.75), 7)
    # an agent against itself: exactly 0.5, and the interval straddles it
    x = np.random.default_rng(0).normal(size=(6, 3))
    same = stats.probability_of_improvement(x, x, n_resamples=1000)
    assert same.value == 0.5 and same.low < 0.5 < same.high
    with pytest.raises(ValueError, match="same tasks"):
        stats.probability_of_improvement(x, x[:, :2])


def test_probability_of_improvement_interval_exact_distribution():
    # X one task, runs [0, 1]; Y one run [0.5]: a replicate of X is (0,0), (0,1), (1,0) or (1,1), so P(X > Y)
    # is 0 (1/4), 0.5 (1/2) or 1 (1/4): the 95 % percentile interval is [0, 1], the 40 % one is [0.5, 0.5]
    wide = stats.probability_of_improvement(np.array([0.0, 1.0]), np.array([0.5]), n_resamples=4000, seed=1)
    narrow = stats.probability_of_improvement(np.array([0.0, 1.0]), np.array([0.5]), confidence=0.4,
                                              n_resamples=4000, seed=1)
    assert (wide.value, wide.low, wide.high) == (0.5, 0.0, 1.0)
    assert (narrow.low, narrow.high) == (0.5, 0.5)
