"""Labels used against reward accuracy on a fixed pool: the gate and the randomised selector beside uniform and
disagreement selection (``docs/query_gating.md``).

One fixed pool of random-policy episodes of ``--task`` is split by episode: the first ``--train-episodes`` give
the candidates, the rest the held-out pairs. Each selector runs ``--rounds`` rounds, as the online feedback loop
does: a round draws ``large_batch * n`` fresh candidate pairs (``n = --per-round``; ``n`` for ``uniform``),
the selector picks (the first round is uniform for every selector, as PEBBLE's first session), the oracle
labels what was asked, and a fresh-per-seed reward ensemble (PEBBLE's, 3 members) is refitted on every label so
far. A gated selector may ask fewer than ``n``: those do not count. After each round it records the labels used
and the learned reward's agreement with the true one on the held-out pairs (pair accuracy of the ensemble's
mean return) and steps (Pearson correlation of the predicted and true step reward).

Writes ``query_gating.json`` and ``query_gating.png`` (accuracy against labels used) under ``--out`` and prints
the table. Cost: about 3 CPU-minutes with the defaults (2 seeds), most of it the refits.

    .venv/bin/python scripts/investigations/query_gating.py
    .venv/bin/python scripts/investigations/query_gating.py --smoke          # tiny sizes: checks the script (20 s)
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from pbrl.app.bench import BadInput, provenance

SELECTORS = ("uniform", "disagreement", "thompson", "gated_uniform", "gated_disagreement", "gated_thompson")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--task", default="mujoco/HalfCheetah-v5")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--selectors", nargs="+", default=list(SELECTORS))
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--per-round", type=int, default=10, help="queries proposed per round (n)")
    p.add_argument("--large-batch", type=int, default=10, help="candidates per query (B-Pref's 10)")
    p.add_argument("--epsilon", type=float, default=None, help="the gate's epsilon (default: GatedSelector's)")
    p.add_argument("--segment-length", type=int, default=25)
    p.add_argument("--steps", type=int, default=6000, help="random-policy steps in the fixed pool")
    p.add_argument("--train-episodes", type=int, default=4)
    p.add_argument("--held-out", type=int, default=1000, help="held-out oracle pairs")
    p.add_argument("--epochs", type=int, default=50, help="max epochs per refit (early stop at 97 %%)")
    p.add_argument("--out", default="benchmarks/query_gating")
    p.add_argument("--smoke", action="store_true", help="tiny sizes: checks the script, measures nothing")
    a = p.parse_args(argv)
    if a.smoke:
        a.rounds, a.per_round, a.steps, a.train_episodes, a.held_out, a.epochs = 2, 4, 300, 2, 40, 3
        a.segment_length, a.task = 10, "mujoco/Reacher-v5"
    from pbrl.queries import SELECTORS as ALL

    bad = [s for s in a.selectors if s not in ALL]
    errors = []
    if bad:
        errors.append(f"unknown selector(s) {bad}; choose from {list(ALL)}")
    for k in ("rounds", "per_round", "large_batch", "segment_length", "steps", "train_episodes", "held_out", "epochs"):
        if getattr(a, k) < 1:
            errors.append(f"--{k.replace('_', '-')} must be >= 1, got {getattr(a, k)}")
    if a.epsilon is not None and not 0.0 <= a.epsilon < 1.0:
        errors.append(f"--epsilon must be in [0, 1), got {a.epsilon}")
    if errors:
        p.error(errors[0])
    return a


def _pool(a: argparse.Namespace):
    from pbrl.envs.collect import collect

    ds = collect(a.task, "random", n_steps=a.steps, seed=12345)
    eps = [t for t in ds.episodes() if len(t) >= a.segment_length]
    if len(eps) <= a.train_episodes:
        raise BadInput(f"{len(eps)} episodes of >= {a.segment_length} steps collected; raise --steps "
                         f"or lower --train-episodes")
    return eps[: a.train_episodes], eps[a.train_episodes:]


def _agreement(model, ta, tb, steps_obs, steps_act, steps_rew) -> dict[str, float]:
    ra, rb = model.segment_returns(ta).mean(0), model.segment_returns(tb).mean(0)
    true = tb.returns() > ta.returns()
    acc = float(np.mean((rb > ra) == true))
    pred = model.predict(steps_obs, steps_act)
    corr = float(np.corrcoef(pred, steps_rew)[0, 1]) if np.std(pred) > 0 else 0.0
    return {"accuracy": acc, "correlation": corr}


def run_one(name: str, seed: int, train, test, a: argparse.Namespace) -> list[dict[str, Any]]:
    from pbrl.agents.online_base import REWARD_MODEL_DEFAULTS
    from pbrl.preferences import PreferenceDataset
    from pbrl.queries import candidate_pairs, make_selector
    from pbrl.reward_models import RewardEnsemble, RewardTrainer
    from pbrl.segments import sample_segment_pairs
    from pbrl.teachers import make_teacher

    rng = np.random.default_rng(seed)
    ta, tb = sample_segment_pairs(test, a.held_out, a.segment_length, np.random.default_rng(10_000 + seed))
    s_obs = np.concatenate([t.obs for t in test])
    s_act = np.concatenate([t.act for t in test])
    s_rew = np.concatenate([t.reward for t in test])
    d = train[0]
    model = RewardEnsemble(d.obs.shape[1], d.act.shape[1], **{**REWARD_MODEL_DEFAULTS, "seed": seed})
    trainer = RewardTrainer(epochs=a.epochs)
    teacher = make_teacher("oracle", seed=seed)
    kw = {"epsilon": a.epsilon} if (a.epsilon is not None and name.startswith("gated_")) else {}
    selector, uniform = make_selector(name, **kw), make_selector("uniform")
    labels = PreferenceDataset.empty(a.segment_length, d.obs.shape[1], d.act.shape[1])
    rows, asked = [], 0
    for r in range(a.rounds):
        sel = uniform if r == 0 else selector
        n_cand = a.per_round if sel.name == "uniform" else a.per_round * a.large_batch
        ca, cb = candidate_pairs(train, n_cand, a.segment_length, rng)
        idx = sel.select(ca, cb, a.per_round, reward_model=model, labelled=labels, rng=rng)
        asked += len(idx)
        if len(idx):
            labels.append(ca[idx], cb[idx], teacher.label(ca[idx], cb[idx]))
            trainer.fit(model, labels)
        rows.append({"round": r, "asked": asked, "labels": len(labels), "gated": a.per_round - len(idx),
                     **_agreement(model, ta, tb, s_obs, s_act, s_rew)})
    return rows



def table(results: dict[str, dict[str, list]]) -> str:
    lines = ["| selector | labels used (mean) | gated (mean) | held-out pair accuracy | step-reward correlation |",
             "|---|---|---|---|---|"]
    for name, per_seed in results.items():
        last = [rows[-1] for rows in per_seed.values()]
        lab = np.mean([r["labels"] for r in last])
        gated = np.mean([sum(x["gated"] for x in rows) for rows in per_seed.values()])
        acc = [r["accuracy"] for r in last]
        cor = [r["correlation"] for r in last]
        lines.append(f"| {name} | {lab:.1f} | {gated:.1f} | {np.mean(acc):.3f} ({min(acc):.3f}-{max(acc):.3f}) | "
                     f"{np.mean(cor):.3f} ({min(cor):.3f}-{max(cor):.3f}) |")
    return "\n".join(lines)


def plot(results: dict[str, dict[str, list]], path: Path) -> Path:
    from pbrl.plots import plot_curves

    curves = {}
    for name, per_seed in results.items():
        lab = np.array([[x["labels"] for x in rows] for rows in per_seed.values()], dtype=np.float64)
        acc = np.array([[x["accuracy"] for x in rows] for rows in per_seed.values()], dtype=np.float64)
        curves[name] = (lab.mean(0), acc.mean(0), acc.min(0), acc.max(0))
    return plot_curves(curves, path, xlabel="labels used", ylabel="held-out pair accuracy",
                       title="reward accuracy per label (band: min-max over seeds)")


def main(argv=None) -> dict[str, Any]:
    a = parse_args(argv)
    import torch

    torch.set_num_threads(1)
    t0 = time.process_time()
    train, test = _pool(a)
    results = {name: {str(s): run_one(name, s, train, test, a) for s in a.seeds} for name in a.selectors}
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    payload = {**provenance(), "args": vars(a),
               "cpu_seconds": time.process_time() - t0, "results": results}
    (out / "query_gating.json").write_text(json.dumps(payload, indent=1))
    plot(results, out / "query_gating.png")
    print(table(results))
    print(f"CPU time {payload['cpu_seconds']:.0f} s; wrote {out / 'query_gating.json'} and {out / 'query_gating.png'}")
    return payload


if __name__ == "__main__":
    main()
