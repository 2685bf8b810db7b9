"""The feedback-efficiency study: Meta-World success against env steps and against labels, per agent and
label budget, beside SAC on the true reward, with several seeds; plus a row with B-Pref's ``mistake`` teacher.

This is the experiment every online PbRL paper reports (PEBBLE, SURF, RUNE, QPA, B-Pref). The grid is a
``pbrl sweep`` grid (:func:`pbrl.sweep.expand_grid`, :func:`pbrl.sweep.run_sweep`: one run directory per
point under ``--out``, each with its live ``progress.csv`` and ``curve.csv``; running the same command again
resumes unfinished runs and skips finished ones) and it is summarised by ``pbrl report``
(:func:`pbrl.report.build_report`). This script adds what the study needs on top:

* ``<out>/feedback.json``: for every agent, budget and teacher, the IQM final success rate with a 95 %
  stratified-bootstrap interval over tasks x seeds, its ratio to SAC-true's IQM, and the CPU time per run;
* ``<out>/report/``: ``pbrl report``'s table and plots (success against steps and against labels used,
  with bands), grouped by agent, budget and teacher;
* the same table printed as Markdown.

Defaults fit 2 CPU cores and about 8 CPU-hours: the tasks ``--tasks``, ``--steps`` env steps, the agents
``sac`` (true reward), ``pebble``, ``surf``, ``rune``, ``qpa`` and ``rime``, two label budgets, 3 seeds, the
oracle for the whole grid and ``mistake`` for every PbRL agent at the larger budget on the first task.
Network sizes are CPU-sized for every SAC-based run alike (``CPU_SAC_KWARGS``: 2 x 128, batch 256, one
gradient step per 2 env steps) and the reward models use 3 x 128 hidden units; everything else is each
agent's default. ``--paper-scale`` gives the papers' scale (B-Pref's 3 x 256 networks and reward models,
1M steps, 10 seeds; pass the papers' label budgets for the chosen tasks with ``--budgets``, thousands to
tens of thousands on Meta-World); it is for a machine that can afford it.

Example::

    .venv/bin/python scripts/bench_feedback.py --dry-run            # the grid, its size and its cost estimate
    nohup .venv/bin/python scripts/bench_feedback.py &              # the study (hours; rerun to resume)
    .venv/bin/python scripts/bench_feedback.py --report-only        # tables and plots from finished runs
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

PBRL_AGENTS = ("pebble", "surf", "rune", "qpa", "rime")
DEFAULT_TASKS = ("metaworld/button-press-v3", "metaworld/reach-v3")

#: SAC sizes of every SAC-based run of the default study (2 CPU cores); ``--paper-scale`` drops them.
CPU_SAC_KWARGS = {"policy_kwargs": {"net_arch": [128, 128]}, "batch_size": 256, "train_freq": 2, "gradient_steps": 1}
CPU_REWARD_MODEL_KWARGS = {"hidden": [128, 128, 128]}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tasks", nargs="+", default=list(DEFAULT_TASKS))
    p.add_argument("--agents", nargs="+", default=["sac", *PBRL_AGENTS], help="registry names (sac = true reward)")
    p.add_argument("--budgets", nargs="+", type=int, default=[500, 2000], help="label budgets (total_feedback)")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--steps", type=int, default=50_000)
    p.add_argument("--sessions", type=int, default=10, help="feedback sessions the budget is spread over")
    p.add_argument("--feedback-every", type=int, default=2500)
    p.add_argument("--eval-every", type=int, default=5000)
    p.add_argument("--n-eval-episodes", type=int, default=10)
    p.add_argument("--mistake-task", default=None, help="task of the mistake-teacher row (default: the first task)")
    p.add_argument("--no-mistake", action="store_true", help="leave out the mistake-teacher row")
    p.add_argument("--paper-scale", action="store_true", help="the papers' sizes, 1M steps, 10 seeds")
    p.add_argument("--set", dest="overrides", default="{}",
                   help="JSON merged into every run's config (e.g. smaller sizes for a smoke run)")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--out", default="benchmarks/bench_feedback")
    p.add_argument("--dry-run", action="store_true", help="print the grid and exit")
    p.add_argument("--report-only", action="store_true", help="summarise the finished runs only")
    a = p.parse_args(argv)
    from pbrl.agents.registry import agent_names
    from pbrl.envs.registry import check_task

    bad = [x for x in a.agents if x not in agent_names("online")]
    if bad:
        p.error(f"unknown online agent(s) {bad}; choose from {agent_names('online')}")
    for t in a.tasks:
        try:
            check_task(t)
        except ValueError as e:
            p.error(str(e))
    for name in ("seeds", "steps", "sessions", "feedback_every", "eval_every", "n_eval_episodes", "workers"):
        if getattr(a, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1")
    if any(b < 1 for b in a.budgets):
        p.error("--budgets must be >= 1")
    try:
        a.overrides = json.loads(a.overrides)
    except json.JSONDecodeError as e:
        p.error(f"--set must be a JSON object ({e})")
    if not isinstance(a.overrides, dict):
        p.error("--set must be a JSON object")
    if a.paper_scale:
        a.steps, a.seeds = 1_000_000, max(a.seeds, 10)
    a.mistake_task = a.mistake_task or a.tasks[0]
    return a


def base_config(a: argparse.Namespace) -> dict:
    """Settings shared by every grid point."""
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
    for k, v in a.overrides.items():
        cfg[k] = {**cfg[k], **v} if isinstance(v, dict) and isinstance(cfg.get(k), dict) else v
    return cfg


def build_grid(a: argparse.Namespace):
    """The study's grid points (:class:`pbrl.sweep.SweepPoint`), validated before anything runs."""
    from pbrl.sweep import expand_grid

    base = base_config(a)
    seeds = list(range(a.seeds))
    points = []
    if "sac" in a.agents:  # the true reward: no budget, no pre-training
        sac = {**base, "total_feedback": 0,
               "agent_kwargs": {k: v for k, v in base.get("agent_kwargs", {}).items() if k != "unsup_steps"}}
        points += expand_grid(sac, tasks=a.tasks, agents=["sac"], teachers=["oracle"], seeds=seeds)
    pbrl = [x for x in a.agents if x != "sac"]
    for budget in a.budgets if pbrl else []:  # an empty agent axis would mean "the base config's agent"
        per = max(1, math.ceil(budget / a.sessions))
        points += expand_grid({**base, "feedback_per_session": per}, tasks=a.tasks, agents=pbrl, teachers=["oracle"],
                              budgets=[budget], seeds=seeds)
    if pbrl and not a.no_mistake:
        budget = max(a.budgets)
        per = max(1, math.ceil(budget / a.sessions))
        points += expand_grid({**base, "feedback_per_session": per}, tasks=[a.mistake_task], agents=pbrl,
                              teachers=["mistake"], budgets=[budget], seeds=seeds)
    return points


