"""Shared base of the online preference-based agents (PEBBLE, PrefPPO, SURF, QPA, RUNE).

An agent is a thin object over an ordinary SB3 learner: ``agent.model`` is the SB3 model (so SB3's
``save``/``load``, callbacks, loggers and ``evaluate_policy`` work), trained by ONE ``learn()`` call on
a :class:`~pbrl.online.LearnedRewardVecEnv` with a :class:`~pbrl.online.PreferenceCallback` (and an
optional :class:`~pbrl.envs.evaluation.PbrlEvalCallback`). A subclass is an algorithm: it chooses the learner and
its defaults, and supplies its own parts through four methods:

* ``_make_pool()``: the :class:`~pbrl.online.QueryPool` candidates come from (default: all episodes);
* ``_loss_terms()``: the reward objective (default: Bradley-Terry, :mod:`pbrl.reward_models.training`);
* ``_make_hooks()``: :class:`~pbrl.online.FeedbackHook` objects around each refit;
* ``_setup()``: anything else, once the learner exists (PEBBLE's entropy pre-training, QPA's replay).

The teacher decides the kind of feedback (its ``feedback`` attribute): preference pairs, or ratings of single
segments (:class:`~pbrl.teachers.RatingTeacher`, RbRL). With a rating teacher the callback is a
:class:`~pbrl.online.RatingCallback` and the objective ``_rating_loss_terms()`` (default: the RbRL
:class:`~pbrl.reward_models.RatingLoss`); everything else is unchanged. An agent lists the kinds it learns
from in ``feedback_kinds`` (agents with a pair-specific mechanism, SURF, QPA, RIME, take pairs only).

The base class itself runs no pre-training: the learned reward is on from the first step.

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
from stable_baselines3 import SAC
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback, CallbackList
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv

from pbrl.envs import episode_length, make_env, make_vec_env
from pbrl.envs.evaluation import PbrlEvalCallback, normalising_policy
from pbrl.envs.registry import PbrlInfoWrapper
from pbrl.memory import keep_freed_memory
from pbrl.online import (
    FeedbackHook,
    LearnedRewardVecEnv,
    PbrlReplayBuffer,
    PreferenceCallback,
    RatingCallback,
)
from pbrl.online.feedback import AllEpisodes, QueryPool
from pbrl.online.ratings import rating_selector
from pbrl.preferences import PreferenceDataset
from pbrl.queries import make_selector
from pbrl.ratings import RatingDataset
from pbrl.reward_models import RatingLoss, RatingTrainer, RewardEnsemble, RewardTrainer
from pbrl.validation import check_int

__all__ = ["OnlinePrefAgent", "PhaseHook", "SAC_DEFAULTS", "REWARD_MODEL_DEFAULTS"]

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

#: PEBBLE / B-Pref reward model: an ensemble of 3 MLPs, 3 x 256 hidden units, tanh output, Adam lr 3e-4, raw
#: inputs as B-Pref reads them. ``normalize=True`` standardises them instead (re-estimated at every refit); it was
#: pbrl's default until standardised inputs were measured to saturate the tanh output on Meta-World (65 % of
#: held-out button-press-topdown states at |r_hat| > 0.95, 0 % with raw inputs; docs/hyperparameters.md).
REWARD_MODEL_DEFAULTS: dict[str, Any] = {
    "n_members": 3, "hidden": (256, 256, 256), "lr": 3e-4, "output": "tanh", "normalize": False,
}




class OnlinePrefAgent:
    """Base class: builds the env, the reward model, the wrapper, the SB3 learner and the callbacks.

    The constructor runs named steps, in this order (the order fixes the random streams: the same seed gives
    the same numbers): :meth:`_validate` (every argument, before any work), :meth:`_build_env`,
    :meth:`_build_reward_model` (then the :class:`~pbrl.online.LearnedRewardVecEnv` wrapper),
    :meth:`_build_learner`, :meth:`_build_callback`, :meth:`_build_eval_callback`, and last the subclass's
    :meth:`_setup`. A subclass changes a part through the hooks below rather than these steps.

    Args:
        task_id_or_env: a task id of :func:`pbrl.envs.make_env` (``"mujoco/HalfCheetah-v5"``,
            ``"metaworld/button-press-v3"``), a ``gymnasium.Env`` or an SB3 ``VecEnv``.
        teacher: a :class:`~pbrl.teachers.Teacher` (``make_teacher("oracle")``).
        total_feedback: query budget (asked queries, B-Pref accounting), >= 1.
        feedback_per_session: queries per session, >= 1.
        feedback_every: env steps between sessions, >= 1.
        segment_length: H, steps per segment (default 50).
        selector: query selector name or object (default: the class's ``default_selector``, ``"disagreement"``).
        seed: seeds the learner, the env, the reward model and query sampling.
        learner_kwargs: overrides of the SB3 learner's defaults (the class's ``default_learner_kwargs``).
        reward_model_kwargs: overrides of the class's reward-model defaults (``RewardEnsemble`` arguments).
        unsup_steps: steps of unsupervised pre-training before the first session (default: the class's).
        large_batch: candidate pool = ``large_batch * queries`` (default 10, B-Pref).
        reset_updates: SAC gradient steps right after PEBBLE's critic reset (default 100, B-Pref's ``reset_update``).
        fit_kwargs: :class:`~pbrl.reward_models.RewardTrainer` arguments (default 200 epochs, batch 128,
            early stop at 97 % accuracy).
        eval_env: env or task id for evaluation while training (default: a fresh env of the task).
        eval_every: env steps between evaluations (``None``: no evaluation callback).
        n_eval_episodes: episodes per evaluation (default 10).
        n_envs: parallel envs when ``task_id_or_env`` is a task id (default 1).
        episode_length: a time limit shorter (or longer) than the task's own. For a task id, the envs are
            built with it (``make_env(..., max_episode_steps=)``: episodes end after this many steps); for an
            env you pass, it must already end its episodes there (it is only the length the agent assumes).
            Default: the task's own (``spec.max_episode_steps``).
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
    default_reward_model_kwargs: dict[str, Any] = REWARD_MODEL_DEFAULTS
    #: steps of unsupervised pre-training before the first session (the base class has none)
    default_unsup_steps: int = 0
    default_selector: str = "disagreement"
    #: the kinds of feedback this agent learns from (``teacher.feedback``): ``"preference"``, ``"rating"``
    feedback_kinds: tuple[str, ...] = ("preference", "rating")

    def __init__(
        self,
        task_id_or_env: Any,
        teacher: Any,
        total_feedback: int,
        feedback_per_session: int,
        feedback_every: int,
        segment_length: int = 50,
        selector: Any = None,
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
        if unsup_steps is None:
            unsup_steps = self.default_unsup_steps
        selector_obj, fit = self._validate(
            task_id_or_env, teacher, total_feedback=total_feedback, feedback_per_session=feedback_per_session,
            feedback_every=feedback_every, segment_length=segment_length, selector=selector, seed=seed,
            unsup_steps=unsup_steps, large_batch=large_batch, reset_updates=reset_updates, n_envs=n_envs,
            n_eval_episodes=n_eval_episodes, eval_env=eval_env, eval_every=eval_every, episode_length=episode_length,
            learner_kwargs=learner_kwargs, reward_model_kwargs=reward_model_kwargs, fit_kwargs=fit_kwargs,
        )
        venv = self._build_env(task_id_or_env, n_envs, episode_length)
        self.reward_model = self._build_reward_model(self.obs_dim, self.act_dim, reward_model_kwargs, device)
        self.env = LearnedRewardVecEnv(venv, self.reward_model, max_episodes=max_episodes)
        self.model = self._build_learner(
            self._learner_env(self.env), learner_kwargs, device=device, tensorboard_log=tensorboard_log,
            verbose=verbose,
        )
        self.callback = self._build_callback(selector_obj, fit, large_batch, progress=progress, verbose=verbose)
        self.eval_callback = self._build_eval_callback(eval_env, eval_every, n_eval_episodes)
        self.progress = bool(progress)
        self.entropy = None  #: the state-entropy estimator of agents that pre-train on it (checkpointed)
        self._setup()

    # ------------------------------------------------------------------ construction steps
    def _validate(
        self,
        task_id_or_env: Any,
        teacher: Any,
        *,
        total_feedback: int,
        feedback_per_session: int,
        feedback_every: int,
        segment_length: int,
        selector: Any,
        seed: int,
        unsup_steps: int,
        large_batch: int,
        reset_updates: int,
        n_envs: int,
        n_eval_episodes: int,
        eval_env: Any,
        eval_every: int | None,
        episode_length: int | None,
        learner_kwargs: dict | None,
        reward_model_kwargs: dict | None,
        fit_kwargs: dict | None,
    ) -> tuple[Any, dict]:
        """Step 1: check every argument before any work (no env, model or file is made), then store the
        settings (``teacher``, ``feedback``, ``task_id``, ``total_feedback``, ``feedback_per_session``,
        ``feedback_every``, ``segment_length``, ``seed``, ``unsup_steps``, ``reset_updates``).

        Bad input raises one ``ValueError`` (``TypeError`` for a wrong kind of object) naming the argument.
        What only the env can tell (an unknown task id, a segment longer than the episode) is checked by
        :meth:`_build_env`, and the reward model's own arguments by :class:`~pbrl.reward_models.RewardEnsemble`.

        Returns:
            ``(selector, fit_kwargs)``: the query selector object and the
            :class:`~pbrl.reward_models.RewardTrainer` arguments (:meth:`_fit_kwargs`).
        """
        check_int("total_feedback", total_feedback, 1 if self.requires_preferences else 0)
        check_int("feedback_per_session", feedback_per_session, 1)
        check_int("feedback_every", feedback_every, 1)
        check_int("segment_length", segment_length, 1)
        check_int("seed", seed, 0)
        check_int("large_batch", large_batch, 1)
        check_int("reset_updates", reset_updates, 0)
        check_int("n_envs", n_envs, 1)
        check_int("n_eval_episodes", n_eval_episodes, 1)
        check_int("unsup_steps", unsup_steps, 0)
        if eval_every is not None:
            check_int("eval_every", eval_every, 1)
        if episode_length is not None:
            check_int("episode_length", episode_length, 1)
        for name, d in (("learner_kwargs", learner_kwargs), ("reward_model_kwargs", reward_model_kwargs),
                        ("fit_kwargs", fit_kwargs)):
            if d is not None and not isinstance(d, dict):
                raise TypeError(f"{name} must be a dict or None, got {type(d).__name__}")
        for bad in ("env", "policy", "seed", "replay_buffer_class"):
            if bad in (learner_kwargs or {}):
                raise ValueError(f"learner_kwargs may not set '{bad}'; the agent sets it (pass it to the agent instead)")
        feedback, selector_obj = self._check_feedback(teacher, selector)
        self._check_extra(int(segment_length))
        self.task_id = task_id_or_env if isinstance(task_id_or_env, str) else None
        if eval_every is not None and eval_env is None and self.task_id is None:
            raise ValueError("eval_every needs eval_env= when the agent was built from an env object")
        self.teacher, self.feedback = teacher, feedback
        self.total_feedback = int(total_feedback)
        self.feedback_per_session = int(feedback_per_session)
        self.feedback_every = int(feedback_every)
        self.segment_length = int(segment_length)
        self.seed = int(seed)
        self.unsup_steps = int(unsup_steps)
        self.reset_updates = int(reset_updates)
        return selector_obj, self._fit_kwargs(fit_kwargs)

    def _check_feedback(self, teacher: Any, selector: Any) -> tuple[str, Any]:
        """Part of :meth:`_validate`: the teacher, the kind of feedback it gives (one this agent learns from)
        and the query selector (``None``: the class's ``default_selector``; a rating teacher needs one that
        rates single segments).

        Returns:
            ``(feedback, selector)``: ``"preference"`` or ``"rating"``, and the selector object.
        """
        if not hasattr(teacher, "label"):
            raise TypeError(
                f"teacher must be a pbrl Teacher with label(a, b) (e.g. make_teacher('oracle')), got {type(teacher).__name__}"
            )
        feedback = getattr(teacher, "feedback", "preference")
        if feedback not in self.feedback_kinds:
            raise ValueError(
                f"{type(self).__name__} learns from {' or '.join(self.feedback_kinds)} feedback, but teacher "
                f"'{getattr(teacher, 'name', type(teacher).__name__)}' gives {feedback}s; use a pair teacher "
                "(e.g. oracle) or an agent that learns from ratings (e.g. pebble)"
            )
        selector = self.default_selector if selector is None else selector
        if feedback == "rating":
            rating_selector(selector)  # clear error for a pair-only selector
        return feedback, make_selector(selector)  # clear error if unknown

    def _build_env(self, task_id_or_env: Any, n_envs: int, episode_length: int | None) -> VecEnv:
        """Step 2: the SB3 ``VecEnv`` of the task (seeded with ``self.seed``), before the learned-reward
        wrapper; sets ``episode_length``, ``n_envs``, ``obs_dim`` and ``act_dim``.

        Raises ``ValueError`` for an unknown task id (before building anything) or a ``segment_length``
        longer than the episode.
        """
        venv, ep_len = self._make_venv(task_id_or_env, n_envs, self.seed, episode_length)
        if self.segment_length > ep_len:
            raise ValueError(
                f"segment_length {self.segment_length} is longer than the episode length {ep_len}; "
                "choose a shorter segment"
            )
        self.episode_length = int(ep_len)
        self.n_envs = venv.num_envs
        self.obs_dim, self.act_dim = venv.observation_space.shape[0], venv.action_space.shape[0]
        return venv

    def _build_reward_model(self, obs_dim: int, act_dim: int, overrides: dict | None = None,
                            device: str = "cpu") -> RewardEnsemble:
        """Step 3: the reward ensemble ``r_hat(s, a)`` over ``obs_dim + act_dim`` inputs: the class's
        ``default_reward_model_kwargs``, seeded with ``self.seed``, then ``overrides``."""
        kw = {**self.default_reward_model_kwargs, "seed": self.seed, "device": device, **(overrides or {})}
        return RewardEnsemble(obs_dim, act_dim, **kw)

    def _build_learner(self, env: VecEnv, overrides: dict | None, *, device: str = "cpu",
                       tensorboard_log: str | None = None, verbose: int = 0) -> BaseAlgorithm:
        """Step 4: the SB3 learner (``learner_cls``, ``"MlpPolicy"``) on ``env`` with the class's
        ``default_learner_kwargs`` updated by ``overrides``; sets ``learner_kwargs`` and ``seed_steps`` (the
        random steps before learning starts, SAC's ``learning_starts``)."""
        kw = self._learner_kwargs(dict(overrides or {}))
        model = self.learner_cls(
            "MlpPolicy", env, seed=self.seed, device=device, tensorboard_log=tensorboard_log, verbose=verbose, **kw
        )
        self.learner_kwargs = kw
        self.seed_steps = int(kw.get("learning_starts", 0)) if self.is_off_policy else 0
        return model

    def _build_callback(self, selector: Any, fit: dict, large_batch: int = 10, *, progress: bool = False,
                        verbose: int = 0) -> PreferenceCallback:
        """Step 5: the feedback callback (a :class:`~pbrl.online.RatingCallback` for a rating teacher) with the
        agent's parts (:meth:`_make_pool`, :meth:`_loss_terms`, :meth:`_make_hooks`) and an empty label set."""
        rating = self.feedback == "rating"
        trainer = RatingTrainer(self._rating_loss_terms(), **fit) if rating else RewardTrainer(self._loss_terms(), **fit)
        callback = (RatingCallback if rating else PreferenceCallback)(
            self.reward_model,
            self.teacher,
            selector,
            total_feedback=self.total_feedback,
            feedback_per_session=self.feedback_per_session,
            feedback_every=self.feedback_every,
            segment_length=self.segment_length,
            episode_length=self.episode_length,
            first_feedback_step=self.seed_steps + self.unsup_steps,
            large_batch=large_batch,
            pool=self._make_pool(),
            trainer=trainer,
            relabel=self.is_off_policy,
            hooks=self._make_hooks(),
            seed=self.seed,
            progress=progress,
            verbose=verbose,
        )
        meta = {"task_id": self.task_id, "agent": type(self).__name__, "teacher": getattr(self.teacher, "name", "")}
        callback.preferences = callback.empty_labels(self.obs_dim, self.act_dim, metadata=meta)
        return callback

    def _build_eval_callback(self, eval_env: Any, eval_every: int | None,
                             n_eval_episodes: int = 10) -> PbrlEvalCallback | None:
        """Step 6: the evaluation callback (``None`` without ``eval_every``); its env defaults to a fresh env of
        the task, seeded ``seed + 10_000``."""
        if eval_every is None:
            return None
        if eval_env is None:
            eval_env = make_env(self.task_id, seed=self.seed + 10_000)
        return PbrlEvalCallback(
            eval_env, eval_every, n_eval_episodes, preference_callback=self.callback, seed=self.seed + 10_000,
            task=self.task_id,
        )

    # ------------------------------------------------------------------ construction helpers
    @property
    def is_off_policy(self) -> bool:
        return issubclass(self.learner_cls, SAC)

    @staticmethod
    def _make_venv(task_id_or_env: Any, n_envs: int, seed: int, episode_len: int | None) -> tuple[VecEnv, int]:
        if isinstance(task_id_or_env, str):
            ep_len = episode_len or episode_length(task_id_or_env)  # validates the id before building
            limit = {} if episode_len is None else {"max_episode_steps": episode_len}
            return make_vec_env(task_id_or_env, n_envs=n_envs, seed=seed, **limit), ep_len
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
        return kw

    def _learner_env(self, env: LearnedRewardVecEnv) -> VecEnv:
        """The env the SB3 learner sees (PrefPPO adds observation normalisation on top of the wrapper)."""
        return env

    def _check_extra(self, segment_length: int) -> None:
        """Subclass validation of their own options (runs before any work)."""

    def _fit_kwargs(self, overrides: dict | None) -> dict:
        """Arguments of the :class:`~pbrl.reward_models.RewardTrainer` (B-Pref: up to 200 epochs of batch
        128, early stop at 97 % training accuracy)."""
        kw = {"epochs": 200, "batch_size": 128, "early_stop_accuracy": 0.97, **(overrides or {})}
        allowed = {"epochs", "batch_size", "early_stop_accuracy", "val_fraction", "progress"}
        bad = sorted(set(kw) - allowed)
        if bad:
            raise ValueError(f"unknown fit_kwargs {bad}; allowed keys: {', '.join(sorted(allowed))}")
        return kw

    # ------------------------------------------------------------------ the algorithm's own parts
    def _make_pool(self) -> QueryPool:
        """Where candidate queries come from (default: every recorded episode)."""
        return AllEpisodes()

    def _loss_terms(self) -> list | None:
        """The reward objective (``None``: Bradley-Terry plus the reward model's own terms)."""
        return None

    def _rating_loss_terms(self) -> list:
        """The reward objective with a rating teacher (default: the RbRL rating loss, k = 30)."""
        return [RatingLoss(self.teacher.n_classes)]

    def _make_hooks(self) -> list[FeedbackHook]:
        """Hooks around each refit (default: :class:`PhaseHook`, which ends pre-training at the first update)."""
        return [PhaseHook(self)]

    def _setup(self) -> None:
        """Called once the learner and callback exist (default: the learned reward from the first step)."""
        self._set_learned_reward()

    def _set_learned_reward(self) -> None:
        """The reward source after pre-training (subclasses add bonuses through ``_sample_reward_fn``)."""
        self.env.set_mode("model")
        if self.is_off_policy:
            self.model.replay_buffer.sample_reward = self._sample_reward_fn()

    def _sample_reward_fn(self):
        """A sample-time reward for SAC batches after pre-training (``None``: the stored rewards)."""
        return None

    def _on_first_update(self, callback: PreferenceCallback) -> None:
        """The first reward update ends pre-training."""
        self._set_learned_reward()

    # ------------------------------------------------------------------ public API
    @property
    def preferences(self) -> PreferenceDataset | RatingDataset:
        """Every label collected so far (answered queries only): a PreferenceDataset, or a RatingDataset
        with a rating teacher."""
        return self.callback.preferences

    def learn(self, total_timesteps: int, callback: BaseCallback | list | None = None, **learn_kwargs) -> OnlinePrefAgent:
        """Train for ``total_timesteps`` env steps in ONE SB3 ``learn()`` call (feedback via callbacks).

        ``callback``: extra SB3 callback(s); ``learn_kwargs`` go to the SB3 ``learn`` (``log_interval``,
        ``reset_num_timesteps``, ``tb_log_name``).
        """
        check_int("total_timesteps", total_timesteps, 1)
        cbs: list[BaseCallback] = [self.callback]
        if self.eval_callback is not None:
            cbs.append(self.eval_callback)
        if callback is not None:
            cbs.extend(callback if isinstance(callback, list) else [callback])
        keep_freed_memory()  # k-NN matrices and reward-fit batches reuse freed heap blocks (same numbers)
        self.model.learn(total_timesteps, callback=CallbackList(cbs), progress_bar=self.progress, **learn_kwargs)
        return self

    def predict(self, obs, state=None, episode_start=None, deterministic: bool = True):
        """SB3's ``predict`` of the trained policy (observations normalised first when the learner's env
        normalises them, as PrefPPO's does)."""
        return normalising_policy(self.model).predict(obs, state=state, episode_start=episode_start,
                                                      deterministic=deterministic)

    def state_dict(self) -> dict[str, Any]:
        """Agent state that a run checkpoint saves beside the SB3 model and the callback (subclasses extend)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`."""

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(task={self.task_id!r}, learner={self.learner_cls.__name__}, "
            f"total_feedback={self.total_feedback}, labels={len(self.preferences)}, seed={self.seed})"
        )


class PhaseHook(FeedbackHook):
    """Calls the agent's ``_on_first_update`` after the first reward update (the end of pre-training)."""

    def __init__(self, agent: OnlinePrefAgent):
        self.agent = agent

    def after_update(self, callback: PreferenceCallback, first: bool) -> None:
        if first:
            self.agent._on_first_update(callback)


def _reports_success(env: gym.Env) -> bool:
    """Whether ``env`` is a pbrl registry env (its info always carries ``success``)."""
    e: Any = env
    while isinstance(e, gym.Wrapper):
        if isinstance(e, PbrlInfoWrapper):
            return True
        e = e.env
    return False
