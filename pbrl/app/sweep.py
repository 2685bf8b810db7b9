"""``pbrl sweep``: a grid of runs over tasks x agents x teachers x budgets x seeds.

Every grid point is a validated config (:func:`pbrl.app.config.config_from_dict`) and a run directory
``OUT/<agent>__<task>__<teacher>__b<budget>__s<seed>``; ``pbrl report OUT`` reads them all. All configs are
validated before the first run starts. Running a sweep again resumes its unfinished runs and skips the
finished ones, so an overnight sweep that was killed is restarted with the same command.

Backends:

* ``local``: a process pool on this machine (``workers`` processes, default: CPU count), each run with
  ``torch_threads`` threads;
* ``ray``: Ray Tune (``pip install -e '.[sweep]'``), one trial per unfinished grid point
  (``tune.grid_search`` over the run names, one CPU each); with ``address`` it joins a running Ray
  cluster (``ray.init(address=...)``). A trial writes its run directory ``OUT/<name>`` on the node that
  runs it and returns the run's ``metrics.json`` to the driver; so that ``pbrl report OUT``, resume and
  retries see every run, ``OUT`` must be on storage every node mounts at the same path (NFS or similar).
  Tune's own records go to ``OUT/_ray``. A trial whose process or node dies is started again up to
  ``retries`` times (``FailureConfig(max_failures=retries)``) and resumes its run from the newest
  checkpoint;
* ``auto`` (default): Ray Tune when ``address`` is given or Ray is installed, the local pool otherwise.
  The choice is logged.

``batch_seeds`` (local pool; ``pbrl sweep --batch-seeds``): offline grid points that differ only in their
seed and share a dataset file train in one process, vmapped (:func:`pbrl.app.runs.train_seeds`), each still in
its own run directory with its own labels; seed k equals its single-seed run up to float rounding. On this
project's 2-core CPU machines it does not pay (5 seeds take 4.9-7.8x one seed's time, about what 5 runs in a
row cost: ``scripts/bench_speed.py``), so it is off by default; it is meant for a GPU, where one seed
leaves the device mostly idle.

Stopping a local sweep: Ctrl-C (SIGINT to the process group) stops it as it stops one run. Every running
run checkpoints at its next checkpointable point and stops (status ``interrupted``), no queued run starts
(result ``{"state": "not_started"}``), and the sweep returns; the same command resumes. A run that is
still preparing (collecting, labelling) when the signal comes finishes that preparation and stops at its
first checkpointable point (its labels are saved, so the resume reuses them). A SIGINT that reaches only
one worker's run stops the sweep the same way, once that run reports ``interrupted``: the other running
runs stop at their next checkpoint. (Before, the pool went on starting the queued runs after a Ctrl-C,
and a run that was preparing trained to its end.)

Two sweeps over one folder share it: a run trains in one process at a time (its lock,
:func:`pbrl.app.run_dir.run_lock`), and a sweep that reaches a run another process is training skips it, untouched
(result ``{"state": "busy"}``, a warning), so two sweeps with disjoint or overlapping grids never train the same run
twice at once (with ``batch_seeds`` a group holding a busy run is skipped whole; its finished runs keep their
metrics). Run the command again once the other is done to pick up what it skipped.

The core of pbrl never imports Ray: it is imported only here, only for the ``ray`` backend.
"""

from __future__ import annotations

import importlib.util
import itertools
import json
import logging
import os
import re
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from pbrl.agents.registry import get_entry
from pbrl.app import runs
from pbrl.app.config import OfflineConfig, OnlineConfig, _merge, _read_file, config_from_dict, parse_overrides
from pbrl.app.hyperparams import flatten, load
from pbrl.app.run_dir import RunDir
from pbrl.app.tracking import check_tracking
from pbrl.callbacks import set_external_stop
from pbrl.extras import MissingExtra
from pbrl.validation import check_int

__all__ = ["SweepPoint", "base_config", "expand_grid", "run_sweep", "choose_backend", "run_point", "seed_groups", "GRID_AXES",
           "NOT_STARTED", "BUSY"]

