"""Benchmark pbrl's offline preference-based agents against IQL on the true reward, as a ``pbrl sweep``.

What it measures. For every dataset and seed, every agent trains on the same dataset with the same
preference labels for the same number of gradient updates:

* ``iql_true``: IQL on the dataset's true reward, the upper bound (the registry's ``iql``; no labels);
* ``bc``: behaviour cloning on all the data (no labels), the reference a preference agent has to beat;
* ``mriql``: MR + IQL (reward ensemble from the labels, then IQL);
* ``pt_iql``: PT + IQL, MR+IQL with the Preference Transformer as its reward model (the registry's
  ``mriql`` with ``reward_model="transformer"``, :data:`VARIANTS`; its run directories are
  ``pt_iql__...``, apart from MR+IQL's);
* ``ipl``: Inverse Preference Learning on the IQL backbone;
* ``cpl``: Contrastive Preference Learning (policy only);
* ``cplbc``: CPL-BC (CPL plus behaviour cloning on the dataset, weight 10);
* ``cpl_regret``, ``cplbc_regret``: the same two with labels from CPL's own preference model, the regret
  teacher (:mod:`pbrl.envs.regret`: sum of rewards + V*(s_H) - V*(s_0) under the dataset's expert SAC
  critic, ``metadata["expert_policy"]``, or a value fitted to the returns-to-go where the dataset names none),
  as CPL's authors labelled their data; the plain rows get ``--teacher``'s reward-sum labels on the same pairs
  (:data:`TEACHER_ROWS`);
* ``iplawac``: IPL on the AWAC backbone (opt-in, like every registry agent not in ``DEFAULT_AGENTS``);
* ``dppo``: DPPO (preference predictor with the smoothness term, contrastive policy on the scored windows;
  opt-in), at the predictor's CPU size (``"small"``, 100 epochs; its default is the paper's ``"paper"``
  size for 10,000 epochs);
* ``dtr``: DTR (Decision Transformer + twin-Q regulariser on ensemble-normalised rewards; opt-in), at a CPU
  size (:data:`DEFAULT_AGENT_KWARGS`: width 64, 2 layers, 1 head, context 10, 64 contexts per update, 140 ms
  an update on one core against 7 s at the paper's 256 / 4 / 4 / 20 / 256);
* ``mriql_zscore``: MR + IQL whose ensemble members are z-scored over the dataset before they are averaged
  (DTR's ensemble normalisation, ``ensemble_normalization="zscore"``; opt-in), against ``mriql``'s plain
  average on the same labels;
* ``oppo``: OPPO (context encoder, HIM, optimal context);
* ``pearl``: PEARL with zero target labels (opt-in, see *Costs*). It learns from a *source* dataset's
  labels, those of the next dataset of the same domain (Meta-World or locomotion) with another task
  (:func:`pearl_source`), transferred to the target dataset by Gromov-Wasserstein. A seed's source labels
  are the ones the source dataset's own runs of that seed draw; the benchmark writes them once per
  (source, seed) into ``<out>/_labels/`` before the sweep (:func:`source_labels`), and PEARL's sweep point
  names that file in the config's ``labels`` key (as ``pbrl train offline --labels`` does; PEARL takes
  another task's labels whatever their sizes, ``labels_from_source_task``). A dataset with no such source
  has no PEARL point (it is listed under ``"skipped"``). Its runs' ``labels`` count is the source's.

How it runs. Every (dataset, agent, seed) is one offline sweep point (``kind: offline``, see
:class:`pbrl.config.OfflineConfig` and :func:`pbrl.train_offline.train_offline`) run by
:func:`pbrl.sweep.run_sweep` (``--workers`` processes, one torch thread each): one run directory per point,
``<out>/<dataset>/<agent>__<task>__<teacher>__b<pairs>__s<seed>/`` (``<agent>``: the registry name, a
variant's row name), with its live ``progress.csv`` and
``curve.csv`` (an evaluation every ``--eval-every`` updates). Running the same command again resumes the
unfinished runs and skips the finished ones; a run directory made with other settings stops the script
with the keys that differ (choose another ``--out``). A failed run is listed under ``"failures"``; the
others go on. Each run draws its labels itself from its seed alone (``label_dataset(dataset,
make_teacher(teacher, seed), n_pairs, segment_length, seed)``): every agent of a seed gets identical labels,
which each run keeps in its ``labels.h5``.

The score of a run is its final evaluation (``--eval-episodes`` deterministic episodes on the live task):
the success rate in % on Meta-World datasets, D4RL's normalised score ``100 (R - R_random) / (R_expert -
R_random)`` with D4RL's reference returns on MuJoCo locomotion datasets (hopper 3234.3 expert, whatever the
dataset's own expert reached; :data:`pbrl.envs.datasets.D4RL_REF_SCORES`), the metadata's reference returns
on other tasks that have them, else the raw return.
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
  on Meta-World, return elsewhere); the report groups runs by their config's agent, so a variant row's runs
  get their own, ``report/<dataset>/pt_iql/``;
* the table, printed as Markdown.

Datasets are, by default, two files written by ``scripts/make_datasets.py`` under ``--data-dir``
(``DEFAULT_DATASETS``): Hopper medium-replay and the noisy scripted drawer-open, one per domain. They are the
two where the agents differed most at the old 1,500-update budget; the other three of make_datasets' defaults
(HalfCheetah medium-replay, button-press and door-open) had every agent near 100 % or every agent at 6-7 there,
and at ten times the updates the five cost too much for this machine (*Costs*). ``--kinds medium-replay
scripted-noisy`` gives the five-dataset grid (every ``<task>/<kind>.hdf5`` of those kinds; ``--kinds all``
every file), and ``--datasets`` any D4RL-style HDF5 paths, local Minari ids, or
``collect:<task>:<policy>:<n_steps>`` specs, collected once (seed 0; the scripted Meta-World policy with noise
levels 0, 0.5 and 1) into ``<out>/_data/`` and shared by every run.

The agents are the offline agents of :mod:`pbrl.agents.registry` (the one list) at their own defaults,
which are the papers' (``docs/hyperparameters.md``), except for what this benchmark changes to fit 2 CPU
cores:

* 15,000 updates per run (``--steps``, ``DEFAULT_STEPS``) instead of the papers' 0.1-1M: the
  ``recommended_steps`` that ``scripts/offline_curve.py`` measured on the same two datasets
  (``benchmarks/offline_curve/``). IQL on the true reward and MR+IQL still rise on Hopper until about 11k
  updates (from about 33 normalised at 1,500 to 60), and MR+IQL's noisy drawer-open curve never stays
  within the rule's 5 % band, so the rule returns its whole budget;
* CPL and CPL-BC: 2 x 256 units and 32 pairs per update (``CPU_SIZES``; the authors' 2 x 512 and 96), BC
  with the same 2 x 256; their BC phase stays 40 % of the updates (the default ``bc_fraction``) and the CPL
  phase's lr warmup keeps its share of the run, 2 % (the authors' 10k of 500k updates; ``WARMUP_SHARE``);
* CPL-BC's BC weight is 10 instead of the authors' 1.0: the BC term is a mean over steps while the CPL
  term sums ``alpha log pi`` over the 50 steps of a segment, so 10 = ``2 alpha H`` gives a step the same
  pull from both;
* OPPO: 32 windows and 32 pairs per update (the authors' 64), its policy-lr warmup 10 % of the run (their
  10k of 100k updates);
* MR+IQL and PEARL: 100 reward-model epochs (PEARL's own default 300); PT + IQL at the transformer's
  CPU size ``"small"`` (its default: 100 epochs, embedding 64, one head; ``docs/hyperparameters.md``).

``--hidden`` replaces every agent's hidden layers and ``--agent-kwargs`` any argument of a row (by the row's
name: ``{"pt_iql": {"reward_epochs": 50}}``). ``bc`` is CPL's BC phase run for all the updates (on all the
data), so the table shows what the contrastive phase adds to it.

Costs. ``--dry-run`` prints the grid and a CPU estimate (``scripts/offline_costs.py``): per run, the row's
one-off CPU (reward-model fit, relabelling, label transfer) + its CPU per 1k updates x ``--steps`` / 1000 +
evaluations x ``--eval-episodes`` x one episode's CPU on the dataset's domain. The per-row numbers come
from the old script's 105 runs (``docs/bench_offline.json``) and, for the rows it did not run and for the
evaluations, from smoke runs (``docs/offline_costs.json``). At the defaults before the regret rows (2 datasets x 8 agents x 3 seeds
= 48 runs of 15,000 updates) that was about 6.2 CPU-hours, about 3 hours of wall time on 2 free cores; the
two regret rows add 12 runs at CPL's cost (``--dry-run`` gives the estimate): run
it in the background and rerun the same command to resume. The old defaults (5 datasets x 7 agents x 3
seeds x 1,500 updates) took 1.7; the measured curves ask for ten times the updates, and two datasets instead
of five keep the cost within four times that. IPL, CPL and CPL-BC take most of it (about 70 s per 1k
updates in the curve runs, against IQL's 24).

PT + IQL is in the defaults since the update loop dominates a run at this budget: it runs MR+IQL's IQL
update at the same CPU per update (a smoke run: 14.5 s per 1k updates against MR+IQL's 16.0) after a
one-off transformer fit (126 s CPU: 100 epochs on 500 pairs of 50 steps, where MR+IQL's ensemble stops at
97 % training accuracy after 11 epochs, 22 s) and a relabelling of every transition through a 50-step
window (28 s on 50,000 transitions). PEARL stays opt-in: it needs a source dataset of the same domain with
another task, which the default two datasets do not have (``--kinds`` gives it one), and it transfers the
labels (26 s) and fits its Gaussian reward (82 s) once per run.

    python scripts/bench_offline.py --dry-run                        # the grid, its size, a CPU estimate
    nohup python scripts/bench_offline.py &                          # defaults (rerun the same command to resume)
    nohup python scripts/bench_offline.py --kinds medium-replay scripted-noisy --agents iql_true bc mriql \
        pt_iql ipl cpl cplbc oppo pearl &                            # five datasets, every row
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

from offline_costs import COST_FILES, estimate_cpu_s
from offline_summary import LABELS, UPPER_BOUND, markdown, plot_bars, plot_curves, summarise, write_reports

from pbrl.agents.registry import agent_names, get_entry

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
#: updates per run: scripts/offline_curve.py's measured ``recommended_steps`` (benchmarks/offline_curve/offline_curve.json)
DEFAULT_STEPS = 15_000
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


def build_parser(description: str | None = None) -> argparse.ArgumentParser:
    """The benchmark's flags (``scripts/offline_curve.py`` reuses them with other defaults)."""
    p = argparse.ArgumentParser(description=description or __doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
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
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--n-pairs", type=int, default=500, help="labelled pairs per dataset and seed")
    p.add_argument("--segment-length", type=int, default=50)
    p.add_argument("--teacher", default="oracle", help="teacher preset of pbrl.teachers.make_teacher")
    p.add_argument("--eval-episodes", type=int, default=5)
    p.add_argument("--hidden", type=int, nargs="+", default=None, help="hidden layers of every agent's networks")
    p.add_argument("--agent-kwargs", default="{}", help='JSON {"cpl": {"bc_steps": 1000}, ...} merged over the defaults')
    p.add_argument("--workers", type=int, default=2, help="runs in parallel (processes, one torch thread each)")
    p.add_argument("--batch-seeds", action="store_true",
                   help="train each agent's seeds on a dataset in one process, vmapped (pbrl sweep --batch-seeds); "
                        "off by default: on a 2-core CPU it is no faster than the seeds one by one "
                        "(scripts/bench_speed.py), on a GPU it should be")
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
    if args.datasets is None and args.kinds is None:
        args.datasets = [str(Path(args.data_dir) / f"{rel}.hdf5") for rel in DEFAULT_DATASETS]
        missing = [d for d in args.datasets if not Path(d).exists()]
        if missing:
            raise SystemExit(f"error: the default datasets {missing} are not there; run scripts/make_datasets.py "
                             "first, or pass --datasets or --kinds")
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


def agent_kwargs(agent: str, args: argparse.Namespace, task: str | None = None) -> dict[str, Any]:
    """The benchmark's kwargs for ``agent``: the per-domain settings of its hyperparameter file for ``task``
    (``pbrl/hyperparams/<agent>.yml`` without its ``default`` entry, e.g. IPL's Meta-World configuration; the
    same file ``pbrl train`` reads), a variant's own (:data:`VARIANTS`), :data:`DEFAULT_AGENT_KWARGS`, ``--hidden``,
    ``--agent-kwargs``, then the warmups of :data:`WARMUP_SHARE` scaled to ``--steps`` unless given. A teacher row
    (:data:`TEACHER_ROWS`) gets its copied row's settings."""
    from pbrl.hyperparams import load

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


def reference_of(ds) -> tuple[float, float] | None:
    """The reference returns of ``ds``'s normalised score (:func:`pbrl.envs.datasets.reference_scores`): D4RL's
    on a MuJoCo locomotion task whatever the dataset measured, else its metadata's; ``None`` when unknown."""
    from pbrl.envs.datasets import reference_scores

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
        ref = [float(x) for x in reference_of(ds)] if metric == "normalized_score" else None
        infos.append({"name": name, "spec": spec, "dataset": source, "task_id": ds.task_id, "metric": metric,
                      "ref": ref, "transitions": len(ds), "episodes": int(ds.n_episodes)})
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
    as :func:`pbrl.train_offline.train_offline` does), written once per (source, seed) into ``<out>/_labels/``
    and reused. Targets without a source get none (their PEARL points are skipped)."""
    if "pearl" not in args.agents:
        return {}
    from pbrl.envs.datasets import label_dataset, load_dataset
    from pbrl.teachers import make_teacher

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
    from pbrl.sweep import SweepPoint, expand_grid

    labels = labels or {}
    base = {"kind": "offline", "total_feedback": args.n_pairs, "segment_length": args.segment_length,
            "steps": args.steps, "eval_every": args.eval_every, "checkpoint_every": args.eval_every,
            "n_eval_episodes": args.eval_episodes, "torch_threads": 1}
    points = []
    for d in datasets:
        for a in args.agents:
            cfg = {**base, "task": d["task_id"], "dataset": d["dataset"],
                   "agent_kwargs": agent_kwargs(a, args, d["task_id"])}
            per_seed = [({**cfg, "labels": labels[(d["name"], s)]}, [s]) for s in args.seeds if (d["name"], s) in labels] \
                if a == "pearl" else [(cfg, list(args.seeds))]
            for c, seeds in per_seed:
                try:
                    grid = expand_grid(c, agents=[AGENTS[a]], teachers=[teacher_of(a, args)], seeds=seeds)
                except ValueError as e:
                    raise SystemExit(f"error: {d['name']}, {a}: {e}") from None
                for p in grid:
                    name = p.name if run_prefix(a) == AGENTS[a] else f"{a}__{p.name.split('__', 1)[1]}"
                    points.append(SweepPoint(f"{d['slug']}/{name}", p.config))
    # seed-major (a stable sort): a benchmark stopped part-way has every (dataset, agent) cell at its first
    # seed before any cell gets a second
    return sorted(points, key=lambda p: p.config["seed"])


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
    prefix = run.split("__", 1)[0]
    name = next(d["name"] for d in datasets if d["slug"] == ds_slug)
    return name, next(a for a in agents if run_prefix(a) == prefix)


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
    results = run_sweep(points, out, backend="local", workers=args.workers, progress=not args.no_progress,
                        batch_seeds=getattr(args, "batch_seeds", False))
    return {n: r["error"] for n, r in results.items() if "error" in r}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    return run(parse_args(argv))


def run(args: argparse.Namespace) -> dict[str, Any]:
    """The benchmark for parsed flags: datasets, grid, sweep (unless ``--report-only``), summary, files."""
    out = Path(args.out)
    datasets = prepare_datasets(args, out)
    labels = source_labels(args, datasets, out)
    points = build_grid(args, datasets, labels)
    skipped = {d["name"]: "pearl: no other-task dataset of the same domain to transfer labels from"
               for d in datasets if "pearl" in args.agents and "pearl_source" not in d}
    for name, why in skipped.items():
        print(f"skipped on {name}: {why}")
    if args.dry_run:
        for p in points:
            print(p.name)
        by_slug = {d["slug"]: d for d in datasets}
        est = estimate_cpu_s([base_row(row_of(p.name, datasets, args.agents)[1]) for p in points],
                             [domain(by_slug[p.name.split("/", 1)[0]]["task_id"]) for p in points],
                             args.steps, args.eval_every, args.eval_episodes)
        if est is not None:
            print(f"about {est['cpu_s'] / 3600:.1f} CPU-hours: updates {est['updates_s'] / 3600:.1f} h, one-off reward "
                  f"fits and transfers {est['fixed_s'] / 3600:.1f} h, evaluations {est['evaluations_s'] / 3600:.1f} h "
                  f"(from docs/{' and docs/'.join(COST_FILES)}"
                  + (f"; {', '.join(est['unmeasured'])} counted as the measured rows' mean" if est["unmeasured"] else "") + ")")
        print(f"{len(points)} runs of {args.steps} updates, an evaluation of {args.eval_episodes} episodes every "
              f"{args.eval_every}")
        return {"points": [p.name for p in points], "cpu_s_estimate": None if est is None else est["cpu_s"],
                "estimate": est, "skipped": skipped}
    failures = {} if args.report_only else run_grid(args, out, datasets, points)
    runs, failed = finished_runs(out, points, datasets, args.agents)
    failures.update(failed)
    if not runs:
        raise SystemExit(f"error: no finished runs under {out}; failures: {failures or 'none'}")
    summary = summarise(runs, datasets, args.agents)
    reports = write_reports(out, runs, datasets, variants=set(VARIANTS))
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
        "skipped": skipped,
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
