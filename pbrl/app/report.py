"""``pbrl report``: aggregate run directories across seeds and tasks, print a table, save plots.

Each run contributes one score (its final evaluation: ``metrics.json``, or the last row of ``curve.csv``
for an unfinished run when asked). Runs are grouped (default: by agent); within a group, tasks are the
strata of :func:`pbrl.stats.stratified_bootstrap_ci` and seeds its samples. The table gives IQM, mean and
median with stratified-bootstrap confidence intervals (rliable's protocol), the optimality gap for bounded
scores (success: 1, normalized: 100), and, with a ``baseline`` group, each group's probability of
improvement over it (:func:`pbrl.stats.probability_of_improvement`); the plots are learning curves (IQM
with bands) against env steps and against labels used, the performance profile, interval bars, and the
probabilities of improvement.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pbrl import plots as P
from pbrl import stats
from pbrl.app.config import teacher_tag
from pbrl.app.run_dir import RunDir
from pbrl.envs.scores import D4RL_REF_SCORES, d4rl_key, normalize
from pbrl.io import atomic_write, check_writable_dir, portable_paths

__all__ = ["RunRecord", "find_runs", "load_runs", "build_report", "format_table", "SCORES", "GROUP_KEYS"]

SCORES = {"return": "mean_return", "success": "success_rate", "normalized": "normalized_score"}
"""Score names of ``pbrl report --score`` -> field of the evaluation records."""

GROUP_KEYS = ("agent", "teacher", "budget", "kind", "task", "selector")
"""Config fields a report may group runs by (``budget`` is ``total_feedback``)."""

GAP_TARGETS = {"success": 1.0, "normalized": 100.0}
"""The optimality gap's target per score (a return has none, so it gets no gap)."""


@dataclass
class RunRecord:
    """One run directory as the report sees it."""

    path: Path
    config: dict[str, Any]
    status: str
    metrics: dict[str, Any] | None
    curve: list[dict[str, float]] = field(default_factory=list)

    @property
    def task(self) -> str:
        return str(self.config["task"])

    def key(self, name: str) -> str:
        if name == "budget":
            return str(self.config.get("total_feedback"))
        if name == "teacher":  # ratings of n classes show as rating-n<n>

            return teacher_tag(str(self.config.get("teacher", "")), self.config.get("n_classes"))
        return str(self.config.get(name, ""))

    def final(self, score_field: str) -> float:
        """Final score: ``metrics.json``'s, else the last evaluation in ``curve.csv`` (NaN if none)."""
        if self.metrics is not None:
            v = self.metrics.get("final", {}).get(score_field)
            return float("nan") if v is None else float(v)
        if self.curve:
            return float(self.curve[-1].get(score_field, float("nan")))
        return float("nan")


def find_runs(paths: list[str | os.PathLike]) -> list[Path]:
    """Run directories among ``paths``: each path is a run (has ``config.json``) or a folder searched
    recursively for runs (e.g. a sweep's output folder). Raises ``ValueError`` if none is found."""
    found: list[Path] = []
    for p in paths:
        p = Path(p)
        if not p.exists():
            raise ValueError(f"'{p}' does not exist; give run directories or a folder holding them")
        if (p / "config.json").exists():
            found.append(p)
        else:
            found.extend(sorted(c.parent for c in p.rglob("config.json") if (c.parent / "status.json").exists()))
    seen, out = set(), []
    for f in found:
        if f.resolve() not in seen:
            seen.add(f.resolve())
            out.append(f)
    if not out:
        raise ValueError(f"no run directories (with config.json) under {', '.join(map(str, paths))}")
    return out


def _on_d4rl_scale(rec: RunRecord) -> RunRecord:
    """On a MuJoCo locomotion task, every ``normalized_score`` of the run recomputed from its mean return with
    D4RL's reference returns (:data:`pbrl.envs.scores.D4RL_REF_SCORES`), whatever the run wrote (runs made
    before pbrl used D4RL's scale everywhere normalised by their dataset's own returns). Other tasks: as
    written."""
    key = d4rl_key(str(rec.config.get("task", "")))
    if key is None:
        return rec
    lo, hi = D4RL_REF_SCORES[key]

    def fix(row: dict | None) -> None:
        if row is not None and row.get("mean_return") is not None and np.isfinite(float(row["mean_return"])):
            row["normalized_score"] = float(normalize(float(row["mean_return"]), lo, hi))

    for row in rec.curve:
        fix(row)
    if rec.metrics is not None:
        fix(rec.metrics.get("final"))
    return rec


