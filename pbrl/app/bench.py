"""One benchmark harness: the machinery every study under ``scripts/`` shares.

A study is a small declarative definition (:class:`Study`): its name and default output folder, its own
flags, its grid of :class:`pbrl.app.sweep.SweepPoint` (or, for a study that trains in-process, its list of
units), and how its finished runs become a summary, a Markdown table and a figure. This module owns the
rest:

* the common arguments: ``--out``, ``--seeds``, ``--workers``, ``--set`` (JSON merged into every run's
  config), ``--dry-run`` (the grid, its size and a CPU estimate from the runs that have finished),
  ``--report-only`` (summarise what is there), ``--export`` (write the CSVs only), ``--no-progress``;
* the grid, run by ``pbrl sweep`` (:func:`pbrl.app.sweep.run_sweep`): one run directory per point under
  ``--out``; running the same command again resumes the unfinished runs and skips the finished ones, and a
  run directory made with other settings stops the study (exit 2) with the keys that differ;
* the compact export (:func:`export`): ``<out>/runs.csv`` (one row per run: its name, state, config and
  metrics) and ``<out>/curves.csv`` (long format: run, step, then every evaluation column), written at the
  end of every study and by ``--report-only``. Run directories are working state (git-ignored); a study's
  committed results are these two CSVs, its JSON summary and its figures, and :func:`load_records`
  rebuilds the runs from the CSVs where the run directories are absent, so a clean clone regenerates
  every table and plot with ``--report-only``;
* the summary helpers: IQM with 95 % stratified-bootstrap intervals (:func:`interval`, :mod:`pbrl.stats`),
  IQM learning curves with bands (:func:`iqm_curve`), the Markdown table (:func:`markdown_table`) and the
  bar and curve figures (:func:`plot_bars`, :func:`plot_curves`).

A study script is then::

    STUDY = Study(name="bench_x", description=__doc__, out="benchmarks/bench_x", result_file="bench_x.json",
                  arguments=add_flags, grid=build_grid, summarise=summarise, markdown=markdown, plot=plot)

    if __name__ == "__main__":
        run_study(STUDY)

See ``docs/studies.md`` for a walk-through.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pbrl import stats
from pbrl.app.bench_plots import plot_bars, plot_curves
from pbrl.app.config import config_from_dict
from pbrl.app.report import RunRecord, load_runs
from pbrl.app.run_dir import CURVE_FIELDS, RunDir
from pbrl.app.sweep import SweepPoint, check_existing_runs, run_sweep
from pbrl.io import atomic_write, portable_paths

__all__ = ["BadInput", "Study", "StudyRuns", "StudyRecord", "run_study", "build_parser", "export", "load_records",
           "study_grid", "interval", "iqm_curve", "cost_estimate", "markdown_table", "plot_bars", "plot_curves",
           "merge_overrides", "provenance", "CPU_SAC_KWARGS", "CPU_REWARD_MODEL_KWARGS", "RUNS_CSV", "CURVES_CSV", "N_RESAMPLES"]

RUNS_CSV = "runs.csv"
"""A study's per-run table: one row per run directory."""
CURVES_CSV = "curves.csv"
"""A study's learning curves, long format: one row per (run, evaluation)."""
N_RESAMPLES = 2000
"""Bootstrap resamples of every interval."""
#: SAC sizes of the SAC-based runs of the CPU-sized studies (2 CPU cores): 2 x 128 networks, batch 256, one
#: gradient step per 2 env steps (B-Pref's are 3 x 256, batch 512, one step per env step: about 6x the CPU)
CPU_SAC_KWARGS = {"policy_kwargs": {"net_arch": [128, 128]}, "batch_size": 256, "train_freq": 2, "gradient_steps": 1}
#: reward-model sizes of the CPU-sized online studies (B-Pref's: 3 x 256)
CPU_REWARD_MODEL_KWARGS = {"hidden": [128, 128, 128]}
#: ``runs.csv``'s readable columns, before the full ``config`` and ``metrics`` (JSON) that rebuild a run
_RUN_COLUMNS = ("run", "status", "agent", "task", "teacher", "budget", "seed", "steps", "labels", "cpu_time_s",
                "wall_time_s", "final_mean_return", "final_success_rate", "final_normalized_score", "error")
#: config keys the harness's ``--set`` may not change: they name the run directory
_NAMING_KEYS = ("agent", "task", "teacher", "total_feedback", "seed", "kind")


