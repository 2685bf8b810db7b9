"""SPO against PrefPPO on the same teachers and steps (issue 33's check of Swamy et al. 2024).

Both agents run SB3's PPO with the same settings (rl-zoo3's Pendulum-v1 PPO: 4 envs x 1024 steps, 10 epochs of
batch 64, gamma 0.9, GAE 0.95, lr 1e-3, clip 0.2, gSDE every 4 steps; 2 x 64 networks; no observation
normalisation, no pre-training), on gymnasium's Pendulum-v1 (200-step episodes, no early termination), and
differ only in where the reward comes from:

* ``spo``: the win rate of each whole episode against the queue of the last ``--queue`` episodes (Algorithm 2);
* ``pref_ppo``: a reward model (3 members, 2 x 64, tanh) fitted on 50-step segment pairs, ``--label-ratio``
  times as many labels as SPO asks in the same steps (1.0: the same number), in sessions every 2 rollouts
  (disagreement sampling after the first), fits capped at ``--fit-epochs``.

Teachers: ``oracle`` (the true return) and ``intransitive`` (a :class:`~pbrl.teachers_mixture.PopulationTeacher`
of three raters drawn at random per query: return-seeker, energy-saver (``-ctrl``), finish-judge (``last``)).

Measured per run: the true return of the deterministic policy (10 episodes) every 4 rollouts, labels asked, CPU
seconds; at the end the three objectives of 10 episodes of each final policy, and the head-to-head
``P(SPO > PrefPPO)``: the teacher's preference probability (the population's expectation over its raters; for
the oracle 1 / 0 / 0.5 on the returns) over all 10 x 10 pairs of final episodes of the same seed. Writes
``spo_check.json`` and ``spo_check.png`` under ``--out`` and prints the table.

    .venv/bin/python scripts/spo_check.py                       # 2 agents x 2 teachers x 3 seeds, ~20 CPU-min
    .venv/bin/python scripts/spo_check.py --smoke               # a tiny run that checks the script
    .venv/bin/python scripts/spo_check.py --report-only         # table and figure of the saved results
    .venv/bin/python scripts/spo_check.py --teachers oracle --out /tmp/a &    # one process per teacher, then
    .venv/bin/python scripts/spo_check.py --teachers intransitive --out /tmp/b; wait
    .venv/bin/python scripts/spo_check.py --merge /tmp/a /tmp/b --out benchmarks/spo_check
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

AGENTS = ("spo", "pref_ppo")
TEACHERS = ("oracle", "intransitive")
EPISODE = 200  # Pendulum-v1's time limit
PPO_KWARGS: dict[str, Any] = {"n_steps": 1024, "batch_size": 64, "n_epochs": 10, "gamma": 0.9, "gae_lambda": 0.95,
                              "learning_rate": 1e-3, "clip_range": 0.2, "ent_coef": 0.0, "use_sde": True,
                              "sde_sample_freq": 4, "policy_kwargs": {"net_arch": {"pi": [64, 64], "vf": [64, 64]}}}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--teachers", nargs="+", default=list(TEACHERS), choices=TEACHERS)
    p.add_argument("--rollouts", type=int, default=20, help="PPO rollouts of 4 x 1024 steps per run")
    p.add_argument("--eval-every", type=int, default=4, help="rollouts between evaluations")
    p.add_argument("--queue", type=int, default=10, help="SPO's queue size B")
    p.add_argument("--unit-length", type=int, default=None, help="SPO's compared unit (default: whole episodes)")
    p.add_argument("--agents", nargs="+", default=list(AGENTS), choices=AGENTS)
    p.add_argument("--label-ratio", type=float, default=1.0, help="PrefPPO's labels / SPO's labels")
    p.add_argument("--fit-epochs", type=int, default=20, help="PrefPPO's reward-fit epochs per session")
    p.add_argument("--out", default="benchmarks/spo_check")
    p.add_argument("--smoke", action="store_true", help="tiny sizes: checks the script, measures nothing")
    p.add_argument("--report-only", action="store_true", help="the table and figure of --out's saved results")
    p.add_argument("--merge", nargs="+", default=None, metavar="DIR",
                   help="merge the saved results of runs split over processes (e.g. one per teacher) into --out")
    a = p.parse_args(argv)
    for name in ("rollouts", "eval_every", "queue", "fit_epochs", "unit_length"):
        if getattr(a, name) is not None and getattr(a, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(a, name)}")
    if not a.label_ratio > 0:
        p.error(f"--label-ratio must be > 0, got {a.label_ratio}")
    return a


def _venv(seed: int, n_envs: int):
    from stable_baselines3.common.env_util import make_vec_env

    return make_vec_env("Pendulum-v1", n_envs=n_envs, seed=seed)


def _sizes(a: argparse.Namespace) -> dict[str, int]:
    if a.smoke:
        return {"n_envs": 2, "n_steps": 200, "rollouts": 2, "eval_every": 1, "episodes": 2}
    return {"n_envs": 4, "n_steps": 1024, "rollouts": a.rollouts, "eval_every": a.eval_every, "episodes": 10}


def build(agent: str, teacher_name: str, seed: int, a: argparse.Namespace):
    """The agent of one run (SPO, or PrefPPO with as many labels as SPO asks times ``--label-ratio``)."""
    from pbrl.agents.pref_ppo import PrefPPO
    from pbrl.agents.spo import SPO
    from pbrl.teachers import make_teacher

    s = _sizes(a)
    lk = {**PPO_KWARGS, "n_steps": s["n_steps"]}
    teacher = make_teacher(teacher_name, seed=seed)
    steps = s["n_envs"] * s["n_steps"] * s["rollouts"]
    common = {"seed": seed, "learner_kwargs": lk, "normalize_obs": False, "unsup_steps": 0}
    if agent == "spo":
        return SPO(_venv(seed, s["n_envs"]), teacher, 10**9, 1, 1, segment_length=50, queue_size=a.queue,
                   unit_length=a.unit_length, **common)
    spo_labels = a.queue * (steps // EPISODE)  # what SPO asks, its first B episodes aside
    budget = max(1, int(round(a.label_ratio * spo_labels)))
    every = 2 * s["n_envs"] * s["n_steps"]
    sessions = max(1, (steps - 1) // every + 1)
    return PrefPPO(_venv(seed, s["n_envs"]), teacher, budget, -(-budget // sessions), every, segment_length=50,
                   reward_model_kwargs={"hidden": (64, 64)}, fit_kwargs={"epochs": a.fit_epochs}, **common)


def rollout_episodes(agent, seed: int, n: int) -> list[dict[str, np.ndarray]]:
    """``n`` deterministic episodes of the trained policy: obs, act, true reward."""
    import gymnasium as gym

    env = gym.make("Pendulum-v1")
    out = []
    for k in range(n):
        obs, _ = env.reset(seed=10_000 + seed * 100 + k)
        rec: dict[str, list] = {"obs": [], "act": [], "reward": []}
        done = False
        while not done:
            act, _ = agent.predict(obs[None], deterministic=True)
            rec["obs"].append(obs)
            rec["act"].append(act[0])
            obs, r, term, trunc, _ = env.step(act[0])
            rec["reward"].append(r)
            done = term or trunc
        out.append({k2: np.asarray(v, np.float32) for k2, v in rec.items()})
    env.close()
    return out


def as_segments(episodes: list[dict[str, np.ndarray]]):
    from pbrl.segments import Segments

    return Segments(np.stack([e["obs"] for e in episodes]), np.stack([e["act"] for e in episodes]),
                    np.stack([e["reward"] for e in episodes]))


def one_run(agent_name: str, teacher: str, seed: int, a: argparse.Namespace) -> tuple[dict[str, Any], list]:
    import torch

    torch.set_num_threads(1)
    s = _sizes(a)
    c0 = time.process_time()
    agent = build(agent_name, teacher, seed, a)
    per = s["n_envs"] * s["n_steps"]
    curve = []
    for k in range(0, s["rollouts"], s["eval_every"]):
        n = min(s["eval_every"], s["rollouts"] - k)
        agent.learn(n * per, reset_num_timesteps=k == 0)
        eps = rollout_episodes(agent, seed, s["episodes"])
        curve.append([int(agent.model.num_timesteps), float(np.mean([e["reward"].sum() for e in eps]))])
    from pbrl.teachers_mixture import objective_values

    final = rollout_episodes(agent, seed, s["episodes"])
    obj = objective_values(as_segments(final), ("return", "ctrl", "last")).mean(0)
    res = {"curve": curve, "return": curve[-1][1], "asked": int(agent.callback.asked),
           "labels": int(agent.callback.labels_used), "ctrl": float(obj[1]), "last": float(obj[2]),
           "cpu_s": time.process_time() - c0}
    return res, final


def head_to_head(teacher: str, spo_eps: list, ppo_eps: list) -> float:
    """``P(an SPO episode is preferred to a PrefPPO episode)`` by the teacher's expected preference, over all
    pairs."""
    from pbrl.teachers import make_teacher

    a_all, b_all = [], []
    for p in ppo_eps:
        for q in spo_eps:
            a_all.append(p)
            b_all.append(q)
    a, b = as_segments(a_all), as_segments(b_all)  # b (SPO) preferred = 1.0
    t = make_teacher(teacher)
    if hasattr(t, "preference"):
        return float(np.mean(t.preference(a, b)))
    ra, rb = a.returns(), b.returns()
    return float(np.mean(np.where(rb > ra, 1.0, np.where(rb < ra, 0.0, 0.5))))


def report(res: dict[str, Any], out: Path) -> str:
    """The Markdown table of ``res`` (and the figure ``out/spo_check.png``)."""
    rows = ["| teacher | agent | true return (final, mean ± sd over seeds) | control energy | last-step reward "
            "| labels asked | P(SPO ≻ PrefPPO) | CPU s / run |", "|---|---|---:|---:|---:|---:|---:|---:|"]
    for teacher, per_agent in res["runs"].items():
        for agent, per_seed in per_agent.items():
            rs = list(per_seed.values())
            ret = np.array([r["return"] for r in rs])
            h2h = res["h2h"].get(teacher, {})
            h = f"{np.mean(list(h2h.values())):.2f}" if h2h and agent == "spo" else ""
            rows.append(f"| {teacher} | {agent} | {ret.mean():.0f} ± {ret.std():.0f} | "
                        f"{np.mean([r['ctrl'] for r in rs]):.0f} | {np.mean([r['last'] for r in rs]):.2f} | "
                        f"{np.mean([r['asked'] for r in rs]):.0f} | {h} | {np.mean([r['cpu_s'] for r in rs]):.0f} |")
    _figure(res, out / "spo_check.png")
    return "\n".join(rows)


def _figure(res: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    teachers = list(res["runs"])
    fig, axes = plt.subplots(1, len(teachers), figsize=(5 * len(teachers), 3.6), squeeze=False)
    for ax, teacher in zip(axes[0], teachers):
        for agent, per_seed in res["runs"][teacher].items():
            curves = np.array([r["curve"] for r in per_seed.values()], dtype=np.float64)  # [S, T, 2]
            x, y = curves[0, :, 0], curves[:, :, 1]
            ax.plot(x, y.mean(0), label=f"{agent} ({len(y)} seeds)")
            ax.fill_between(x, y.min(0), y.max(0), alpha=0.2)
        ax.set_title(f"Pendulum-v1, teacher {teacher}")
        ax.set_xlabel("env steps")
        ax.set_ylabel("true return (deterministic)")
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def merge(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """One result from several (teachers or seeds run in separate processes)."""
    res: dict[str, Any] = {"args": [p["args"] for p in parts], "runs": {}, "h2h": {}}
    for p in parts:
        for teacher, per_agent in p["runs"].items():
            for agent, per_seed in per_agent.items():
                res["runs"].setdefault(teacher, {}).setdefault(agent, {}).update(per_seed)
        for teacher, per_seed in p["h2h"].items():
            res["h2h"].setdefault(teacher, {}).update(per_seed)
    return res


def main(argv=None) -> dict[str, Any]:
    a = parse_args(argv)
    out = Path(a.out)
    path = out / "spo_check.json"
    if a.report_only:
        res = json.loads(path.read_text())
        print(report(res, out))
        return res
    if a.merge:
        res = merge([json.loads((Path(d) / "spo_check.json").read_text()) for d in a.merge])
        out.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(res, indent=1))
        print(report(res, out))
        return res
    out.mkdir(parents=True, exist_ok=True)
    res: dict[str, Any] = {"args": vars(a), "runs": {}, "h2h": {}}
    for teacher in a.teachers:
        res["runs"][teacher] = {agent: {} for agent in a.agents}
        res["h2h"][teacher] = {}
        for seed in a.seeds:
            finals = {}
            for agent in a.agents:
                r, finals[agent] = one_run(agent, teacher, seed, a)
                res["runs"][teacher][agent][str(seed)] = r
                print(f"[spo_check] {teacher} {agent} seed {seed}: return {r['return']:.0f}, asked {r['asked']}, "
                      f"cpu {r['cpu_s']:.0f}s", flush=True)
            if len(finals) == 2:
                res["h2h"][teacher][str(seed)] = head_to_head(teacher, finals["spo"], finals["pref_ppo"])
            path.write_text(json.dumps(res, indent=1))
    print(report(res, out))
    return res


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
