"""Benchmark the online preference-based agents against SAC on the true reward, as a ``pbrl sweep``.

For one task, a step budget, a label budget and seeds, runs the registry's

* ``sac``: SB3's SAC on the true reward (the upper bound), with the PbRL agents' SAC settings;
* ``pebble``, ``qpa`` (SAC-based) and ``pref_ppo`` with the oracle teacher (B-Pref's ``oracle``);

(``--agents``: any online agents of :mod:`pbrl.agents.registry`). It is a study on the benchmark harness
(:mod:`pbrl.bench`). Every (agent, seed) is one online sweep
point (:class:`pbrl.config.OnlineConfig`) run by :func:`pbrl.sweep.run_sweep` (``--workers`` processes of
``--threads`` torch threads; SAC and PEBBLE first, seed by seed): one run directory per point,
``<out>/<agent>__<task>__oracle__b<labels>__s<seed>/`` (SAC's is ``b0``), with its live ``progress.csv``
and ``curve.csv`` (deterministic evaluation episodes every ``--eval-every`` steps on a separate env: true
return, any-step success). Running the same command again resumes the unfinished runs and skips the
finished ones; a run directory made with other settings stops the script with the keys that differ.
Written to ``<out>``: ``runs.csv`` and ``curves.csv`` (every run's config, metrics and evaluations: what git
keeps; ``--report-only`` rebuilds the rest from them), and

* ``bench_online.json``: per agent, the IQM of the final score over seeds with its 95 % stratified-bootstrap
  interval (:mod:`pbrl.stats`), mean, std and per-seed values, its ratio to SAC-true's IQM, the CPU time per
  run (``cpu_time_s`` of ``metrics.json``: the whole run, evaluations included) and against SAC's, env
  steps per CPU-second and per wall-second (whole run), labels asked and used, and the CPU seconds the
  feedback loop spent on queries, reward fitting and relabelling;
* ``report/``: :func:`pbrl.report.build_report`'s table and plots (``report.png``: IQM score against env
  steps and against labels used with bands, and the performance profile; ``intervals.png``);
* the table, printed as Markdown.

The score is the true return (``--score return``, the default off Meta-World) or the success rate (the
default on Meta-World tasks).

Defaults: ``mujoco/HalfCheetah-v5``, 100k steps, 500 labels (10 sessions of 50, one every 5000 steps after
PEBBLE's 1000 seed + 9000 unsupervised steps), 3 seeds, two worker processes of one torch thread each, out
``benchmarks/bench_online_sweep`` (the old script's measurement stays in ``benchmarks/bench_online/`` and
``docs/bench_online.json``). So that the default run fits 2 CPU cores (12 runs, about 2-3 CPU-hours by the
old script's CPU minutes per run, QPA's taken as PEBBLE's: 1-1.5 hours of wall time on 2 free cores), the
SAC-based runs (SAC, PEBBLE, QPA alike)
use ``BENCH_SAC_KWARGS`` (2 x 128 networks, batch 256, one gradient step every 2 env steps) instead of
B-Pref's 3 x 256 / batch 512 / one step per env step, which costs about 6x more CPU here; pass
``--paper-sizes`` for the paper's sizes. Everything else is each agent's default (the paper's): its own
query selector (QPA's ``uniform``), PrefPPO runs B-Pref's PrefPPO (16 envs x 250 steps, 3 x 256, gSDE,
observation normalisation, 32000 pre-training steps), and each agent's reward model trains its own number
of epochs per session. Example::

    .venv/bin/python scripts/bench_online.py --dry-run                          # the grid
    nohup .venv/bin/python scripts/bench_online.py &                            # the default run (rerun to resume)
    .venv/bin/python scripts/bench_online.py --task metaworld/button-press-v3 --steps 500000 --labels 10000
    .venv/bin/python scripts/bench_online.py --steps 3000 --labels 40 --seeds 1 --unsup-steps 500 \\
        --feedback-every 500 --eval-every 1000 --n-eval-episodes 1 --out /tmp/smoke  # a smoke run
"""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np

from pbrl.agents.registry import agent_names, get_agent, get_entry
from pbrl.bench import CPU_SAC_KWARGS, Study, StudyRuns, interval, run_study
from pbrl.envs.registry import check_task
from pbrl.report import build_report
from pbrl.sweep import expand_grid

DEFAULT_AGENTS = ("sac", "pebble", "qpa", "pref_ppo")
UPPER_BOUND = "sac"
#: run first, seed by seed (the acceptance pair), then the other agents
FIRST = ("sac", "pebble")

