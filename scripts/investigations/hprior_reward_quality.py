"""Hindsight PRIOR's check: at equal labels on fixed label sets, does the prior make the learned reward agree
better with the true reward? (``docs/hprior.md``)

For each task, a fixed pool of episodes (a random policy mixed with a scripted one, so that returns vary) is
collected once (long episodes cut into pieces of ``--episode-steps``). The first ``--train-episodes`` episodes give the world model's training data and ``--labels``
oracle-labelled segment pairs; the rest give held-out pairs and steps. The world model (the agent's defaults,
pre-trained for ``--world-steps``) is trained once per seed; then PEBBLE's reward ensemble is fitted on the
same labels with Bradley-Terry alone and with Bradley-Terry plus the prior (lambda ``--weight``). Reported:
held-out pair accuracy of the mean predicted return, and the Pearson correlation of predicted and true step
reward.

Writes ``hprior_reward_quality.json`` and ``.png`` under ``--out`` and prints the table. Cost: more than 4
CPU-minutes per task and seed at the defaults (most of it the world model at the port's size).

    .venv/bin/python scripts/investigations/hprior_reward_quality.py
    .venv/bin/python scripts/investigations/hprior_reward_quality.py --smoke       # tiny sizes: checks the script
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from pbrl.bench import provenance

TASKS = ("metaworld/button-press-v3", "mujoco/HalfCheetah-v5")
VARIANTS = ("Bradley-Terry", "Bradley-Terry + prior")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tasks", nargs="+", default=list(TASKS))
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--labels", type=int, default=100)
    p.add_argument("--segment-length", type=int, default=25)
    p.add_argument("--steps", type=int, default=6000, help="env steps in the fixed pool")
    p.add_argument("--episode-steps", type=int, default=250)
    p.add_argument("--train-episodes", type=int, default=16)
    p.add_argument("--held-out", type=int, default=1000)
    p.add_argument("--world-steps", type=int, default=1500)
    p.add_argument("--weight", type=float, default=1000.0, help="lambda")
    p.add_argument("--epochs", type=int, default=50)
    p.add_argument("--out", default="benchmarks/hprior_reward_quality")
    p.add_argument("--smoke", action="store_true", help="tiny sizes: checks the script, measures nothing")
    a = p.parse_args(argv)
    if a.smoke:
        a.tasks, a.seeds, a.labels, a.segment_length, a.steps, a.episode_steps = ["mujoco/Reacher-v5"], [0], 10, 10, 300, 50
        a.train_episodes, a.held_out, a.world_steps, a.epochs = 3, 20, 3, 2
    for k in ("labels", "segment_length", "steps", "episode_steps", "train_episodes", "held_out", "epochs"):
        if getattr(a, k) < 1:
            p.error(f"--{k.replace('_', '-')} must be >= 1, got {getattr(a, k)}")
    if a.world_steps < 0 or not (np.isfinite(a.weight) and a.weight >= 0):
        p.error("--world-steps must be >= 0 and --weight a finite number >= 0")
    if a.segment_length >= a.episode_steps:
        p.error(f"--segment-length ({a.segment_length}) must be below --episode-steps ({a.episode_steps})")
    from pbrl.envs.registry import check_task

    for t in a.tasks:
        try:
            check_task(t)
        except ValueError as e:
            p.error(str(e))
    return a


def _pool(task: str, a: argparse.Namespace):
    from pbrl.envs.collect import collect
    from pbrl.segments import Trajectory

    # half random, half the task's scripted / noisy policy when there is one, so returns vary
    kinds = ["random", "scripted" if task.startswith("metaworld/") else "random"]
    eps = []
    for i, kind in enumerate(kinds):
        try:
            ds = collect(task, kind, n_steps=a.steps // 2, seed=1000 + i, noise=0.3 if kind == "scripted" else 0.0)
        except ValueError:
            ds = collect(task, "random", n_steps=a.steps // 2, seed=1000 + i)
        for t in ds.episodes():  # long episodes cut into pieces of --episode-steps (more, shorter episodes)
            for s in range(0, len(t) - a.segment_length, a.episode_steps):
                e = min(s + a.episode_steps, len(t))
                eps.append(Trajectory(t.obs[s:e], t.act[s:e], t.reward[s:e],
                                      next_obs=t.obs[e] if e < len(t) else t.next_obs))
    rng = np.random.default_rng(7)
    eps = [eps[i] for i in rng.permutation(len(eps))]
    if len(eps) <= a.train_episodes:
        raise SystemExit(f"error: only {len(eps)} episodes collected on {task}; raise --steps")
    return eps[: a.train_episodes], eps[a.train_episodes:]


def run_one(task: str, seed: int, train, test, a: argparse.Namespace) -> dict[str, Any]:
    from pbrl.agents.hprior import HindsightPriorLoss
    from pbrl.agents.online_base import REWARD_MODEL_DEFAULTS
    from pbrl.preferences import PreferenceDataset
    from pbrl.reward_models import RewardEnsemble, RewardTrainer
    from pbrl.reward_models.training import BradleyTerryLoss
    from pbrl.segments import sample_segment_pairs
    from pbrl.teachers import make_teacher

    la, lb = sample_segment_pairs(train, a.labels, a.segment_length, np.random.default_rng(seed))
    labels = PreferenceDataset(la, lb, make_teacher("oracle").label(la, lb))  # the oracle skips nothing
    ta, tb = sample_segment_pairs(test, a.held_out, a.segment_length, np.random.default_rng(10_000 + seed))
    s_obs = np.concatenate([t.obs for t in test])
    s_act = np.concatenate([t.act for t in test])
    s_rew = np.concatenate([t.reward for t in test])
    prior = HindsightPriorLoss(weight=a.weight, seed=seed)
    t0 = time.process_time()
    prior.train_world(train, a.segment_length, a.world_steps)
    world_s = time.process_time() - t0
    out: dict[str, Any] = {"world_loss": prior.last_world_loss, "world_cpu_s": world_s}
    for name in VARIANTS:
        model = RewardEnsemble(la.obs_dim, la.act_dim, **{**REWARD_MODEL_DEFAULTS, "seed": seed})
        losses = [BradleyTerryLoss()] + ([prior] if name.endswith("prior") else [])
        RewardTrainer(losses, epochs=a.epochs).fit(model, labels)
        ra, rb = model.segment_returns(ta).mean(0), model.segment_returns(tb).mean(0)
        acc = float(np.mean((rb > ra) == (tb.returns() > ta.returns())))
        pred = model.predict(s_obs, s_act)
        corr = float(np.corrcoef(pred, s_rew)[0, 1]) if np.std(pred) > 0 else 0.0
        out[name] = {"accuracy": acc, "correlation": corr}
    return out



def table(results: dict[str, dict[str, dict]]) -> str:
    lines = ["| task | variant | held-out pair accuracy | step-reward correlation |", "|---|---|---|---|"]
    for task, per_seed in results.items():
        for v in VARIANTS:
            acc = [r[v]["accuracy"] for r in per_seed.values()]
            cor = [r[v]["correlation"] for r in per_seed.values()]
            lines.append(f"| {task} | {v} | {np.mean(acc):.3f} ({min(acc):.3f}-{max(acc):.3f}) | "
                         f"{np.mean(cor):.3f} ({min(cor):.3f}-{max(cor):.3f}) |")
    return "\n".join(lines)


def plot(results: dict[str, dict[str, dict]], path: Path) -> Path:
    from pbrl.plots import plot_interval_bars
    from pbrl.stats import Interval

    groups = {}
    for task, per_seed in results.items():
        for v in VARIANTS:
            g = {}
            for m in ("accuracy", "correlation"):
                x = np.array([r[v][m] for r in per_seed.values()])
                g[m] = Interval(float(x.mean()), float(x.min()), float(x.max()), len(x))
            groups[f"{task.split('/')[-1]}: {v}"] = g
    return plot_interval_bars(groups, path, xlabel="held out (bar: min-max over seeds)")


def main(argv=None) -> dict[str, Any]:
    a = parse_args(argv)
    import torch

    torch.set_num_threads(1)
    t0 = time.process_time()
    results = {}
    for task in a.tasks:
        train, test = _pool(task, a)
        results[task] = {str(s): run_one(task, s, train, test, a) for s in a.seeds}
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    payload = {**provenance(), "args": vars(a),
               "cpu_seconds": time.process_time() - t0, "results": results}
    (out / "hprior_reward_quality.json").write_text(json.dumps(payload, indent=1))
    plot(results, out / "hprior_reward_quality.png")
    print(table(results))
    print(f"CPU time {payload['cpu_seconds']:.0f} s; wrote {out / 'hprior_reward_quality.json'}")
    return payload


if __name__ == "__main__":
    main()
