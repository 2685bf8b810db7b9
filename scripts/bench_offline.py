"""Benchmark pbrl's offline preference-based agents against IQL on the true reward, as a ``pbrl sweep``.

What it measures. For every dataset and seed, every agent trains on the same dataset with the same
preference labels for the same number of gradient updates:

* ``iql_true``: IQL on the dataset's true reward, the upper bound (the registry's ``iql``; no labels);
* ``bc``: behaviour cloning on all the data (no labels), the reference a preference agent has to beat;
* ``mriql``: MR + IQL (reward ensemble from the labels, then IQL);
* ``ipl``: Inverse Preference Learning on the IQL backbone;
* ``cpl``: Contrastive Preference Learning (policy only);
* ``cplbc``: CPL-BC (CPL plus behaviour cloning on the dataset, weight 10);
* ``iplawac``: IPL on the AWAC backbone (opt-in, like every registry agent not in ``DEFAULT_AGENTS``);
* ``oppo``: OPPO (context encoder, HIM, optimal context).

PEARL is not run here. Its labels come from a *source* dataset of another task, and a run of
``pbrl train offline`` draws its labels from its own dataset: :class:`pbrl.config.OfflineConfig` has no key
for a label file or a label source on this branch, so PEARL's zero-target-label transfer is not a sweep
point (``--agents pearl`` stops with this reason). Train it by hand (``PEARL.fit(target, source_labels)``,
``agents/pearl.py``) until the config can name a label file.

How it runs. Every (dataset, agent, seed) is one offline sweep point (``kind: offline``, see
:class:`pbrl.config.OfflineConfig` and :func:`pbrl.train_offline.train_offline`) run by
:func:`pbrl.sweep.run_sweep` (``--workers`` processes, one torch thread each): one run directory per point,
``<out>/<dataset>/<agent>__<task>__<teacher>__b<pairs>__s<seed>/``, with its live ``progress.csv`` and
``curve.csv`` (an evaluation every ``--eval-every`` updates). Running the same command again resumes the
unfinished runs and skips the finished ones; a run directory made with other settings stops the script
with the keys that differ (choose another ``--out``). A failed run is listed under ``"failures"``; the
others go on. Each run draws its labels itself from its seed alone (``label_dataset(dataset,
make_teacher(teacher, seed), n_pairs, segment_length, seed)``): every agent of a seed gets identical labels,
which each run keeps in its ``labels.h5``.

The score of a run is its final evaluation (``--eval-episodes`` deterministic episodes on the live task):
the success rate in % on Meta-World datasets, the normalised score ``100 (R - min) / (max - min)`` from the
reference returns in the dataset's metadata on locomotion datasets that have them, else the raw return.
Written to ``<out>``:

* ``bench_offline.json``: per dataset and agent, the IQM of the final score over seeds with its 95 %
  stratified-bootstrap interval (:mod:`pbrl.stats`), mean, std and per-seed values, the ratio to
  IQL-true's IQM, the IQM learning curve with bands; an aggregate row per agent (IQM over the datasets x
  seeds whose score is on the 0-100 scale, datasets as strata); the datasets where an agent reaches 80 %
  of IQL-true; timing per agent from the runs' ``metrics.json``: CPU seconds per run (``cpu_time_s``,
  the whole run: labels, reward fits, updates, evaluations), CPU seconds per 1k updates and updates per
  wall-second, both over the whole run;
* ``bench_offline.png``: bars of the IQM with its interval per dataset and for the aggregate, plus the CPU
  time per 1k updates; ``bench_offline_curves.png``: IQM score against updates with bands;
* ``report/<dataset>/``: :func:`pbrl.report.build_report`'s table and plots of that dataset's runs (success
  on Meta-World, return elsewhere);
* the table, printed as Markdown.

Datasets are the files written by ``scripts/make_datasets.py`` (the ``<task>/<kind>.hdf5`` files under
``--data-dir`` whose kind is in ``--kinds``: ``medium-replay`` and ``scripted-noisy`` by default), or any
``--datasets`` given as D4RL-style HDF5 paths, local Minari ids, or ``collect:<task>:<policy>:<n_steps>``
specs, collected once (seed 0; the scripted Meta-World policy with noise levels 0, 0.5 and 1) into
``<out>/_data/`` and shared by every run.

The agents are the offline agents of :mod:`pbrl.agents.registry` (the one list) at their own defaults,
which are the papers' (``docs/hyperparameters.md``), except for what this benchmark changes to fit 2 CPU
cores in about an hour:

* 1,500 updates per run (``--steps``, ``DEFAULT_STEPS``) instead of the papers' 0.1-1M. This is the old
  script's value and a placeholder: ``scripts/offline_curve.py`` measures where the learning curves
  flatten, and its ``recommended_steps`` is to replace ``DEFAULT_STEPS``;
* CPL and CPL-BC: 2 x 256 units and 32 pairs per update (``CPU_SIZES``; the authors' 2 x 512 and 96), BC
  with the same 2 x 256; their BC phase stays 40 % of the updates (the default ``bc_fraction``) and the CPL
  phase's lr warmup keeps its share of the run, 2 % (the authors' 10k of 500k updates; ``WARMUP_SHARE``);
* CPL-BC's BC weight is 10 instead of the authors' 1.0: the BC term is a mean over steps while the CPL
  term sums ``alpha log pi`` over the 50 steps of a segment, so 10 = ``2 alpha H`` gives a step the same
  pull from both;
* OPPO: 32 windows and 32 pairs per update (the authors' 64), its policy-lr warmup 10 % of the run (their
  10k of 100k updates);
* MR+IQL: 100 reward-model epochs.

At the defaults (5 datasets x 7 agents x 3 seeds = 105 runs) the grid costs about 1.5 CPU-hours by the old
script's timings plus the evaluations (``--dry-run`` prints the estimate for any flags): under an hour of
wall time on 2 free cores. ``--hidden`` replaces every agent's hidden layers and ``--agent-kwargs`` any argument. ``bc`` is CPL's BC
phase run for all the updates (on all the data), so the table shows what the contrastive phase adds to it.

    python scripts/bench_offline.py --dry-run                        # the grid, its size, a CPU estimate
    nohup python scripts/bench_offline.py &                          # defaults (rerun the same command to resume)
    python scripts/bench_offline.py --report-only                    # tables and plots from finished runs
    python scripts/bench_offline.py --datasets collect:metaworld/reach-v3:scripted:3000 --steps 300 \\
        --seeds 0 --hidden 64 64 --eval-episodes 2 --out /tmp/smoke  # smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import sys
from pathlib import Path
from typing import Any

import numpy as np
from offline_summary import LABELS, UPPER_BOUND, markdown, plot_bars, plot_curves, summarise, write_reports

from pbrl.agents.registry import agent_names, get_entry

#: the benchmark's own row names for registry agents where they differ ("iql" runs on the true reward here)
REGISTRY_NAME = {"iql_true": "iql"}
#: benchmark row -> registry name, for every offline agent of :mod:`pbrl.agents.registry` (the one list)
AGENTS: dict[str, str] = {
    next((row for row, reg in REGISTRY_NAME.items() if reg == name), name): name for name in agent_names("offline")
}
#: registry agents this benchmark cannot run as sweep points, and why (see the module docstring)
NOT_A_SWEEP_POINT = {
    "pearl": "PEARL learns from a source dataset's labels, and an offline run draws its labels from its own "
             "dataset (OfflineConfig has no label-file key yet); train PEARL by hand, see agents/pearl.py",
}
#: dataset kinds of scripts/make_datasets.py benchmarked by default: D4RL-style medium-replay for each MuJoCo
#: task and the noisy scripted data of each Meta-World task (2 + 3 datasets with make_datasets' defaults)
DEFAULT_KINDS = ("medium-replay", "scripted-noisy")
#: updates per run: a placeholder (the old script's value) until scripts/offline_curve.py's measured value replaces it
DEFAULT_STEPS = 1500
#: share of a run's updates between evaluations when --eval-every is not given (5 points per learning curve)
EVAL_SHARE = 0.2

#: what the benchmark changes on top of each agent's own (paper) defaults, to fit 2 CPU cores; --hidden and
#: --agent-kwargs override. Learning-rate warmups are scaled to the benchmark's budget in agent_kwargs.
CPU_SIZES = {"hidden": (256, 256), "pair_batch_size": 32}
DEFAULT_AGENT_KWARGS: dict[str, dict[str, Any]] = {
    "mriql": {"reward_epochs": 100},
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
DEFAULT_AGENTS = ("iql_true", "bc", "mriql", "ipl", "cpl", "cplbc", "oppo")


def agent_class(row: str) -> type:
    """The class of benchmark row ``row``, from the registry."""
    return get_entry(AGENTS[row]).load()


def needs_labels(row: str) -> bool:
    return get_entry(AGENTS[row]).needs_preferences


# ---------------------------------------------------------------------------------------------- inputs


def build_parser(description: str | None = None) -> argparse.ArgumentParser:
    """The benchmark's flags (``scripts/offline_curve.py`` reuses them with other defaults)."""
    p = argparse.ArgumentParser(description=description or __doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--datasets", nargs="+", default=None,
                   help="HDF5 paths, Minari ids or collect:<task>:<policy>:<n_steps> (default: every *.hdf5 in --data-dir)")
    p.add_argument("--data-dir", default="data/datasets", help="where scripts/make_datasets.py wrote its files")
    p.add_argument("--kinds", nargs="+", default=list(DEFAULT_KINDS),
                   help="which of make_datasets' <task>/<kind>.hdf5 files to use when --datasets is not given "
                        "('all' for every file)")
    p.add_argument("--agents", nargs="+", default=list(DEFAULT_AGENTS),
                   help=f"subset of {[a for a in AGENTS if a not in NOT_A_SWEEP_POINT]} (default {list(DEFAULT_AGENTS)})")
    p.add_argument("--steps", type=int, default=DEFAULT_STEPS, help="gradient updates per agent and seed")
    p.add_argument("--eval-every", type=int, default=None,
                   help=f"updates between evaluations (default {EVAL_SHARE:g} x --steps)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--n-pairs", type=int, default=500, help="labelled pairs per dataset and seed")
    p.add_argument("--segment-length", type=int, default=50)
    p.add_argument("--teacher", default="oracle", help="teacher preset of pbrl.teachers.make_teacher")
    p.add_argument("--eval-episodes", type=int, default=5)
    p.add_argument("--hidden", type=int, nargs="+", default=None, help="hidden layers of every agent's networks")
    p.add_argument("--agent-kwargs", default="{}", help='JSON {"cpl": {"bc_steps": 1000}, ...} merged over the defaults')
    p.add_argument("--workers", type=int, default=2, help="runs in parallel (processes, one torch thread each)")
    p.add_argument("--out", default="benchmarks/bench_offline")
    p.add_argument("--dry-run", action="store_true", help="print the grid and a CPU estimate, then exit")
    p.add_argument("--report-only", action="store_true", help="summarise the finished runs only")
    p.add_argument("--no-progress", action="store_true")
    return p


