"""PrefPPO: on-policy preference-based RL (PPO on a learned reward), as B-Pref runs it.

Christiano, Leike, Brown, Martic, Legg & Amodei, "Deep reinforcement learning from human preferences",
NeurIPS 2017 (the reward model, Eq. 1), with PPO (Schulman et al. 2017) as the learner, in the form
benchmarked by B-Pref (Lee, Smith, Dragan & Abbeel, "B-Pref: Benchmarking Preference-Based
Reinforcement Learning", NeurIPS Datasets & Benchmarks 2021; its ``train_PrefPPO.py`` and Meta-World
scripts), including the unsupervised pre-training on PEBBLE's state-entropy reward (Lee et al. ICML 2021,
Eq. 9).

What B-Pref's PrefPPO is, and pbrl's defaults (``docs/hyperparameters.md`` has the table):

* 16 parallel envs x 250 steps per rollout (Meta-World), PPO lr 3e-4, minibatch 128, 20 epochs, GAE
  lambda 0.92, no entropy bonus, separate 3 x 256 policy and value networks;
* gSDE exploration (``use_sde=True``, new noise matrix every 4 steps);
* a clip range annealed linearly from 0.4 to 0 over training (:class:`LinearSchedule`);
* observations normalised by a running mean / std (SB3's ``VecNormalize``, rewards not normalised),
  between the reward wrapper (which, like the teacher, reads raw observations) and PPO;
* 32000 steps of state-entropy pre-training before the first feedback session.

SB3 computes PPO's returns and advantages before ``on_rollout_end``, so PPO gets the learned reward at step
time through :class:`~pbrl.online.LearnedRewardVecEnv` (no relabelling; a new reward model acts from the
next step on). During ``unsup_steps`` the wrapper gives the state-entropy reward of each next state against
a FIFO store of the last 10000 visited states, normalised by its running std.

A CPU-sized variant (one env, 2 x 64 networks, 10 epochs) is the named preset :data:`PPO_CPU_PRESET`,
``PrefPPO(..., **PPO_CPU_PRESET)``; it is not B-Pref's PrefPPO and is labelled as such where used.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from stable_baselines3 import PPO
from stable_baselines3.common.vec_env import VecEnv, VecNormalize

from pbrl.agents.online_base import OnlinePrefAgent
from pbrl.online import LearnedRewardVecEnv

__all__ = ["PrefPPO", "PPO_DEFAULTS", "PPO_CPU_PRESET", "LinearSchedule"]


class LinearSchedule:
    """``f(progress_remaining) = initial * progress_remaining``: SB3's schedule form, from ``initial`` to 0
    over training (B-Pref's clip-range schedule). A class, not a closure, so that SB3 can pickle it."""

    def __init__(self, initial: float):
        self.initial = float(initial)

    def __call__(self, progress_remaining: float) -> float:
        return self.initial * float(progress_remaining)

    def __repr__(self) -> str:
        return f"LinearSchedule({self.initial})"


#: B-Pref's PrefPPO on Meta-World (``train_PrefPPO.py`` and its scripts): 250 steps per env per rollout (with
#: 16 envs, the agent's ``n_envs`` default), lr 3e-4, minibatch 128, 20 epochs, GAE lambda 0.92, clip range
#: annealed from 0.4, no entropy bonus, gSDE with a new noise matrix every 4 steps, separate 3 x 256 networks.
PPO_DEFAULTS: dict[str, Any] = {
    "learning_rate": 3e-4,
    "n_steps": 250,
    "batch_size": 128,
    "n_epochs": 20,
    "gamma": 0.99,
    "gae_lambda": 0.92,
    "clip_range": LinearSchedule(0.4),
    "ent_coef": 0.0,
    "use_sde": True,
    "sde_sample_freq": 4,
    "policy_kwargs": {"net_arch": {"pi": [256, 256, 256], "vf": [256, 256, 256]}},
}

#: A CPU-sized PrefPPO (not B-Pref's): one env x 2048 steps, 10 epochs, 2 x 64 networks; pass as keywords.
PPO_CPU_PRESET: dict[str, Any] = {
    "n_envs": 1,
    "learner_kwargs": {
        "n_steps": 2048,
        "n_epochs": 10,
        "policy_kwargs": {"net_arch": {"pi": [64, 64], "vf": [64, 64]}},
    },
}


class PrefPPO(OnlinePrefAgent):
    """PPO on the learned reward, with B-Pref's settings (see the module docstring).

    ``PrefPPO(task_id_or_env, teacher, total_feedback, feedback_per_session, feedback_every, segment_length=50,
    selector="disagreement", seed=0, learner_kwargs=None, reward_model_kwargs=None, unsup_steps=32000,
    n_envs=16, normalize_obs=True, ...)``.

    Args (beyond :class:`~pbrl.agents.online_base.OnlinePrefAgent`'s):
        n_envs: parallel envs when built from a task id (default 16, B-Pref's Meta-World setting).
        normalize_obs: running observation normalisation for PPO (default True, B-Pref's ``--normalize 1``).
    """

    learner_cls = PPO
    default_learner_kwargs = PPO_DEFAULTS
    default_unsup_steps = 32000

    def __init__(self, *args, n_envs: int = 16, normalize_obs: bool = True, **kwargs):
        self.normalize_obs = bool(normalize_obs)
        super().__init__(*args, n_envs=n_envs, **kwargs)

    def _learner_env(self, env: LearnedRewardVecEnv) -> VecEnv:
        if not self.normalize_obs:
            return env
        return VecNormalize(env, norm_obs=True, norm_reward=False)

    def _setup(self) -> None:
        self.entropy = self.env.entropy
        if self.unsup_steps <= 0:
            self._set_learned_reward()
        else:
            self.env.set_mode("entropy")

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        """The observation normaliser's running statistics (SB3 does not save them in ``model.zip``)."""
        vn = self.model.get_vec_normalize_env()
        if vn is None:
            return {}
        rms = vn.obs_rms
        return {"obs_rms": {"mean": rms.mean.copy(), "var": rms.var.copy(), "count": float(rms.count)}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`."""
        vn = self.model.get_vec_normalize_env()
        if vn is None or not state or "obs_rms" not in state:
            return
        s = state["obs_rms"]
        vn.obs_rms.mean = np.asarray(s["mean"], np.float64).copy()
        vn.obs_rms.var = np.asarray(s["var"], np.float64).copy()
        vn.obs_rms.count = float(s["count"])
