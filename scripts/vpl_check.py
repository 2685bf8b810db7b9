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

``--active`` measures the paper's active query selection instead (Sec. 4.3; the authors'
``experiments/eval.py``): per seed the same VPL (steps 1-3), then for a new user of each goal, ``K`` queries
(``--ks``) chosen from one candidate pool of ``--pool`` pairs by ``uniform``, ``information_gain``
(:mod:`pbrl.queries`) or ``information_gain`` with the authors' estimator (the same pairs for both users,
each answering them), the latent they give
(:meth:`VPL.set_user`) judged by success on that user's goal, the reward's accuracy on ``--heldout`` pairs of
the user, and the distance to the user's latent from ``--reference`` labels. ``--pools`` pools per seed. One
file per seed under ``OUT/active/`` (a rerun skips the seeds done), then ``OUT/vpl_active.json`` and
``OUT/vpl_active.png`` over every seed file there. ``--disagree F`` builds each pool with a fraction ``F``
of pairs the two users answer differently (as drawn, most do):

    python scripts/vpl_check.py --active --seeds 0 1 2 --out docs/results/vpl_active
    python scripts/vpl_check.py --active --disagree 0.05 --seeds 0 1 2 --out docs/results/vpl_active_rare

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
from pbrl.queries import make_selector

GOALS = (0, 1)


def data_and_vpl(seed: int, args: argparse.Namespace) -> tuple:
    """The seed's dataset, its two users' labels and VPL trained on them (steps 1-3 of the protocol)."""
    ds = collect("pointmass/two-goal", "scripted", n_steps=args.dataset_steps, seed=seed, noise=[0.3, 1.0, 2.0])
    prefs = label_dataset(ds, MultiUserTeacher(seed=seed), args.pairs, segment_length=args.segment, seed=seed)
    vpl = VPL.from_dataset(ds, seed=seed, **PRESETS["cpu"])
    vpl.fit(ds, prefs, steps=args.steps, progress=False)
    return ds, prefs, vpl


def run_seed(seed: int, args: argparse.Namespace) -> dict:
    """Both agents on one seed: ``{"vpl": {k: {...}}, "mriql": {k: {...}}, "latents": ..., "cpu_s": ...}``."""
    c0 = time.process_time()
    ds, prefs, vpl = data_and_vpl(seed, args)
    out: dict = {"seed": seed, "labels_per_user": {u: int((prefs.user == u).sum()) for u in prefs.users()}}
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


# ---------------------------------------------------------------------------------------------- --active


#: the query selectors compared for a new user: label -> ``pbrl.queries.make_selector`` name and options
#: (``information_gain_code``: the same selector scoring with the authors' estimator; ``_predictive``: label
#: vectors drawn as the model predicts them instead of all alike)
ACTIVE_SELECTORS = {"uniform": ("uniform", {}), "information_gain": ("information_gain", {}),
                    "information_gain_code": ("information_gain", {"estimator": "code"}),
                    "information_gain_predictive": ("information_gain", {"labels": "predictive"})}


def user_labels(ds, k: int, n: int, seed: int, args: argparse.Namespace):
    """``n`` pairs of ``args.segment`` steps drawn with ``seed``, answered by user ``k`` alone (the same seed
    gives the same pairs whoever answers)."""
    mix = [1.0 if j == k else 0.0 for j in GOALS]
    return label_dataset(ds, MultiUserTeacher(mix=mix, seed=seed), n, segment_length=args.segment, seed=seed)


def candidate_pool(ds, seed: int, args: argparse.Namespace) -> list:
    """The pool of ``--pool`` pairs both users answer (one ``PreferenceDataset`` per user, the same pairs). With
    ``--disagree F`` a fraction ``F`` of them is drawn from pairs the two users answer differently and the rest
    from pairs they answer alike (out of 16 x ``--pool`` pairs), so that the pairs telling the users apart are
    as rare as the experiment wants."""
    if args.disagree is None:
        return [user_labels(ds, k, args.pool, seed, args) for k in GOALS]
    big = [user_labels(ds, k, 16 * args.pool, seed, args) for k in GOALS]
    split = big[0].label != big[1].label
    n_split = int(round(args.disagree * args.pool))
    yes, no = np.flatnonzero(split), np.flatnonzero(~split)
    if len(yes) < n_split or len(no) < args.pool - n_split:
        raise ValueError(f"--disagree {args.disagree}: {len(yes)} splitting and {len(no)} agreeing pairs of "
                         f"{len(split)}, too few for a pool of {args.pool}; lower --pool")
    rng = np.random.default_rng(seed)
    idx = rng.permutation(np.concatenate([rng.choice(yes, n_split, replace=False),
                                          rng.choice(no, args.pool - n_split, replace=False)]))
    return [p.subset(idx) for p in big]


def score_auc(score: np.ndarray, positive: np.ndarray) -> float:
    """The probability that a ``positive`` item scores above a negative one (ties count half); NaN if either
    kind is missing."""
    pos, neg = score[positive], score[~positive]
    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    return float(np.mean((pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])))


