"""VPL's check: on the two-goal point mass, one Bradley-Terry reward averages two users and serves neither;
VPL, given a few labels of one user, reaches that user's goal.

Protocol (per seed; the results page ``docs/results/vpl.md`` states it with the numbers):

1. the dataset pbrl builds for ``pointmass/two-goal``: ``collect(..., "scripted", noise=[0.3, 1.0, 2.0])``
   (episodes heading to either goal, with three noise levels), ``--dataset-steps`` steps;
2. ``--pairs`` pairs of ``--segment``-step segments labelled by a :class:`~pbrl.multi_user.MultiUserTeacher`
   (two oracle users, goal 0 and goal 1, each query answered by one of them at random; user ids stored);
3. MR+IQL on those labels (one reward for everyone) and VPL on the same labels (``PRESETS["cpu"]``);
4. per user: ``--few`` fresh labels of that user alone give VPL its latent (:meth:`VPL.set_user`); each
   policy is rolled out ``--episodes`` times on ``pointmass/two-goal:goal=k`` (success = within 0.2 of
   goal k at some step). MR+IQL has no user input: its one policy is evaluated against both goals.

Writes ``vpl.json`` and ``vpl.png`` into ``--out`` and prints the table. Seeds run one after another, or
in separate processes whose ``vpl.json`` files ``--combine`` joins:

    python scripts/vpl_check.py --seeds 0 1 2 --out docs/results
    python scripts/vpl_check.py --seeds 1 --out /tmp/s1   # ... one process per seed, then
    python scripts/vpl_check.py --combine /tmp/s0/vpl.json /tmp/s1/vpl.json /tmp/s2/vpl.json --out docs/results
"""

from __future__ import annotations

import argparse
import json
import subprocess
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

from pbrl.agents.iql import MRIQL
from pbrl.agents.vpl import PRESETS, VPL
from pbrl.envs.collect import collect
from pbrl.envs.datasets import label_dataset
from pbrl.multi_user import MultiUserTeacher

GOALS = (0, 1)


def run_seed(seed: int, args: argparse.Namespace) -> dict:
    """Both agents on one seed: ``{"vpl": {k: {...}}, "mriql": {k: {...}}, "latents": ..., "cpu_s": ...}``."""
    c0 = time.process_time()
    ds = collect("pointmass/two-goal", "scripted", n_steps=args.dataset_steps, seed=seed, noise=[0.3, 1.0, 2.0])
    prefs = label_dataset(ds, MultiUserTeacher(seed=seed), args.pairs, segment_length=args.segment, seed=seed)
    out: dict = {"seed": seed, "labels_per_user": {u: int((prefs.user == u).sum()) for u in prefs.users()}}
    vpl = VPL.from_dataset(ds, seed=seed, **PRESETS["cpu"])
    vpl.fit(ds, prefs, steps=args.steps, progress=False)
    out["vpl_reward_fit"] = vpl.reward_fit_info
    out["vpl"] = {}
    for k in GOALS:
        mix = [1.0 if j == k else 0.0 for j in GOALS]
        few = label_dataset(ds, MultiUserTeacher(mix=mix, seed=1000 + seed), args.few, segment_length=args.segment,
                            seed=1000 + 10 * seed + k)
        vpl.set_user(few)
        out["vpl"][f"user{k}"] = vpl.evaluate(f"pointmass/two-goal:goal={k}", n_episodes=args.episodes, seed=seed)
        # the same policy judged by the other user's goal: does the latent send it to the right one?
        out["vpl"][f"user{k}_other_goal"] = vpl.evaluate(f"pointmass/two-goal:goal={1 - k}",
                                                         n_episodes=args.episodes, seed=seed)
    mr = MRIQL.from_dataset(ds, seed=seed, **MRIQL_CPU)
    mr.fit(ds, prefs, steps=args.steps, progress=False)
    out["mriql"] = {f"user{k}": mr.evaluate(f"pointmass/two-goal:goal={k}", n_episodes=args.episodes, seed=seed)
                    for k in GOALS}
    out["cpu_s"] = time.process_time() - c0
    return out


