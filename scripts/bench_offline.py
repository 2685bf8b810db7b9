"""Benchmark pbrl's offline preference-based agents against IQL on the true reward.

For every dataset and seed, one set of preference labels is drawn (``label_dataset``: the oracle B-Pref
teacher by default, ``--n-pairs`` pairs of ``--segment-length`` steps, seeded by the seed) and every agent
trains on the same dataset and labels for the same number of gradient updates with the same seed:

* ``iql_true``: IQL on the dataset's true reward, the upper bound (no labels);
* ``bc``: behaviour cloning on all the data (no labels), the reference a preference agent has to beat;
* ``mriql``: MR + IQL (reward ensemble from the labels, then IQL);
* ``ipl``: Inverse Preference Learning on the IQL backbone;
* ``cpl``: Contrastive Preference Learning (policy only);
* ``cplbc``: CPL-BC (CPL plus behaviour cloning on the labelled segments, weight 10);
* ``iplawac``: IPL on the AWAC backbone (opt-in, like every registry agent not in ``DEFAULT_AGENTS``);
* ``oppo``: OPPO (context encoder, HIM, optimal context);
* ``pearl``: PEARL, zero target labels: its labels come from a *source* dataset (the next dataset of the
  same domain, Meta-World or locomotion, with a different task) transferred by Gromov-Wasserstein; skipped
  when the benchmark has no such source.

Each trained policy is evaluated on the live task (``--eval-episodes`` deterministic episodes). The score
is the success rate (%) on Meta-World datasets and the normalised score ``100 (R - min) / (max - min)``
on locomotion datasets whose metadata has reference returns (else the raw return). Reported per dataset
and agent: mean and standard deviation over seeds, the per-seed values, the ratio to IQL on the true
reward, and the wall time per 1k updates (the update loop only: reward-model fitting, label transfer and
evaluation excluded; one torch thread per run) with the CPU time of the same loop (which, unlike the wall
time, does not grow when other processes share the machine).

Writes ``<out>/bench_offline.json`` (atomically) and ``<out>/bench_offline.png`` (bars with spread per
dataset, plus the wall time per 1k updates of each agent), and prints the table. Finished runs are saved
to ``<out>/bench_offline.partial.json`` as they complete; ``--resume`` skips them after an interruption.
A run that raises is listed under ``"failures"`` with its error; the others go on.

Datasets are the files written by ``scripts/make_datasets.py`` (the ``<task>/<kind>.hdf5`` files under
``--data-dir`` whose kind is in ``--kinds``: ``medium-replay`` and ``scripted-noisy`` by default), or any ``--datasets`` given as D4RL-style HDF5 paths, local Minari ids, or
``collect:<task>:<policy>:<n_steps>`` specs collected on the spot (``policy`` as in
``pbrl.envs.datasets.collect``; the scripted Meta-World policy gets noise levels 0, 0.5 and 1).

The agents are the offline agents of :mod:`pbrl.agents.registry` (the one list; ``iql`` is the
``iql_true`` row here) and run at their own defaults, which are the papers' (``docs/hyperparameters.md``),
except for what this benchmark changes to fit 2 CPU cores in about an hour:

* 1,500 updates per run (``--steps``) instead of the papers' 0.1-1M;
* CPL and CPL-BC: 2 x 256 units and 32 pairs per update (``CPU_SIZES``; the authors' 2 x 512 and 96), BC
  with the same 2 x 256; their BC phase stays 40 % of the updates (the default ``bc_fraction``) and the CPL
  phase's lr warmup keeps its share of the run, 2 % (the authors' 10k of 500k updates; ``WARMUP_SHARE``);
* CPL-BC's BC weight is 10 instead of the authors' 1.0: the BC term is a mean over steps while the CPL
  term sums ``alpha log pi`` over the 50 steps of a segment, so 10 = ``2 alpha H`` gives a step the same
  pull from both;
* OPPO: 32 windows and 32 pairs per update (the authors' 64), its policy-lr warmup 10 % of the run (their
  10k of 100k updates);
* MR+IQL and PEARL: 100 reward-model epochs.

``--hidden`` replaces every agent's hidden layers and ``--agent-kwargs`` any argument. Timings in the
README were measured before these defaults changed (CPL's BC phase on the segments, OPPO's batch and
warmup); re-measure before quoting them. ``--agents ... pearl`` adds PEARL, whose one-off label transfer
and reward-model fits took 170-615 s wall per run in a smoke run on a shared machine (200 source pairs).
``bc`` is CPL's BC phase run for all the updates (on all the data), so the table shows what the
contrastive phase adds to it.

    python scripts/bench_offline.py                                  # defaults: about an hour on 2 CPU cores
    python scripts/bench_offline.py --steps 100000 --seeds 0 1 2 3 4 # larger budget
    python scripts/bench_offline.py --datasets collect:metaworld/reach-v3:scripted:3000 --steps 300 \\
        --seeds 0 --hidden 64 64 --eval-episodes 2                   # smoke run
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import numpy as np

from pbrl.agents.registry import agent_names, get_entry

#: the benchmark's own row names for registry agents where they differ ("iql" runs on the true reward here)
REGISTRY_NAME = {"iql_true": "iql"}
#: display labels of the rows (the registry's one-line summaries are longer)
LABELS = {
    "iql_true": "IQL (true reward)",
    "bc": "BC (no labels)",
    "mriql": "MR + IQL",
    "ipl": "IPL",
    "iplawac": "IPL (AWAC)",
    "cpl": "CPL",
    "cplbc": "CPL-BC",
    "oppo": "OPPO",
    "pearl": "PEARL (0 target labels)",
}
#: benchmark row -> registry name, for every offline agent of :mod:`pbrl.agents.registry` (the one list)
AGENTS: dict[str, str] = {
    next((row for row, reg in REGISTRY_NAME.items() if reg == name), name): name for name in agent_names("offline")
}
UPPER_BOUND = "iql_true"
#: dataset kinds of scripts/make_datasets.py benchmarked by default: D4RL-style medium-replay for each MuJoCo
#: task and the noisy scripted data of each Meta-World task (2 + 3 datasets with make_datasets' defaults)
DEFAULT_KINDS = ("medium-replay", "scripted-noisy")

#: what the benchmark changes on top of each agent's own (paper) defaults, to fit 2 CPU cores; --hidden and
#: --agent-kwargs override. Learning-rate warmups are scaled to the benchmark's budget in agent_kwargs.
CPU_SIZES = {"hidden": (256, 256), "pair_batch_size": 32}
DEFAULT_AGENT_KWARGS: dict[str, dict[str, Any]] = {
    "mriql": {"reward_epochs": 100},
    "pearl": {"reward_epochs": 100},
    "cpl": dict(CPU_SIZES),
    # the BC term is a mean over steps, the CPL term a sum of alpha log pi over the H = 50 steps of a segment:
    # weight 10 = 2 alpha H gives a step the same pull from both
    "cplbc": {**CPU_SIZES, "bc_coeff": 10.0},
    "bc": {"hidden": CPU_SIZES["hidden"]},
    "oppo": {"seg_batch_size": 32, "pair_batch_size": 32},
}
#: warmups as a share of the run: CPL's 10k-update lr warmup is 2 % of the authors' 500k updates, OPPO's 10k
#: is 10 % of theirs (100 x 1,000); the benchmark keeps those shares of --steps
WARMUP_SHARE = {"cpl": ("lr_warmup", 0.02), "cplbc": ("lr_warmup", 0.02), "oppo": ("warmup_steps", 0.10)}
#: agents run by default: PEARL's label transfer and reward fits cost 3-10 minutes per run, so it is opt-in
DEFAULT_AGENTS = ("iql_true", "bc", "mriql", "ipl", "cpl", "cplbc", "oppo")


def agent_class(row: str) -> type:
    """The class of benchmark row ``row``, from the registry."""
    return get_entry(AGENTS[row]).load()


def needs_labels(row: str) -> bool:
    return get_entry(AGENTS[row]).needs_preferences


# ---------------------------------------------------------------------------------------------- inputs


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--datasets", nargs="+", default=None,
                   help="HDF5 paths, Minari ids or collect:<task>:<policy>:<n_steps> (default: every *.hdf5 in --data-dir)")
    p.add_argument("--data-dir", default="data/datasets", help="where scripts/make_datasets.py wrote its files")
    p.add_argument("--kinds", nargs="+", default=list(DEFAULT_KINDS),
                   help="which of make_datasets' <task>/<kind>.hdf5 files to use when --datasets is not given "
                        "('all' for every file)")
    p.add_argument("--agents", nargs="+", default=list(DEFAULT_AGENTS),
                   help=f"subset of {list(AGENTS)} (default {list(DEFAULT_AGENTS)}; add pearl for PEARL)")
    p.add_argument("--steps", type=int, default=1500, help="gradient updates per agent and seed")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--n-pairs", type=int, default=500, help="labelled pairs per dataset and seed")
    p.add_argument("--segment-length", type=int, default=50)
    p.add_argument("--teacher", default="oracle", help="teacher preset of pbrl.teachers.make_teacher")
    p.add_argument("--eval-episodes", type=int, default=5)
    p.add_argument("--hidden", type=int, nargs="+", default=None, help="hidden layers of every agent's networks")
    p.add_argument("--agent-kwargs", default="{}", help='JSON {"cpl": {"bc_steps": 1000}, ...} merged over the defaults')
    p.add_argument("--workers", type=int, default=2, help="runs in parallel (processes, one torch thread each)")
    p.add_argument("--out", default="results")
    p.add_argument("--resume", action="store_true", help="reuse the finished runs saved in <out>/bench_offline.partial.json")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    check_args(args)
    return args


def check_args(args: argparse.Namespace) -> None:
    """One clear error for bad flags, before any work."""
    unknown = [a for a in args.agents if a not in AGENTS]
    if unknown:
        raise SystemExit(f"error: unknown agent(s) {unknown}; choose from {list(AGENTS)}")
    for name in ("steps", "n_pairs", "segment_length", "eval_episodes", "workers"):
        if getattr(args, name) < 1:
            raise SystemExit(f"error: --{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if not args.seeds:
        raise SystemExit("error: give at least one seed")
    if args.hidden is not None and any(h < 1 for h in args.hidden):
        raise SystemExit(f"error: --hidden sizes must be >= 1, got {args.hidden}")
    try:
        extra = json.loads(args.agent_kwargs)
    except json.JSONDecodeError as e:
        raise SystemExit(f"error: --agent-kwargs is not valid JSON ({e})") from None
    if not isinstance(extra, dict) or not all(isinstance(v, dict) for v in extra.values()):
        raise SystemExit('error: --agent-kwargs must be a JSON object of objects, e.g. {"cpl": {"bc_steps": 1000}}')
    bad = [k for k in extra if k not in AGENTS]
    if bad:
        raise SystemExit(f"error: --agent-kwargs names unknown agent(s) {bad}; choose from {list(AGENTS)}")
    args.agent_kwargs_dict = extra
    if args.datasets is None:
        found = sorted(Path(args.data_dir).glob("**/*.hdf5"))
        if "all" not in args.kinds:
            found = [f for f in found if f.stem in args.kinds]
        if not found:
            raise SystemExit(
                f"error: no datasets: {args.data_dir} has no *.hdf5 files of kinds {args.kinds}; run "
                "scripts/make_datasets.py first, choose --kinds, or pass --datasets (paths, Minari ids or "
                "collect:<task>:<policy>:<n_steps>)"
            )
        args.datasets = [str(f) for f in found]
    for spec in args.datasets:
        if spec.startswith("collect:"):
            parts = spec.split(":")
            if len(parts) != 4 or not parts[3].isdigit() or int(parts[3]) < 1:
                raise SystemExit(f"error: bad dataset spec '{spec}'; use collect:<task>:<policy>:<n_steps>")
        elif spec.endswith((".hdf5", ".h5")) and not Path(spec).exists():
            raise SystemExit(f"error: dataset file {spec} does not exist")


def agent_kwargs(agent: str, args: argparse.Namespace) -> dict[str, Any]:
    """The benchmark's kwargs for ``agent``: :data:`DEFAULT_AGENT_KWARGS`, then ``--hidden``, then
    ``--agent-kwargs``, then the warmups of :data:`WARMUP_SHARE` scaled to ``--steps`` unless given."""
    kw = dict(DEFAULT_AGENT_KWARGS.get(agent, {}))
    if args.hidden is not None:
        kw["hidden"] = tuple(args.hidden)
    kw.update(args.agent_kwargs_dict.get(agent, {}))
    if agent in WARMUP_SHARE:
        key, share = WARMUP_SHARE[agent]
        kw.setdefault(key, int(share * args.steps))
    return kw


def load_one(spec: str, seed: int = 0):
    """An ``OfflineDataset`` from a path / Minari id / ``collect:`` spec."""
    from pbrl.envs.datasets import collect, load_dataset

    if spec.startswith("collect:"):
        _, task, policy, n = spec.split(":")
        noise = [0.0, 0.5, 1.0] if policy == "scripted" else 0.0
        return collect(task, policy=policy, n_steps=int(n), seed=seed, noise=noise)
    return load_dataset(spec)


def dataset_name(ds, spec: str) -> str:
    return str(ds.metadata.get("dataset_id") or Path(spec).stem)


def domain(task: str | None) -> str:
    return "metaworld" if (task or "").startswith("metaworld/") else "locomotion"


def metric_of(ds) -> str:
    """``success_rate`` on Meta-World, ``normalized_score`` when reference returns are known, else ``return``."""
    if domain(ds.task_id) == "metaworld":
        return "success_rate"
    if ds.metadata.get("ref_min_return") is not None and ds.metadata.get("ref_max_return") is not None:
        return "normalized_score"
    return "return"


def pearl_source(names: list[str], tasks: list[str | None], i: int) -> int | None:
    """Index of PEARL's source dataset for target ``i``: the next dataset of the same domain with another task."""
    n = len(names)
    for k in range(1, n):
        j = (i + k) % n
        if domain(tasks[j]) == domain(tasks[i]) and tasks[j] != tasks[i]:
            return j
    return None


