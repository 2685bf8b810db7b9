"""The offline benchmark's grid as a study on the harness (:mod:`pbrl.app.bench`), shared by
``scripts/bench_offline.py`` and ``scripts/offline_curve.py`` (the same grid with other defaults).

The rows are the offline agents of :mod:`pbrl.agents.registry` (the one list) under the benchmark's names
(:data:`AGENTS`), plus variants (:data:`VARIANTS`: a registry agent with settings of its own, in run
directories of their own) and teacher rows (:data:`TEACHER_ROWS`: a row with another teacher's labels).
Every (dataset, row, seed) is one offline sweep point named ``<dataset slug>/<pbrl sweep name>``. The
datasets are prepared once (:func:`prepare_datasets`: ``collect:`` specs into ``<out>/_data/``), PEARL's
source labels written once (:func:`source_labels`, into ``<out>/_labels/``). The summary is
:mod:`pbrl.app.offline_summary`'s. See ``scripts/bench_offline.py`` for what the benchmark measures and why.
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

from pbrl.agents.registry import agent_names, get_entry
from pbrl.app.bench import BadInput, Study, StudyRuns, parse_args
from pbrl.app.hyperparams import load
from pbrl.app.offline_summary import (
    COST_FILES,
    LABELS,
    UPPER_BOUND,
    estimate_cpu_s,
    markdown,
    plot_bars,
    plot_curves,
    summarise,
    write_reports,
)
from pbrl.app.sweep import SweepPoint, expand_grid
from pbrl.envs.datasets import collect, label_dataset, load_dataset, reference_scores, save_d4rl
from pbrl.envs.scores import D4RL_REF_SCORES, d4rl_key
from pbrl.io import atomic_write, portable_paths, sha256_of
from pbrl.teachers import make_teacher

#: the benchmark's own row names for registry agents where they differ ("iql" runs on the true reward here)
REGISTRY_NAME = {"iql_true": "iql"}
#: rows that run a registry agent with settings of their own: row -> (registry name, agent_kwargs the row sets).
#: Their run directories are named by the row (``pt_iql__<task>__...``), so they never meet the plain agent's
VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "pt_iql": ("mriql", {"reward_model": "transformer"}),
    "mriql_zscore": ("mriql", {"ensemble_normalization": "zscore"}),
}
#: rows that run another row with another teacher: row -> (the row it copies, teacher). CPL assumes people
#: prefer by regret, and its authors labelled with an expert critic's regret (pbrl.envs.regret); these rows
#: give CPL and CPL-BC those labels, beside their rows with --teacher's (reward-sum) labels. Run directories
#: are named by the row (``cpl_regret__<task>__regret__...``)
TEACHER_ROWS: dict[str, tuple[str, str]] = {"cpl_regret": ("cpl", "regret"), "cplbc_regret": ("cplbc", "regret")}
#: benchmark row -> registry name: every offline agent of :mod:`pbrl.agents.registry` (the one list), then the variants
#: and the teacher rows
AGENTS: dict[str, str] = {
    **{next((row for row, reg in REGISTRY_NAME.items() if reg == name), name): name for name in agent_names("offline")},
    **{row: reg for row, (reg, _) in VARIANTS.items()},
}
AGENTS.update({row: AGENTS[base] for row, (base, _) in TEACHER_ROWS.items()})
#: make_datasets' files (under --data-dir) benchmarked when neither --datasets nor --kinds is given: one per
#: domain, the two where the agents differed most at the old 1,500-update budget (scripts/offline_curve.py measures
#: its learning curves on the same two)
DEFAULT_DATASETS = ("mujoco_Hopper-v5/medium-replay", "metaworld_drawer-open-v3/scripted-noisy")
#: dataset kinds of scripts/make_datasets.py that ``--kinds`` names for the wider grid: D4RL-style medium-replay
#: for each MuJoCo task and the noisy scripted data of each Meta-World task (2 + 3 datasets with its defaults)
WIDE_KINDS = ("medium-replay", "scripted-noisy")
#: most updates per run the benchmark's default asks for, for 2 CPU cores (at 50k IQL-true's curve on the D4RL-sized Hopper
#: medium-replay has reached the paper's level)
CPU_STEP_CAP = 50_000
#: updates per run: scripts/offline_curve.py's measured ``recommended_steps`` on the D4RL-sized Hopper medium-replay
#: (benchmarks/offline_curve_d4rl/offline_curve.json), at most :data:`CPU_STEP_CAP`; the old 15k was measured on the
#: old 25k-step file (benchmarks/offline_curve/), where IQL-true is at 24 normalised on the new one
DEFAULT_STEPS = 50_000
#: share of a run's updates between evaluations when --eval-every is not given (5 points per learning curve)
EVAL_SHARE = 0.2

#: what the benchmark changes on top of each agent's own (paper) defaults, to fit 2 CPU cores; --hidden and
#: --agent-kwargs override. Learning-rate warmups are scaled to the benchmark's budget in agent_kwargs.
CPU_SIZES = {"hidden": (256, 256), "pair_batch_size": 32}
DEFAULT_AGENT_KWARGS: dict[str, dict[str, Any]] = {
    "mriql": {"reward_epochs": 100},
    "mriql_zscore": {"reward_epochs": 100},
    # DPPO's predictor at the transformer's CPU size (its default is the paper's size for 10,000 epochs)
    "dppo": {"predictor_kwargs": {"size": "small"}, "predictor_epochs": 100},
    # DTR's transformer at a CPU size (its default is the paper's width 256, 4 layers, 4 heads, 20 steps, batch 256)
    "dtr": {"embed_dim": 64, "n_layers": 2, "n_heads": 1, "context_length": 10, "batch_size": 64},
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
#: rows run by default; pearl (and iplawac) are opt-in (module docstring)
DEFAULT_AGENTS = ("iql_true", "bc", "mriql", "pt_iql", "ipl", "cpl", "cplbc", "cpl_regret", "cplbc_regret", "oppo")


def agent_class(row: str) -> type:
    """The class of benchmark row ``row``, from the registry."""
    return get_entry(AGENTS[row]).load()


def run_prefix(row: str) -> str:
    """The first part of row ``row``'s run-directory names: the row for a variant or a teacher row, else the
    registry name."""
    return row if row in VARIANTS or row in TEACHER_ROWS else AGENTS[row]


def base_row(row: str) -> str:
    """The row whose settings row ``row`` runs (a teacher row's copied row, else the row itself)."""
    return TEACHER_ROWS[row][0] if row in TEACHER_ROWS else row


def teacher_of(row: str, args: argparse.Namespace) -> str:
    """The teacher of row ``row``'s labels: a teacher row's own, else ``--teacher``."""
    return TEACHER_ROWS[row][1] if row in TEACHER_ROWS else args.teacher


def needs_labels(row: str) -> bool:
    return get_entry(AGENTS[row]).needs_preferences


# ---------------------------------------------------------------------------------------------- inputs


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The offline benchmark's own flags (the harness adds --seeds, --workers, --out, --set, --dry-run,
    --report-only, --export, --no-progress); ``scripts/offline_curve.py`` reuses them with other defaults."""
    p.add_argument("--datasets", nargs="+", default=None,
                   help="HDF5 paths, Minari ids or collect:<task>:<policy>:<n_steps> (default: every *.hdf5 in --data-dir)")
    p.add_argument("--data-dir", default="data/datasets", help="where scripts/make_datasets.py wrote its files")
    p.add_argument("--kinds", nargs="+", default=None,
                   help="use every make_datasets <task>/<kind>.hdf5 file of these kinds under --data-dir instead of "
                        f"the default two ({', '.join(DEFAULT_DATASETS)}); 'all' for every file, "
                        f"{' '.join(WIDE_KINDS)} for the old five-dataset grid")
    p.add_argument("--agents", nargs="+", default=list(DEFAULT_AGENTS),
                   help=f"subset of {list(AGENTS)} (default {list(DEFAULT_AGENTS)})")
    p.add_argument("--steps", type=int, default=DEFAULT_STEPS, help="gradient updates per agent and seed")
    p.add_argument("--eval-every", type=int, default=None,
                   help=f"updates between evaluations (default {EVAL_SHARE:g} x --steps)")
    p.add_argument("--n-pairs", type=int, default=500, help="labelled pairs per dataset and seed")
    p.add_argument("--segment-length", type=int, default=50)
    p.add_argument("--teacher", default="oracle", help="teacher preset of pbrl.teachers.make_teacher")
    p.add_argument("--eval-episodes", type=int, default=5)
    p.add_argument("--hidden", type=int, nargs="+", default=None, help="hidden layers of every agent's networks")
    p.add_argument("--agent-kwargs", default="{}", help='JSON {"cpl": {"bc_steps": 1000}, ...} merged over the defaults')
    p.add_argument("--batch-seeds", action="store_true",
                   help="train each agent's seeds on a dataset in one process, vmapped (pbrl sweep --batch-seeds); "
                        "off by default: on a 2-core CPU it is no faster than the seeds one by one "
                        "(scripts/bench_speed.py), on a GPU it should be")


def check_args(args: argparse.Namespace, parser: argparse.ArgumentParser | None = None) -> None:
    """One clear error for bad flags, before any work (``--report-only`` does not need the datasets: without
    them it summarises the runs under ``--out``)."""
    unknown = [a for a in args.agents if a not in AGENTS]
    if unknown:
        raise BadInput(f"unknown agent(s) {unknown}; choose from {list(AGENTS)}")
    if len(set(args.agents)) != len(args.agents):
        raise BadInput(f"--agents repeats an agent: {args.agents}")
    for name in ("steps", "n_pairs", "segment_length", "eval_episodes", "workers"):
        if getattr(args, name) < 1:
            raise BadInput(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.eval_every is None:
        args.eval_every = max(1, int(EVAL_SHARE * args.steps))
    elif args.eval_every < 1:
        raise BadInput(f"--eval-every must be >= 1, got {args.eval_every}")
    if not args.seeds or min(args.seeds) < 0 or len(set(args.seeds)) != len(args.seeds):
        raise BadInput(f"give distinct seeds >= 0, got {args.seeds}")
    if args.hidden is not None and any(h < 1 for h in args.hidden):
        raise BadInput(f"--hidden sizes must be >= 1, got {args.hidden}")
    try:
        extra = json.loads(args.agent_kwargs)
    except json.JSONDecodeError as e:
        raise BadInput(f"--agent-kwargs is not valid JSON ({e})") from None
    if not isinstance(extra, dict) or not all(isinstance(v, dict) for v in extra.values()):
        raise BadInput('--agent-kwargs must be a JSON object of objects, e.g. {"cpl": {"bc_steps": 1000}}')
    bad = [k for k in extra if k not in AGENTS]
    if bad:
        raise BadInput(f"--agent-kwargs names unknown agent(s) {bad}; choose from {list(AGENTS)}")
    args.agent_kwargs_dict = extra
    if args.datasets is None and args.kinds is None:
        args.datasets = [str(Path(args.data_dir) / f"{rel}.hdf5") for rel in DEFAULT_DATASETS]
        missing = [d for d in args.datasets if not Path(d).exists()]
        if missing and not args.report_only:
            raise BadInput(f"the default datasets {missing} are not there; run scripts/make_datasets.py "
                           "first, or pass --datasets or --kinds")
    if args.datasets is None:
        found = sorted(Path(args.data_dir).glob("**/*.hdf5"))
        if "all" not in args.kinds:
            found = [f for f in found if f.stem in args.kinds]
        if not found and not args.report_only:
            raise BadInput(
                f"no datasets: {args.data_dir} has no *.hdf5 files of kinds {args.kinds}; run "
                "scripts/make_datasets.py first, choose --kinds, or pass --datasets (paths, Minari ids or "
                "collect:<task>:<policy>:<n_steps>)"
            )
        args.datasets = [str(f) for f in found]
    for spec in args.datasets:
        if spec.startswith("collect:"):
            parts = spec.split(":")
            if len(parts) != 4 or not parts[3].isdigit() or int(parts[3]) < 1:
                raise BadInput(f"bad dataset spec '{spec}'; use collect:<task>:<policy>:<n_steps>")
        elif spec.endswith((".hdf5", ".h5")) and not Path(spec).exists() and not args.report_only:
            raise BadInput(f"dataset file {spec} does not exist")


def agent_kwargs(agent: str, args: argparse.Namespace, task: str | None = None) -> dict[str, Any]:
    """The benchmark's kwargs for ``agent``: the per-domain settings of its hyperparameter file for ``task``
    (``pbrl/hyperparams/<agent>.yml`` without its ``default`` entry, e.g. IPL's Meta-World configuration; the
    same file ``pbrl train`` reads), a variant's own (:data:`VARIANTS`), :data:`DEFAULT_AGENT_KWARGS`, ``--hidden``,
    ``--agent-kwargs``, then the warmups of :data:`WARMUP_SHARE` scaled to ``--steps`` unless given. A teacher row
    (:data:`TEACHER_ROWS`) gets its copied row's settings."""
    base = base_row(agent)
    preset = load(AGENTS[agent], task, default=False).values.get("agent_kwargs", {}) if task else {}
    kw = {**preset, **(VARIANTS[agent][1] if agent in VARIANTS else {}), **DEFAULT_AGENT_KWARGS.get(base, {})}
    if args.hidden is not None:
        kw["hidden"] = tuple(args.hidden)
    if base != agent:  # a teacher row takes its copied row's --agent-kwargs, then its own
        kw.update(args.agent_kwargs_dict.get(base, {}))
    kw.update(args.agent_kwargs_dict.get(agent, {}))
    if base in WARMUP_SHARE:
        key, share = WARMUP_SHARE[base]
        kw.setdefault(key, int(share * args.steps))
    return kw


