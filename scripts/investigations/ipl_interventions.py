"""What stops IPL's collapse on Hopper medium-replay? One change to IPL's inputs or objective at a time.

`scripts/ipl_peer.py` found that IPL falls over on the D4RL-sized Hopper medium-replay file in pbrl's code and
in its authors' alike (docs/results/ipl_hopper.md). This script trains pbrl's IPL at its defaults with one
intervention each, on the same dataset file, preference file and seed, and evaluates the deterministic policy
every ``--eval-every`` updates:

* ``none``: IPL as it is (the reference);
* ``no-fall-pairs``: the labels without the pairs whose segments hold a fall (a terminal step): do the few
  labelled falls drive it?
* ``chi2-centre``: the chi^2 term centred at ``--r0`` instead of 0, ``c (r - r0)^2``, so that every step alive is
  worth about ``r0`` and ending an episode forfeits ``r0 / (1 - gamma)``: does the implicit reward's level
  (0 on average, where Hopper's true reward is about +3 per step) drive it?
* ``fall-anchor``: the chi^2 term of the unlabelled terminal transitions (the falls, where the implicit reward
  is ``Q(s, a)`` itself) weighted ``--fall-weight`` times: is the one term that ties ``Q`` at a fall to 0, on
  about 1 transition in 223, too weak against what the critic generalises from the states before a fall?

Each (intervention, seed) is saved to ``<out>/<intervention>-s<seed>.json`` when it ends and is not run again;
``--report-only`` prints the table of the saved runs.

    python scripts/investigations/ipl_interventions.py --seeds 1                     # all four, about 50 CPU-min
    python scripts/investigations/ipl_interventions.py --report-only
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from pbrl.app.bench import BadInput

INTERVENTIONS = ("none", "no-fall-pairs", "chi2-centre", "fall-anchor")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", default="data/datasets/mujoco_Hopper-v5/medium-replay.hdf5", help="D4RL-layout file")
    p.add_argument("--labels", default=None, help="PreferenceDataset file (default: <dataset>.prefs_oracle_500.h5)")
    p.add_argument("--task", default="mujoco/Hopper-v5", help="evaluation env")
    p.add_argument("--interventions", nargs="+", default=list(INTERVENTIONS), choices=INTERVENTIONS)
    p.add_argument("--seeds", type=int, nargs="+", default=[1])
    p.add_argument("--steps", type=int, default=10_000)
    p.add_argument("--eval-every", type=int, default=1_000)
    p.add_argument("--eval-episodes", type=int, default=5)
    p.add_argument("--r0", type=float, default=0.5, help="chi2-centre's level")
    p.add_argument("--fall-weight", type=float, default=100.0, help="fall-anchor's weight of a fall's chi^2 term")
    p.add_argument("--hidden", type=int, nargs="+", default=None, help="override: hidden layers")
    p.add_argument("--out", default="benchmarks/ipl_peer/interventions")
    p.add_argument("--report-only", action="store_true")
    a = p.parse_args(argv)
    if a.report_only:
        return a
    if a.labels is None:
        a.labels = str(Path(a.dataset).with_suffix("")) + ".prefs_oracle_500.h5"
    for name in ("dataset", "labels"):
        if not Path(getattr(a, name)).is_file():
            raise BadInput(f"--{name} {getattr(a, name)} is not a file")
    for name in ("steps", "eval_every", "eval_episodes", "fall_weight"):
        if getattr(a, name) < 1:
            raise BadInput(f"--{name.replace('_', '-')} must be >= 1, got {getattr(a, name)}")
    return a


def fall_pairs(prefs: Any, ds: Any) -> np.ndarray:
    """``[N]`` bool: the pairs with a terminal step (a fall) in either segment."""
    from pbrl.agents.offline_data import OfflineData

    term = np.asarray(ds.terminals, bool)
    H = prefs.segment_length

    def falls(seg: Any) -> np.ndarray:
        first = np.asarray(OfflineData.segment_rows(seg, ds)).reshape(len(seg.obs), -1)[:, 0]
        return np.array([r >= 0 and bool(term[r:r + H].any()) for r in first])

    return falls(prefs.a) | falls(prefs.b)


def fall_anchor_term(r: Any, done: Any, n_pref: int, coeff: float, replay_weight: float, weight: float) -> Any:
    """What ``fall-anchor`` adds to IPL's loss: ``(weight - 1)`` times the unlabelled terminal transitions' share of
    :func:`~pbrl.agents.ipl.chi2_regularizer`, ``c w mean_{D_o}[done r^2]`` (``r [E, B]``, the unlabelled part
    after the first ``n_pref`` columns), so that a fall's chi^2 term weighs ``weight`` times its own."""
    per = r.pow(2).reshape(-1, r.shape[-1]).mean(0)[n_pref:]
    return (weight - 1.0) * coeff * replay_weight * (per * done[n_pref:]).mean()