def parse_args(argv: list[str] | None = None, parser: argparse.ArgumentParser | None = None) -> argparse.Namespace:
    args = (parser or build_parser()).parse_args(argv)
    check_args(args)
    return args


def check_args(args: argparse.Namespace) -> None:
    """One clear error for bad flags, before any work."""
    unknown = [a for a in args.agents if a not in AGENTS]
    if unknown:
        raise SystemExit(f"error: unknown agent(s) {unknown}; choose from {list(AGENTS)}")
    for a in args.agents:
        if a in NOT_A_SWEEP_POINT:
            raise SystemExit(f"error: --agents {a}: {NOT_A_SWEEP_POINT[a]}")
    if len(set(args.agents)) != len(args.agents):
        raise SystemExit(f"error: --agents repeats an agent: {args.agents}")
    for name in ("steps", "n_pairs", "segment_length", "eval_episodes", "workers"):
        if getattr(args, name) < 1:
            raise SystemExit(f"error: --{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.eval_every is None:
        args.eval_every = max(1, int(EVAL_SHARE * args.steps))
    elif args.eval_every < 1:
        raise SystemExit(f"error: --eval-every must be >= 1, got {args.eval_every}")
    if not args.seeds or min(args.seeds) < 0 or len(set(args.seeds)) != len(args.seeds):
        raise SystemExit(f"error: give distinct seeds >= 0, got {args.seeds}")
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


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_")


def domain(task: str | None) -> str:
    return "metaworld" if (task or "").startswith("metaworld/") else "locomotion"


def metric_of(ds) -> str:
    """``success_rate`` on Meta-World, ``normalized_score`` when reference returns are known, else ``return``."""
    if domain(ds.task_id) == "metaworld":
        return "success_rate"
    if ds.metadata.get("ref_min_return") is not None and ds.metadata.get("ref_max_return") is not None:
        return "normalized_score"
    return "return"


def prepare_datasets(args: argparse.Namespace, out: Path) -> list[dict[str, Any]]:
    """One record per dataset: name, run-folder slug, what the configs point at, task, score and size.
    ``collect:`` specs are collected once into ``<out>/_data/`` (reused when the file is there)."""
    from pbrl.envs.datasets import load_dataset, save_d4rl

    infos = []
    for spec in args.datasets:
        if spec.startswith("collect:"):
            path = out / "_data" / f"{slug(spec[len('collect:'):])}.hdf5"
            if path.exists():
                ds = load_dataset(path)
            else:
                ds = load_one(spec, seed=0)
                save_d4rl(ds, path)
            source = str(path.resolve())
        else:
            ds = load_one(spec)
            source = str(Path(spec).resolve()) if Path(spec).exists() else spec
        if ds.task_id is None:
            raise SystemExit(f"error: dataset {spec} has no metadata['task_id']; the live evaluation needs the task")
        name = str(ds.metadata.get("dataset_id") or Path(spec).stem)
        metric = metric_of(ds)
        ref = [float(ds.metadata["ref_min_return"]), float(ds.metadata["ref_max_return"])] \
            if metric == "normalized_score" else None
        infos.append({"name": name, "spec": spec, "dataset": source, "task_id": ds.task_id, "metric": metric,
                      "ref": ref, "transitions": len(ds), "episodes": int(ds.n_episodes)})
    if len({d["name"] for d in infos}) != len(infos):
        for i, d in enumerate(infos):
            d["name"] = f"{d['name']}#{i}"
    for d in infos:
        d["slug"] = slug(d["name"])
    return infos


# ---------------------------------------------------------------------------------------------- the grid


def build_grid(args: argparse.Namespace, datasets: list[dict[str, Any]]):
    """One offline sweep point per (dataset, agent, seed), named ``<dataset slug>/<pbrl sweep name>``;
    every config is validated here, before anything runs."""
    from pbrl.sweep import SweepPoint, expand_grid

    base = {"kind": "offline", "total_feedback": args.n_pairs, "segment_length": args.segment_length,
            "steps": args.steps, "eval_every": args.eval_every, "checkpoint_every": args.eval_every,
            "n_eval_episodes": args.eval_episodes, "torch_threads": 1}
    points = []
    for d in datasets:
        for a in args.agents:
            cfg = {**base, "task": d["task_id"], "dataset": d["dataset"], "agent_kwargs": agent_kwargs(a, args)}
            try:
                grid = expand_grid(cfg, agents=[AGENTS[a]], teachers=[args.teacher], seeds=list(args.seeds))
            except ValueError as e:
                raise SystemExit(f"error: {d['name']}, {a}: {e}") from None
            points += [SweepPoint(f"{d['slug']}/{p.name}", p.config) for p in grid]
    return points


def check_existing(points, out: Path) -> None:
    """A run directory already there must hold the same config (else resuming would mix settings)."""
    for p in points:
        f = out / p.name / "config.json"
        if not f.exists():
            continue
        saved, want = json.loads(f.read_text()), json.loads(json.dumps(p.config))
        if saved != want:
            diff = sorted(k for k in set(saved) | set(want) if saved.get(k) != want.get(k))
            raise SystemExit(f"error: {out / p.name} was run with other settings ({', '.join(diff)}); "
                             "rerun with the same flags or choose another --out")


def row_of(point_name: str, datasets: list[dict[str, Any]], agents: list[str]) -> tuple[str, str]:
    """``(dataset name, benchmark row)`` of a point name."""
    ds_slug, run = point_name.split("/", 1)
    reg = run.split("__", 1)[0]
    name = next(d["name"] for d in datasets if d["slug"] == ds_slug)
    return name, next(a for a in agents if AGENTS[a] == reg)


def estimate_cpu_s(points, args: argparse.Namespace) -> float | None:
    """Rough CPU seconds of the grid from the committed measurement of the old script
    (``docs/bench_offline.json``: seconds per run at its 1,500 updates, scaled to ``--steps``);
    ``None`` when that file is not there or has none of these agents."""
    f = Path(__file__).resolve().parents[1] / "docs" / "bench_offline.json"
    if not f.exists():
        return None
    old = json.loads(f.read_text())
    per_run: dict[str, list[float]] = {}
    for r in old.get("runs", []):
        per_run.setdefault(r["agent"], []).append(float(r["fit_wall_s"]) * args.steps / max(int(r["steps"]), 1))
    rows = [a for a in args.agents if a in per_run]
    if not rows:
        return None
    n = len(points) // len(args.agents)
    return float(sum(n * np.mean(per_run[a]) for a in rows) * len(args.agents) / len(rows))


def finished_runs(out: Path, points, datasets, agents) -> tuple[dict, dict]:
    """``{(dataset, row): [RunRecord]}`` of the finished runs of the grid, and ``{point: error}`` of the failed."""
    from pbrl.report import load_runs

    runs: dict[tuple[str, str], list] = {}
    failed = {}
    dirs = [out / p.name for p in points if (out / p.name / "config.json").exists()]
    for r in load_runs(dirs) if dirs else []:
        name = r.path.relative_to(out).as_posix()
        if r.status == "finished" and r.metrics is not None:
            runs.setdefault(row_of(name, datasets, agents), []).append(r)
        elif r.status == "failed":
            failed[name] = json.loads((r.path / "status.json").read_text()).get("error", "failed")
    return runs, failed


# ---------------------------------------------------------------------------------------------- main


def run_grid(args: argparse.Namespace, out: Path, datasets: list[dict[str, Any]], points) -> dict[str, str]:
    """Run (resume, skip) the grid; returns ``{point: error}`` of the runs that failed to start or run."""
    from pbrl.sweep import run_sweep

    check_existing(points, out)
    for d in datasets:
        (out / d["slug"]).mkdir(parents=True, exist_ok=True)
    results = run_sweep(points, out, backend="local", workers=args.workers, progress=not args.no_progress)
    return {n: r["error"] for n, r in results.items() if "error" in r}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    return run(parse_args(argv))


def run(args: argparse.Namespace) -> dict[str, Any]:
    """The benchmark for parsed flags: datasets, grid, sweep (unless ``--report-only``), summary, files."""
    out = Path(args.out)
    datasets = prepare_datasets(args, out)
    points = build_grid(args, datasets)
    if args.dry_run:
        for p in points:
            print(p.name)
        cpu = estimate_cpu_s(points, args)
        est = "" if cpu is None else f", about {cpu / 3600:.1f} CPU-hours (from docs/bench_offline.json, evaluations excluded)"
        print(f"{len(points)} runs of {args.steps} updates{est}")
        return {"points": [p.name for p in points], "cpu_s_estimate": cpu}
    failures = {} if args.report_only else run_grid(args, out, datasets, points)
    runs, failed = finished_runs(out, points, datasets, args.agents)
    failures.update(failed)
    if not runs:
        raise SystemExit(f"error: no finished runs under {out}; failures: {failures or 'none'}")
    summary = summarise(runs, datasets, args.agents)
    reports = write_reports(out, runs, datasets)
    settings = {k: v for k, v in vars(args).items() if k != "agent_kwargs_dict"}
    settings["agent_kwargs"] = {a: agent_kwargs(a, args) for a in args.agents}
    result = {
        "benchmark": "pbrl offline preference-based agents vs IQL on the true reward (pbrl sweep + report)",
        "settings": settings,
        "registry_names": {a: AGENTS[a] for a in args.agents},
        "labels": {a: LABELS.get(a, a) for a in args.agents},
        "upper_bound": UPPER_BOUND,
        "machine": {"python": sys.version.split()[0], "platform": platform.platform(), "cpus": os.cpu_count()},
        "datasets": {d["name"]: {k: v for k, v in d.items() if k != "name"} for d in datasets},
        **summary,
        "reports": reports,
        "failures": failures,
        "unfinished": sorted(p.name for p in points if not any(
            r.path == out / p.name for rs in runs.values() for r in rs) and p.name not in failures),
    }
    result["table"] = markdown(summary, args.agents)
    from pbrl.io import atomic_write

    with atomic_write(out / "bench_offline.json", suffix=".json") as tmp:
        tmp.write_text(json.dumps(result, indent=2, default=str))
    plot_bars(summary, args.agents, out / "bench_offline.png")
    plot_curves(summary, args.agents, out / "bench_offline_curves.png")
    print(result["table"])
    for name, err in failures.items():
        print(f"FAILED {name}: {err}")
    print(f"wrote {out / 'bench_offline.json'}, {out / 'bench_offline.png'} and {out / 'bench_offline_curves.png'}")
    return result


if __name__ == "__main__":
    main()
