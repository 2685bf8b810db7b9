"""The feedback-efficiency study: Meta-World success against env steps and against labels, per agent and
label budget, beside SAC on the true reward, with several seeds; plus noisy-teacher rows (B-Pref's ``mistake``).

This is the experiment every online PbRL paper reports (PEBBLE, SURF, RUNE, QPA, B-Pref). It is a study on
the benchmark harness (:mod:`pbrl.bench`): a ``pbrl sweep`` grid (one run directory per point under ``--out``,
each with its live ``progress.csv`` and ``curve.csv``; running the same command again resumes unfinished
runs and skips finished ones), exported to ``<out>/runs.csv`` and ``<out>/curves.csv`` (what git keeps;
``--report-only`` rebuilds everything below from them), and summarised by ``pbrl report``
(:func:`pbrl.report.build_report`). This script adds what the study needs on top:

* ``<out>/feedback.json``: for every agent, budget and teacher, the IQM final success rate with a 95 %
  stratified-bootstrap interval over tasks x seeds, its ratio to SAC-true's IQM, and the CPU time per run;
* ``<out>/report/``: ``pbrl report``'s table and plots (success against steps and against labels used,
  with bands), grouped by agent, budget and teacher;
* the same table printed as Markdown.

Defaults, in B-Pref's design (Lee et al. 2021) and chosen for 2 CPU cores:

* **B-Pref's schedule.** Every PEBBLE-family agent spends 1,000 random seed steps and 9,000 steps of entropy
  pre-training, then asks a query round every ``--feedback-every`` = 5,000 env steps (B-Pref's Meta-World
  ``num_interact``) from the end of pre-training until the end of the run; the budget is spread evenly over
  those rounds (:func:`pbrl.online.feedback.spread_budget`: 50k steps give 8 rounds at 10k, 15k, ..., 45k).
  The old study asked 10 rounds every 2,500 steps and froze the reward from 32.5k steps, the last 35 % of the
  run.
* **Tasks chosen by measurement** (``DEFAULT_TASKS``): SAC on the true reward, calibrated at the study's sizes
  on 11 MT50 tasks with the goal hidden (``--calibrate``, ``benchmarks/calib_sac/calibration.json``, the results
  page's table), keeping the tasks on which it reaches success >= 0.8 within the 50k-step budget: button-press,
  coffee-button and drawer-close.
* **Rows:** SAC-true (the upper bound); the control ``pebble_true`` (PEBBLE's seed steps, entropy pre-training
  and critic reset on the true reward: SAC-true minus it is the cost of pre-training, it minus PEBBLE the cost
  of learning the reward); PEBBLE, SURF, RUNE, QPA and RIME with B-Pref's raw reward-model inputs (the
  default); and PEBBLE with standardised inputs (``--std-agents``), the measurement that chose that default.
  Every PbRL run logs ``reward_model/saturated`` (the share of |r_hat| > 0.95) at every evaluation.
* **1,000 labels** (1,000 over 50k steps is B-Pref's 20,000 over 1M on button-press, per step), the oracle
  teacher, **5 seeds**, 50k env steps. Network sizes are CPU-sized for every SAC-based run alike
  (``CPU_SAC_KWARGS``: 2 x 128, batch 256, one gradient step per 2 env steps), reward models 3 x 128.

What was cut to fit about 16 CPU-hours (SAC-true alone is about 5 CPU-minutes a run): the 250-label budget
(``--budgets 250 1000`` brings it back) and the noisy-teacher rows (``--noisy``: B-Pref's ``mistake`` teacher
and a 30 %-error one for PEBBLE and RIME on the first task). ``--dry-run`` prints the grid and projects its
CPU-hours from the runs that have finished. ``--paper-scale`` gives the papers' scale instead: B-Pref's 3 x 256
networks and reward models, 1M steps, 10 seeds (pass the papers' label budgets with ``--budgets``); it is for
a machine that can afford it.

Example::

    .venv/bin/python scripts/bench_feedback.py --dry-run            # the grid, its size and its cost estimate
    nohup .venv/bin/python scripts/bench_feedback.py &              # the study (hours; rerun to resume)
    .venv/bin/python scripts/bench_feedback.py --report-only        # tables and plots from finished runs
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from pbrl.agents.online_base import SAC_DEFAULTS
from pbrl.agents.pebble import PEBBLE
from pbrl.agents.registry import agent_names
from pbrl.bench import (
    CPU_REWARD_MODEL_KWARGS,
    CPU_SAC_KWARGS,
    Study,
    StudyRuns,
    interval,
    merge_overrides,
    run_study,
)
from pbrl.envs.registry import check_task
from pbrl.online.feedback import spread_budget

PBRL_AGENTS = ("pebble", "surf", "rune", "qpa", "rime")
#: the control row: PEBBLE's schedule on the true reward
CONTROL = "pebble_true"
#: B-Pref's Meta-World query interval (``num_interact``)
FEEDBACK_EVERY = 5000
#: chosen by the calibration (``--calibrate``, ``benchmarks/calib_sac/calibration.json``: SAC-true, one seed, the
#: study's sizes, goal hidden, 50k steps): the tasks on which it reached success >= 0.8 by the end. Button-press
#: (0.9; the papers' task), coffee-button (1.0) and drawer-close (1.0) passed; door-lock, handle-press, reach,
#: faucet-close, plate-slide, window-close, window-open and button-press-topdown did not (0.0-0.3)
DEFAULT_TASKS = tuple(f"metaworld/{t}-v3:goal=hidden" for t in ("button-press", "coffee-button", "drawer-close"))
#: 1,000 labels over 50k steps is B-Pref's 20,000 over 1M on button-press, per step; 250 is the scarce regime
DEFAULT_BUDGETS = (1000,)
ROBUST_AGENTS = ("pebble", "rime")
#: the calibration (``--calibrate``): SAC-true, one seed, at the study's sizes on the papers' tasks and easy
#: MT50 tasks, goal hidden as in B-Pref's Meta-World envs; the study keeps those reaching success >= 0.8
CALIBRATION_TASKS = tuple(f"metaworld/{t}-v3:goal=hidden" for t in (
    "reach", "drawer-close", "window-close", "door-lock", "handle-press", "plate-slide", "faucet-close",
    "coffee-button", "button-press", "button-press-topdown", "window-open"))
CALIBRATION_THRESHOLD = 0.8
__all__ = ["CPU_SAC_KWARGS", "CPU_REWARD_MODEL_KWARGS", "STUDY", "main"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The study's own flags (the harness adds --seeds, --workers, --out, --set, --dry-run, --report-only)."""
    p.add_argument("--tasks", nargs="+", default=None, help="task ids (default: DEFAULT_TASKS)")
    p.add_argument("--agents", nargs="+", default=["sac", CONTROL, *PBRL_AGENTS],
                   help="registry names (sac = true reward, pebble_true = PEBBLE's schedule on the true reward)")
    p.add_argument("--budgets", nargs="+", type=int, default=list(DEFAULT_BUDGETS), help="label budgets (total_feedback)")
    p.add_argument("--steps", type=int, default=50_000)
    p.add_argument("--feedback-every", type=int, default=FEEDBACK_EVERY,
                   help="env steps between query rounds, from the end of pre-training to the end of the run")
    p.add_argument("--std-agents", nargs="*", default=["pebble"],
                   help="PbRL agents also run with standardised reward-model inputs (normalize=True); none: --std-agents")
    p.add_argument("--eval-every", type=int, default=5000)
    p.add_argument("--n-eval-episodes", type=int, default=10)
    p.add_argument("--mistake-task", default=None, help="task of the noisy-teacher rows (default: the first task)")
    p.add_argument("--noisy", action="store_true",
                   help="add the noisy-teacher rows (B-Pref's mistake teacher and --high-error) of --robust-agents")
    p.add_argument("--robust-agents", nargs="+", default=list(ROBUST_AGENTS),
                   help="agents of the noisy-teacher rows (default: PEBBLE and RIME, the robust-learning comparison)")
    p.add_argument("--high-error", type=float, default=0.3,
                   help="error rate of the second noisy teacher (scripted eps_mistake; 0 leaves it out)")
    p.add_argument("--paper-scale", action="store_true", help="the papers' sizes, 1M steps, 10 seeds")
    p.add_argument("--calibrate", action="store_true",
                   help="SAC-true alone, one seed, on CALIBRATION_TASKS (or --tasks) into benchmarks/calib_sac: "
                        "which tasks the budget can solve")


