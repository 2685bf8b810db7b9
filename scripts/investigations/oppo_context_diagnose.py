"""Why does OPPO fail where BC succeeds? Take apart the context that bench_offline's OPPO runs act with.

OPPO acts with ``pi(s, z*)``: ``z*`` is fitted by the triplet loss to lie nearer the preferred segments'
contexts than the dispreferred ones' (Kang et al. 2023, the preference-modelling objective), while the
policy only ever trains on contexts of dataset windows (hindsight information matching). If ``z*`` ends
up where no window's context lies, the policy is asked to extrapolate. For every finished ``oppo`` run
under ``--out`` (a ``scripts/bench_offline.py`` output folder) whose ``agent.pt`` is on disk, on the run's
own dataset, this measures:

* the geometry: ``||z*||``, the mean norm of the windows' contexts, the distance from ``z*`` to its
  nearest window context against the median distance between two window contexts, and the return
  percentile of the window nearest ``z*``;
* the Spearman correlation between a window's true return and its closeness to ``z*``
  (``-||E(tau) - z*||``): positive when ``z*`` points towards the better windows;
* the policy's evaluation (success rate, return; ``--episodes`` episodes, the run's evaluation seed 0)
  acting with three contexts: ``z*`` (what OPPO runs), the mean context of the top 10 % of windows by
  true return, and the context of the single best window.

Windows are ``--windows`` segments of the agent's context length drawn like oracle pairs
(``label_dataset``, seed ``20_000 + the run's seed``, never crossing an episode's end); their true returns
rank them. Prints a Markdown table and writes ``<out>/oppo_context.json`` (merged: rows of runs whose
agents are no longer on disk are kept) and ``<out>/oppo_context.png``. About a minute per run.

    .venv/bin/python scripts/investigations/oppo_context_diagnose.py                  # benchmarks/bench_offline
    .venv/bin/python scripts/investigations/oppo_context_diagnose.py --out DIR --episodes 5
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from pbrl.app.bench import BadInput

CONTEXTS = ("z_star", "top10_mean", "best_window")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="benchmarks/bench_offline", help="a scripts/bench_offline.py output folder")
    p.add_argument("--windows", type=int, default=2000, help="dataset windows encoded per run (even, >= 20)")
    p.add_argument("--episodes", type=int, default=10, help="evaluation episodes per context")
    a = p.parse_args(argv)
    if not Path(a.out).is_dir():
        raise BadInput(f"{a.out} is not a folder")
    if a.windows < 20 or a.windows % 2:
        raise BadInput(f"--windows must be an even number >= 20, got {a.windows}")
    if a.episodes < 1:
        raise BadInput(f"--episodes must be >= 1, got {a.episodes}")
    return a


def _spearman(x: np.ndarray, y: np.ndarray) -> float:
    rx, ry = np.argsort(np.argsort(x)), np.argsort(np.argsort(y))
    return float(np.corrcoef(rx, ry)[0, 1]) if rx.std() > 0 and ry.std() > 0 else float("nan")


def geometry(z: np.ndarray, returns: np.ndarray, z_star: np.ndarray, rng: np.random.Generator) -> dict[str, float]:
    """Where ``z_star`` lies among window contexts ``z [N, d]`` with true ``returns [N]``."""
    d = np.linalg.norm(z - z_star[None], axis=-1)
    i, j = rng.integers(0, len(z), size=(2, 4000))
    keep = i != j
    pairwise = np.linalg.norm(z[i[keep]] - z[j[keep]], axis=-1)
    nearest = int(np.argmin(d))
    return {
        "z_star_norm": float(np.linalg.norm(z_star)),
        "context_norm_mean": float(np.linalg.norm(z, axis=-1).mean()),
        "nearest_distance": float(d[nearest]),
        "median_pairwise_distance": float(np.median(pairwise)),
        "nearest_return_percentile": float((returns < returns[nearest]).mean() * 100),
        "spearman_closeness_return": _spearman(-d, returns),
    }


def contexts(z: np.ndarray, returns: np.ndarray, z_star: np.ndarray) -> dict[str, np.ndarray]:
    top = returns >= np.quantile(returns, 0.9)
    return {"z_star": z_star, "top10_mean": z[top].mean(0), "best_window": z[int(np.argmax(returns))]}


def measure_run(run_dir: Path, n_windows: int, episodes: int) -> dict[str, Any] | None:
    """One finished OPPO run's geometry and evaluations (``None`` when it is not one, or has no agent.pt)."""
    import torch

    from pbrl.agents import OPPO
    from pbrl.app.config import config_from_dict
    from pbrl.app.train_offline import offline_data
    from pbrl.envs import make_env
    from pbrl.envs.datasets import label_dataset
    from pbrl.teachers import make_teacher

    if run_dir.name.split("__")[0] != "oppo" or not (run_dir / "metrics.json").exists() or not (run_dir / "agent.pt").exists():
        return None
    cfg = config_from_dict(json.loads((run_dir / "config.json").read_text()))
    ds = offline_data(cfg)
    agent = OPPO.load(run_dir / "agent.pt")
    seed = 20_000 + int(cfg.seed)
    k = agent.context_length or 20
    pairs = label_dataset(ds, make_teacher("oracle", seed=seed), n_windows // 2, segment_length=k, seed=seed)
    obs = np.concatenate([pairs.a.obs, pairs.b.obs])
    act = np.concatenate([pairs.a.act, pairs.b.act])
    returns = np.concatenate([pairs.a.reward.sum(-1), pairs.b.reward.sum(-1)]).astype(np.float64)
    z = agent.context_of(obs, act).astype(np.float64)
    z_star = agent.optimal_context.astype(np.float64)
    out: dict[str, Any] = {"run": run_dir.name, "dataset": run_dir.parent.name, "seed": int(cfg.seed),
                           "windows": int(len(z)), "context_length": int(k)}
    out.update(geometry(z, returns, z_star, np.random.default_rng(seed)))
    param = agent.nets["z_star"].z
    saved = param.detach().clone()
    try:
        for name, c in contexts(z, returns, z_star).items():
            with torch.no_grad():
                param.copy_(torch.as_tensor(c, dtype=param.dtype))
            ev = agent.evaluate(make_env(cfg.task, seed=0), n_episodes=episodes, dataset=ds, seed=0)
            out[f"{name}_success"] = float(ev["success_rate"])
            out[f"{name}_return"] = float(ev["mean_return"])
            print(f"[oppo] {run_dir.parent.name}/{run_dir.name} with {name}: success {ev['success_rate']:.2f}, "
                  f"return {ev['mean_return']:.1f}", flush=True)
    finally:
        with torch.no_grad():
            param.copy_(saved)
    return out


def markdown(rows: list[dict[str, Any]]) -> str:
    lines = ["| run | ‖z*‖ | mean ‖z‖ | z* to nearest window / median pair distance | nearest window's return percentile | "
             "Spearman(closeness to z*, return) | success (return) with z* | with top-10 % mean | with best window |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        evs = " | ".join(f"{r[f'{c}_success'] * 100:.0f} % ({r[f'{c}_return']:.0f})" for c in CONTEXTS)
        lines.append(f"| {r['dataset']}/{r['run']} | {r['z_star_norm']:.2f} | {r['context_norm_mean']:.2f} | "
                     f"{r['nearest_distance']:.2f} / {r['median_pairwise_distance']:.2f} | "
                     f"{r['nearest_return_percentile']:.0f} | {r['spearman_closeness_return']:.2f} | {evs} |")
    return "\n".join(lines)


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    x = np.arange(len(rows))
    for j, c in enumerate(CONTEXTS):
        axes[0].bar(x + (j - 1) * 0.27, [r[f"{c}_success"] * 100 for r in rows], width=0.26, label=c)
        axes[1].bar(x + (j - 1) * 0.27, [r[f"{c}_return"] for r in rows], width=0.26, label=c)
    for ax, t in zip(axes, ("success %", "return")):
        ax.set_xticks(x)
        ax.set_xticklabels([f"{r['dataset'].split('_')[1]}\ns{r['seed']}" for r in rows], fontsize=7)
        ax.set_title(f"OPPO's policy: {t} by context")
        ax.grid(axis="y", alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None) -> list[dict[str, Any]]:
    a = parse_args(argv)
    out = Path(a.out)
    saved_file = out / "oppo_context.json"
    saved = {f"{r['dataset']}/{r['run']}": r for r in json.loads(saved_file.read_text())["runs"]} if saved_file.exists() else {}
    fresh = {}
    for d in sorted(d for ds in out.iterdir() if ds.is_dir() for d in ds.iterdir() if d.is_dir()):
        r = measure_run(d, a.windows, a.episodes)
        if r is not None:
            fresh[f"{d.parent.name}/{d.name}"] = r
    rows = [r for _, r in sorted({**saved, **fresh}.items())]
    if not rows:
        raise BadInput(f"no finished oppo runs with agent.pt under {out}")
    from pbrl.io import atomic_write

    with atomic_write(saved_file, suffix=".json") as tmp:
        tmp.write_text(json.dumps({"windows": a.windows, "episodes": a.episodes, "runs": rows}, indent=2))
    plot(rows, out / "oppo_context.png")
    print(markdown(rows))
    return rows


if __name__ == "__main__":
    main()
