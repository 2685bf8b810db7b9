"""Why DPPO does not learn on a small Hopper build: the predictor, the contrastive loss, or the data.

DPPO (An et al., NeurIPS 2023; ``agents/dppo.py``) scores every window of the dataset with a preference
predictor and trains a deterministic policy with the contrastive loss ``softplus((d_i - lambda d_j) / T)``
over the batch's better/worse pairs. Its sanity run on a small Hopper build (docs/agents/dppo.md) did not
learn. This script trains variants that share everything else (data, labels, seed, network, optimiser,
256 windows per update) and measures each at every evaluation:

* the **return** of the deterministic policy (``--eval-episodes`` episodes, the same seeds every time);
* the evaluation episodes' mean **length** (Hopper ends an episode when the hopper falls);
* the policy's **distance** ``d`` (DPPO's, mean over steps of ``||pi(s) - a|| / 2``) to every scored window,
  averaged over the windows whose true return is in the top quarter and in the bottom quarter, over the
  windows that start in the first 5 steps of an episode (``d_start``: the states an evaluation starts from),
  and over all; the zero action's and the data's mean action's distances are printed for reference.

Before training it measures what a window's score depends on: the mean quantile of the true window return
(and of the predictor's score, for ``pred-lam1``) by the window's start offset in its episode.

Variants (``--variants``):

* ``pred-lam1``: DPPO as shipped (the predictor at ``--predictor-size`` for ``--predictor-epochs``), lambda 1;
* ``true-lam1``: the predictor replaced by each window's true return (the authors' scripted score, the sum
  of the window's rewards): what the contrastive loss does with a perfect score;
* ``true-lam0.5``: the same at lambda 0.5;
* ``bc``: the pull alone, ``mean_i d_i`` over the same windows (behaviour cloning with DPPO's distance);
* ``bc-top50``: the pull alone over the windows whose true return is above the median (filtered BC);
* ``phase-lam1``: DPPO at lambda 1 on the true window return minus the mean true return of the windows with
  the same start offset in their episodes (a diagnostic, not DPPO: it removes the score's dependence on
  where in an episode a window lies, to test whether that dependence is what breaks the policy);
* ``phase-lam0.5``: the same at lambda 0.5 (both properties removed: the phase and the missing pull).

Each finished variant is written to ``<out>/<variant>.json`` and skipped on a rerun; the summary goes to
``<out>/dppo_diagnose.json`` and ``.png``, and a Markdown table is printed::

    python scripts/investigations/dppo_diagnose.py --dataset data/mujoco_Hopper-v5/medium-expert.hdf5 \\
        --steps 3000 --eval-every 500
    python scripts/investigations/dppo_diagnose.py --report-only
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

VARIANTS = ("pred-lam1", "true-lam1", "true-lam0.5", "bc", "bc-top50", "phase-lam1", "phase-lam0.5")
OFFSET_BINS = (0, 5, 10, 20, 30, 45, 60, 1000)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", default="data/mujoco_Hopper-v5/medium-expert.hdf5")
    p.add_argument("--labels", default=None, help="labelled pairs (default: <dataset>.prefs_oracle_300.h5)")
    p.add_argument("--task", default="mujoco/Hopper-v5", help="evaluation env")
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--eval-every", type=int, default=500)
    p.add_argument("--eval-episodes", type=int, default=5)
    p.add_argument("--hidden", type=int, nargs="+", default=[256, 256])
    p.add_argument("--predictor-size", default="small", choices=("small", "paper"))
    p.add_argument("--predictor-epochs", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="benchmarks/dppo_diagnose")
    p.add_argument("--report-only", action="store_true")
    args = p.parse_args(argv)
    if args.report_only:
        if not (Path(args.out) / "dppo_diagnose.json").exists():
            p.error(f"--report-only: no {Path(args.out) / 'dppo_diagnose.json'}; run without --report-only first")
        return args
    if args.steps < 1 or not 1 <= args.eval_every <= args.steps:
        p.error(f"--steps must be >= 1 and --eval-every in [1, --steps], got {args.steps} and {args.eval_every}")
    if args.eval_episodes < 1 or args.predictor_epochs < 1:
        p.error("--eval-episodes and --predictor-epochs must be >= 1")
    labels = args.labels or str(Path(args.dataset).with_suffix("")) + ".prefs_oracle_300.h5"
    for flag, path in (("--dataset", args.dataset), ("--labels", labels)):
        if not Path(path).is_file():
            p.error(f"{flag}: no file {path}; build one with scripts/make_datasets.py (docs/offline_data.md)")
    args.labels = labels
    return args


# ---------------------------------------------------------------------------------------------- agents
def _agent_class(loss: str, keep_top: float | None) -> type:
    """A DPPO subclass whose windows are scored by their true return (``loss != "dppo-pred"``), optionally
    kept only above a quantile of it, and trained either on DPPO's loss or on the pull alone."""
    from pbrl.agents.dppo import DPPO, dppo_distances, window_starts

    class Variant(DPPO):
        def score_windows(self, dataset: Any, H: int) -> tuple[np.ndarray, np.ndarray]:
            if loss == "dppo-pred":
                return super().score_windows(dataset, H)
            start, low, _ = window_starts(*dataset.episode_bounds, H)
            score = true_window_returns(dataset, start, H)
            if loss == "dppo-phase":
                score = score - phase_means(score, start - low)
            if keep_top is not None:
                keep = score > np.quantile(score, keep_top)
                start, score = start[keep], score[keep]
            return start, score.astype(np.float32)

        def _update_on(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
            if loss != "bc":
                return super()._update_on(batch)

            def pull() -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
                d = dppo_distances(self.nets["policy"](batch["obs"]), batch["act"])
                return d.mean(), {"distance": d.mean()}

            value, logs = self._step("policy", pull)
            return {"policy_loss": value, **logs}

    return Variant


SPECS: dict[str, dict[str, Any]] = {
    "pred-lam1": dict(loss="dppo-pred", lam=1.0, keep_top=None),
    "true-lam1": dict(loss="dppo-true", lam=1.0, keep_top=None),
    "true-lam0.5": dict(loss="dppo-true", lam=0.5, keep_top=None),
    "bc": dict(loss="bc", lam=1.0, keep_top=None),
    "bc-top50": dict(loss="bc", lam=1.0, keep_top=0.5),
    "phase-lam1": dict(loss="dppo-phase", lam=1.0, keep_top=None),
    "phase-lam0.5": dict(loss="dppo-phase", lam=0.5, keep_top=None),
}


def phase_means(score: np.ndarray, offset: np.ndarray) -> np.ndarray:
    """``[N]`` the mean of ``score`` over the windows with the same start ``offset`` in their episode."""
    sums = np.bincount(offset, weights=score)
    counts = np.bincount(offset)
    return (sums / np.maximum(counts, 1))[offset]


def quantile_by_offset(score: np.ndarray, offset: np.ndarray) -> dict[str, float]:
    """The mean quantile (0 = worst, 1 = best) of ``score`` over the windows in each start-offset bin."""
    q = np.argsort(np.argsort(score, kind="stable"), kind="stable") / max(1, len(score) - 1)
    out = {}
    for a, b in zip(OFFSET_BINS[:-1], OFFSET_BINS[1:]):
        m = (offset >= a) & (offset < b)
        if m.any():
            out[f"{a}-{b - 1}"] = float(q[m].mean())
    return out


def true_window_returns(dataset: Any, start: np.ndarray, H: int) -> np.ndarray:
    """``[N]`` the sum of the true rewards of each window of ``H`` steps starting at ``start``."""
    c = np.concatenate([[0.0], np.cumsum(np.asarray(dataset.rewards, np.float64))])
    return c[start + H] - c[start]


def window_distances(agent: Any, dataset: Any, start: np.ndarray, H: int) -> np.ndarray:
    """``[N]`` DPPO's distance of the agent's policy to each window (no gradient, eval mode)."""
    from pbrl.agents.dppo import dppo_distances

    obs = agent.tensor(agent._norm_obs_np(np.asarray(dataset.observations, np.float32)))
    act = agent.tensor(agent._act_to_unit(np.asarray(dataset.actions, np.float32)))
    policy = agent.nets["policy"].eval()
    with torch.no_grad():
        pred = policy(obs)
    rows = torch.as_tensor(start[:, None] + np.arange(H))
    return dppo_distances(pred[rows], act[rows]).numpy()


# ---------------------------------------------------------------------------------------------- one run
def run_variant(name: str, args: argparse.Namespace, ds: Any, prefs: Any) -> dict[str, Any]:
    from pbrl.agents.dppo import window_starts
    from pbrl.envs.evaluation import evaluate_policy_episodes

    spec = SPECS[name]
    cls = _agent_class(spec["loss"], spec["keep_top"])
    agent = cls.from_dataset(ds, seed=args.seed, lam=spec["lam"], hidden=tuple(args.hidden),
                             predictor_kwargs={"size": args.predictor_size}, predictor_epochs=args.predictor_epochs)
    if spec["loss"] != "dppo-pred":
        agent.predictor_fitted = True  # the predictor is not used: skip its fit
    H = int(prefs.segment_length)
    start, low, _ = window_starts(*ds.episode_bounds, H)
    ret = true_window_returns(ds, start, H)
    top, bottom = ret >= np.quantile(ret, 0.75), ret <= np.quantile(ret, 0.25)
    first = (start - low) < 5
    rows: list[dict[str, Any]] = []
    extra: dict[str, Any] = {}
    cpu0 = time.process_time()

    def measure(a: Any, step: int, losses: dict[str, float]) -> None:
        if step % args.eval_every and step != args.steps:
            return
        d = window_distances(a, ds, start, H)
        ev = evaluate_policy_episodes(a, args.task, n_episodes=args.eval_episodes, deterministic=True, seed=0)
        rows.append({"step": step, "mean_return": float(ev["mean_return"]), "mean_length": float(ev["mean_length"]),
                     "d_all": float(d.mean()), "d_top": float(d[top].mean()), "d_bottom": float(d[bottom].mean()),
                     "d_start": float(d[first].mean()),
                     "loss": float(losses.get("policy_loss", np.nan)), "cpu_s": time.process_time() - cpu0})
        r = rows[-1]
        print(f"  {name} {step:>6}: return {r['mean_return']:7.1f} (length {r['mean_length']:5.1f})  d top/bottom/"
              f"start/all {r['d_top']:.3f}/{r['d_bottom']:.3f}/{r['d_start']:.3f}/{r['d_all']:.3f}", flush=True)

    agent.fit(ds, prefs, steps=args.steps, callback=measure, progress=False)
    if spec["loss"] == "dppo-pred":
        _, score = agent.score_windows(ds, H)
        extra = {"predictor_accuracy": float(agent.predictor_fit_info["accuracy"]),
                 "score_spearman_true": _spearman(score, ret),
                 "score_quantile_by_offset": quantile_by_offset(score, start - low)}
    return {"variant": name, **spec, "rows": rows, **extra, "cpu_s": time.process_time() - cpu0,
            "n_windows": int(len(start)), "window_length": H}


def _spearman(x: np.ndarray, y: np.ndarray) -> float:
    rx, ry = np.argsort(np.argsort(x)), np.argsort(np.argsort(y))
    return float(np.corrcoef(rx, ry)[0, 1])


def references(ds: Any, H: int) -> dict[str, float]:
    """Distances of the zero action and of the data's mean action to every window (unit action space)."""
    from pbrl.agents.dppo import DPPO, dppo_distances, window_starts

    unit = DPPO.from_dataset(ds)._act_to_unit(np.asarray(ds.actions, np.float32))
    start, _, _ = window_starts(*ds.episode_bounds, H)
    act = torch.as_tensor(unit)[torch.as_tensor(start[:, None] + np.arange(H))]
    zero = dppo_distances(torch.zeros_like(act), act).mean()
    mean = dppo_distances(torch.as_tensor(unit.mean(0)).expand_as(act), act).mean()
    return {"d_zero_action": float(zero), "d_mean_action": float(mean)}


# ---------------------------------------------------------------------------------------------- report
def report(summary: dict[str, Any], out: Path) -> None:
    print(f"\nreferences: d(zero action) {summary['references']['d_zero_action']:.3f}, "
          f"d(data's mean action) {summary['references']['d_mean_action']:.3f}")
    print("true window return, mean quantile by start offset: "
          + ", ".join(f"{k}: {v:.2f}" for k, v in summary["true_return_quantile_by_offset"].items()) + "\n")
    print("| variant | updates | return | episode length (last) | d top / bottom quarter / start (last) | CPU s |")
    print("|---|---|---|---|---|---|")
    for name, v in summary["variants"].items():
        steps = " / ".join(f"{r['step']:,}" for r in v["rows"])
        ret = " / ".join(f"{r['mean_return']:.1f}" for r in v["rows"])
        last = v["rows"][-1]
        print(f"| `{name}` | {steps} | {ret} | {last['mean_length']:.0f} | {last['d_top']:.3f} / {last['d_bottom']:.3f} / "
              f"{last['d_start']:.3f} | {v['cpu_s']:.0f} |")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    fig, ax = plt.subplots(1, 2, figsize=(10, 3.6))
    for name, v in summary["variants"].items():
        s = [r["step"] for r in v["rows"]]
        ax[0].plot(s, [r["mean_return"] for r in v["rows"]], marker="o", label=name)
        ax[1].plot(s, [r["d_all"] for r in v["rows"]], marker="o", label=name)
    ax[1].axhline(summary["references"]["d_zero_action"], color="k", ls=":", label="zero action")
    ax[0].set(xlabel="updates", ylabel="return", title="Hopper return")
    ax[1].set(xlabel="updates", ylabel="mean d to the windows", title="policy-data distance")
    ax[1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "dppo_diagnose.png", dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    out = Path(args.out)
    if args.report_only:
        summary = json.loads((out / "dppo_diagnose.json").read_text())
        report(summary, out)
        return summary
    from pbrl.agents.dppo import window_starts
    from pbrl.envs.datasets import load_dataset
    from pbrl.preferences import PreferenceDataset

    torch.set_num_threads(1)
    ds, prefs = load_dataset(args.dataset), PreferenceDataset.load(args.labels)
    out.mkdir(parents=True, exist_ok=True)
    variants: dict[str, Any] = {}
    for name in args.variants:
        f = out / f"{name}.json"
        if f.exists():
            variants[name] = json.loads(f.read_text())
            print(f"{name}: kept from {f}")
            continue
        print(f"{name}: training", flush=True)
        variants[name] = run_variant(name, args, ds, prefs)
        f.write_text(json.dumps(variants[name], indent=1))
    H = int(prefs.segment_length)
    start, low, _ = window_starts(*ds.episode_bounds, H)
    summary = {"args": {k: v for k, v in vars(args).items() if k != "report_only"},
               "references": references(ds, H),
               "true_return_quantile_by_offset": quantile_by_offset(true_window_returns(ds, start, H), start - low),
               "variants": variants}
    (out / "dppo_diagnose.json").write_text(json.dumps(summary, indent=1))
    report(summary, out)
    return summary


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
