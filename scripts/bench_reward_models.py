"""Benchmark reward learning from preferences: query selectors x label budget, and batched-ensemble speed.

One run prints, side by side:

1. **Held-out agreement per selector.** Segment pairs come from a MuJoCo task (HalfCheetah by default)
   rolled out with noisy, randomly biased policies so that returns vary. Labels come from the oracle
   B-Pref teacher. Each selector queries in rounds (cumulative budgets 100, 250, 500, 1000, 2000 by
   default), drawing each round's candidates fresh from the training episodes (``pool_factor`` x
   the round size, as B-Pref's ``large_batch``), and the same ``RewardEnsemble`` is refitted after
   every round (warm start, as PEBBLE does). The uncertainty-based selectors start with one uniform
   round (no model yet), as in B-Pref. Reported: the fraction of held-out pairs (from other
   episodes) whose learned returns are ordered like the true returns, and the Pearson correlation of
   learned and true per-step reward.
2. **Training throughput** of the batched ensemble (one ``baddbmm`` per layer for all members) against a
   loop over M separate ``nn.Sequential`` member networks doing exactly the same work, and their ratio.

Writes ``results/bench_reward_models.json`` and ``results/bench_reward_models.png`` (agreement vs labels).
It is an in-process study on the benchmark harness (:mod:`pbrl.bench`): every (selector, seed) and every
throughput configuration is one unit, kept in ``<out>/runs.csv`` (its curve in ``curves.csv``) as soon as it
finishes; the same command again runs only the missing units, and ``--report-only`` rebuilds the table and
plot from the CSVs.

    python scripts/bench_reward_models.py            # full run: 15 min wall on a 2-core machine shared
                                                     # with other jobs (load ~8); run it with nice
    python scripts/bench_reward_models.py --quick    # smoke run (~30 s)

Fits use B-Pref's early stop (mean member train accuracy >= 0.97, at most ``--epochs`` 50), so with a
warm-started model later rounds often stop after a few epochs: the curves show what an online agent
gets with that rule, not the best a longer fit could reach.
"""

from __future__ import annotations

import argparse
import math
import re
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from pbrl.bench import Study, StudyRuns, run_study
from pbrl.envs import make_env, rollout
from pbrl.preferences import PreferenceDataset, atomic_write
from pbrl.queries import ENSEMBLE_SELECTORS as SELECTORS
from pbrl.queries import candidate_pairs, make_selector
from pbrl.reward_models import GaussianRewardModel, RewardEnsemble, evaluate_reward_model
from pbrl.teachers import ScriptedTeacher


# ------------------------------------------------------------------------------------------- data
def collect(task: str, n_episodes: int, seed: int, episode_steps: int):
    """Episodes of noisy policies with a random per-episode action bias (so segment returns vary)."""
    env = make_env(task, seed=seed)
    rng = np.random.default_rng(seed)
    low, high = env.action_space.low, env.action_space.high
    trajs = []
    for ep in tqdm(range(n_episodes), desc=f"rollouts seed={seed}", leave=False):
        bias = rng.uniform(-0.6, 0.6, size=low.shape)
        noise = rng.uniform(0.2, 1.0)

        def policy(obs, bias=bias, noise=noise):
            return np.clip(bias + noise * rng.normal(size=low.shape), low, high).astype(np.float32)

        trajs += rollout(env, policy, n_episodes=1, seed=seed * 1000 + ep, max_episode_steps=episode_steps)
    env.close()
    return trajs


# ------------------------------------------------------------------------------------------- selectors
def run_selector(name, train_trajs, test, budgets, args, seed, model_cls=RewardEnsemble):
    teacher = ScriptedTeacher.preset("oracle", seed=seed)
    rng = np.random.default_rng(seed)
    obs_dim, act_dim = test.a.obs_dim, test.a.act_dim
    model = model_cls(obs_dim, act_dim, n_members=args.members, hidden=tuple(args.hidden), lr=args.lr, seed=seed)
    labelled = PreferenceDataset.empty(args.segment, obs_dim, act_dim)
    out = []
    prev = 0
    for k, budget in enumerate(budgets):
        n = budget - prev
        a, b = candidate_pairs(train_trajs, max(args.pool_factor * n, n), args.segment, rng)
        use = name
        if k == 0 and make_selector(name).needs_model:
            use = "uniform"  # no model before the first labels (B-Pref's first session is uniform)
        idx = make_selector(use).select(a, b, n, reward_model=model, labelled=labelled, rng=rng)
        a, b = a[idx], b[idx]
        labelled.append(a, b, teacher.label(a, b))
        t0 = time.perf_counter()
        info = model.fit(labelled, epochs=args.epochs, batch_size=128, early_stop_accuracy=args.early_stop)
        fit_s = time.perf_counter() - t0
        m = evaluate_reward_model(model, test)
        out.append({"labels": budget, **m, "train_accuracy": info["accuracy"], "epochs": info["epochs"], "fit_s": fit_s})
        prev = budget
    return out