def load_one(spec: str, seed: int = 0):
    """An ``OfflineDataset`` from a path / Minari id / ``collect:`` spec."""
    if spec.startswith("collect:"):
        _, task, policy, n = spec.split(":")
        noise = [0.0, 0.5, 1.0] if policy == "scripted" else 0.0
        return collect(task, policy=policy, n_steps=int(n), seed=seed, noise=noise)
    return load_dataset(spec)


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_")


def domain(task: str | None) -> str:
    return "metaworld" if (task or "").startswith("metaworld/") else "locomotion"


def reference_of(ds) -> tuple[float, float] | None:
    """The reference returns of ``ds``'s normalised score (:func:`pbrl.envs.datasets.reference_scores`): D4RL's
    on a MuJoCo locomotion task whatever the dataset measured, else its metadata's; ``None`` when unknown."""
    try:
        return reference_scores(ds)
    except ValueError:
        return None


def metric_of(ds) -> str:
    """``success_rate`` on Meta-World, ``normalized_score`` when reference returns are known (D4RL's on
    locomotion), else ``return``."""
    if domain(ds.task_id) == "metaworld":
        return "success_rate"
    return "normalized_score" if reference_of(ds) is not None else "return"


def prepare_datasets(args: argparse.Namespace, out: Path) -> list[dict[str, Any]]:
    """One record per dataset: name, run-folder slug, what the configs point at (with the file's sha256, which
    every run's config carries, so that a rebuilt file at the same path cannot resume old runs), task, score
    and size.
    ``collect:`` specs are collected once into ``<out>/_data/`` (reused when the file is there)."""
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
            raise ValueError(f"dataset {spec} has no metadata['task_id']; the live evaluation needs the task")
        name = str(ds.metadata.get("dataset_id") or Path(spec).stem)
        metric = metric_of(ds)
        ref = [float(x) for x in reference_of(ds)] if metric == "normalized_score" else None
        sha = sha256_of(source) if Path(source).is_file() else None
        infos.append({"name": name, "spec": spec, "dataset": source, "sha256": sha, "task_id": ds.task_id,
                      "metric": metric, "ref": ref, "transitions": len(ds), "episodes": int(ds.n_episodes)})
    if len({d["name"] for d in infos}) != len(infos):
        for i, d in enumerate(infos):
            d["name"] = f"{d['name']}#{i}"
    for d in infos:
        d["slug"] = slug(d["name"])
    return infos