#: SAC sizes of the default benchmark (all SAC-based runs alike), chosen for 2 CPU cores; see the module docstring.
BENCH_SAC_KWARGS = CPU_SAC_KWARGS


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The study's own flags (the harness adds --seeds, --workers, --out, --set, --dry-run, --report-only)."""
    p.add_argument("--task", default="mujoco/HalfCheetah-v5")
    p.add_argument("--agents", nargs="+", default=list(DEFAULT_AGENTS), help="online registry names (sac = true reward)")
    p.add_argument("--steps", type=int, default=100_000, help="env steps per run")
    p.add_argument("--labels", type=int, default=500, help="query budget (total_feedback)")
    p.add_argument("--per-session", type=int, default=None, help="queries per session (default labels // 10)")
    p.add_argument("--feedback-every", type=int, default=5000)
    p.add_argument("--unsup-steps", type=int, default=9000, help="state-entropy pre-training of the SAC-based agents")
    p.add_argument("--ppo-unsup-steps", type=int, default=None,
                   help="PrefPPO pre-training steps (default: the agent's, B-Pref's 32000)")
    p.add_argument("--eval-every", type=int, default=5000)
    p.add_argument("--n-eval-episodes", type=int, default=5)
    p.add_argument("--segment-length", type=int, default=50)
    p.add_argument("--learner-kwargs", default=None,
                   help="JSON overrides of the SB3 SAC defaults for the SAC-based runs (default BENCH_SAC_KWARGS)")
    p.add_argument("--paper-sizes", action="store_true", help="use B-Pref's SAC sizes (ignore BENCH_SAC_KWARGS)")
    p.add_argument("--reward-model-kwargs", default="{}", help="JSON overrides of the reward model defaults")
    p.add_argument("--fit-epochs", type=int, default=None,
                   help="reward-model epochs per session (default: each agent's own, e.g. PEBBLE's B-Pref value)")
    p.add_argument("--score", choices=("auto", "return", "success"), default="auto",
                   help="auto: success on Meta-World, return elsewhere")
    p.add_argument("--threads", type=int, default=1, help="torch threads per run")


