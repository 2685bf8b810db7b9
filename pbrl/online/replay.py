"""The SB3 replay buffer with pbrl's hooks, and in-place relabelling of stored rewards.

* :class:`PbrlReplayBuffer` is an ordinary SB3 ``ReplayBuffer`` with three hooks, each ``None`` by default:

  - ``sampler(buffer, batch_size) -> row indices``: which rows a batch draws (QPA's hybrid replay,
    :class:`pbrl.agents.qpa.HybridReplay`); uniform when ``None``;
  - ``sample_reward(obs, act, next_obs, reward) -> [B]``: replaces a sampled batch's rewards at sample
    time, the stored ones unchanged (PEBBLE's state-entropy pre-training, RUNE's exploration bonus);
    ``buffer.last_batch_rows`` holds the flat row index (``row * n_envs + env``) of every sampled row;
  - ``reward_on_add(obs, act) -> [n_envs]``: recomputes the reward of the next stored transition, then
    clears itself. SB3 stores a step's transition *after* the callbacks of that step ran, so the
    transition of the step at which the reward model was refitted carries the old model's reward; the
    feedback callback sets this hook after relabelling so that the row is written with the new one.
* :func:`relabel_replay_buffer` rewrites every stored reward with a new reward model (PEBBLE Sec. 4.2).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.buffers import ReplayBuffer

__all__ = ["PbrlReplayBuffer", "relabel_replay_buffer", "unscale_action", "RewardFn"]

#: a reward function ``(obs [N, obs_dim], act [N, act_dim]) -> reward [N]``
RewardFn = Callable[[np.ndarray, np.ndarray], np.ndarray]


class PbrlReplayBuffer(ReplayBuffer):
    """SB3 ``ReplayBuffer`` with pbrl's ``sampler``, ``sample_reward`` and ``reward_on_add`` hooks (see the
    module docstring). ``optimize_memory_usage`` is not supported. Constructed by SB3 from
    ``replay_buffer_class=PbrlReplayBuffer``; the agents set the hooks after construction.
    """

    def __init__(self, *args, **kwargs):
        if kwargs.get("optimize_memory_usage", False):
            raise ValueError("PbrlReplayBuffer does not support optimize_memory_usage=True; leave it False")
        super().__init__(*args, **kwargs)
        self.sampler: Callable[[PbrlReplayBuffer, int], np.ndarray] | None = None
        self.sample_reward: Callable[..., np.ndarray] | None = None
        self.reward_on_add: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None
        self.last_batch_rows: np.ndarray | None = None

    def size_filled(self) -> int:
        """Number of stored rows (per env)."""
        return self.buffer_size if self.full else self.pos

    def add(self, obs, next_obs, action, reward, done, infos) -> None:
        if self.reward_on_add is not None:
            fn, self.reward_on_add = self.reward_on_add, None
            o = np.asarray(obs, np.float32).reshape(self.n_envs, -1)
            a = np.asarray(action, np.float32).reshape(self.n_envs, -1)
            reward = np.asarray(fn(o, a), np.float32).reshape(np.shape(reward))
        super().add(obs, next_obs, action, reward, done, infos)

    def sample(self, batch_size: int, env=None):
        n = self.size_filled()
        if n == 0:
            raise ValueError("cannot sample from an empty replay buffer")
        if self.sampler is None:
            inds = np.random.randint(0, n, size=batch_size)  # noqa: NPY002 - SB3 seeds the global RNG
        else:
            inds = np.asarray(self.sampler(self, batch_size))
        return self._get_samples(inds, env=env)

    def _get_samples(self, batch_inds: np.ndarray, env=None):
        # SB3 draws the env column inside _get_samples; the same draw is repeated here so that the flat row
        # index of every sampled transition is known (the k-NN entropy reward skips the row itself)
        env_inds = np.random.randint(0, high=self.n_envs, size=(len(batch_inds),))  # noqa: NPY002
        self.last_batch_rows = batch_inds * self.n_envs + env_inds
        data = self._samples_at(batch_inds, env_inds, env)
        if self.sample_reward is not None:
            r = self.sample_reward(
                data.observations.cpu().numpy(),
                data.actions.cpu().numpy(),
                data.next_observations.cpu().numpy(),
                data.rewards.cpu().numpy().reshape(-1),
            )
            r = torch.as_tensor(np.asarray(r, np.float32).reshape(-1, 1), device=data.rewards.device)
            data = data._replace(rewards=r)
        return data

    def _samples_at(self, rows: np.ndarray, env_inds: np.ndarray, env=None):
        from stable_baselines3.common.type_aliases import ReplayBufferSamples

        obs = self._normalize_obs(self.observations[rows, env_inds, :], env)
        next_obs = self._normalize_obs(self.next_observations[rows, env_inds, :], env)
        done = self.dones[rows, env_inds] * (1 - self.timeouts[rows, env_inds])
        reward = self._normalize_reward(self.rewards[rows, env_inds].reshape(-1, 1), env)
        data = (obs, self.actions[rows, env_inds, :], next_obs, done.reshape(-1, 1), reward)
        return ReplayBufferSamples(*tuple(map(self.to_torch, data)))

    def filled_next_observations(self, max_rows: int | None = None) -> np.ndarray:
        """Stored next observations ``[n * n_envs, obs_dim]``, or a uniform sample of ``max_rows`` of them
        (drawn with NumPy's global RNG, which SB3 seeds, like the batch itself)."""
        n = self.size_filled()
        flat = self.next_observations[:n].reshape(n * self.n_envs, -1)
        if max_rows is not None and len(flat) > max_rows:
            flat = flat[np.random.choice(len(flat), size=max_rows, replace=False)]  # noqa: NPY002
        return flat


def unscale_action(act: np.ndarray, space: spaces.Box) -> np.ndarray:
    """Map actions from SB3's replay-buffer scale ``[-1, 1]`` back to the env's ``[low, high]``.

    SB3's off-policy learners store *scaled* actions; the reward model is trained on the env's actions
    (what the wrapper and the teachers see), so relabelling and sample-time rewards unscale first.
    """
    low, high = space.low.astype(np.float32), space.high.astype(np.float32)
    return low + 0.5 * (np.asarray(act, np.float32) + 1.0) * (high - low)


def relabel_replay_buffer(
    buffer: ReplayBuffer, reward_fn: RewardFn, chunk_size: int = 65536, action_space: spaces.Box | None = None
) -> int:
    """Rewrite every stored reward of an SB3 replay buffer with ``reward_fn(obs, act)``, in place.

    Rows ``[:pos]`` (or all rows once the buffer is full) of ``buffer.rewards [buffer_size, n_envs]`` are
    recomputed from ``buffer.observations`` / ``buffer.actions`` in chunks of ``chunk_size`` transitions,
    one batched ``reward_fn`` call per chunk (PEBBLE relabels the whole buffer after each reward update).
    With ``action_space`` (a ``Box``), stored actions are first unscaled from SB3's ``[-1, 1]`` to the env's
    bounds (see :func:`unscale_action`); SB3's SAC/TD3 store scaled actions.

    Returns:
        The number of transitions relabelled.
    """
    if not isinstance(buffer, ReplayBuffer):
        raise TypeError(f"relabel_replay_buffer needs an SB3 ReplayBuffer, got {type(buffer).__name__}")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    n = buffer.buffer_size if buffer.full else buffer.pos
    if n == 0:
        return 0
    n_envs = buffer.n_envs
    obs = buffer.observations[:n].reshape(n * n_envs, -1)
    act = buffer.actions[:n].reshape(n * n_envs, -1)
    flat = buffer.rewards[:n].reshape(n * n_envs)  # a view: writes go into the buffer
    for i in range(0, n * n_envs, chunk_size):
        a = act[i : i + chunk_size]
        if action_space is not None:
            a = unscale_action(a, action_space)
        r = np.asarray(reward_fn(obs[i : i + chunk_size], a), dtype=np.float32)
        flat[i : i + chunk_size] = r.reshape(-1)
    if not np.shares_memory(flat, buffer.rewards):  # pragma: no cover - reshape of a contiguous slice is a view
        buffer.rewards[:n] = flat.reshape(n, n_envs)
    return n * n_envs
