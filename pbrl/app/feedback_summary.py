"""The feedback-efficiency study's summary (``scripts/bench_feedback.py`` is its definition on
:mod:`pbrl.app.bench`): per-row and per-task IQM final success with 95 % stratified-bootstrap intervals, the
ratio to SAC-true, the probability of improvement over PEBBLE, the share of saturated reward outputs, the
calibration table, their Markdown and the study's figures (curves, and the table's intervals)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pbrl import stats
from pbrl.app.bench import StudyRuns, interval
from pbrl.app.report import build_report

__all__ = ["CALIBRATION_THRESHOLD", "CONTROL", "calibration", "costs", "markdown", "markdown_calibration",
           "markdown_costs", "markdown_per_task", "per_task", "plot_intervals", "plot_study", "report_markdown", "row_key", "row_label",
           "summarise", "summarise_runs", "teacher_label"]

#: the control row: PEBBLE's schedule on the true reward
CONTROL = "pebble_true"
#: success SAC-true must reach by the end of the calibration's budget (the max of its last two evaluations)
CALIBRATION_THRESHOLD = 0.8


def row_label(cfg: dict) -> str:
    """The study's row of a run: its agent, ``-std`` when its reward model standardises its inputs."""
    std = bool((cfg.get("reward_model_kwargs") or {}).get("normalize", False))
    return f"{cfg.get('agent')}-std" if std else str(cfg.get("agent"))


def teacher_label(cfg: dict) -> str:
    """The teacher's name, with its error rate when it is a ``scripted`` teacher (``scripted-eps0.3``)."""
    name = str(cfg.get("teacher", ""))
    eps = (cfg.get("teacher_kwargs") or {}).get("eps_mistake")
    return f"{name}-eps{eps:g}" if name == "scripted" and eps is not None else name


def row_key(cfg: dict) -> str:
    """``agent/budget/teacher``: the key of a run's row in ``feedback.json``."""
    return f"{row_label(cfg)}/{int(cfg.get('total_feedback', 0))}/{teacher_label(cfg)}"


def summarise_runs(runs: list, seed: int = 0) -> dict:
    """IQM final success (95 % stratified bootstrap over tasks x seeds, and per task), ratio to SAC-true, the
    probability of improvement over PEBBLE (oracle, the largest budget) on the tasks both ran, CPU per run, and
    the share of saturated reward outputs at the last evaluation."""
    groups: dict[tuple, list] = {}
    for r in runs:
        key = (row_label(r.config), int(r.config.get("total_feedback", 0)), teacher_label(r.config))
        groups.setdefault(key, []).append(r)
    table, columns = {}, {}
    for key, rs in sorted(groups.items()):
        tasks = sorted({r.task for r in rs})
        cols = [np.array([r.final("success_rate") for r in rs if r.task == t], float) for t in tasks]
        columns["/".join(map(str, key))] = dict(zip(tasks, cols))
        cpu = [r.metrics.get("cpu_time_s", float("nan")) for r in rs]
        sat = [_final_saturation(r) for r in rs]
        table["/".join(map(str, key))] = {
            "agent": key[0], "budget": key[1], "teacher": key[2], "n_runs": len(rs), "tasks": tasks,
            "iqm": interval(cols, seed), "iqm_per_task": {t: interval([c], seed) for t, c in zip(tasks, cols)},
            "cpu_s_per_run": float(np.mean(cpu)),
            "saturated_final": float(np.nanmean(sat)) if np.isfinite(sat).any() else float("nan"),
        }
    sac = [v for v in table.values() if v["agent"] == "sac"]
    ref = sac[0]["iqm"]["value"] if sac else float("nan")
    for v in table.values():
        v["vs_sac"] = v["iqm"]["value"] / ref if ref and ref == ref else float("nan")
    pebble = sorted((v["budget"], k) for k, v in table.items() if v["agent"] == "pebble" and v["teacher"] == "oracle")
    for key, v in table.items():
        common = sorted(set(columns[key]) & set(columns[pebble[-1][1]])) if pebble else []
        if common and key != pebble[-1][1]:
            poi = stats.probability_of_improvement([columns[key][t] for t in common],
                                                   [columns[pebble[-1][1]][t] for t in common], seed=seed)
            v["poi_vs_pebble"] = {**{k: float(x) for k, x in poi.as_dict().items()}, "baseline": pebble[-1][1],
                                  "tasks": common}
    return table