def load_runs(paths: list[str | os.PathLike]) -> list[RunRecord]:
    """Read every run under ``paths`` (see :func:`find_runs`). Normalised scores of locomotion tasks are on
    D4RL's scale (:func:`_on_d4rl_scale`)."""
    recs = []
    for p in find_runs(paths):
        rd = RunDir(p)
        recs.append(_on_d4rl_scale(
            RunRecord(
                path=p,
                config=json.loads(rd.config_path.read_text()),
                status=rd.status().get("state", "unknown"),
                metrics=rd.metrics(),
                curve=rd.curve(),
            )
        ))
    return recs


def _drop_duplicates(runs: list[RunRecord]) -> tuple[list[RunRecord], list[str]]:
    """Keep one run per distinct config (same task, seed and settings); warn about the others."""
    first: dict[str, RunRecord] = {}
    kept, warnings = [], []
    for r in runs:
        key = json.dumps(r.config, sort_keys=True, default=str)
        if key in first:
            warnings.append(f"{r.path} has the same task, seed and settings as {first[key].path} "
                            "(a copy of one run); counted once")
            continue
        first[key] = r
        kept.append(r)
    return kept, warnings


def _auto_score(runs: list[RunRecord]) -> str:
    if all(np.isfinite(r.final("normalized_score")) for r in runs):
        return "normalized"
    if all(r.task.startswith("metaworld/") for r in runs):
        return "success"
    return "return"


def _task_columns(runs: list[RunRecord], values: list[float], tasks: list[str]) -> list[np.ndarray]:
    cols = []
    for t in tasks:
        v = np.array([x for r, x in zip(runs, values) if r.task == t and np.isfinite(x)], dtype=np.float64)
        if len(v):
            cols.append(v)
    return cols


def _curve_at(curve: list[dict[str, float]], xkey: str, ykey: str, x: float) -> float:
    pts = [(c[xkey], c[ykey]) for c in curve if np.isfinite(c.get(xkey, np.nan)) and np.isfinite(c.get(ykey, np.nan))]
    if not pts:
        return float("nan")
    xs = np.array([p[0] for p in pts])
    ys = np.array([p[1] for p in pts])
    # keep the last value for repeated x (e.g. labels constant while training goes on)
    uniq, last = {}, {}
    for xi, yi in zip(xs, ys):
        uniq[xi] = yi
        last[xi] = yi
    ux = np.array(sorted(uniq))
    uy = np.array([last[v] for v in ux])
    if x < ux[0] - 1e-9 or x > ux[-1] + 1e-9:
        return float("nan")
    return float(np.interp(x, ux, uy))


def _group_curve(runs: list[RunRecord], tasks: list[str], xkey: str, ykey: str, n_resamples: int,
                 confidence: float, seed: int) -> tuple[np.ndarray, ...]:
    xs = sorted({c[xkey] for r in runs for c in r.curve if np.isfinite(c.get(xkey, np.nan))})
    X, Y, LO, HI = [], [], [], []
    for x in xs:
        vals = [_curve_at(r.curve, xkey, ykey, x) for r in runs]
        cols = _task_columns(runs, vals, tasks)
        if not cols:
            continue
        iv = stats.stratified_bootstrap_ci(cols, "iqm", confidence, n_resamples, seed=seed)
        X.append(x)
        Y.append(iv.value)
        LO.append(iv.low)
        HI.append(iv.high)
    return np.array(X), np.array(Y), np.array(LO), np.array(HI)