@dataclass
class StudyRecord(RunRecord):
    """A run as a study sees it: :class:`pbrl.app.report.RunRecord` plus the error of a failed run; ``name`` is
    its path relative to the study's folder (``<run>`` or ``<dataset>/<run>``)."""

    name: str = ""
    error: str | None = None


@dataclass
class StudyRuns:
    """What a study's summary gets: the parsed flags, the output folder, the grid (``None`` when it could
    not be built, e.g. ``--report-only`` on a clone without the datasets), the finished runs, and the failed
    and unfinished points."""

    args: argparse.Namespace
    out: Path
    points: list[SweepPoint] | None
    records: list[StudyRecord]
    failures: dict[str, str] = field(default_factory=dict)
    unfinished: list[str] = field(default_factory=list)
    source: str = "run directories"


@dataclass
class Study:
    """A study's definition (see the module docstring).

    Args:
        name: the study's name (its script's).
        description: the script's docstring (its first paragraph is ``--help``'s description).
        out: default ``--out`` (``None``: ``check`` sets it).
        result_file: the JSON summary written into ``--out`` (a function of the flags, e.g. another file in a
            calibration mode; ``None``: the study writes its own files).
        summarise: ``f(StudyRuns) -> dict``, the JSON summary.
        arguments: ``f(parser)`` adds the study's own flags.
        check: ``f(args, parser)`` validates them (``parser.error`` for one clear line, exit 2).
        prepare: ``f(args, out)`` before the grid (e.g. collect the datasets); ``args.report_only`` tells it
            whether it may do work.
        grid: ``f(args) -> [SweepPoint]``, validated; ``None`` for an in-process study (``units``).
        markdown: ``f(summary, StudyRuns) -> str``, printed at the end.
        plot: ``f(summary, StudyRuns) -> [paths]``.
        estimate: ``f(points, args, out) -> str | dict | None``: the dry run's CPU estimate (default:
            :func:`cost_estimate` from the finished runs); a dict's ``"text"`` is printed and its other keys
            join the dry run's result.
        seeds: default ``--seeds``: an int means ``--seeds N`` is a count (seeds ``0 .. N-1``), a tuple
            means ``--seeds`` lists the seeds themselves. ``args.seed_list`` holds them either way.
        workers: default ``--workers``.
        set_in_grid: the grid merges ``args.overrides`` (``--set``) itself; otherwise the harness merges it
            into every point's config.
        only_grid: summarise the grid's runs only (otherwise every run under ``--out``).
        units: ``f(args) -> [{"run": name, ...}]``, the units of an in-process study.
        run_unit: ``f(args, unit) -> dict``, one unit's row of metrics (and ``"curve"``: its evaluation
            rows); rows already in ``runs.csv`` with the same unit are skipped (resume).
    """

    name: str
    description: str
    out: str | None
    result_file: str | Callable[[argparse.Namespace], str] | None
    summarise: Callable[[StudyRuns], dict[str, Any]]
    arguments: Callable[[argparse.ArgumentParser], None] | None = None
    check: Callable[[argparse.Namespace, argparse.ArgumentParser], None] | None = None
    prepare: Callable[[argparse.Namespace, Path], None] | None = None
    grid: Callable[[argparse.Namespace], list[SweepPoint]] | None = None
    markdown: Callable[[dict[str, Any], StudyRuns], str] | None = None
    plot: Callable[[dict[str, Any], StudyRuns], list[str]] | None = None
    estimate: Callable[[list[SweepPoint], argparse.Namespace, Path], str | dict | None] | None = None
    seeds: int | tuple[int, ...] = 3
    workers: int = 2
    set_in_grid: bool = False
    only_grid: bool = True
    units: Callable[[argparse.Namespace], list[dict[str, Any]]] | None = None
    run_unit: Callable[[argparse.Namespace, dict[str, Any]], dict[str, Any]] | None = None


# ---------------------------------------------------------------------------------------------- arguments