# ---------------------------------------------------------------------------------------------- one run


def _init_worker() -> None:
    import torch

    torch.set_num_threads(1)


def run_one(job: dict[str, Any]) -> dict[str, Any]:
    """Train one agent on one dataset with one seed and evaluate it; returns a flat record."""
    import torch

    torch.set_num_threads(1)
    Agent = agent_class(job["agent"])
    ds, prefs = job["dataset"], job["preferences"]
    t0 = time.perf_counter()
    agent = Agent.from_dataset(ds, seed=job["seed"], **job["kwargs"])
    clock: dict[str, float] = {}

    def tick(_agent, step, _losses):  # CPU time of the update loop only (this process, one torch thread)
        clock.setdefault("first", time.process_time())
        clock["last"], clock["n"] = time.process_time(), clock.get("n", -1) + 1

    info = agent.fit(ds, prefs, steps=job["steps"], progress=False, callback=tick)
    fit_wall = time.perf_counter() - t0
    cpu_per_1k = 1000.0 * (clock["last"] - clock["first"]) / clock["n"] if clock.get("n", 0) > 0 else None
    ev = agent.evaluate(ds.task_id, n_episodes=job["eval_episodes"], dataset=ds, seed=10_000 + job["seed"])
    metric = job["metric"]
    if metric == "success_rate":
        value = 100.0 * ev["success_rate"]
    elif metric == "normalized_score":
        value = ev["normalized_score"]
    else:
        value = ev["mean_return"]
    return {
        "dataset": job["dataset_name"],
        "agent": job["agent"],
        "seed": job["seed"],
        "metric": metric,
        "value": float(value),
        "mean_return": float(ev["mean_return"]),
        "success_rate": float(ev["success_rate"]),
        "normalized_score": None if ev["normalized_score"] is None else float(ev["normalized_score"]),
        "steps": int(info["steps"]),
        "wall_s_per_1k_updates": 1000.0 * float(info["wall_time_s"]) / max(int(info["steps"]), 1),
        "cpu_s_per_1k_updates": cpu_per_1k,
        "fit_wall_s": fit_wall,
        "final_losses": {k: float(v) for k, v in info["losses"].items()},
        "transfer_accuracy": info.get("transfer_accuracy"),
    }


