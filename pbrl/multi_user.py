"""A population of scripted users who want different things: each query is answered by one of them.

Preference data from several people mixes their reward functions; a single Bradley-Terry reward then
averages them (Poddar et al., NeurIPS 2024, "Personalizing RLHF with Variational Preference Learning",
Sec. 3). :class:`MultiUserTeacher` simulates that population: user ``k`` is a B-Pref scripted teacher
(:class:`~pbrl.teachers.ScriptedTeacher`, the ``teacher`` preset) applied to *its own* reward, and every
query goes to one user drawn at random (``mix``). :meth:`MultiUserTeacher.answer` returns the labels and
the id of the user who gave each one, which :func:`pbrl.envs.datasets.label_dataset` stores as
``PreferenceDataset.user``.

A user's reward is either

* a goal (``goals=[[x, y], ...]``, the default the two goals of ``pointmass/two-goal``): ``-||s[obs_dims] -
  g_k||`` per step, summed over the segment, as the authors' two-goal maze relabels a segment per mode, or
* any function ``reward_fns[k](segments) -> [N, H]`` (the API only, e.g. different weights of reward factors).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from pbrl.segments import Segments
from pbrl.teachers import TEACHER_PRESETS, ScriptedTeacher, Teacher, _check_pair

__all__ = ["MultiUserTeacher", "DEFAULT_GOALS"]

#: the goals of ``pointmass/two-goal`` (:data:`pbrl.envs.pointmass.GOALS`; a test keeps them equal)
DEFAULT_GOALS = ((-1.0, 1.0), (1.0, 1.0))


class MultiUserTeacher(Teacher):
    """Several scripted users, one per goal (or reward function); each query is answered by one of them.

    Args:
        goals: one point per user in the coordinates ``obs_dims`` of the observation (default
            :data:`DEFAULT_GOALS`, the two goals of ``pointmass/two-goal``). Ignored with ``reward_fns``.
        obs_dims: which observation entries the goals live in (default ``(0, 1)``).
        reward_fns: instead of goals, one function per user ``Segments -> [N, H]`` rewards.
        names: the user ids stored with the labels (default ``"user0"``, ``"user1"``, ...).
        mix: the probability that a query goes to each user (default uniform).
        teacher: the B-Pref preset every user answers with (default ``"oracle"``; ``"stoc"``, ``"mistake"``,
            ...), applied to that user's reward.
        seed: seeds who answers and the users' own randomness.
    """

    name = "multi_user"

    def __init__(
        self,
        goals: Sequence[Sequence[float]] | None = DEFAULT_GOALS,
        obs_dims: Sequence[int] = (0, 1),
        reward_fns: Sequence[Callable[[Segments], np.ndarray]] | None = None,
        names: Sequence[str] | None = None,
        mix: Sequence[float] | None = None,
        teacher: str = "oracle",
        seed: int | np.random.Generator | None = 0,
    ):
        if reward_fns is not None:
            if isinstance(reward_fns, str) or not all(callable(f) for f in reward_fns) or len(reward_fns) < 2:
                raise ValueError("reward_fns must be a list of at least two functions Segments -> [N, H] rewards")
            k = len(reward_fns)
            self.goals = None
        else:
            g = np.asarray(goals, dtype=np.float64) if goals is not None else np.zeros((0, 0))
            if g.ndim != 2 or len(g) < 2 or not np.all(np.isfinite(g)):
                raise ValueError(f"goals must be at least two finite points [[x, y], ...], got {goals!r}")
            dims = [int(d) for d in obs_dims]
            if len(dims) != g.shape[1] or any(d < 0 for d in dims):
                raise ValueError(f"obs_dims must name {g.shape[1]} observation entries (one per goal coordinate), "
                                 f"got {list(obs_dims)}")
            k, self.goals, self.obs_dims = len(g), g, dims
        self.reward_fns = None if reward_fns is None else list(reward_fns)
        self.names = [f"user{i}" for i in range(k)] if names is None else [str(n) for n in names]
        if len(self.names) != k or len(set(self.names)) != k or any(not n for n in self.names):
            raise ValueError(f"names must be {k} distinct non-empty user ids, got {names!r}")
        p = np.full(k, 1.0 / k) if mix is None else np.asarray(mix, dtype=np.float64)
        if p.shape != (k,) or np.any(p < 0) or not np.isclose(p.sum(), 1.0):
            raise ValueError(f"mix must be {k} probabilities summing to 1, got {mix!r}")
        if teacher not in TEACHER_PRESETS:
            raise ValueError(f"unknown teacher preset '{teacher}' for the users; choose one of {sorted(TEACHER_PRESETS)}")
        super().__init__(seed)
        self.mix, self.teacher = p, teacher
        self.users = [ScriptedTeacher.preset(teacher, seed=int(s)) for s in self.rng.integers(2**31, size=k)]

    def __repr__(self) -> str:
        what = f"goals={self.goals.tolist()}" if self.goals is not None else f"reward_fns={len(self.names)}"
        return f"MultiUserTeacher({what}, names={self.names}, mix={self.mix.tolist()}, teacher={self.teacher!r})"

    def user_rewards(self, k: int, seg: Segments) -> np.ndarray:
        """User ``k``'s per-step rewards of ``seg``: ``[N, H]`` float32."""
        if self.reward_fns is not None:
            r = np.asarray(self.reward_fns[k](seg), dtype=np.float32)
            if r.shape != seg.reward.shape:
                raise ValueError(f"reward_fns[{k}] must return [N, H] = {seg.reward.shape}, got {r.shape}")
            return r
        if seg.obs_dim <= max(self.obs_dims):
            raise ValueError(f"the goals live in observation entries {self.obs_dims}, but the segments have "
                             f"obs_dim={seg.obs_dim}; label segments of the task the goals belong to")
        pos = seg.obs[..., self.obs_dims].astype(np.float64)
        return (-np.linalg.norm(pos - self.goals[k], axis=-1)).astype(np.float32)

    def answer(self, a: Segments, b: Segments) -> tuple[np.ndarray, np.ndarray]:
        """Labels ``[N]`` (1.0 = b preferred, NaN skipped) and the id of the user who answered each ``[N]``."""
        _check_pair(a, b)
        who = self.rng.choice(len(self.names), size=len(a), p=self.mix)
        labels = np.full(len(a), np.nan, np.float32)
        for k in np.unique(who):
            idx = np.flatnonzero(who == k)
            sa, sb = a[idx], b[idx]
            ra = Segments(obs=sa.obs, act=sa.act, reward=self.user_rewards(int(k), sa))
            rb = Segments(obs=sb.obs, act=sb.act, reward=self.user_rewards(int(k), sb))
            labels[idx] = self.users[int(k)].label(ra, rb)
        return labels, np.asarray(self.names, dtype=object)[who].astype(str)

    def label(self, a: Segments, b: Segments) -> np.ndarray:
        """Labels ``[N]`` only (who answered is lost: use :meth:`answer` to keep it)."""
        return self.answer(a, b)[0]

    def get_state(self) -> dict[str, Any]:
        return {**super().get_state(), "users": [u.get_state() for u in self.users]}

    def set_state(self, state: dict[str, Any]) -> None:
        super().set_state(state)
        for u, s in zip(self.users, state.get("users", [])):
            u.set_state(s)
