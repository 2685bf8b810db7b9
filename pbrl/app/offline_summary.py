"""The offline benchmarks' summary (``scripts/bench_offline.py``, ``scripts/offline_curve.py``) and their
dry-run CPU estimate.

The summary of finished runs: scores, IQM with 95 % stratified-bootstrap intervals (:func:`pbrl.app.bench.interval`),
IQM learning curves with bands, the ratio to IQL on the true reward, timing from each run's metrics, the
Markdown table, the bar and curve plots, and :func:`pbrl.app.report.build_report` per dataset. A dataset record
(:func:`pbrl.app.offline_study.prepare_datasets`) carries ``name``, ``slug``, ``metric`` (``success_rate``,
``normalized_score`` or ``return``) and ``ref`` (the reference returns of a normalised score); runs come as
``{(dataset name, benchmark row): [pbrl.app.report.RunRecord]}``.

The estimate comes from committed measurements under ``docs/``: the old bench_offline script's 105 runs
(``bench_offline.json``) and, for what it did not measure (the rows it did not run, the evaluations), smoke
runs (``offline_costs.json``, which says how they were taken).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from pbrl.app.bench import interval, iqm_curve
from pbrl.app.bench import plot_bars as _plot_bars
from pbrl.app.bench import plot_curves as _plot_curves
from pbrl.app.report import build_report

#: the folder of the cost measurements: the docs/ of the checkout this module lives in (wherever in pbrl it sits)
DOCS = next((p / "docs" for p in Path(__file__).resolve().parents if (p / "docs" / "offline_costs.json").exists()),
            Path("docs"))
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


def _panel_rows(summary: dict[str, Any]) -> list[tuple[str, dict, str]]:
    out = [(n, rows, UNITS[next(iter(rows.values()))["metric"]]) for n, rows in summary["per_dataset"].items() if rows]
    if summary["aggregate"]:
        out.append((AGGREGATE, summary["aggregate"], "0-100 score"))
    return out


def plot_bars(summary: dict[str, Any], agents: list[str], path: Path) -> None:
    """IQM bars with 95 % intervals per dataset and for the aggregate, and CPU s per 1k updates."""
    t = summary["timing"]
    _plot_bars(_panel_rows(summary), agents, path,
               reference=(UPPER_BOUND, TARGET_RATIO, f"{100 * TARGET_RATIO:.0f} % of IQL (true r)"),
               cost=({a: t[a]["cpu_s_per_1k_updates"] for a in t}, "CPU s per 1k updates (whole run)"))


def plot_curves(summary: dict[str, Any], agents: list[str], path: Path, marks: dict | None = None) -> None:
    """IQM score against updates with 95 % bands, one panel per dataset (and the aggregate); ``marks``
    ``{panel title: {agent: update}}`` draws a dotted vertical line per agent (where its curve flattens)."""
    _plot_curves(_panel_rows(summary), agents, path, xlabel="gradient updates", marks=marks)


def write_reports(out: Path, runs: dict, datasets: list[dict[str, Any]], variants: set[str] = frozenset()) -> dict[str, Any]:
    """:func:`pbrl.app.report.build_report` over each dataset's finished runs, into ``<out>/report/<dataset>/``.

    The report groups runs by their config's agent, so a ``variants`` row (a registry agent with settings
    of its own, e.g. ``pt_iql``, which is ``mriql``) gets a report of its own in ``<out>/report/<dataset>/<row>/``
    instead of being pooled with the plain agent's runs. Returns ``{dataset: {"dir", "plots", "warnings"}}``
    (a variant's under ``"<dataset>/<row>"``)."""
    reports = {}
    for d in datasets:
        rows = sorted({row for (name, row) in runs if name == d["name"]})
        groups = [(d["name"], out / "report" / d["slug"], [r for r in rows if r not in variants])]
        groups += [(f"{d['name']}/{r}", out / "report" / d["slug"] / r, [r]) for r in rows if r in variants]
        for key, folder, members in groups:
            recs = [r for row in members for r in runs[(d["name"], row)]]
            if not recs:
                continue
            rep = build_report(recs, score="success" if d["metric"] == "success_rate" else "return",
                               group_by=("agent",), out=folder, overwrite=True)
            reports[key] = {"dir": str(folder), "plots": rep.get("plots", []), "warnings": rep.get("warnings", [])}
    return reports


# ---------------------------------------------------------------------------------------------- costs

#: the measurement files under docs/
COST_FILES = ("bench_offline.json", "offline_costs.json")


def measured_costs(docs: Path | None = None) -> dict[str, Any]:
    """``{"agents": {row: {"cpu_s_per_1k_updates", "fixed_cpu_s"}}, "eval_cpu_s_per_episode": {domain: s}}``
    from :data:`COST_FILES`. From the old script's runs: its update-loop CPU per 1k updates, and as the
    fixed part (reward-model fit, label transfer) its fit time minus that loop; ``offline_costs.json`` adds
    the rows it did not run and one evaluation episode's CPU per domain. Missing files give empty tables."""
    docs = docs or DOCS
    agents: dict[str, dict[str, float]] = {}
    f = docs / COST_FILES[0]
    if f.exists():
        per: dict[str, list[tuple[float, float]]] = {}
        for r in json.loads(f.read_text()).get("runs", []):
            loop = float(r["cpu_s_per_1k_updates"]) * int(r["steps"]) / 1000
            per.setdefault(r["agent"], []).append((float(r["cpu_s_per_1k_updates"]), max(float(r["fit_wall_s"]) - loop, 0.0)))
        agents = {a: {"cpu_s_per_1k_updates": float(np.mean([v[0] for v in vs])),
                      "fixed_cpu_s": float(np.mean([v[1] for v in vs]))} for a, vs in per.items()}
    f = docs / COST_FILES[1]
    extra = json.loads(f.read_text()) if f.exists() else {}
    agents.update({a: {k: float(v[k]) for k in ("cpu_s_per_1k_updates", "fixed_cpu_s")}
                   for a, v in extra.get("agents", {}).items()})
    return {"agents": agents, "eval_cpu_s_per_episode": dict(extra.get("eval_cpu_s_per_episode", {}))}


def n_evaluations(steps: int, eval_every: int) -> int:
    """Evaluations of a run: every ``eval_every`` updates, and one at the end when that is not a multiple."""
    return steps // eval_every + (1 if steps % eval_every else 0)


def estimate_cpu_s(rows: list[str], domains: list[str], steps: int, eval_every: int, eval_episodes: int,
                   costs: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """Rough CPU seconds of a grid of runs, run ``i`` of benchmark row ``rows[i]`` on a dataset of domain
    ``domains[i]`` (``metaworld`` or ``locomotion``): per run ``fixed_cpu_s + cpu_s_per_1k_updates x steps /
    1000 + evaluations x eval_episodes x (one episode's CPU on the domain)``, from :func:`measured_costs`.
    A row with no measurement counts as the mean of the measured rows (listed under ``"unmeasured"``), a
    domain with none as 0 s. Returns ``{"cpu_s", "updates_s", "fixed_s", "evaluations_s", "unmeasured"}``,
    or ``None`` when nothing is measured."""
    costs = costs or measured_costs()
    known = costs["agents"]
    if not known:
        return None
    mean = {k: float(np.mean([c[k] for c in known.values()])) for k in ("cpu_s_per_1k_updates", "fixed_cpu_s")}
    per_episode = costs["eval_cpu_s_per_episode"]
    n_eval = n_evaluations(steps, eval_every)
    parts = {"updates_s": 0.0, "fixed_s": 0.0, "evaluations_s": 0.0}
    for row, dom in zip(rows, domains):
        c = known.get(row, mean)
        parts["updates_s"] += c["cpu_s_per_1k_updates"] * steps / 1000
        parts["fixed_s"] += c["fixed_cpu_s"]
        parts["evaluations_s"] += n_eval * eval_episodes * float(per_episode.get(dom, 0.0))
    return {"cpu_s": sum(parts.values()), **parts, "unmeasured": sorted(set(rows) - set(known))}
