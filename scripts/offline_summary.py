"""The offline benchmarks' summary of finished sweep runs (``scripts/bench_offline.py``,
``scripts/offline_curve.py``): scores, IQM with 95 % stratified-bootstrap intervals (:mod:`pbrl.stats`),
IQM learning curves with bands, the ratio to IQL on the true reward, timing from each run's ``metrics.json``,
the Markdown table, the bar and curve plots, and :func:`pbrl.report.build_report` per dataset.

A dataset record (``bench_offline.prepare_datasets``) carries ``name``, ``slug``, ``metric``
(``success_rate``, ``normalized_score`` or ``return``) and ``ref`` (the reference returns of a normalised
score); runs come as ``{(dataset name, benchmark row): [pbrl.report.RunRecord]}``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

#: the upper bound every ratio is taken to: IQL on the dataset's true reward
UPPER_BOUND = "iql_true"
#: an agent "reaches" a dataset at this share of IQL-true's IQM
TARGET_RATIO = 0.8
N_RESAMPLES = 2000
#: display labels of the benchmark rows (the registry's one-line summaries are longer)
LABELS = {
    "iql_true": "IQL (true reward)",
    "bc": "BC (no labels)",
    "mriql": "MR + IQL",
    "pt_iql": "PT + IQL",
    "ipl": "IPL",
    "iplawac": "IPL (AWAC)",
    "cpl": "CPL",
    "cplbc": "CPL-BC",
    "cpl_regret": "CPL (regret labels)",
    "cplbc_regret": "CPL-BC (regret labels)",
    "oppo": "OPPO",
    "pearl": "PEARL (0 target labels)",
    "dppo": "DPPO",
    "dtr": "DTR",
    "mriql_zscore": "MR + IQL (z-scored ensemble)",
}
#: the title of the aggregate's panel in the plots
AGGREGATE = "aggregate (IQM over datasets x seeds)"
UNITS = {"success_rate": "success %", "normalized_score": "D4RL-normalised", "return": "return"}


def score_fn(d: dict[str, Any]):
    """``f(evaluation record) -> score`` of dataset ``d`` (success %, normalised score or return)."""
    if d["metric"] == "success_rate":
        return lambda rec: 100.0 * float(rec["success_rate"])
    if d["metric"] == "normalized_score":
        lo, hi = d["ref"]
        return lambda rec: 100.0 * (float(rec["mean_return"]) - lo) / (hi - lo)
    return lambda rec: float(rec["mean_return"])


def interval(cols: list, seed: int = 0) -> dict[str, float]:
    """IQM with its 95 % stratified-bootstrap interval (columns = strata)."""
    from pbrl import stats

    iv = stats.stratified_bootstrap_ci([np.asarray(c, float) for c in cols], "iqm", n_resamples=N_RESAMPLES, seed=seed)
    return {"value": float(iv.value), "low": float(iv.low), "high": float(iv.high), "n_runs": int(iv.n_runs)}


def iqm_curve(strata: list[tuple[list, Any]], seed: int = 0) -> dict[str, list[float]]:
    """IQM learning curve with 95 % bands: ``strata`` = ``[(runs, score_fn)]`` (one per dataset); a step
    counts when every stratum has an evaluation there."""
    per = [{} for _ in strata]
    for k, (runs, f) in enumerate(strata):
        for r in runs:
            for c in r.curve:
                per[k].setdefault(int(c["step"]), []).append(f(c))
    steps = sorted(set.intersection(*(set(p) for p in per))) if per else []
    out: dict[str, list[float]] = {"step": [], "value": [], "low": [], "high": []}
    for s in steps:
        iv = interval([p[s] for p in per], seed)
        out["step"].append(s)
        for k in ("value", "low", "high"):
            out[k].append(iv[k])
    return out


def _timing(rs: list) -> dict[str, float]:
    cpu = [float(r.metrics["cpu_time_s"]) for r in rs]
    upd = [max(int(r.metrics["steps"]), 1) for r in rs]
    wall = [max(float(r.metrics["wall_time_s"]), 1e-9) for r in rs]
    return {"cpu_s_per_run": float(np.mean(cpu)),
            "cpu_s_per_1k_updates": float(np.mean([1000 * c / u for c, u in zip(cpu, upd)])),
            "updates_per_s": float(np.mean([u / w for u, w in zip(upd, wall)]))}


def _ratio(row: dict, ub: dict | None) -> float | None:
    ref = None if ub is None else ub["iqm"]["value"]
    return row["iqm"]["value"] / ref if ref is not None and ref > 0 else None


def summarise(runs: dict, datasets: list[dict[str, Any]], agents: list[str], seed: int = 0) -> dict[str, Any]:
    """Per dataset and agent: IQM [95 % CI] over seeds, mean / std / per seed, ratio to IQL-true, curve;
    the aggregate over the 0-100-scale datasets; timing per agent; datasets at >= 80 % of IQL-true."""
    per_dataset: dict[str, dict[str, Any]] = {}
    for d in datasets:
        f, rows = score_fn(d), {}
        for a in agents:
            rs = sorted(runs.get((d["name"], a), []), key=lambda r: r.config["seed"])
            if not rs:
                continue
            vals = [f(r.metrics["final"]) for r in rs]
            rows[a] = {"metric": d["metric"], "n_runs": len(rs), "seeds": [int(r.config["seed"]) for r in rs],
                       "per_seed": vals, "iqm": interval([vals], seed), "mean": float(np.mean(vals)),
                       "std": float(np.std(vals)), "curve": iqm_curve([(rs, f)], seed), **_timing(rs)}
        for row in rows.values():
            row["ratio_to_iql_true"] = _ratio(row, rows.get(UPPER_BOUND))
        per_dataset[d["name"]] = rows
    scaled = [d for d in datasets if d["metric"] != "return"]
    aggregate = {}
    for a in agents:
        if not scaled or not all(runs.get((d["name"], a)) for d in scaled):
            continue
        strata = [(runs[(d["name"], a)], score_fn(d)) for d in scaled]
        aggregate[a] = {"datasets": [d["name"] for d in scaled], "n_runs": sum(len(s[0]) for s in strata),
                        "iqm": interval([[f(r.metrics["final"]) for r in rs] for rs, f in strata], seed),
                        "curve": iqm_curve(strata, seed)}
    for row in aggregate.values():
        row["ratio_to_iql_true"] = _ratio(row, aggregate.get(UPPER_BOUND))
    timing = {a: _timing(rs) for a in agents if (rs := [r for d in datasets for r in runs.get((d["name"], a), [])])}
    target = {a: [n for n, rows in per_dataset.items()
                  if (rows.get(a) or {}).get("ratio_to_iql_true") is not None and rows[a]["ratio_to_iql_true"] >= TARGET_RATIO]
              for a in agents if a != UPPER_BOUND}
    return {"per_dataset": per_dataset, "aggregate": aggregate, "timing": timing,
            "target": {"ratio": TARGET_RATIO, "datasets_at_or_above": target}}



def markdown(summary: dict[str, Any], agents: list[str]) -> str:
    """The table: IQM [95 % CI] and % of IQL-true per dataset, the aggregate, target counts, timing."""
    cols = [a for a in agents if a in summary["timing"]]

    def cell(row: dict | None) -> str:
        if row is None:
            return "-"
        i, r = row["iqm"], row.get("ratio_to_iql_true")
        return f"{i['value']:.1f} [{i['low']:.1f}, {i['high']:.1f}]" + ("" if r is None else f" ({100 * r:.0f} %)")

    lines = ["| dataset | score | " + " | ".join(LABELS.get(a, a) for a in cols) + " |",
             "|---|---|" + "---:|" * len(cols)]
    for name, rows in summary["per_dataset"].items():
        metric = next(iter(rows.values()))["metric"] if rows else "return"
        lines.append(f"| {name} | {UNITS[metric]} | " + " | ".join(cell(rows.get(a)) for a in cols) + " |")
    agg = summary["aggregate"]
    if agg:
        n = len(next(iter(agg.values()))["datasets"])
        lines.append(f"| aggregate ({n} datasets x seeds) | 0-100 | " + " | ".join(cell(agg.get(a)) for a in cols) + " |")
    hits = summary["target"]["datasets_at_or_above"]
    lines.append(f"| datasets at >= {100 * TARGET_RATIO:.0f} % of IQL-true | | "
                 + " | ".join("" if a not in hits else str(len(hits[a])) for a in cols) + " |")
    t = summary["timing"]
    lines.append("| CPU s per 1k updates (whole run) | | " + " | ".join(f"{t[a]['cpu_s_per_1k_updates']:.1f}" for a in cols) + " |")
    lines.append("| updates per wall-second (whole run) | | " + " | ".join(f"{t[a]['updates_per_s']:.1f}" for a in cols) + " |")
    return "\n".join(lines)


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

    from pbrl.io import atomic_write

    fig.tight_layout()
    with atomic_write(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)


def _panel_rows(summary: dict[str, Any]) -> list[tuple[str, dict, str]]:
    out = [(n, rows, UNITS[next(iter(rows.values()))["metric"]]) for n, rows in summary["per_dataset"].items() if rows]
    if summary["aggregate"]:
        out.append((AGGREGATE, summary["aggregate"], "0-100 score"))
    return out


def plot_bars(summary: dict[str, Any], agents: list[str], path: Path) -> None:
    """IQM bars with 95 % intervals per dataset and for the aggregate, and CPU s per 1k updates."""
    panels = _panel_rows(summary)
    fig, axes, colors = _panels(len(panels) + 1)
    for ax, (title, rows, unit) in zip(axes, panels):
        present = [a for a in agents if a in rows]
        x = np.arange(len(present))
        v = np.array([rows[a]["iqm"]["value"] for a in present])
        err = np.array([[v[i] - rows[a]["iqm"]["low"], rows[a]["iqm"]["high"] - v[i]] for i, a in enumerate(present)]).T
        ax.bar(x, v, yerr=err, capsize=3, color=[colors[agents.index(a) % len(colors)] for a in present])
        ax.set_xticks(x, present, rotation=30, ha="right", fontsize=8)
        ax.set_ylabel(f"IQM {unit} (95 % CI)")
        ax.set_title(title, fontsize=9)
        if UPPER_BOUND in rows and rows[UPPER_BOUND]["iqm"]["value"] > 0:  # a share of a negative return means nothing
            ax.axhline(TARGET_RATIO * rows[UPPER_BOUND]["iqm"]["value"], color="k", ls="--", lw=0.8,
                       label=f"{100 * TARGET_RATIO:.0f} % of IQL (true r)")
            ax.legend(fontsize=7)
    ax, t = axes[-1], summary["timing"]
    present = [a for a in agents if a in t]
    ax.bar(np.arange(len(present)), [t[a]["cpu_s_per_1k_updates"] for a in present],
           color=[colors[agents.index(a) % len(colors)] for a in present])
    ax.set_xticks(np.arange(len(present)), present, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("CPU s per 1k updates (whole run)")
    ax.set_title("cost (1 torch thread per run)", fontsize=9)
    _save(fig, path)


def plot_curves(summary: dict[str, Any], agents: list[str], path: Path, marks: dict | None = None) -> None:
    """IQM score against updates with 95 % bands, one panel per dataset (and the aggregate); ``marks``
    ``{panel title: {agent: update}}`` draws a dotted vertical line per agent (where its curve flattens)."""
    panels = _panel_rows(summary)
    fig, axes, colors = _panels(len(panels))
    for ax, (title, rows, unit) in zip(axes, panels):
        for a in agents:
            if a not in rows or not rows[a]["curve"]["step"]:
                continue
            c, col = rows[a]["curve"], colors[agents.index(a) % len(colors)]
            ax.plot(c["step"], c["value"], color=col, label=a, marker="o" if len(c["step"]) < 12 else None, ms=3)
            ax.fill_between(c["step"], c["low"], c["high"], color=col, alpha=0.2, linewidth=0)
            if marks and (title in marks) and marks[title].get(a) is not None:
                ax.axvline(marks[title][a], color=col, ls=":", lw=1)
        ax.set_xlabel("gradient updates")
        ax.set_ylabel(f"IQM {unit} (95 % CI)")
        ax.set_title(title, fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    _save(fig, path)


def write_reports(out: Path, runs: dict, datasets: list[dict[str, Any]], variants: set[str] = frozenset()) -> dict[str, Any]:
    """:func:`pbrl.report.build_report` over each dataset's finished runs, into ``<out>/report/<dataset>/``.

    The report groups runs by their config's agent, so a ``variants`` row (a registry agent with settings
    of its own, e.g. ``pt_iql``, which is ``mriql``) gets a report of its own in ``<out>/report/<dataset>/<row>/``
    instead of being pooled with the plain agent's runs. Returns ``{dataset: {"dir", "plots", "warnings"}}``
    (a variant's under ``"<dataset>/<row>"``)."""
    from pbrl.report import build_report

    reports = {}
    for d in datasets:
        rows = sorted({row for (name, row) in runs if name == d["name"]})
        groups = [(d["name"], out / "report" / d["slug"], [r for r in rows if r not in variants])]
        groups += [(f"{d['name']}/{r}", out / "report" / d["slug"] / r, [r]) for r in rows if r in variants]
        for key, folder, members in groups:
            dirs = [r.path for row in members for r in runs[(d["name"], row)]]
            if not dirs:
                continue
            rep = build_report(dirs, score="success" if d["metric"] == "success_rate" else "return",
                               group_by=("agent",), out=folder, overwrite=True)
            reports[key] = {"dir": str(folder), "plots": rep.get("plots", []), "warnings": rep.get("warnings", [])}
    return reports