def run_one_safe(job: dict[str, Any]) -> dict[str, Any]:
    """:func:`run_one`, but a failing run becomes a record with ``"error"`` instead of ending the benchmark."""
    try:
        return run_one(job)
    except Exception as e:  # noqa: BLE001 - any agent error is reported, the other runs go on
        return {"dataset": job["dataset_name"], "agent": job["agent"], "seed": job["seed"],
                "error": f"{type(e).__name__}: {e}"}


# ---------------------------------------------------------------------------------------------- table


def summarise(runs: list[dict[str, Any]], agents: list[str], names: list[str], threshold: float = 0.8) -> dict[str, Any]:
    """Per dataset and agent: mean / std / per-seed values, ratio to the upper bound; timing; target counts."""
    results: dict[str, dict[str, Any]] = {}
    for name in names:
        results[name] = {}
        for a in agents:
            rs = sorted((r for r in runs if r["dataset"] == name and r["agent"] == a), key=lambda r: r["seed"])
            if not rs:
                continue
            vals = np.array([r["value"] for r in rs], dtype=np.float64)
            results[name][a] = {
                "metric": rs[0]["metric"],
                "mean": float(vals.mean()),
                "std": float(vals.std()),
                "per_seed": vals.tolist(),
                "seeds": [r["seed"] for r in rs],
                "mean_return": float(np.mean([r["mean_return"] for r in rs])),
                "success_rate": float(np.mean([r["success_rate"] for r in rs])),
                "wall_s_per_1k_updates": float(np.mean([r["wall_s_per_1k_updates"] for r in rs])),
                "cpu_s_per_1k_updates": (float(np.mean([r["cpu_s_per_1k_updates"] for r in rs]))
                                         if all(r.get("cpu_s_per_1k_updates") is not None for r in rs) else None),
            }
        ub = results[name].get(UPPER_BOUND)
        for a, row in results[name].items():
            row["ratio_to_iql_true"] = (
                row["mean"] / ub["mean"] if ub is not None and ub["mean"] > 0 and a != UPPER_BOUND else None
            )
            # a secondary comparison on the raw return (informative where success rates are all 0 or 100)
            row["return_ratio_to_iql_true"] = (
                row["mean_return"] / ub["mean_return"]
                if ub is not None and ub["mean_return"] > 0 and a != UPPER_BOUND else None
            )
    timing = {}
    for a in agents:
        t = [r["wall_s_per_1k_updates"] for r in runs if r["agent"] == a]
        c = [r["cpu_s_per_1k_updates"] for r in runs if r["agent"] == a and r.get("cpu_s_per_1k_updates") is not None]
        if t:
            timing[a] = {"mean": float(np.mean(t)), "std": float(np.std(t)), "n_runs": len(t),
                         "cpu_mean": float(np.mean(c)) if c else None}
    target = {}
    for a in agents:
        if a == UPPER_BOUND:
            continue
        hits = [n for n in names if (results[n].get(a) or {}).get("ratio_to_iql_true") is not None
                and results[n][a]["ratio_to_iql_true"] >= threshold]
        target[a] = {"datasets_at_or_above": hits, "count": len(hits)}
    return {"results": results, "timing_s_per_1k_updates": timing, "target": {"threshold": threshold, "per_agent": target}}


