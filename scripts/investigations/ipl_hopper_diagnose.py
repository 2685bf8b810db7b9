"""Why IPL falls over on Hopper medium-replay: reward quality, reward level, and the policy's weights.

``scripts/offline_curve.py`` shows IPL's Hopper medium-replay policy ending every episode within about five
steps from about 1,500 updates on, in both seeds, where IQL on the true reward and MR+IQL keep hopping.
This script separates the parts of IPL (Hejna & Sadigh 2023) on that dataset and its 500 oracle pairs
(``scripts/make_datasets.py``'s files) with one seed, by training variants that share everything else and
measuring, at each evaluation:

* **reward quality**: Pearson correlation of IPL's implicit reward ``r_Q = Q(s, a) - gamma (1 - d) V(s')``
  with the true reward over every dataset transition, and the Bradley-Terry accuracy of ``r_Q``'s segment
  sums on held-out pairs (the 2,000-pair file of the same dataset, labelled with another seed);
* **reward level**: the mean of ``r_Q`` over the dataset. Hopper's true reward is about +1 per step alive,
  so most of its return is survival; a Bradley-Terry model of equal-length segments cannot see a constant
  shift, and IPL's chi^2 term pulls ``r_Q`` towards 0, so nothing gives staying alive a positive value;
* the **return** of the deterministic policy (``--eval-episodes`` episodes).

Variants (``--variants``): ``ipl`` (the defaults); ``ipl-beta0`` (AWR inverse temperature 0: the same
critic, whose training does not read the policy, and plain behaviour cloning on IPL's 50/50 mixture of
preference and unlabelled transitions, so any difference in return comes from the advantage weights);
``ipl-no-terminals`` (every terminal flag cleared, in the data and in the segments: does the collapse need
the terminal transitions at all?).

Writes ``<out>/ipl_hopper_diagnose.json`` and ``.png`` and prints a Markdown table.

    python scripts/investigations/ipl_hopper_diagnose.py                          # 3,000 updates x 3 variants, ~15 CPU-min
    python scripts/investigations/ipl_hopper_diagnose.py --report-only            # the table of the saved results
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

VARIANTS = ("ipl", "ipl-beta0", "ipl-no-terminals")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", default="data/datasets/mujoco_Hopper-v5/medium-replay.hdf5")
    p.add_argument("--labels", default=None, help="training pairs (default: <dataset>.prefs_oracle_500.h5)")
    p.add_argument("--held-out", default=None, help="held-out pairs (default: <dataset>.prefs_oracle_2000.h5)")
    p.add_argument("--task", default="mujoco/Hopper-v5", help="evaluation env")
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--eval-every", type=int, default=750)
    p.add_argument("--eval-episodes", type=int, default=3)
    p.add_argument("--hidden", type=int, nargs="+", default=[256, 256])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="benchmarks/ipl_hopper_diagnose")
    p.add_argument("--report-only", action="store_true")
    args = p.parse_args(argv)
    if not args.report_only:
        if args.steps < 1 or args.eval_every < 1 or args.eval_every > args.steps:
            p.error(f"--steps and --eval-every must be positive with --eval-every <= --steps, got {args.steps}, {args.eval_every}")
        base = args.dataset.rsplit(".", 1)[0]
        args.labels = args.labels or f"{base}.prefs_oracle_500.h5"
        args.held_out = args.held_out or f"{base}.prefs_oracle_2000.h5"
        for flag, path in (("--dataset", args.dataset), ("--labels", args.labels), ("--held-out", args.held_out)):
            if not Path(path).exists():
                p.error(f"{flag} {path} does not exist (run scripts/make_datasets.py first)")
    return args


def _variant_agent(name: str, ds: Any, args: argparse.Namespace) -> Any:
    from pbrl.agents import IPL

    class Variant(IPL):
        def _prepare(self, dataset: Any, preferences: Any) -> None:
            super()._prepare(dataset, preferences)
            if name == "ipl-no-terminals":
                self.data["dones"] = torch.zeros_like(self.data["dones"])
                for k in ("done_a", "done_b"):
                    self.prefs[k] = torch.zeros_like(self.prefs[k])

    kw: dict[str, Any] = {"beta": 0.0} if name == "ipl-beta0" else {}
    return Variant.from_dataset(ds, seed=args.seed, hidden=tuple(args.hidden), **kw)


def measure(agent: Any, held: dict[str, torch.Tensor]) -> dict[str, float]:
    """Reward quality and level of ``agent``'s implicit reward (see the module docstring)."""
    from pbrl.agents.ipl import implicit_reward, segment_logits

    def implicit(o: torch.Tensor, a: torch.Tensor, n: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
        return implicit_reward(agent.nets["q"](o, a).mean(0), agent.nets["v"](n), d, agent.gamma)

    with torch.no_grad():
        d = agent.data
        r = implicit(d["observations"], d["actions"], d["next_observations"], d["dones"]).numpy()
        ra = implicit(held["obs_a"], held["act_a"], held["next_a"], held["done_a"])
        rb = implicit(held["obs_b"], held["act_b"], held["next_b"], held["done_b"])
        logit = segment_logits(ra, rb, held["mask_a"], held["mask_b"]).numpy()
    lab = held["label"].numpy()
    strict = lab != 0.5
    true = d["rewards"].numpy()
    return {
        "reward_pearson": float(np.corrcoef(r, true)[0, 1]),
        "held_out_accuracy": float(((logit > 0) == (lab > 0.5))[strict].mean()),
        "reward_mean": float(r.mean()),
        "true_reward_mean": float(true.mean()),
    }


def run_variant(name: str, ds: Any, prefs: Any, held_prefs: Any, args: argparse.Namespace) -> list[dict[str, float]]:
    agent = _variant_agent(name, ds, args)
    rows: list[dict[str, float]] = []
    held: dict[str, torch.Tensor] | None = None
    done = 0
    while done < args.steps:
        n = min(args.eval_every, args.steps - done)
        agent.fit(ds, prefs, steps=n, progress=False)
        done += n
        if held is None:  # after the first fit: the agent's normalisation is set
            held = agent.preference_tensors(held_prefs, ds)
            if name == "ipl-no-terminals":
                held = {**held, "done_a": torch.zeros_like(held["done_a"]), "done_b": torch.zeros_like(held["done_b"])}
        ev = agent.evaluate(args.task, n_episodes=args.eval_episodes, seed=args.seed)
        row = {"step": done, "return": float(ev["mean_return"]), **measure(agent, held)}
        rows.append(row)
        print(name, json.dumps(row), flush=True)
    return rows


def markdown(result: dict[str, Any]) -> str:
    lines = ["| variant | update | return | r_Q vs true reward (Pearson) | held-out accuracy | mean r_Q |",
             "|---|---:|---:|---:|---:|---:|"]
    for name, rows in result["variants"].items():
        for r in rows:
            lines.append(f"| {name} | {r['step']} | {r['return']:.0f} | {r['reward_pearson']:+.2f} | "
                         f"{r['held_out_accuracy']:.2f} | {r['reward_mean']:+.3f} |")
    return "\n".join(lines)


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    for name, rows in result["variants"].items():
        s = [r["step"] for r in rows]
        axes[0].plot(s, [r["return"] for r in rows], marker="o", label=name)
        axes[1].plot(s, [r["reward_pearson"] for r in rows], marker="o", label=name)
        axes[2].plot(s, [r["reward_mean"] for r in rows], marker="o", label=name)
    axes[2].axhline(result.get("true_reward_mean", np.nan), color="k", ls=":", label="true reward")
    for ax, t in zip(axes, ("return (deterministic policy)", "Pearson(r_Q, true reward)", "mean r_Q over the data")):
        ax.set_title(t, fontsize=10)
        ax.set_xlabel("updates")
    axes[0].legend(fontsize=8)
    axes[2].legend(fontsize=8)
    fig.suptitle("IPL on Hopper medium-replay: an informative reward at level 0, and a policy that falls", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    out = Path(args.out)
    path = out / "ipl_hopper_diagnose.json"
    if args.report_only:
        if not path.exists():
            sys.exit(f"error: {path} does not exist; run without --report-only first")
        result = json.loads(path.read_text())
    else:
        from pbrl.envs.datasets import load_dataset
        from pbrl.preferences import PreferenceDataset

        torch.set_num_threads(1)
        ds = load_dataset(args.dataset)
        prefs, held = PreferenceDataset.load(args.labels), PreferenceDataset.load(args.held_out)
        t0 = time.process_time()
        result = {"dataset": args.dataset, "labels": args.labels, "held_out": args.held_out, "seed": args.seed,
                  "steps": args.steps, "variants": {}}
        for name in args.variants:
            result["variants"][name] = run_variant(name, ds, prefs, held, args)
        result["true_reward_mean"] = float(np.mean(ds.rewards))
        result["cpu_s"] = time.process_time() - t0
        out.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(result, indent=1))
        tmp.replace(path)
    plot(result, out / "ipl_hopper_diagnose.png")
    print(markdown(result))
    return result


if __name__ == "__main__":
    main()
