"""``pbrl demo``: what the suite is for, in a few minutes on 2 CPU cores.

On one task (Meta-World button-press) and one fixed dataset (a scripted policy under heavy action noise),
the same learner, IQL, trains several times for the same number of updates:

* on the dataset's **true reward** (the line to reach: what a hand-written reward gives);
* as **MR+IQL** at three label budgets: it never sees the reward, only a scripted teacher's answers to
  "which of these two segments is better?", from which it learns a reward and relabels the data.

It prints the B-Pref teachers' table (how often each simulated teacher agrees with the oracle on segments
of this data), the final returns, and draws ONE plot, ``OUT/demo.png``: left, return against updates;
right, the feedback-efficiency view, final return against labels used, with the true-reward learner as
the line to reach. Runs already finished in ``OUT`` are reused.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from pbrl.segments import sample_segment_pairs
from pbrl.teachers import TEACHER_PRESETS, ScriptedTeacher

__all__ = ["teacher_agreement_table", "dataset_teacher_table", "run_tour", "plot_demo", "teacher_table", "DEMO_TASK",
           "DEMO_OFFLINE", "DEMO_DATASET", "DEMO_BUDGETS"]


def teacher_agreement_table(
    task: str = "mujoco/HalfCheetah-v5",
    episodes: int = 4,
    pairs: int = 2000,
    segment_length: int = 50,
    seed: int = 0,
    console=None,
) -> list[dict]:
    """Label random-policy segment pairs with each B-Pref preset and compare with the oracle.

    Returns one row per teacher: ``answered`` (labels given), ``skipped``, ``equal`` (0.5 labels) and
    ``agreement``: the fraction of answered, non-equal pairs whose label matches the oracle's.
    """
    from pbrl.envs import episode_length, make_env, rollout

    env = make_env(task, seed=seed)
    if console is not None:
        console.print(f"collecting {episodes} random-policy episodes on {task} ...")
    trajs = rollout(env, "random", n_episodes=episodes, seed=seed, progress=False)
    a, b = sample_segment_pairs(trajs, pairs, segment_length, np.random.default_rng(seed))
    oracle = ScriptedTeacher.preset("oracle").label(a, b)
    margin_source = [t.ret for t in trajs]
    rows = []
    for name in TEACHER_PRESETS:
        teacher = ScriptedTeacher.preset(name, seed=seed)
        teacher.update_margin(margin_source, episode_length(task), segment_length)
        lab = teacher.label(a, b)
        answered = np.isfinite(lab)
        decided = answered & (lab != 0.5)
        agree = float(np.mean(lab[decided] == oracle[decided])) if decided.any() else float("nan")
        rows.append(
            {
                "teacher": name,
                "answered": int(answered.sum()),
                "skipped": int((~answered).sum()),
                "equal": int((lab == 0.5).sum()),
                "agreement": agree,
            }
        )
    return rows


# ---------------------------------------------------------------------------------------- the tour
DEMO_TASK = "metaworld/button-press-v3"

DEMO_DATASET: dict[str, Any] = {"policy": "scripted", "n_steps": 8000, "noise": [0.5, 2.0, 5.0, 5.0]}
"""The demo's dataset: a scripted Meta-World policy under four levels of action noise, cycled per episode
(one fair episode in four, the others close to random), collected once into ``OUT/dataset.hdf5``. With
less noise the data is so good that IQL imitates it whatever the reward, and labels do not matter."""

DEMO_OFFLINE: dict[str, Any] = {
    "kind": "offline",
    "task": DEMO_TASK,
    "agent": "mriql",
    "teacher": "oracle",
    "segment_length": 25,
    "steps": 1500,
    "eval_every": 500,
    "checkpoint_every": 500,
    "n_eval_episodes": 5,
    "agent_kwargs": {"hidden": [64, 64], "batch_size": 128},
}
"""The demo's runs: IQL (small networks) on the dataset's true reward, and MR+IQL, the same IQL on a reward
learned from a scripted teacher's labels (``total_feedback`` set per budget)."""

