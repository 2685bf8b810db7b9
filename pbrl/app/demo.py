"""``pbrl demo``: what the suite is for, in a few minutes on 2 CPU cores.

On one task (Meta-World button-press) and one fixed dataset (a scripted policy, most of whose episodes are
drowned in action noise), learners train for the same number of updates, each with several seeds (trained
together, vmapped):

* **IQL on the true reward** (the line to reach: what a hand-written reward gives);
* **BC**, imitating every action of the data (the floor: what ignoring rewards and preferences gives);
* **MR+IQL** at label budgets a factor of ten apart: the same IQL, never shown the reward, only a scripted
  teacher's answers to "which of these two segments is better?", from which it learns a reward and
  relabels the data.

It prints the B-Pref teachers' table (how often each simulated teacher agrees with the oracle on segments
of this data), the final returns (mean over seeds, lowest and highest), and draws ONE plot,
``OUT/demo.png``: left, return against updates; right, the feedback-efficiency view, final return against
labels used, with the true-reward learner as the line to reach and BC as the floor; every line is the mean
over seeds with a band from the lowest to the highest seed. Runs already finished in ``OUT`` are reused.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from pbrl.app.run_dir import RunDir
from pbrl.app.sweep import SweepPoint, run_sweep
from pbrl.envs import episode_length, make_env, rollout
from pbrl.envs.datasets import collect, load_dataset, save_d4rl
from pbrl.io import atomic_write
from pbrl.segments import sample_segment_pairs
from pbrl.teachers import TEACHER_PRESETS, ScriptedTeacher

__all__ = ["teacher_agreement_table", "dataset_teacher_table", "run_tour", "plot_demo", "teacher_table", "DEMO_TASK",
           "DEMO_OFFLINE", "DEMO_DATASET", "DEMO_BUDGETS", "DEMO_SEEDS"]


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
#: the demo's task
DEMO_TASK = "metaworld/button-press-v3"

DEMO_DATASET: dict[str, Any] = {"policy": "scripted", "n_steps": 8000, "noise": [0.3, 5.0, 5.0, 5.0, 5.0, 5.0, 5.0, 5.0]}
"""The demo's dataset: a scripted Meta-World policy under action noise that changes per episode (one
episode in eight close to the scripted policy, the others close to random), collected once into
``OUT/dataset.hdf5``. Imitating it (BC) copies mostly random behaviour; a learner that knows which
steps are good (the true reward, or a reward learned from labels) can pick the good episodes out."""

DEMO_OFFLINE: dict[str, Any] = {
    "kind": "offline",
    "task": DEMO_TASK,
    "agent": "mriql",
    "teacher": "oracle",
    "segment_length": 25,
    "steps": 1500,
    "eval_every": 750,
    "checkpoint_every": 750,
    "n_eval_episodes": 5,
    "agent_kwargs": {"hidden": [64, 64], "batch_size": 128},
}
"""The demo's runs: IQL (small networks) on the dataset's true reward, BC on the same data, and MR+IQL, the
same IQL on a reward learned from a scripted teacher's labels (``total_feedback`` set per budget)."""

DEMO_BUDGETS: tuple[int, ...] = (5, 50, 500)
"""Label budgets of the demo's MR+IQL runs (a factor of ten apart)."""

DEMO_SEEDS: tuple[int, ...] = (0, 1, 2)
"""Seeds of every condition (trained together, vmapped: :func:`pbrl.app.runs.train_seeds`); the plot shows
their mean with a band from the lowest to the highest seed."""

REFERENCE = "IQL, true reward"
FLOOR = "BC, imitates the data"


def dataset_teacher_table(path: str | os.PathLike, pairs: int, segment_length: int, seed: int = 0) -> list[dict]:
    """:func:`teacher_agreement_table`'s rows for segment pairs sampled from a dataset file."""
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


def _jobs(cfg: dict, budgets: tuple[int, ...]) -> list[tuple[str, str, dict]]:
    """``(name, sub-folder, config)`` of every condition: the true-reward IQL, BC, and MR+IQL per budget."""
    jobs = [(REFERENCE, "iql_true_reward", {**cfg, "agent": "iql"}),
            (FLOOR, "bc", {**cfg, "agent": "bc", "agent_kwargs": {**cfg["agent_kwargs"]}})]
    return jobs + [(f"MR+IQL, {b} labels", f"mriql_b{b}", {**cfg, "total_feedback": b}) for b in sorted(budgets)]


