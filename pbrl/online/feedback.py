"""The feedback loop of online PbRL as one SB3 callback, composed of swappable parts.

:class:`PreferenceCallback` runs B-Pref's schedule (Lee et al. 2021): the first session at env step
``first_feedback_step``, then one every ``feedback_every`` steps while fewer than ``total_feedback``
queries were asked. A session is the same for every agent; what differs between agents is passed in:

* a **query pool** (:class:`QueryPool`): which recorded episodes the candidate pairs come from
  (:class:`AllEpisodes` here; QPA's last-K pool is :class:`pbrl.agents.qpa.RecentEpisodes`);
* a **selector** (:mod:`pbrl.queries`): which candidates are asked;
* a **reward trainer** (:class:`~pbrl.reward_models.training.RewardTrainer` with its loss terms);
* **hooks** (:class:`FeedbackHook`): an agent's own mechanism around the refit (PEBBLE's switch from the
  entropy reward and critic reset, SURF's unlabelled pool).

The kind of feedback is the callback's own :meth:`PreferenceCallback.ask` and
:meth:`PreferenceCallback.empty_labels`: pairs here, rated single segments in
:class:`pbrl.online.ratings.RatingCallback`.

Budget accounting follows B-Pref: every query *asked* counts against ``total_feedback``, answered or
skipped; only answered ones are stored. A gated selector (:class:`pbrl.queries.GatedSelector`) may decline
to ask some of a session's queries: those are not asked, do not count, and are logged as ``gated``.
"""

from __future__ import annotations

import copy
import math
import time
from abc import ABC, abstractmethod
from typing import Any

import numpy as np
from gymnasium import spaces
from stable_baselines3.common.callbacks import BaseCallback
from tqdm.auto import tqdm

from pbrl.online.replay import PbrlReplayBuffer, relabel_replay_buffer, unscale_action
from pbrl.online.wrapper import LearnedRewardVecEnv, find_wrapper
from pbrl.preferences import PreferenceDataset
from pbrl.queries import candidate_pairs, make_selector
from pbrl.segments import Trajectory
from pbrl.validation import check_int

__all__ = ["QueryPool", "AllEpisodes", "FeedbackHook", "PreferenceCallback", "session_steps", "spread_budget"]


def session_steps(total_timesteps: int, first_step: int, every: int) -> list[int]:
    """The env steps of B-Pref's query rounds: ``first_step`` (the end of pre-training), then every ``every``
    steps while the run lasts (a round at the run's last step could not be learned from, so none is there)."""
    check_int("total_timesteps", total_timesteps, 1)
    check_int("first_step", first_step, 0)
    check_int("every", every, 1)
    if first_step >= total_timesteps:
        raise ValueError(f"the first query round (step {first_step}, the end of pre-training) is not before the "
                         f"run's end ({total_timesteps} steps); train longer or pre-train less")
    return list(range(first_step, total_timesteps, every))


def spread_budget(budget: int, total_timesteps: int, first_step: int, every: int) -> int:
    """Labels per round that spread ``budget`` over every round of :func:`session_steps` (rounded up, so the
    last round asks what is left): B-Pref keeps asking until the end of the run.

    Example: 1,000 labels, 50k steps, pre-training to step 10k, a round every 5k steps: 8 rounds of 125.
    """
    check_int("budget", budget, 1)
    return math.ceil(budget / len(session_steps(total_timesteps, first_step, every)))


class QueryPool(ABC):
    """Which recorded episodes a session draws its candidate segment pairs from (subclasses implement
    :meth:`episodes`)."""

    name = "pool"

    @abstractmethod
    def episodes(self, wrapper: LearnedRewardVecEnv, segment_length: int) -> list[Trajectory]:
        """The complete episodes (at least ``segment_length`` steps) to draw candidates from."""