def build_parser(study: Study) -> argparse.ArgumentParser:
    """The study's parser: the harness's common flags, then the study's own."""
    p = argparse.ArgumentParser(prog=f"{study.name}.py", description=study.description.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    if isinstance(study.seeds, int):
        p.add_argument("--seeds", type=int, default=study.seeds, help="number of seeds (0 .. seeds-1)")
    else:
        p.add_argument("--seeds", type=int, nargs="+", default=list(study.seeds), help="the seeds")
    p.add_argument("--workers", type=int, default=study.workers, help="runs in parallel (processes)")
    p.add_argument("--out", default=study.out, help=f"the study's folder (default {study.out})")
    p.add_argument("--set", dest="overrides", default="{}",
                   help="JSON merged into every run's config (e.g. smaller sizes for a smoke run)")
    p.add_argument("--dry-run", action="store_true", help="print the grid and a CPU estimate, then exit")
    p.add_argument("--report-only", action="store_true",
                   help="summarise the finished runs only (from the run directories, else runs.csv / curves.csv)")
    p.add_argument("--export", action="store_true", help=f"write {RUNS_CSV} and {CURVES_CSV} from the run directories")
    p.add_argument("--no-progress", action="store_true")
    if study.arguments is not None:
        study.arguments(p)
    return p


def parse_args(study: Study, argv: list[str] | None = None) -> argparse.Namespace:
    """Parse and check the flags: the harness's, then the study's ``check``; bad input exits with code 2."""
    p = build_parser(study)
    a = p.parse_args(argv)
    try:
        a.overrides = json.loads(a.overrides)
    except json.JSONDecodeError as e:
        p.error(f"--set must be a JSON object ({e})")
    if not isinstance(a.overrides, dict):
        p.error("--set must be a JSON object")
    bad = [k for k in a.overrides if k in _NAMING_KEYS]
    if bad and not study.set_in_grid:
        p.error(f"--set may not change {bad}: they name the run directories (use the study's own flags)")
    if isinstance(study.seeds, int):
        if a.seeds < 1:
            p.error("--seeds must be >= 1")
        a.seed_list = list(range(a.seeds))
    else:
        if not a.seeds or min(a.seeds) < 0 or len(set(a.seeds)) != len(a.seeds):
            p.error(f"give distinct seeds >= 0, got {a.seeds}")
        a.seed_list = list(a.seeds)
    if a.workers < 1:
        p.error("--workers must be >= 1")
    if study.check is not None:
        study.check(a, p)
    if a.out is None:
        p.error("--out is required")
    return a


def merge_overrides(config: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """``config`` with ``overrides`` merged in: a dict value merges one level into the config's dict."""
    cfg = dict(config)
    for k, v in overrides.items():
        cfg[k] = {**cfg[k], **v} if isinstance(v, dict) and isinstance(cfg.get(k), dict) else v
    return cfg


def _with_overrides(points: list[SweepPoint], overrides: dict[str, Any]) -> list[SweepPoint]:
    """Every point with ``--set`` merged into its config, validated again."""
    if not overrides:
        return points
    out = []
    for p in points:
        cfg = merge_overrides(p.config, overrides)
        try:
            resolved = config_from_dict(dict(cfg), kind=cfg.get("kind")).to_dict()
        except ValueError as e:
            raise ValueError(f"--set on {p.name}: {e}") from None
        out.append(SweepPoint(p.name, {**resolved, **({"provenance": cfg["provenance"]} if "provenance" in cfg else {})}))
    return out


def provenance() -> dict[str, str]:
    """What a result records about where it came from: the date (UTC) and the checkout's short commit
    (``"unknown"`` outside a git checkout)."""
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                cwd=Path(__file__).parent).stdout.strip()
    except OSError:
        commit = ""
    return {"date": time.strftime("%Y-%m-%d", time.gmtime()), "commit": commit or "unknown"}


# ---------------------------------------------------------------------------------------------- export


def _run_row(rec: StudyRecord) -> dict[str, Any]:
    cfg, m = rec.config, rec.metrics or {}
    final = m.get("final") or {}
    row = {"run": rec.name, "status": rec.status, "agent": cfg.get("agent"), "task": cfg.get("task"),
           "teacher": cfg.get("teacher"), "budget": cfg.get("total_feedback"), "seed": cfg.get("seed"),
           "steps": m.get("steps"), "labels": m.get("labels"), "cpu_time_s": m.get("cpu_time_s"),
           "wall_time_s": m.get("wall_time_s"), "final_mean_return": final.get("mean_return"),
           "final_success_rate": final.get("success_rate"), "final_normalized_score": final.get("normalized_score"),
           "error": rec.error}
    row["config"] = json.dumps(portable_paths(cfg), sort_keys=True, separators=(",", ":"), default=str)
    row["metrics"] = "" if rec.metrics is None else json.dumps(rec.metrics, sort_keys=True, separators=(",", ":"),
                                                                default=str)
    return {k: ("" if v is None else v) for k, v in row.items()}


def _write_csv(path: Path, columns: list[str], rows: list[dict[str, Any]]) -> None:
    with atomic_write(path, suffix=".csv") as tmp, open(tmp, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
        w.writeheader()
        for r in rows:
            w.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in columns})


