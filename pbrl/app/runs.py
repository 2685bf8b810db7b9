"""Run directories, checkpoints and resume for ``pbrl train``: the entry points.

The pieces live in modules with one job each; this module starts, resumes and evaluates runs and keeps
the public names it always had:

* :mod:`pbrl.app.run_dir`: the run directory (layout, small atomic files, ``--overwrite``, temp cleanup);
* :mod:`pbrl.checkpoint`: checkpoint files (corrupt newest -> previous one) and RNG / MuJoCo / SB3 snapshots;
* :mod:`pbrl.callbacks`: the evaluation, checkpoint and SIGINT callbacks both loops use, and
  :mod:`pbrl.progress`, the typed progress record they share and checkpoints store;
* :mod:`pbrl.app.train_common`: logger, evaluation env, final metrics;
* :mod:`pbrl.app.train_online` / :mod:`pbrl.app.train_offline`: the two training loops;
* :mod:`pbrl.app.video`: MP4 rendering.

:func:`train` validates everything it can before any work and before the run directory exists
(:func:`check_start`: the config, the run directory, the dataset's task, shapes and episode lengths); a
start that still fails before its first checkpoint removes the directory it made, so the corrected
command is not blocked by a half-made run.

SIGINT (Ctrl-C) during ``train`` stops at the next checkpoint boundary after writing a checkpoint.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pbrl.agents.registry import get_entry
from pbrl.app.config import OfflineConfig, OnlineConfig, RunConfig, agent_class
from pbrl.app.run_dir import CURVE_FIELDS, RunBusy, RunDir, check_not_busy, check_run_dir, lock_path, run_lock
from pbrl.app.sb3_zip import is_sb3_zip, load_sb3_policy
from pbrl.app.tracking import Tracking, check_tracking, enable_tracking
from pbrl.app.train_common import FailureStatus as _FailureStatus
from pbrl.app.train_common import eval_env as _eval_env
from pbrl.app.train_common import normalized as _normalized
from pbrl.app.train_offline import train_offline, train_offline_seeds
from pbrl.app.train_online import build_online as _build_online
from pbrl.app.train_online import train_online
from pbrl.app.video import render_video
from pbrl.checkpoint import (
    CHECKPOINT_FORMAT,
    CHECKPOINT_VERSION,
    env_state,
    global_rng_state,
    set_env_state,
    set_global_rng_state,
    set_sb3_state,
)
from pbrl.envs import episode_length, make_env
from pbrl.envs.datasets import load_dataset
from pbrl.envs.evaluation import evaluate_policy_episodes
from pbrl.envs.registry import check_task
from pbrl.extras import check_extra
from pbrl.io import check_writable_file
from pbrl.ratings import RatingDataset, load_labels
from pbrl.validation import check_int

__all__ = [
    "RunDir",
    "RunBusy",
    "check_not_busy",
    "train",
    "train_seeds",
    "resume",
    "check_start",
    "train_online",
    "train_offline",
    "global_rng_state",
    "set_global_rng_state",
    "env_state",
    "set_env_state",
    "CURVE_FIELDS",
    "CHECKPOINT_FORMAT",
    "CHECKPOINT_VERSION",
    "load_policy",
    "evaluate_run",
    "render_video",
]


@dataclass
class StartCheck:
    """What :func:`check_start` found: the run directory and, offline, the loaded dataset."""

    run_dir: Path
    dataset: Any = None


def _is_registered(task: str) -> bool:
    try:
        check_task(task)
        return True
    except ValueError:
        return False


def check_dataset(cfg: OfflineConfig, ds: Any, source: str) -> None:
    """The dataset fits the run: same task, observation and action sizes as the task's env, episodes at
    least ``segment_length`` long (for agents that learn from labels). One ``ValueError`` otherwise."""
    tid = getattr(ds, "task_id", None)
    if tid and tid != cfg.task and _is_registered(tid):
        raise ValueError(f"dataset '{source}' was collected on {tid} but the run's task is {cfg.task}; "
                         f"pass --task {tid}, or a dataset of {cfg.task}")
    env = make_env(cfg.task)
    try:
        obs_dim, act_dim = int(env.observation_space.shape[0]), int(env.action_space.shape[0])
    finally:
        env.close()
    if (ds.obs_dim, ds.act_dim) != (obs_dim, act_dim):
        raise ValueError(f"dataset '{source}' has observations of size {ds.obs_dim} and actions of size "
                         f"{ds.act_dim}, but {cfg.task} has {obs_dim} and {act_dim}; pass the dataset's --task")
    cls = agent_class("offline", cfg.agent)
    if getattr(cls, "requires_preferences", True):
        longest = int(max(ds.episode_lengths(), default=0))
        if longest < cfg.segment_length:
            raise ValueError(f"segment_length {cfg.segment_length} is longer than every episode of dataset "
                             f"'{source}' (the longest has {longest} steps); use segment_length <= {longest}")
        if hasattr(cls, "check_run"):
            cls.check_run(cfg.agent_kwargs, cfg.segment_length, longest)


def check_labels(cfg: OfflineConfig) -> None:
    """The offline run's ``labels`` file holds segments of the task's observation and action sizes (unless the
    agent learns from another task's labels, ``labels_from_source_task``: PEARL transfers them)."""
    if getattr(agent_class("offline", cfg.agent), "labels_from_source_task", False):
        return
    labels = load_labels(cfg.labels)
    seg = labels.segments if isinstance(labels, RatingDataset) else labels.a
    env = make_env(cfg.task)
    try:
        obs_dim, act_dim = int(env.observation_space.shape[0]), int(env.action_space.shape[0])
    finally:
        env.close()
    if (seg.obs_dim, seg.act_dim) != (obs_dim, act_dim):
        raise ValueError(f"labels file '{cfg.labels}' holds segments with observations of size {seg.obs_dim} and "
                         f"actions of size {seg.act_dim}, but {cfg.task} has {obs_dim} and {act_dim}; label "
                         "segments of this task")


def check_start(cfg: RunConfig, run_dir: str | os.PathLike, overwrite: bool = False) -> StartCheck:
    """Everything that can be checked before a run starts, without creating anything: the config
    (validated again), the run directory (writable, not a file, no run in it unless ``overwrite``), an
    online task's episode length against ``segment_length``, an offline run's dataset (readable, of
    the run's task and sizes, with episodes long enough) and its ``labels`` file (of the task's sizes), and that
    no other process trains in the run directory (:class:`RunBusy`, a ``ValueError``). Raises one ``ValueError``
    naming the fix."""
    cfg = cfg.validate()
    for package in get_entry(cfg.agent).extras:
        check_extra(package, f"the agent '{cfg.agent}'")
    path = check_run_dir(run_dir, overwrite)
    check_not_busy(path)
    if isinstance(cfg, OnlineConfig):
        horizon = cfg.max_episode_steps or episode_length(cfg.task)
        if horizon < cfg.segment_length:
            raise ValueError(f"segment_length {cfg.segment_length} is longer than an episode of {cfg.task} "
                             f"({horizon} steps); use segment_length <= {horizon}")
        return StartCheck(path)
    if cfg.labels is not None:
        check_labels(cfg)
    if cfg.dataset is None:  # collected at the start: at least the task's episodes must be long enough

        horizon = episode_length(cfg.task)
        if horizon < cfg.segment_length:
            raise ValueError(f"segment_length {cfg.segment_length} is longer than an episode of {cfg.task} "
                             f"({horizon} steps); use segment_length <= {horizon}")
        cls = agent_class("offline", cfg.agent)
        if hasattr(cls, "check_run"):
            cls.check_run(cfg.agent_kwargs, cfg.segment_length, horizon)
        return StartCheck(path)

    try:
        ds = load_dataset(cfg.dataset)
    except (OSError, KeyError) as e:
        raise ValueError(f"cannot read dataset '{cfg.dataset}' ({type(e).__name__}: {e}); give a D4RL-style "
                         ".hdf5 file or a local Minari id") from None
    check_dataset(cfg, ds, cfg.dataset)
    return StartCheck(path, ds)


def train(cfg: RunConfig, run_dir: str | os.PathLike, overwrite: bool = False, verbose: bool = True,
          echo: Callable[[str], None] | None = None, checked: StartCheck | None = None,
          tracking: Tracking | None = None) -> dict[str, Any]:
    """Start a new run of ``cfg`` in ``run_dir``: :func:`check_start`, then the run directory (with
    ``overwrite`` the previous run is moved aside and ``echo`` says where), then training.

    ``tracking``: also log to Weights & Biases (:mod:`pbrl.app.tracking`; the ``wandb`` extra is checked first,
    and the W&B run id is stored in ``run_dir/wandb.json`` so that a resume continues the same W&B run).

    A start that fails before its first checkpoint removes the directory it made (and puts back a run it
    moved aside); a later failure marks ``status.json`` ``failed`` and keeps the checkpoints for resume.
    The run directory's lock (:func:`pbrl.app.run_dir.run_lock`) is held throughout: :class:`RunBusy` if another
    process trains there.
    """
    if tracking is not None:
        check_tracking()
    cfg = cfg.validate()
    checked = checked or check_start(cfg, run_dir, overwrite)
    existed = Path(run_dir).exists()
    had_lock = lock_path(run_dir).exists()
    with run_lock(run_dir):
        run = RunDir(run_dir).create(cfg, overwrite=overwrite)
        if run.moved_to is not None and echo is not None:
            echo(f"--overwrite: the previous run in {run.path} was moved to {run.moved_to}")
        try:
            if tracking is not None:
                enable_tracking(run.path, tracking)
            with _FailureStatus(run.path):
                if isinstance(cfg, OnlineConfig):
                    return train_online(cfg, run.path, resume=False, verbose=verbose)
                return train_offline(cfg, run.path, resume=False, verbose=verbose, dataset=checked.dataset)
        except Exception:
            if run.latest_checkpoint() is None:
                _undo_start(run, existed)
                if not existed and not had_lock:  # a failed start leaves nothing behind, its lock file neither
                    lock_path(run_dir).unlink(missing_ok=True)
            raise


def _undo_start(run: RunDir, existed: bool) -> None:
    """Remove what a failed start made; put back the run that ``--overwrite`` moved aside."""
    if existed:
        for p in list(run.path.iterdir()):
            shutil.rmtree(p) if p.is_dir() else p.unlink()
    else:
        shutil.rmtree(run.path, ignore_errors=True)
    if run.moved_to is not None:
        run.path.mkdir(parents=True, exist_ok=True)
        for p in run.moved_to.iterdir():
            os.replace(p, run.path / p.name)
        run.moved_to.rmdir()


def train_seeds(cfgs: list[OfflineConfig], run_dirs: list[str | os.PathLike], verbose: bool = False,
                tracking: Tracking | None = None) -> list[dict[str, Any]]:
    """Start, resume or skip K offline runs that differ only in their seed, training the unfinished ones in
    one process (:func:`pbrl.app.train_offline.train_offline_seeds`, vmapped). New runs pass
    :func:`check_start` first (all of them, before any directory is made); a failure before the first
    checkpoint removes the directories this call made. ``tracking``: every run logs to W&B (see :func:`train`).
    Returns each run's metrics (or status), in order. Every unfinished run's lock is held while they train
    (:class:`RunBusy` if another process trains in any of them)."""
    if tracking is not None:
        check_tracking()
    out: dict[int, dict[str, Any]] = {}
    todo: list[tuple[int, OfflineConfig, Path, bool]] = []
    checks: dict[int, StartCheck] = {}
    for i, (cfg, d) in enumerate(zip(cfgs, run_dirs)):
        run = RunDir(d)
        if run.config_path.exists():
            if run.status().get("state") == "finished" and run.metrics() is not None:
                out[i] = run.metrics()
                continue
            todo.append((i, run.config(), run.path, True))
        else:
            cfg = cfg.validate()
            checks[i] = check_start(cfg, d)
            todo.append((i, cfg, Path(d), False))
    with run_lock(*(t[2] for t in todo)):
        return _train_seeds_locked(cfgs, todo, checks, out, verbose, tracking)


def _train_seeds_locked(cfgs: list[OfflineConfig], todo: list[tuple[int, OfflineConfig, Path, bool]],
                        checks: dict[int, StartCheck], out: dict[int, dict[str, Any]], verbose: bool,
                        tracking: Tracking | None) -> list[dict[str, Any]]:
    """:func:`train_seeds` once it holds the runs' locks (a run another process finished while this one waited
    is not trained again)."""
    for item in list(todo):
        run = RunDir(item[2])
        if item[3] and run.status().get("state") == "finished" and run.metrics() is not None:
            out[item[0]] = run.metrics()
            todo.remove(item)
    try:
        for _, cfg, d, resumed in todo:
            if not resumed:
                RunDir(d).create(cfg)
            if tracking is not None:
                enable_tracking(d, tracking)
        dataset = next((c.dataset for c in checks.values() if c.dataset is not None), None)
        res = train_offline_seeds([t[1] for t in todo], [t[2] for t in todo], resume=[t[3] for t in todo],
                                  verbose=verbose, dataset=dataset) if todo else []
    except BaseException as e:
        for _, _, d, resumed in todo:
            run = RunDir(d)
            if not run.path.exists() and not resumed:
                lock_path(d).unlink(missing_ok=True)  # never made: no lock file left beside it either
                continue
            if run.status_path.exists() and run.status().get("state") == "finished":
                continue  # finished before the failure: kept as it is
            if not resumed and run.latest_checkpoint() is None:
                shutil.rmtree(d, ignore_errors=True)  # a failed start leaves nothing behind, its lock file neither
                lock_path(d).unlink(missing_ok=True)
            else:
                _FailureStatus(d).__exit__(type(e), e, None)  # resumable: status "failed" with the error
        raise
    for (i, *_), r in zip(todo, res):
        out[i] = r
    return [out[i] for i in range(len(cfgs))]


def resume(run_dir: str | os.PathLike, verbose: bool = True, tracking: Tracking | None = None) -> dict[str, Any]:
    """Continue the run in ``run_dir`` from its newest usable checkpoint (or from the start if it has
    none). A finished run is not trained again: its metrics are returned.

    A tracked run (``wandb.json``) continues its W&B run; ``tracking`` starts tracking an untracked one.
    The run directory's lock is held throughout: :class:`RunBusy`, before anything is written, if another
    process trains there."""
    if tracking is not None:
        check_tracking()
    run = RunDir(run_dir)
    cfg = run.config()
    if run.status().get("state") == "finished" and run.metrics() is not None:
        return run.metrics()
    with run_lock(run_dir):
        if run.status().get("state") == "finished" and run.metrics() is not None:  # finished while we waited
            return run.metrics()
        if tracking is not None:
            enable_tracking(run.path, tracking)
        with _FailureStatus(run.path):
            if isinstance(cfg, OnlineConfig):
                return train_online(cfg, run.path, resume=True, verbose=verbose)
            return train_offline(cfg, run.path, resume=True, verbose=verbose)


# ============================================================================ evaluation of a run
def load_policy(run_dir: str | os.PathLike) -> tuple[Any, RunConfig, str]:
    """The trained policy of a run: ``(policy with predict(), config, source file)``.

    Finished runs load ``model.zip`` (online, SB3) or ``agent.pt`` (offline); unfinished ones their latest
    checkpoint.
    """
    run = RunDir(run_dir)
    cfg = run.config()
    if isinstance(cfg, OnlineConfig):
        if (run.path / "model.zip").exists():
            import stable_baselines3 as sb3

            learner = getattr(sb3, get_entry(cfg.agent, "online").learner or "SAC")
            return learner.load(run.path / "model.zip", device="cpu"), cfg, str(run.path / "model.zip")
        ckpt = run.latest_checkpoint()
        if ckpt is None:
            raise ValueError(f"{run.path} has no trained model yet (no model.zip and no checkpoint); "
                             f"train it first (`pbrl train --resume {run.path}`)")
        agent = _build_online(cfg)
        payload = run.load_checkpoint()
        set_sb3_state(agent.model, payload["sb3"])
        return agent.model, cfg, str(ckpt)
    cls = agent_class("offline", cfg.agent)
    path = run.path / "agent.pt"
    if not path.exists():
        agents = sorted(run.ckpt_dir.glob("agent_*.pt"))
        if not agents:
            raise ValueError(f"{run.path} has no trained agent yet (no agent.pt and no checkpoint); "
                             f"train it first (`pbrl train --resume {run.path}`)")
        path = agents[-1]
    return cls.load(path), cfg, str(path)


def evaluate_run(
    run_dir: str | os.PathLike,
    n_episodes: int = 10,
    seed: int = 0,
    video: str | os.PathLike | None = None,
    video_episodes: int = 1,
    size: tuple[int, int] = (320, 240),
    overwrite: bool = False,
    task: str | None = None,
) -> dict[str, Any]:
    """Evaluate a run's policy on its task: mean/std return, success rate and normalised score over
    ``n_episodes`` deterministic episodes (seeded by ``seed``); written to ``RUN_DIR/eval.json``.

    ``run_dir`` may also be an SB3 model ``.zip`` trained elsewhere (:mod:`pbrl.app.sb3_zip`): its policy alone is
    evaluated on ``task`` (required then; the zip's spaces must be the task's), and nothing is written but
    the ``video``.

    ``video``: also render ``video_episodes`` episodes offscreen (MuJoCo; ``MUJOCO_GL=osmesa`` without a
    GPU) and save them as one MP4 at that path (an existing file only with ``overwrite``; checked first).
    """
    check_int("episodes", n_episodes, 1)
    check_int("video_episodes", video_episodes, 1)
    shared = is_sb3_zip(run_dir)
    if shared and task is None:
        raise ValueError(f"'{run_dir}' is an SB3 model file: name the task it was trained on with --task "
                         "(see `pbrl tasks`)")
    if not shared and task is not None:
        raise ValueError(f"--task is for an SB3 .zip trained elsewhere; the run '{run_dir}' is evaluated on its own task")
    if video is not None:
        if Path(video).suffix.lower() != ".mp4":
            raise ValueError(f"--video must be an .mp4 path, got '{video}'")
        check_writable_file(video, "video file", overwrite=overwrite)
    if shared:
        from types import SimpleNamespace

        policy, source = load_sb3_policy(run_dir, task), str(run_dir)
        cfg: Any = SimpleNamespace(task=task, max_episode_steps=None)
        env = make_env(task, seed=10_000)
    else:
        policy, cfg, source = load_policy(run_dir)
        env = _eval_env(cfg)
    res = evaluate_policy_episodes(policy, env, n_episodes, deterministic=True, seed=seed)
    out: dict[str, Any] = {
        "run": None if shared else str(run_dir),
        "policy": source,
        "task": cfg.task,
        "episodes": n_episodes,
        "seed": seed,
        "mean_return": res["mean_return"],
        "std_return": res["std_return"],
        "success_rate": res["success_rate"],
        "normalized_score": _normalized(cfg.task, res["returns"]),
        "returns": [float(r) for r in res["returns"]],
    }
    if video is not None:
        out["video"] = str(render_video(policy, cfg, video, video_episodes, seed, size))
    if not shared:
        RunDir(run_dir)._write_json(RunDir(run_dir).path / "eval.json", out)
    return out