class AllEpisodes(QueryPool):
    """Every complete episode the wrapper keeps (its last ``max_episodes``; B-Pref / PEBBLE)."""

    name = "all"

    def episodes(self, wrapper: LearnedRewardVecEnv, segment_length: int) -> list[Trajectory]:
        return [t for t in wrapper.episodes if len(t) >= segment_length]


class FeedbackHook:
    """An agent's own step in the feedback loop; every method is optional.

    * ``after_labels(callback, episodes)``: after a session's queries were labelled (SURF draws its
      unlabelled pairs here);
    * ``after_update(callback, first)``: after the reward model was refitted, before the replay buffer is
      relabelled (PEBBLE leaves the entropy reward at the first update);
    * ``after_relabel(callback, first)``: after relabelling (PEBBLE resets the critic at the first update);
    * ``state()`` / ``load_state(state)``: what must survive a checkpoint.
    """

    def after_labels(self, callback: PreferenceCallback, episodes: list[Trajectory]) -> None:
        """Called after a session's queries were labelled."""

    def after_update(self, callback: PreferenceCallback, first: bool) -> None:
        """Called after each reward-model refit, before relabelling."""

    def after_relabel(self, callback: PreferenceCallback, first: bool) -> None:
        """Called after the replay buffer was relabelled (off-policy learners)."""

    def state(self) -> Any:
        """Checkpoint state (``None``: nothing to save)."""
        return None

    def load_state(self, state: Any) -> None:
        """Restore :meth:`state`."""


