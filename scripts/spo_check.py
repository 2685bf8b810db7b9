"""SPO against PrefPPO on the same teachers and steps (issue 33's check of Swamy et al. 2024).

Both agents run SB3's PPO with the same settings (rl-zoo3's Pendulum-v1 PPO: 4 envs x 1024 steps, 10 epochs of
batch 64, gamma 0.9, GAE 0.95, lr 1e-3, clip 0.2, gSDE every 4 steps; 2 x 64 networks; no observation
normalisation, no pre-training), on gymnasium's Pendulum-v1 (200-step episodes, no early termination), and
differ only in where the reward comes from:

* ``spo``: the win rate of each whole episode against the queue of the last ``--queue`` episodes (Algorithm 2);
* ``pref_ppo``: a reward model (3 members, 2 x 64, tanh) fitted on 50-step segment pairs, ``--label-ratio``
  times as many labels as SPO asks in the same steps (1.0: the same number), in sessions every 2 rollouts
  (disagreement sampling after the first), fits capped at ``--fit-epochs``.

Teachers: ``oracle`` (the true return), ``intransitive`` (a :class:`~pbrl.teachers_mixture.PopulationTeacher`
of three raters drawn at random per query: return-seeker, energy-saver (``-ctrl``), finish-judge (``last``)) and
``last_step`` (a :class:`~pbrl.teachers_mixture.LastStepTeacher`: the higher last-step reward wins, a
non-Markovian preference).

Diagnostics of SPO's credit assignment (``--diagnostics``, oracle only, no labels): ``ppo_true`` (the same PPO
on the true per-step reward) and ``flat_return`` (SPO's machinery, units, pieces and flat spread, with each
unit's true return in place of its win rate). ``ppo_true`` -> ``flat_return`` measures what spreading one
number evenly over the steps costs; ``flat_return`` -> ``spo`` what replacing the return by a win rate against
the queue costs.

Measured per run: the true return of the deterministic policy (10 episodes) every 4 rollouts, labels asked, CPU
seconds; at the end the three objectives of 10 episodes of each final policy, and the head-to-head
``P(SPO > PrefPPO)``: the teacher's preference probability (the population's expectation over its raters; for
the deterministic teachers their label) over all 10 x 10 pairs of final episodes of the same seed.

Resumable: every finished run writes ``runs/<teacher>__<agent>__s<seed>.json`` (and its final episodes,
``.npz``) under ``--out``; a rerun skips the runs already there. ``spo_check.json`` (all runs) and
``spo_check.png`` are rebuilt from those files after each run.

    .venv/bin/python scripts/spo_check.py                       # 2 agents x 3 teachers x 3 seeds, ~45 CPU-min
    .venv/bin/python scripts/spo_check.py --diagnostics --seeds 0 1   # the credit-assignment ladder
    .venv/bin/python scripts/spo_check.py --smoke               # a tiny run that checks the script
    .venv/bin/python scripts/spo_check.py --report-only         # table and figure of the saved results
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import types
from pathlib import Path
from typing import Any

import numpy as np

AGENTS = ("spo", "pref_ppo")
#: diagnostics of SPO's credit assignment, oracle only (no teacher): PPO on the true per-step reward, and SPO's
#: machinery with each unit's true return in place of its win rate (the same flat spread over its steps)
DIAGNOSTICS = ("ppo_true", "flat_return")
TEACHERS = ("oracle", "intransitive", "last_step")
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
    p.add_argument("--signal", action="store_true",
                   help="no training: how well a win rate against B queued episodes ranks episodes by their true "
                        "return, per teacher and B (writes signal.json)")
    p.add_argument("--diagnostics", action="store_true",
                   help=f"run the credit-assignment diagnostics ({', '.join(DIAGNOSTICS)}) with the oracle instead")
    p.add_argument("--label-ratio", type=float, default=1.0, help="PrefPPO's labels / SPO's labels")
    p.add_argument("--fit-epochs", type=int, default=20, help="PrefPPO's reward-fit epochs per session")
    p.add_argument("--out", default="benchmarks/spo_check")
    p.add_argument("--smoke", action="store_true", help="tiny sizes: checks the script, measures nothing")
    p.add_argument("--report-only", action="store_true", help="the table and figure of --out's saved results")
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
    """The agent of one run: SPO, PrefPPO with as many labels as SPO asks times ``--label-ratio``, or a
    diagnostic (``ppo_true``: SB3's PPO on the true reward; ``flat_return``: SPO scoring each unit by its true
    return)."""
    from pbrl.agents.pref_ppo import PrefPPO
    from pbrl.agents.spo import SPO
    from pbrl.teachers import make_teacher

    s = _sizes(a)
    lk = {**PPO_KWARGS, "n_steps": s["n_steps"]}
    if agent == "ppo_true":
        from stable_baselines3 import PPO

        return PPO("MlpPolicy", _venv(seed, s["n_envs"]), seed=seed, verbose=0, **lk)
    teacher = make_teacher(teacher_name, seed=seed)
    steps = s["n_envs"] * s["n_steps"] * s["rollouts"]
    common = {"seed": seed, "learner_kwargs": lk, "normalize_obs": False, "unsup_steps": 0}
    if agent in ("spo", "flat_return"):
        spo = SPO(_venv(seed, s["n_envs"]), teacher, 10**9, 1, 1, segment_length=50, queue_size=a.queue,
                  unit_length=a.unit_length, **common)
        if agent == "flat_return":
            spo.callback._score = types.MethodType(_flat_return_score, spo.callback)
        return spo
    spo_labels = a.queue * (steps // EPISODE)  # what SPO asks, its first B episodes aside
    budget = max(1, int(round(a.label_ratio * spo_labels)))
    every = 2 * s["n_envs"] * s["n_steps"]
    sessions = max(1, (steps - 1) // every + 1)
    return PrefPPO(_venv(seed, s["n_envs"]), teacher, budget, -(-budget // sessions), every, segment_length=50,
                   reward_model_kwargs={"hidden": (64, 64)}, fit_kwargs={"epochs": a.fit_epochs}, **common)


def _flat_return_score(self, unit: tuple[np.ndarray, np.ndarray, np.ndarray], start: int, end: int) -> float:
    """``flat_return``'s score of steps ``[start, end)`` of a unit: their true return (asks no teacher); SPO's
    callback spreads it as ``score / H`` over those steps, exactly as it spreads a win rate."""
    return float(np.asarray(unit[2][start:end], np.float64).sum())


def rollout_episodes(agent, seed: int, n: int) -> list[dict[str, np.ndarray]]:
    """``n`` deterministic episodes of the trained policy: obs, act, true reward."""
    return _pendulum_episodes(agent, [10_000 + seed * 100 + k for k in range(n)], deterministic=True)


def _pendulum_episodes(policy, reset_seeds: list[int], deterministic: bool) -> list[dict[str, np.ndarray]]:
    """One Pendulum-v1 episode of ``policy`` (SB3's ``predict``) per reset seed: obs, act, true reward.

    The episodes' own reset seeds, not :func:`pbrl.envs.rollout.rollout`'s one seed per call, keep the committed
    measurements reproducible."""
    import gymnasium as gym

    env = gym.make("Pendulum-v1")
    out = []
    for reset_seed in reset_seeds:
        obs, _ = env.reset(seed=reset_seed)
        rec: dict[str, list] = {"obs": [], "act": [], "reward": []}
        done = False
        while not done:
            act, _ = policy.predict(obs[None], deterministic=deterministic)
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
        curve.append([int(getattr(agent, "model", agent).num_timesteps), float(np.mean([e["reward"].sum() for e in eps]))])
    from pbrl.teachers_mixture import objective_values

    final = rollout_episodes(agent, seed, s["episodes"])
    obj = objective_values(as_segments(final), ("return", "ctrl", "last")).mean(0)
    cb = getattr(agent, "callback", None)
    res = {"curve": curve, "return": curve[-1][1], "asked": int(cb.asked) if cb is not None else 0,
           "labels": int(cb.labels_used) if cb is not None else 0, "ctrl": float(obj[1]), "last": float(obj[2]),
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
    if hasattr(t, "preference"):  # the population: its expectation over the raters
        return float(np.mean(t.preference(a, b)))
    if teacher != "oracle":  # a deterministic rule (last_step): its label is its preference
        return float(np.mean(t.label(a, b)))
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
    rows += ["", "| teacher | agent | seed | true return at each evaluation | P(SPO ≻ PrefPPO) |", "|---|---|---|---|---:|"]
    for teacher, per_agent in res["runs"].items():
        for agent, per_seed in per_agent.items():
            for seed, r in sorted(per_seed.items()):
                h = res["h2h"].get(teacher, {}).get(seed) if agent == "spo" else None
                pts = ", ".join(f"{v:.0f}" for _, v in r["curve"])
                rows.append(f"| {teacher} | {agent} | {seed} | {pts} | {'' if h is None else f'{h:.2f}'} |")
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


def win_rate_signal(a: argparse.Namespace, n_episodes: int = 200, queues=(1, 3, 10, 30)) -> dict[str, Any]:
    """Spearman correlation between an episode's win rate against ``B`` other episodes (drawn at random from
    ``n_episodes`` of the untrained, stochastic PPO policy of seed 0) and its true return, per teacher and ``B``;
    1.0 would be a perfect ranking. No training: it measures the signal SPO's reward carries per episode."""
    from scipy.stats import spearmanr
    from stable_baselines3 import PPO

    from pbrl.teachers import make_teacher

    n_episodes = 8 if a.smoke else n_episodes
    model = PPO("MlpPolicy", _venv(0, 1), seed=0, verbose=0, **PPO_KWARGS)
    eps = _pendulum_episodes(model, [20_000 + k for k in range(n_episodes)], deterministic=False)
    ret = np.array([e["reward"].sum() for e in eps])
    rng = np.random.default_rng(0)
    out: dict[str, Any] = {"n_episodes": n_episodes, "return_mean": float(ret.mean()), "corr": {}}
    for teacher in a.teachers:
        t = make_teacher(teacher, seed=0)
        out["corr"][teacher] = {}
        for B in queues:
            B = min(B, n_episodes - 1)
            opp = np.array([rng.choice(np.delete(np.arange(n_episodes), i), B, replace=False) for i in range(n_episodes)])
            a_seg = as_segments([eps[j] for j in opp.reshape(-1)])
            b_seg = as_segments([eps[i] for i in np.repeat(np.arange(n_episodes), B)])
            wins = np.asarray(t.label(a_seg, b_seg), np.float64).reshape(n_episodes, B).mean(1)
            out["corr"][teacher][str(B)] = float(spearmanr(wins, ret).statistic)
    return out


