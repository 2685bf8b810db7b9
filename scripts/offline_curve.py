"""Measure where the offline agents' learning curves flatten, to choose ``scripts/bench_offline.py``'s ``--steps``.

Runs IQL on the true reward, MR+IQL, IPL and CPL (``--agents``) for a long budget (``--steps``, default
``CURVE_STEPS``) with an evaluation every ``--eval-every`` updates (``CURVE_EVAL_EVERY``), on two of
bench_offline's datasets (``CURVE_DATASETS`` under ``--data-dir``, or any ``--datasets``) with two seeds
(``--seeds``, ``CURVE_SEEDS``). It is bench_offline's grid (:mod:`pbrl.app.offline_study`, a study on the
harness :mod:`pbrl.app.bench`) with other defaults: the same flags, CPU sizes,
labels and run-directory layout, run by ``pbrl sweep`` (rerun the same command to resume), with
bench_offline's table, plots and per-dataset ``pbrl report`` in ``--out``. On top, for every dataset and
agent, and for the aggregate curve over the datasets with a 0-100 score:

* ``plateau``: the mean of the IQM curve over the last ``--plateau-share`` (20 %) of the updates;
* ``flat_at``: the first evaluated update count from which the IQM curve stays within ``--tolerance``
  (5 %) x ``scale`` of its plateau, ``scale`` being the largest absolute IQM any agent's curve reaches in
  that panel; ``flat_before_window`` says whether that happens before the plateau's own window (if not,
  the budget was too short to show a plateau, and a warning says so);
* ``recommended_steps``: the largest aggregate ``flat_at`` over the agents (over every dataset's when no
  dataset has a 0-100 score; the whole budget for a curve that never settles): the budget by which every
  measured agent's curve has flattened. ``bench_offline.DEFAULT_STEPS`` is to be replaced by it.

The defaults are sized to about 2.4 CPU-hours (bench_offline's five datasets x 3 seeds x 20k updates cost
about 11.5 by the same estimate, too much for a shared 2-core machine):

* two datasets, one per domain, each the one where bench_offline's agents differ most at 1,500 updates
  (``docs/bench_offline.json``): Hopper medium-replay (IPL and CPL collapse below 0 where IQL scores 32)
  and the noisy scripted drawer-open (MR+IQL 87 %, IPL 60 % with a wide spread, CPL 13 %). The other
  Meta-World datasets were at or near 100 % for most agents and HalfCheetah at 6-7 for all, so their
  curves say little about when learning stops; both chosen datasets have a 0-100 score, so the aggregate
  curve exists;
* the four agents: the IQL backbone on the true and on a learned reward, IPL, CPL (the other rows share
  these mechanisms: PT + IQL and PEARL are IQL on another learned reward, CPL-BC and BC CPL's recipe);
* two seeds (with two runs per panel the IQM is their mean; the bands show their spread);
* 15,000 updates, ten times bench_offline's placeholder budget: long enough that the plateau window (the
  last 20 %, 12k-15k) lies far past 1,500, so a flatten point anywhere up to 12k is seen before it;
* an evaluation every 750 updates: 20 points per curve, 4 in the plateau window, and a flatten point
  located to within 750 updates (5 % of the budget).

``--dry-run`` prints the grid and its estimate (:func:`pbrl.app.offline_summary.estimate_cpu_s`): per run, the row's one-off
CPU + its CPU per 1k updates x the updates + evaluations x episodes x one episode's CPU, from the old
benchmark's runs (``docs/bench_offline.json``) and smoke runs (``docs/offline_costs.json``). At the
defaults: 16 runs, about 2.4 CPU-hours (2.1 h of updates, IPL's the largest at 55 s per 1k, 0.2 h of
evaluations), about 1.2 h of wall time on 2 free cores.

Read CPL's point with care: its schedule scales with the budget (the BC phase is 40 % of the updates, the
lr warmup 2 %), so its curve at update t of a long run is not the final score of a t-update run; its
``flat_at`` is that of the long recipe, whose CPL phase starts at 0.4 x ``--steps``. IQL, MR+IQL and IPL
have no budget-dependent schedule: their curves are those of shorter runs.

Writes ``<out>/offline_curve.json`` and ``<out>/offline_curve.png`` (IQM curves with 95 % bands, a dotted
line at each ``flat_at``) and prints the flatten points as Markdown.

    python scripts/make_datasets.py                            # the datasets (once)
    python scripts/offline_curve.py --dry-run                  # the grid and its CPU estimate
    nohup python scripts/offline_curve.py &                    # the measurement (rerun to resume)
    python scripts/offline_curve.py --report-only              # the analysis of the finished runs
"""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np

from pbrl.app.bench import BadInput, StudyRuns, run_study
from pbrl.app.offline_study import (
    DEFAULT_DATASETS,
    add_arguments,
    check_args,
    offline_result,
    offline_study,
    write_result,
)
from pbrl.app.offline_summary import AGGREGATE, plot_curves

CURVE_AGENTS = ("iql_true", "mriql", "ipl", "cpl")
#: make_datasets' files (under --data-dir) measured when --datasets is not given: one locomotion, one Meta-World
#: (bench_offline's default datasets)
CURVE_DATASETS = DEFAULT_DATASETS
CURVE_SEEDS = (0, 1)
CURVE_STEPS = 15_000
CURVE_EVAL_EVERY = 750


def curve_arguments(p: argparse.ArgumentParser) -> None:
    """bench_offline's flags with this measurement's defaults, and its own two."""
    add_arguments(p)
    p.set_defaults(agents=list(CURVE_AGENTS), steps=CURVE_STEPS, eval_every=CURVE_EVAL_EVERY)
    p.add_argument("--tolerance", type=float, default=0.05,
                   help="flat = within this share of the panel's largest |IQM| of the plateau")
    p.add_argument("--plateau-share", type=float, default=0.2, help="last share of the updates that defines the plateau")