log = logging.getLogger("pbrl.app.sweep")

GRID_AXES = ("tasks", "agents", "teachers", "budgets", "seeds")
"""The grid's axes; ``budgets`` sets ``total_feedback``."""


@dataclass(frozen=True)
class SweepPoint:
    """One grid point: its run directory name and its resolved config mapping."""

    name: str
    config: dict[str, Any]


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_")


def base_config(path: str | os.PathLike | None = None, sets: list[str] | None = None) -> dict[str, Any]:
    """What every grid point starts from: the config file at ``path`` (YAML/JSON; none: empty) with the
    ``key=value`` overrides ``sets`` merged in (``pbrl sweep --config ... --set ...``)."""
    base = _read_file(path) if path is not None else {}
    return _merge(base, parse_overrides(sets))


def expand_grid(
    base: dict[str, Any] | None = None,
    tasks: Sequence[str] | None = None,
    agents: Sequence[str] | None = None,
    teachers: Sequence[str] | None = None,
    budgets: Sequence[int] | None = None,
    seeds: Sequence[int] | None = None,
    kind: str | None = None,
    hyperparams: bool | str | os.PathLike = False,
) -> list[SweepPoint]:
    """All grid points (the Cartesian product of the non-empty axes; an empty axis keeps ``base``'s value).

    Every config is validated here; the first bad one raises ``ValueError`` naming the key and the
    grid point, before anything runs.

    ``hyperparams`` (``True``: each agent's packaged file, or a path): each point starts from what its
    agent's hyperparameter file gives its task (:func:`pbrl.app.hyperparams.load` without the ``default`` entry,
    which holds the code defaults), under ``base`` and the axes; the point's config then carries
    ``provenance`` (written into its ``config.json``). ``False`` (the default, and what the benchmark scripts
    use): ``base`` and the axes only.
    """
    base = dict(base or {})
    kind = kind or base.pop("kind", None) or "online"
    base.pop("kind", None)
    axes = {
        "task": list(tasks or []),
        "agent": list(agents or []),
        "teacher": list(teachers or []),
        "total_feedback": list(budgets or []),
        "seed": list(seeds or []),
    }
    for name, vals in axes.items():
        if len(set(map(str, vals))) != len(vals):
            raise ValueError(f"the sweep axis '{name}' repeats a value: {vals}")
    keys = [k for k, v in axes.items() if v]
    points: list[SweepPoint] = []
    for combo in itertools.product(*(axes[k] for k in keys)):
        data = {**base, **dict(zip(keys, combo))}
        try:
            prov = None
            if hyperparams is not False:
                data, prov = _with_hyperparams(data, kind, hyperparams, dict(zip(keys, combo)))
            cfg = config_from_dict(dict(data), kind=kind)
        except ValueError as e:
            raise ValueError(f"grid point {dict(zip(keys, combo))}: {e}") from None
        name = "__".join(
            [_slug(cfg.agent), _slug(cfg.task), _slug(cfg.teacher_tag()), f"b{cfg.total_feedback}", f"s{cfg.seed}"]
        )
        points.append(SweepPoint(name, {**cfg.to_dict(), **({"provenance": prov} if prov else {})}))
    if len({p.name for p in points}) != len(points):
        raise ValueError("two grid points map to the same run directory; vary tasks/agents/teachers/budgets/seeds")
    return points