def make_agent(intervention: str, ds: Any, seed: int, r0: float, hidden: list[int] | None,
               fall_weight: float = 100.0) -> Any:
    """pbrl's IPL at its defaults; ``chi2-centre`` pulls the implicit reward towards ``r0`` instead of 0;
    ``fall-anchor`` weights the falls' chi^2 term ``fall_weight`` times (:func:`fall_anchor_term`)."""
    import pbrl.agents.ipl as ipl_module
    from pbrl.agents import IPL
    from pbrl.agents.ipl import chi2_regularizer, implicit_reward

    kw = {"hidden": tuple(hidden)} if hidden else {}
    if intervention == "fall-anchor":
        class AnchoredIPL(IPL):
            def _ipl_critic_loss(self, flat: Any, p: Any, n_fb: int, shape: Any, next_v: Any) -> Any:
                loss, logs = super()._ipl_critic_loss(flat, p, n_fb, shape, next_v)
                r = implicit_reward(logs["q"], next_v, flat["done"], self.gamma)
                extra = fall_anchor_term(r, flat["done"], n_fb, self.chi2_coeff, self.replay_weight, fall_weight)
                return loss + extra, {**logs, "fall_anchor_loss": extra}

        return AnchoredIPL.from_dataset(ds, seed=seed, **kw)
    if intervention != "chi2-centre":
        return IPL.from_dataset(ds, seed=seed, **kw)

    class CentredIPL(IPL):
        def _ipl_critic_loss(self, *args: Any) -> Any:
            # IPL's own critic loss with its chi^2 term read about r0: chi2_regularizer(r - r0, ...), the same
            # weights over preference and unlabelled steps
            previous = ipl_module.chi2_regularizer
            ipl_module.chi2_regularizer = lambda r, *a, **k: chi2_regularizer(r - r0, *a, **k)
            try:
                return super()._ipl_critic_loss(*args)
            finally:
                ipl_module.chi2_regularizer = previous

    return CentredIPL.from_dataset(ds, seed=seed, **kw)


def run_one(args: argparse.Namespace, intervention: str, seed: int) -> dict[str, Any]:
    import torch

    from pbrl.envs.loading import load_dataset
    from pbrl.preferences import PreferenceDataset

    torch.set_num_threads(1)
    ds, prefs = load_dataset(args.dataset), PreferenceDataset.load(args.labels)
    dropped = 0
    if intervention == "no-fall-pairs":
        drop = fall_pairs(prefs, ds)
        dropped = int(drop.sum())
        prefs = prefs.subset(np.flatnonzero(~drop))
    agent = make_agent(intervention, ds, seed, args.r0, args.hidden, args.fall_weight)
    t0 = time.process_time()
    out = agent.fit(ds, prefs, steps=args.steps, eval_env=args.task, eval_every=args.eval_every,
                    n_eval_episodes=args.eval_episodes, progress=False)
    return {"intervention": intervention, "seed": seed, "r0": args.r0 if intervention == "chi2-centre" else None,
            "fall_weight": args.fall_weight if intervention == "fall-anchor" else None,
            "pairs": len(prefs), "dropped_pairs": dropped, "steps": args.steps, "dataset": args.dataset,
            "labels": args.labels, "cpu_s": time.process_time() - t0,
            "rows": [{"step": e["step"], "return": e["mean_return"], "score": e["normalized_score"]}
                     for e in out["evaluations"]]}


def markdown(runs: list[dict[str, Any]]) -> str:
    steps = sorted({r["step"] for run in runs for r in run["rows"]})
    lines = ["| intervention | seed | pairs | " + " | ".join(f"{s:,}" for s in steps) + " |",
             "|---|---:|---:|" + "---:|" * len(steps)]
    for run in runs:
        by = {r["step"]: r["return"] for r in run["rows"]}
        name = run["intervention"] + (f" (r0 = {run['r0']:g})" if run.get("r0") is not None else "") \
            + (f" (x{run['fall_weight']:g})" if run.get("fall_weight") is not None else "")
        lines.append(f"| {name} | {run['seed']} | {run['pairs']} | "
                     + " | ".join(f"{by[s]:.0f}" if s in by else "-" for s in steps) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    args = parse_args(argv)
    out = Path(args.out)
    if not args.report_only:
        for seed in args.seeds:
            for intervention in args.interventions:
                path = out / f"{intervention}-s{seed}.json"
                if path.exists():
                    continue
                res = run_one(args, intervention, seed)
                out.mkdir(parents=True, exist_ok=True)
                tmp = path.with_suffix(".tmp")
                tmp.write_text(json.dumps(res, indent=1))
                tmp.replace(path)
                print(f"[ipl_interventions] {path.name}: final return {res['rows'][-1]['return']:.0f}", flush=True)
    files = sorted(out.glob("*.json")) if out.is_dir() else []
    if not files:
        raise BadInput(f"no finished run under {out}; run without --report-only first")
    rank = {n: i for i, n in enumerate(INTERVENTIONS)}
    runs = sorted((json.loads(f.read_text()) for f in files), key=lambda r: (r["seed"], rank[r["intervention"]]))
    print(markdown(runs))
    return runs


if __name__ == "__main__":
    main()
