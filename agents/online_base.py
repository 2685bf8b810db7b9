"""Shared base of the online preference-based agents (PEBBLE, PrefPPO, SURF, QPA, RUNE).

An agent is a thin object over an ordinary SB3 learner: ``agent.model`` is the SB3 model (so SB3's
``save``/``load``, callbacks, loggers and ``evaluate_policy`` work), trained by ONE ``learn()`` call on
a :class:`~pbrl.sb3.LearnedRewardVecEnv` with a :class:`~pbrl.sb3.PreferenceCallback` (and an optional
:class:`~pbrl.sb3.PbrlEvalCallback`). Subclasses choose the learner and the hooks.

Example::

    from pbrl.agents.pebble import PEBBLE
    from pbrl.teachers import make_teacher

    agent = PEBBLE("mujoco/HalfCheetah-v5", make_teacher("oracle"), total_feedback=500,
                   feedback_per_session=50, feedback_every=5000, eval_every=5000)
    agent.learn(100_000)
    agent.model.save("pebble.zip"); agent.reward_model.save("reward.pt"); agent.preferences.save("labels.h5")

Resuming: ``callback.state_dict()`` / ``load_state_dict`` hold the feedback schedule, labels, teacher and
sampling RNG state and recorded episodes; continue with ``learn(steps, reset_num_timesteps=False)``.
"""

from __future__ import annotations

import copy
from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3 import SAC
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback, CallbackList
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv

from pbrl.preferences import PreferenceDataset
from pbrl.reward_models import RewardEnsemble
from pbrl.sb3 import (
    LearnedRewardVecEnv,
    PbrlEvalCallback,
    PbrlReplayBuffer,
    PreferenceCallback,
    StateEntropyReward,
)

__all__ = ["OnlinePrefAgent", "SAC_DEFAULTS", "PPO_DEFAULTS", "REWARD_MODEL_DEFAULTS"]

#: B-Pref's SAC settings for Meta-World (Lee et al. 2021, Appendix): 3 x 256 networks, batch 512, lr 3e-4,
#: initial temperature 0.1 (learned), tau 0.005, gamma 0.99, 1000 random seed steps, one update per step.
SAC_DEFAULTS: dict[str, Any] = {
    "learning_rate": 3e-4,
    "buffer_size": 1_000_000,
    "learning_starts": 1000,
    "batch_size": 512,
    "tau": 0.005,
    "gamma": 0.99,
    "train_freq": 1,
    "gradient_steps": 1,
    "ent_coef": "auto_0.1",
    "policy_kwargs": {"net_arch": [256, 256, 256]},
}

#: B-Pref's PrefPPO settings (Lee et al. 2021): lr 3e-4, minibatch 128, GAE lambda 0.92, clip 0.4, no entropy
#: bonus, 10 epochs, 3 x 256 networks. B-Pref runs 16 envs x 250 steps per rollout; with one env we keep SB3's
#: n_steps=2048.
PPO_DEFAULTS: dict[str, Any] = {
    "learning_rate": 3e-4,
    "n_steps": 2048,
    "batch_size": 128,
    "n_epochs": 10,
    "gamma": 0.99,
    "gae_lambda": 0.92,
    "clip_range": 0.4,
    "ent_coef": 0.0,
    "policy_kwargs": {"net_arch": [256, 256, 256]},
}

#: PEBBLE / B-Pref reward model: an ensemble of 3 MLPs, 3 x 256 hidden units, tanh output, Adam lr 3e-4.
REWARD_MODEL_DEFAULTS: dict[str, Any] = {"n_members": 3, "hidden": (256, 256, 256), "lr": 3e-4, "output": "tanh"}


def _check_int(name: str, v: Any, low: int) -> int:
    if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {v!r}")
    return int(v)