def _with_hyperparams(data: dict[str, Any], kind: str, hyperparams: bool | str | os.PathLike,
                      axes: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``data`` over what the point's hyperparameter file gives its task, and the sources of the values."""
    from dataclasses import fields

    cls = OnlineConfig if kind == "online" else OfflineConfig
    agent, task = data.get("agent", cls.agent), data.get("task", cls.task)
    get_entry(agent, kind)
    preset = load(agent, task, None if hyperparams is True else hyperparams, default=False)
    sources = dict(preset.sources)
    sources.update({k: "sweep base (--config / --set)" for k in flatten({k: v for k, v in data.items()
                                                                          if k not in axes})})
    sources.update({k: "sweep axis" for k in axes})
    for f in fields(cls):
        if not any(k == f.name or k.startswith(f"{f.name}.") for k in sources):
            sources[f.name] = "default"
    prov = {"hyperparams_file": preset.file, "hyperparams_entries": list(preset.entries),
            "sources": dict(sorted(sources.items()))}
    return _merge(preset.values, data), prov


def run_point(config: dict[str, Any], run_dir: str, verbose: bool = False, tracking: Any = None) -> dict[str, Any]:
    """Run (or resume, or skip if finished) one grid point; returns its final metrics or status.
    ``tracking``: a :class:`pbrl.app.tracking.Tracking` to log the run to W&B (``pbrl sweep --track``)."""
    rd = runs.RunDir(run_dir)
    if rd.config_path.exists():
        return runs.resume(run_dir, verbose=verbose, tracking=tracking)
    return runs.train(config_from_dict(dict(config)), run_dir, verbose=verbose, tracking=tracking)


def seed_groups(points: list[SweepPoint]) -> list[list[SweepPoint]]:
    """The grid points in groups that can train in one process (``batch_seeds``): offline points whose
    configs differ only in ``seed`` and that read a dataset file; every other point is a group of one.
    Groups keep the grid's order of their first point."""
    groups: dict[str, list[SweepPoint]] = {}
    for i, p in enumerate(points):
        c = p.config
        if c.get("kind") == "offline" and c.get("dataset") is not None:
            key = json.dumps({k: v for k, v in c.items() if k != "seed"}, sort_keys=True, default=str)
        else:
            key = f"#{i}"
        groups.setdefault(key, []).append(p)
    return list(groups.values())


def _local_group_worker(configs: list[dict[str, Any]], run_dirs: list[str], tracking: Any = None) -> list[dict[str, Any]]:
    """A group of :func:`seed_groups` in one process: :func:`pbrl.app.runs.train_seeds` (a group of one:
    :func:`run_point`)."""
    if len(configs) == 1:
        return [_local_worker(configs[0], run_dirs[0], tracking)]
    if _stopped():
        return [dict(NOT_STARTED) for _ in configs]
    import contextlib

    import torch

    torch.set_num_threads(int(configs[0].get("torch_threads", 1)))
    log_path = Path(run_dirs[0]).parent / f".{Path(run_dirs[0]).name}.out"
    with open(log_path, "a") as fh, contextlib.redirect_stdout(fh), contextlib.redirect_stderr(fh):
        try:
            res = runs.train_seeds([config_from_dict(dict(c)) for c in configs], run_dirs, verbose=False,
                                   tracking=tracking)
        except runs.RunBusy as e:  # another process trains one of them: the group is left, nothing touched
            return [_finished(Path(d)) or {"state": BUSY, "message": str(e)} for d in run_dirs]
        except Exception as e:  # noqa: BLE001 - the runs that finished keep their metrics, the others report it
            err = {"error": f"{type(e).__name__}: {e}"}
            return [_finished(Path(d)) or err for d in run_dirs]
    _stop_after(res)
    return res


#: the local pool's stop request, shared by the driver and its workers (set in each worker by :func:`_init_worker`)
_STOP: Any = None
#: the result of a grid point that a stopped sweep never started
NOT_STARTED = {"state": "not_started"}
#: the state of a grid point that another process is training (it holds the run's lock): skipped, untouched
BUSY = "busy"


def _init_worker(stop: Any) -> None:
    """A pool worker's start: remember the sweep's stop event; a SIGINT while the worker is between runs (or
    before a run's training loop installs :class:`pbrl.callbacks.StopOnSignal`) sets it instead of killing
    the worker, so no further run starts and the pool stays whole. Every run's ``StopOnSignal`` honours the
    event too (:func:`pbrl.callbacks.set_external_stop`), so a run that was still preparing when the signal
    came stops at its first checkpointable point instead of training to its end."""
    import signal

    global _STOP
    _STOP = stop
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    set_external_stop(stop.is_set)  # a run that was preparing when the signal came stops at its first checkpoint


def _stopped() -> bool:
    return _STOP is not None and _STOP.is_set()


def _local_worker(config: dict[str, Any], run_dir: str, tracking: Any = None) -> dict[str, Any]:
    if _stopped():
        return dict(NOT_STARTED)
    import torch

    torch.set_num_threads(int(config.get("torch_threads", 1)))
    log_path = Path(run_dir).parent / f".{Path(run_dir).name}.out"
    import contextlib

    try:
        with open(log_path, "a") as fh, contextlib.redirect_stdout(fh), contextlib.redirect_stderr(fh):
            res = run_point(config, run_dir, verbose=False, tracking=tracking)
    except runs.RunBusy as e:  # another process trains it (a second sweep over the same folder): left to it
        return {"state": BUSY, "message": str(e)}
    _stop_after([res])
    return res


def _stop_after(results: list[dict[str, Any]]) -> None:
    """Set the sweep's stop event when a run of this worker stopped at a SIGINT. The run's own handler
    (:class:`pbrl.callbacks.StopOnSignal`) took the signal, so the worker's handler never saw it; without this
    the worker could take its next queued run before the driver's stop request arrived."""
    if _STOP is not None and any(r.get("state") == "interrupted" for r in results):
        _STOP.set()


def choose_backend(backend: str = "auto", address: str | None = None) -> str:
    """``"local"`` or ``"ray"`` (see the module docstring); raises ``ValueError`` when Ray is asked for but
    not installed."""
    if backend not in ("auto", "local", "ray"):
        raise ValueError(f"unknown sweep backend '{backend}'; allowed values: auto, local, ray")
    has_ray = importlib.util.find_spec("ray") is not None and importlib.util.find_spec("ray.tune") is not None
    if backend == "ray" or (backend == "auto" and address is not None):
        if not has_ray:
            raise ValueError(f"{MissingExtra('ray', 'the Ray backend (--address)')}; or run without --address "
                             "for the local process pool")
        return "ray"
    if backend == "local" and address is not None:
        raise ValueError("--address needs the Ray backend; drop --backend local")
    return "ray" if (backend == "auto" and has_ray) else "local"


def run_sweep(
    points: list[SweepPoint],
    out: str | os.PathLike,
    backend: str = "auto",
    workers: int | None = None,
    address: str | None = None,
    progress: bool = True,
    retries: int = 2,
    batch_seeds: bool = False,
    tracking: Any = None,
) -> dict[str, dict[str, Any]]:
    """Run every grid point into ``out/<name>``; returns ``{name: metrics or {"error": message}}``.

    Args:
        points: from :func:`expand_grid`.
        out: the sweep folder (created).
        backend: ``auto``, ``local`` or ``ray``.
        workers: parallel runs for the local pool (default ``os.cpu_count()``).
        address: Ray cluster address (``HOST:PORT`` of the head, ``ray://host:10001`` or ``auto``).
        retries: Ray backend: how often a trial whose process or node died is started again (Tune's
            ``FailureConfig(max_failures=...)``); the new attempt resumes the run from its newest checkpoint.
        batch_seeds: local pool: train offline points that differ only in their seed in one process each
            (:func:`seed_groups`; see the module docstring).
        tracking: a :class:`pbrl.app.tracking.Tracking`: every run logs to W&B (``pbrl sweep --track``), in a
            W&B group named after the sweep folder unless it names one.
    """
    if not points:
        raise ValueError("the sweep grid is empty")
    if tracking is not None:
        from dataclasses import replace

        check_tracking()
        tracking = tracking if tracking.group else replace(tracking, group=Path(out).resolve().name)
    if workers is not None:
        workers = check_int("workers", workers, 1)
    out = Path(out).resolve()
    check_existing_runs(points, out)
    chosen = "local" if (batch_seeds and backend == "auto" and address is None) else choose_backend(backend, address)
    out.mkdir(parents=True, exist_ok=True)
    if batch_seeds and chosen == "ray":
        raise ValueError("--batch-seeds runs on the local process pool; add --backend local")
    if chosen == "ray":
        log.warning("pbrl sweep: %d runs on Ray Tune%s", len(points), f" at {address}" if address else " (local Ray)")
        return _run_ray(points, out, address, check_int("retries", retries, 0), progress, tracking)
    n = workers or os.cpu_count() or 1
    why = "" if importlib.util.find_spec("ray") else " (Ray Tune is not installed)"
    log.warning("pbrl sweep: %d runs on a local process pool of %d workers%s", len(points), n, why)
    results: dict[str, dict[str, Any]] = {}
    import multiprocessing as mp

    groups = seed_groups(points) if batch_seeds else [[p] for p in points]
    ctx = mp.get_context("spawn")
    stop = ctx.Event()
    pool = ProcessPoolExecutor(max_workers=n, mp_context=ctx, initializer=_init_worker, initargs=(stop,))
    futs = {}
    for g in groups:
        if len(g) == 1:
            f = pool.submit(_local_worker, g[0].config, str(out / g[0].name), tracking)
        else:
            f = pool.submit(_local_group_worker, [p.config for p in g], [str(out / p.name) for p in g], tracking)
        futs[f] = [p.name for p in g]
    bar = tqdm(total=len(points), desc="sweep", unit="run", disable=not progress)

    def stop_sweep(why: str) -> None:
        if not stop.is_set():
            log.warning("pbrl sweep: %s: no further run starts; running runs stop at their next checkpoint "
                        "(rerun the same command to resume)", why)
        stop.set()
        for f in futs:
            f.cancel()  # the queued runs; the ones already handed to a worker see the stop event

    pending = set(futs)
    try:
        while pending:
            try:
                for f in as_completed(pending):
                    pending.discard(f)
                    names = futs[f]
                    if f.cancelled():
                        for name in names:
                            results[name] = dict(NOT_STARTED)
                        continue
                    try:
                        res = f.result()
                        for name, r in zip(names, res if len(names) > 1 else [res]):
                            results[name] = r
                            if "error" in r:
                                log.warning("pbrl sweep: run %s failed: %s", name, r["error"])
                            elif r.get("state") == BUSY:
                                log.warning("pbrl sweep: run %s skipped: %s", name, r["message"])
                            elif r.get("state") == "interrupted":
                                stop_sweep(f"run {name} was interrupted")
                    except KeyboardInterrupt:  # a worker's run aborted by a second SIGINT: resumes from its checkpoint
                        for name in names:
                            results[name] = {"state": "interrupted", "aborted": True}
                        stop_sweep(f"run(s) {', '.join(names)} aborted")
                    except Exception as e:  # noqa: BLE001 - one failed run must not stop the sweep
                        for name in names:
                            results[name] = {"error": f"{type(e).__name__}: {e}"}
                        log.warning("pbrl sweep: run(s) %s failed: %s", ", ".join(names), f"{type(e).__name__}: {e}")
                    bar.update(len(names))
            except KeyboardInterrupt:  # the driver's SIGINT (Ctrl-C reaches the workers too): wait for them
                stop_sweep("SIGINT")
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    finally:
        bar.close()
    pool.shutdown(wait=True)
    return results


def check_existing_runs(points: list[SweepPoint], out: str | os.PathLike) -> None:
    """Refuse a grid whose points would resume or skip a run directory trained with other settings.

    A sweep resumes ``out/<name>`` with the config saved there, so a grid changed since (other steps, sizes,
    teacher options) would otherwise silently continue, or count as finished, runs of the old settings.
    Raises one ``ValueError`` naming the first such run and the keys that differ, before any work.
    """
    out = Path(out)
    for p in points:
        rd = RunDir(out / p.name)
        if not rd.config_path.exists():
            continue
        # through JSON, as config.json stores it: tuples and lists (hidden sizes) compare equal
        saved = json.loads(json.dumps(rd.config().to_dict()))
        want = json.loads(json.dumps(config_from_dict(dict(p.config)).to_dict()))
        diff = sorted(k for k in set(saved) | set(want) if saved.get(k) != want.get(k))
        if diff:
            raise ValueError(
                f"{rd.path} holds a run with other settings ({', '.join(diff)} differ from the grid's); "
                "use another --out, or move that run away to train it again"
            )


def _finished(run_dir: Path) -> dict[str, Any] | None:
    """The metrics of a finished run directory, or ``None``."""
    rd = RunDir(run_dir)
    if not rd.config_path.exists():
        return None
    try:
        if rd.status().get("state") != "finished":
            return None
        return rd.metrics()
    except (OSError, ValueError):
        return None


def _run_ray(points: list[SweepPoint], out: Path, address: str | None, retries: int,
             progress: bool, tracking: Any = None) -> dict[str, dict[str, Any]]:
    """One Ray Tune trial per unfinished grid point; each trial writes its run directory ``out/<name>``
    itself (on the node that runs it) and returns that run's ``metrics.json`` to the driver."""
    import ray
    from ray import tune

    results: dict[str, dict[str, Any]] = {}
    todo: dict[str, dict[str, Any]] = {}
    for p in points:
        done = _finished(out / p.name)
        if done is not None:
            results[p.name] = done
        else:
            todo[p.name] = p.config
    if results:
        log.warning("pbrl sweep: %d of %d runs already finished in %s; skipped", len(results), len(points), out)
    if not todo:
        return results
    cwd = os.getcwd()

    def trainable(params: dict[str, Any]) -> dict[str, Any]:
        # Tune starts a trial in its own trial folder: relative paths in a config (a dataset file) are
        # meant from where `pbrl sweep` was started, so go back there when this node has that folder.
        if os.path.isdir(cwd):
            os.chdir(cwd)
        name = params["run"]
        res = _local_worker(todo[name], str(out / name), tracking)
        return {"run": name, "metrics_json": json.dumps(res)}

    started = False
    if not ray.is_initialized():
        ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING)
        started = True
    bar = tqdm(total=len(todo), desc="sweep", unit="run", disable=not progress)

    class _Progress(tune.Callback):
        """The progress bar, one step per finished or failed trial (Tune pickles its callbacks with the
        experiment's state: the bar stays behind)."""

        def __init__(self, bar: Any):
            self.bar = bar

        def __getstate__(self) -> dict:
            return {}

        def on_trial_complete(self, iteration, trials, trial, **info):  # noqa: ANN001 - Tune's signature
            if getattr(self, "bar", None) is not None:
                self.bar.update(1)

        on_trial_error = on_trial_complete

    try:
        tuner = tune.Tuner(
            tune.with_resources(trainable, {"cpu": 1}),
            param_space={"run": tune.grid_search(sorted(todo))},
            run_config=tune.RunConfig(
                name=f"pbrl_sweep_{time.strftime('%Y%m%d-%H%M%S')}",
                storage_path=str(out / "_ray"),
                failure_config=tune.FailureConfig(max_failures=retries),
                callbacks=[_Progress(bar)],
                verbose=0,
            ),
        )
        grid = tuner.fit()
    finally:
        bar.close()
        if started:
            ray.shutdown()
    for r in grid:
        name = (r.config or {}).get("run", "?")
        metrics = r.metrics or {}
        if r.error is not None or "metrics_json" not in metrics:
            err = f"{type(r.error).__name__}: {r.error}" if r.error is not None else "the trial returned no metrics"
            results[name] = {"error": err}
            log.warning("pbrl sweep: run %s failed: %s", name, results[name]["error"])
        else:
            results[name] = json.loads(metrics["metrics_json"])
            if results[name].get("state") == BUSY:
                log.warning("pbrl sweep: run %s skipped: %s", name, results[name]["message"])
    return results
