"""The offline training loop of ``pbrl train offline``: dataset (loaded, or collected into the run
directory), labels drawn once from the teacher (preference pairs, or ratings from a rating teacher) or read
from the config's ``labels`` file, and saved first (``labels.h5``), then ``fit`` with the shared run
callbacks of :mod:`pbrl.callbacks` (evaluations and checkpoints every ``eval_every`` /
``checkpoint_every`` updates, SIGINT), and exact resume.

An offline checkpoint is ``checkpoints/step_<N>.pt`` (global RNGs, the evaluation curve, counters) beside
``checkpoints/agent_<N>.pt`` (``OfflineAgent.save``: nets, optimisers, RNGs, update count).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Sequence
from typing import Any

import torch
from tqdm.auto import tqdm

from pbrl.agents.multiseed import MultiSeed
from pbrl.app.config import OfflineConfig, agent_class
from pbrl.app.run_dir import RunDir
from pbrl.app.train_common import eval_env, final_metrics, make_logger
from pbrl.callbacks import PbrlCheckpointCallback, StopOnSignal
from pbrl.checkpoint import global_rng_state, set_global_rng_state
from pbrl.envs.datasets import collect, label_dataset, load_d4rl, load_dataset, rate_dataset, save_d4rl
from pbrl.envs.evaluation import PbrlEvalCallback
from pbrl.envs.regret import dataset_regret_teacher
from pbrl.preferences import PreferenceDataset
from pbrl.progress import Progress
from pbrl.ratings import RatingDataset, load_labels
from pbrl.teachers import make_teacher

__all__ = ["train_offline", "train_offline_seeds", "offline_data"]


def offline_data(cfg: OfflineConfig, run: RunDir | None = None, reuse_local: bool = True):
    """The run's dataset: ``cfg.dataset`` loaded, else the one collected into ``RUN_DIR/dataset.hdf5``
    (reused on resume), else collected now (``collect_policy``, ``collect_steps``, seeded by ``seed``)."""
    if cfg.dataset is not None:
        return load_dataset(cfg.dataset)
    local = run.path / "dataset.hdf5" if run is not None else None
    if local is not None and reuse_local and local.exists():
        return load_d4rl(local)

    ds = collect(cfg.task, policy=cfg.collect_policy, n_steps=cfg.collect_steps, seed=cfg.seed, **cfg.collect_kwargs)
    if local is not None:
        save_d4rl(ds, local)
    return ds


class _OfflineRun:
    """One offline run prepared up to its first update (a new run) or its newest checkpoint (a resume): the
    run directory, dataset, labels (drawn and saved first, or reloaded), agent, ``Progress``, and the shared
    evaluation and checkpoint callbacks. ``share``: the part of the process's time that is this run's."""

    def __init__(self, cfg: OfflineConfig, run_dir: str | os.PathLike, resume: bool,
                 dataset: Any = None, share: float = 1.0, clock: tuple[float, float] | None = None):
        from stable_baselines3.common.utils import set_random_seed

        self.cfg, self.run, self.share = cfg, RunDir(run_dir), float(share)
        run = self.run
        self.t0, self.c0 = clock if clock is not None else (time.time(), time.process_time())
        if resume:
            run.remove_temp_files()
        torch.set_num_threads(cfg.torch_threads)
        set_random_seed(cfg.seed)
        ds = self.ds = dataset if dataset is not None else offline_data(cfg, run, reuse_local=resume)
        cls = agent_class("offline", cfg.agent)
        needs_prefs = getattr(cls, "requires_preferences", True)
        prefs: PreferenceDataset | RatingDataset | None = None
        if resume and run.labels_path.exists():
            prefs = load_labels(run.labels_path)
        elif needs_prefs and cfg.labels is not None:
            prefs = load_labels(cfg.labels)
            prefs.save(run.labels_path)
        elif needs_prefs:
            if cfg.teacher == "regret":  # CPL's oracle, built for this dataset (pbrl.envs.regret)

                teacher = dataset_regret_teacher(ds, seed=cfg.seed, **cfg.teacher_options())
            else:
                teacher = make_teacher(cfg.teacher, seed=cfg.seed, **cfg.teacher_options())
            label = rate_dataset if teacher.feedback == "rating" else label_dataset
            prefs = label(ds, teacher, cfg.total_feedback, segment_length=cfg.segment_length, seed=cfg.seed,
                          stratified=cfg.stratified)
            prefs.save(run.labels_path)
        self.prefs = prefs
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
        self.agent, self.progress = agent, progress
        progress.start_clock(self.t0, self.c0, share=self.share)  # checkpoints carry the run's time up to them
        done = int(agent.num_updates)
        agent.set_logger(make_logger(run, progress.session, verbose=False,
                                     resume_step=done if loaded is not None else None))
        self.n_labels = len(prefs) if prefs is not None else 0
        self.evaluator = PbrlEvalCallback(eval_env(cfg), cfg.eval_every, cfg.n_eval_episodes, seed=10_000 + cfg.seed,
                                          eval_at_end=False, labels=self.n_labels, task=cfg.task, dataset=ds,
                                          progress=progress, run=run)
        self.evaluator.init_callback(agent)
        self.ckpt = PbrlCheckpointCallback(self.checkpoint, cfg.checkpoint_every, progress)
        run.write_status("running", step=done, labels=self.n_labels)

    @property
    def done(self) -> int:
        """Updates taken so far."""
        return int(self.agent.num_updates)

    def checkpoint(self, step: int) -> None:
        run = self.run
        self.agent.save(run.ckpt_dir / f"agent_{step:010d}.pt")
        run.save_checkpoint(step, {"kind": "offline", "rng": global_rng_state(), "progress": self.progress.to_dict()})
        for old in sorted(run.ckpt_dir.glob("agent_*.pt"))[:-2]:
            old.unlink(missing_ok=True)
        run.write_status("running", step=step, labels=self.n_labels, checkpoint=step)

    def interrupted(self) -> dict[str, Any]:
        last = self.progress.last_ckpt
        self.run.write_status("interrupted", step=last, labels=self.n_labels, checkpoint=last)
        return self.run.status()

    def finish(self, **extra: Any) -> dict[str, Any]:
        self.evaluator.finish()
        self.agent.save(self.run.path / "agent.pt")
        wall, cpu = self.share * (time.time() - self.t0), self.share * (time.process_time() - self.c0)
        metrics = final_metrics(self.cfg, self.progress, self.done, self.n_labels, wall, cpu, **extra)
        self.run.write_metrics(metrics)
        self.run.write_status("finished", step=self.done, labels=self.n_labels)
        return metrics


def train_offline(cfg: OfflineConfig, run_dir: str | os.PathLike, resume: bool = False, verbose: bool = True,
                  dataset: Any = None) -> dict[str, Any]:
    """Train an offline agent into ``run_dir``. ``resume=True`` continues from the newest usable checkpoint
    (temp files of writes killed mid-way are removed first; the saved labels and collected dataset are
    reused); a new run never reads labels or a dataset an earlier run left. ``dataset``: the already
    loaded dataset (``pbrl.app.runs.train`` loads it while validating)."""
    return _fit_one(_OfflineRun(cfg, run_dir, resume, dataset), verbose)


def _fit_one(r: _OfflineRun, verbose: bool) -> dict[str, Any]:
    """Train one prepared run to its end (or to a SIGINT: checkpoint, status ``interrupted``); its logger
    is closed at the end (a tracked run's W&B run finishes with it)."""
    with contextlib.closing(r.agent.logger):
        with StopOnSignal(r.ckpt) as stop:
            if r.done < r.cfg.steps:
                r.agent.fit(r.ds, r.prefs, steps=r.cfg.steps - r.done, callback=[r.evaluator, r.ckpt, stop],
                            progress=verbose)
        if stop.stopping:
            return r.interrupted()
        return r.finish()


def _checkpoint_step(run_dir: str | os.PathLike) -> int | None:
    """The step of a run directory's newest checkpoint (``None``: none)."""
    latest = RunDir(run_dir).latest_checkpoint()
    if latest is None:
        return None
    digits = "".join(ch for ch in latest.stem if ch.isdigit())
    return int(digits) if digits else None


def train_offline_seeds(cfgs: Sequence[OfflineConfig], run_dirs: Sequence[str | os.PathLike],
                        resume: bool | Sequence[bool] = False, verbose: bool = True,
                        dataset: Any = None) -> list[dict[str, Any]]:
    """Train K offline runs that differ only in their seed in one process, vmapped (:class:`MultiSeed`).

    Every run directory ends exactly as :func:`train_offline` leaves it (labels drawn with its own seed,
    ``curve.csv``, checkpoints, ``agent.pt``, ``metrics.json``), and seed k's numbers equal its single-seed
    run's up to float rounding (the vmapped update is the same computation). Each run records ``1 / K`` of
    the process's wall and CPU time, and ``seed_batch: K`` in its metrics. ``progress.csv`` has one row per
    evaluation, with the mean losses of the last 10 % of the updates before it (a single-seed run also
    writes a row every ``log_interval`` updates).

    The runs must share one dataset file (``cfg.dataset``). ``resume``: one flag, or one per run. Runs whose
    newest checkpoints are at different steps (or a mix of new and resumed runs) are trained one after the
    other with :func:`train_offline` instead, so nothing is lost; so are runs whose newest checkpoint turns
    out unreadable (each resumes from the one before). SIGINT checkpoints every run and stops after the
    current evaluation interval.
    """
    cfgs, run_dirs = list(cfgs), [os.fspath(d) for d in run_dirs]
    flags = [bool(resume)] * len(cfgs) if isinstance(resume, bool) else [bool(f) for f in resume]
    if not cfgs or len(cfgs) != len(run_dirs) or len(flags) != len(cfgs):
        raise ValueError("train_offline_seeds needs one run directory (and resume flag) per config")
    base = {k: v for k, v in cfgs[0].to_dict().items() if k != "seed"}
    for c in cfgs:
        if {k: v for k, v in c.to_dict().items() if k != "seed"} != base:
            raise ValueError("train_offline_seeds: the configs must differ only in their seed")
    if len({c.seed for c in cfgs}) != len(cfgs):
        raise ValueError(f"train_offline_seeds: the seeds must be distinct, got {[c.seed for c in cfgs]}")
    if cfgs[0].dataset is None:
        raise ValueError("train_offline_seeds: the seeds must share a dataset file (set 'dataset'); runs that "
                         "collect their own data train one by one")
    steps_at = [_checkpoint_step(d) if f else None for d, f in zip(run_dirs, flags)]
    if len(cfgs) == 1 or len(set(steps_at)) != 1:
        out: list[dict[str, Any]] = []
        for c, d, f in zip(cfgs, run_dirs, flags):
            if out and out[-1].get("state") == "interrupted":  # SIGINT stops the rest too
                out.append({"state": "not started"})
                continue
            out.append(train_offline(c, d, resume=f, verbose=verbose, dataset=dataset))
        return out

    ds = dataset if dataset is not None else load_dataset(cfgs[0].dataset)
    clock = (time.time(), time.process_time())
    runs = [_OfflineRun(c, d, f, ds, share=1.0 / len(cfgs), clock=clock) for c, d, f in zip(cfgs, run_dirs, flags)]
    if len({r.done for r in runs}) != 1:  # a corrupt newest checkpoint fell back to an older one: one by one
        out = []
        for r in runs:
            r.share, r.t0, r.c0 = 1.0, time.time(), time.process_time()
            r.progress.start_clock(r.t0, r.c0)
            out.append(_fit_one(r, verbose))
        return out
    with contextlib.ExitStack() as loggers:  # a tracked run's W&B run finishes with its logger
        for r in runs:
            loggers.enter_context(contextlib.closing(r.agent.logger))
        return _fit_seeds(runs, cfgs[0].steps, ds, verbose)


def _fit_seeds(runs: list[_OfflineRun], steps: int, ds: Any, verbose: bool) -> list[dict[str, Any]]:
    """Train K prepared runs at the same step together, vmapped (:func:`train_offline_seeds`)."""
    group = MultiSeed([r.agent for r in runs])
    prefs = [r.prefs for r in runs]
    for r in runs:  # the first fit fixes what depends on the whole run's length (CPL's BC phase)
        r.agent._fit_options()
        r.agent._check_inputs(ds, r.prefs)
        r.agent._start_fit(ds, r.prefs, max(steps - r.done, 1))
        r.agent._multiseed_prepared = True  # the chunks below go on from here (MultiSeed.fit(prepare=False))
        r.ckpt.init_callback(r.agent)
    lead = runs[0].progress
    bar = tqdm(total=steps, initial=runs[0].done, desc=f"{runs[0].cfg.agent} x{len(runs)}", unit="upd",
               disable=not verbose)
    with StopOnSignal() as stop:
        while runs[0].done < steps and not stop.requested:
            done = runs[0].done
            nxt = max(done + 1, min(steps, lead.next_eval, lead.next_ckpt))
            info = group.fit(ds, prefs, steps=nxt - done, progress=False, prepare=False)
            for r, losses in zip(runs, info["losses"]):
                for k, v in losses.items():  # written out with the next evaluation's row
                    r.agent.logger.record(f"train/{k}", v)
                r.evaluator.on_step()
                r.ckpt.on_step()
            bar.update(nxt - done)
    bar.close()
    if stop.requested:
        for r in runs:
            if r.progress.last_ckpt != r.done:
                r.ckpt.save_now(r.done)
        return [r.interrupted() for r in runs]
    return [r.finish(seed_batch=len(runs)) for r in runs]
