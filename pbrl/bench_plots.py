"""The harness's figures (:mod:`pbrl.bench`): IQM bars with their intervals and IQM learning curves with
bands, one panel per dataset, task or aggregate."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from pbrl.io import atomic_write

__all__ = ["plot_bars", "plot_curves"]


def _panels(n: int):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ncol = min(n, 3)
    nrow = math.ceil(n / ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(4.8 * ncol, 3.6 * nrow), squeeze=False)
    for k in range(n, nrow * ncol):
        axes[k // ncol][k % ncol].axis("off")
    return fig, [axes[k // ncol][k % ncol] for k in range(n)], plt.rcParams["axes.prop_cycle"].by_key()["color"]


def _save(fig, path: Path) -> None:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)


def plot_bars(panels: list[tuple[str, dict[str, dict], str]], rows: list[str], path: Path,
              reference: tuple[str, float, str] | None = None, cost: tuple[dict[str, float], str] | None = None) -> Path:
    """IQM bars with their 95 % intervals, one panel per ``(title, {row: {"iqm": ...}}, unit)``.

    Args:
        rows: the rows in order (their colours).
        reference: ``(row, share, label)``: a dashed line at ``share`` x that row's IQM in each panel where it
            is positive.
        cost: ``({row: value}, ylabel)``: a last panel of bars (e.g. CPU per 1k updates).
    """
    fig, axes, colors = _panels(len(panels) + (cost is not None))
    for ax, (title, data, unit) in zip(axes, panels):
        present = [a for a in rows if a in data]
        x = np.arange(len(present))
        v = np.array([data[a]["iqm"]["value"] for a in present])
        err = np.array([[v[i] - data[a]["iqm"]["low"], data[a]["iqm"]["high"] - v[i]] for i, a in enumerate(present)]).T
        ax.bar(x, v, yerr=err, capsize=3, color=[colors[rows.index(a) % len(colors)] for a in present])
        ax.set_xticks(x, present, rotation=30, ha="right", fontsize=8)
        ax.set_ylabel(f"IQM {unit} (95 % CI)")
        ax.set_title(title, fontsize=9)
        if reference is not None and reference[0] in data and data[reference[0]]["iqm"]["value"] > 0:
            ax.axhline(reference[1] * data[reference[0]]["iqm"]["value"], color="k", ls="--", lw=0.8, label=reference[2])
            ax.legend(fontsize=7)
    if cost is not None:
        ax, (vals, ylabel) = axes[-1], cost
        present = [a for a in rows if a in vals]
        ax.bar(np.arange(len(present)), [vals[a] for a in present],
               color=[colors[rows.index(a) % len(colors)] for a in present])
        ax.set_xticks(np.arange(len(present)), present, rotation=30, ha="right", fontsize=8)
        ax.set_ylabel(ylabel)
        ax.set_title("cost (1 torch thread per run)", fontsize=9)
    _save(fig, path)
    return path


def plot_curves(panels: list[tuple[str, dict[str, dict], str]], rows: list[str], path: Path, xlabel: str = "env steps",
                marks: dict[str, dict[str, float | None]] | None = None) -> Path:
    """IQM curves with 95 % bands, one panel per ``(title, {row: {"curve": {"step", "value", "low", "high"}}},
    unit)``; ``marks`` ``{title: {row: x}}`` draws a dotted vertical line per row (e.g. where it flattens)."""
    fig, axes, colors = _panels(len(panels))
    for ax, (title, data, unit) in zip(axes, panels):
        for a in rows:
            if a not in data or not data[a]["curve"]["step"]:
                continue
            c, col = data[a]["curve"], colors[rows.index(a) % len(colors)]
            ax.plot(c["step"], c["value"], color=col, label=a, marker="o" if len(c["step"]) < 12 else None, ms=3)
            ax.fill_between(c["step"], c["low"], c["high"], color=col, alpha=0.2, linewidth=0)
            if marks and title in marks and marks[title].get(a) is not None:
                ax.axvline(marks[title][a], color=col, ls=":", lw=1)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(f"IQM {unit} (95 % CI)")
        ax.set_title(title, fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    _save(fig, path)
    return path
