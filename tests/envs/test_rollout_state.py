"""pbrl's rollouts hand ``predict``'s recurrent state from step to step of an episode and start each episode
afresh (``episode_start``), as SB3's ``evaluate_policy`` does: a policy with a history (DTR) sees its episode."""

from __future__ import annotations

import numpy as np

from pbrl.envs import make_env
from pbrl.envs.rollout import EpisodePolicy, rollout


class _Recorder:
    """A policy whose state counts the steps of its episode; it records what each call received."""

    def __init__(self, act_dim: int):
        self.act_dim, self.calls = act_dim, []

    def predict(self, obs, state=None, episode_start=None, deterministic=True):
        self.calls.append((state, bool(np.asarray(episode_start).reshape(-1)[0])))
        step = 0 if state is None or np.asarray(episode_start).any() else state + 1
        return np.zeros(self.act_dim, np.float32), step


class _Plain:
    """SB3's older duck type: predict(obs, deterministic) only."""

    def predict(self, obs, deterministic=True):
        return np.zeros(2, np.float32), None


def test_rollout_carries_the_state_within_an_episode_and_resets_it_between():
    env = make_env("mujoco/Reacher-v5", seed=0)
    pol = _Recorder(env.action_space.shape[0])
    trajs = rollout(env, pol, n_episodes=2, seed=0, max_episode_steps=3)
    assert [len(t) for t in trajs] == [3, 3]
    assert pol.calls == [(None, True), (0, False), (1, False), (None, True), (0, False), (1, False)]


def test_a_plain_predict_still_works():
    fn = EpisodePolicy(_Plain())
    assert not fn.stateful and fn(np.zeros(10, np.float32)).shape == (2,)
