"""SPO: Self-Play Preference Optimization, on SB3's PPO.

Swamy, Dann, Kidambi, Wu & Agarwal, "A Minimaximalist Approach to Reinforcement Learning from Human
Feedback", ICML 2024 (arXiv 2401.04056), Algorithm 2 (the practical SPO).

There is no reward model. The policy plays against itself: each new trajectory ``xi_t`` of the current
policy is compared by the teacher ``P`` with each trajectory in a FIFO queue ``Q`` of the last ``B``
trajectories (steps 1-2 below), and its reward is its proportion of wins (step 3)

    r(xi_t) = 1/|Q| * sum_{q in Q} P(xi_t > q),

spread evenly over its ``H`` steps (step 4: ``r(s_h, a_h) = r(xi_t) / H``; the paper splits the
trajectory-level reward equally between the steps, as potential-based shaping would, so the optimal policy
is unchanged); then ``xi_t`` joins the queue and the oldest trajectory leaves it, and the RL step runs on
these rewards (step 5). The policy optimiser is any RL algorithm (the paper motivates PPO / TRPO as
approximations of its soft policy iteration); here SB3's PPO with PrefPPO's B-Pref settings, so that SPO and
PrefPPO differ only in where the reward comes from.

The paper's full text (and so Algorithm 2's line numbers) could not be read from the sessions that built and
checked this agent; only the abstract and third-party summaries could. The steps named here are the practical
algorithm as the abstract states it: (1) sample trajectories from the current policy, (2) have the rater
compare them, (3) reward each with its proportion of wins, (4) spread it over its steps, (5) RL step.
``docs/hyperparameters.md`` lists each choice against that text, and ``docs/results/spo.md`` what was searched.

How pbrl runs it (each open choice of the paper named, and why, in ``docs/hyperparameters.md``):

* **unit** (step 1; ``unit_length``, default ``None``): what is compared. ``None``: whole episodes (Algorithm 2).
  An int ``H``: each episode is cut into consecutive chunks of ``H`` steps from its start (for long
  episodes). An episode that ends inside a chunk (termination, or an episode length that ``H`` does not
  divide) leaves a chunk padded to its full length with the absorbing state: the last next-observation
  repeated, action 0, reward 0. Whole-episode units of a task whose episodes end early are padded to the
  task's episode length the same way.
* **queue** (step 2; ``queue_size`` ``B``, default 10): the last ``B`` complete units; empty at the start, so the
  first units meet a shorter queue (how the paper starts it could not be read).
* **label** (step 3; teacher convention, 1.0 = second segment preferred): the new unit is the second segment, so a
  label is its win (1.0), loss (0.0) or tie (0.5, half a win); a skipped query (NaN) is left out of the
  mean. A unit with no answered comparison (empty queue, all skipped, budget spent) gets 0.5, the value
  of the symmetric game.
* **when** (steps 4-5): at the end of every PPO rollout, before PPO computes its returns: the units completed during
  the rollout are scored in order of completion (the earlier ones join the queue before the later ones are
  scored), then the units still running (a unit that crosses the rollout's end): the part of such a unit
  inside this rollout, steps ``[s, e)`` of the unit, is compared with steps ``[s, e)`` of each queued unit
  and rewarded now (``win / H`` per step); its later part is scored the same way in the next rollout, and
  the whole unit joins the queue when it completes. When rollouts hold whole units (episodes of a fixed
  length that divides ``n_steps``) no unit crosses a rollout and this is exactly Algorithm 2.
* **reward to PPO** (step 5): the wrapper gives 0 at step time; at the rollout's end the win-rate rewards are added to
  the rollout buffer's rewards (which keep SB3's time-limit bootstrap) and the returns and GAE advantages
  are recomputed.

**Labels per step.** Every unit asks ``|Q| <= B`` comparisons (``B`` once the queue is full), so a run
asks ``B / H`` labels per env step (whole episodes of 1000 steps, ``B = 10``: 0.01 per step, 10,000 per
million steps), all from a scripted teacher. ``total_feedback`` caps them: once it is spent, units get 0.5
(no signal). ``feedback_per_session``, ``feedback_every``, ``selector``, ``segment_length``,
``large_batch`` and ``fit_kwargs`` are PrefPPO's and unused here (SPO asks at every rollout and fits
nothing). A person cannot answer ``B`` comparisons per trajectory, so a ``HumanTeacher`` is refused.
"""

from __future__ import annotations

import copy
import warnings
from collections import deque
from typing import Any

import numpy as np

from pbrl.agents.online_base import REWARD_MODEL_DEFAULTS
from pbrl.agents.pref_ppo import PrefPPO
from pbrl.online.feedback import PreferenceCallback
from pbrl.segments import Segments
from pbrl.validation import check_int