def curve_check(a: argparse.Namespace, p: argparse.ArgumentParser) -> None:
    check_args(a, p)
    if not 0.0 < a.tolerance < 1.0:
        raise BadInput(f"--tolerance must be in (0, 1), got {a.tolerance}")
    if not 0.0 < a.plateau_share < 1.0:
        raise BadInput(f"--plateau-share must be in (0, 1), got {a.plateau_share}")


def flat_point(steps, values, scale: float, tolerance: float, plateau_share: float) -> dict[str, Any]:
    """Plateau and flatten point of one IQM curve (see the module docstring).

    Args:
        steps: ``[K]`` evaluated update counts, increasing; values: ``[K]`` the IQM there.
        scale: the panel's score scale (largest absolute IQM); the band is ``tolerance * scale``.
    """
    steps, values = np.asarray(steps, dtype=np.int64), np.asarray(values, dtype=np.float64)
    window = steps >= (1.0 - plateau_share) * steps[-1]
    plateau = float(values[window].mean())
    band = tolerance * (scale if scale > 0 else 1.0)
    inside = np.abs(values - plateau) <= band
    i = len(values)
    while i > 0 and inside[i - 1]:
        i -= 1
    flat_at = int(steps[i]) if i < len(values) else None
    before = flat_at is not None and bool(steps[window][0] > flat_at)
    return {"plateau": plateau, "band": band, "flat_at": flat_at, "flat_before_window": before,
            "plateau_from": int(steps[window][0])}


def analyse(summary: dict[str, Any], agents: list[str], tolerance: float, plateau_share: float) -> dict[str, Any]:
    """Flatten points per dataset and agent and for the aggregate, the recommended ``--steps``, warnings."""
    panels = {name: rows for name, rows in summary["per_dataset"].items() if rows}
    if summary["aggregate"]:
        panels[AGGREGATE] = summary["aggregate"]
    points: dict[str, dict[str, Any]] = {}
    warnings = []
    for name, rows in panels.items():
        curves = {a: rows[a]["curve"] for a in agents if a in rows and rows[a]["curve"]["step"]}
        scale = max((abs(v) for c in curves.values() for v in c["value"]), default=1.0)
        points[name] = {}
        for a, c in curves.items():
            pt = flat_point(c["step"], c["value"], scale, tolerance, plateau_share)
            points[name][a] = pt
            if not pt["flat_before_window"]:
                warnings.append(f"{a} on {name}: the IQM curve does not settle before its plateau window "
                                f"(from {pt['plateau_from']} updates); a longer --steps is needed to see a plateau")
    basis = [AGGREGATE] if AGGREGATE in points else list(points)
    budget = max((c["step"][-1] for rows in panels.values() for a in agents if a in rows
                  for c in [rows[a]["curve"]] if c["step"]), default=0)
    flat = [pt["flat_at"] if pt["flat_at"] is not None else budget for n in basis for pt in points[n].values()]
    return {"points": points, "basis": basis, "recommended_steps": int(max(flat)) if flat else None,
            "warnings": warnings}


def markdown(analysis: dict[str, Any], agents: list[str]) -> str:
    lines = ["| panel | " + " | ".join(agents) + " |", "|---|" + "---:|" * len(agents)]
    for name, pts in analysis["points"].items():
        cells = []
        for a in agents:
            pt = pts.get(a)
            cells.append("-" if pt is None else
                         f"{'never' if pt['flat_at'] is None else pt['flat_at']} ({pt['plateau']:.1f} ± {pt['band']:.1f})")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines.append(f"\nflat at (plateau ± band), in updates; recommended --steps: {analysis['recommended_steps']} "
                 f"(from {', '.join(analysis['basis'])})")
    return "\n".join(lines)


def summarise(ctx: StudyRuns) -> dict[str, Any]:
    """bench_offline's summary (``bench_offline.json`` and its figures), then the flatten points
    (``offline_curve.json``, ``offline_curve.png``)."""
    a, out = ctx.args, ctx.out
    res = offline_result(ctx)
    write_result(res, out)
    summary = {k: res[k] for k in ("per_dataset", "aggregate")}
    analysis = analyse(summary, a.agents, a.tolerance, a.plateau_share)
    marks = {name: {ag: pt["flat_at"] for ag, pt in pts.items()} for name, pts in analysis["points"].items()}
    plot_curves(summary, a.agents, out / "offline_curve.png", marks=marks)
    return {"settings": res["settings"], "tolerance": a.tolerance, "plateau_share": a.plateau_share, **analysis,
            "curves": {name: {ag: row["curve"] for ag, row in rows.items()} for name, rows in
                       {**summary["per_dataset"], **({AGGREGATE: summary["aggregate"]} if summary["aggregate"] else {})}.items()},
            "failures": res["failures"]}


def report_markdown(res: dict[str, Any], ctx: StudyRuns) -> str:
    return markdown(res, ctx.args.agents) + "".join(f"\nwarning: {w}" for w in res["warnings"])


STUDY = offline_study("offline_curve", __doc__, "benchmarks/offline_curve", seeds=CURVE_SEEDS, arguments=curve_arguments,
                      check=curve_check, summarise=summarise, markdown=report_markdown, result_file="offline_curve.json")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    from pbrl.app.offline_study import parse_offline_args

    return parse_offline_args(argv, STUDY)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    return run_study(STUDY, argv)


if __name__ == "__main__":
    main()