class OnlinePrefAgent:
    """Base class: builds the env, the reward model, the wrapper, the SB3 learner and the callbacks.

    Args:
        task_id_or_env: a task id of :func:`pbrl.envs.make_env` (``"mujoco/HalfCheetah-v5"``,
            ``"metaworld/button-press-v3"``), a ``gymnasium.Env`` or an SB3 ``VecEnv``.
        teacher: a :class:`~pbrl.teachers.Teacher` (``make_teacher("oracle")``).
        total_feedback: query budget (asked queries, B-Pref accounting), >= 1.
        feedback_per_session: queries per session, >= 1.
        feedback_every: env steps between sessions, >= 1.
        segment_length: H, steps per segment (default 50).
        selector: query selector name or object (default ``"disagreement"``).
        seed: seeds the learner, the env, the reward model and query sampling.
        learner_kwargs: overrides of the SB3 learner's defaults (``SAC_DEFAULTS`` / ``PPO_DEFAULTS``).
        reward_model_kwargs: overrides of ``REWARD_MODEL_DEFAULTS`` (``RewardEnsemble`` arguments).
        unsup_steps: steps of unsupervised (state-entropy) pre-training before the first session.
        large_batch: candidate pool = ``large_batch * queries`` (default 10, B-Pref).
        reset_updates: SAC gradient steps right after PEBBLE's critic reset (default 100, B-Pref's ``reset_update``).
        fit_kwargs: passed to ``reward_model.fit`` (default 200 epochs, early stop at 97 % accuracy).
        eval_env: env or task id for evaluation while training (default: a fresh env of the task).
        eval_every: env steps between evaluations (``None``: no evaluation callback).
        n_eval_episodes: episodes per evaluation (default 10).
        n_envs: parallel envs when ``task_id_or_env`` is a task id (default 1).
        episode_length: override the detected episode length.
        max_episodes: complete episodes kept for queries (default 100).
        device: torch device of the learner and reward model (default ``"cpu"``).
        tensorboard_log: passed to the SB3 learner.
        progress: tqdm bars for env steps and labels.
        verbose: SB3 verbosity.
    """

    #: ``"online"``: learns on a live task (see :mod:`pbrl.agents.registry`)
    kind: str = "online"
    #: every online agent learns from a teacher's labels
    requires_preferences: bool = True
    learner_cls: type[BaseAlgorithm] = SAC
    default_learner_kwargs: dict[str, Any] = SAC_DEFAULTS
    default_unsup_steps: int = 9000
    default_selector: str | None = None  # None: keep the constructor's default

    def __init__(
        self,
        task_id_or_env: Any,
        teacher: Any,
        total_feedback: int,
        feedback_per_session: int,
        feedback_every: int,
        segment_length: int = 50,
        selector: Any = "disagreement",
        seed: int = 0,
        learner_kwargs: dict | None = None,
        reward_model_kwargs: dict | None = None,
        *,
        unsup_steps: int | None = None,
        large_batch: int = 10,
        reset_updates: int = 100,
        fit_kwargs: dict | None = None,
        eval_env: Any = None,
        eval_every: int | None = None,
        n_eval_episodes: int = 10,
        n_envs: int = 1,
        episode_length: int | None = None,
        max_episodes: int = 100,
        device: str = "cpu",
        tensorboard_log: str | None = None,
        progress: bool = False,
        verbose: int = 0,
    ):
        from pbrl.queries import make_selector

        # ---------------------------------------------------------------- validation, before any work
        _check_int("total_feedback", total_feedback, 1)
        _check_int("feedback_per_session", feedback_per_session, 1)
        _check_int("feedback_every", feedback_every, 1)
        _check_int("segment_length", segment_length, 1)
        _check_int("seed", seed, 0)
        _check_int("large_batch", large_batch, 1)
        _check_int("reset_updates", reset_updates, 0)
        _check_int("n_envs", n_envs, 1)
        _check_int("n_eval_episodes", n_eval_episodes, 1)
        if unsup_steps is None:
            unsup_steps = self.default_unsup_steps
        _check_int("unsup_steps", unsup_steps, 0)
        if eval_every is not None:
            _check_int("eval_every", eval_every, 1)
        if not hasattr(teacher, "label"):
            raise TypeError(
                f"teacher must be a pbrl Teacher with label(a, b) (e.g. make_teacher('oracle')), got {type(teacher).__name__}"
            )
        for name, d in (("learner_kwargs", learner_kwargs), ("reward_model_kwargs", reward_model_kwargs),
                        ("fit_kwargs", fit_kwargs)):
            if d is not None and not isinstance(d, dict):
                raise TypeError(f"{name} must be a dict or None, got {type(d).__name__}")
        learner_kwargs = dict(learner_kwargs or {})
        for bad in ("env", "policy", "seed", "replay_buffer_class"):
            if bad in learner_kwargs:
                raise ValueError(f"learner_kwargs may not set '{bad}'; the agent sets it (pass it to the agent instead)")
        selector_obj = make_selector(selector)  # raises a clear error for unknown names
        self._check_extra(int(segment_length))

        self.task_id = task_id_or_env if isinstance(task_id_or_env, str) else None
        if episode_length is not None:
            _check_int("episode_length", episode_length, 1)
        venv, ep_len = self._make_venv(task_id_or_env, n_envs, seed, episode_length)
        if segment_length > ep_len:
            raise ValueError(
                f"segment_length {segment_length} is longer than the episode length {ep_len}; choose a shorter segment"
            )
        self.teacher = teacher
        self.total_feedback = int(total_feedback)
        self.feedback_per_session = int(feedback_per_session)
        self.feedback_every = int(feedback_every)
        self.segment_length = int(segment_length)
        self.seed = int(seed)
        self.unsup_steps = int(unsup_steps)
        self.episode_length = int(ep_len)
        self.n_envs = venv.num_envs
        obs_dim = venv.observation_space.shape[0]
        act_dim = venv.action_space.shape[0]
        self.obs_dim, self.act_dim = obs_dim, act_dim

        # ---------------------------------------------------------------- reward model and wrapper
        rm_kwargs = {**REWARD_MODEL_DEFAULTS, "seed": self.seed, "device": device, **(reward_model_kwargs or {})}
        self.reward_model = RewardEnsemble(obs_dim, act_dim, **rm_kwargs)
        self.env = LearnedRewardVecEnv(venv, self.reward_model, max_episodes=max_episodes)

        # ---------------------------------------------------------------- SB3 learner
        kw = self._learner_kwargs(learner_kwargs)
        self.model = self.learner_cls(
            "MlpPolicy", self.env, seed=self.seed, device=device, tensorboard_log=tensorboard_log,
            verbose=verbose, **kw
        )
        self.learner_kwargs = kw
        self.seed_steps = int(kw.get("learning_starts", 0)) if self.is_off_policy else 0

        # ---------------------------------------------------------------- callbacks
        self.callback = PreferenceCallback(
            self.reward_model,
            teacher,
            selector_obj,
            total_feedback=self.total_feedback,
            feedback_per_session=self.feedback_per_session,
            feedback_every=self.feedback_every,
            segment_length=self.segment_length,
            episode_length=self.episode_length,
            first_feedback_step=self.seed_steps + self.unsup_steps,
            large_batch=large_batch,
            relabel=self.is_off_policy,
            reset_critic=self.is_off_policy and self.unsup_steps > 0,
            reset_updates=reset_updates,
            fit_kwargs=self._fit_kwargs(fit_kwargs),
            on_first_update=self._on_first_update,
            seed=self.seed,
            progress=progress,
            verbose=verbose,
            **self._callback_kwargs(),
        )
        meta = {"task_id": self.task_id, "agent": type(self).__name__, "teacher": getattr(teacher, "name", "")}
        self.callback.preferences = PreferenceDataset.empty(self.segment_length, obs_dim, act_dim, metadata=meta)
        self.eval_callback: PbrlEvalCallback | None = None
        if eval_every is not None:
            if eval_env is None:
                if self.task_id is None:
                    raise ValueError("eval_every needs eval_env= when the agent was built from an env object")
                from pbrl.envs import make_env

                eval_env = make_env(self.task_id, seed=self.seed + 10_000)
            self.eval_callback = PbrlEvalCallback(
                eval_env, eval_every, n_eval_episodes, preference_callback=self.callback, seed=self.seed + 10_000
            )
        self.progress = bool(progress)
        self._start_unsupervised()

    # ------------------------------------------------------------------ construction helpers
    @property
    def is_off_policy(self) -> bool:
        return issubclass(self.learner_cls, SAC)

    @staticmethod
    def _make_venv(task_id_or_env: Any, n_envs: int, seed: int, episode_len: int | None) -> tuple[VecEnv, int]:
        from pbrl.envs import episode_length, make_vec_env

        if isinstance(task_id_or_env, str):
            ep_len = episode_len or episode_length(task_id_or_env)  # validates the id before building
            return make_vec_env(task_id_or_env, n_envs=n_envs, seed=seed), ep_len
        if isinstance(task_id_or_env, VecEnv):
            venv = task_id_or_env
            specs = venv.get_attr("spec")
            ep = getattr(specs[0], "max_episode_steps", None) if specs else None
        elif isinstance(task_id_or_env, gym.Env):
            env = task_id_or_env
            ep = getattr(env.spec, "max_episode_steps", None) if env.spec is not None else None
            venv = DummyVecEnv([lambda: Monitor(env, info_keywords=("success",) if _reports_success(env) else ())])
        else:
            raise TypeError(
                "task_id_or_env must be a task id (str), a gymnasium.Env or an SB3 VecEnv, "
                f"got {type(task_id_or_env).__name__}"
            )
        ep = episode_len or ep
        if ep is None:
            raise ValueError("cannot tell the env's episode length (no spec.max_episode_steps); pass episode_length=")
        return venv, int(ep)

    def _learner_kwargs(self, overrides: dict) -> dict:
        # deep copy: SB3 writes into the nested policy_kwargs it is given (e.g. "use_sde"), which must not
        # leak into the module-level defaults or the caller's dict
        kw = copy.deepcopy({**self.default_learner_kwargs, **overrides})
        if self.is_off_policy:
            kw["replay_buffer_class"] = PbrlReplayBuffer
            kw["replay_buffer_kwargs"] = {**kw.get("replay_buffer_kwargs", {}), **self._buffer_kwargs()}
        return kw

    def _buffer_kwargs(self) -> dict:
        return {}

    def _check_extra(self, segment_length: int) -> None:
        """Subclass validation of their own options (runs before any work)."""

    def _fit_kwargs(self, overrides: dict | None) -> dict:
        return {"epochs": 200, "batch_size": 128, "early_stop_accuracy": 0.97, **(overrides or {})}

    def _callback_kwargs(self) -> dict:
        return {}

    # ------------------------------------------------------------------ phases
    def _start_unsupervised(self) -> None:
        """Turn on the state-entropy reward for the first ``unsup_steps`` (PEBBLE Sec. 4.1)."""
        if self.unsup_steps <= 0:
            self._set_learned_reward()
            return
        if self.is_off_policy:
            buf: PbrlReplayBuffer = self.model.replay_buffer
            ent = StateEntropyReward(k=5, max_ref=10000, ref_includes_query=True)
            self.entropy = ent

            def entropy_reward(obs, act, next_obs, reward):
                return ent(next_obs, buf.filled_next_observations(ent.max_ref))

            buf.sample_reward = entropy_reward
        else:
            self.entropy = self.env.entropy
            self.env.set_mode("entropy")

    def _set_learned_reward(self) -> None:
        """The reward source after the unsupervised phase (subclasses add bonuses)."""
        self.env.set_mode("model")
        if self.is_off_policy:
            self.model.replay_buffer.sample_reward = self._sample_reward_fn()

    def _sample_reward_fn(self):
        return None

    def _on_first_update(self, callback: PreferenceCallback) -> None:
        self._set_learned_reward()

    # ------------------------------------------------------------------ public API
    @property
    def preferences(self) -> PreferenceDataset:
        """Every label collected so far (answered queries only)."""
        return self.callback.preferences

    def learn(self, total_timesteps: int, callback: BaseCallback | list | None = None, **learn_kwargs) -> OnlinePrefAgent:
        """Train for ``total_timesteps`` env steps in ONE SB3 ``learn()`` call (feedback via callbacks).

        ``callback``: extra SB3 callback(s); ``learn_kwargs`` go to the SB3 ``learn`` (``log_interval``,
        ``reset_num_timesteps``, ``tb_log_name``).
        """
        _check_int("total_timesteps", total_timesteps, 1)
        cbs: list[BaseCallback] = [self.callback]
        if self.eval_callback is not None:
            cbs.append(self.eval_callback)
        if callback is not None:
            cbs.extend(callback if isinstance(callback, list) else [callback])
        self.model.learn(total_timesteps, callback=CallbackList(cbs), progress_bar=self.progress, **learn_kwargs)
        return self

    def predict(self, obs, state=None, episode_start=None, deterministic: bool = True):
        """SB3's ``predict`` of the trained policy."""
        return self.model.predict(obs, state=state, episode_start=episode_start, deterministic=deterministic)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(task={self.task_id!r}, learner={self.learner_cls.__name__}, "
            f"total_feedback={self.total_feedback}, labels={len(self.preferences)}, seed={self.seed})"
        )


def _reports_success(env: gym.Env) -> bool:
    """Whether ``env`` is a pbrl registry env (its info always carries ``success``)."""
    from pbrl.envs.registry import PbrlInfoWrapper

    e: Any = env
    while isinstance(e, gym.Wrapper):
        if isinstance(e, PbrlInfoWrapper):
            return True
        e = e.env
    return False