def run_tour(out: str = "pbrl_demo", console=None, seed: int = 0, budgets: tuple[int, ...] = DEMO_BUDGETS,
             teacher_pairs: int = 1000, overrides: dict | None = None, dataset_steps: int | None = None,
             task: str = DEMO_TASK, noise: list[float] | None = None, seeds: tuple[int, ...] = DEMO_SEEDS,
             workers: int = 2) -> dict:
    """The tour behind ``pbrl demo`` (see the module docstring). ``overrides`` replace
    :data:`DEMO_OFFLINE`'s keys and ``dataset_steps`` the dataset's size (tests make both smaller); every
    condition runs with each of ``seeds`` (offset by ``seed``), the seeds of one condition in one vmapped
    batch, ``workers`` conditions at a time in their own processes (the local pool of
    :func:`pbrl.app.sweep.run_sweep`). Returns ``{"teachers": rows, "runs": {name: {seed: curve}}, "labels": {name: labels used},
    "plot": path}``."""
    import warnings

    warnings.filterwarnings("ignore", category=UserWarning, module=r"metaworld\..*")
    out_path = Path(out)
    say = console.print if console is not None else (lambda *a, **k: None)
    cfg = {**DEMO_OFFLINE, "task": task, **(overrides or {})}
    noise = list(noise or DEMO_DATASET["noise"])
    n_steps = int(dataset_steps or DEMO_DATASET["n_steps"])
    data = out_path / "dataset.hdf5"
    say(f"[bold]1. data[/bold]: {n_steps} steps of a scripted {task} policy with action noise "
        f"{noise} (one level per episode, in turn) -> {data}", highlight=False)
    if not data.exists():
        save_d4rl(collect(task, DEMO_DATASET["policy"], n_steps=n_steps, seed=seed, noise=noise), data)
    cfg["dataset"] = str(data)
    say(f"[bold]2. teachers[/bold]: B-Pref's scripted teachers on {teacher_pairs} segment pairs of this data "
        f"(H={cfg['segment_length']}), against the oracle")
    rows = dataset_teacher_table(data, teacher_pairs, cfg["segment_length"], seed)
    if console is not None:
        console.print(teacher_table(rows, f"B-Pref teachers on {teacher_pairs} pairs of {task}"))
    run_seeds = [seed + s for s in seeds]
    curves: dict[str, dict[int, list[dict]]] = {}
    labels: dict[str, int] = {}
    for i, (name, sub, c) in enumerate(_jobs(cfg, budgets), start=3):
        what = {"iql": "on the dataset's reward", "bc": "imitating every action of the data, no reward"}.get(
            c["agent"], f"never shown the reward: an oracle teacher labels {c.get('total_feedback')} segment pairs")
        say(f"[bold]{i}. {name}[/bold]: {c['steps']} updates, {what}, seeds {run_seeds} -> {out_path / sub}_s*",
            highlight=False)
    say(f"   training: each condition's {len(run_seeds)} seeds in one vmapped batch, {workers} conditions at a time")
    jobs = _jobs(cfg, budgets)
    points = [SweepPoint(f"{sub}_s{s}", {**c, "seed": s}) for _, sub, c in jobs for s in run_seeds]
    res = run_sweep(points, out_path, backend="local", workers=workers, progress=False, batch_seeds=True)
    failed = {k: v["error"] for k, v in res.items() if "error" in v}
    if failed:
        raise RuntimeError(f"demo runs failed: {failed}")
    for name, sub, c in jobs:
        curves[name] = {s: RunDir(out_path / f"{sub}_s{s}").curve() for s in run_seeds}
        if c["agent"] == "mriql":
            labels[name] = int(res[f"{sub}_s{run_seeds[0]}"].get("labels", c["total_feedback"]))
    _say_results(say, curves, cfg["n_eval_episodes"], len(run_seeds))
    plot = plot_demo(curves, labels, REFERENCE, out_path / "demo.png", task, metric="mean_return", floor=FLOOR)
    say(f"plot: {plot}")
    return {"teachers": rows, "runs": curves, "labels": labels, "plot": str(plot)}


def _finals(runs_of: dict[int, list[dict]], metric: str) -> np.ndarray:
    """The final ``metric`` of each seed's curve ``[n_seeds]``."""
    return np.array([c[-1][metric] for c in runs_of.values()], dtype=np.float64)


