"""Plots of run results (matplotlib, Agg backend, PNG): learning curves with confidence bands, performance
profiles and interval bars of aggregate metrics, as ``pbrl report`` draws them.

Every function takes plain NumPy data (one entry per agent/group), writes one PNG atomically and returns
its path.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from pbrl.preferences import atomic_write  # noqa: E402

__all__ = ["plot_curves", "plot_performance_profiles", "plot_interval_bars", "plot_report",
           "plot_probability_of_improvement"]

_COLORS = plt.rcParams["axes.prop_cycle"].by_key()["color"]


def _save(fig, path: str | os.PathLike) -> Path:
    path = Path(path)
    with atomic_write(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path


def _draw_curves(ax, curves: Mapping[str, tuple], xlabel: str, ylabel: str, title: str | None) -> None:
    for i, (name, (x, y, lo, hi)) in enumerate(curves.items()):
        c = _COLORS[i % len(_COLORS)]
        x, y, lo, hi = (np.asarray(v, dtype=np.float64) for v in (x, y, lo, hi))
        ax.plot(x, y, color=c, label=name, marker="o" if len(x) < 12 else None, ms=3)
        ax.fill_between(x, lo, hi, color=c, alpha=0.2, linewidth=0)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)


def plot_curves(
    curves: Mapping[str, tuple[Sequence[float], Sequence[float], Sequence[float], Sequence[float]]],
    path: str | os.PathLike,
    xlabel: str = "env steps",
    ylabel: str = "IQM return",
    title: str | None = None,
) -> Path:
    """Learning curves, one line per group with its confidence band.

    Args:
        curves: ``{group: (x [K], y [K], low [K], high [K])}``.
        path: PNG file to write.
    """
    if not curves:
        raise ValueError("no curves to plot")
    fig, ax = plt.subplots(figsize=(6, 4))
    _draw_curves(ax, curves, xlabel, ylabel, title)
    return _save(fig, path)


def plot_performance_profiles(
    profiles: Mapping[str, tuple[Sequence[float], Sequence[float], Sequence[float], Sequence[float]]],
    path: str | os.PathLike,
    xlabel: str = "score threshold tau",
    title: str | None = "Performance profile",
) -> Path:
    """Run-score distributions ``P(score > tau)`` per group with bands: ``{group: (taus, F, low, high)}``."""
    if not profiles:
        raise ValueError("no profiles to plot")
    fig, ax = plt.subplots(figsize=(6, 4))
    _draw_curves(ax, profiles, xlabel, "fraction of runs with score > tau", title)
    ax.set_ylim(-0.02, 1.02)
    return _save(fig, path)


def plot_interval_bars(
    intervals: Mapping[str, Mapping[str, object]],
    path: str | os.PathLike,
    metrics: Sequence[str] | None = None,
    xlabel: str = "score",
) -> Path:
    """rliable-style interval plot: one panel per metric, one horizontal bar per group spanning its
    confidence interval with a tick at the point estimate.

    Args:
        intervals: ``{group: {metric: Interval}}`` (:class:`pbrl.stats.Interval`).
    """
    if not intervals:
        raise ValueError("no intervals to plot")
    groups = list(intervals)
    metrics = list(metrics or next(iter(intervals.values())).keys())
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.2 * len(metrics), 0.5 + 0.45 * len(groups)), squeeze=False)
    for ax, m in zip(axes[0], metrics):
        for i, g in enumerate(groups):
            iv = intervals[g][m]
            c = _COLORS[i % len(_COLORS)]
            ax.barh(i, iv.high - iv.low, left=iv.low, height=0.6, color=c, alpha=0.6)
            ax.plot([iv.value, iv.value], [i - 0.3, i + 0.3], color="k", lw=1.5)
        ax.set_yticks(range(len(groups)))
        ax.set_yticklabels(groups if ax is axes[0][0] else [""] * len(groups))
        ax.set_title(m.upper() if m == "iqm" else m.replace("_", " ").title())
        ax.set_xlabel(xlabel)
        ax.grid(axis="x", alpha=0.3)
    return _save(fig, path)


def plot_probability_of_improvement(
    pois: Mapping[str, object],
    baseline: str,
    path: str | os.PathLike,
) -> Path:
    """rliable-style probability-of-improvement plot: one horizontal bar per group spanning its interval of
    ``P(group > baseline)``, a tick at the point estimate, and a dashed line at 0.5 (no difference).

    Args:
        pois: ``{group: Interval}`` (:func:`pbrl.stats.probability_of_improvement`).
        baseline: the group they are compared with (named on the x axis).
    """
    if not pois:
        raise ValueError("no probabilities of improvement to plot")
    groups = list(pois)
    fig, ax = plt.subplots(figsize=(5.5, 0.8 + 0.45 * len(groups)))
    for i, g in enumerate(groups):
        iv = pois[g]
        c = _COLORS[i % len(_COLORS)]
        ax.barh(i, iv.high - iv.low, left=iv.low, height=0.6, color=c, alpha=0.6)
        ax.plot([iv.value, iv.value], [i - 0.3, i + 0.3], color="k", lw=1.5)
    ax.axvline(0.5, color="grey", ls="--", lw=1)
    ax.set_xlim(0, 1)
    ax.set_yticks(range(len(groups)))
    ax.set_yticklabels(groups)
    ax.set_xlabel(f"P(X > {baseline}): probability of improvement")
    ax.grid(axis="x", alpha=0.3)
    return _save(fig, path)


def plot_report(
    steps_curves: Mapping[str, tuple],
    label_curves: Mapping[str, tuple],
    profiles: Mapping[str, tuple],
    path: str | os.PathLike,
    score_name: str = "return",
) -> Path:
    """One figure of three panels (curves vs env steps, curves vs labels, performance profile): the
    summary image ``pbrl report`` writes as ``report.png``."""
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.2))
    _draw_curves(axes[0], steps_curves, "env steps (offline: gradient updates)", f"IQM {score_name}", "Learning curves")
    _draw_curves(axes[1], label_curves, "labels used", f"IQM {score_name}", "Feedback efficiency")
    _draw_curves(axes[2], profiles, f"{score_name} threshold tau", "fraction of runs > tau", "Performance profile")
    axes[2].set_ylim(-0.02, 1.02)
    fig.tight_layout()
    return _save(fig, path)