# ---------------------------------------------------------------------------------------------- the grid


def pearl_source(datasets: list[dict[str, Any]], i: int) -> int | None:
    """Index of PEARL's source dataset for target ``datasets[i]``: the next dataset (cyclically) of the same
    domain, Meta-World or locomotion, with another task; ``None`` when there is none."""
    n = len(datasets)
    for k in range(1, n):
        j = (i + k) % n
        if domain(datasets[j]["task_id"]) == domain(datasets[i]["task_id"]) and datasets[j]["task_id"] != datasets[i]["task_id"]:
            return j
    return None


def source_labels(args: argparse.Namespace, datasets: list[dict[str, Any]], out: Path) -> dict[tuple[str, int], str]:
    """PEARL's label files, ``{(target dataset name, seed): path}``: the labels the source dataset's own runs
    of that seed draw (``label_dataset(source, make_teacher(teacher, seed), n_pairs, segment_length, seed)``,
    as :func:`pbrl.app.train_offline.train_offline` does), written once per (source, seed) into ``<out>/_labels/``
    and reused. Targets without a source get none (their PEARL points are skipped)."""
    if "pearl" not in args.agents:
        return {}

    files: dict[tuple[str, int], str] = {}
    loaded: dict[int, Any] = {}
    for i, d in enumerate(datasets):
        j = pearl_source(datasets, i)
        if j is None:
            continue
        src = datasets[j]
        d["pearl_source"] = src["name"]
        for seed in args.seeds:
            path = out / "_labels" / f"{src['slug']}__{slug(args.teacher)}__b{args.n_pairs}__H{args.segment_length}__s{seed}.h5"
            if not path.exists():
                ds = loaded.setdefault(j, load_dataset(src["dataset"]))
                path.parent.mkdir(parents=True, exist_ok=True)
                label_dataset(ds, make_teacher(args.teacher, seed=seed), args.n_pairs,
                              segment_length=args.segment_length, seed=seed).save(path)
            files[(d["name"], seed)] = str(path.resolve())
    return files