def _cell(v: Any) -> Any:
    """A CSV cell: NaN and ``None`` as empty."""
    return "" if v is None or (isinstance(v, float) and math.isnan(v)) else v


def export(out: str | Path, records: list[StudyRecord] | None = None) -> dict[str, Any]:
    """Write ``<out>/runs.csv`` and ``<out>/curves.csv`` from the study's runs (:func:`load_records`: the run
    directories, and the rows of an earlier export whose run directory is not here). Returns
    ``{"runs": n, "curve_rows": n, "files": [...]}``; a folder without runs writes nothing."""
    out = Path(out)
    records = load_records(out) if records is None else records
    if not records:
        return {"runs": 0, "curve_rows": 0, "files": []}
    records = sorted(records, key=lambda r: r.name)
    _write_csv(out / RUNS_CSV, [*_RUN_COLUMNS, "config", "metrics"], [_run_row(r) for r in records])
    cols = list(CURVE_FIELDS)
    for k in (k for r in records for row in r.curve for k in row):
        if k not in cols:
            cols.append(k)
    rows = [{"run": r.name, **{k: _cell(v) for k, v in row.items()}} for r in records for row in r.curve]
    _write_csv(out / CURVES_CSV, ["run", *cols], rows)
    return {"runs": len(records), "curve_rows": len(rows), "files": [str(out / RUNS_CSV), str(out / CURVES_CSV)]}


def _read_csv(path: Path) -> list[dict[str, str]]:
    if not path.exists():
        return []
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _from_export(out: Path) -> dict[str, StudyRecord]:
    """The runs of ``<out>/runs.csv`` and ``curves.csv`` as records (``{name: record}``)."""
    curves: dict[str, list[dict[str, float]]] = {}
    for row in _read_csv(out / CURVES_CSV):
        curves.setdefault(row.pop("run"), []).append({k: float(v) if v != "" else float("nan") for k, v in row.items()})
    recs = {}
    for row in _read_csv(out / RUNS_CSV):
        curve = curves.get(row["run"], [])
        # a column this run never filled (another run's extra field) is not part of its curve
        keep = set(CURVE_FIELDS) | {k for c in curve for k, v in c.items() if not math.isnan(v)}
        recs[row["run"]] = StudyRecord(
            path=out / row["run"], config=json.loads(row["config"]), status=row["status"],
            metrics=json.loads(row["metrics"]) if row["metrics"] else None,
            curve=[{k: v for k, v in c.items() if k in keep} for c in curve], name=row["run"],
            error=row.get("error") or None)
    return recs


def load_records(out: str | Path, names: list[str] | None = None) -> list[StudyRecord]:
    """The study's runs under ``out``: every run directory (config, state, metrics, curve), and the runs of
    ``runs.csv`` / ``curves.csv`` whose directory is not there. ``names`` keeps those runs only."""
    out = Path(out)
    recs = _from_export(out) if out.exists() else {}
    try:
        found = load_runs([out]) if out.exists() else []
    except ValueError:  # no run directories: the export alone
        found = []
    for r in found:
        name = r.path.relative_to(out).as_posix()
        error = RunDir(r.path).status().get("error") if r.status == "failed" else None
        recs[name] = StudyRecord(path=r.path, config=r.config, status=r.status, metrics=r.metrics, curve=r.curve,
                                 name=name, error=error)
    if names is not None:
        wanted = set(names)
        return [recs[n] for n in names if n in recs and n in wanted]
    return [recs[n] for n in sorted(recs)]


# ---------------------------------------------------------------------------------------------- summaries


def interval(cols: list, seed: int = 0, n_resamples: int = N_RESAMPLES) -> dict[str, float]:
    """IQM with its 95 % stratified-bootstrap interval (``cols``: one array of scores per stratum)."""
    iv = stats.stratified_bootstrap_ci([np.asarray(c, float) for c in cols], "iqm", n_resamples=n_resamples, seed=seed)
    return {"value": float(iv.value), "low": float(iv.low), "high": float(iv.high), "n_runs": int(iv.n_runs)}


