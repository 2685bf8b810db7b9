"""Aggregate statistics over runs, as rliable defines them (Agarwal et al., 2021, "Deep Reinforcement
Learning at the Edge of the Statistical Precipice", NeurIPS).

Scores are organised per agent as a matrix ``[n_runs, n_tasks]`` (one row per seed, one column per task;
``NaN`` marks a missing run, so tasks may have different numbers of seeds) or as a list of per-task 1-D
arrays. Everything is built on ``scipy.stats``:

* :func:`iqm`: the interquartile mean, ``scipy.stats.trim_mean(x, 0.25)`` over all runs of all tasks
  pooled (the mean of the middle 50 % of the scores);
* :func:`stratified_bootstrap_ci`: confidence intervals from the *stratified* bootstrap: each replicate
  resamples runs with replacement *within each task* (tasks are the strata) and recomputes the aggregate
  on the pooled resample; built on ``scipy.stats.bootstrap`` by giving it one sample per task
  (``scipy`` resamples each sample independently, which is exactly the stratification);
* :func:`performance_profile`: the run-score distribution ``F(tau) = mean over tasks of the fraction of
  runs with score > tau``, with stratified-bootstrap bands;
* :func:`probability_of_improvement`: ``P(X > Y)``, the chance that a run of agent X scores above a run of
  agent Y on a task, averaged over tasks (the Mann-Whitney U statistic over ``n_x * n_y``), with
  rliable's stratified *independent* bootstrap (X's and Y's runs resampled separately, within each task).

``tests/core/test_stats_rliable.py`` checks every one of them against the ``rliable`` package itself
(same point estimates; intervals within bootstrap tolerance). pbrl keeps its own implementation because
``rliable`` brings ``arch`` and ``statsmodels`` with it, which pbrl otherwise does not need.

Default interval: percentile method at 95 % confidence (rliable's default).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats as sps

__all__ = [
    "Interval",
    "iqm",
    "optimality_gap",
    "METRICS",
    "as_task_columns",
    "aggregate",
    "stratified_bootstrap_ci",
    "aggregate_metrics",
    "performance_profile",
    "probability_of_improvement",
]


@dataclass(frozen=True)
class Interval:
    """A point estimate with a confidence interval ``[low, high]`` and the number of runs behind it."""

    value: float
    low: float
    high: float
    n_runs: int = 0

    def as_dict(self) -> dict[str, float]:
        return {"value": self.value, "low": self.low, "high": self.high, "n_runs": self.n_runs}

    def __str__(self) -> str:
        return f"{self.value:.3f} [{self.low:.3f}, {self.high:.3f}]"


def iqm(x, axis: int | None = None) -> np.ndarray | float:
    """Interquartile mean: the mean of the scores between the 25th and 75th percentile.

    ``scipy.stats.trim_mean(x, 0.25, axis)``: with ``axis=None`` every score is pooled (rliable's
    definition over ``[n_runs, n_tasks]``). E.g. ``iqm([1, 2, ..., 8]) == mean(3, 4, 5, 6) == 4.5``.
    """
    x = np.asarray(x, dtype=np.float64)
    if axis is None:
        return float(sps.trim_mean(x.reshape(-1), 0.25))
    return sps.trim_mean(x, 0.25, axis=axis)


def optimality_gap(x, axis: int | None = None, gamma: float = 1.0) -> np.ndarray | float:
    """Optimality gap: ``mean(max(gamma - x, 0))``, how far scores fall short of the target ``gamma``
    (1.0 for scores normalised to [0, 1]; use 100 for D4RL-style normalised scores)."""
    x = np.asarray(x, dtype=np.float64)
    out = np.mean(np.maximum(gamma - x, 0.0), axis=axis)
    return float(out) if axis is None else out


def _mean(x, axis=None):
    out = np.mean(np.asarray(x, dtype=np.float64), axis=axis)
    return float(out) if axis is None else out


def _median(x, axis=None):
    out = np.median(np.asarray(x, dtype=np.float64), axis=axis)
    return float(out) if axis is None else out


METRICS: dict[str, Callable] = {"iqm": iqm, "mean": _mean, "median": _median, "optimality_gap": optimality_gap}
"""Aggregate metrics by name; each is ``f(x, axis=None)`` over pooled scores."""


def _metric(metric: str | Callable) -> Callable:
    if callable(metric):
        return metric
    if metric not in METRICS:
        raise ValueError(f"unknown metric '{metric}'; choose one of {sorted(METRICS)}")
    return METRICS[metric]


def as_task_columns(scores) -> list[np.ndarray]:
    """Normalise scores to a list of per-task 1-D float arrays (NaN dropped).

    Accepts ``[n_runs]`` (one task), ``[n_runs, n_tasks]`` (NaN = missing run), or a sequence of 1-D
    arrays (one per task, lengths may differ). Raises ``ValueError`` for an empty task or bad shape.
    """
    if isinstance(scores, np.ndarray) or (
        isinstance(scores, Sequence) and len(scores) and np.isscalar(scores[0])
    ):
        arr = np.asarray(scores, dtype=np.float64)
        if arr.ndim == 1:
            arr = arr[:, None]
        if arr.ndim != 2:
            raise ValueError(f"scores must be [n_runs] or [n_runs, n_tasks], got shape {arr.shape}")
        cols = [arr[:, j] for j in range(arr.shape[1])]
    else:
        cols = [np.asarray(c, dtype=np.float64).reshape(-1) for c in scores]
    cols = [c[np.isfinite(c)] for c in cols]
    if not cols:
        raise ValueError("scores are empty: give at least one task with one run")
    for j, c in enumerate(cols):
        if len(c) == 0:
            raise ValueError(f"task column {j} has no finite score; drop the task or add runs")
    return cols


def aggregate(scores, metric: str | Callable = "iqm") -> float:
    """The aggregate ``metric`` of all runs of all tasks pooled (point estimate, no interval)."""
    cols = as_task_columns(scores)
    return float(_metric(metric)(np.concatenate(cols)))


def stratified_bootstrap_ci(
    scores,
    metric: str | Callable = "iqm",
    confidence: float = 0.95,
    n_resamples: int = 2000,
    method: str = "percentile",
    seed: int | np.random.Generator | None = 0,
) -> Interval:
    """Point estimate and stratified-bootstrap confidence interval of an aggregate metric.

    Each bootstrap replicate draws, for every task independently, ``n_runs(task)`` runs with replacement
    from that task's runs, pools them, and evaluates ``metric`` (rliable's ``StratifiedBootstrap``).

    Args:
        scores: ``[n_runs, n_tasks]`` (NaN = missing), ``[n_runs]`` or a list of per-task arrays.
        metric: ``"iqm"`` (default), ``"mean"``, ``"median"``, ``"optimality_gap"`` or ``f(x, axis)``.
        confidence: confidence level in (0, 1).
        n_resamples: bootstrap replicates (rliable uses 50 000; 2000 is plenty for two decimals).
        method: ``"percentile"`` (rliable's default), ``"basic"`` or ``"BCa"`` (scipy's methods).
        seed: seed or Generator of the resampling.

    Returns:
        :class:`Interval` (``value`` is the metric on the original scores). A single run per task gives a
        degenerate interval equal to the point estimate.
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be >= 1, got {n_resamples}")
    if method not in ("percentile", "basic", "BCa"):
        raise ValueError(f"method must be 'percentile', 'basic' or 'BCa', got '{method}'")
    f = _metric(metric)
    cols = as_task_columns(scores)
    n = int(sum(len(c) for c in cols))
    value = float(f(np.concatenate(cols)))
    # a task with one run resamples to itself: it enters every replicate as a constant (scipy refuses
    # samples of one observation), so uneven seeds per task (a study still running) still get an interval
    multi = [c for c in cols if len(c) >= 2]
    fixed = np.concatenate([c for c in cols if len(c) < 2] or [np.empty(0)])
    if not multi or all(np.ptp(c) == 0 for c in multi):
        return Interval(value, value, value, n)  # nothing to resample: every replicate is identical

    def statistic(*samples, axis=-1):
        parts = [np.moveaxis(np.asarray(s), axis, -1) for s in samples]
        if len(fixed):
            parts.append(np.broadcast_to(fixed, parts[0].shape[:-1] + fixed.shape))
        return f(np.concatenate(parts, axis=-1), axis=-1)

    res = sps.bootstrap(
        tuple(multi),
        statistic,
        n_resamples=n_resamples,
        confidence_level=confidence,
        method=method,
        vectorized=True,
        paired=False,
        axis=-1,
        batch=max(1, min(n_resamples, 2_000_000 // max(n, 1))),
        rng=np.random.default_rng(seed) if not isinstance(seed, np.random.Generator) else seed,
    )
    low, high = float(res.confidence_interval.low), float(res.confidence_interval.high)
    if not np.isfinite(low) or not np.isfinite(high):  # e.g. BCa on a degenerate distribution
        low = high = value
    return Interval(value, low, high, n)


def aggregate_metrics(
    score_dict: Mapping[str, object],
    metrics: Sequence[str] = ("iqm", "mean", "median"),
    confidence: float = 0.95,
    n_resamples: int = 2000,
    seed: int = 0,
) -> dict[str, dict[str, Interval]]:
    """For each agent of ``score_dict`` (``{agent: scores}``) and each metric: :class:`Interval`.

    Returns ``{agent: {metric: Interval}}``; same seed, same intervals.
    """
    out: dict[str, dict[str, Interval]] = {}
    for agent, scores in score_dict.items():
        out[agent] = {
            m: stratified_bootstrap_ci(scores, m, confidence, n_resamples, seed=seed) for m in metrics
        }
    return out


def performance_profile(
    scores,
    taus,
    confidence: float = 0.95,
    n_resamples: int = 1000,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Run-score performance profile with stratified-bootstrap bands.

    ``F(tau) = (1 / n_tasks) * sum_m (1 / N_m) * sum_k 1[x_{m,k} > tau]``: the fraction of runs scoring
    above ``tau``, averaged over tasks so that each task weighs the same (rliable's
    ``run_score_deviation``).

    Args:
        scores: ``[n_runs, n_tasks]`` / list of per-task arrays of one agent.
        taus: ``[K]`` thresholds.

    Returns:
        ``(profile [K], low [K], high [K])``.
    """
    taus = np.asarray(taus, dtype=np.float64).reshape(-1)
    cols = as_task_columns(scores)

    def prof(cs, axis=-1):
        # cs: per-task arrays [..., n_m]; result [..., K]
        parts = [np.mean(np.asarray(c)[..., None] > taus, axis=-2) for c in cs]
        return np.mean(np.stack(parts, axis=0), axis=0)

    point = prof(cols)
    if all(len(c) < 2 for c in cols):
        return point, point.copy(), point.copy()
    rng = np.random.default_rng(seed)
    alpha = (1.0 - confidence) / 2.0
    reps = np.empty((n_resamples, len(taus)))
    chunk = max(1, 200_000 // max(1, sum(len(c) for c in cols) * len(taus)))
    for s in range(0, n_resamples, chunk):
        k = min(chunk, n_resamples - s)
        res = [c[rng.integers(0, len(c), size=(k, len(c)))] for c in cols]  # stratified: within each task
        reps[s : s + k] = prof(res)
    low, high = np.quantile(reps, [alpha, 1.0 - alpha], axis=0)
    return point, low, high


def _poi(cols_x: Sequence[np.ndarray], cols_y: Sequence[np.ndarray]) -> np.ndarray:
    """``P(X > Y)`` averaged over tasks for stacks of resamples: ``cols_x[m]`` is ``[..., n_x(m)]``,
    ``cols_y[m]`` is ``[..., n_y(m)]``; a tie counts one half. Returns ``[...]``."""
    per_task = []
    for x, y in zip(cols_x, cols_y):
        d = np.asarray(x)[..., :, None] - np.asarray(y)[..., None, :]  # [..., n_x, n_y]
        per_task.append(np.mean((d > 0) + 0.5 * (d == 0), axis=(-2, -1)))
    return np.mean(np.stack(per_task, axis=0), axis=0)


def probability_of_improvement(
    scores_x,
    scores_y,
    confidence: float = 0.95,
    n_resamples: int = 2000,
    seed: int | np.random.Generator | None = 0,
) -> Interval:
    """Probability of improvement of agent X over agent Y, with a stratified-bootstrap interval.

    ``P(X > Y) = (1 / M) * sum_m (1 / (N_x N_y)) * sum_{i,j} S(x_{m,i}, y_{m,j})``, with ``S = 1`` if
    ``x > y``, ``1/2`` if equal, ``0`` otherwise (Agarwal et al., 2021, eq. for "probability of
    improvement"; per task it is the Mann-Whitney U statistic over ``N_x N_y``, as in rliable's
    ``metrics.probability_of_improvement``). 0.5 means neither is better; above 0.5, X tends to score
    higher. The interval resamples X's runs and Y's runs independently, each within each task (rliable's
    ``StratifiedIndependentBootstrap``), percentile method.

    Args:
        scores_x: X's scores, ``[n_runs_x, n_tasks]`` (NaN = missing), ``[n_runs_x]`` or a list of per-task
            arrays.
        scores_y: Y's scores on the same tasks, in the same column order (its own number of runs).
        confidence: confidence level in (0, 1) (default 0.95).
        n_resamples: bootstrap replicates (default 2000).
        seed: seed or Generator of the resampling (default 0).

    Returns:
        :class:`Interval` (``value`` on the original scores, ``n_runs`` = runs of X plus runs of Y).

    Example:
        one task, X scores ``[0.9, 0.8]``, Y ``[0.1, 0.85]``: three of the four pairs favour X, so
        ``probability_of_improvement(np.array([0.9, 0.8]), np.array([0.1, 0.85])).value == 0.75``.
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be >= 1, got {n_resamples}")
    cx, cy = as_task_columns(scores_x), as_task_columns(scores_y)
    if len(cx) != len(cy):
        raise ValueError(f"scores_x has {len(cx)} tasks but scores_y has {len(cy)}; compare the agents on the "
                         "same tasks, in the same column order")
    value = float(_poi(cx, cy))
    n = int(sum(len(c) for c in cx) + sum(len(c) for c in cy))
    if all(len(c) < 2 for c in cx + cy):
        return Interval(value, value, value, n)
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    reps = np.empty(n_resamples)
    size = max(1, max(len(a) * len(b) for a, b in zip(cx, cy)) * len(cx))
    chunk = max(1, 2_000_000 // size)
    for s in range(0, n_resamples, chunk):
        k = min(chunk, n_resamples - s)
        rx = [c[rng.integers(0, len(c), size=(k, len(c)))] for c in cx]  # within each task, X and Y apart
        ry = [c[rng.integers(0, len(c), size=(k, len(c)))] for c in cy]
        reps[s : s + k] = _poi(rx, ry)
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(reps, [alpha, 1.0 - alpha])
    return Interval(value, float(low), float(high), n)