def build_grid(args: argparse.Namespace, datasets: list[dict[str, Any]], labels: dict[tuple[str, int], str] | None = None):
    """One offline sweep point per (dataset, agent, seed), named ``<dataset slug>/<pbrl sweep name>`` (a
    variant's name starts with its row, :func:`run_prefix`); PEARL's points learn from ``labels`` (the
    source dataset's, :func:`source_labels`) and a dataset without a source has none. Every config is
    validated here, before anything runs. The points come seed-major: every cell's first seed, then the
    second, so that a run stopped part-way (it resumes across sessions) can already be read at one seed."""
    labels = labels or {}
    base = {"kind": "offline", "total_feedback": args.n_pairs, "segment_length": args.segment_length,
            "steps": args.steps, "eval_every": args.eval_every, "checkpoint_every": args.eval_every,
            "n_eval_episodes": args.eval_episodes, "torch_threads": 1}
    points = []
    for d in datasets:
        for a in args.agents:
            cfg = {**base, "task": d["task_id"], "dataset": d["dataset"], "agent_kwargs": agent_kwargs(a, args, d["task_id"])}
            if d.get("sha256"):  # a file (a Minari id has none): the run is pinned to these bytes
                cfg["dataset_sha256"] = d["sha256"]
            per_seed = [({**cfg, "labels": labels[(d["name"], s)]}, [s]) for s in args.seeds if (d["name"], s) in labels] \
                if a == "pearl" else [(cfg, list(args.seeds))]
            for c, seeds in per_seed:
                try:
                    grid = expand_grid(c, agents=[AGENTS[a]], teachers=[teacher_of(a, args)], seeds=seeds)
                except ValueError as e:
                    raise ValueError(f"{d['name']}, {a}: {e}") from None
                for p in grid:
                    name = p.name if run_prefix(a) == AGENTS[a] else f"{a}__{p.name.split('__', 1)[1]}"
                    points.append(SweepPoint(f"{d['slug']}/{name}", p.config))
    # seed-major (a stable sort): a benchmark stopped part-way has every (dataset, agent) cell at its first
    # seed before any cell gets a second
    return sorted(points, key=lambda p: p.config["seed"])


