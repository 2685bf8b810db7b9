"""MR+IQL's learned reward with and without Hindsight PRIOR (``MRIQL(reward_prior="hindsight")``), offline.

Per task, a fixed offline dataset is collected once (Meta-World button-press-v3: the scripted policy with
per-episode noise 0, 0.3, 1.0 plus random episodes; HalfCheetah-v5: random), and a held-out set from other env
seeds. Per seed, ``--labels`` oracle-labelled pairs of ``--segment-length`` steps are drawn from the dataset's
episodes (the fixed label set of that seed); MR+IQL fits its reward ensemble on them (its defaults: 3 x (3 x
256), 300 epochs, early stop at 97 %) as plain MR+IQL and with the prior, from the same initial weights. Reported:
held-out pair accuracy of the mean predicted return and the Pearson correlation of the learned and true step
reward over the held-out steps. IQL itself runs one update (the reward is the measured object).

One JSON file per (task, seed, variant) under ``--out``/units, skipped on rerun.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

TASKS = ("metaworld/button-press-v3", "mujoco/HalfCheetah-v5")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tasks", nargs="+", default=list(TASKS))
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--labels", type=int, default=100)
    p.add_argument("--segment-length", type=int, default=25)
    p.add_argument("--steps", type=int, default=4000, help="dataset steps")
    p.add_argument("--held-out", type=int, default=500, help="held-out pairs")
    p.add_argument("--weights", type=float, nargs="+", default=[1000.0, 10.0], help="lambdas of the prior")
    p.add_argument("--world-steps", type=int, default=1500, help="world-model pre-training (the port: 10000)")
    p.add_argument("--out", default="benchmarks/mriql_hindsight_reward")
    return p.parse_args(argv)


def datasets(task: str, n: int):
    from pbrl.envs.collect import collect
    from pbrl.envs.datasets import OfflineDataset

    def one(seed: int, steps: int):
        if task.startswith("metaworld/"):
            parts = [collect(task, "scripted", n_steps=steps // 2, seed=seed, noise=[0.0, 0.3, 1.0]),
                     collect(task, "random", n_steps=steps - steps // 2, seed=seed + 1)]
            return OfflineDataset.concatenate(parts)
        return collect(task, "random", n_steps=steps, seed=seed)
    return one(1000, n), one(2000, n // 2)


def run_unit(task: str, seed: int, weight: float | None, train, test, a) -> dict:
    from pbrl.agents.iql import HINDSIGHT_CPU_PRESET, MRIQL
    from pbrl.preferences import PreferenceDataset
    from pbrl.segments import sample_segment_pairs
    from pbrl.teachers import make_teacher

    H = a.segment_length
    la, lb = sample_segment_pairs(list(train.episodes()), a.labels, H, np.random.default_rng(seed))
    labels = PreferenceDataset(la, lb, make_teacher("oracle").label(la, lb))
    ta, tb = sample_segment_pairs(list(test.episodes()), a.held_out, H, np.random.default_rng(10_000 + seed))
    kw = {} if weight is None else {**HINDSIGHT_CPU_PRESET, "prior_weight": weight, "world_pretrain_steps": a.world_steps}
    agent = MRIQL.from_dataset(train, seed=seed, **kw)
    t0 = time.process_time()
    agent.fit(train, labels, steps=1, progress=False)
    m = agent.reward_model
    ra, rb = m.segment_returns(ta).mean(0), m.segment_returns(tb).mean(0)
    pred = agent.learned_rewards(test)
    info = agent.reward_fit_info
    return {"task": task, "seed": seed, "variant": "mriql" if weight is None else f"hindsight_{weight:g}",
            "pair_accuracy": float(np.mean((rb > ra) == (tb.returns() > ta.returns()))),
            "step_correlation": float(np.corrcoef(pred, test.rewards)[0, 1]) if np.std(pred) > 0 else 0.0,
            "train_accuracy": info["accuracy"], "epochs": info["epochs"],
            "prior_loss": info.get("prior_loss"), "world_loss": info.get("world_loss"),
            "cpu_s": time.process_time() - t0}


def main(argv=None) -> None:
    a = parse_args(argv)
    out = Path(a.out) / "units"
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for task in a.tasks:
        data = None
        for seed in a.seeds:
            for w in [None, *a.weights]:
                f = out / f"{task.replace('/', '_')}_s{seed}_{'mriql' if w is None else f'hindsight_{w:g}'}.json"
                if not f.exists():
                    data = data or datasets(task, a.steps)
                    row = run_unit(task, seed, w, *data, a)
                    f.write_text(json.dumps(row, indent=1))
                rows.append(json.loads(f.read_text()))
                r = rows[-1]
                print(f"{task} seed {seed} {r['variant']:>16}: pair acc {r['pair_accuracy']:.3f} "
                      f"step corr {r['step_correlation']:.3f} ({r['cpu_s']:.0f} CPU-s)", flush=True)
    (Path(a.out) / "mriql_hindsight_reward.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
