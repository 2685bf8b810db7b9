"""How good are the rewards MR+IQL and PT + IQL learned in ``scripts/bench_offline.py``? Fresh pairs, no training.

For every finished ``mriql`` and ``pt_iql`` run under ``--out`` (a bench_offline output folder) whose saved
agent (``agent.pt``) is on disk (it is not committed; a run finished on this machine has it), on the run's
own dataset:

* ``pair_accuracy``: the share of fresh oracle pairs (non-tied) that the learned model orders like the
  teacher, scoring a segment as the model's Bradley-Terry logit: the ensemble's summed mean reward, the
  Preference Transformer's attention-weighted score (Kim et al. 2023, Eq. 5). The pairs are drawn like
  the run's own (``label_dataset`` with ``n_pairs`` ``--pairs``, the run's segment length) with seed
  ``10_000 + the run's seed``, so they are not the training pairs; they come from the same dataset, so a
  fresh segment may overlap a training one;
* ``pearson``: the Pearson correlation, over every transition of the dataset, of the per-step reward the
  agent gave IQL (:meth:`agents.iql.MRIQL.learned_rewards`: the ensemble's mean ``r(s, a)``, the
  transformer's sliding-window relabelling) with the true reward (before MR+IQL's [0, 1] shift, which
  does not change a correlation);
* ``step_pair_accuracy``: the share of the same pairs ordered right by the sum of those per-step rewards
  over the segment, which is what the IQL critic sees. For the ensemble it is ``pair_accuracy``; for the
  transformer it tells whether its per-step read-out keeps what its segment score knows.

Prints a Markdown table (mean and per-seed values per dataset and row) and writes
``<out>/reward_quality.json`` and ``<out>/reward_quality.png``. The JSON file is merged, not replaced: the
saved rows of runs whose agents are no longer on disk (a fresh checkout has none) are kept. Seconds per run (the transformer's
relabelling of a dataset is most of it).

    .venv/bin/python scripts/investigations/offline_reward_quality.py                 # benchmarks/bench_offline
    .venv/bin/python scripts/investigations/offline_reward_quality.py --out DIR --pairs 500
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from pbrl.app.bench import BadInput

ROWS = ("mriql", "pt_iql")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="benchmarks/bench_offline", help="a scripts/bench_offline.py output folder")
    p.add_argument("--pairs", type=int, default=1000, help="fresh oracle pairs per run")
    a = p.parse_args(argv)
    if not Path(a.out).is_dir():
        raise BadInput(f"{a.out} is not a folder")
    if a.pairs < 1:
        raise BadInput(f"--pairs must be >= 1, got {a.pairs}")
    return a


def _segment_sums(rewards: np.ndarray, seg, true: np.ndarray) -> np.ndarray:
    """Sums of flat per-step ``rewards`` over each segment, from the segments' dataset start indices
    (``Segments.index``; checked against the segments' own true rewards)."""
    if seg.index is None or (np.asarray(seg.index) < 0).any():
        raise ValueError("the pairs carry no dataset start indices")
    idx = np.asarray(seg.index)[:, None] + np.arange(seg.obs.shape[1])[None, :]
    if not np.allclose(true[idx], seg.reward, atol=1e-5):
        raise ValueError("segment start indices do not match the dataset's rewards")
    return rewards[idx].sum(-1)


def _accuracy(score_a: np.ndarray, score_b: np.ndarray, label: np.ndarray) -> float:
    dec = label != 0.5
    return float(((score_b > score_a) == (label > 0.5))[dec].mean()) if dec.any() else float("nan")


def measure_run(run_dir: Path, n_pairs: int) -> dict[str, Any] | None:
    """The three numbers of one finished run (``None`` when it is not a finished MR+IQL / PT + IQL run with
    its agent on disk)."""
    from pbrl.agents import MRIQL
    from pbrl.app.config import config_from_dict
    from pbrl.app.train_offline import offline_data
    from pbrl.envs.datasets import label_dataset
    from pbrl.teachers import make_teacher

    row = run_dir.name.split("__")[0]
    if row not in ROWS or not (run_dir / "metrics.json").exists() or not (run_dir / "agent.pt").exists():
        return None
    cfg = config_from_dict(json.loads((run_dir / "config.json").read_text()))
    ds = offline_data(cfg)
    agent = MRIQL.load(run_dir / "agent.pt")
    seed = 10_000 + int(cfg.seed)
    pairs = label_dataset(ds, make_teacher("oracle", seed=seed), n_pairs, segment_length=cfg.segment_length, seed=seed)
    model = agent.reward_model
    if agent.reward_model_name == "transformer":
        sa, sb = model.segment_returns(pairs.a), model.segment_returns(pairs.b)
    else:
        sa = model.predict(pairs.a.obs, pairs.a.act).sum(-1)
        sb = model.predict(pairs.b.obs, pairs.b.act).sum(-1)
    r = np.asarray(agent.learned_rewards(ds), dtype=np.float64)
    true = np.asarray(ds.rewards, dtype=np.float64)
    step_a, step_b = _segment_sums(r, pairs.a, true), _segment_sums(r, pairs.b, true)
    return {"run": run_dir.name, "dataset": run_dir.parent.name, "row": row, "seed": int(cfg.seed),
            "reward_model": agent.reward_model_name, "n_pairs": int(len(pairs)),
            "pair_accuracy": _accuracy(sa, sb, pairs.label),
            "step_pair_accuracy": _accuracy(step_a, step_b, pairs.label),
            "pearson": float(np.corrcoef(r, true)[0, 1]) if true.std() > 0 else float("nan")}


def summarise(rows: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    """``{dataset: {row: {metric: mean, metric + "_seeds": [...]}}}``."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for r in rows:
        out.setdefault(r["dataset"], {}).setdefault(r["row"], {"seeds": []})["seeds"].append(r)
    for ds_rows in out.values():
        for cell in ds_rows.values():
            seeds = sorted(cell.pop("seeds"), key=lambda r: r["seed"])
            cell["seed"] = [r["seed"] for r in seeds]
            for m in ("pair_accuracy", "step_pair_accuracy", "pearson"):
                cell[f"{m}_seeds"] = [r[m] for r in seeds]
                cell[m] = float(np.mean(cell[f"{m}_seeds"]))
    return out


def _cell(c: dict[str, Any], m: str) -> str:
    return f"{c[m]:.3f} ({' '.join(f'{v:.2f}' for v in c[f'{m}_seeds'])})"


def markdown(summary: dict[str, dict[str, dict[str, Any]]]) -> str:
    lines = ["| dataset | row | seeds | pair accuracy (model's score) | pair accuracy (per-step sum, what IQL sees) | "
             "Pearson with the true reward |", "|---|---|---:|---:|---:|---:|"]
    for ds, cells in summary.items():
        for row, c in cells.items():
            lines.append(f"| {ds} | {row} | {len(c['seed'])} | {_cell(c, 'pair_accuracy')} | "
                         f"{_cell(c, 'step_pair_accuracy')} | {_cell(c, 'pearson')} |")
    return "\n".join(lines)


def plot(summary: dict[str, dict[str, dict[str, Any]]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = ("pair_accuracy", "step_pair_accuracy", "pearson")
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 3.4), squeeze=False)
    names = list(summary)
    for ax, m in zip(axes[0], metrics):
        for j, row in enumerate(ROWS):
            xs = [i + (j - 0.5) * 0.36 for i, ds in enumerate(names) if row in summary[ds]]
            vals = [summary[ds][row][m] for ds in names if row in summary[ds]]
            ax.bar(xs, vals, width=0.34, label=row)
            for x, ds in zip(xs, [d for d in names if row in summary[d]]):
                ax.scatter([x] * len(summary[ds][row][f"{m}_seeds"]), summary[ds][row][f"{m}_seeds"], color="k", s=8)
        ax.set_xticks(range(len(names)))
        ax.set_xticklabels([n.replace("_", "\n", 1) for n in names], fontsize=7)
        ax.set_title(m.replace("_", " "))
        ax.set_ylim(0 if m != "pearson" else -1, 1)
        ax.grid(axis="y", alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None) -> dict[str, Any]:
    a = parse_args(argv)
    out = Path(a.out)
    saved_file = out / "reward_quality.json"
    saved = {f"{r['dataset']}/{r['run']}": r for r in json.loads(saved_file.read_text())["runs"]} if saved_file.exists() else {}
    runs = sorted(d for ds in out.iterdir() if ds.is_dir() for d in ds.iterdir() if d.is_dir())
    fresh = {}
    for d in runs:
        r = measure_run(d, a.pairs)
        if r is not None:
            fresh[f"{d.parent.name}/{d.name}"] = r
            print(f"[reward] {d.parent.name}/{d.name}: pair accuracy {r['pair_accuracy']:.3f}, per-step "
                  f"{r['step_pair_accuracy']:.3f}, Pearson {r['pearson']:.3f}", flush=True)
    kept = set(saved) - set(fresh)
    if kept:
        print(f"[reward] kept the saved rows of {len(kept)} runs whose agents are not on disk", flush=True)
    rows = [r for _, r in sorted({**saved, **fresh}.items())]
    if not rows:
        raise BadInput(f"no finished mriql / pt_iql runs with agent.pt under {out}")
    summary = summarise(rows)
    from pbrl.io import atomic_write

    with atomic_write(out / "reward_quality.json", suffix=".json") as tmp:
        tmp.write_text(json.dumps({"pairs": a.pairs, "summary": summary, "runs": rows}, indent=2))
    plot(summary, out / "reward_quality.png")
    print(markdown(summary))
    print(f"wrote {out / 'reward_quality.json'} and {out / 'reward_quality.png'}")
    return {"summary": summary, "runs": rows}


if __name__ == "__main__":
    main()