def row_names(names: list[str], datasets: list[dict[str, Any]], agents: list[str]) -> dict[str, tuple[str, str]]:
    """``{run name: (dataset name, row)}`` of the runs that belong to the grid's datasets and rows."""
    res = {}
    for n in names:
        if "/" not in n:
            continue
        ds_slug, run = n.split("/", 1)
        prefix = run.split("__", 1)[0]
        name = next((d["name"] for d in datasets if d["slug"] == ds_slug), None)
        row = next((a for a in agents if run_prefix(a) == prefix), None)
        if name is not None and row is not None:
            res[n] = (name, row)
    return res


def datasets_of(ctx: StudyRuns, result_file: str = "bench_offline.json") -> list[dict[str, Any]]:
    """The dataset records of the study: prepared from the files, else (``--report-only`` on a clone without
    the datasets) those the study's last ``bench_offline.json`` saved, else the run folders' slugs with the
    score their task implies."""
    if getattr(ctx.args, "dataset_info", None):
        return ctx.args.dataset_info
    f = ctx.out / result_file
    if f.exists():
        saved = json.loads(f.read_text()).get("datasets", {})
        if saved:
            return [{"name": name, **d} for name, d in saved.items()]

    infos = {}
    for r in ctx.records:
        ds_slug, task = r.name.split("/", 1)[0], r.task
        key = d4rl_key(task)
        metric = "success_rate" if domain(task) == "metaworld" else "normalized_score" if key else "return"
        infos.setdefault(ds_slug, {"name": ds_slug, "slug": ds_slug, "task_id": task, "metric": metric,
                                   "ref": list(D4RL_REF_SCORES[key]) if key else None})
    return list(infos.values())