def summarise(out: Path, seed: int = 0) -> dict:
    """IQM final success (95 % stratified bootstrap over tasks x seeds), ratio to SAC-true, CPU per run."""
    import numpy as np

    from pbrl import stats
    from pbrl.report import load_runs

    runs = [r for r in load_runs([out]) if r.metrics is not None]
    groups: dict[tuple, list] = {}
    for r in runs:
        key = (r.key("agent"), int(r.config.get("total_feedback", 0)) if r.key("agent") != "sac" else 0, r.key("teacher"))
        groups.setdefault(key, []).append(r)
    table = {}
    for key, rs in sorted(groups.items()):
        tasks = sorted({r.task for r in rs})
        cols = [np.array([r.final("success_rate") for r in rs if r.task == t], float) for t in tasks]
        ci = stats.stratified_bootstrap_ci(cols, "iqm", n_resamples=2000, seed=seed)
        cpu = [r.metrics.get("cpu_time_s", float("nan")) for r in rs]
        table["/".join(map(str, key))] = {
            "agent": key[0], "budget": key[1], "teacher": key[2], "n_runs": len(rs), "tasks": tasks,
            "iqm": _interval(ci), "cpu_s_per_run": float(np.mean(cpu)),
        }
    sac = [v for v in table.values() if v["agent"] == "sac"]
    ref = sac[0]["iqm"]["value"] if sac else float("nan")
    for v in table.values():
        v["vs_sac"] = v["iqm"]["value"] / ref if ref and ref == ref else float("nan")
    return table


def _interval(ci) -> dict:
    return {k: float(v) for k, v in ci.as_dict().items()}


def markdown(table: dict) -> str:
    lines = ["| agent | budget | teacher | runs | IQM success [95 % CI] | vs SAC-true | CPU-min per run |",
             "|---|---:|---|---:|---|---:|---:|"]
    for v in table.values():
        i = v["iqm"]
        lines.append(f"| {v['agent']} | {v['budget']} | {v['teacher']} | {v['n_runs']} | "
                     f"{i['value']:.2f} [{i['low']:.2f}, {i['high']:.2f}] | {100 * v['vs_sac']:.0f} % | "
                     f"{v['cpu_s_per_run'] / 60:.1f} |")
    return "\n".join(lines)


def main(argv=None) -> dict:
    a = parse_args(argv)
    out = Path(a.out)
    points = build_grid(a)
    if a.dry_run:
        for p in points:
            print(p.name)
        print(f"{len(points)} runs of {a.steps} steps")
        return {"points": [p.name for p in points]}
    if not a.report_only:
        from pbrl.sweep import run_sweep

        run_sweep(points, out, backend="local", workers=a.workers)
    from pbrl.report import build_report

    rep = build_report([out], score="success", group_by=("agent", "budget", "teacher"), out=out / "report",
                       overwrite=True)
    table = summarise(out)
    result = {"settings": {k: v for k, v in vars(a).items()}, "table": table, "report_plots": rep.get("plots", []),
              "warnings": rep.get("warnings", [])}
    (out / "feedback.json").write_text(json.dumps(result, indent=2, default=str))
    print(markdown(table))
    return result


if __name__ == "__main__":
    main()