def pair_accuracy(vpl: VPL, prefs) -> float:
    """How often ``r(., z)`` under the current latent orders a pair as its label does (ties left out)."""
    strict = prefs.label != 0.5
    pred = vpl.segment_returns(prefs.b) > vpl.segment_returns(prefs.a)
    return float((pred == (prefs.label == 1.0))[strict].mean())


def _judge(vpl: VPL, k: int, seed: int, held, ref: np.ndarray, args: argparse.Namespace) -> dict:
    ev = vpl.evaluate(f"pointmass/two-goal:goal={k}", n_episodes=args.episodes, seed=seed)
    return {"success": ev["success_rate"], "return": ev["mean_return"], "accuracy": pair_accuracy(vpl, held),
            "distance": float(np.linalg.norm(vpl.latent - ref))}


def active_seed(seed: int, args: argparse.Namespace) -> dict:
    """For a new user of each goal, K queries chosen from one candidate pool by each selector: the latent they
    give, judged by success on that user's goal, pair accuracy on held-out pairs of the user and the distance
    to the user's latent from ``--reference`` labels. ``--pools`` pools, each shared by both users and both
    selectors (the same pairs; each user answers them)."""
    c0 = time.process_time()
    ds, _, vpl = data_and_vpl(seed, args)
    refs, held = {}, {}
    for k in GOALS:
        refs[k] = vpl.posterior(user_labels(ds, k, args.reference, 7000 + 10 * seed + k, args))[0]
        held[k] = user_labels(ds, k, args.heldout, 8000 + 10 * seed + k, args)
    out: dict = {"seed": seed, "vpl_reward_fit": vpl.reward_fit_info, "prior": {}, "reference": {}, "rows": [],
                 "reference_gap": float(np.linalg.norm(refs[0] - refs[1]))}
    for k in GOALS:  # no query at all (the prior mean), and the reference latent itself
        vpl.latent = np.zeros_like(vpl.latent)
        out["prior"][f"user{k}"] = _judge(vpl, k, seed, held[k], refs[k], args)
        vpl.latent = refs[k].astype(np.float32)
        out["reference"][f"user{k}"] = _judge(vpl, k, seed, held[k], refs[k], args)
    # does the score single out the pairs that tell the users apart? Each pair of the first pool alone (K = 1)
    first = candidate_pool(ds, 9000 + 100 * seed, args)
    split = first[0].label != first[1].label
    out["score_auc"] = {name: score_auc(vpl.information_gain(first[0].a, first[0].b, np.arange(len(split))[:, None],
                                                             rng=seed, **options), split)
                        for name, (kind, options) in ACTIVE_SELECTORS.items() if kind == "information_gain"}
    for r in range(args.pools):
        pools = candidate_pool(ds, 9000 + 100 * seed + r, args)
        assert np.array_equal(pools[0].a.obs, pools[1].a.obs) and np.array_equal(pools[0].b.obs, pools[1].b.obs)
        for name, (kind, options) in ACTIVE_SELECTORS.items():
            for K in args.ks:
                idx = make_selector(kind, **options).select(pools[0].a, pools[0].b, K, reward_model=vpl,
                                                 rng=10_000 * seed + 100 * r + K)
                disagree = float(np.mean(pools[0].label[idx] != pools[1].label[idx]))
                for k in GOALS:
                    vpl.set_user(pools[k].subset(idx))
                    out["rows"].append({"pool": r, "selector": name, "K": int(K), "user": k, "disagree": disagree,
                                        **_judge(vpl, k, seed, held[k], refs[k], args)})
    out["cpu_s"] = time.process_time() - c0
    return out


ACTIVE_METRICS = (("success", "success on the user's goal"), ("accuracy", "held-out pair accuracy"),
                  ("distance", "|z - z_ref|"), ("disagree", "queries the users answer differently"))


def active_summary(results: list[dict]) -> dict:
    """``{selector: {K: {metric: (mean, [per-seed means])}}}`` over users and pools."""
    summary: dict = {}
    for name in ACTIVE_SELECTORS:
        for K in sorted({row["K"] for r in results for row in r["rows"]}):
            per_seed = {m: [float(np.mean([row[m] for row in r["rows"] if row["selector"] == name and row["K"] == K]))
                            for r in results] for m, _ in ACTIVE_METRICS}
            summary.setdefault(name, {})[K] = {m: (float(np.mean(v)), v) for m, v in per_seed.items()}
    return summary