def _say_results(say, curves: dict[str, dict[int, list[dict]]], episodes: int, n_seeds: int) -> None:
    say(f"[bold]results[/bold]: final return (true reward, {episodes} evaluation episodes per seed), mean over "
        f"{n_seeds} seeds [lowest, highest], and its share of the true-reward learner's")
    top = float(np.mean(_finals(curves[REFERENCE], "mean_return")))
    for name, by_seed in curves.items():
        r, sr = _finals(by_seed, "mean_return"), _finals(by_seed, "success_rate")
        share = f"{100 * r.mean() / top:4.0f} %" if top > 0 else ""
        say(f"   {name:<22} return {r.mean():6.1f} [{r.min():6.1f}, {r.max():6.1f}]  {share}  "
            f"(success rate {sr.mean():.2f})", highlight=False)


def _mean_curve(by_seed: dict[int, list[dict]], metric: str) -> tuple[np.ndarray, ...]:
    """``(steps, mean, lowest, highest)`` over seeds, at the steps every seed evaluated."""
    steps = sorted(set.intersection(*({r["step"] for r in c} for c in by_seed.values())))
    vals = np.array([[next(r[metric] for r in c if r["step"] == s) for s in steps] for c in by_seed.values()])
    return np.array(steps), vals.mean(0), vals.min(0), vals.max(0)


def plot_demo(curves: dict[str, dict[int, list[dict]]], budgets: dict[str, int], reference: str,
              path: str | os.PathLike, task: str, metric: str = "mean_return", xlabel: str = "gradient updates",
              floor: str | None = None) -> Path:
    """The demo's one figure: ``metric`` against training (left, each condition's mean over seeds) and the
    final ``metric`` against labels used (right: the mean over seeds, each seed as a dot, and a band from the
    lowest to the highest seed); the ``reference`` learner (true reward) is the dashed line to reach, the
    ``floor`` (BC) the dotted one, each with its band over seeds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ylabel = {"success_rate": "success rate", "mean_return": "return (true reward)"}.get(metric, metric)
    n_seeds = len(next(iter(curves.values())))
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.6))
    palette = iter(["tab:orange", "tab:blue", "tab:green", "tab:red", "tab:purple", "tab:brown"])
    style = {reference: ("black", "--"), floor: ("grey", ":")}
    for name, by_seed in curves.items():
        color, ls = style.get(name, (None, "-"))
        color = color or next(palette)
        x, y, _, _ = _mean_curve(by_seed, metric)  # the spread over seeds is the right panel's band
        ax1.plot(x, y, color=color, ls=ls, lw=2.2, marker="o", ms=5, label=name)
    ax1.set_xlabel(xlabel)
    ax1.set_ylabel(ylabel)
    ax1.set_title(f"the same data, three ways to learn from it (mean of {n_seeds} seeds)")
    ax1.legend(loc="best", fontsize=8)
    names = sorted(budgets, key=budgets.get)
    xs = np.array([budgets[n] for n in names], dtype=np.float64)
    finals = [_finals(curves[n], metric) for n in names]
    for line, (color, ls) in ((reference, style[reference]), (floor, style.get(floor, ("grey", ":")))):
        if line is None or line not in curves:
            continue
        f = _finals(curves[line], metric)
        ax2.axhline(f.mean(), color=color, ls=ls, lw=2.2, label=f"{line} (no labels)")
        ax2.axhspan(f.min(), f.max(), color=color, alpha=0.1, linewidth=0)
    means = np.array([f.mean() for f in finals])
    ax2.plot(xs, means, color="tab:blue", marker="o", ms=8, lw=2.2, label="MR+IQL: reward learned from labels")
    ax2.fill_between(xs, [f.min() for f in finals], [f.max() for f in finals], color="tab:blue", alpha=0.2, linewidth=0)
    for x, f in zip(xs, finals):
        ax2.scatter(np.full(len(f), x), f, color="tab:blue", s=12, alpha=0.6, zorder=3)
    for x, y in zip(xs, means):
        ax2.annotate(f"{y:.2f}" if metric == "success_rate" else f"{y:.0f}", (x, y), textcoords="offset points",
                     xytext=(8, -4), fontsize=9)
    ax2.set_xscale("log")
    ax2.set_xticks(xs, [str(int(x)) for x in xs])
    ax2.minorticks_off()
    ax2.set_xlabel("labels used (teacher's answers, log scale)")
    ax2.set_ylabel(f"final {ylabel}")
    ax2.set_title(f"feedback efficiency: more labels, closer to the reward (band: {n_seeds} seeds)")
    ax2.legend(loc="lower right", fontsize=8)
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