# ------------------------------------------------------------------------------------------- throughput
class LoopEnsemble:
    """The baseline: M separate ``nn.Sequential`` reward networks, a Python loop over members per step."""

    def __init__(self, in_dim, n_members, hidden, lr, seed):
        torch.manual_seed(seed)
        self.members = nn.ModuleList()
        for _ in range(n_members):
            layers, d = [], in_dim
            for h in hidden:
                layers += [nn.Linear(d, h), nn.LeakyReLU(inplace=True)]
                d = h
            layers += [nn.Linear(d, 1), nn.Tanh()]
            self.members.append(nn.Sequential(*layers))
        self.opt = torch.optim.Adam(self.members.parameters(), lr=lr)

    def step(self, xb, yb):
        """``xb [M, B, 2, H, in]``, ``yb [M, B]``: one optimisation step over all members."""
        loss = 0.0
        for m, net in enumerate(self.members):
            r = net(xb[m]).squeeze(-1).sum(-1)  # [B, 2]
            logp = torch.log_softmax(r, -1)
            loss = loss - ((1 - yb[m]) * logp[:, 0] + yb[m] * logp[:, 1]).mean()
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()


def throughput(ds: PreferenceDataset, n_members: int, hidden, n_steps: int, batch: int = 128, seed: int = 0):
    """Training pairs per second (pairs x members / s) for the batched ensemble and the loop baseline."""
    obs_dim, act_dim = ds.a.obs_dim, ds.a.act_dim
    x = torch.as_tensor(np.stack([np.concatenate([s.obs, s.act], -1) for s in (ds.a, ds.b)], axis=1))
    y = torch.as_tensor(ds.label)
    rng = np.random.default_rng(seed)
    idx = [torch.as_tensor(rng.integers(0, len(ds), size=(n_members, batch))) for _ in range(n_steps + 1)]

    batched = RewardEnsemble(obs_dim, act_dim, n_members=n_members, hidden=tuple(hidden), seed=seed)
    batched.in_mean = x.reshape(-1, x.shape[-1]).mean(0)
    batched.in_std = x.reshape(-1, x.shape[-1]).std(0).clamp_min(1e-6)

    def batched_step(i):
        rewards, _ = batched._pair_rewards(x[i], sample=True)
        lp = torch.log_softmax(rewards.sum(-1), -1)
        yb = y[i]
        loss = -((1 - yb) * lp[..., 0] + yb * lp[..., 1]).mean(1).sum()
        batched.optimizer.zero_grad()
        loss.backward()
        batched.optimizer.step()

    loop = LoopEnsemble(obs_dim + act_dim, n_members, hidden, 3e-4, seed)
    mean, std = batched.in_mean, batched.in_std

    def loop_step(i):
        loop.step((x[i] - mean) / std, y[i])

    res = {}
    # interleave the two so that load from other processes hits both alike
    times = {"batched": 0.0, "loop": 0.0}
    batched_step(idx[0])
    loop_step(idx[0])  # warm-up
    for i in idx[1:]:
        for key, fn in (("batched", batched_step), ("loop", loop_step)):
            t0 = time.perf_counter()
            fn(i)
            times[key] += time.perf_counter() - t0
    for key in times:
        res[f"{key}_pairs_per_s"] = n_steps * batch * n_members / times[key]
    res["ratio"] = res["batched_pairs_per_s"] / res["loop_pairs_per_s"]

    # inference (no grad): 1 row = the online per-step reward, 65536 rows = relabelling a replay buffer
    flat = x.reshape(-1, x.shape[-1])
    for rows, reps in ((1, 2000), (65536, 3)):
        xr = flat[:rows] if rows <= len(flat) else flat.repeat(rows // len(flat) + 1, 1)[:rows]
        t = {"batched": 0.0, "loop": 0.0}
        with torch.no_grad():
            for _ in range(reps):
                t0 = time.perf_counter()
                batched._mean_rewards(xr)
                t["batched"] += time.perf_counter() - t0
                t0 = time.perf_counter()
                xn = (xr - mean) / std
                torch.stack([net(xn).squeeze(-1) for net in loop.members])
                t["loop"] += time.perf_counter() - t0
        res[f"predict_{rows}_ratio"] = t["loop"] / t["batched"]
        res[f"predict_{rows}_batched_rows_per_s"] = rows * reps / t["batched"]
    return res


# ------------------------------------------------------------------------------------------- the study
#: the flags a selector unit's result depends on (its row is redone when one of them changes)
UNIT_SETTINGS = ("task", "budgets", "episodes", "test_episodes", "episode_steps", "segment", "members", "hidden", "lr",
                 "epochs", "early_stop", "pool_factor", "n_test")
#: the throughput configurations: (members, hidden layers)
THROUGHPUT = ((3, (64, 64)), (3, (256, 256, 256)), (7, (64, 64)))
GAUSSIAN_ROW = "uniform (GaussianRewardModel)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The study's own flags (the harness adds --seeds, --out, --dry-run, --report-only)."""
    p.add_argument("--task", default="mujoco/HalfCheetah-v5")
    p.add_argument("--budgets", type=int, nargs="+", default=[100, 250, 500, 1000, 2000])
    p.add_argument("--report", type=int, nargs="+", default=[100, 500, 2000], help="budgets in the printed table")
    p.add_argument("--selectors", nargs="+", default=list(SELECTORS))
    p.add_argument("--episodes", type=int, default=20, help="training episodes")
    p.add_argument("--test-episodes", type=int, default=6)
    p.add_argument("--episode-steps", type=int, default=1000)
    p.add_argument("--segment", type=int, default=50)
    p.add_argument("--members", type=int, default=3)
    p.add_argument("--hidden", type=int, nargs="+", default=[64, 64])
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--epochs", type=int, default=50)
    p.add_argument("--early-stop", type=float, default=0.97)
    p.add_argument("--pool-factor", type=int, default=5)
    p.add_argument("--n-test", type=int, default=2000)
    p.add_argument("--speed-steps", type=int, default=20)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--no-gaussian", dest="gaussian", action="store_false",
                   help="skip the extra row: uniform queries with GaussianRewardModel (kl_weight 1e-3)")
    p.add_argument("--quick", action="store_true", help="tiny smoke run")


