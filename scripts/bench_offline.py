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
  size (:data:`DEFAULT_AGENT_KWARGS`: width 64, 2 layers, 1 head, context 10, 64 contexts per update, 140-190 ms
  an update on one core against 7 s at the paper's 256 / 4 / 4 / 20 / 256);
* ``mriql_zscore``: MR + IQL whose ensemble members are z-scored over the dataset before they are averaged
  (DTR's ensemble normalisation, ``ensemble_normalization="zscore"``; opt-in), against ``mriql``'s plain
  average on the same labels;
* ``oppo``: OPPO (context encoder, HIM, optimal context);
* ``vpl``: registered, but not a row that runs here: VPL learns one reward per user from labels of several
  users, and these datasets' labels come from one teacher (its run stops at validation, asking for
  ``--teacher multi_user``). Its benchmark is ``scripts/vpl_check.py`` on ``pointmass/two-goal``
  (``docs/results/vpl.md``);
* ``pearl``: PEARL with zero target labels (opt-in, see *Costs*). It learns from a *source* dataset's
  labels, those of the next dataset of the same domain (Meta-World or locomotion) with another task
  (:func:`pearl_source`), transferred to the target dataset by Gromov-Wasserstein. A seed's source labels
  are the ones the source dataset's own runs of that seed draw; the benchmark writes them once per
  (source, seed) into ``<out>/_labels/`` before the sweep (:func:`source_labels`), and PEARL's sweep point
  names that file in the config's ``labels`` key (as ``pbrl train offline --labels`` does; PEARL takes
  another task's labels whatever their sizes, ``labels_from_source_task``). A dataset with no such source
  has no PEARL point (it is listed under ``"skipped"``). Its runs' ``labels`` count is the source's.

How it runs. The benchmark is a study on the harness (:mod:`pbrl.app.bench`); its grid, rows and summary live
in :mod:`pbrl.app.offline_study` and :mod:`pbrl.app.offline_summary`, which ``scripts/offline_curve.py`` shares.
Every (dataset, agent, seed) is one offline sweep point (``kind: offline``, see
:class:`pbrl.app.config.OfflineConfig` and :func:`pbrl.app.train_offline.train_offline`) run by
:func:`pbrl.app.sweep.run_sweep` (``--workers`` processes, one torch thread each): one run directory per point,
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

* ``runs.csv`` and ``curves.csv``: every run's config, metrics and evaluations (what git keeps; the run
  directories are working state, and ``--report-only`` rebuilds everything below from the CSVs);
* ``bench_offline.json``: per dataset and agent, the IQM of the final score over seeds with its 95 %
  stratified-bootstrap interval (:mod:`pbrl.stats`), mean, std and per-seed values, the ratio to
  IQL-true's IQM, the IQM learning curve with bands; an aggregate row per agent (IQM over the datasets x
  seeds whose score is on the 0-100 scale, datasets as strata); the datasets where an agent reaches 80 %
  of IQL-true; timing per agent from the runs' ``metrics.json``: CPU seconds per run (``cpu_time_s``,
  the whole run: labels, reward fits, updates, evaluations), CPU seconds per 1k updates and updates per
  wall-second, both over the whole run;
* ``bench_offline.png``: bars of the IQM with its interval per dataset and for the aggregate, plus the CPU
  time per 1k updates; ``bench_offline_curves.png``: IQM score against updates with bands;
* ``report/<dataset>/``: :func:`pbrl.app.report.build_report`'s table and plots of that dataset's runs (success
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

* 50,000 updates per run (``--steps``, ``DEFAULT_STEPS``) instead of the papers' 0.1-1M: the
  ``recommended_steps`` that ``scripts/offline_curve.py`` measured on the D4RL-sized Hopper medium-replay
  (``benchmarks/offline_curve_d4rl/``: 100k, since neither IQL-true's nor MR+IQL's curve settles within the rule's
  5 % band), capped at ``CPU_STEP_CAP`` = 50k for the CPU. IQL on the true reward is at 24 normalised after 15k
  updates there and at 97-101 from 35k, MR+IQL reaches 100 at 50k. The old 15k was measured on the old 25k-step
  file (``benchmarks/offline_curve/``); drawer-open's curves flatten by 15k (``--steps 15000`` runs it cheaply);
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

Costs. ``--dry-run`` prints the grid and a CPU estimate (:func:`pbrl.app.offline_summary.estimate_cpu_s`): per run, the row's
one-off CPU (reward-model fit, relabelling, label transfer) + its CPU per 1k updates x ``--steps`` / 1000 +
evaluations x ``--eval-episodes`` x one episode's CPU on the dataset's domain. The per-row numbers come
from the old script's 105 runs (``docs/bench_offline.json``) and, for the rows it did not run and for the
evaluations, from smoke runs (``docs/offline_costs.json``). At the old 15k-update defaults before the regret rows (2 datasets x 8
agents x 3 seeds = 48 runs) that was about 6.2 CPU-hours, about 3 hours of wall time on 2 free cores (50k updates
cost about 3.3 times as much); the
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
from typing import Any

from pbrl.app.bench import run_study
from pbrl.app.offline_study import (  # noqa: F401  (the benchmark's names, for its readers and tests)
    AGENTS,
    CPU_SIZES,
    CPU_STEP_CAP,
    DEFAULT_AGENT_KWARGS,
    DEFAULT_AGENTS,
    DEFAULT_DATASETS,
    DEFAULT_STEPS,
    EVAL_SHARE,
    TEACHER_ROWS,
    VARIANTS,
    WARMUP_SHARE,
    WIDE_KINDS,
    agent_class,
    agent_kwargs,
    build_grid,
    needs_labels,
    offline_study,
    parse_offline_args,
    prepare_datasets,
    run_prefix,
)

STUDY = offline_study("bench_offline", __doc__, "benchmarks/bench_offline")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    return parse_offline_args(argv, STUDY)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    return run_study(STUDY, argv)


if __name__ == "__main__":
    main()