def check(a: argparse.Namespace, p: argparse.ArgumentParser) -> None:
    """One clear error for bad flags, before any work."""
    import json

    bad = [x for x in a.agents if x not in agent_names("online")]
    if bad:
        p.error(f"unknown online agent(s) {bad}; choose from {agent_names('online')}")
    if len(set(a.agents)) != len(a.agents):
        p.error(f"--agents repeats an agent: {a.agents}")
    for name in ("steps", "labels", "feedback_every", "eval_every", "n_eval_episodes", "segment_length", "threads"):
        if getattr(a, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1")
    a.per_session = a.per_session or max(1, a.labels // 10)
    try:
        if a.learner_kwargs is None:
            a.learner_kwargs = {} if a.paper_sizes else dict(BENCH_SAC_KWARGS)
        else:
            a.learner_kwargs = json.loads(a.learner_kwargs)
        a.reward_model_kwargs = json.loads(a.reward_model_kwargs)
    except json.JSONDecodeError as e:
        p.error(f"--learner-kwargs / --reward-model-kwargs must be JSON objects ({e})")
    if not isinstance(a.learner_kwargs, dict) or not isinstance(a.reward_model_kwargs, dict):
        p.error("--learner-kwargs / --reward-model-kwargs must be JSON objects")
    try:
        check_task(a.task)
    except ValueError as e:
        p.error(str(e))
    if a.score == "auto":
        a.score = "success" if a.task.startswith("metaworld/") else "return"


def agent_config(agent: str, a: argparse.Namespace) -> dict[str, Any]:
    """The config of ``agent``'s points: the shared settings, then what differs by learner (SAC sizes and
    state-entropy pre-training for SAC-based PbRL agents, PPO's own settings for PrefPPO) and the agent's
    own query selector. SAC on the true reward has no budget and no pre-training."""
    entry = get_entry(agent, "online")
    cfg: dict[str, Any] = {
        "kind": "online", "task": a.task, "total_timesteps": a.steps, "total_feedback": a.labels,
        "feedback_per_session": a.per_session, "feedback_every": a.feedback_every,
        "segment_length": a.segment_length, "eval_every": a.eval_every, "n_eval_episodes": a.n_eval_episodes,
        "checkpoint_every": max(a.eval_every, 10_000), "torch_threads": a.threads,
        "selector": get_agent(agent, "online").default_selector, "reward_model_kwargs": dict(a.reward_model_kwargs),
        "learner_kwargs": dict(a.learner_kwargs) if entry.learner == "SAC" else {}, "agent_kwargs": {},
    }
    if not entry.needs_preferences:  # no queries: the label budget's settings do not apply
        cfg["total_feedback"], cfg["feedback_per_session"] = 0, 1
        return cfg
    unsup = a.unsup_steps if entry.learner == "SAC" else a.ppo_unsup_steps
    if unsup is not None:
        cfg["agent_kwargs"]["unsup_steps"] = unsup
    if a.fit_epochs:
        cfg["agent_kwargs"]["fit_kwargs"] = {"epochs": a.fit_epochs}
    return cfg


def job_order(agents: list[str], seeds: int) -> list[tuple[str, int]]:
    """SAC and PEBBLE first (the acceptance pair), seed by seed, then the other agents."""
    first = [x for x in agents if x in FIRST]
    rest = [x for x in agents if x not in first]
    return [(x, s) for s in range(seeds) for x in first] + [(x, s) for x in rest for s in range(seeds)]


def build_grid(a: argparse.Namespace):
    """The benchmark's sweep points in run order, validated before anything runs."""
    points = {}
    for agent in a.agents:
        try:
            for p in expand_grid(agent_config(agent, a), agents=[agent], teachers=["oracle"], seeds=list(range(a.seeds))):
                points[(agent, p.config["seed"])] = p
        except ValueError as e:
            raise ValueError(f"{agent}: {e}") from None
    return [points[job] for job in job_order(a.agents, a.seeds)]


def summarise_runs(runs: list, agents: list[str], score: str, seed: int = 0) -> dict[str, dict[str, Any]]:
    """Per agent: IQM final score [95 % CI] over seeds, mean / std / per seed, ratio to SAC-true, cost."""
    fld = {"return": "mean_return", "success": "success_rate"}[score]
    table: dict[str, dict[str, Any]] = {}
    for agent in agents:
        rs = sorted((r for r in runs if r.config["agent"] == agent), key=lambda r: r.config["seed"])
        if not rs:
            continue
        vals = np.array([r.final(fld) for r in rs], dtype=np.float64)
        m = [r.metrics for r in rs]
        cpu = np.array([x["cpu_time_s"] for x in m], dtype=np.float64)
        row = {
            "score": score, "n_runs": len(rs), "seeds": [int(r.config["seed"]) for r in rs],
            "iqm": interval([vals], seed),
            "mean": float(vals.mean()), "std": float(vals.std()), "per_seed": vals.tolist(),
            "cpu_s_per_run": float(cpu.mean()),
            "steps_per_cpu_s": float(np.mean([x["steps"] / max(c, 1e-9) for x, c in zip(m, cpu)])),
            "steps_per_wall_s": float(np.mean([x["steps"] / max(x["wall_time_s"], 1e-9) for x in m])),
            "labels_used": float(np.mean([x["labels"] for x in m])),
            "labels_asked": float(np.mean([x.get("asked", x["labels"]) for x in m])),
        }
        for k in sorted({k for x in m for k in x.get("feedback_time_s", {})}):
            row[f"{k}_cpu_s"] = float(np.mean([x.get("feedback_time_s", {}).get(k, 0.0) for x in m]))
        table[agent] = row
    base = table.get(UPPER_BOUND)
    for row in table.values():
        ref = None if base is None else base["iqm"]["value"]
        # a ratio means something only when SAC's IQM is positive
        row["ratio_to_sac"] = row["iqm"]["value"] / ref if ref is not None and ref > 0 else None
        row["cpu_vs_sac"] = row["cpu_s_per_run"] / base["cpu_s_per_run"] if base is not None else None
    return table


def markdown_table(table: dict, task: str) -> str:
    """The summary as a Markdown table (the README's), one row per agent."""
    score = next(iter(table.values()))["score"] if table else "return"
    lines = [f"| {task} | IQM final {score} [95 % CI] | mean ± std | per seed | vs SAC | CPU-min per run | "
             "CPU vs SAC | labels used |",
             "|---|---:|---:|---|---:|---:|---:|---:|"]
    for agent, row in table.items():
        i, ratio, cpu = row["iqm"], row["ratio_to_sac"], row["cpu_vs_sac"]
        per_seed = ", ".join(f"{v:.0f}" if score == "return" else f"{v:.2f}" for v in row["per_seed"])
        lines.append(
            f"| {agent} | {i['value']:.1f} [{i['low']:.1f}, {i['high']:.1f}] | {row['mean']:.1f} ± {row['std']:.1f} | "
            f"{per_seed} | {'-' if ratio is None else f'{100 * ratio:.0f} %'} | {row['cpu_s_per_run'] / 60:.1f} | "
            f"{'-' if cpu is None else f'{cpu:.2f}x'} | {row['labels_used']:.0f} |"
        )
    return "\n".join(lines)


def summarise(ctx: StudyRuns) -> dict[str, Any]:
    """``bench_online.json``: the table, ``pbrl report``'s plots, failures, unfinished runs and every run's curve."""
    a, runs = ctx.args, ctx.records
    table = summarise_runs(runs, a.agents, a.score)
    rep = build_report(runs, score=a.score, group_by=("agent",), out=ctx.out / "report", overwrite=True)
    settings = {k: v for k, v in vars(a).items() if k not in ("seed_list", "export", "overrides")}
    return {"settings": settings, "table": table, "report_plots": rep.get("plots", []),
            "warnings": rep.get("warnings", []), "failures": ctx.failures, "unfinished": ctx.unfinished,
            "runs": {r.name: {"final": r.metrics["final"], "curve": r.curve} for r in runs}}


STUDY = Study(name="bench_online", description=__doc__, out="benchmarks/bench_online_sweep", seeds=3, workers=2,
              arguments=add_arguments, check=check, grid=build_grid, summarise=summarise,
              markdown=lambda res, ctx: markdown_table(res["table"], ctx.args.task), result_file="bench_online.json")


def parse_args(argv=None) -> argparse.Namespace:
    """The study's flags, checked (the harness's and this study's)."""
    from pbrl.bench import parse_args as harness_args

    return harness_args(STUDY, argv)


def main(argv=None) -> dict:
    return run_study(STUDY, argv)


if __name__ == "__main__":
    main()