class PreferenceCallback(BaseCallback):
    """Collect preferences during ``learn()``, refit the reward model and relabel the replay buffer.

    A session:

    1. sets the teacher's margin from the true returns of the last 10 complete episodes
       (``teacher.update_margin(returns, episode_length, segment_length)``, B-Pref's thresholds);
    2. (:meth:`ask`) draws ``large_batch * n`` candidate pairs of ``segment_length``-step windows from the
       pool's episodes, ``n = min(feedback_per_session, total_feedback - asked)`` (``n`` for a uniform
       selector), picks ``n`` queries with the selector (uniform at the first session, as PEBBLE, since the
       reward model is untrained), asks the teacher and stores the answered ones;
    3. counts all ``n`` as asked; then the hooks' ``after_labels``;
    4. refits the reward model with the trainer; the hooks' ``after_update``;
    5. off-policy learners (``relabel``): relabels every stored reward (:func:`relabel_replay_buffer`) and
       has the transition of the current step stored with the new reward (SB3 stores it after this
       callback); the hooks' ``after_relabel``.

    Args:
        reward_model: ``predict``, ``preference_probs``; trained by ``trainer`` (or its own ``fit``).
        teacher: a :class:`~pbrl.teachers.Teacher`.
        selector: a :class:`~pbrl.queries.Selector` or its name.
        total_feedback: query budget (>= 0).
        feedback_per_session: queries per session (>= 1).
        feedback_every: env steps between sessions (>= 1).
        segment_length: H (default 50).
        episode_length: the env's episode length (for the margin).
        first_feedback_step: env step of the first session (default ``feedback_every``).
        large_batch: candidate pool = ``large_batch * n`` (default 10, B-Pref).
        pool: the :class:`QueryPool` (default :class:`AllEpisodes`).
        trainer: a :class:`~pbrl.reward_models.training.RewardTrainer` (default: ``reward_model.fit``
            with 200 epochs and early stop at 97 %).
        relabel: relabel the replay buffer after each update (off-policy learners).
        hooks: :class:`FeedbackHook` objects, called in order.
        seed: seeds candidate sampling and selection.
        progress: show a tqdm bar of labels asked.
    """

    def __init__(
        self,
        reward_model: Any,
        teacher: Any,
        selector: Any,
        total_feedback: int,
        feedback_per_session: int,
        feedback_every: int,
        segment_length: int = 50,
        episode_length: int = 1000,
        first_feedback_step: int | None = None,
        large_batch: int = 10,
        pool: QueryPool | None = None,
        trainer: Any = None,
        relabel: bool = True,
        hooks: list[FeedbackHook] | tuple = (),
        seed: int = 0,
        progress: bool = False,
        verbose: int = 0,
    ):
        super().__init__(verbose)
        check_int("total_feedback", total_feedback, 0)
        check_int("feedback_per_session", feedback_per_session, 1)
        check_int("feedback_every", feedback_every, 1)
        check_int("segment_length", segment_length, 1)
        check_int("episode_length", episode_length, 1)
        check_int("large_batch", large_batch, 1)
        if first_feedback_step is not None:
            check_int("first_feedback_step", first_feedback_step, 0)
        if segment_length > episode_length:
            raise ValueError(
                f"segment_length {segment_length} is longer than the episode length {episode_length}; "
                "choose segment_length <= episode length"
            )
        if not hasattr(reward_model, "predict") or (trainer is None and not hasattr(reward_model, "fit")):
            raise TypeError("reward_model needs predict() and fit() methods (use pbrl.reward_models.RewardEnsemble)")
        if not hasattr(teacher, "label"):
            raise TypeError(f"teacher needs label(a, b) -> labels, got {type(teacher).__name__}")
        if pool is not None and not isinstance(pool, QueryPool):
            raise TypeError(f"pool must be a pbrl QueryPool, got {type(pool).__name__}")
        for h in hooks:
            if not isinstance(h, FeedbackHook):
                raise TypeError(f"hooks must be pbrl FeedbackHook objects, got {type(h).__name__}")
        self.reward_model = reward_model
        self.teacher = teacher
        self.selector = make_selector(selector)
        self.uniform = make_selector("uniform")
        self.total_feedback = int(total_feedback)
        self.feedback_per_session = int(feedback_per_session)
        self.feedback_every = int(feedback_every)
        self.segment_length = int(segment_length)
        self.episode_length = int(episode_length)
        self.first_feedback_step = int(feedback_every if first_feedback_step is None else first_feedback_step)
        self.large_batch = int(large_batch)
        self.pool = pool if pool is not None else AllEpisodes()
        self.trainer = trainer
        self.relabel = bool(relabel)
        self.hooks = list(hooks)
        self.progress = bool(progress)
        self.rng = np.random.default_rng(seed)
        # counters and data (checkpointed by state_dict)
        self.asked = 0
        self.sessions = 0
        self.updates = 0
        self.next_feedback_step = self.first_feedback_step
        self.preferences: PreferenceDataset | None = None
        self.last_fit: dict[str, Any] = {}
        self.history: list[dict[str, Any]] = []
        self.wrapper: LearnedRewardVecEnv | None = None
        self._bar = None
        self._pending_wrapper_state: dict | None = None
        #: queries actually asked in the current session (set by :meth:`ask`; below ``n`` behind a gate)
        self.last_asked = 0
        #: CPU seconds spent in query selection + labelling, reward fitting and relabelling (checkpointed;
        #: written to metrics.json as ``feedback_time_s``)
        self.timing = {"query": 0.0, "fit": 0.0, "relabel": 0.0}

    # ------------------------------------------------------------------ properties
    @property
    def labels_used(self) -> int:
        """Answered queries stored in the dataset."""
        return 0 if self.preferences is None else len(self.preferences)

    @property
    def budget_left(self) -> int:
        """Queries that may still be asked."""
        return self.total_feedback - self.asked

    @property
    def collecting(self) -> bool:
        """Whether feedback is still being collected (budget left)."""
        return self.asked < self.total_feedback

    # ------------------------------------------------------------------ SB3 hooks
    def _init_callback(self) -> None:
        self.wrapper = find_wrapper(self.training_env)
        if self.wrapper is None:
            raise ValueError(
                "PreferenceCallback needs the learner's env wrapped in pbrl.online.LearnedRewardVecEnv "
                "(it records the episodes queries are drawn from)"
            )
        obs_dim = self.wrapper.observation_space.shape[0]
        act_dim = self.wrapper.action_space.shape[0]
        if self.preferences is None:
            self.preferences = self.empty_labels(obs_dim, act_dim)
        if self._pending_wrapper_state is not None:
            self.wrapper.set_state(self._pending_wrapper_state)
            self._pending_wrapper_state = None
        if self.progress and self._bar is None:
            self._bar = tqdm(total=self.total_feedback, desc="labels asked", unit="query", initial=self.asked)

    def _on_training_end(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def _on_step(self) -> bool:
        if self.collecting and self.num_timesteps >= self.next_feedback_step:
            if self.run_session():
                self.next_feedback_step = self.num_timesteps + self.feedback_every
        return True

    # ------------------------------------------------------------------ a session
    def empty_labels(self, obs_dim: int, act_dim: int, metadata: dict | None = None) -> PreferenceDataset:
        """The empty label set a run starts from (a :class:`~pbrl.preferences.PreferenceDataset` here)."""
        return PreferenceDataset.empty(self.segment_length, obs_dim, act_dim, metadata=metadata)

    def ask(self, episodes: list[Trajectory], n: int) -> int:
        """Draw candidates from ``episodes``, choose ``n`` queries, have the teacher answer them and store the
        answered ones; returns how many were answered (pairs here: ``large_batch * n`` candidate pairs, the
        selector, ``teacher.label``)."""
        selector = self.uniform if self.updates == 0 else self.selector
        n_candidates = n if selector.name == "uniform" else n * self.large_batch
        a, b = candidate_pairs(episodes, n_candidates, self.segment_length, self.rng)
        idx = selector.select(a, b, n, reward_model=self.reward_model, labelled=self.preferences, rng=self.rng)
        self.last_asked = len(idx)  # a gate may ask fewer than n
        qa, qb = a[idx], b[idx]
        labels = np.asarray(self.teacher.label(qa, qb), dtype=np.float32)
        return self.preferences.append(qa, qb, labels)

    def run_session(self) -> bool:
        """One feedback session (see the class docstring). Returns False (and does nothing) when no
        complete episode of at least ``segment_length`` steps has been recorded yet."""
        eps = self.pool.episodes(self.wrapper, self.segment_length)
        if not eps or self.budget_left <= 0:
            return False
        t0 = time.process_time()
        self.teacher.update_margin(
            self.wrapper.recent_returns(10), float(np.mean([len(t) for t in eps])), self.segment_length
        )
        n = min(self.feedback_per_session, self.budget_left)
        self.last_asked = n
        answered = self.ask(eps, n)
        asked = self.last_asked  # fewer than n when a gated selector skipped some (they do not count)
        self.asked += asked  # B-Pref: every asked query counts, answered by the teacher or skipped by it
        self.sessions += 1
        if self._bar is not None:
            self._bar.update(asked)
        for h in self.hooks:
            h.after_labels(self, eps)
        t1 = time.process_time()
        self.timing["query"] += t1 - t0
        if len(self.preferences) > 0 and asked > 0:  # a fully gated session leaves the model as it was
            if self.trainer is not None:
                self.last_fit = self.trainer.fit(self.reward_model, self.preferences)
            else:
                self.last_fit = self.reward_model.fit(self.preferences, epochs=200, early_stop_accuracy=0.97)
            self.timing["fit"] += time.process_time() - t1
            self.updates += 1
            self._after_update(first=self.updates == 1)
        rec = {
            "step": int(self.num_timesteps),
            "asked": self.asked,
            "answered": int(answered),
            "gated": int(n - asked),
            "labels_used": self.labels_used,
            "accuracy": float(self.last_fit.get("accuracy", float("nan"))),
        }
        self.history.append(rec)
        self.logger.record("feedback/asked", self.asked)
        self.logger.record("feedback/labels_used", self.labels_used)
        self.logger.record("feedback/sessions", self.sessions)
        self.logger.record("feedback/gated", n - asked)
        if self.last_fit:
            self.logger.record("reward_model/accuracy", float(self.last_fit.get("accuracy", float("nan"))))
            self.logger.record("reward_model/loss", float(self.last_fit.get("loss", float("nan"))))
        if self.verbose:
            print(f"[pbrl] step {self.num_timesteps}: asked {self.asked}/{self.total_feedback}, "
                  f"labels {self.labels_used}, reward acc {rec['accuracy']:.3f}")
        return True

    def reward_fn(self):
        """``(obs, act) -> r_hat`` of the current reward model (what relabelling writes)."""
        return self.reward_model.predict

    def _after_update(self, first: bool) -> None:
        for h in self.hooks:
            h.after_update(self, first)
        buf = getattr(self.model, "replay_buffer", None)
        if self.relabel and buf is not None:
            t0 = time.process_time()
            fn = self.reward_fn()
            space = self.model.action_space if isinstance(self.model.action_space, spaces.Box) else None
            relabel_replay_buffer(buf, fn, action_space=space)
            if isinstance(buf, PbrlReplayBuffer):
                # SB3 stores this step's transition after the callbacks: give it the new model's reward
                buf.reward_on_add = (lambda o, a: fn(o, unscale_action(a, space))) if space is not None else fn
            self.timing["relabel"] += time.process_time() - t0
            for h in self.hooks:
                h.after_relabel(self, first)

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue the feedback schedule identically after a restart: counters,
        the PreferenceDataset, the teacher's state, the sampling RNG, the hooks' states (SURF's unlabelled
        pool) and the wrapper's recorded episodes. The reward model and the SB3 model are saved separately
        (``reward_model.save``, ``model.save``)."""
        return {
            "asked": self.asked,
            "sessions": self.sessions,
            "updates": self.updates,
            "next_feedback_step": self.next_feedback_step,
            "total_feedback": self.total_feedback,
            "preferences": copy.deepcopy(self.preferences),
            "hooks": [copy.deepcopy(h.state()) for h in self.hooks],
            "teacher": self.teacher.get_state() if hasattr(self.teacher, "get_state") else None,
            "rng": self.rng.bit_generator.state,
            "last_fit": {k: v for k, v in self.last_fit.items() if k != "history"},
            "history": list(self.history),
            "timing": dict(self.timing),
            "wrapper": copy.deepcopy(self.wrapper.get_state()) if self.wrapper is not None else None,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` (call before ``learn``; the wrapper part is applied when known)."""
        for key in ("asked", "sessions", "updates", "next_feedback_step", "preferences", "rng"):
            if key not in state:
                raise ValueError(f"not a PreferenceCallback state: missing '{key}'")
        self.asked = int(state["asked"])
        self.sessions = int(state["sessions"])
        self.updates = int(state["updates"])
        self.next_feedback_step = int(state["next_feedback_step"])
        self.preferences = copy.deepcopy(state["preferences"])
        hook_states = state.get("hooks") or []
        if len(hook_states) == len(self.hooks):
            for h, s in zip(self.hooks, hook_states):
                h.load_state(copy.deepcopy(s))
        if state.get("teacher") is not None and hasattr(self.teacher, "set_state"):
            self.teacher.set_state(state["teacher"])
        self.rng.bit_generator.state = state["rng"]
        self.last_fit = dict(state.get("last_fit", {}))
        self.history = list(state.get("history", []))
        self.timing = {**dict.fromkeys(self.timing, 0.0), **state.get("timing", {})}
        self._pending_wrapper_state = state.get("wrapper")
        if self.wrapper is not None and self._pending_wrapper_state is not None:
            self.wrapper.set_state(self._pending_wrapper_state)
            self._pending_wrapper_state = None
