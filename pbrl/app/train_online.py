"""The online training loop of ``pbrl train online``: an SB3-based agent, the shared run callbacks of
:mod:`pbrl.callbacks` (evaluation, checkpoints, SIGINT, acting at rollout starts) and exact resume.

An online checkpoint holds the SB3 learner (parameters, optimiser states, counters, last observation, its
action-space RNG), the replay buffer (filled rows only), the reward model (weights, optimiser, RNGs), the
``PreferenceCallback`` state (labels, preference pairs or ratings, teacher RNG and thresholds, selector RNG,
recorded episodes), the environment
(MuJoCo integration state, the env's RNG, time-limit counter, Monitor statistics, Meta-World's task state)
and the global ``random`` / NumPy / torch RNG states. It is taken at a rollout boundary (before a rollout
starts, after the previous gradient step), where this state is complete: a resumed run continues with
exactly the labels and steps of an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import copy
import os
import time
from typing import Any

import torch

from pbrl.app.config import OnlineConfig, agent_class
from pbrl.app.run_dir import RunDir
from pbrl.app.train_common import eval_env, final_metrics, make_logger, online_env
from pbrl.callbacks import PbrlCheckpointCallback, StopOnSignal
from pbrl.checkpoint import (
    SdeNoiseTap,
    buffer_state,
    global_rng_state,
    sb3_state,
    set_buffer_state,
    set_global_rng_state,
    set_sb3_state,
    set_vec_env_state,
    vec_env_state,
)
from pbrl.envs.evaluation import PbrlEvalCallback
from pbrl.io import atomic_write
from pbrl.progress import Progress
from pbrl.queries import make_selector
from pbrl.teachers import make_teacher

__all__ = ["train_online", "build_online"]


def build_online(cfg: OnlineConfig, progress: bool = False):
    """The online agent of ``cfg`` (teacher, selector, env, learner), seeded, with ``torch_threads`` set; not
    trained yet."""
    from stable_baselines3.common.utils import set_random_seed

    torch.set_num_threads(cfg.torch_threads)
    set_random_seed(cfg.seed)
    teacher = make_teacher(cfg.teacher, seed=cfg.seed, **cfg.teacher_options())
    cls = agent_class("online", cfg.agent)
    extra = dict(cfg.agent_kwargs)
    if cfg.max_episode_steps is not None:
        extra.setdefault("episode_length", cfg.max_episode_steps)
    extra.setdefault("progress", progress)
    agent = cls(
        online_env(cfg),
        teacher,
        total_feedback=cfg.total_feedback,
        feedback_per_session=cfg.feedback_per_session,
        feedback_every=cfg.feedback_every,
        segment_length=cfg.segment_length,
        selector=make_selector(cfg.selector, **cfg.selector_kwargs) if cfg.selector_kwargs else cfg.selector,
        seed=cfg.seed,
        learner_kwargs=dict(cfg.learner_kwargs) or None,
        reward_model_kwargs=dict(cfg.reward_model_kwargs) or None,
        **extra,
    )
    return agent


def _save_online_checkpoint(agent, run: RunDir, step: int, progress: Progress, tap: SdeNoiseTap | None = None) -> None:
    model = agent.model
    payload = {
        "kind": "online",
        "sb3": sb3_state(model),
        "replay_buffer": buffer_state(getattr(model, "replay_buffer", None)),
        "reward_model": copy.deepcopy(agent.reward_model.state()),  # a snapshot, training may go on
        "callback": agent.callback.state_dict(),
        "agent": agent.state_dict() if hasattr(agent, "state_dict") else None,
        "entropy": agent.entropy.get_state() if hasattr(getattr(agent, "entropy", None), "get_state") else None,
        "env": vec_env_state(model.get_env()),
        "rng": tap.rng_state() if tap is not None else global_rng_state(),  # gSDE: as before the rollout's draw
        "progress": progress.to_dict(),
        "logger": _logger_state(model.logger),  # values recorded but not yet dumped
    }
    prefs = agent.callback.preferences
    if prefs is not None:
        prefs.save(run.labels_path)
    run.save_checkpoint(step, payload)
    run.write_status("running", step=step, labels=int(agent.callback.labels_used), checkpoint=step)


_LOGGER_FIELDS = ("name_to_value", "name_to_count", "name_to_excluded")


def _logger_state(logger) -> dict[str, Any]:
    return {k: copy.deepcopy(dict(getattr(logger, k))) for k in _LOGGER_FIELDS if hasattr(logger, k)}


def _set_logger_state(logger, state: dict[str, Any] | None) -> None:
    for k, v in (state or {}).items():
        getattr(logger, k).update(copy.deepcopy(v))


def _restore_online(agent, payload: dict) -> None:
    model = agent.model
    set_sb3_state(model, payload["sb3"])
    set_buffer_state(getattr(model, "replay_buffer", None), payload["replay_buffer"])
    agent.reward_model.load_state(payload["reward_model"])
    agent.callback.load_state_dict(payload["callback"])
    if payload.get("agent") is not None and hasattr(agent, "load_state_dict"):
        agent.load_state_dict(payload["agent"])
    if payload.get("entropy") is not None and hasattr(getattr(agent, "entropy", None), "set_state"):
        agent.entropy.set_state(payload["entropy"])
    if getattr(agent.callback, "updates", 0) > 0 and hasattr(agent, "_set_learned_reward"):
        agent._set_learned_reward()  # the unsupervised phase ended before the checkpoint
    set_vec_env_state(model.get_env(), payload["env"])
    set_global_rng_state(payload["rng"])


def train_online(cfg: OnlineConfig, run_dir: str | os.PathLike, resume: bool = False,
                 verbose: bool = True) -> dict[str, Any]:
    """Train an online agent into ``run_dir`` (new run, or ``resume=True`` from its newest usable
    checkpoint; temp files of writes killed mid-way are removed first).

    Returns the final metrics (also written to ``metrics.json``), or the status dict when stopped by SIGINT.
    """
    run = RunDir(run_dir)
    t0, c0 = time.time(), time.process_time()
    agent = build_online(cfg, progress=verbose)
    tap = SdeNoiseTap.attach(agent.model)
    payload = None
    if resume:
        run.remove_temp_files()
        payload = run.load_checkpoint()
    progress = Progress(next_eval=0, next_ckpt=cfg.checkpoint_every)
    if payload is not None:
        _restore_online(agent, payload)
        progress = Progress.from_dict(payload["progress"])
        progress.session += 1
        run.write_curve(progress.curve)
        prefs = agent.callback.preferences
        if prefs is not None:  # labels.h5 matches the checkpoint resumed from (an older one after a fallback)
            prefs.save(run.labels_path)
    progress.start_clock(t0, c0)  # checkpoints carry the run's time up to them
    done = int(agent.model.num_timesteps) if payload is not None else 0
    agent.model.set_logger(make_logger(run, progress.session, verbose,
                                       resume_step=done if payload is not None else None))
    if payload is not None:
        _set_logger_state(agent.model.logger, payload.get("logger"))
    with contextlib.closing(agent.model.logger):  # a tracked run's W&B run finishes with it
        run.write_status("running", step=done, labels=agent.callback.labels_used if payload else 0)
        evaluator = PbrlEvalCallback(eval_env(cfg), cfg.eval_every, cfg.n_eval_episodes, agent.callback,
                                     seed=10_000 + cfg.seed, eval_at_end=False, task=cfg.task, progress=progress, run=run,
                                     dump=False)
        evaluator.init_callback(agent.model)
        ckpt = PbrlCheckpointCallback(lambda t: _save_online_checkpoint(agent, run, t, progress, tap), cfg.checkpoint_every,
                                      progress)
        with StopOnSignal(ckpt) as stop:
            if done < cfg.total_timesteps:
                agent.learn(cfg.total_timesteps - done, callback=[evaluator, ckpt, stop], reset_num_timesteps=payload is None)
        step = int(agent.model.num_timesteps)
        prefs = agent.callback.preferences
        n_labels = int(agent.callback.labels_used)  # answered queries (SPO stores none: it fits no reward model)
        if stop.stopping:
            run.write_status("interrupted", step=progress.last_ckpt, labels=n_labels, checkpoint=progress.last_ckpt)
            return run.status()
        if prefs is not None:
            prefs.save(run.labels_path)
        evaluator.finish()
        agent.model.logger.dump(step)  # the final evaluation reaches every output (CSV, TensorBoard, W&B)
        with atomic_write(run.path / "model.zip", suffix=".zip") as tmp:
            agent.model.save(tmp)
        agent.reward_model.save(run.path / "reward_model.pt")
        metrics = final_metrics(cfg, progress, step, n_labels, time.time() - t0, time.process_time() - c0,
                                asked=int(getattr(agent.callback, "asked", n_labels)),
                                feedback_time_s=dict(getattr(agent.callback, "timing", {})))
        run.write_metrics(metrics)
        run.write_status("finished", step=step, labels=n_labels)
        return metrics
