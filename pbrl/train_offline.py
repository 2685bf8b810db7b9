"""The offline training loop of ``pbrl train offline``: dataset (loaded, or collected into the run
directory), labels drawn once from the teacher (preference pairs, or ratings from a rating teacher) or read
from the config's ``labels`` file, and saved first (``labels.h5``), then ``fit`` with the shared run
callbacks of :mod:`pbrl.callbacks` (evaluations and checkpoints every ``eval_every`` /
``checkpoint_every`` updates, SIGINT), and exact resume.

An offline checkpoint is ``checkpoints/step_<N>.pt`` (global RNGs, the evaluation curve, counters) beside
``checkpoints/agent_<N>.pt`` (``OfflineAgent.save``: nets, optimisers, RNGs, update count).
"""

from __future__ import annotations

import os
import time
from typing import Any

import torch

from pbrl.callbacks import PbrlCheckpointCallback, PbrlEvalCallback, StopOnSignal
from pbrl.checkpoint import global_rng_state, set_global_rng_state
from pbrl.config import OfflineConfig, agent_class
from pbrl.preferences import PreferenceDataset
from pbrl.progress import Progress
from pbrl.ratings import RatingDataset
from pbrl.run_dir import RunDir
from pbrl.train_common import eval_env, final_metrics, make_logger

__all__ = ["train_offline", "offline_data"]


def offline_data(cfg: OfflineConfig, run: RunDir | None = None, reuse_local: bool = True):
    """The run's dataset: ``cfg.dataset`` loaded, else the one collected into ``RUN_DIR/dataset.hdf5``
    (reused on resume), else collected now (``collect_policy``, ``collect_steps``, seeded by ``seed``)."""
    from pbrl.envs.datasets import load_d4rl, load_dataset, save_d4rl

    if cfg.dataset is not None:
        return load_dataset(cfg.dataset)
    local = run.path / "dataset.hdf5" if run is not None else None
    if local is not None and reuse_local and local.exists():
        return load_d4rl(local)
    from pbrl.envs.datasets import collect

    ds = collect(cfg.task, policy=cfg.collect_policy, n_steps=cfg.collect_steps, seed=cfg.seed, **cfg.collect_kwargs)
    if local is not None:
        save_d4rl(ds, local)
    return ds


def train_offline(cfg: OfflineConfig, run_dir: str | os.PathLike, resume: bool = False, verbose: bool = True,
                  dataset: Any = None) -> dict[str, Any]:
    """Train an offline agent into ``run_dir``. ``resume=True`` continues from the newest usable checkpoint
    (temp files of writes killed mid-way are removed first; the saved labels and collected dataset are
    reused); a new run never reads labels or a dataset an earlier run left. ``dataset``: the already
    loaded dataset (``pbrl.runs.train`` loads it while validating)."""
    from stable_baselines3.common.utils import set_random_seed

    from pbrl.envs.datasets import label_dataset, rate_dataset
    from pbrl.ratings import load_labels
    from pbrl.teachers import make_teacher

    run = RunDir(run_dir)
    t0, c0 = time.time(), time.process_time()
    if resume:
        run.remove_temp_files()
    torch.set_num_threads(cfg.torch_threads)
    set_random_seed(cfg.seed)
    ds = dataset if dataset is not None else offline_data(cfg, run, reuse_local=resume)
    cls = agent_class("offline", cfg.agent)
    needs_prefs = getattr(cls, "requires_preferences", True)
    prefs: PreferenceDataset | RatingDataset | None = None
    if resume and run.labels_path.exists():
        prefs = load_labels(run.labels_path)
    elif needs_prefs and cfg.labels is not None:
        prefs = load_labels(cfg.labels)
        prefs.save(run.labels_path)
    elif needs_prefs:
        teacher = make_teacher(cfg.teacher, seed=cfg.seed, **cfg.teacher_options())
        label = rate_dataset if teacher.feedback == "rating" else label_dataset
        prefs = label(ds, teacher, cfg.total_feedback, segment_length=cfg.segment_length, seed=cfg.seed,
                      stratified=cfg.stratified)
        prefs.save(run.labels_path)
    loaded = None
    if resume:
        loaded = run.checkpoints.load(then=lambda p: cls.load(run.ckpt_dir / f"agent_{int(p['step']):010d}.pt"))
    progress = Progress(next_eval=cfg.eval_every, next_ckpt=cfg.checkpoint_every)
    if loaded is not None:
        payload, agent = loaded
        set_global_rng_state(payload["rng"])
        progress = Progress.from_dict(payload["progress"])
        progress.session += 1
        run.write_curve(progress.curve)
    else:
        agent = cls.from_dataset(ds, seed=cfg.seed, **cfg.agent_kwargs)
    progress.start_clock(t0, c0)  # checkpoints carry the run's time up to them
    done = int(agent.num_updates)
    agent.set_logger(make_logger(run, progress.session, verbose=False, resume_step=done if loaded is not None else None))
    n_labels = len(prefs) if prefs is not None else 0
    evaluator = PbrlEvalCallback(eval_env(cfg), cfg.eval_every, cfg.n_eval_episodes, seed=10_000 + cfg.seed,
                                 eval_at_end=False, labels=n_labels, task=cfg.task, dataset=ds, progress=progress, run=run)
    evaluator.init_callback(agent)

    def checkpoint(step: int) -> None:
        agent.save(run.ckpt_dir / f"agent_{step:010d}.pt")
        run.save_checkpoint(step, {"kind": "offline", "rng": global_rng_state(), "progress": progress.to_dict()})
        for old in sorted(run.ckpt_dir.glob("agent_*.pt"))[:-2]:
            old.unlink(missing_ok=True)
        run.write_status("running", step=step, labels=n_labels, checkpoint=step)

    ckpt = PbrlCheckpointCallback(checkpoint, cfg.checkpoint_every, progress)
    run.write_status("running", step=done, labels=n_labels)
    with StopOnSignal(ckpt) as stop:
        if done < cfg.steps:
            agent.fit(ds, prefs, steps=cfg.steps - done, callback=[evaluator, ckpt, stop], progress=verbose)
    step = int(agent.num_updates)
    if stop.stopping:
        run.write_status("interrupted", step=progress.last_ckpt, labels=n_labels, checkpoint=progress.last_ckpt)
        return run.status()
    evaluator.finish()
    agent.save(run.path / "agent.pt")
    metrics = final_metrics(cfg, progress, step, n_labels, time.time() - t0, time.process_time() - c0)
    run.write_metrics(metrics)
    run.write_status("finished", step=step, labels=n_labels)
    return metrics
