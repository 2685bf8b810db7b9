"""Ratings against preference pairs at an equal number of human actions, offline (RbRL vs PbRL, MR+IQL).

A person's cost is the number of clips they watch: one rating is one clip, one preference pair is two. For
each budget A of human actions (``--actions``) and seed, on one dataset collected here:

* **pairs**: A / 2 segment pairs labelled by the oracle teacher (B-Pref), the Bradley-Terry ensemble;
* **ratings, n classes** (each n of ``--n-classes``): A single segments rated by the scripted
  :class:`~pbrl.teachers.RatingTeacher` (quantile class boundaries), the ensemble fitted with the RbRL rating
  loss (White et al., AAAI 2024);

then MR+IQL (:class:`~pbrl.agents.iql.MRIQL`: the learned reward relabels the dataset, IQL trains on it).
Measured for every run: the learned reward's accuracy on held-out segment pairs (which segment has the
higher true return; ties left out), the Spearman rank correlation of learned and true segment returns on
held-out segments, and MR+IQL's return (and success rate) on the live task, mean over ``--eval-episodes``
deterministic episodes. Printed as a Markdown table (mean ± std over seeds), written to
``<out>/bench_ratings.json`` with every run, and plotted to ``<out>/bench_ratings.png``.

It is an in-process study on the benchmark harness (:mod:`pbrl.app.bench`): every (budget, seed, feedback) is
one unit, its row kept in ``<out>/runs.csv`` as soon as it finishes; running the same command again runs
only the units that are not there (resume), and ``--report-only`` rebuilds the table and plot from the CSV.

The dataset is collected here (nothing is downloaded): by default Meta-World ``button-press`` with its
scripted policy under Gaussian action noise cycled per episode (``--noise``), which gives episodes from
failing to solving, as ``scripts/make_datasets.py`` builds its Meta-World data. Network sizes are CPU-sized
(``--hidden``); ``--quick`` is a smoke run (Reacher, random policy, one small budget, seconds).

Example::

    .venv/bin/python scripts/bench_ratings.py                  # the study (about 13 minutes here)
    .venv/bin/python scripts/bench_ratings.py --quick --out /tmp/bench_ratings
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np

from pbrl.app.bench import BadInput, Study, StudyRuns, run_study
from pbrl.envs.registry import check_task


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The study's own flags (the harness adds --seeds, --out, --dry-run, --report-only)."""
    p.add_argument("--task", default="metaworld/button-press-v3")
    p.add_argument("--policy", default="scripted", help="collection policy (pbrl.envs.collect POLICY_KINDS)")
    p.add_argument("--noise", type=float, nargs="+", default=[0.1, 0.5, 1.0, 2.0, 3.0],
                   help="action-noise levels cycled per episode (scripted policy)")
    p.add_argument("--collect-steps", type=int, default=25_000)
    p.add_argument("--actions", type=int, nargs="+", default=[100, 400], help="human actions (clips watched)")
    p.add_argument("--n-classes", type=int, nargs="+", default=[2, 3, 5], help="rating classes to compare")
    p.add_argument("--segment-length", type=int, default=50)
    p.add_argument("--heldout", type=int, default=1000, help="held-out segment pairs for the reward metrics")
    p.add_argument("--iql-steps", type=int, default=3000)
    p.add_argument("--reward-epochs", type=int, default=100)
    p.add_argument("--hidden", type=int, nargs="+", default=[128, 128])
    p.add_argument("--eval-episodes", type=int, default=5)
    p.add_argument("--quick", action="store_true", help="smoke run: Reacher, random policy, tiny sizes")


