"""Can pbrl's reward ensemble learn HERON's energy factor from the hierarchical teacher's labels? A fixed-pool
check beside ``heron_orders.py`` (``docs/heron.md``).

HalfCheetah-v5 episodes of 500 steps under Gaussian random actions whose scale changes per episode (``--scales``,
cycled), so segments differ in control cost as much as policies of different effort would. Segment pairs from
the training episodes are labelled by the ``heron`` teacher (energy first or speed first), a reward ensemble
(pbrl's defaults, ``--hidden`` sizes, 50 epochs) is fitted on ``--labels`` of them, and the per-step correlation
of the learned reward with each factor is measured on held-out episodes. ``heron_orders.py`` measures the same
correlations on the labels an actual PrefPPO run collected.

Writes ``heron_pool.json`` under ``--out`` and prints the table.

    .venv/bin/python scripts/investigations/heron_pool.py
    .venv/bin/python scripts/investigations/heron_pool.py --smoke      # tiny sizes: checks the script
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from pbrl.app.bench import provenance
from pbrl.reward_models import factor_correlations
from pbrl.teachers import HERON_HALFCHEETAH_ORDER

#: the teacher's two orders of HalfCheetah's factors (speed = reward_forward, energy = reward_ctrl)
FACTORS = HERON_HALFCHEETAH_ORDER
ORDERS = {"speed first": list(FACTORS), "energy first": list(FACTORS[::-1])}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--labels", type=int, nargs="+", default=[200])
    p.add_argument("--scales", type=float, nargs="+", default=[0.1, 0.3, 0.6, 1.0])
    p.add_argument("--episodes", type=int, default=12, help="episodes in all; the last third are held out")
    p.add_argument("--episode-steps", type=int, default=500)
    p.add_argument("--segment-length", type=int, default=50)
    p.add_argument("--hidden", type=int, nargs="+", default=[64, 64], help="the reward nets' hidden sizes")
    p.add_argument("--epochs", type=int, default=50)
    p.add_argument("--out", default="benchmarks/heron_orders")
    p.add_argument("--smoke", action="store_true", help="tiny sizes: checks the script, measures nothing")
    a = p.parse_args(argv)
    if a.smoke:
        a.labels, a.episodes, a.episode_steps, a.segment_length, a.epochs = [8], 3, 40, 10, 1
    for k in ("episodes", "episode_steps", "segment_length", "epochs"):
        if getattr(a, k) < 1:
            p.error(f"--{k.replace('_', '-')} must be >= 1, got {getattr(a, k)}")
    if a.episodes < 3 or min(a.labels) < 1 or a.segment_length > a.episode_steps:
        p.error("need --episodes >= 3, --labels >= 1 and --segment-length <= --episode-steps")
    if min(a.scales) <= 0:
        p.error(f"--scales must be > 0, got {a.scales}")
    return a


def episodes(a: argparse.Namespace) -> list:
    """Random-action episodes recording HalfCheetah's two factors."""
    from pbrl.envs import make_env
    from pbrl.segments import Trajectory

    rng = np.random.default_rng(0)
    env = make_env("mujoco/HalfCheetah-v5", max_episode_steps=a.episode_steps)
    out = []
    for e in range(a.episodes):
        scale = a.scales[e % len(a.scales)]
        obs, _ = env.reset(seed=e)
        rec: dict[str, list] = {k: [] for k in ("obs", "act", "rew", *FACTORS)}
        for _ in range(a.episode_steps):
            act = np.clip(rng.normal(0.0, scale, env.action_space.shape), -1.0, 1.0)
            rec["obs"].append(obs)
            rec["act"].append(act)
            obs, r, _, _, info = env.step(act)
            rec["rew"].append(r)
            for k in FACTORS:
                rec[k].append(info[k])
        out.append(Trajectory(obs=np.array(rec["obs"]), act=np.array(rec["act"]), reward=np.array(rec["rew"]),
                              factors={k: np.array(rec[k], np.float32) for k in FACTORS}))
    return out


def main(argv=None) -> dict:
    a = parse_args(argv)
    import torch

    from pbrl.agents.online_base import REWARD_MODEL_DEFAULTS
    from pbrl.preferences import PreferenceDataset
    from pbrl.reward_models import RewardEnsemble, RewardTrainer
    from pbrl.segments import sample_segment_pairs
    from pbrl.teachers import make_teacher

    torch.set_num_threads(1)
    t0 = time.process_time()
    eps = episodes(a)
    n_test = max(1, len(eps) // 3)
    train, test = eps[:-n_test], eps[-n_test:]
    obs, act = np.concatenate([t.obs for t in test]), np.concatenate([t.act for t in test])
    od, ad = obs.shape[1], act.shape[1]
    results = []
    for name, order in ORDERS.items():
        teacher = make_teacher("heron", order=order)
        for n in a.labels:
            sa, sb = sample_segment_pairs(train, n, a.segment_length, np.random.default_rng(1))
            lab = teacher.label(sa, sb)
            keep = np.flatnonzero(~np.isnan(lab))
            ds = PreferenceDataset.empty(a.segment_length, od, ad)
            ds.append(sa[keep], sb[keep], lab[keep])
            model = RewardEnsemble(od, ad, **{**REWARD_MODEL_DEFAULTS, "hidden": tuple(a.hidden), "seed": 0})
            RewardTrainer(epochs=a.epochs).fit(model, ds)
            pred = model.predict(obs, act)
            corr = factor_correlations(pred, {k: np.concatenate([t.factors[k] for t in test]) for k in FACTORS})
            results.append({"order": name, "labels": len(ds), **{f"corr_{k}": v for k, v in corr.items()}})
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    payload = {**provenance(), "args": vars(a), "cpu_seconds": time.process_time() - t0, "results": results}
    (out / "heron_pool.json").write_text(json.dumps(payload, indent=1))
    print("| order | labels | corr(r-hat, forward) | corr(r-hat, ctrl) |\n|---|---:|---:|---:|")
    for r in results:
        print(f"| {r['order']} | {r['labels']} | {r['corr_reward_forward']:.2f} | {r['corr_reward_ctrl']:.2f} |")
    print(f"CPU time {payload['cpu_seconds']:.0f} s; wrote {out / 'heron_pool.json'}")
    return payload


if __name__ == "__main__":
    main()
