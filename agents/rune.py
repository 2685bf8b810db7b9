"""RUNE: reward-uncertainty exploration, on top of PEBBLE.

Liang, Shu, Lee & Abbeel, "Reward Uncertainty for Exploration in Preference-based Reinforcement
Learning", ICLR 2022.

The policy maximises ``r_total(s, a) = r_hat(s, a) + beta_t * r_int(s, a)`` (Eq. 4), where ``r_hat`` is the
ensemble's mean reward, ``r_int(s, a) = std`` of the ensemble members' rewards (Eq. 3) and
``beta_t = beta_0 * (1 - rho)^t`` decays with the env step ``t`` (Eq. 5). The bonus is added to each SAC batch
at sample time (the stored rewards are PEBBLE's relabelled ``r_hat``), with ``t`` = the current env step.
During PEBBLE's pre-training the intrinsic reward is PEBBLE's state entropy; the bonus starts with the
first reward update. What makes RUNE is :meth:`RUNE._sample_reward_fn`; everything else is PEBBLE's.
"""

from __future__ import annotations

import numpy as np

from pbrl.agents.pebble import PEBBLE
from pbrl.online import unscale_action

__all__ = ["RUNE"]


class RUNE(PEBBLE):
    """PEBBLE + RUNE's exploration bonus ``beta_t * std`` (see the module docstring).

    Extra args:
        beta_0: initial bonus weight (default 0.05, the paper's value).
        decay: rho, the per-step decay rate (default 1e-5, the paper's Meta-World setting).

    Every other argument and default as :class:`PEBBLE`.
    """

    def __init__(self, *args, beta_0: float = 0.05, decay: float = 1e-5, **kwargs):
        if not (np.isfinite(beta_0) and beta_0 >= 0):
            raise ValueError(f"beta_0 must be a finite number >= 0, got {beta_0}")
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"decay must be in [0, 1), got {decay}")
        self.beta_0 = float(beta_0)
        self.decay = float(decay)
        super().__init__(*args, **kwargs)

    def beta(self, t: int | None = None) -> float:
        """``beta_t = beta_0 * (1 - decay)^t``, at the model's current step when ``t`` is None."""
        t = self.model.num_timesteps if t is None else t
        return self.beta_0 * (1.0 - self.decay) ** float(t)

    def _sample_reward_fn(self):
        rm = self.reward_model
        space = self.model.action_space

        def bonus(obs, act, next_obs, reward):
            # the buffer holds SB3-scaled actions; the reward model reads the env's actions
            std = rm.std(obs, unscale_action(act, space))
            return reward + self.beta() * np.asarray(std, dtype=np.float32).reshape(-1)

        return bonus
