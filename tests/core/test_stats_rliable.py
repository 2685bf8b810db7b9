"""pbrl.stats against the ``rliable`` package itself (Agarwal et al., 2021) on the same score matrices: the
same point estimates, and intervals that agree within bootstrap tolerance (the two draw different resamples).
Skipped when rliable is not installed (``scripts/setup.sh`` installs it beside arch 8 for this test)."""

import inspect

import numpy as np
import pytest

from pbrl import stats

try:
    import rliable.library as rly
    import rliable.metrics as rmetrics
except ImportError:
    pytest.skip("rliable is not installed (pip install rliable arch==8.0.0)", allow_module_level=True)
except TypeError as e:  # arch 7 (rliable's declared arch < 8) does not import with pandas 3
    pytest.skip(f"rliable's arch does not import here ({e}); pip install arch==8.0.0", allow_module_level=True)

REPS = 2000


@pytest.fixture(autouse=True)
def _arch_seed_keyword(monkeypatch):
    """rliable 1.2 hands ``random_state=`` to arch's bootstrap classes, a keyword arch 8 dropped (and arch 7,
    the newest rliable declares, does not import with pandas 3): on arch 8 the keyword is dropped here.
    rliable draws its stratified resamples from NumPy's global RNG anyway, which each test seeds."""
    import arch.bootstrap as ab

    for cls in (ab.IIDBootstrap, ab.IndependentSamplesBootstrap):
        if "random_state" in inspect.signature(cls.__init__).parameters:
            continue
        init = cls.__init__

        def without_random_state(self, *args, random_state=None, _init=init, **kwargs):
            _init(self, *args, **kwargs)

        monkeypatch.setattr(cls, "__init__", without_random_state)
    np.random.seed(0)  # noqa: NPY002 - rliable draws its resamples from the global RNG


@pytest.fixture(scope="module")
def scores():
    """Three agents on five tasks, ten runs each, normalised-like scores with a long tail."""
    rng = np.random.default_rng(0)
    base = rng.uniform(0.2, 0.9, size=5)
    return {name: np.clip(base + shift + rng.gamma(2.0, 0.1, size=(10, 5)) - 0.2, 0, 1.3)
            for name, shift in (("a", 0.0), ("b", 0.1), ("c", -0.15))}


def _close(iv: stats.Interval, point: float, ci: np.ndarray) -> None:
    assert iv.value == pytest.approx(float(point), abs=1e-9)
    lo, hi = float(np.ravel(ci)[0]), float(np.ravel(ci)[1])
    tol = 0.1 * (hi - lo) + 1e-9  # two bootstraps with different resamples: ends within 10 % of the width
    assert abs(iv.low - lo) < tol and abs(iv.high - hi) < tol


@pytest.mark.parametrize("metric, fn", [
    ("iqm", lambda x: np.array([rmetrics.aggregate_iqm(x)])),
    ("mean", lambda x: np.array([rmetrics.aggregate_mean(x)])),
    # pbrl's median pools every run of every task; rliable's aggregate_median is the median of the per-task
    # means, a different statistic: the bootstrap of pbrl's is checked through rliable's bootstrap
    ("median", lambda x: np.array([np.median(x)])),
    ("optimality_gap", lambda x: np.array([rmetrics.aggregate_optimality_gap(x, 1.0)])),
])
def test_aggregates_and_their_intervals_match_rliable(scores, metric, fn):
    points, cis = rly.get_interval_estimates(scores, fn, reps=REPS)
    for name, x in scores.items():
        _close(stats.stratified_bootstrap_ci(x, metric, n_resamples=REPS, seed=0), points[name][0], cis[name])


def test_probability_of_improvement_matches_rliable(scores):
    pairs = {f"{x},a": (scores[x], scores["a"]) for x in ("b", "c")}
    points, cis = rly.get_interval_estimates(pairs, rmetrics.probability_of_improvement, reps=REPS)
    for key, (x, y) in pairs.items():
        iv = stats.probability_of_improvement(x, y, n_resamples=REPS, seed=0)
        assert iv.value == pytest.approx(float(rmetrics.probability_of_improvement(x, y)), abs=1e-12)
        _close(iv, points[key], cis[key])
    assert stats.probability_of_improvement(scores["b"], scores["a"]).value > 0.5  # b is shifted up


def test_performance_profile_matches_rliable(scores):
    taus = np.linspace(0.0, 1.3, 27)
    profiles, cis = rly.create_performance_profile(scores, taus, reps=REPS)
    for name, x in scores.items():
        point, low, high = stats.performance_profile(x, taus, n_resamples=REPS, seed=0)
        np.testing.assert_allclose(point, profiles[name], atol=1e-12)
        width = np.maximum(cis[name][1] - cis[name][0], 1e-9)
        assert np.all(np.abs(low - cis[name][0]) <= 0.15 * width + 0.021)  # 0.02: one run in 50 on a step
        assert np.all(np.abs(high - cis[name][1]) <= 0.15 * width + 0.021)
