"""Roll a policy out on a registered task and record :class:`~pbrl.segments.Trajectory` objects."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
from tqdm.auto import tqdm

from pbrl.segments import Trajectory

__all__ = ["rollout", "as_policy_fn", "EpisodePolicy"]


class EpisodePolicy:
    """``obs -> action`` through ``policy.predict``, carrying SB3's recurrent ``state`` from step to step of an
    episode (``episode_start`` True at its first step) when ``predict`` takes one, as SB3's ``evaluate_policy``
    does: a policy with a history (DTR's context, a recurrent policy) sees its episode. :meth:`reset` starts a
    new episode."""

    def __init__(self, policy: Any, deterministic: bool = True):
        self.policy, self.deterministic = policy, deterministic
        try:
            params = inspect.signature(policy.predict).parameters
            self.stateful = "state" in params and "episode_start" in params
        except (TypeError, ValueError):  # no signature to read: call it the plain way
            self.stateful = False
        self.reset()

    def reset(self) -> None:
        self.state, self.start = None, True

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        if not self.stateful:
            return np.asarray(self.policy.predict(obs, deterministic=self.deterministic)[0], dtype=np.float32)
        act, self.state = self.policy.predict(obs, state=self.state, episode_start=np.array([self.start]),
                                              deterministic=self.deterministic)
        self.start = False
        return np.asarray(act, dtype=np.float32)


def as_policy_fn(policy: Any, env: gym.Env, rng: np.random.Generator, deterministic: bool = True) -> Callable:
    """Turn ``"random"``, an SB3 model / anything with ``predict(obs, deterministic)`` (an :class:`EpisodePolicy`,
    which carries ``predict``'s recurrent state through an episode), or a callable ``obs -> action`` into a
    function ``obs -> action``."""
    space = env.action_space
    if policy is None or (isinstance(policy, str) and policy == "random"):
        return lambda obs: rng.uniform(space.low, space.high).astype(np.float32)
    if hasattr(policy, "predict"):
        return EpisodePolicy(policy, deterministic)
    if callable(policy):
        return lambda obs: np.asarray(policy(obs), dtype=np.float32)
    raise TypeError(f"policy must be 'random', an object with predict(), or a callable; got {type(policy).__name__}")


def rollout(
    env: gym.Env,
    policy: Any = "random",
    n_episodes: int | None = None,
    n_steps: int | None = None,
    seed: int | None = 0,
    deterministic: bool = True,
    progress: bool = False,
    max_episode_steps: int | None = None,
) -> list[Trajectory]:
    """Run ``policy`` on ``env`` for ``n_episodes`` whole episodes or ``n_steps`` steps (the last episode is
    cut where the steps run out and not marked terminated).

    Each trajectory records obs, actions, true rewards, ``success`` and, when the env reports it (every
    env of :func:`pbrl.envs.make_env` does), the simulator state ``qpos`` / ``qvel`` of each step.
    """
    if (n_episodes is None) == (n_steps is None):
        raise ValueError("give exactly one of n_episodes and n_steps")
    if (n_episodes is not None and n_episodes < 1) or (n_steps is not None and n_steps < 1):
        raise ValueError(f"n_episodes / n_steps must be positive, got {n_episodes} / {n_steps}")
    rng = np.random.default_rng(seed)
    act_fn = as_policy_fn(policy, env, rng, deterministic)
    trajs: list[Trajectory] = []
    total = 0
    bar = tqdm(total=n_steps or n_episodes, disable=not progress, desc="rollout", unit="step" if n_steps else "ep")
    obs, info = env.reset(seed=seed)
    while True:
        rec: dict[str, list] = {k: [] for k in ("obs", "act", "reward", "success", "qpos", "qvel")}
        has_state = "qpos" in info
        terminated = False
        t = 0
        while True:
            a = act_fn(obs)
            if has_state:
                rec["qpos"].append(info["qpos"])
                rec["qvel"].append(info["qvel"])
            nobs, r, term, trunc, info = env.step(a)
            rec["obs"].append(obs)
            rec["act"].append(a)
            rec["reward"].append(r)
            rec["success"].append(bool(info.get("success", False)))
            obs = nobs
            t += 1
            total += 1
            if n_steps:
                bar.update(1)
            stop_steps = n_steps is not None and total >= n_steps
            if term or trunc or stop_steps or (max_episode_steps and t >= max_episode_steps):
                terminated = bool(term)
                break
        trajs.append(
            Trajectory(
                obs=np.asarray(rec["obs"]),
                act=np.asarray(rec["act"]),
                reward=np.asarray(rec["reward"]),
                success=np.asarray(rec["success"]),
                qpos=np.asarray(rec["qpos"]) if has_state else None,
                qvel=np.asarray(rec["qvel"]) if has_state else None,
                next_obs=np.asarray(obs),
                terminated=terminated,
            )
        )
        if n_episodes:
            bar.update(1)
        if (n_steps is not None and total >= n_steps) or (n_episodes is not None and len(trajs) >= n_episodes):
            break
        obs, info = env.reset()
        if isinstance(act_fn, EpisodePolicy):
            act_fn.reset()
    bar.close()
    return trajs
