"""The reward-replacing VecEnv wrapper: the learner sees ``r_hat(s, a)``, teachers and logs the true reward."""

from __future__ import annotations

from collections import deque
from typing import Any

import numpy as np
from gymnasium import spaces
from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper

from pbrl.online.entropy import StateEntropyReward
from pbrl.segments import FACTOR_KEYS, Trajectory

__all__ = ["LearnedRewardVecEnv", "find_wrapper"]


class LearnedRewardVecEnv(VecEnvWrapper):
    """Replace the reward by a learned one; keep the true reward for teachers and logs.

    At every vector step the wrapper calls ``reward_model.predict(obs [n_envs, obs_dim], act [n_envs,
    act_dim]) -> [n_envs]`` once (``obs`` is the state the action was taken in) and returns that as the reward.
    ``info["true_reward"]`` holds the environment's reward, ``info["success"]`` passes through
    (SB3's ``Monitor`` inside the VecEnv keeps logging true episode returns).

    Reward sources (``self.mode``):

    * ``"model"`` (default): ``reward_model.predict(obs, act)``;
    * ``"entropy"``: PEBBLE's state-entropy reward of the next state against a FIFO store of the last
      ``entropy.max_ref`` visited states (unsupervised pre-training of on-policy learners, PrefPPO);
    * ``"true"``: the environment's reward (the SAC-on-true-reward upper bound);
    * ``"none"``: zeros, while the step-time reward is unused (PEBBLE's pre-training: SAC's batches get the
      entropy reward at sample time and the stored rewards are relabelled at the first update).

    Complete episodes are kept as :class:`~pbrl.segments.Trajectory` (true rewards, ``success``,
    ``qpos``/``qvel`` when the env reports them, and the reward factors: the entries of
    :data:`~pbrl.segments.FACTOR_KEYS` the env reports in ``info`` at every step of the episode) in
    ``self.episodes`` (the last ``max_episodes``).

    Args:
        venv: an SB3 VecEnv with a ``Box`` observation and action space.
        reward_model: object with ``predict(obs, act)``.
        max_episodes: how many complete episodes to keep (default 100).
        record_states: record ``qpos``/``qvel`` from ``info`` (for rendering clips; default True).
        entropy: the :class:`StateEntropyReward` used by the ``"entropy"`` mode.
    """

    MODES = ("model", "entropy", "true", "none")

    def __init__(
        self,
        venv: VecEnv,
        reward_model: Any = None,
        max_episodes: int = 100,
        record_states: bool = True,
        entropy: StateEntropyReward | None = None,
    ):
        if not isinstance(venv, VecEnv):
            raise TypeError(f"LearnedRewardVecEnv wraps an SB3 VecEnv, got {type(venv).__name__}")
        if not isinstance(venv.observation_space, spaces.Box) or not isinstance(venv.action_space, spaces.Box):
            raise TypeError("LearnedRewardVecEnv needs Box observation and action spaces (continuous control)")
        if reward_model is None:
            raise ValueError("give reward_model= (an object with predict(obs, act), e.g. a RewardEnsemble)")
        if not hasattr(reward_model, "predict"):
            raise TypeError("reward_model must have predict(obs, act) -> rewards")
        if max_episodes < 1:
            raise ValueError(f"max_episodes must be >= 1, got {max_episodes}")
        super().__init__(venv)
        self.reward_model = reward_model
        self.mode = "model"
        self.max_episodes = int(max_episodes)
        self.record_states = bool(record_states)
        self.entropy = entropy or StateEntropyReward(k=5, max_ref=10000, ref_includes_query=False)
        self._ent_store = np.zeros((self.entropy.max_ref, self.observation_space.shape[0]), np.float32)
        self._ent_n = 0
        self._ent_pos = 0
        self.episodes: deque[Trajectory] = deque(maxlen=self.max_episodes)
        self.n_episodes = 0
        self.total_steps = 0
        self._obs: np.ndarray | None = None
        self._actions: np.ndarray | None = None
        self._state_info: list[dict | None] = [None] * self.num_envs
        self._cur = [self._new_record() for _ in range(self.num_envs)]

    @staticmethod
    def _new_record() -> dict[str, list]:
        return {k: [] for k in ("obs", "act", "reward", "success", "qpos", "qvel", "factors")}

    def set_mode(self, mode: str) -> None:
        """Switch the reward source: ``"model"``, ``"entropy"`` or ``"true"``."""
        if mode not in self.MODES:
            raise ValueError(f"unknown reward mode {mode!r}; choose one of {self.MODES}")
        self.mode = mode

    def predict_reward(self, obs: np.ndarray, act: np.ndarray) -> np.ndarray:
        """The learned reward ``[N]`` of ``obs [N, obs_dim]``, ``act [N, act_dim]`` (batched; the model's
        lean ``predict_step`` when it has one)."""
        fn = getattr(self.reward_model, "predict_step", None) or self.reward_model.predict
        return np.asarray(fn(obs, act), dtype=np.float32).reshape(len(obs))

    # ------------------------------------------------------------------ VecEnv API
    def reset(self):
        obs = self.venv.reset()
        self._obs = np.asarray(obs, dtype=np.float32).copy()
        self._cur = [self._new_record() for _ in range(self.num_envs)]
        infos = getattr(self.venv, "reset_infos", None) or [{} for _ in range(self.num_envs)]
        self._state_info = [dict(i) if "qpos" in i else None for i in infos]
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = np.asarray(actions, dtype=np.float32).reshape(self.num_envs, -1).copy()
        self.venv.step_async(actions)

    def _entropy_reward(self, next_obs: np.ndarray) -> np.ndarray:
        if self._ent_n < self.entropy.k:
            r = np.zeros(len(next_obs), np.float32)
        else:
            r = self.entropy(next_obs, self._ent_store[: self._ent_n])
        for o in next_obs:  # FIFO store of visited states
            self._ent_store[self._ent_pos] = o
            self._ent_pos = (self._ent_pos + 1) % len(self._ent_store)
            self._ent_n = min(self._ent_n + 1, len(self._ent_store))
        return r

    def step_wait(self):
        obs, true_rew, dones, infos = self.venv.step_wait()
        if self._obs is None or self._actions is None:
            raise RuntimeError("call reset() before stepping the LearnedRewardVecEnv")
        prev_obs, acts = self._obs, self._actions
        true_rew = np.asarray(true_rew, dtype=np.float32)
        # the state reached by each env's action (the terminal observation when the env auto-reset)
        next_obs = np.asarray(obs, dtype=np.float32).copy()
        for i in range(self.num_envs):
            if dones[i] and "terminal_observation" in infos[i]:
                next_obs[i] = infos[i]["terminal_observation"]
        if self.mode == "model":
            rew = self.predict_reward(prev_obs, acts)
        elif self.mode == "entropy":
            rew = self._entropy_reward(next_obs)
        elif self.mode == "true":
            rew = true_rew.copy()
        else:
            rew = np.zeros(self.num_envs, np.float32)
        reset_infos = getattr(self.venv, "reset_infos", None)
        for i in range(self.num_envs):
            infos[i]["true_reward"] = float(true_rew[i])
            infos[i].setdefault("success", False)
            rec = self._cur[i]
            rec["obs"].append(prev_obs[i])
            rec["act"].append(acts[i])
            rec["reward"].append(true_rew[i])
            rec["success"].append(bool(infos[i].get("success", False)))
            rec.setdefault("factors", []).append({k: float(infos[i][k]) for k in FACTOR_KEYS if k in infos[i]})
            if self.record_states:
                st = self._state_info[i]
                if st is not None:
                    rec["qpos"].append(st["qpos"])
                    rec["qvel"].append(st["qvel"])
            self._state_info[i] = infos[i] if "qpos" in infos[i] else None
            if dones[i]:
                self._finish_episode(i, next_obs[i], infos[i])
                if reset_infos is not None and i < len(reset_infos) and "qpos" in reset_infos[i]:
                    self._state_info[i] = dict(reset_infos[i])
                else:
                    self._state_info[i] = None
        self.total_steps += self.num_envs
        self._obs = np.asarray(obs, dtype=np.float32).copy()
        return obs, rew.astype(np.float32), dones, infos

    def _finish_episode(self, i: int, last_obs: np.ndarray, info: dict) -> None:
        rec = self._cur[i]
        self._cur[i] = self._new_record()
        n = len(rec["obs"])
        has_state = self.record_states and len(rec["qpos"]) == n and n > 0
        fac = rec.get("factors") or []
        names = [k for k in FACTOR_KEYS if fac and all(k in f for f in fac)] if len(fac) == n else []
        traj = Trajectory(
            obs=np.asarray(rec["obs"]),
            act=np.asarray(rec["act"]),
            reward=np.asarray(rec["reward"]),
            success=np.asarray(rec["success"]),
            qpos=np.asarray(rec["qpos"]) if has_state else None,
            qvel=np.asarray(rec["qvel"]) if has_state else None,
            next_obs=np.asarray(last_obs),
            terminated=not bool(info.get("TimeLimit.truncated", False)),
            factors={k: np.array([f[k] for f in fac], np.float32) for k in names} if names else None,
        )
        self.episodes.append(traj)
        self.n_episodes += 1

    def recent_returns(self, n: int = 10) -> list[float]:
        """True returns of the last ``n`` complete episodes."""
        return [t.ret for t in list(self.episodes)[-n:]]

    # ------------------------------------------------------------------ checkpoints
    def get_state(self) -> dict[str, Any]:
        """Recorded episodes, the episode in progress, the entropy store and statistics."""
        return {
            "episodes": list(self.episodes),
            "current": [{k: list(v) for k, v in r.items()} for r in self._cur],
            "n_episodes": self.n_episodes,
            "total_steps": self.total_steps,
            "mode": self.mode,
            "entropy_stats": self.entropy.get_state(),
            "ent_store": self._ent_store[: self._ent_n].copy(),
            "ent_pos": self._ent_pos,
            "last_obs": None if self._obs is None else self._obs.copy(),
            "state_info": [None if i is None else {k: i[k] for k in ("qpos", "qvel") if k in i} for i in self._state_info],
        }

    def set_state(self, state: dict[str, Any]) -> None:
        """Restore :meth:`get_state`."""
        self.episodes = deque(state["episodes"], maxlen=self.max_episodes)
        if len(state["current"]) == self.num_envs:
            self._cur = [{k: list(v) for k, v in r.items()} for r in state["current"]]
        self.n_episodes = int(state["n_episodes"])
        self.total_steps = int(state["total_steps"])
        self.set_mode(state["mode"])
        self.entropy.set_state(state["entropy_stats"])
        store = np.asarray(state["ent_store"], np.float32)
        self._ent_n = min(len(store), len(self._ent_store))
        self._ent_store[: self._ent_n] = store[: self._ent_n]
        self._ent_pos = int(state["ent_pos"]) % len(self._ent_store)
        if state.get("last_obs") is not None:
            self._obs = np.asarray(state["last_obs"], np.float32).copy()
        if state.get("state_info") is not None and len(state["state_info"]) == self.num_envs:
            self._state_info = list(state["state_info"])


def find_wrapper(env: Any) -> LearnedRewardVecEnv | None:
    """The :class:`LearnedRewardVecEnv` in a chain of VecEnv wrappers, or ``None``."""
    while env is not None:
        if isinstance(env, LearnedRewardVecEnv):
            return env
        env = getattr(env, "venv", None)
    return None
