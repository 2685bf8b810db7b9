"""HERON's factor orders change what the agent learns: PrefPPO on HalfCheetah with the hierarchical teacher,
speed first against energy first (``docs/heron.md``).

Each order trains PrefPPO (the CPU preset: one env, 2 x 64 networks, no state-entropy pre-training) for
``--steps`` env steps, once per initial log-std of its gSDE exploration in ``--log-std-init`` (default ``-2 0``:
-2 is RL Zoo's gSDE value for MuJoCo; 0 is SB3's and B-Pref's default, whose noise saturates the actions of a
fresh policy, see ``docs/heron.md``), with the ``heron`` teacher ranking ``reward_forward`` then ``reward_ctrl`` ("speed
first") or ``reward_ctrl`` then ``reward_forward`` ("energy first"), margins 0.5 then 0.1 (the authors'
HalfCheetah setting). The final policy is then run deterministically for ``--eval-episodes`` episodes and each
factor's mean per-step value is recorded, with two diagnostics of what the reward learned: the per-step
correlation of the learned reward with each factor over the labelled segments, and those segments' mean
|action| (how much of the control cost exploration noise sets). The claim checked: each order ranks first in its own top factor
(speed first runs faster, energy first spends less control).

Writes ``heron_orders.json`` and ``heron_orders.png`` under ``--out`` and prints the table. Cost: about 70 CPU-seconds per run
(order, log-std and seed; the default 12 runs: about 15 CPU-minutes).

    .venv/bin/python scripts/investigations/heron_orders.py
    .venv/bin/python scripts/investigations/heron_orders.py --smoke          # tiny sizes: checks the script
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from pbrl.app.bench import provenance
from pbrl.reward_models import factor_correlations
from pbrl.teachers import HERON_HALFCHEETAH_ORDER

#: the teacher's two orders of HalfCheetah's factors (speed = reward_forward, energy = reward_ctrl)
FACTORS = HERON_HALFCHEETAH_ORDER
ORDERS = {"speed first": list(FACTORS), "energy first": list(FACTORS[::-1])}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--task", default="mujoco/HalfCheetah-v5")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--log-std-init", type=float, nargs="+", default=[-2.0, 0.0],
                   help="initial log-std of PPO's gSDE noise, one set of runs per value")
    p.add_argument("--steps", type=int, default=20_000)
    p.add_argument("--budget", type=int, default=200, help="queries asked over the run")
    p.add_argument("--per-session", type=int, default=20)
    p.add_argument("--every", type=int, default=2000, help="env steps between feedback sessions")
    p.add_argument("--segment-length", type=int, default=50)
    p.add_argument("--episode-steps", type=int, default=500, help="time limit of training and evaluation episodes")
    p.add_argument("--eval-episodes", type=int, default=3)
    p.add_argument("--out", default="benchmarks/heron_orders")
    p.add_argument("--smoke", action="store_true", help="tiny sizes: checks the script, measures nothing")
    a = p.parse_args(argv)
    if a.smoke:
        a.steps, a.budget, a.per_session, a.every, a.segment_length, a.episode_steps, a.eval_episodes = (
            600, 8, 4, 200, 10, 100, 1)
    if not all(np.isfinite(a.log_std_init)):
        p.error(f"--log-std-init must be finite numbers, got {a.log_std_init}")
    for k in ("steps", "budget", "per_session", "every", "segment_length", "episode_steps", "eval_episodes"):
        if getattr(a, k) < 1:
            p.error(f"--{k.replace('_', '-')} must be >= 1, got {getattr(a, k)}")
    if a.segment_length > a.episode_steps:
        p.error(f"--segment-length ({a.segment_length}) must be <= --episode-steps ({a.episode_steps})")
    return a


def evaluate(model, task: str, episode_steps: int, episodes: int, seed: int, obs_rms=None) -> dict[str, float]:
    """Mean per-step value of each factor (and the true reward) over deterministic episodes."""
    from pbrl.envs import make_env

    env = make_env(task, seed=10_000 + seed, max_episode_steps=episode_steps)
    sums = dict.fromkeys((*FACTORS, "reward"), 0.0)
    n = 0
    for e in range(episodes):
        obs, _ = env.reset(seed=10_000 + seed + e)
        done = False
        while not done:
            o = obs if obs_rms is None else np.clip((obs - obs_rms.mean) / np.sqrt(obs_rms.var + 1e-8), -10, 10)
            act = model.predict(o[None].astype(np.float32), deterministic=True)[0][0]
            obs, r, term, trunc, info = env.step(act)
            for k in FACTORS:
                sums[k] += float(info[k])
            sums["reward"] += float(r)
            n += 1
            done = term or trunc
    return {k: v / n for k, v in sums.items()}


def reward_diagnostics(agent) -> dict[str, float]:
    """Per-step correlation of the learned reward with each factor over every labelled segment, and the
    segments' mean |action|."""
    segs = [agent.preferences.a, agent.preferences.b]
    obs = np.concatenate([s.obs.reshape(-1, s.obs.shape[-1]) for s in segs])
    act = np.concatenate([s.act.reshape(-1, s.act.shape[-1]) for s in segs])
    r = agent.reward_model.predict(obs, act).reshape(-1)
    corr = factor_correlations(r, {k: np.concatenate([s.factors[k].reshape(-1) for s in segs]) for k in FACTORS})
    out = {f"corr_{k}": v for k, v in corr.items()}
    out["segment_abs_action"] = float(np.abs(act).mean())
    return out