# ---------------------------------------------------------------------------------------------- the study's hooks


def check(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    check_args(args, parser)


def prepare(args: argparse.Namespace, out: Path) -> None:
    """The datasets (collected once) and PEARL's source labels (written once), kept on ``args``."""
    args.dataset_info, args.labels_files = None, {}
    args.dataset_info = prepare_datasets(args, out)
    args.labels_files = source_labels(args, args.dataset_info, out)
    args.skipped = {d["name"]: "pearl: no other-task dataset of the same domain to transfer labels from"
                    for d in args.dataset_info if "pearl" in args.agents and "pearl_source" not in d}
    for name, why in args.skipped.items():
        print(f"skipped on {name}: {why}")


def grid(args: argparse.Namespace):
    return build_grid(args, args.dataset_info, args.labels_files)


def estimate(points, args: argparse.Namespace, out: Path) -> dict[str, Any]:
    """The dry run's CPU estimate from the committed measurements (:func:`pbrl.app.offline_summary.estimate_cpu_s`)."""
    rows = row_names([p.name for p in points], args.dataset_info, args.agents)
    by_slug = {d["slug"]: d for d in args.dataset_info}
    est = estimate_cpu_s([base_row(rows[p.name][1]) for p in points],
                         [domain(by_slug[p.name.split("/", 1)[0]]["task_id"]) for p in points],
                         args.steps, args.eval_every, args.eval_episodes)
    text = "" if est is None else (
        f"about {est['cpu_s'] / 3600:.1f} CPU-hours: updates {est['updates_s'] / 3600:.1f} h, one-off reward "
        f"fits and transfers {est['fixed_s'] / 3600:.1f} h, evaluations {est['evaluations_s'] / 3600:.1f} h "
        f"(from docs/{' and docs/'.join(COST_FILES)}"
        + (f"; {', '.join(est['unmeasured'])} counted as the measured rows' mean" if est["unmeasured"] else "") + ")\n")
    text += (f"{len(points)} runs of {args.steps} updates, an evaluation of {args.eval_episodes} episodes every "
             f"{args.eval_every}")
    return {"text": text, "cpu_s_estimate": None if est is None else est["cpu_s"], "estimate": est,
            "skipped": args.skipped}


def offline_result(ctx: StudyRuns) -> dict[str, Any]:
    """``bench_offline.json``: settings, datasets, the summary (:func:`pbrl.app.offline_summary.summarise`),
    ``pbrl report`` per dataset, failures, skipped and unfinished points, the Markdown table; and its two
    figures, ``bench_offline.png`` and ``bench_offline_curves.png``."""
    args, out = ctx.args, ctx.out
    datasets = datasets_of(ctx)
    rows = row_names([r.name for r in ctx.records], datasets, args.agents)
    runs: dict[tuple[str, str], list] = {}
    for r in ctx.records:
        if r.name in rows:
            runs.setdefault(rows[r.name], []).append(r)
    if not runs:
        raise BadInput(f"no finished runs of the grid under {out}; failures: {ctx.failures or 'none'}")
    summary = summarise(runs, datasets, args.agents)
    reports = write_reports(out, runs, datasets, variants=set(VARIANTS))
    hidden = ("agent_kwargs_dict", "dataset_info", "labels_files", "skipped", "seed_list", "export")
    settings = {k: v for k, v in vars(args).items() if k not in hidden}
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
        "failures": ctx.failures,
        "skipped": getattr(args, "skipped", {}),
        "unfinished": sorted(ctx.unfinished),
    }
    result["table"] = markdown(summary, args.agents)
    plot_bars(summary, args.agents, out / "bench_offline.png")
    plot_curves(summary, args.agents, out / "bench_offline_curves.png")
    return result


def write_result(result: dict[str, Any], out: Path, name: str = "bench_offline.json") -> None:
    """``result`` as JSON at ``out / name``, its paths under the working folder made relative (:func:`pbrl.io.portable_paths`)."""
    with atomic_write(out / name, suffix=".json") as tmp:
        tmp.write_text(json.dumps(portable_paths(result), indent=2, default=str))


def offline_study(name: str, description: str, out: str, seeds: tuple[int, ...] = (0, 1, 2), **hooks: Any) -> Study:
    """The offline benchmark as a :class:`pbrl.app.bench.Study` (``hooks`` replace its arguments, summary, table
    or result file)."""
    return Study(**{"name": name, "description": description, "out": out, "seeds": seeds, "workers": 2,
                    "arguments": add_arguments, "check": check, "prepare": prepare, "grid": grid, "estimate": estimate,
                    "summarise": offline_result, "markdown": lambda res, ctx: res["table"],
                    "result_file": "bench_offline.json", **hooks})


def parse_offline_args(argv: list[str] | None = None, study: Study | None = None) -> argparse.Namespace:
    """The offline benchmark's flags, checked (the harness's and the benchmark's)."""
    return parse_args(study or offline_study("bench_offline", __doc__, "benchmarks/bench_offline"), argv)