def _final_saturation(run) -> float:
    """``reward_saturated`` of a run's last evaluation (NaN when it has none: SAC-true, older runs)."""
    vals = [float(row.get("reward_saturated", float("nan"))) for row in run.curve]
    return vals[-1] if vals else float("nan")


def per_task(runs: list) -> dict:
    """Final success of every finished run, by ``agent/budget/teacher`` and task: ``{key: {task: {seed: s}}}``."""
    res: dict[str, dict[str, dict[int, float]]] = {}
    for r in runs:
        res.setdefault(row_key(r.config), {}).setdefault(r.task, {})[int(r.config.get("seed", 0))] = r.final("success_rate")
    return res


def markdown_per_task(table: dict, tasks_of: dict) -> str:
    """One row per ``agent/budget/teacher``: each task's per-seed final success and mean, the pooled IQM [95 %
    CI], the ratio to SAC-true and CPU minutes per run."""
    tasks = sorted({t for v in tasks_of.values() for t in v})
    lines = ["| agent | labels | teacher | " + " | ".join(f"{_short(t)} (per seed: mean)" for t in tasks)
             + " | IQM, all tasks [95 % CI] | vs SAC-true | CPU-min / run |",
             "|---|---:|---|" + "---|" * len(tasks) + "---|---:|---:|"]
    for key, v in ((k, table[k]) for k in _ordered(table)):
        cells = []
        for t in tasks:
            seeds = tasks_of.get(key, {}).get(t, {})
            vals = [seeds[k] for k in sorted(seeds, key=int)]
            cells.append(" ".join(f"{x:.1f}" for x in vals) + (f": **{sum(vals) / len(vals):.2f}**" if vals else "-"))
        i = v["iqm"]
        lines.append(f"| {v['agent']} | {v['budget']} | {v['teacher']} | " + " | ".join(cells)
                     + f" | {i['value']:.2f} [{i['low']:.2f}, {i['high']:.2f}] | {100 * v['vs_sac']:.0f} % | "
                     f"{v['cpu_s_per_run'] / 60:.1f} |")
    return "\n".join(lines)


def _short(task: str) -> str:
    """``metaworld/button-press-v3:goal=hidden`` -> ``button-press``."""
    return task.split("/")[-1].split(":")[0].removesuffix("-v3")


#: the rows' order in tables and figures: the true-reward references first, then PEBBLE and its variants
ROW_ORDER = ("sac", CONTROL, "pebble", "pebble-std", "surf", "rune", "qpa", "rime")


def _ordered(table: dict) -> list[str]:
    """``table``'s keys in :data:`ROW_ORDER` (others after them, alphabetically), then by budget and teacher."""
    rank = {a: i for i, a in enumerate(ROW_ORDER)}
    return sorted(table, key=lambda k: (rank.get(table[k]["agent"], len(rank)), table[k]["agent"], table[k]["budget"],
                                        table[k]["teacher"]))


def _iv(i: dict | None) -> str:
    return "-" if not i else f"{i['value']:.2f} [{i['low']:.2f}, {i['high']:.2f}]"


def markdown(table: dict) -> str:
    """The feedback study's main table (Markdown): per agent, budget and teacher, the IQM success with its 95 %
    interval on each task first, the pooled IQM beside them, the share of SAC-true, P(> PEBBLE), saturation
    and CPU cost."""
    tasks = sorted({t for v in table.values() for t in v["tasks"]})
    lines = ["| agent | budget | teacher | runs | " + " | ".join(f"{_short(t)}: IQM [95 % CI]" for t in tasks)
             + " | pooled IQM [95 % CI] | vs SAC-true | P(> PEBBLE) [95 % CI] | saturated at the end | CPU-min per run |",
             "|---|---:|---|---:|" + "---|" * len(tasks) + "---|---:|---|---:|---:|"]
    for v in map(table.get, _ordered(table)):
        sat = v.get("saturated_final", float("nan"))
        cells = " | ".join(_iv(v.get("iqm_per_task", {}).get(t)) for t in tasks)
        lines.append(f"| {v['agent']} | {v['budget']} | {v['teacher']} | {v['n_runs']} | {cells} | {_iv(v['iqm'])} | "
                     f"{100 * v['vs_sac']:.0f} % | {_iv(v.get('poi_vs_pebble'))} | "
                     f"{'-' if sat != sat else f'{100 * sat:.0f} %'} | {v['cpu_s_per_run'] / 60:.1f} |")
    return "\n".join(lines)