def check(a: argparse.Namespace, p: argparse.ArgumentParser) -> None:
    """One clear error for bad flags; --calibrate's and --paper-scale's settings."""
    if a.calibrate:
        a.agents, a.seeds, a.std_agents = ["sac"], 1, []
        a.tasks = a.tasks or list(CALIBRATION_TASKS)
        a.out = a.out or "benchmarks/calib_sac"
    a.tasks = a.tasks or list(DEFAULT_TASKS)
    a.out = a.out or "benchmarks/feedback_study"
    bad = [x for x in a.agents if x not in agent_names("online")]
    if bad:
        p.error(f"unknown online agent(s) {bad}; choose from {agent_names('online')}")
    for t in a.tasks:
        try:
            check_task(t)
        except ValueError as e:
            p.error(str(e))
    for name in ("steps", "feedback_every", "eval_every", "n_eval_episodes"):
        if getattr(a, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1")
    if any(b < 1 for b in a.budgets):
        p.error("--budgets must be >= 1")
    if not 0.0 <= a.high_error < 0.5:
        p.error("--high-error must be in [0, 0.5)")
    bad = [x for x in a.robust_agents if x not in PBRL_AGENTS and x not in agent_names("online")
           or x in ("sac", CONTROL)]
    if bad:
        p.error(f"--robust-agents {bad} must be PbRL agents (those not in --agents are left out)")
    bad = [x for x in a.std_agents if x not in agent_names("online") or x in ("sac", CONTROL)]
    if bad:
        p.error(f"--std-agents {bad} must be PbRL agents (those not in --agents are left out)")
    if a.paper_scale:
        a.steps, a.seeds = 1_000_000, max(a.seeds, 10)
    a.seed_list = list(range(a.seeds))
    a.mistake_task = a.mistake_task or a.tasks[0]


def base_config(a: argparse.Namespace) -> dict:
    """Settings shared by every grid point (``--set`` merged in)."""
    cfg = {
        "kind": "online",
        "total_timesteps": a.steps,
        "feedback_every": a.feedback_every,
        "eval_every": a.eval_every,
        "n_eval_episodes": a.n_eval_episodes,
        "checkpoint_every": max(a.eval_every, 10_000),
    }
    if not a.paper_scale:
        cfg["learner_kwargs"] = dict(CPU_SAC_KWARGS)
        cfg["reward_model_kwargs"] = dict(CPU_REWARD_MODEL_KWARGS)
    return merge_overrides(cfg, a.overrides)


def per_session(a: argparse.Namespace, budget: int) -> int:
    """Labels per query round: ``budget`` spread over B-Pref's rounds from the end of PEBBLE's pre-training
    (``learning_starts`` + 9,000 entropy steps) to the end of the run, every ``--feedback-every`` steps."""
    kw = {**SAC_DEFAULTS, **base_config(a).get("learner_kwargs", {})}
    unsup = base_config(a).get("agent_kwargs", {}).get("unsup_steps", PEBBLE.default_unsup_steps)
    return spread_budget(budget, a.steps, int(kw["learning_starts"]) + int(unsup), a.feedback_every)


def build_grid(a: argparse.Namespace):
    """The study's grid points (:class:`pbrl.sweep.SweepPoint`), validated before anything runs."""
    from pbrl.sweep import SweepPoint, expand_grid

    base = base_config(a)
    seeds = list(range(a.seeds))
    points = []
    no_labels = [x for x in ("sac", CONTROL) if x in a.agents]  # the true reward: no budget
    for agent in no_labels:
        kw = base.get("agent_kwargs", {})
        cfg = {**base, "total_feedback": 0,
               "agent_kwargs": {k: v for k, v in kw.items() if agent == CONTROL or k != "unsup_steps"}}
        points += expand_grid(cfg, tasks=a.tasks, agents=[agent], teachers=["oracle"], seeds=seeds)
    pbrl = [x for x in a.agents if x not in no_labels]
    for budget in a.budgets if pbrl else []:  # an empty agent axis would mean "the base config's agent"
        cfg = {**base, "feedback_per_session": per_session(a, budget)}
        points += expand_grid(cfg, tasks=a.tasks, agents=pbrl, teachers=["oracle"], budgets=[budget], seeds=seeds)
        std = [x for x in a.std_agents if x in pbrl]
        if std:  # the same agents with standardised reward-model inputs, in run directories of their own
            cfg_std = {**cfg, "reward_model_kwargs": {**cfg.get("reward_model_kwargs", {}), "normalize": True}}
            points += [SweepPoint(p.name.replace(f"{p.config['agent']}__", f"{p.config['agent']}-std__", 1), p.config)
                       for p in expand_grid(cfg_std, tasks=a.tasks, agents=std, teachers=["oracle"], budgets=[budget],
                                            seeds=seeds)]
    robust = [x for x in a.robust_agents if x in pbrl]
    if robust and a.noisy:  # B-Pref's mistake teacher (10 % flips) and a 30 %-error one (RIME's range)
        budget = max(a.budgets)
        cfg = {**base, "feedback_per_session": per_session(a, budget)}
        points += expand_grid(cfg, tasks=[a.mistake_task], agents=robust, teachers=["mistake"], budgets=[budget],
                              seeds=seeds)
        if a.high_error > 0:
            points += expand_grid({**cfg, "teacher_kwargs": {"eps_mistake": a.high_error}}, tasks=[a.mistake_task],
                                  agents=robust, teachers=["scripted"], budgets=[budget], seeds=seeds)
    # seed-major: a study stopped part-way has every cell at one seed before any cell at three
    points.sort(key=lambda p: p.config["seed"])
    return points


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
    from pbrl import stats

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
    short = [t.split("/")[-1].removesuffix("-v3") for t in tasks]
    lines = ["| agent | labels | teacher | " + " | ".join(f"{t} (per seed: mean)" for t in short)
             + " | IQM, both tasks [95 % CI] | vs SAC-true | CPU-min / run |",
             "|---|---:|---|" + "---|" * len(tasks) + "---|---:|---:|"]
    for key, v in table.items():
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


def markdown(table: dict) -> str:
    lines = ["| agent | budget | teacher | runs | IQM success [95 % CI] | vs SAC-true | P(> PEBBLE) [95 % CI] | "
             "saturated at the end | CPU-min per run |",
             "|---|---:|---|---:|---|---:|---|---:|---:|"]
    for v in table.values():
        i, p = v["iqm"], v.get("poi_vs_pebble")
        poi = f"{p['value']:.2f} [{p['low']:.2f}, {p['high']:.2f}]" if p else "-"
        sat = v.get("saturated_final", float("nan"))
        lines.append(f"| {v['agent']} | {v['budget']} | {v['teacher']} | {v['n_runs']} | "
                     f"{i['value']:.2f} [{i['low']:.2f}, {i['high']:.2f}] | {100 * v['vs_sac']:.0f} % | {poi} | "
                     f"{'-' if sat != sat else f'{100 * sat:.0f} %'} | {v['cpu_s_per_run'] / 60:.1f} |")
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
    from pbrl.report import build_report

    rep = build_report(ctx.records, score="success", group_by=("agent", "budget", "teacher"), out=ctx.out / "report",
                       overwrite=True)
    fig = plot_study(ctx.records, ctx.out / "feedback.png")
    settings = {k: v for k, v in vars(ctx.args).items() if k not in ("seed_list", "export", "no_progress")}
    return {"settings": settings, "table": summarise_runs(ctx.records), "per_task": per_task(ctx.records),
            "figure": str(fig) if fig else None, "report_plots": rep.get("plots", []),
            "warnings": rep.get("warnings", [])}


def report_markdown(res: dict, ctx: StudyRuns) -> str:
    if ctx.args.calibrate:
        return markdown_calibration(res, ctx)
    return markdown(res["table"]) + "\n\n" + markdown_per_task(res["table"], res["per_task"])


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


STUDY = Study(name="bench_feedback", description=__doc__, out=None, seeds=5, workers=2, arguments=add_arguments,
              check=check, grid=build_grid, set_in_grid=True, only_grid=False, summarise=summarise,
              markdown=report_markdown,
              result_file=lambda a: "calibration.json" if a.calibrate else "feedback.json")


def parse_args(argv=None) -> argparse.Namespace:
    """The study's flags, checked (the harness's and this study's)."""
    from pbrl.bench import parse_args as harness_args

    return harness_args(STUDY, argv)


def main(argv=None) -> dict:
    res = run_study(STUDY, argv)
    if isinstance(res, dict) and "threshold" in res:  # --calibrate
        return {"calibration": res["tasks"]}
    return res


if __name__ == "__main__":
    main()