DEMO_BUDGETS: tuple[int, ...] = (5, 50, 200)
"""Label budgets of the demo's MR+IQL runs."""


def dataset_teacher_table(path: str | os.PathLike, pairs: int, segment_length: int, seed: int = 0) -> list[dict]:
    """:func:`teacher_agreement_table`'s rows for segment pairs sampled from a dataset file."""
    from pbrl.envs import episode_length
    from pbrl.envs.datasets import load_dataset

    ds = load_dataset(path)
    trajs = list(ds.episodes())
    a, b = sample_segment_pairs(trajs, pairs, segment_length, np.random.default_rng(seed))
    oracle = ScriptedTeacher.preset("oracle").label(a, b)
    rows = []
    for name in TEACHER_PRESETS:
        teacher = ScriptedTeacher.preset(name, seed=seed)
        teacher.update_margin([t.ret for t in trajs], episode_length(ds.task_id), segment_length)
        lab = teacher.label(a, b)
        answered = np.isfinite(lab)
        decided = answered & (lab != 0.5)
        rows.append({"teacher": name, "answered": int(answered.sum()), "skipped": int((~answered).sum()),
                     "equal": int((lab == 0.5).sum()),
                     "agreement": float(np.mean(lab[decided] == oracle[decided])) if decided.any() else float("nan")})
    return rows


def run_tour(out: str = "pbrl_demo", console=None, seed: int = 0, budgets: tuple[int, ...] = DEMO_BUDGETS,
             teacher_pairs: int = 1000, overrides: dict | None = None, dataset_steps: int | None = None,
             task: str = DEMO_TASK, noise: list[float] | None = None) -> dict:
    """The tour behind ``pbrl demo`` (see the module docstring). ``overrides`` replace
    :data:`DEMO_OFFLINE`'s keys and ``dataset_steps`` the dataset's size (tests make both smaller).
    Returns ``{"teachers": rows, "runs": {name: curve}, "labels": {name: labels used}, "plot": path}``."""
    import warnings

    from pbrl.envs.datasets import collect, save_d4rl
    from pbrl.run_dir import RunDir
    from pbrl.sweep import run_point

    warnings.filterwarnings("ignore", category=UserWarning, module=r"metaworld\..*")
    out_path = Path(out)
    say = console.print if console is not None else (lambda *a, **k: None)
    cfg = {**DEMO_OFFLINE, "task": task, **(overrides or {}), "seed": seed}
    noise = list(noise or DEMO_DATASET["noise"])
    n_steps = int(dataset_steps or DEMO_DATASET["n_steps"])
    data = out_path / "dataset.hdf5"
    say(f"[bold]1. data[/bold]: {n_steps} steps of a scripted {task} policy with action noise "
        f"{noise} -> {data}", highlight=False)
    if not data.exists():
        save_d4rl(collect(task, DEMO_DATASET["policy"], n_steps=n_steps, seed=seed, noise=noise), data)
    cfg["dataset"] = str(data)
    say(f"[bold]2. teachers[/bold]: B-Pref's scripted teachers on {teacher_pairs} segment pairs of this data "
        f"(H={cfg['segment_length']}), against the oracle")
    rows = dataset_teacher_table(data, teacher_pairs, cfg["segment_length"], seed)
    if console is not None:
        console.print(teacher_table(rows, f"B-Pref teachers on {teacher_pairs} pairs of {task}"))
    ref = "IQL, true reward"
    curves: dict[str, list[dict]] = {}
    labels: dict[str, int] = {}
    jobs = [(ref, "iql_true_reward", {**cfg, "agent": "iql"})]
    jobs += [(f"MR+IQL, {b} labels", f"mriql_b{b}", {**cfg, "total_feedback": b}) for b in sorted(budgets)]
    for i, (name, sub, c) in enumerate(jobs, start=3):
        what = ("on the dataset's reward" if c["agent"] == "iql" else
                f"never shown the reward: an oracle teacher labels {c['total_feedback']} segment pairs")
        say(f"[bold]{i}. {name}[/bold]: IQL, {c['steps']} updates, {what} -> {out_path / sub}")
        res = run_point(c, str(out_path / sub), verbose=False)
        curves[name] = RunDir(out_path / sub).curve()
        if c["agent"] != "iql":
            labels[name] = int(res.get("labels", c["total_feedback"]))
    say(f"[bold]results[/bold]: final return (true reward) over {cfg['n_eval_episodes']} evaluation episodes, "
        "and its share of the true-reward learner's")
    top = curves[ref][-1]["mean_return"]
    for name, c in curves.items():
        share = f"{100 * c[-1]['mean_return'] / top:5.0f} %" if top > 0 else ""
        say(f"   {name:<22} return {c[-1]['mean_return']:7.1f}  {share}  (success rate {c[-1]['success_rate']:.2f})",
            highlight=False)
    plot = plot_demo(curves, labels, ref, out_path / "demo.png", task, metric="mean_return")
    say(f"plot: {plot}")
    return {"teachers": rows, "runs": curves, "labels": labels, "plot": str(plot)}


