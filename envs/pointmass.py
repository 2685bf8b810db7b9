"""A two-goal point mass: the cheap task on which users with different goals disagree (VPL's check).

``pointmass/two-goal`` is a point in the plane that moves by its action. Two goals sit on either side of
the start; which one is "right" depends on who is asked, so the task only makes sense with several users
(:class:`pbrl.multi_user.MultiUserTeacher`) and an agent that tells them apart (:class:`pbrl.agents.vpl.VPL`).
It plays the role of the maze with two goals of Poddar et al. (NeurIPS 2024, "Personalizing RLHF with
Variational Preference Learning", authors' ``maze2d-twogoals-multimodal-v0``) without MuJoCo or D4RL.

* observation ``[2]`` float32: the position ``(x, y)``;
* action ``[2]`` in ``[-1, 1]``: the step ``p <- clip(p + 0.1 a, -1, 1)`` (at most 0.1 per axis a step);
* start ``(0, 0)`` plus ``U(-0.1, 0.1)`` per axis, from the env's seeded RNG;
* goals :data:`GOALS`: ``(-1, 1)`` (goal 0) and ``(1, 1)`` (goal 1), the arena's top corners, 10 full steps
  away. In the corners, a reward learned from segment comparisons, which tends to rise steadily towards the
  preferred side rather than peak, peaks at the goal (with the arena reaching 0.5 beyond the goals, the
  learned rewards of ``scripts/vpl_check.py`` peaked in the arena's corners, 0.7 from the goals);
* episodes of :data:`EPISODE_LENGTH` = 50 steps (a time limit, no terminal state);
* task option ``goal`` (``pointmass/two-goal:goal=0``): whose task it is. ``goal=0`` / ``goal=1``: reward
  ``-||p - g_k||`` (after the step) and ``info["success"]`` within :data:`SUCCESS_RADIUS` of ``g_k``;
  ``either`` (the default, the id without options): the nearer goal's reward and success at either goal.
  Evaluating a policy on ``:goal=0`` and on ``:goal=1`` gives the success rate of each user.

:func:`scripted_two_goal` is the hand-written policy of the dataset pbrl builds for this task
(``collect("pointmass/two-goal", "scripted", noise=...)``): it heads at full speed to the goal on the side
of its current ``x`` (so episodes split between both goals), with Gaussian action noise from ``collect``.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import gymnasium as gym
import numpy as np

__all__ = ["PointMassTwoGoal", "GOALS", "EPISODE_LENGTH", "SUCCESS_RADIUS", "TASK_ID", "GOAL_OPTIONS",
           "scripted_two_goal", "goal_rewards"]

#: the point mass's task id
TASK_ID = "pointmass/two-goal"
#: the two goals ``[2, 2]``: goal 0 on the left, goal 1 on the right
GOALS = np.array([[-1.0, 1.0], [1.0, 1.0]], dtype=np.float32)
#: steps per episode
EPISODE_LENGTH = 50
#: distance to a goal that counts as success
SUCCESS_RADIUS = 0.2
STEP = 0.1
BOUND = 1.0
#: values of the task option ``goal``, default first
GOAL_OPTIONS = ("either", "0", "1")


def goal_rewards(pos: np.ndarray, goals: np.ndarray = GOALS) -> np.ndarray:
    """Each goal's reward ``-||p - g_k||`` of positions ``pos [..., 2]``: ``[..., K]``."""
    p = np.asarray(pos, dtype=np.float64)[..., None, :2]
    return -np.linalg.norm(p - np.asarray(goals, np.float64), axis=-1)


class PointMassTwoGoal(gym.Env):
    """The two-goal point mass (see the module docstring).

    Args:
        goal: ``"either"``, ``"0"`` or ``"1"``: whose reward and success the env reports. The time limit
            (:data:`EPISODE_LENGTH`) is added by :func:`pbrl.envs.make_env`.
    """

    metadata = {"render_modes": []}

    def __init__(self, goal: str = "either"):
        if goal not in GOAL_OPTIONS:
            raise ValueError(f"unknown goal {goal!r}; choose one of {', '.join(GOAL_OPTIONS)}")
        self.goal = goal
        self.observation_space = gym.spaces.Box(-BOUND, BOUND, shape=(2,), dtype=np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)
        self.pos = np.zeros(2, np.float64)
        # the simulator state PbrlInfoWrapper records (qpos = position, qvel = the last step's velocity), with
        # MuJoCo's names for its sizes
        self.data = SimpleNamespace(qpos=np.zeros(2), qvel=np.zeros(2))
        self.model = SimpleNamespace(nq=2, nv=2)

    def _reward_success(self) -> tuple[float, bool]:
        r = goal_rewards(self.pos)
        if self.goal == "either":
            return float(r.max()), bool(-r.max() < SUCCESS_RADIUS)
        k = int(self.goal)
        return float(r[k]), bool(-r[k] < SUCCESS_RADIUS)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.pos = self.np_random.uniform(-0.1, 0.1, size=2)
        self.data.qpos, self.data.qvel = self.pos.copy(), np.zeros(2)
        return self.pos.astype(np.float32), {"success": False}

    def step(self, action: Any):
        a = np.clip(np.asarray(action, dtype=np.float64).reshape(2), -1.0, 1.0)
        new = np.clip(self.pos + STEP * a, -BOUND, BOUND)
        self.data.qvel = (new - self.pos) / STEP
        self.pos = new
        self.data.qpos = self.pos.copy()
        reward, success = self._reward_success()
        return self.pos.astype(np.float32), reward, False, False, {"success": success}


class _ScriptedTwoGoal:
    """Heads at full speed to the goal on the side of the current ``x`` (``x < 0``: goal 0), or to one fixed
    goal; ``get_action(obs [2]) -> action [2]`` as Meta-World's scripted policies."""

    def __init__(self, goal: str = "either"):
        self.goal = goal

    def get_action(self, obs: np.ndarray) -> np.ndarray:
        p = np.asarray(obs, dtype=np.float64)[:2]
        k = (0 if p[0] < 0 else 1) if self.goal == "either" else int(self.goal)
        return np.clip((GOALS[k] - p) / STEP, -1.0, 1.0).astype(np.float32)


def scripted_two_goal(goal: str = "either") -> _ScriptedTwoGoal:
    """The scripted policy of the two-goal point mass for the task option ``goal``."""
    if goal not in GOAL_OPTIONS:
        raise ValueError(f"unknown goal {goal!r}; choose one of {', '.join(GOAL_OPTIONS)}")
    return _ScriptedTwoGoal(goal)