def active_table(results: list[dict]) -> str:
    summary = active_summary(results)
    head = "| selector | K | " + " | ".join(label for _, label in ACTIVE_METRICS) + " |"
    rows = [head, "|---|---|" + "---|" * len(ACTIVE_METRICS)]
    for name, by_k in summary.items():
        for K, cells in by_k.items():
            rows.append(f"| {name} | {K} | " + " | ".join(
                f"{mean:.2f} ({', '.join(f'{x:.2f}' for x in seeds)})" for mean, seeds in cells.values()) + " |")
    aucs = {name: [r["score_auc"][name] for r in results if name in r.get("score_auc", {})] for name in ACTIVE_SELECTORS}
    rows.append("\nAUC of the score of single pairs, splitting the users vs not: " + "; ".join(
        f"{name} {np.mean(v):.2f} ({', '.join(f'{x:.2f}' for x in v)})" for name, v in aucs.items() if v))
    for ref in ("prior", "reference"):
        s = [np.mean([r[ref][f"user{k}"]["success"] for k in GOALS]) for r in results]
        a = [np.mean([r[ref][f"user{k}"]["accuracy"] for k in GOALS]) for r in results]
        rows.append(f"\n{ref} latent: success {np.mean(s):.2f} ({', '.join(f'{x:.2f}' for x in s)}), "
                    f"accuracy {np.mean(a):.2f} ({', '.join(f'{x:.2f}' for x in a)})")
    return "\n".join(rows)


def active_figure(results: list[dict], path: Path, pool: str = "") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    summary = active_summary(results)
    fig, axes = plt.subplots(1, len(ACTIVE_METRICS), figsize=(3.2 * len(ACTIVE_METRICS), 3.2))
    for ax, (m, label) in zip(axes, ACTIVE_METRICS):
        for i, (name, by_k) in enumerate(summary.items()):
            ks = np.array(list(by_k))
            ax.plot(ks, [by_k[K][m][0] for K in ks], "o-", color=f"C{i}", label=name)
            for K in ks:
                seeds = by_k[K][m][1]
                ax.scatter(np.full(len(seeds), K * (0.93 if i == 0 else 1.07)), seeds, color=f"C{i}", s=8, alpha=0.5)
        ax.set_xscale("log", base=2)
        ax.set_xlabel("queries K of the new user")
        ax.set_title(label, fontsize=9)
    axes[0].legend(fontsize=8)
    fig.suptitle(f"VPL, a new user's K queries by selector: pointmass/two-goal, {pool}{len(results)} seeds "
                 "(dots: seeds)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def run_active(args: argparse.Namespace, meta: dict) -> list[dict]:
    """``--active``: each seed's ``active_seed`` into ``OUT/active/seed{S}.json`` (a seed whose file exists is
    skipped: rerun to resume), then the table and figure of every seed file there."""
    folder = args.out / "active"
    folder.mkdir(parents=True, exist_ok=True)
    for seed in args.seeds:
        f = folder / f"seed{seed}.json"
        if f.is_file():
            print(f"seed {seed}: {f} exists, skipped")
            continue
        res = active_seed(seed, args)
        f.write_text(json.dumps({"meta": meta, "result": res}, indent=1, default=float))
        print(f"seed {seed}: done in {res['cpu_s']:.0f} CPU-s")
    loaded = [json.loads(f.read_text()) for f in sorted(folder.glob("seed*.json"))]
    results = sorted((d["result"] for d in loaded), key=lambda r: r["seed"])
    print(active_table(results))
    summary = {"meta": {**meta, "seeds": [r["seed"] for r in results],
                        "commits": sorted({d["meta"]["commit"] for d in loaded})}, "summary": active_summary(results)}
    (args.out / "vpl_active.json").write_text(json.dumps(summary, indent=1, default=float))
    pool = "pools as drawn" if args.disagree is None else f"pools with {args.disagree:.0%} of pairs splitting the users"
    active_figure(results, args.out / "vpl_active.png", f"{pool}, ")
    return results


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
    p.add_argument("--active", action="store_true",
                   help="measure a new user's query selection instead (uniform vs information_gain, and the authors' estimator): "
                        "OUT/active/seed{S}.json per seed (resumable), OUT/vpl_active.json and .png")
    p.add_argument("--ks", type=int, nargs="+", default=[1, 2, 4, 8, 16], help="--active: queries per new user")
    p.add_argument("--pool", type=int, default=256, help="--active: candidate pairs in a pool")
    p.add_argument("--pools", type=int, default=3, help="--active: candidate pools per seed")
    p.add_argument("--heldout", type=int, default=200, help="--active: held-out pairs per user (pair accuracy)")
    p.add_argument("--reference", type=int, default=128, help="--active: labels of the user's reference latent")
    p.add_argument("--disagree", type=float, default=None,
                   help="--active: the fraction of pool pairs the two users answer differently (default: as drawn)")
    args = p.parse_args(argv)
    for name in ("dataset_steps", "pairs", "segment", "few", "steps", "episodes", "pool", "pools", "heldout",
                 "reference"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be a positive integer")
    if args.active and (args.out is None or args.combine):
        p.error("--active writes its results into --out DIR (and does not take --combine)")
    if args.disagree is not None and not 0.0 <= args.disagree <= 1.0:
        p.error(f"--disagree must be a fraction in [0, 1], got {args.disagree}")
    if args.active and not all(1 <= k <= args.pool for k in args.ks):
        p.error(f"--ks must be between 1 and --pool ({args.pool}), got {args.ks}")
    torch.set_num_threads(1)
    if args.active:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
        meta = {"date": datetime.now(timezone.utc).strftime("%Y-%m-%d"), "commit": commit, "args": {
            k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k != "combine"},
            "vpl_preset": PRESETS["cpu"]}
        return run_active(args, meta)
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