def plot_demo(curves: dict[str, list[dict]], budgets: dict[str, int], reference: str, path: str | os.PathLike,
              task: str, metric: str = "success_rate", xlabel: str = "gradient updates") -> Path:
    """The demo's one figure: ``metric`` against training (left) and the final ``metric`` against labels
    used (right), with the ``reference`` learner (true reward) as a dashed line in both."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from pbrl.io import atomic_write

    ylabel = {"success_rate": "success rate", "mean_return": "return (true reward)"}.get(metric, metric)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    palette = iter(["tab:orange", "tab:blue", "tab:green", "tab:red", "tab:purple"])
    for name, curve in curves.items():
        ref = name == reference
        ax1.plot([r["step"] for r in curve], [r[metric] for r in curve], color="black" if ref else next(palette),
                 lw=2.4 if ref else 1.8, ls="--" if ref else "-", marker="o", ms=3, label=name)
    ax1.set_xlabel(xlabel)
    ax1.set_ylabel(ylabel)
    ax1.set_title("the same learner, on the true reward or on labels")
    ax1.legend(loc="best", fontsize=9)
    names = sorted(budgets, key=budgets.get)
    xs = [budgets[n] for n in names]
    ys = [curves[n][-1][metric] for n in names]
    ax2.axhline(curves[reference][-1][metric], color="black", ls="--", lw=2.4, label=f"{reference} (no labels)")
    ax2.plot(xs, ys, color="tab:blue", marker="o", ms=8, lw=2, label="learned from a scripted teacher")
    for x, y in zip(xs, ys):
        ax2.annotate(f"{y:.2f}" if metric == "success_rate" else f"{y:.0f}", (x, y), textcoords="offset points",
                     xytext=(8, -4), fontsize=9)
    ax2.set_xscale("log")
    ax2.set_xticks(xs, [str(x) for x in xs])
    ax2.set_xlabel("labels used (teacher's answers, log scale)")
    ax2.set_ylabel(f"final {ylabel}")
    ax2.set_title("feedback efficiency: labels needed to match the reward")
    ax2.legend(loc="best", fontsize=9)
    if metric == "success_rate":
        for ax in (ax1, ax2):
            ax.set_ylim(-0.05, 1.05)
    fig.suptitle(f"{task}: learning what is wanted from preferences instead of a reward", fontsize=12)
    fig.tight_layout()
    path = Path(path)
    with atomic_write(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return path


def teacher_table(rows: list[dict], title: str):
    """A ``rich`` table of :func:`teacher_agreement_table`'s rows."""
    from rich.table import Table

    table = Table(title=title)
    for col in ("teacher", "answered", "skipped", "equal (0.5)", "agrees with oracle"):
        table.add_column(col, justify="right" if col != "teacher" else "left")
    for r in rows:
        table.add_row(r["teacher"], f"{r['answered']}", f"{r['skipped']}", f"{r['equal']}",
                      "- (none answered)" if not np.isfinite(r["agreement"]) else f"{100 * r['agreement']:.1f} %")
    return table
