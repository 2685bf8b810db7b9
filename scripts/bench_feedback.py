"""The feedback-efficiency study: Meta-World success against env steps and against labels, per agent and
label budget, beside SAC on the true reward, with several seeds; plus noisy-teacher rows (B-Pref's ``mistake``).

This is the experiment every online PbRL paper reports (PEBBLE, SURF, RUNE, QPA, B-Pref). It is a study on
the benchmark harness (:mod:`pbrl.app.bench`): a ``pbrl sweep`` grid (one run directory per point under ``--out``,
each with its live ``progress.csv`` and ``curve.csv``; running the same command again resumes unfinished
runs and skips finished ones), exported to ``<out>/runs.csv`` and ``<out>/curves.csv`` (what git keeps;
``--report-only`` rebuilds everything below from them), and summarised by ``pbrl report``
(:func:`pbrl.app.report.build_report`). This script adds what the study needs on top:

* ``<out>/feedback.json``: for every agent, budget and teacher, the IQM final success rate with a 95 %
  stratified-bootstrap interval on each task and pooled over tasks x seeds (tasks as strata), its ratio to
  SAC-true's IQM, the probability of improvement over PEBBLE, the share of saturated reward outputs at the
  end, and the CPU time per run;
* ``<out>/feedback.png`` (success against env steps and against labels, per task) and ``<out>/feedback_iqm.png``
  (the table's per-task and pooled IQMs with their intervals, and P(> PEBBLE));
* ``<out>/report/``: ``pbrl report``'s table and plots (success against steps and against labels used,
  with bands), grouped by agent, budget and teacher;
* the tables printed as Markdown: each task's IQM first, the pooled one beside them; per-seed finals; costs.

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

What was cut, aiming at about 16 CPU-hours: the 250-label budget (``--budgets 250 1000`` brings it back) and
the noisy-teacher rows (``--noisy``: B-Pref's ``mistake`` teacher and a 30 %-error one for PEBBLE and RIME on the
first task). The aim assumed SAC-true at about 5 CPU-minutes a run (the first study's tasks); on these tasks it
costs about 10, and the PEBBLE family 1.05-2.1x that, so the grid's measured cost is about 27 CPU-hours. Nothing
more was cut: 8 rows x 3 tasks x 5 seeds is the smallest grid that answers the study's questions (raw against
standardised inputs, the control, every agent against PEBBLE on each task). ``--dry-run`` prints the grid and projects its
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

from pbrl.agents.online_base import SAC_DEFAULTS
from pbrl.agents.pebble import PEBBLE
from pbrl.agents.registry import agent_names
from pbrl.app.bench import (
    CPU_REWARD_MODEL_KWARGS,
    CPU_SAC_KWARGS,
    Study,
    merge_overrides,
    run_study,
)
from pbrl.app.feedback_summary import CONTROL, report_markdown, summarise
from pbrl.envs.registry import check_task
from pbrl.online.feedback import spread_budget

PBRL_AGENTS = ("pebble", "surf", "rune", "qpa", "rime")
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
    """The study's grid points (:class:`pbrl.app.sweep.SweepPoint`), validated before anything runs."""
    from pbrl.app.sweep import SweepPoint, expand_grid

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


STUDY = Study(name="bench_feedback", description=__doc__, out=None, seeds=5, workers=2, arguments=add_arguments,
              check=check, grid=build_grid, set_in_grid=True, only_grid=False, summarise=summarise,
              markdown=report_markdown,
              result_file=lambda a: "calibration.json" if a.calibrate else "feedback.json")


def parse_args(argv=None) -> argparse.Namespace:
    """The study's flags, checked (the harness's and this study's)."""
    from pbrl.app.bench import parse_args as harness_args

    return harness_args(STUDY, argv)


def main(argv=None) -> dict:
    res = run_study(STUDY, argv)
    if isinstance(res, dict) and "threshold" in res:  # --calibrate
        return {"calibration": res["tasks"]}
    return res


if __name__ == "__main__":
    main()