def plot_intervals(table: dict, path: Path) -> Path | None:
    """The main table as a figure: per task, every oracle row's IQM final success with its 95 % interval; the
    pooled IQM in the next panel, and P(> PEBBLE) with its interval in the last."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [k for k in _ordered(table) if table[k]["teacher"] == "oracle"]
    if not rows:
        return None
    tasks = sorted({t for k in rows for t in table[k]["tasks"]})
    panels: list[str | None] = [*tasks, None]
    has_poi = any(table[k].get("poi_vs_pebble") for k in rows)
    n = len(panels) + has_poi
    fig, axes = plt.subplots(1, n, figsize=(2.9 * n, 0.35 * len(rows) + 1.6), sharey=True, squeeze=False)
    y = np.arange(len(rows))[::-1]

    def dot(ax, i, yi, **kw):
        ax.errorbar(i["value"], yi, xerr=[[i["value"] - i["low"]], [i["high"] - i["value"]]], capsize=3, **kw)

    for ax, task in zip(axes[0], panels):
        for yi, k in zip(y, rows):
            i = table[k]["iqm"] if task is None else table[k].get("iqm_per_task", {}).get(task)
            if i:
                dot(ax, i, yi, fmt="o", color="k" if table[k]["agent"] in ("sac", CONTROL) else "tab:blue")
        ax.set_title("pooled over tasks" if task is None else _short(task), fontsize=9)
        ax.set_xlabel("IQM final success")
    if has_poi:
        ax = axes[0, -1]
        for yi, k in zip(y, rows):
            if table[k].get("poi_vs_pebble"):
                dot(ax, table[k]["poi_vs_pebble"], yi, fmt="s", color="tab:red")
        ax.axvline(0.5, color="grey", ls=":")
        ax.set_title("P(row > PEBBLE)", fontsize=9)
        ax.set_xlabel("probability of improvement")
    for ax in axes[0]:
        ax.set_xlim(-0.05, 1.05)
        ax.grid(alpha=0.3)
    axes[0, 0].set_yticks(y, [f"{table[k]['agent']} ({table[k]['budget']})" for k in rows], fontsize=8)
    fig.suptitle("Meta-World feedback study: IQM with 95 % stratified-bootstrap intervals (oracle teacher)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def costs(runs: list) -> dict:
    """CPU cost of every row against SAC-true, paired by task and seed.

    Each finished run's process CPU time is divided by that of the SAC-true run on the same task and seed, so the
    ratio compares runs of one grid on one machine (the load still varies between them: the spread is shown).

    Returns:
        ``{row: {"n": pairs, "ratio_median", "ratio_min", "ratio_max", "cpu_min_median", "parts_s": {part:
        median CPU-s}}}`` with ``row`` as :func:`row_key`; the parts are the feedback loop's ``fit``, ``query`` and
        ``relabel`` CPU seconds a run records. Rows with no SAC-true partner yet are left out.
    """
    sac = {(r.task, int(r.config.get("seed", 0))): r.metrics.get("cpu_time_s") for r in runs
           if r.metrics is not None and row_label(r.config) == "sac"}
    rows: dict[str, dict[str, list]] = {}
    for r in runs:
        base = sac.get((r.task, int(r.config.get("seed", 0))))
        cpu = (r.metrics or {}).get("cpu_time_s")
        if not base or not cpu:
            continue
        d = rows.setdefault(row_key(r.config), {"ratio": [], "cpu": [], "fit": [], "query": [], "relabel": []})
        d["ratio"].append(float(cpu) / float(base))
        d["cpu"].append(float(cpu))
        parts = r.metrics.get("feedback_time_s") or {}
        for part in ("fit", "query", "relabel"):
            d[part].append(float(parts.get(part, 0.0)))
    return {k: {"n": len(d["ratio"]), "ratio_median": float(np.median(d["ratio"])),
                "ratio_min": float(np.min(d["ratio"])), "ratio_max": float(np.max(d["ratio"])),
                "cpu_min_median": float(np.median(d["cpu"])) / 60,
                "parts_s": {p: float(np.median(d[p])) for p in ("fit", "query", "relabel")}}
            for k, d in sorted(rows.items())}


def markdown_costs(res: dict) -> str:
    """The cost table: CPU per run against SAC-true (median and range over task-seed pairs) and its parts."""
    lines = ["| row | pairs | CPU / SAC-true, median [min, max] | CPU-min per run (median) | reward fits, CPU-s | "
             "query selection, CPU-s | relabelling, CPU-s |", "|---|---:|---|---:|---:|---:|---:|"]
    for k, v in res.items():
        p = v["parts_s"]
        lines.append(f"| {k} | {v['n']} | {v['ratio_median']:.2f}x [{v['ratio_min']:.2f}, {v['ratio_max']:.2f}] | "
                     f"{v['cpu_min_median']:.1f} | {p['fit']:.0f} | {p['query']:.1f} | {p['relabel']:.1f} |")
    return "\n".join(lines)


def calibration(ctx: StudyRuns) -> dict:
    """The calibration's table (``calibration.json``): SAC-true's success at every evaluation, its return at the
    end, CPU-minutes, and whether it reached ``CALIBRATION_THRESHOLD`` by the end."""
    a, rows = ctx.args, {}
    for r in ctx.records:
        if r.key("agent") != "sac" or r.task not in a.tasks:
            continue
        succ = [float(c["success_rate"]) for c in r.curve]
        rows[r.task] = {"success": succ, "steps": [int(c["step"]) for c in r.curve],
                        "final_return": float(r.curve[-1]["mean_return"]) if r.curve else float("nan"),
                        "cpu_min": float(r.metrics.get("cpu_time_s", float("nan"))) / 60,
                        "solved": bool(succ) and max(succ[-2:]) >= CALIBRATION_THRESHOLD}
    return {"threshold": CALIBRATION_THRESHOLD, "steps": a.steps, "tasks": rows}


def markdown_calibration(res: dict, ctx: StudyRuns) -> str:
    """The ``--calibrate`` table (Markdown): per task, SAC-true's success at each evaluation, its final
    return, CPU minutes and whether it solved the task."""
    a = ctx.args
    lines = [f"| task | success at each evaluation (every {a.eval_every} steps) | return at {a.steps} | CPU-min | "
             f">= {CALIBRATION_THRESHOLD} at the end |", "|---|---|---:|---:|---|"]
    for t, v in sorted(res["tasks"].items(), key=lambda kv: -max(kv[1]["success"][-2:] or [0])):
        lines.append(f"| {t.removeprefix('metaworld/')} | {' '.join(f'{x:.1f}' for x in v['success'])} | "
                     f"{v['final_return']:.0f} | {v['cpu_min']:.1f} | {'yes' if v['solved'] else 'no'} |")
    return "\n".join(lines)


def summarise(ctx: StudyRuns) -> dict:
    """``feedback.json`` (or, with ``--calibrate``, ``calibration.json``): the table, the per-task finals, the
    study's figure and ``pbrl report``'s plots."""
    if ctx.args.calibrate:
        return calibration(ctx)
    rep = build_report(ctx.records, score="success", group_by=("agent", "budget", "teacher"), out=ctx.out / "report",
                       overwrite=True)
    fig = plot_study(ctx.records, ctx.out / "feedback.png")
    settings = {k: v for k, v in vars(ctx.args).items() if k not in ("seed_list", "export", "no_progress")}
    table = summarise_runs(ctx.records)
    ivs = plot_intervals(table, ctx.out / "feedback_iqm.png")
    return {"settings": settings, "table": table, "per_task": per_task(ctx.records),
            "costs": costs(ctx.records),
            "figure": str(fig) if fig else None, "interval_figure": str(ivs) if ivs else None,
            "report_plots": rep.get("plots", []),
            "warnings": rep.get("warnings", [])}


def report_markdown(res: dict, ctx: StudyRuns) -> str:
    """The study's Markdown: the calibration table with ``--calibrate``, else the main, per-task and cost
    tables."""
    if ctx.args.calibrate:
        return markdown_calibration(res, ctx)
    return (markdown(res["table"]) + "\n\n" + markdown_per_task(res["table"], res["per_task"]) + "\n\n"
            + markdown_costs(res.get("costs", {})))


def plot_study(runs: list, path: Path) -> Path | None:
    """The study's figure: for each task and budget, success against env steps (mean over seeds, band: the
    seeds' min to max) of every agent beside SAC-true; PEBBLE and RIME under the noisy teachers; final
    success against the label budget."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    runs = [r for r in runs if r.curve and r.metrics is not None]  # finished runs only
    if not runs:
        return None
    tasks = sorted({r.task for r in runs})
    budgets = sorted({int(r.config.get("total_feedback", 0)) for r in runs if r.config.get("total_feedback", 0)})
    if not budgets:  # only SAC-true has finished: nothing to compare yet
        return None
    rows = ("sac", CONTROL, "pebble", "pebble-std", "surf", "rune", "qpa", "rime")
    agents = [a for a in rows if any(row_label(r.config) == a for r in runs)]
    colour = dict(zip(rows, ("k", "tab:gray", "tab:blue", "tab:cyan", "tab:orange", "tab:green", "tab:red", "tab:purple")))
    label_free = ("sac", CONTROL)

    def band(ax, rs, label, **kw):
        steps = sorted({int(row["step"]) for r in rs for row in r.curve})
        by = np.full((len(rs), len(steps)), np.nan)
        for i, r in enumerate(rs):
            for row in r.curve:
                by[i, steps.index(int(row["step"]))] = float(row["success_rate"])
        m = np.nanmean(by, 0)
        ax.plot(steps, m, label=f"{label} ({len(rs)})", **kw)
        ax.fill_between(steps, np.nanmin(by, 0), np.nanmax(by, 0), alpha=0.12, color=kw.get("color"))

    fig, axes = plt.subplots(len(tasks), len(budgets) + 2, figsize=(4.2 * (len(budgets) + 2), 3.4 * len(tasks)),
                             squeeze=False, sharey=True)
    for ti, task in enumerate(tasks):
        for bi, b in enumerate(budgets):
            ax = axes[ti, bi]
            for a in agents:
                rs = [r for r in runs if r.task == task and row_label(r.config) == a and r.key("teacher") == "oracle"
                      and (a in label_free or int(r.config["total_feedback"]) == b)]
                if rs:
                    name = {"sac": "SAC, true reward", CONTROL: "PEBBLE schedule, true reward"}.get(a, a.upper())
                    band(ax, rs, name, color=colour[a], ls="--" if a in label_free else "-")
            ax.set_title(f"{task.split('/')[-1]}, {b} labels (oracle)", fontsize=9)
            ax.set_xlabel("env steps")
        ax = axes[ti, len(budgets)]
        noisy = [r for r in runs if r.task == task and r.key("agent") in ("pebble", "rime")
                 and int(r.config.get("total_feedback", 0)) == max(budgets)]
        styles = {"oracle": "-", "mistake": "--", "scripted": ":"}
        for a in ("pebble", "rime"):
            for teacher in ("oracle", "mistake", "scripted"):
                rs = [r for r in noisy if r.key("agent") == a and r.key("teacher") == teacher]
                if rs and any(r.key("teacher") != "oracle" for r in noisy):
                    band(ax, rs, f"{a.upper()} {teacher_label(rs[0].config)}", color=colour.get(a),
                         ls=styles[teacher])
        ax.set_title(f"{task.split('/')[-1]}, {max(budgets)} labels: noisy teachers", fontsize=9)
        ax.set_xlabel("env steps")
        if not ax.lines:
            ax.set_visible(False)  # the noisy teachers ran on one task
        ax = axes[ti, len(budgets) + 1]
        for a in agents:
            if a in label_free:
                rs = [r for r in runs if r.task == task and row_label(r.config) == a]
                if rs:
                    ax.axhline(np.mean([r.final("success_rate") for r in rs]), color=colour[a], ls="--",
                               label="SAC, true reward" if a == "sac" else "PEBBLE schedule, true reward")
                continue
            xs, ms = [], []
            for b in budgets:
                vals = [r.final("success_rate") for r in runs if r.task == task and row_label(r.config) == a
                        and r.key("teacher") == "oracle" and int(r.config["total_feedback"]) == b]
                if vals:
                    xs.append(b)
                    ms.append(np.mean(vals))
            if xs:
                ax.plot(xs, ms, "o-", color=colour[a], label=a.upper())
        ax.set_xscale("log")
        ax.set_xticks(budgets, [str(b) for b in budgets])
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_title(f"{task.split('/')[-1]}: final success vs labels", fontsize=9)
        ax.set_xlabel("labels (oracle)")
        axes[ti, 0].set_ylabel("success rate")
    for ax in axes.flat:
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=6.5, loc="upper left")
    fig.suptitle("Meta-World feedback efficiency (lines: mean over seeds, bands: min to max; legend: runs)",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