def run_one(order_name: str, seed: int, log_std: float, a: argparse.Namespace) -> dict[str, Any]:
    from stable_baselines3.common.vec_env import VecNormalize

    from pbrl.agents.pref_ppo import PPO_CPU_PRESET, PrefPPO
    from pbrl.envs import make_env
    from pbrl.teachers import make_teacher

    teacher = make_teacher("heron", seed=seed, order=ORDERS[order_name])
    kw = dict(PPO_CPU_PRESET)
    lk = {**kw.pop("learner_kwargs"), "n_steps": 1024, "batch_size": 64}
    lk["policy_kwargs"] = {**lk["policy_kwargs"], "log_std_init": float(log_std)}
    agent = PrefPPO(make_env(a.task, seed=seed, max_episode_steps=a.episode_steps), teacher, total_feedback=a.budget,
                    feedback_per_session=a.per_session, feedback_every=a.every, segment_length=a.segment_length,
                    seed=seed, unsup_steps=0, learner_kwargs=lk, episode_length=a.episode_steps,
                    reward_model_kwargs={"hidden": (64, 64)}, fit_kwargs={"epochs": 50}, **kw)
    agent.learn(a.steps)
    venv = agent.model.get_env()
    rms = venv.obs_rms if isinstance(venv, VecNormalize) else None
    res = evaluate(agent.model, a.task, a.episode_steps, a.eval_episodes, seed, rms)
    return {**res, **reward_diagnostics(agent), "labels": len(agent.preferences), "asked": agent.callback.asked}



def run_name(order_name: str, log_std: float) -> str:
    """A run group's name: the order and the initial log-std, e.g. ``speed first, log-std -2``."""
    return f"{order_name}, log-std {log_std:g}"


def table(results: dict[str, dict[str, dict]]) -> str:
    lines = ["| run | labels (asked) | reward_forward per step | reward_ctrl per step | true reward per step "
             "| corr(r-hat, forward) | corr(r-hat, ctrl) | segments' mean abs action |",
             "|---|---|---|---|---|---|---|---|"]
    for name, per_seed in results.items():
        rows = list(per_seed.values())
        diag = " | ".join(f"{np.mean([r[k] for r in rows]):.2f}" for k in
                          ("corr_reward_forward", "corr_reward_ctrl", "segment_abs_action"))
        f = [r["reward_forward"] for r in rows]
        c = [r["reward_ctrl"] for r in rows]
        t = [r["reward"] for r in rows]
        lab = np.mean([r["labels"] for r in rows])
        asked = np.mean([r["asked"] for r in rows])
        lines.append(f"| {name} | {lab:.0f} ({asked:.0f}) | {np.mean(f):.3f} | {np.mean(c):.3f} | {np.mean(t):.3f} | {diag} |")
    return "\n".join(lines)


def plot(results: dict[str, dict[str, dict]], path: Path) -> Path:
    from pbrl.plots import plot_interval_bars
    from pbrl.stats import Interval

    groups = {}
    for name, per_seed in results.items():
        groups[name] = {}
        for k in (*FACTORS, "reward"):
            v = np.array([r[k] for r in per_seed.values()])
            groups[name][k] = Interval(float(v.mean()), float(v.min()), float(v.max()), len(v))
    return plot_interval_bars(groups, path, xlabel="per step (bar: min-max over seeds)")


def main(argv=None) -> dict[str, Any]:
    a = parse_args(argv)
    import torch

    torch.set_num_threads(1)
    t0 = time.process_time()
    results = {run_name(name, ls): {str(s): run_one(name, s, ls, a) for s in a.seeds}
               for ls in a.log_std_init for name in ORDERS}
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    payload = {**provenance(), "args": vars(a),
               "cpu_seconds": time.process_time() - t0, "results": results}
    (out / "heron_orders.json").write_text(json.dumps(payload, indent=1))
    plot(results, out / "heron_orders.png")
    print(table(results))
    print(f"CPU time {payload['cpu_seconds']:.0f} s; wrote {out / 'heron_orders.json'} and {out / 'heron_orders.png'}")
    return payload


if __name__ == "__main__":
    main()