def iqm_curve(strata: list[tuple[list[RunRecord], Callable[[dict], float]]], seed: int = 0) -> dict[str, list[float]]:
    """IQM learning curve with 95 % bands: ``strata`` = ``[(runs, score of an evaluation record)]``; a step
    counts when every stratum has an evaluation there."""
    per: list[dict[int, list[float]]] = [{} for _ in strata]
    for k, (runs, f) in enumerate(strata):
        for r in runs:
            for c in r.curve:
                per[k].setdefault(int(c["step"]), []).append(f(c))
    steps = sorted(set.intersection(*(set(p) for p in per))) if per else []
    res: dict[str, list[float]] = {"step": [], "value": [], "low": [], "high": []}
    for s in steps:
        iv = interval([p[s] for p in per], seed)
        res["step"].append(s)
        for k in ("value", "low", "high"):
            res[k].append(iv[k])
    return res


def cost_estimate(points: list[SweepPoint], out: Path, key: Callable[[SweepPoint], str] | None = None) -> str:
    """The measured CPU time per finished run of each row (default: the config's agent) under ``out``, and the
    CPU-hours the unfinished points will take at those rates (empty when nothing has finished yet)."""
    key = key or (lambda p: p.config["agent"])
    per: dict[str, list[float]] = {}
    done = set()
    for p in points:
        m = out / p.name / "metrics.json"
        if m.exists():
            per.setdefault(key(p), []).append(float(json.loads(m.read_text()).get("cpu_time_s", np.nan)))
            done.add(p.name)
    if not per:
        return ""
    rate = {k: float(np.nanmean(v)) for k, v in per.items()}
    fallback = float(np.nanmean(list(rate.values())))
    left = sum(rate.get(key(p), fallback) for p in points if p.name not in done)
    rates = ", ".join(f"{k} {v / 60:.1f}" for k, v in sorted(rate.items()))
    return (f"{len(done)} finished; CPU-min per run: {rates}; the other {len(points) - len(done)} runs: "
            f"about {left / 3600:.1f} CPU-h")


def markdown_table(header: list[str], rows: list[list[Any]], align: str | None = None) -> str:
    """A Markdown table; ``align`` one character per column (``l`` left, ``r`` right; default: the first
    column left, the others right)."""
    align = align or "l" + "r" * (len(header) - 1)
    rule = "|" + "|".join("---:" if a == "r" else "---" for a in align) + "|"
    return "\n".join(["| " + " | ".join(header) + " |", rule, *("| " + " | ".join(map(str, r)) + " |" for r in rows)])


# ---------------------------------------------------------------------------------------------- running


class BadInput(SystemExit):
    """Bad input to a script or a study, raised before any work: ``error: <message>`` on stderr (printed once,
    when made) and exit status 2, as every ``pbrl`` command's. ``str()`` is the message.

    Scripts used to raise ``SystemExit`` with the message as its code, which exits with status 1.
    """

    def __init__(self, message: str):
        print(f"error: {message}", file=sys.stderr)
        super().__init__(2)
        self.message = message

    def __str__(self) -> str:
        return self.message


def study_grid(study: Study, a: argparse.Namespace) -> list[SweepPoint]:
    """The study's grid with ``--set`` merged into every point (unless the grid merges it itself), validated."""
    points = study.grid(a)
    return points if study.set_in_grid else _with_overrides(points, a.overrides)


def _dry_run(study: Study, a: argparse.Namespace, out: Path, points: list[SweepPoint]) -> dict[str, Any]:
    for p in points:
        print(p.name)
    print(f"{len(points)} runs")
    est = study.estimate(points, a, out) if study.estimate is not None else cost_estimate(points, out)
    extra = est if isinstance(est, dict) else {"estimate": est}
    text = extra.pop("text", None) if isinstance(est, dict) else est
    if text:
        print(text)
    return {"points": [p.name for p in points], **extra}


def _sweep(study: Study, a: argparse.Namespace, out: Path, points: list[SweepPoint]) -> dict[str, str]:
    """Run (resume, skip) the grid; ``{point: error}`` of the runs that failed."""
    try:
        check_existing_runs(points, out)
    except ValueError as e:
        raise BadInput(str(e)) from None
    for p in points:
        (out / p.name).parent.mkdir(parents=True, exist_ok=True)
    results = run_sweep(points, out, backend="local", workers=a.workers, progress=not a.no_progress,
                        batch_seeds=getattr(a, "batch_seeds", False))
    return {n: r["error"] for n, r in results.items() if "error" in r}