def _run_path(out: Path, teacher: str, agent: str, seed: int) -> Path:
    return out / "runs" / f"{teacher}__{agent}__s{seed}.json"


def collect(out: Path) -> dict[str, Any]:
    """All finished runs under ``out/runs`` as ``{"runs": {teacher: {agent: {seed: result}}}, "h2h": {teacher:
    {seed: P(SPO > PrefPPO)}}}``; the head-to-head from both runs' final episodes (``.npz``), or, for runs
    imported from an earlier commit without them, the value that commit measured (``h2h`` in the SPO run)."""
    res: dict[str, Any] = {"runs": {}, "h2h": {}}
    order = {name: k for k, name in enumerate(TEACHERS + AGENTS + DIAGNOSTICS)}
    files = [(f, *f.stem.split("__")) for f in (out / "runs").glob("*.json")]
    for f, teacher, agent, seed in sorted(files, key=lambda x: (order.get(x[1], 99), order.get(x[2], 99), x[3])):
        res["runs"].setdefault(teacher, {}).setdefault(agent, {})[seed[1:]] = json.loads(f.read_text())
    for teacher, per_agent in res["runs"].items():
        for seed, r in per_agent.get("spo", {}).items():
            ppo = per_agent.get("pref_ppo", {}).get(seed)
            fs, fp = (_run_path(out, teacher, ag, int(seed)).with_suffix(".npz") for ag in ("spo", "pref_ppo"))
            if ppo is not None and fs.exists() and fp.exists():
                res["h2h"].setdefault(teacher, {})[seed] = head_to_head(teacher, _load_eps(fs), _load_eps(fp))
            elif "h2h" in r:
                res["h2h"].setdefault(teacher, {})[seed] = r["h2h"]
    return res