#: MR+IQL at the CPU size of VPL's preset: the same IQL (maze configuration, 2 x 64), a 2 x 64 ensemble fitted
#: for its default 300 epochs, its rewards scaled to [0, 1] (its default) as VPL's preset scales its own
MRIQL_CPU = {"hidden": (64, 64), "expectile": 0.9, "beta": 10.0, "reward_model_kwargs": {"hidden": (64, 64)}}


def table(results: list[dict]) -> str:
    rows = ["| agent | user 0: success | user 0: return | user 1: success | user 1: return |", "|---|---|---|---|---|"]
    for name, label in (("mriql", "MR+IQL (one reward)"), ("vpl", "VPL (a few labels of the user)")):
        cells = []
        for k in GOALS:
            s = [r[name][f"user{k}"]["success_rate"] for r in results]
            ret = [r[name][f"user{k}"]["mean_return"] for r in results]
            cells += [f"{np.mean(s):.2f} ({', '.join(f'{x:.1f}' for x in s)})", f"{np.mean(ret):.1f}"]
        rows.append(f"| {label} | " + " | ".join(cells) + " |")
    other = [np.mean([r["vpl"][f"user{k}_other_goal"]["success_rate"] for r in results]) for k in GOALS]
    rows.append(f"\nVPL with user 0's latent reaching goal 1: {other[0]:.2f}; with user 1's reaching goal 0: {other[1]:.2f}")
    return "\n".join(rows)


def figure(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.2))
    width = 0.35
    for i, (name, label) in enumerate((("mriql", "MR+IQL (one reward)"), ("vpl", "VPL"))):
        for k in GOALS:
            s = np.array([r[name][f"user{k}"]["success_rate"] for r in results])
            x = k + (i - 0.5) * width
            ax.bar(x, s.mean(), width, color=f"C{i}", label=label if k == 0 else None, alpha=0.8)
            ax.scatter(np.full(len(s), x), s, color="k", s=10, zorder=3)
    ax.set_xticks(list(GOALS), [f"user {k} (goal {k})" for k in GOALS])
    ax.set_ylabel("success rate")
    ax.set_ylim(0, 1.2)
    ax.set_title(f"pointmass/two-goal, {len(results)} seeds (dots: seeds)")
    ax.legend(loc="upper center", ncol=2, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--dataset-steps", type=int, default=10_000)
    p.add_argument("--pairs", type=int, default=400, help="labelled pairs, both users together")
    p.add_argument("--segment", type=int, default=5)
    p.add_argument("--few", type=int, default=16, help="labels of the new user that give VPL its latent")
    p.add_argument("--steps", type=int, default=5000, help="IQL updates of both agents")
    p.add_argument("--episodes", type=int, default=10, help="evaluation episodes per user")
    p.add_argument("--out", type=Path, default=None, help="folder for vpl.json and vpl.png")
    p.add_argument("--combine", type=Path, nargs="+", default=None,
                   help="join the results of these vpl.json files (runs of other seeds) instead of running")
    args = p.parse_args(argv)
    for name in ("dataset_steps", "pairs", "segment", "few", "steps", "episodes"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be a positive integer")
    torch.set_num_threads(1)
    if args.combine:
        for f in args.combine:
            if not f.is_file():
                p.error(f"--combine: no file {f}")
        loaded = [json.loads(f.read_text()) for f in args.combine]
        results = sorted((r for d in loaded for r in d["results"]), key=lambda r: r["seed"])
        meta = {**loaded[0]["meta"], "seeds": [r["seed"] for r in results],
                "commits": sorted({d["meta"]["commit"] for d in loaded})}
    else:
        results = [run_seed(s, args) for s in args.seeds]
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
        meta = {"date": datetime.now(timezone.utc).strftime("%Y-%m-%d"), "commit": commit, "args": {
            k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k != "combine"},
            "vpl_preset": PRESETS["cpu"], "mriql": MRIQL_CPU}
    print(table(results))
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "vpl.json").write_text(json.dumps({"meta": meta, "results": results}, indent=1, default=float))
        figure(results, args.out / "vpl.png")
    return results


if __name__ == "__main__":
    main()