__all__ = ["SPO", "SPOCallback", "win_rate", "spread_win_rate", "pad_unit"]


def win_rate(labels: np.ndarray) -> float:
    """Step 3, ``r(xi_t)``: the proportion of wins of the new unit: the mean of the answered labels ``[M]`` (1.0 win, 0.5 tie,
    0.0 loss; NaN = skipped, left out); 0.5 when none is answered."""
    lab = np.asarray(labels, dtype=np.float64).reshape(-1)
    lab = lab[np.isfinite(lab)]
    return float(lab.mean()) if lab.size else 0.5


def spread_win_rate(win: float, n_steps: int, unit_length: int) -> np.ndarray:
    """Step 4: per-step rewards ``[n_steps]`` of a unit (or of its part in one rollout): ``win / unit_length`` each,
    so that a whole unit's rewards sum to its win rate (Algorithm 2's even split over the steps)."""
    return np.full(int(n_steps), float(win) / float(unit_length), dtype=np.float32)


def pad_unit(obs: np.ndarray, act: np.ndarray, reward: np.ndarray, next_obs: np.ndarray,
             length: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A unit of ``T <= length`` steps padded to ``length`` with the absorbing state: ``next_obs`` repeated,
    action 0, reward 0. ``obs [T, obs_dim]``, ``act [T, act_dim]``, ``reward [T]`` -> the same with ``length``
    rows."""
    T = len(obs)
    if T > length:
        raise ValueError(f"a unit of {T} steps does not fit a unit length of {length}")
    pad = length - T
    o = np.concatenate([obs, np.repeat(np.asarray(next_obs, np.float32)[None], pad, 0)]).astype(np.float32)
    a = np.concatenate([act, np.zeros((pad, act.shape[1]), np.float32)]).astype(np.float32)
    r = np.concatenate([reward, np.zeros(pad, np.float32)]).astype(np.float32)
    return o, a, r


class SPOCallback(PreferenceCallback):
    """SPO's feedback: records units, scores them against the queue at each rollout's end, writes the win-rate
    rewards into PPO's rollout buffer (see the module docstring).

    Built by :class:`SPO` from its :class:`~pbrl.online.PreferenceCallback` arguments, plus:

    Args:
        unit_length: steps per compared unit (whole episodes: the episode length).
        queue_size: ``B``, complete units kept to compare with (default 10).
    """

    def __init__(self, *args, unit_length: int, queue_size: int = 10, **kwargs):
        super().__init__(*args, **kwargs)
        self.unit_length = int(unit_length)
        self.queue_size = int(queue_size)
        self.queue: deque[tuple[np.ndarray, np.ndarray, np.ndarray]] = deque(maxlen=self.queue_size)
        self.answered = 0
        self.units = 0
        self.active = False
        self._units: list[dict[str, list]] = []
        self._piece_start: list[int] = []
        self._rows: list[list[int]] = []
        self._done: list[tuple[int, tuple, int, list[int]]] = []
        self._prev_obs: np.ndarray | None = None
        self._pending_spo: dict | None = None

    @property
    def labels_used(self) -> int:
        """Comparisons the teacher answered (SPO consumes them at once; none is stored for a reward model)."""
        return self.answered

    # ------------------------------------------------------------------ SB3 hooks
    def _init_callback(self) -> None:
        super()._init_callback()
        n = self.wrapper.num_envs
        if self._pending_spo is not None:
            self._set_spo_state(self._pending_spo)
            self._pending_spo = None
        if len(self._units) != n:
            self._units = [self._new_unit() for _ in range(n)]
            self._piece_start = [0] * n
        self._rows = [[] for _ in range(n)]
        if self._prev_obs is None:
            self._prev_obs = np.asarray(self.wrapper._obs, np.float32).copy()

    @staticmethod
    def _new_unit() -> dict[str, list]:
        return {"obs": [], "act": [], "reward": []}

    def _on_rollout_start(self) -> None:
        if not self.active and self.num_timesteps >= self.first_feedback_step:
            self.active = True  # pre-training (if any) ends at a rollout boundary; units start here
            self.wrapper.set_mode("none")
            self._units = [self._new_unit() for _ in self._units]
            self._piece_start = [0] * len(self._units)
        self._rows = [[] for _ in self._units]
        self._done = []

    def _on_step(self) -> bool:
        obs_now = np.asarray(self.wrapper._obs, np.float32)
        if self.active:
            infos, dones = self.locals["infos"], self.locals["dones"]
            acts = np.asarray(self.locals["clipped_actions"], np.float32).reshape(len(infos), -1)
            row = int(self.model.rollout_buffer.pos)  # SB3 adds this step at this row after the callbacks
            ended = self._terminal_obs(dones)
            for i, info in enumerate(infos):
                u = self._units[i]
                u["obs"].append(self._prev_obs[i].copy())
                u["act"].append(acts[i].copy())
                u["reward"].append(float(info["true_reward"]))
                self._rows[i].append(row)
                if dones[i] or len(u["obs"]) == self.unit_length:
                    unit = pad_unit(np.asarray(u["obs"]), np.asarray(u["act"]), np.asarray(u["reward"], np.float32),
                                    ended.get(i, obs_now[i]), self.unit_length)
                    self._done.append((i, unit, self._piece_start[i], self._rows[i]))
                    self._units[i], self._piece_start[i], self._rows[i] = self._new_unit(), 0, []
        self._prev_obs = obs_now.copy()
        return True

    def _terminal_obs(self, dones: np.ndarray) -> dict[int, np.ndarray]:
        """The raw last state of each env whose episode ended at this step (the wrapper has just recorded
        those episodes, in env order; the ``terminal_observation`` in ``infos`` may be normalised)."""
        idx = [i for i, d in enumerate(dones) if d]
        eps = list(self.wrapper.episodes)[-len(idx):] if idx else []
        if len(eps) != len(idx):
            return {}
        return {i: np.asarray(t.next_obs, np.float32) for i, t in zip(idx, eps)}

    def _on_rollout_end(self) -> None:
        if not self.active:
            return
        buf = self.model.rollout_buffer
        extra = np.zeros_like(buf.rewards)
        wins = []
        for i, unit, start, rows in self._done:  # complete units, in order of completion
            win = self._score(unit, start, self.unit_length)
            extra[rows, i] += spread_win_rate(win, len(rows), self.unit_length)
            self.queue.append(unit)
            self.units += 1
            wins.append(win)
        for i, u in enumerate(self._units):  # the parts of running units inside this rollout
            end = len(u["obs"])
            if end > self._piece_start[i]:
                part = (np.asarray(u["obs"], np.float32), np.asarray(u["act"], np.float32),
                        np.asarray(u["reward"], np.float32))
                win = self._score(part, self._piece_start[i], end)
                extra[self._rows[i], i] += spread_win_rate(win, len(self._rows[i]), self.unit_length)
                self._piece_start[i] = end
        buf.rewards += extra
        buf.compute_returns_and_advantage(last_values=self.locals["values"], dones=self.locals["dones"])
        self._done = []
        self._log(wins)

    # ------------------------------------------------------------------ scoring
    def _score(self, unit: tuple[np.ndarray, np.ndarray, np.ndarray], start: int, end: int) -> float:
        """Win rate of steps ``[start, end)`` of ``unit`` against the same steps of the newest queued units
        (as many as the budget allows); counts the comparisons."""
        n = min(len(self.queue), self.budget_left)
        if n <= 0 or end <= start:
            return 0.5
        q = list(self.queue)[-n:]
        sl = slice(start, end)
        a = Segments(np.stack([x[0][sl] for x in q]), np.stack([x[1][sl] for x in q]), np.stack([x[2][sl] for x in q]))
        o, ac, r = (x[sl] for x in unit)
        b = Segments(np.repeat(o[None], n, 0), np.repeat(ac[None], n, 0), np.repeat(r[None], n, 0))
        labels = np.asarray(self.teacher.label(a, b), dtype=np.float32)  # 1.0: the new unit (b) wins
        self.asked += n
        self.answered += int(np.isfinite(labels).sum())
        return win_rate(labels)

    def _log(self, wins: list[float]) -> None:
        if wins:
            self.logger.record("spo/win_rate", float(np.mean(wins)))
        self.logger.record("spo/queue", len(self.queue))
        self.logger.record("spo/units", self.units)
        self.logger.record("feedback/asked", self.asked)
        self.logger.record("feedback/labels_used", self.labels_used)

    # ------------------------------------------------------------------ checkpoints (at a rollout start)
    def state_dict(self) -> dict[str, Any]:
        """:meth:`PreferenceCallback.state_dict` plus the queue, the units in progress and the counters."""
        return {**super().state_dict(), "spo": copy.deepcopy(self._spo_state())}

    def _spo_state(self) -> dict[str, Any]:
        return {"queue": list(self.queue), "answered": self.answered, "units": self.units, "active": self.active,
                "current": self._units, "piece_start": list(self._piece_start),
                "prev_obs": None if self._prev_obs is None else self._prev_obs.copy()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`."""
        if "spo" not in state:
            raise ValueError("not an SPO callback state: missing 'spo' (was the checkpoint written by another agent?)")
        super().load_state_dict(state)
        self._pending_spo = copy.deepcopy(state["spo"])
        if self.wrapper is not None:
            self._set_spo_state(self._pending_spo)
            self._pending_spo = None

    def _set_spo_state(self, s: dict[str, Any]) -> None:
        self.queue = deque(s["queue"], maxlen=self.queue_size)
        self.answered, self.units, self.active = int(s["answered"]), int(s["units"]), bool(s["active"])
        self._units = [{k: list(v) for k, v in u.items()} for u in s["current"]]
        self._piece_start = list(s["piece_start"])
        self._prev_obs = None if s["prev_obs"] is None else np.asarray(s["prev_obs"], np.float32).copy()


class SPO(PrefPPO):
    """Self-Play Preference Optimization on PPO (see the module docstring).

    ``SPO(task_id_or_env, teacher, total_feedback, feedback_per_session, feedback_every, ..., queue_size=10,
    unit_length=None, n_envs=16, normalize_obs=True, unsup_steps=0)``.

    Args (beyond :class:`~pbrl.agents.pref_ppo.PrefPPO`'s, several of which SPO does not use: module docstring):
        queue_size: ``B``, the number of recent units each new unit is compared with (default 10).
        unit_length: steps per compared unit; ``None`` (default): whole episodes, Algorithm 2.
        unsup_steps: steps of PrefPPO's state-entropy pre-training before SPO starts (default 0: the paper
            has none).

    Raises:
        ValueError: for a ``HumanTeacher`` (SPO asks ``B`` comparisons per trajectory), a rating teacher, the
            ``heron`` / ``regret`` teachers (they read what SPO's units do not record),
            ``queue_size < 1`` or a ``unit_length`` outside ``1..episode length``.
    """

    default_unsup_steps = 0
    feedback_kinds = ("preference",)
    #: SPO learns no reward model; the base class's wrapper needs one, so it gets this 1-unit placeholder,
    #: never trained, never asked for a reward (the wrapper's mode is ``"none"``)
    default_reward_model_kwargs = {**REWARD_MODEL_DEFAULTS, "n_members": 1, "hidden": (1,)}

    def __init__(self, task_id_or_env: Any, teacher: Any, *args, queue_size: int = 10,
                 unit_length: int | None = None, **kwargs):
        if type(teacher).__name__ == "HumanTeacher" or getattr(teacher, "name", None) == "human":
            raise ValueError(f"spo compares every new trajectory with each of the last queue_size={queue_size} "
                             "ones (that many labels per trajectory), too many for a person; use a scripted "
                             "teacher (e.g. oracle, intransitive) or an agent that learns a reward model (pref_ppo)")
        if getattr(teacher, "name", None) in ("heron", "regret"):
            raise ValueError(f"spo's compared units record observations, actions and true rewards only; teacher "
                             f"'{teacher.name}' needs reward factors or next states: use oracle, a B-Pref preset, "
                             "intransitive or last_step")
        check_int("queue_size", queue_size, 1)
        if unit_length is not None:
            check_int("unit_length", unit_length, 1)
        self.queue_size = int(queue_size)
        self._unit_length = unit_length
        super().__init__(task_id_or_env, teacher, *args, **kwargs)

    def _setup(self) -> None:
        L = self.episode_length if self._unit_length is None else int(self._unit_length)
        if L > self.episode_length:
            raise ValueError(f"unit_length {L} is longer than the episode length {self.episode_length}; choose "
                             "a shorter unit or None (whole episodes)")
        self.unit_length = L
        old = self.callback
        self.callback = SPOCallback(
            old.reward_model, old.teacher, old.selector, total_feedback=old.total_feedback,
            feedback_per_session=old.feedback_per_session, feedback_every=old.feedback_every,
            segment_length=old.segment_length, episode_length=old.episode_length,
            first_feedback_step=old.first_feedback_step, trainer=old.trainer, relabel=False,
            seed=self.seed, progress=old.progress, verbose=old.verbose, unit_length=L, queue_size=self.queue_size,
        )
        self.callback.preferences = old.preferences
        if self.eval_callback is not None:
            self.eval_callback.preference_callback = self.callback
        self.entropy = self.env.entropy
        self.env.set_mode("entropy" if self.unsup_steps > 0 else "none")

    def learn(self, total_timesteps: int, callback: Any = None, **learn_kwargs) -> SPO:
        """:meth:`OnlinePrefAgent.learn`, warning first (one line) when ``total_feedback`` cannot last the run:
        up to ``queue_size`` labels per ``unit_length`` steps."""
        need = self.queue_size * (int(total_timesteps) // self.unit_length)
        if need > self.callback.budget_left:
            warnings.warn(f"spo: {total_timesteps} steps ask up to {need} labels ({self.queue_size} per "
                          f"{self.unit_length}-step unit) but total_feedback leaves {self.callback.budget_left}; "
                          "later units get no signal: raise total_feedback", stacklevel=2)
        return super().learn(total_timesteps, callback=callback, **learn_kwargs)

    def _set_learned_reward(self) -> None:
        """SPO's rewards come from the callback at each rollout's end: the wrapper gives 0 at step time."""
        self.env.set_mode("none")