def _save_eps(path: Path, eps: list[dict[str, np.ndarray]]) -> None:
    np.savez_compressed(path, **{f"{k}_{i}": e[k] for i, e in enumerate(eps) for k in ("obs", "act", "reward")})


def _load_eps(path: Path) -> list[dict[str, np.ndarray]]:
    z = np.load(path)
    n = len([k for k in z.files if k.startswith("obs_")])
    return [{k: z[f"{k}_{i}"] for k in ("obs", "act", "reward")} for i in range(n)]


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def main(argv=None) -> dict[str, Any]:
    a = parse_args(argv)
    out = Path(a.out)
    if a.report_only:
        res = collect(out)
        print(report(res, out))
        return res
    if a.signal:
        out.mkdir(parents=True, exist_ok=True)
        sig = win_rate_signal(a)
        _atomic_write(out / "signal.json", json.dumps(sig, indent=1))
        print("Spearman(win rate against B episodes, true return):", json.dumps(sig["corr"]))
        return sig
    (out / "runs").mkdir(parents=True, exist_ok=True)
    plan = ([("oracle", ag) for ag in DIAGNOSTICS] if a.diagnostics
            else [(t, ag) for t in a.teachers for ag in a.agents])
    for seed in a.seeds:
        for teacher, agent in plan:
            path = _run_path(out, teacher, agent, seed)
            if path.exists():
                print(f"[spo_check] {teacher} {agent} seed {seed}: done before, skipped", flush=True)
                continue
            r, final = one_run(agent, teacher, seed, a)
            _save_eps(path.with_suffix(".npz"), final)
            _atomic_write(path, json.dumps(r, indent=1))
            print(f"[spo_check] {teacher} {agent} seed {seed}: return {r['return']:.0f}, asked {r['asked']}, "
                  f"cpu {r['cpu_s']:.0f}s", flush=True)
            res = collect(out)
            _atomic_write(out / "spo_check.json", json.dumps({"args": vars(a), **res}, indent=1))
    res = collect(out)
    _atomic_write(out / "spo_check.json", json.dumps({"args": vars(a), **res}, indent=1))
    print(report(res, out))
    return res


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