def check(a: argparse.Namespace, p: argparse.ArgumentParser) -> None:
    """--quick's sizes, then one clear error for bad flags."""
    if a.quick:
        a.task, a.policy, a.noise, a.collect_steps = "mujoco/Reacher-v5", "random", [0.0], 1500
        a.actions, a.n_classes, a.seeds, a.segment_length = [40], [3], 1, 10
        a.heldout, a.iql_steps, a.reward_epochs, a.hidden, a.eval_episodes = 200, 100, 10, [32, 32], 1
        a.seed_list = [0]
    try:
        check_task(a.task)
    except ValueError as e:
        p.error(str(e))
    for name in ("collect_steps", "segment_length", "heldout", "iql_steps", "reward_epochs", "eval_episodes"):
        if getattr(a, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1")
    if any(x < 2 for x in a.actions):
        p.error("--actions must be >= 2 (one pair is two clips)")
    if any(n < 2 for n in a.n_classes):
        p.error("--n-classes must be >= 2")


def collect_data(a: argparse.Namespace):
    """The dataset (seeded by 0) and held-out segment pairs drawn with a seed no run uses."""
    from pbrl.envs.datasets import collect
    from pbrl.segments import sample_segment_pairs

    kw: dict[str, Any] = {"noise": a.noise} if a.policy == "scripted" else {}
    ds = collect(a.task, a.policy, n_steps=a.collect_steps, seed=0, **kw)
    eps = [t for t in ds.episodes() if len(t) >= a.segment_length]
    if not eps:
        raise BadInput(f"no episode of {a.task} is {a.segment_length} steps long; use a shorter --segment-length")
    held_a, held_b = sample_segment_pairs(eps, a.heldout, a.segment_length, np.random.default_rng(10_000))
    return ds, held_a, held_b


def reward_metrics(reward_model, held_a, held_b) -> dict[str, float]:
    """Held-out pair accuracy (ties left out) and Spearman rank correlation of segment returns."""
    from scipy.stats import spearmanr

    pa, pb = reward_model.segment_returns(held_a).mean(0), reward_model.segment_returns(held_b).mean(0)
    ta, tb = held_a.reward.sum(1), held_b.reward.sum(1)
    decided = ta != tb
    acc = float(np.mean((pb > pa)[decided] == (tb > ta)[decided])) if decided.any() else float("nan")
    rho = spearmanr(np.concatenate([pa, pb]), np.concatenate([ta, tb])).statistic
    return {"pair_accuracy": acc, "rank_correlation": float(rho)}


def run_one(a: argparse.Namespace, ds, held, kind: str, n_classes: int | None, actions: int, seed: int) -> dict:
    """Label (pairs or ratings) within ``actions`` clips, fit MR+IQL, measure reward and return."""
    import torch

    from pbrl.agents.iql import MRIQL
    from pbrl.envs.datasets import label_dataset, rate_dataset
    from pbrl.teachers import make_teacher

    torch.manual_seed(seed)
    t0, c0 = time.time(), time.process_time()
    if kind == "pairs":
        labels = label_dataset(ds, make_teacher("oracle", seed=seed), actions // 2, a.segment_length, seed=seed)
    else:
        teacher = make_teacher("rating", seed=seed, n_classes=n_classes)
        labels = rate_dataset(ds, teacher, actions, a.segment_length, seed=seed)
    agent = MRIQL.from_dataset(ds, seed=seed, hidden=tuple(a.hidden), reward_epochs=a.reward_epochs,
                               reward_model_kwargs={"hidden": tuple(a.hidden)})
    agent.fit(ds, labels, steps=a.iql_steps, progress=False)
    ev = agent.evaluate(a.task, n_episodes=a.eval_episodes, dataset=ds, seed=seed + 100)
    return {
        "feedback": kind if kind == "pairs" else f"ratings n={n_classes}",
        "kind": kind, "n_classes": n_classes, "actions": actions, "seed": seed, "labels": len(labels),
        **reward_metrics(agent.reward_model, *held),
        "reward_train_accuracy": float(agent.reward_fit_info.get("accuracy", float("nan"))),
        "mean_return": float(ev["mean_return"]), "success_rate": float(ev["success_rate"]),
        "wall_s": time.time() - t0, "cpu_s": time.process_time() - c0,
    }


METRICS = ("pair_accuracy", "rank_correlation", "mean_return", "success_rate")


def summarise(rows: list[dict]) -> list[dict]:
    """Mean and std over seeds of every metric, per (feedback, actions)."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["feedback"], r["actions"]), []).append(r)
    out = []
    for (fb, act), rs in groups.items():
        rec: dict[str, Any] = {"feedback": fb, "actions": act, "n_runs": len(rs), "labels": float(np.mean([r["labels"] for r in rs])),
                               "cpu_s": float(np.mean([r["cpu_s"] for r in rs]))}
        for m in METRICS:
            v = np.array([r[m] for r in rs], float)
            rec[m] = {"mean": float(np.mean(v)), "std": float(np.std(v))}
        out.append(rec)
    return sorted(out, key=lambda r: (r["actions"], r["feedback"] != "pairs", r["feedback"]))


def markdown(table: list[dict]) -> str:
    lines = ["| feedback | human actions | labels | held-out pair accuracy | rank correlation | MR+IQL return | "
             "success | CPU-s per run |", "|---|---:|---:|---|---|---|---|---:|"]
    for r in table:
        cells = [f"{r[m]['mean']:.3f} ± {r[m]['std']:.3f}" if m != "mean_return" else f"{r[m]['mean']:.1f} ± {r[m]['std']:.1f}"
                 for m in METRICS]
        lines.append(f"| {r['feedback']} | {r['actions']} | {r['labels']:.0f} | " + " | ".join(cells) + f" | {r['cpu_s']:.0f} |")
    return "\n".join(lines)


def plot(table: list[dict], path: Path, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    for ax, m, label in zip(axes, ("pair_accuracy", "rank_correlation", "mean_return"),
                            ("held-out pair accuracy", "rank correlation (Spearman)", "MR+IQL return")):
        for fb in dict.fromkeys(r["feedback"] for r in table):
            rs = sorted((r for r in table if r["feedback"] == fb), key=lambda r: r["actions"])
            x = [r["actions"] for r in rs]
            y = np.array([r[m]["mean"] for r in rs])
            e = np.array([r[m]["std"] for r in rs])
            ax.errorbar(x, y, yerr=e, marker="o", capsize=3, label=fb, linestyle="-" if fb == "pairs" else "--")
        ax.set_xlabel("human actions (clips watched)")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


#: the flags a unit's result depends on (its row is redone when one of them changes)
UNIT_SETTINGS = ("task", "policy", "noise", "collect_steps", "segment_length", "heldout", "iql_steps", "reward_epochs",
                 "hidden", "eval_episodes")


def units(a: argparse.Namespace) -> list[dict]:
    """One unit per (human actions, seed, feedback), with the settings it depends on."""
    feedback = [("pairs", None), *[("ratings", n) for n in a.n_classes]]
    return [{"run": f"{kind}{n or ''}__a{actions}__s{seed}", "kind": kind, "n_classes": n, "actions": actions,
             "seed": seed, **{k: getattr(a, k) for k in UNIT_SETTINGS}}
            for actions in a.actions for seed in a.seed_list for kind, n in feedback]


def prepare(a: argparse.Namespace, out: Path) -> None:
    """The dataset and the held-out pairs, once, before the first unit that runs."""
    import torch

    torch.set_num_threads(1)
    a.data = collect_data(a)
    ds = a.data[0]
    a.dataset_info = {"task": a.task, "policy": a.policy, "steps": len(ds), "episodes": int(ds.n_episodes),
                      "episode_return_range": [float(ds.episode_returns().min()), float(ds.episode_returns().max())]}


def run_unit(a: argparse.Namespace, u: dict) -> dict:
    ds, held_a, held_b = a.data
    r = run_one(a, ds, (held_a, held_b), u["kind"], u["n_classes"], u["actions"], u["seed"])
    print(f"[bench_ratings] {r['feedback']:>14} actions {u['actions']:>5} seed {u['seed']}: pair acc "
          f"{r['pair_accuracy']:.3f}, rank {r['rank_correlation']:.3f}, return {r['mean_return']:.1f} "
          f"({r['cpu_s']:.0f} CPU-s)", flush=True)
    return r


def summarise_study(ctx: StudyRuns) -> dict:
    """``bench_ratings.json``: the table (mean ± std over seeds), every run, the dataset, the plot."""
    a, out = ctx.args, ctx.out
    rows = [r.metrics for r in ctx.records]
    table = summarise(rows)
    saved = out / "bench_ratings.json"
    dataset = getattr(a, "dataset_info", None) or (json.loads(saved.read_text()).get("dataset") if saved.exists() else None)
    steps = dataset["steps"] if dataset else "?"
    png = plot(table, out / "bench_ratings.png",
               f"ratings vs pairs at equal human actions: {a.task} ({a.policy}, {steps} steps), MR+IQL")
    settings = {k: v for k, v in vars(a).items() if k not in ("data", "dataset_info", "seed_list", "export")}
    return {"settings": settings, "dataset": dataset,
            "machine": {"platform": platform.platform(), "python": platform.python_version()},
            "cpu_s": float(sum(r["cpu_s"] for r in rows)), "table": table, "runs": rows, "plot": str(png)}


STUDY = Study(name="bench_ratings", description=__doc__, out="benchmarks/bench_ratings", seeds=2,
              result_file="bench_ratings.json", arguments=add_arguments, check=check, prepare=prepare, units=units,
              run_unit=run_unit, summarise=summarise_study, markdown=lambda res, ctx: markdown(res["table"]))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    from pbrl.app.bench import parse_args as harness_args

    return harness_args(STUDY, argv)


def main(argv: list[str] | None = None) -> dict:
    return run_study(STUDY, argv)


if __name__ == "__main__":
    main()