def _in_process(study: Study, a: argparse.Namespace, out: Path) -> list[StudyRecord]:
    """Run an in-process study's units that ``runs.csv`` does not hold yet (none with ``--report-only``),
    exporting after each one; the records of the units that are done."""
    units = study.units(a)
    done = {r.name: r for r in load_records(out)}
    for u in units:
        prev = done.get(u["run"])
        cfg = json.loads(json.dumps(u, default=str))
        if prev is not None and prev.config != cfg:
            diff = sorted(k for k in set(prev.config) | set(cfg) if prev.config.get(k) != cfg.get(k))
            raise BadInput(f"{out / RUNS_CSV} holds {u['run']} with other settings ({', '.join(diff)}); rerun with "
                         "the same flags or choose another --out")
    todo = [] if a.report_only else [u for u in units if u["run"] not in done]
    if a.dry_run:
        for u in units:
            print(u["run"] + ("" if u in todo else " (done)"))
        print(f"{len(units)} runs, {len(todo)} to run")
        return []
    if todo and study.prepare is not None:
        study.prepare(a, out)
    for u in todo:
        row = study.run_unit(a, u)
        curve = row.pop("curve", [])
        cfg = json.loads(json.dumps(u, default=str))
        done[u["run"]] = StudyRecord(path=out / u["run"], config=cfg, status="finished", metrics=row, curve=curve,
                                     name=u["run"])
        export(out, list(done.values()))
    return [done[u["run"]] for u in units if u["run"] in done]


def run_study(study: Study, argv: list[str] | None = None) -> dict[str, Any]:
    """Run ``study`` for the command line ``argv``: parse, dry run / sweep (resume) / report only, export the
    CSVs, summarise, write the JSON summary, print the Markdown table, plot. Returns the summary."""
    a = parse_args(study, argv)
    out = Path(a.out)
    if a.export:
        res = export(out)
        print(f"exported {res['runs']} runs and {res['curve_rows']} evaluations to {out / RUNS_CSV} and {out / CURVES_CSV}")
        return res
    if study.grid is None:
        records = _in_process(study, a, out)
        if a.dry_run:
            return {"points": [u["run"] for u in study.units(a)]}
        ctx = StudyRuns(a, out, None, records, {}, [], "runs.csv")
    else:
        ctx = _grid_study(study, a, out)
        if isinstance(ctx, dict):  # the dry run's grid
            return ctx
    if not ctx.records:
        raise BadInput(f"no finished runs under {out}; failures: {ctx.failures or 'none'}")
    result = study.summarise(ctx)
    result_file = study.result_file(a) if callable(study.result_file) else study.result_file
    if result_file is not None:
        with atomic_write(out / result_file, suffix=".json") as tmp:
            tmp.write_text(json.dumps(portable_paths(result), indent=2, default=str))
    if study.plot is not None:
        study.plot(result, ctx)
    if study.markdown is not None:
        print(study.markdown(result, ctx))
    for name, err in ctx.failures.items():
        print(f"FAILED {name}: {err}")
    if result_file is not None:
        print(f"wrote {out / result_file}, {out / RUNS_CSV} and {out / CURVES_CSV}")
    return result


def _grid_study(study: Study, a: argparse.Namespace, out: Path) -> StudyRuns | dict[str, Any]:
    """Prepare, build the grid, dry-run or sweep, export, and gather the finished runs."""
    points = None
    try:
        if study.prepare is not None:
            study.prepare(a, out)
        points = study_grid(study, a)
    except (ValueError, OSError) as e:  # OSError: a dataset file that is not there
        if not a.report_only:
            raise BadInput(str(e)) from None
        print(f"note: the grid cannot be built here ({e}); summarising every run under {out}")
    if a.dry_run:
        return _dry_run(study, a, out, points)
    failures = {} if a.report_only else _sweep(study, a, out, points)
    if out.exists():
        export(out)
    names = [p.name for p in points] if points is not None and study.only_grid else None
    records = load_records(out, names)
    source = "run directories" if any(r.path.exists() for r in records) else "runs.csv"
    failures.update({r.name: r.error or "failed" for r in records if r.status == "failed" and r.name not in failures})
    finished = [r for r in records if r.status == "finished" and r.metrics is not None]
    done = {r.name for r in finished}
    unfinished = [p.name for p in points or [] if p.name not in done and p.name not in failures]
    return StudyRuns(a, out, points, finished, failures, unfinished, source)