def print_table(summary: dict[str, Any], agents: list[str], names: list[str]) -> str:
    cols = [a for a in agents if any(a in summary["results"][n] for n in names)]
    width = max([len(n) for n in names] + [8])
    lines = ["dataset".ljust(width) + " metric            " + "".join(f"{a:>18}" for a in cols)]
    for n in names:
        row = summary["results"][n]
        metric = next(iter(row.values()))["metric"] if row else "-"
        cells = "".join(
            (f"{row[a]['mean']:>10.1f} ±{row[a]['std']:>6.1f}" if a in row else f"{'-':>18}") for a in cols
        )
        lines.append(n.ljust(width) + f" {metric:<17} " + cells)
    t = summary["timing_s_per_1k_updates"]
    lines.append("wall s / 1k upd".ljust(width) + " " + " " * 17 + " " + "".join(
        (f"{t[a]['mean']:>18.2f}" if a in t else f"{'-':>18}") for a in cols))
    lines.append("cpu s / 1k upd".ljust(width) + " " + " " * 17 + " " + "".join(
        (f"{t[a]['cpu_mean']:>18.2f}" if a in t and t[a]["cpu_mean"] is not None else f"{'-':>18}") for a in cols))
    text = "\n".join(lines)
    print(text)
    return text


def plot(summary: dict[str, Any], agents: list[str], names: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(names) + 1
    ncol = min(n, 3)
    nrow = math.ceil(n / ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(4.8 * ncol, 3.6 * nrow), squeeze=False)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for k, name in enumerate(names):
        ax = axes[k // ncol][k % ncol]
        row = summary["results"][name]
        present = [a for a in agents if a in row]
        x = np.arange(len(present))
        ax.bar(x, [row[a]["mean"] for a in present], yerr=[row[a]["std"] for a in present], capsize=3,
               color=[colors[agents.index(a) % len(colors)] for a in present])
        ax.set_xticks(x, [a for a in present], rotation=30, ha="right", fontsize=8)
        metric = row[present[0]]["metric"] if present else ""
        ax.set_ylabel({"success_rate": "success rate (%)", "normalized_score": "normalised score"}.get(metric, "return"))
        ax.set_title(name, fontsize=9)
        if UPPER_BOUND in row:
            ax.axhline(0.8 * row[UPPER_BOUND]["mean"], color="k", ls="--", lw=0.8, label="80% of IQL (true r)")
            ax.legend(fontsize=7)
    ax = axes[(n - 1) // ncol][(n - 1) % ncol]
    t = summary["timing_s_per_1k_updates"]
    present = [a for a in agents if a in t]
    # CPU time when every agent has it: unlike wall time it does not grow when other work shares the machine
    use_cpu = bool(present) and all(t[a].get("cpu_mean") is not None for a in present)
    heights = [t[a]["cpu_mean"] if use_cpu else t[a]["mean"] for a in present]
    ax.bar(np.arange(len(present)), heights, yerr=None if use_cpu else [t[a]["std"] for a in present], capsize=3,
           color=[colors[agents.index(a) % len(colors)] for a in present])
    ax.set_xticks(np.arange(len(present)), present, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("CPU s per 1k updates" if use_cpu else "wall s per 1k updates")
    ax.set_title("update speed (1 torch thread)", fontsize=9)
    for k in range(n, nrow * ncol):
        axes[k // ncol][k % ncol].axis("off")
    fig.tight_layout()
    from pbrl.preferences import atomic_write

    with atomic_write(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)


# ---------------------------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    from tqdm.auto import tqdm

    from pbrl.envs.datasets import label_dataset
    from pbrl.preferences import atomic_write

    _init_worker()
    out = Path(args.out)
    t_start = time.perf_counter()
    datasets = [load_one(spec, seed=0) for spec in args.datasets]
    names = [dataset_name(ds, spec) for ds, spec in zip(datasets, args.datasets)]
    if len(set(names)) != len(names):
        names = [f"{n}#{i}" for i, n in enumerate(names)]
    tasks = [ds.task_id for ds in datasets]
    for ds, spec in zip(datasets, args.datasets):
        if ds.task_id is None:
            raise SystemExit(f"error: dataset {spec} has no metadata['task_id']; the live evaluation needs the task")
    # one label set per (dataset, seed), shared by every agent
    labels = {(i, s): label_dataset(ds, args.teacher, args.n_pairs, segment_length=args.segment_length, seed=s)
              for i, ds in enumerate(datasets) for s in args.seeds}
    jobs, skipped = [], []
    for i, ds in enumerate(datasets):
        for a in args.agents:
            kw = agent_kwargs(a, args)
            src = None
            if a == "pearl":
                src = pearl_source(names, tasks, i)
                if src is None:
                    skipped.append({"dataset": names[i], "agent": a,
                                    "reason": "no other-task dataset of the same domain to transfer labels from"})
                    continue
            for s in args.seeds:
                prefs = None if not needs_labels(a) else labels[(src if src is not None else i, s)]
                jobs.append({"agent": a, "seed": s, "dataset": ds, "dataset_name": names[i], "preferences": prefs,
                             "kwargs": kw, "steps": args.steps, "eval_episodes": args.eval_episodes,
                             "metric": metric_of(ds), "pearl_source": names[src] if src is not None else None})
    # finished runs are saved after each one (atomically), so a killed benchmark resumes with --resume
    settings = {k: getattr(args, k) for k in ("steps", "n_pairs", "segment_length", "teacher", "eval_episodes", "hidden")}
    settings["agent_kwargs"] = {a: agent_kwargs(a, args) for a in AGENTS}
    partial = out / "bench_offline.partial.json"
    runs: list[dict[str, Any]] = []
    failures: list[dict[str, Any]] = []
    if args.resume and partial.exists():
        saved = json.loads(partial.read_text())
        if saved.get("settings") != json.loads(json.dumps(settings)):
            raise SystemExit(f"error: {partial} was made with other settings; drop --resume or choose another --out")
        runs = [r for r in saved["runs"] if r["dataset"] in names]
        done = {(r["dataset"], r["agent"], r["seed"]) for r in runs}
        jobs = [j for j in jobs if (j["dataset_name"], j["agent"], j["seed"]) not in done]
        print(f"resuming: {len(runs)} finished runs read from {partial}, {len(jobs)} to go")
    out.mkdir(parents=True, exist_ok=True)

    def record(rec: dict[str, Any]) -> None:
        (failures if "error" in rec else runs).append(rec)
        with atomic_write(partial, suffix=".json") as tmp:
            tmp.write_text(json.dumps({"settings": settings, "runs": runs}, indent=1))
        bar.update()

    bar = tqdm(total=len(jobs), desc="bench_offline runs", disable=args.no_progress)
    if args.workers == 1:
        for job in jobs:
            record(run_one_safe(job))
    else:
        with ProcessPoolExecutor(max_workers=args.workers, initializer=_init_worker) as pool:
            for fut in as_completed([pool.submit(run_one_safe, job) for job in jobs]):
                record(fut.result())
    bar.close()
    runs.sort(key=lambda r: (names.index(r["dataset"]), args.agents.index(r["agent"]) if r["agent"] in args.agents else 99, r["seed"]))
    summary = summarise(runs, args.agents, names)
    report = {
        "benchmark": "pbrl offline preference-based agents vs IQL on the true reward",
        "config": {
            "datasets": args.datasets, "agents": args.agents, "steps": args.steps, "seeds": args.seeds,
            "n_pairs": args.n_pairs, "segment_length": args.segment_length, "teacher": args.teacher,
            "eval_episodes": args.eval_episodes, "hidden": args.hidden,
            "agent_kwargs": {a: agent_kwargs(a, args) for a in args.agents},
            "registry_names": {a: AGENTS[a] for a in args.agents},
            "labels": {a: LABELS.get(a, a) for a in args.agents},
            "workers": args.workers, "torch_threads_per_run": 1,
        },
        "machine": {"python": sys.version.split()[0], "platform": platform.platform(), "cpus": os.cpu_count()},
        "datasets": {
            n: {"spec": spec, "task_id": ds.task_id, "metric": metric_of(ds), "transitions": len(ds),
                "episodes": int(ds.n_episodes), "pearl_source": names[j] if (j := pearl_source(names, tasks, i)) is not None else None}
            for i, (n, ds, spec) in enumerate(zip(names, datasets, args.datasets))
        },
        **summary,
        "skipped": skipped,
        "failures": failures,
        "runs": runs,
        "total_wall_s": time.perf_counter() - t_start,
    }
    report["table"] = print_table(summary, args.agents, names)
    for f in failures:
        print(f"FAILED {f['agent']} on {f['dataset']} seed {f['seed']}: {f['error']}")
    with atomic_write(out / "bench_offline.json", suffix=".json") as tmp:
        tmp.write_text(json.dumps(report, indent=2))
    plot(summary, args.agents, names, out / "bench_offline.png")
    if not failures:
        partial.unlink(missing_ok=True)
    print(f"wrote {out / 'bench_offline.json'} and {out / 'bench_offline.png'} ({report['total_wall_s']:.0f} s)")
    return report


if __name__ == "__main__":
    main()