def check(args: argparse.Namespace, p: argparse.ArgumentParser) -> None:
    if args.quick:
        args.budgets, args.report = [50, 100], [50, 100]
        args.episodes, args.test_episodes, args.episode_steps = 3, 2, 300
        args.n_test, args.epochs, args.speed_steps = 200, 10, 3
    if sorted(args.budgets) != args.budgets or args.budgets[0] < 1:
        p.error(f"--budgets must be increasing positive numbers, got {args.budgets}")
    if not set(args.report) <= set(args.budgets):
        p.error(f"--report {args.report} must be a subset of --budgets {args.budgets}")
    for s in args.selectors:
        try:
            make_selector(s)
        except ValueError as e:
            p.error(str(e))


def units(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Every (selector row, seed), then the throughput configurations (on the last seed's data)."""
    rows = [(name, name, "RewardEnsemble") for name in args.selectors]
    if args.gaussian:
        rows.append((GAUSSIAN_ROW, "uniform", "GaussianRewardModel"))
    settings = {k: getattr(args, k) for k in UNIT_SETTINGS}
    out = [{"run": f"{re.sub(r'[^A-Za-z0-9_]+', '_', row).strip('_')}__s{seed}", "kind": "selector", "row": row,
            "selector": name, "model": model, "seed": seed, **settings}
           for seed in args.seed_list for row, name, model in rows]
    out += [{"run": f"throughput__M{m}__{'x'.join(map(str, h))}", "kind": "throughput", "members": m, "hidden": list(h),
             "speed_steps": args.speed_steps, "seed": args.seed_list[-1],
             **{k: getattr(args, k) for k in ("task", "episodes", "episode_steps", "segment")}} for m, h in THROUGHPUT]
    return out


def prepare(args: argparse.Namespace, out: Path) -> None:
    torch.set_num_threads(args.threads)
    args.data = {}


def _data(args: argparse.Namespace, seed: int):
    """The training episodes and held-out pairs of ``seed`` (collected once)."""
    if seed not in args.data:
        train_trajs = collect(args.task, args.episodes, seed=100 + seed, episode_steps=args.episode_steps)
        test_trajs = collect(args.task, args.test_episodes, seed=900 + seed, episode_steps=args.episode_steps)
        ta, tb = candidate_pairs(test_trajs, args.n_test, args.segment, np.random.default_rng(seed))
        args.data[seed] = (train_trajs, PreferenceDataset(ta, tb, ScriptedTeacher.preset("oracle").label(ta, tb)))
    return args.data[seed]


def run_unit(args: argparse.Namespace, u: dict[str, Any]) -> dict[str, Any]:
    train_trajs, test = _data(args, u["seed"])
    if u["kind"] == "throughput":
        sa, sb = candidate_pairs(train_trajs, 512, args.segment, np.random.default_rng(0))
        speed_ds = PreferenceDataset(sa, sb, ScriptedTeacher.preset("oracle").label(sa, sb))
        return throughput(speed_ds, u["members"], tuple(u["hidden"]), u["speed_steps"])
    cls = GaussianRewardModel if u["model"] == "GaussianRewardModel" else RewardEnsemble
    curve = run_selector(u["selector"], train_trajs, test, args.budgets, args, u["seed"], model_cls=cls)
    agreement = ", ".join(f"{c['ordering_agreement']:.3f}" for c in curve)
    print(f"[bench_reward_models] {u['row']} seed {u['seed']}: agreement {agreement}", flush=True)
    return {"held_out_pairs": len(test), "curve": [{"step": c["labels"], **c} for c in curve]}


def summarise(ctx: StudyRuns) -> dict[str, Any]:
    """``bench_reward_models.json``: per selector row its curve per seed, the throughput, the table; the plot."""
    args = ctx.args
    selectors: dict[str, list] = {}
    throughput_rows: dict[str, dict] = {}
    for r in ctx.records:
        if r.config["kind"] == "throughput":
            key = f"M={r.config['members']} hidden={'x'.join(map(str, r.config['hidden']))}"
            throughput_rows[key] = r.metrics
        else:
            curve = [{k: v for k, v in c.items() if k != "step" and not (isinstance(v, float) and math.isnan(v))}
                     for c in r.curve]
            selectors.setdefault(r.config["row"], []).append(curve)
    settings = {k: v for k, v in vars(args).items() if k not in ("data", "seed_list", "export")}
    results = {"config": settings, "selectors": selectors, "throughput": throughput_rows}
    results["table"] = table(results, args)
    plot(results, args, ctx.out / "bench_reward_models.png")
    return results


def _mean_at(results: dict, args: argparse.Namespace, name: str, budget: int, key: str) -> float:
    return float(np.mean([c[args.budgets.index(budget)][key] for c in results["selectors"][name]]))


def table(results: dict, args: argparse.Namespace) -> str:
    lines = []
    head = "| selector | " + " | ".join(f"agreement @ {b}" for b in args.report) + f" | pearson @ {args.report[-1]} |"
    lines += [head, "|" + "---|" * (len(args.report) + 2)]
    for name in results["selectors"]:
        cells = [f"{_mean_at(results, args, name, b, 'ordering_agreement'):.3f}" for b in args.report]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {_mean_at(results, args, name, args.report[-1], 'pearson'):.3f} |")
    lines += [
        "",
        "| ensemble | train: batched pairs/s | train: loop pairs/s | train ratio | predict 1 row ratio | predict 65536 rows ratio |",
        "|---|---|---|---|---|---|",
    ]
    for key, r in results["throughput"].items():
        lines.append(
            f"| {key} | {r['batched_pairs_per_s']:.0f} | {r['loop_pairs_per_s']:.0f} | {r['ratio']:.2f}x "
            f"| {r['predict_1_ratio']:.2f}x | {r['predict_65536_ratio']:.2f}x |"
        )
    return (f"{args.task}, oracle labels, {len(args.seed_list)} seed(s), ensemble M={args.members} "
            f"hidden={args.hidden}\n\n" + "\n".join(lines))


def plot(results: dict, args: argparse.Namespace, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 2, figsize=(11, 4))
    for name in results["selectors"]:
        ax[0].plot(args.budgets, [_mean_at(results, args, name, b, "ordering_agreement") for b in args.budgets],
                   marker="o", label=name)
        ax[1].plot(args.budgets, [_mean_at(results, args, name, b, "pearson") for b in args.budgets], marker="o",
                   label=name)
    for a_, yl in zip(ax, ("held-out ordering agreement", "Pearson r (learned vs true reward)")):
        a_.set_xscale("log")
        a_.set_xlabel("oracle labels")
        a_.set_ylabel(yl)
        a_.grid(alpha=0.3)
    ax[0].legend(fontsize=8)
    fig.suptitle(f"Reward learning on {args.task} (oracle teacher)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)


STUDY = Study(name="bench_reward_models", description=__doc__, out="results", seeds=(0,), arguments=add_arguments,
              check=check, prepare=prepare, units=units, run_unit=run_unit, summarise=summarise,
              markdown=lambda res, ctx: res["table"], result_file="bench_reward_models.json")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    return run_study(STUDY, argv)


if __name__ == "__main__":
    main()
