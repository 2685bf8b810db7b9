"""What both training loops share besides their callbacks (:mod:`pbrl.callbacks`: evaluation, checkpoints,
SIGINT): the SB3 logger of a run (TensorBoard purged past the checkpoint on resume), the evaluation env,
the failure status and the final metrics."""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from pbrl.app.config import OnlineConfig, RunConfig
from pbrl.app.run_dir import RunDir
from pbrl.app.tracking import WandbOutputFormat, tracking_of
from pbrl.callbacks import StopOnSignal
from pbrl.envs import make_env
from pbrl.envs.evaluation import evaluation_row
from pbrl.envs.evaluation import task_normalized_score as normalized
from pbrl.progress import Progress

__all__ = ["StopFlag", "FailureStatus", "make_logger", "eval_env", "evaluate", "normalized", "final_metrics",
           "online_env"]


def make_logger(run: RunDir, session: int, verbose: bool = True, resume_step: int | None = None):
    """SB3 logger writing ``log.txt``, ``progress[.resume<k>].csv`` and TensorBoard events under ``tb/``,
    and, for a tracked run (``wandb.json`` in its directory, :mod:`pbrl.app.tracking`), to its W&B run.

    ``resume_step``: the step of the checkpoint a resumed session starts from. TensorBoard events the
    killed session wrote after it are purged (``SummaryWriter(purge_step=...)``), so each (tag, step)
    has one value, as with SB3's ``reset_num_timesteps=False``.
    """
    from stable_baselines3.common.logger import (
        CSVOutputFormat,
        HumanOutputFormat,
        Logger,
        TensorBoardOutputFormat,
    )

    formats = []
    if verbose:
        formats.append(HumanOutputFormat(sys.stdout))
    log_fh = open(run.path / "log.txt", "a")  # noqa: SIM115 - closed with the logger
    formats.append(HumanOutputFormat(log_fh))
    name = "progress.csv" if session == 0 else f"progress.resume{session}.csv"
    formats.append(CSVOutputFormat(str(run.path / name)))
    try:
        tb = TensorBoardOutputFormat(str(run.path / "tb"))
        if resume_step is not None:
            from torch.utils.tensorboard import SummaryWriter

            tb.writer.close()
            tb.writer = SummaryWriter(log_dir=str(run.path / "tb"), purge_step=int(resume_step) + 1)
        formats.append(tb)
    except (ImportError, AssertionError):
        pass
    tracking = tracking_of(run.path)
    if tracking is not None:
        config = json.loads(run.config_path.read_text()) if run.config_path.exists() else {}
        formats.append(WandbOutputFormat(run.path, tracking, config=config, name=run.path.name))
    return Logger(str(run.path), formats)


def online_env(cfg: OnlineConfig):
    """The env (or task id) an online agent trains on: the task, with ``max_episode_steps`` if set."""
    if cfg.max_episode_steps is None:
        return cfg.task
    return make_env(cfg.task, seed=cfg.seed, max_episode_steps=cfg.max_episode_steps)


#: the SIGINT stop request of earlier versions: :class:`pbrl.callbacks.StopOnSignal` (a callback now)
StopFlag = StopOnSignal


class FailureStatus:
    """Marks ``status.json`` as ``failed`` (with the error) when training raises; the latest checkpoint
    stays valid, so the run can still be resumed after the cause is fixed."""

    def __init__(self, run_dir: str | os.PathLike):
        self.run = RunDir(run_dir)

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None and self.run.status_path.exists():
            st = self.run.status()
            st.pop("time", None)
            st.pop("state", None)
            st["error"] = f"{exc_type.__name__}: {exc}"
            self.run.write_status("failed", **st)


# ---------------------------------------------------------------------------- evaluation
def eval_env(cfg: RunConfig):
    """The run's evaluation env: the run's task (with its ``max_episode_steps``, online) seeded ``10_000 +
    seed``."""
    limit = cfg.max_episode_steps if isinstance(cfg, OnlineConfig) else None
    return make_env(cfg.task, seed=10_000 + cfg.seed, max_episode_steps=limit)


def evaluate(policy: Any, env: Any, cfg: RunConfig, step: int, labels: int) -> dict[str, Any]:
    """One ``curve.csv`` row of ``policy`` on ``env`` (:func:`pbrl.envs.evaluation.evaluation_row` with the run's
    episodes, seed and task)."""
    return evaluation_row(policy, env, cfg.n_eval_episodes, 10_000 + cfg.seed, step, labels, task=cfg.task)


def final_metrics(cfg: RunConfig, progress: Progress, step: int, labels: int, wall: float, cpu: float = 0.0,
                  **extra) -> dict[str, Any]:
    """The run's ``metrics.json``: final evaluation, labels, and wall and CPU seconds (this session's are
    added to ``progress``)."""
    last = progress.curve[-1]
    progress.add_time(wall, cpu)
    return {
        "kind": cfg.kind,
        "task": cfg.task,
        "agent": cfg.agent,
        "teacher": cfg.teacher,
        "seed": cfg.seed,
        "budget": cfg.total_feedback,
        "steps": step,
        "labels": labels,
        "final": {k: last[k] for k in ("mean_return", "std_return", "success_rate", "normalized_score")},
        "n_eval_episodes": cfg.n_eval_episodes,
        "wall_time_s": progress.wall_time_s,
        "cpu_time_s": progress.cpu_time_s,
        **extra,
    }