def build_report(
    paths: list[str | os.PathLike | RunRecord],
    score: str = "auto",
    group_by: tuple[str, ...] = ("agent",),
    out: str | os.PathLike | None = None,
    n_resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
    include_unfinished: bool = False,
    plots: bool = True,
    overwrite: bool = False,
    baseline: str | None = None,
) -> dict[str, Any]:
    """Aggregate the runs under ``paths``.

    Args:
        paths: run directories or folders holding them, or :class:`RunRecord` objects already read.
        score: ``"return"``, ``"success"``, ``"normalized"`` or ``"auto"`` (normalized when every run has
            it, success when every task is Meta-World, else return).
        group_by: config fields forming a group (from :data:`GROUP_KEYS`).
        out: folder for ``report.json`` and the PNG plots (``None``: no files).
        n_resamples, confidence, seed: stratified bootstrap settings (curves use ``n_resamples // 4``).
        include_unfinished: also use runs that have not finished (their last evaluation).
        plots: draw the PNGs when ``out`` is given.
        overwrite: replace a ``report.json`` already in ``out`` (refused otherwise, before any work).
        baseline: a group name (e.g. ``"pebble"`` when grouping by agent): every other group gets its
            probability of improvement over it, ``P(group > baseline)``, on the tasks both have, with a
            stratified-bootstrap interval (``"poi"``); ``None`` (default): none.

    Runs with the same config (task, seed and every setting) are copies of one run: each is counted
    once, and ``"warnings"`` says which were dropped.

    Returns:
        ``{"score", "groups": {name: {"n_runs", "tasks", "iqm", "mean", "median", ["optimality_gap"], ["poi"]
        (Interval dicts; ``poi`` also names its ``baseline`` and ``tasks``), "per_task": {task: [scores]}}},
        "baseline", "skipped": [...], "warnings": [...], "plots": [...]}``.
    """
    if score not in (*SCORES, "auto"):
        raise ValueError(f"unknown score '{score}'; allowed values: auto, {', '.join(SCORES)}")
    for g in group_by:
        if g not in GROUP_KEYS:
            raise ValueError(f"cannot group by '{g}'; allowed keys: {', '.join(GROUP_KEYS)}")
    if out is not None:
        check_writable_dir(out, "report folder --out")
        if (Path(out) / "report.json").exists() and not overwrite:
            raise ValueError(f"'{out}' already holds a report; choose another --out, or pass --overwrite to replace it")
    records = [p for p in paths if isinstance(p, RunRecord)]  # runs already read (e.g. from a study's CSVs)
    dirs = [p for p in paths if not isinstance(p, RunRecord)]
    runs = records + (load_runs(dirs) if dirs else [])
    runs, warnings = _drop_duplicates(runs)
    skipped = [str(r.path) for r in runs if r.status != "finished" and not include_unfinished]
    runs = [r for r in runs if r.status == "finished" or include_unfinished]
    if not runs:
        raise ValueError("no finished runs to report (use --include-unfinished to use partial runs)")
    score = _auto_score(runs) if score == "auto" else score
    fld = SCORES[score]
    groups: dict[str, list[RunRecord]] = {}
    for r in runs:
        groups.setdefault("/".join(r.key(g) for g in group_by), []).append(r)
    if baseline is not None and baseline not in groups:
        raise ValueError(f"--baseline '{baseline}' is not a group of this report; the groups are: "
                         f"{', '.join(sorted(groups))}")
    result: dict[str, Any] = {"score": score, "field": fld, "confidence": confidence, "groups": {}, "skipped": skipped,
                              "warnings": warnings, "baseline": baseline}
    metrics: dict[str, Any] = {"iqm": "iqm", "mean": "mean", "median": "median"}
    if score in GAP_TARGETS:
        gamma = GAP_TARGETS[score]
        metrics["optimality_gap"] = lambda x, axis=None: stats.optimality_gap(x, axis, gamma=gamma)
    by_task: dict[str, dict[str, np.ndarray]] = {}
    curves_steps, curves_labels, profiles, intervals = {}, {}, {}, {}
    all_scores = np.array([r.final(fld) for r in runs], dtype=np.float64)
    finite = all_scores[np.isfinite(all_scores)]
    taus = np.linspace(finite.min(), finite.max(), 60) if len(finite) else np.zeros(1)
    for name in sorted(groups):
        rs = groups[name]
        tasks = sorted({r.task for r in rs})
        vals = [r.final(fld) for r in rs]
        cols = _task_columns(rs, vals, tasks)
        if not cols:
            result["skipped"].extend(str(r.path) for r in rs)
            continue
        ivs = {m: stats.stratified_bootstrap_ci(cols, f, confidence, n_resamples, seed=seed) for m, f in metrics.items()}
        by_task[name] = {t: col[0] for t in tasks if (col := _task_columns(rs, vals, [t]))}
        intervals[name] = ivs
        result["groups"][name] = {
            "n_runs": int(sum(len(c) for c in cols)),
            "tasks": tasks,
            **{m: iv.as_dict() for m, iv in ivs.items()},
            "per_task": {t: [float(v) for r, v in zip(rs, vals) if r.task == t] for t in tasks},
            "runs": [str(r.path) for r in rs],
        }
        profiles[name] = (taus, *stats.performance_profile(cols, taus, confidence, max(200, n_resamples // 4), seed))
        curves_steps[name] = _group_curve(rs, tasks, "step", fld, max(200, n_resamples // 4), confidence, seed)
        curves_labels[name] = _group_curve(rs, tasks, "labels", fld, max(200, n_resamples // 4), confidence, seed)
    pois = _improvements(by_task, baseline, confidence, n_resamples, seed, result)
    result["plots"] = []
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        if plots and intervals:
            ylabel = f"IQM {score}"
            result["plots"] = [
                str(P.plot_report(curves_steps, curves_labels, profiles, out / "report.png", score_name=score)),
                str(P.plot_curves(curves_steps, out / "curves_steps.png", "env steps (offline: updates)", ylabel)),
                str(P.plot_curves(curves_labels, out / "curves_labels.png", "labels used", ylabel)),
                str(P.plot_performance_profiles(profiles, out / "profile.png", f"{score} threshold tau")),
                str(P.plot_interval_bars(intervals, out / "intervals.png", xlabel=score)),
            ]
            if pois:
                result["plots"].append(str(P.plot_probability_of_improvement(pois, baseline, out / "improvement.png")))
        with atomic_write(out / "report.json", suffix=".json") as tmp:
            tmp.write_text(json.dumps(portable_paths(result), indent=2, default=float))
    return result


def _improvements(by_task: dict[str, dict[str, np.ndarray]], baseline: str | None, confidence: float,
                  n_resamples: int, seed: int, result: dict[str, Any]) -> dict[str, stats.Interval]:
    """Each group's probability of improvement over ``baseline`` on the tasks both have (stored in
    ``result["groups"][name]["poi"]``; a group sharing no task with it gets a warning instead)."""
    if baseline is None or baseline not in by_task:
        return {}
    out: dict[str, stats.Interval] = {}
    base = by_task[baseline]
    for name, cols in by_task.items():
        if name == baseline:
            continue
        common = sorted(set(cols) & set(base))
        if not common:
            result["warnings"].append(f"{name} shares no task with the baseline {baseline}; no probability of "
                                      "improvement for it")
            continue
        iv = stats.probability_of_improvement([cols[t] for t in common], [base[t] for t in common], confidence,
                                              n_resamples, seed)
        out[name] = iv
        result["groups"][name]["poi"] = {**iv.as_dict(), "baseline": baseline, "tasks": common}
    return out


def format_table(result: dict[str, Any]):
    """A ``rich`` table of :func:`build_report`'s result: one row per group."""
    from rich.table import Table

    pct = int(round(100 * result["confidence"]))
    what = "D4RL-normalised score (0 = random, 100 = D4RL expert on locomotion)" if result["score"] == "normalized" \
        else result["score"]
    t = Table(title=f"final {what} ({result['field']}): point estimate [{pct} % stratified bootstrap CI]")
    cols = table_metrics(result)
    heads = {"iqm": "IQM", "mean": "mean", "median": "median", "optimality_gap": "optimality gap",
             "poi": f"P(X > {result.get('baseline')})"}
    for col in ("group", "runs", "tasks", *(heads[m] for m in cols)):
        t.add_column(col, justify="left" if col == "group" else "right")
    for name, g in result["groups"].items():
        fmt = [f"{g[m]['value']:.3f} [{g[m]['low']:.3f}, {g[m]['high']:.3f}]" if m in g else "-" for m in cols]
        t.add_row(name, str(g["n_runs"]), str(len(g["tasks"])), *fmt)
    return t


def table_metrics(result: dict[str, Any]) -> list[str]:
    """The metrics a report's table shows: IQM, mean, median, the optimality gap when the score has one, and
    the probability of improvement when a baseline was given."""
    cols = ["iqm", "mean", "median"]
    if any("optimality_gap" in g for g in result["groups"].values()):
        cols.append("optimality_gap")
    if result.get("baseline") is not None:
        cols.append("poi")
    return cols
