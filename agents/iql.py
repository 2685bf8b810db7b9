"""Implicit Q-Learning (IQL), the offline backbone shared by MRIQL, IPL and PEARL.

Kostrikov, Nair & Levine, "Offline Reinforcement Learning with Implicit Q-Learning", ICLR 2022.
Three losses, each a small function below (``Q_hat`` is the Polyak-averaged target critic, the minimum of
its two heads):

* Eq. (5) value:  ``L_V(psi) = E_{(s,a)~D} [ L_2^tau( Q_hat(s,a) - V_psi(s) ) ]``,
  ``L_2^tau(u) = |tau - 1(u < 0)| u^2``                                    -> :func:`iql_value_loss`
* Eq. (6) critic: ``L_Q(theta) = E_{(s,a,s')~D} [ (r(s,a) + gamma V_psi(s') - Q_theta(s,a))^2 ]``
  for each of the twin heads                                                 -> :func:`iql_q_loss`
* Eq. (7) policy: ``L_pi(phi) = -E_{(s,a)~D} [ exp(beta (Q_hat(s,a) - V_psi(s))) log pi_phi(a|s) ]``
  (advantage-weighted regression, weights clipped at 100)                   -> :func:`awr_policy_loss`

Hyperparameters from the paper (Appendix B): expectile ``tau = 0.7`` and temperature ``beta = 3.0`` for
MuJoCo locomotion (0.9 / 10.0 on AntMaze, 0.7 / 0.5 on Kitchen and Adroit), Polyak rate 0.005,
discount 0.99, two hidden layers of 256 units for every network, Adam with lr 3e-4, batch 256, rewards
of locomotion datasets scaled by ``1000 / (max episode return - min episode return)``.

Agents in this file:

* :class:`IQL`: IQL on the dataset's own (true) reward; the offline benchmark's upper bound.
* :class:`MRIQL`: "MR + IQL" (the preference-transformer paper's Markovian-reward baseline): a
  :class:`pbrl.reward_models.RewardEnsemble` is fitted to the preferences (or, RbRL, to ratings of single
  segments with the rating loss), relabels every transition of the dataset with its mean prediction, then
  IQL trains on the relabelled data.

Subclasses customise :meth:`IQL._training_rewards` (where rewards come from) or replace the critic step
(:class:`pbrl.agents.ipl.IPL`); the value and policy steps are shared, not copied.
"""

from __future__ import annotations

import copy
import inspect
from typing import Any

import numpy as np
import torch

from pbrl.agents.hprior import HindsightPriorLoss
from pbrl.agents.networks import GaussianPolicy, TwinQ, ValueNet, expectile_loss, soft_update
from pbrl.agents.offline_base import OfflineAgent
from pbrl.preferences import PreferenceDataset
from pbrl.ratings import RatingDataset
from pbrl.reward_models import RewardEnsemble
from pbrl.reward_models.ensemble import ENSEMBLE_NORMALIZATIONS, combine_member_rewards
from pbrl.reward_models.training import BradleyTerryLoss
from pbrl.reward_models.transformer import PreferenceTransformer

__all__ = ["IQL", "MRIQL", "iql_value_loss", "iql_q_loss", "awr_policy_loss", "normalize_rewards", "IQL_RETURN_SCALE", "REWARD_NORMALIZATIONS", "REWARD_MODELS",
           "REWARD_PRIORS", "HINDSIGHT_CPU_PRESET"]

#: the ``reward_normalization`` values (see :func:`normalize_rewards`)
REWARD_NORMALIZATIONS = ("none", "episode_range", "standard", "minmax")
#: MR+IQL's ``reward_prior`` values: none, or Hindsight PRIOR's world-model credit-assignment prior
REWARD_PRIORS = ("none", "hindsight")
#: a named CPU preset of MR+IQL + Hindsight PRIOR (never the default): a 64-wide, 2-layer world model
#: pre-trained 1500 steps (the port: 256 wide, 3 layers, 10000 steps)
HINDSIGHT_CPU_PRESET: dict[str, Any] = {
    "reward_prior": "hindsight", "world_pretrain_steps": 1500,
    "world_kwargs": {"embed_dim": 64, "n_layers": 2, "n_heads": 1, "dropout": 0.1},
}


# ---------------------------------------------------------------------------------------------- losses


def iql_value_loss(q_target: torch.Tensor, v: torch.Tensor, expectile: float, reduction: str = "mean") -> torch.Tensor:
    """IQL value loss, Kostrikov et al. 2022, Eq. (5): ``mean |tau - 1(u<0)| u^2`` with ``u = Q_hat(s,a) - V(s)``.

    Args:
        q_target: ``[B]`` target critic ``min_i Q_hat_i(s, a)`` (no gradient).
        v: ``[B]`` ``V_psi(s)``.
        expectile: ``tau`` in (0, 1); 0.5 gives the mean-squared error, larger values approach the max.
        reduction: ``"mean"`` (scalar) or ``"none"`` (``[B]``).
    """
    return expectile_loss(q_target - v, expectile, reduction)


def iql_q_loss(q: torch.Tensor, reward: torch.Tensor, done: torch.Tensor, next_v: torch.Tensor, gamma: float) -> torch.Tensor:
    """IQL critic loss, Kostrikov et al. 2022, Eq. (6), summed over the twin heads.

    ``sum_i mean_B (r + gamma (1 - done) V(s') - Q_i(s, a))^2``.

    Args:
        q: ``[2, B]`` both heads ``Q_theta_i(s, a)``.
        reward, done, next_v: ``[B]`` reward, terminal flag (1.0 = no bootstrap), ``V_psi(s')`` (no gradient).
        gamma: discount.
    """
    target = reward + gamma * (1.0 - done) * next_v
    return (q - target.unsqueeze(0)).pow(2).mean(dim=1).sum()


def awr_policy_loss(
    log_prob: torch.Tensor, advantage: torch.Tensor, beta: float, max_weight: float = 100.0, reduction: str = "mean"
) -> torch.Tensor:
    """Advantage-weighted policy extraction, Kostrikov et al. 2022, Eq. (7).

    ``-mean_B [ min(exp(beta * A(s, a)), max_weight) * log pi(a|s) ]`` with ``A = Q_hat(s,a) - V(s)``.

    Args:
        log_prob: ``[B]`` ``log pi_phi(a|s)`` of dataset actions.
        advantage: ``[B]`` advantages (no gradient).
        beta: inverse temperature (3.0 on locomotion).
        max_weight: clip of the exponentiated advantage (100 in the paper's code).
        reduction: ``"mean"`` (scalar) or ``"none"`` (``[B]``).
    """
    loss = -torch.exp(beta * advantage).clamp(max=max_weight).detach() * log_prob
    return loss.mean() if reduction == "mean" else loss


#: reward models MRIQL can learn (``MRIQL(reward_model=...)``)
REWARD_MODELS = ("ensemble", "transformer")


#: IQL's locomotion reward scale: rewards times ``IQL_RETURN_SCALE / (max R - min R)`` (Kostrikov et al. 2022,
#: App. B; the authors' ``train_offline.py`` multiplies by 1000.0 after dividing by the return range)
IQL_RETURN_SCALE = 1000.0


def normalize_rewards(rewards: np.ndarray, episode_returns: np.ndarray | None, mode: str) -> np.ndarray:
    """Rescale rewards ``[T]`` before Q-learning.

    ``"episode_range"`` (IQL's locomotion recipe, Kostrikov et al. 2022, App. B, and the authors'
    ``train_offline.py``): ``r * 1000 / (max R - min R)`` over the dataset's episode returns
    ``episode_returns`` (every piece between ``terminals | timeouts``, as their ``split_into_trajectories``
    cuts), whatever the episodes' length. Falls back to ``"standard"`` with fewer than two episodes or a
    zero range. ``"standard"``: ``(r - mean) / std``; ``"minmax"``: to ``[0, 1]``; ``"none"``: unchanged.
    """
    if mode not in REWARD_NORMALIZATIONS:
        raise ValueError(f"unknown reward normalization '{mode}'; choose one of {REWARD_NORMALIZATIONS}")
    r = np.asarray(rewards, dtype=np.float64)
    if mode == "none":
        return r.astype(np.float32)
    if mode == "episode_range" and episode_returns is not None and len(episode_returns) >= 2:
        span = float(np.max(episode_returns) - np.min(episode_returns))
        if span > 1e-8:
            return (r * IQL_RETURN_SCALE / span).astype(np.float32)
        mode = "standard"
    elif mode == "episode_range":
        mode = "standard"
    if mode == "standard":
        return ((r - r.mean()) / (r.std() + 1e-8)).astype(np.float32)
    lo, hi = r.min(), r.max()
    return ((r - lo) / max(hi - lo, 1e-8)).astype(np.float32)


def episode_returns_of(dataset: Any, rewards: np.ndarray) -> np.ndarray:
    """Per-episode sums ``[E]`` of per-step ``rewards [T]`` over the dataset's episodes."""
    starts, ends = dataset.episode_bounds
    c = np.concatenate([[0.0], np.cumsum(np.asarray(rewards, dtype=np.float64))])
    return c[ends + 1] - c[starts]


# ---------------------------------------------------------------------------------------------- agents


class IQL(OfflineAgent):
    """Implicit Q-Learning on the dataset's reward (Kostrikov et al., ICLR 2022; losses Eq. 5-7).

    With the dataset's true reward this is the offline benchmark's upper bound; subclasses change where
    the reward comes from (:class:`MRIQL`, :class:`pbrl.agents.pearl.PEARL`) or the critic loss
    (:class:`pbrl.agents.ipl.IPL`).

    Args:
        obs_dim, act_dim: sizes.
        expectile: ``tau`` of the value loss (default 0.7, locomotion; 0.9 on AntMaze).
        beta: inverse temperature of the policy extraction (default 3.0, locomotion).
        tau: Polyak rate of the target critic (default 0.005).
        max_weight: clip of ``exp(beta * A)`` (default 100).
        reward_normalization: ``"episode_range"`` (default, IQL's ``1000 / (max R - min R)``, see
            :func:`normalize_rewards`), ``"standard"``, ``"minmax"`` or ``"none"``.
        dropout: policy dropout (default 0).
        **common: :class:`OfflineAgent` arguments (``hidden=(256, 256)``, ``lr=3e-4``, ``batch_size=256``,
            ``gamma=0.99``, ``normalize_obs``, ``action_low/high``, ``seed``, ``device``).
    """

    requires_preferences = False

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        expectile: float = 0.7,
        beta: float = 3.0,
        tau: float = 0.005,
        max_weight: float = 100.0,
        reward_normalization: str = "episode_range",
        dropout: float = 0.0,
        **common: Any,
    ):
        if not 0.0 < expectile < 1.0:
            raise ValueError(f"expectile must be in (0, 1), got {expectile}")
        if not beta >= 0:
            raise ValueError(f"beta must be >= 0, got {beta}")
        if not 0.0 < tau <= 1.0:
            raise ValueError(f"tau (Polyak rate) must be in (0, 1], got {tau}")
        if reward_normalization not in REWARD_NORMALIZATIONS:
            raise ValueError(f"unknown reward_normalization '{reward_normalization}'; choose one of {REWARD_NORMALIZATIONS}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.expectile, self.beta, self.tau = float(expectile), float(beta), float(tau)
        self.max_weight, self.reward_normalization, self.dropout = float(max_weight), reward_normalization, float(dropout)
        self._register_config(
            expectile=self.expectile,
            beta=self.beta,
            tau=self.tau,
            max_weight=self.max_weight,
            reward_normalization=reward_normalization,
            dropout=self.dropout,
        )
        super().__init__(obs_dim, act_dim, **common)

    # ------------------------------------------------------------------ networks
    def _build(self) -> None:
        q = TwinQ(self.obs_dim, self.act_dim, self.hidden)
        self.nets = {
            "q": q,
            "q_target": copy.deepcopy(q).requires_grad_(False),
            "v": ValueNet(self.obs_dim, self.hidden),
            "policy": GaussianPolicy(self.obs_dim, self.act_dim, self.hidden, dropout=self.dropout),
        }
        self.optims = {
            name: torch.optim.Adam(self.nets[name].parameters(), lr=self.lr) for name in ("q", "v", "policy")
        }

    # ------------------------------------------------------------------ data
    def _training_rewards(self, dataset: Any, preferences: PreferenceDataset | None) -> np.ndarray:
        """Per-step rewards ``[T]`` aligned with the dataset's flat arrays, before normalisation.

        IQL: the dataset's own (true) reward."""
        return np.asarray(dataset.rewards, dtype=np.float32)

    def _prepare(self, dataset: Any, preferences: PreferenceDataset | None) -> None:
        raw = self._training_rewards(dataset, preferences)
        ep_ret = episode_returns_of(dataset, raw)
        self.data = self.transitions_from(dataset, normalize_rewards(raw, ep_ret, self.reward_normalization))

    # ------------------------------------------------------------------ updates
    def _value_step(self, obs: torch.Tensor, act: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Eq. (5) on a batch; returns the loss and ``Q_hat(s, a)`` (for the policy step)."""
        with torch.no_grad():
            q_hat = self.nets["q_target"].min(obs, act)
        loss = self._step("v", lambda: iql_value_loss(q_hat, self.nets["v"](obs), self.expectile))
        return loss, q_hat

    def _policy_step(self, obs: torch.Tensor, act: torch.Tensor, q_hat: torch.Tensor) -> torch.Tensor:
        """Eq. (7) on a batch, advantages from the target critic and the current value net."""
        with torch.no_grad():
            adv = q_hat - self.nets["v"](obs)
        return self._step("policy", lambda: awr_policy_loss(self.nets["policy"].log_prob(obs, act), adv, self.beta,
                                                             self.max_weight))

    def _critic_step(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Eq. (6) on a batch of transitions."""
        with torch.no_grad():
            next_v = self.nets["v"](batch["next_observations"])

        def loss() -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
            q = self.nets["q"](batch["observations"], batch["actions"])
            return iql_q_loss(q, batch["rewards"], batch["dones"], next_v, self.gamma), {"q_mean": q.mean()}

        q_loss, logs = self._step("q", loss)
        return {"q_loss": q_loss, **logs}

    def _update_on(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        obs, act = batch["observations"], batch["actions"]
        v_loss, q_hat = self._value_step(obs, act)
        info = self._critic_step(batch)
        info["v_loss"] = v_loss
        info["policy_loss"] = self._policy_step(obs, act, q_hat)
        soft_update(self.nets["q_target"], self.nets["q"], self.tau)
        return info


_PRIOR_ARGS = ("reward_prior", "reward_model", "prior_weight", "world_pretrain_steps", "world_batch_size", "world_lr",
               "world_kwargs")


def _prior_term(reward_prior: str, reward_model: str, prior_weight: float, world_pretrain_steps: int,
                world_batch_size: int, world_lr: float, world_kwargs: dict | None, seed: int = 0) -> HindsightPriorLoss | None:
    """MR+IQL's Hindsight PRIOR term (None for ``reward_prior="none"``); one clear error for a bad setting
    (every setting is checked, also with ``"none"``)."""
    if reward_prior not in REWARD_PRIORS:
        raise ValueError(f"unknown reward_prior '{reward_prior}'; choose one of {REWARD_PRIORS}")
    if reward_prior != "none" and reward_model != "ensemble":
        raise ValueError(f"reward_prior='{reward_prior}' shapes the ensemble's reward fit; use reward_model='ensemble'")
    if world_kwargs is not None and not isinstance(world_kwargs, dict):
        raise ValueError(f"world_kwargs must be a mapping of WorldModel sizes, got {type(world_kwargs).__name__}")
    # checks lambda and the world model's settings; offline the world model trains once (no later updates)
    prior = HindsightPriorLoss(prior_weight, world_pretrain_steps, 0, world_batch_size, world_lr, world_kwargs, seed=seed)
    return prior if reward_prior == "hindsight" else None


def _check_prior_windows(segment_length: int, longest_episode: int) -> None:
    """The world model trains on ``segment_length``-step windows: some episode must be longer."""
    if longest_episode <= segment_length:
        raise ValueError(f"reward_prior='hindsight' pre-trains its world model on {segment_length}-step windows of the "
                         f"dataset's episodes, but the longest episode has {longest_episode} steps; label shorter "
                         f"segments (segment_length < {longest_episode}) or use reward_prior='none'")


class MRIQL(IQL):
    """MR + IQL (or PT + IQL): a reward model learned from the preferences relabels the dataset, then IQL
    (Kostrikov et al. 2022, Eq. 5-7) trains on the learned reward.

    ``reward_model="ensemble"`` (default) is the preference-transformer paper's MR baseline (Kim et al.,
    ICLR 2023), as in PEBBLE: a :class:`~pbrl.reward_models.RewardEnsemble` of MLPs, Bradley-Terry
    cross-entropy over segment sums; its mean prediction is the reward. ``reward_model="transformer"`` is
    that paper's PT + IQL: a :class:`~pbrl.reward_models.transformer.PreferenceTransformer`, and every step is
    relabelled with the per-step reward PT predicts at the last position of the window of
    ``context_length`` steps ending at it (:meth:`PreferenceTransformer.relabel`, the authors' relabelling).

    With a :class:`~pbrl.ratings.RatingDataset` instead of preferences the ensemble is fitted with the RbRL
    rating loss (White et al., AAAI 2024; :class:`~pbrl.reward_models.RatingLoss`), the rest unchanged: MR +
    IQL with ratings.

    Args:
        reward_model: ``"ensemble"`` (default) or ``"transformer"`` (pairs only).
        reward_model_kwargs: passed to the model's constructor with ``seed=seed``: ``RewardEnsemble(obs_dim,
            act_dim, **kw)`` (defaults: 3 members, 256 x 3, tanh output) or ``PreferenceTransformer(obs_dim,
            act_dim, **kw)`` (defaults: ``size="small"``; ``size="paper"`` for the paper's sizes).
        reward_epochs: epochs of the reward model's ``fit``; None (default) is the model's own: 300 for the
            ensemble, the size's for the transformer (100 ``"small"``, 10,000 ``"paper"``). Training stops
            early at 97 % (ensemble) or 99 % (transformer) training accuracy.
        reward_batch_size: pairs per reward-model minibatch; None (default): 128 for the ensemble, the
            size's for the transformer (64 ``"small"``, 256 ``"paper"``).
        reward_normalization: how the learned rewards are rescaled before IQL (default ``"minmax"``, to
            ``[0, 1]``; see :func:`normalize_rewards`). A learned reward has no meaningful sign, and on data
            with terminal states a negative per-step reward makes ending the episode early look good to the
            critic (the survival-instinct bias of offline RL, Li et al., NeurIPS 2023). Shifting every
            reward to be non-negative removes that bias; on data without terminals the shift changes no
            advantage. Measured on Hopper medium-replay (500 oracle pairs, 1,500 updates, seeds 0 and 1):
            ``"episode_range"`` (IQL's true-reward recipe) scored -1.3 and 0.0 (normalised), ``"minmax"``
            34.2 and 34.2.
        ensemble_normalization: how the ensemble's members are merged into one reward, before
            ``reward_normalization``: ``"none"`` (default, the plain mean, PEBBLE's and the MR baseline's) or
            ``"zscore"`` (DTR's ensemble normalisation, Tu et al. AAAI 2025: each member standardised over
            the dataset, then averaged; :func:`pbrl.reward_models.combine_member_rewards`). The ensemble
            only (``reward_model="ensemble"``).
        reward_prior: ``"none"`` (default) or ``"hindsight"``: Hindsight PRIOR (Verma & Metcalf, ICLR 2024,
            Sec. 4, Eq. 3), the ensemble only and preference pairs only. Before the reward fit a world model
            (:class:`~pbrl.agents.hprior.WorldModel`, a causal transformer over ``(s, a)`` tokens predicting
            the next state) is pre-trained on windows of the dataset's episodes as long as the preference
            segments; each step's importance ``alpha_t`` is the attention its last token pays to ``s_t`` and
            ``a_t``, averaged over layers; the reward objective becomes
            ``L_BT + lambda * mean_t (r_hat_t - alpha_t * sum_k r_hat_k)^2`` per member
            (:class:`~pbrl.agents.hprior.HindsightPriorLoss`, the same term as the online agent ``hprior``).
        prior_weight: lambda of Eq. 3 (default 1000, WiseRL's offline port); 0 leaves the reward exactly
            plain MR+IQL's. Used with ``reward_prior="hindsight"``.
        world_pretrain_steps: world-model Adam steps before the reward fit (default 10000, the port's).
        world_batch_size: windows per world-model step (default 16).
        world_lr: world-model learning rate (default 3e-4).
        world_kwargs: :class:`~pbrl.agents.hprior.WorldModel` sizes (default embedding 256, 3 layers, 1 head,
            dropout 0.1, the port's); :data:`HINDSIGHT_CPU_PRESET` is a named smaller preset.
        **iql: :class:`IQL` arguments (``expectile=0.7``, ``beta=3.0``, ...).

    The world model is not saved with the agent: it only shapes the reward fit, whose result (the reward
    model) is saved. It is deterministic from the seed, so a loaded agent that refits (``reward_fitted =
    False``) rebuilds exactly the same world model.

    Attributes:
        reward_model: the fitted ensemble (saved with the agent).
        reward_fit_info: what ``RewardEnsemble.fit`` returned.
        reward_fitted: True once the reward model has been fitted; later ``fit`` calls (and a loaded agent)
            continue IQL on the same learned reward. Set it to False to refit on new preferences.
    """

    requires_preferences = True
    #: learns from preference pairs or from ratings (the ensemble only)
    feedback_kinds = ("preference", "rating")

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        reward_model: str = "ensemble",
        reward_model_kwargs: dict | None = None,
        reward_epochs: int | None = None,
        reward_batch_size: int | None = None,
        reward_normalization: str = "minmax",
        ensemble_normalization: str = "none",
        reward_prior: str = "none",
        prior_weight: float = 1000.0,
        world_pretrain_steps: int = 10_000,
        world_batch_size: int = 16,
        world_lr: float = 3e-4,
        world_kwargs: dict | None = None,
        **iql: Any,
    ):
        prior = _prior_term(reward_prior, reward_model, prior_weight, world_pretrain_steps, world_batch_size, world_lr,
                            world_kwargs, seed=int(iql.get("seed", 0)))
        self.reward_prior = reward_prior
        self.prior: HindsightPriorLoss | None = prior
        if reward_model not in REWARD_MODELS:
            raise ValueError(f"unknown reward_model '{reward_model}'; choose one of {REWARD_MODELS}")
        if reward_model_kwargs is not None and not isinstance(reward_model_kwargs, dict):
            raise TypeError(f"reward_model_kwargs must be a dict, got {type(reward_model_kwargs).__name__}")
        if ensemble_normalization not in ENSEMBLE_NORMALIZATIONS:
            raise ValueError(f"unknown ensemble_normalization '{ensemble_normalization}'; choose one of "
                             f"{ENSEMBLE_NORMALIZATIONS}")
        if ensemble_normalization != "none" and reward_model != "ensemble":
            raise ValueError(f"ensemble_normalization='{ensemble_normalization}' merges the members of an ensemble; "
                             f"reward_model='{reward_model}' is one model (use reward_model='ensemble')")
        self.reward_model_name = reward_model
        self.ensemble_normalization = ensemble_normalization
        self.reward_model_kwargs = dict(reward_model_kwargs or {})
        for name, v in (("reward_epochs", reward_epochs), ("reward_batch_size", reward_batch_size)):
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
                raise ValueError(f"{name} must be a positive integer (or None for the reward model's default), got {v!r}")
        if reward_model == "ensemble":  # the ensemble's defaults; the transformer resolves None from its size
            reward_epochs = 300 if reward_epochs is None else reward_epochs
            reward_batch_size = 128 if reward_batch_size is None else reward_batch_size
        self.reward_epochs, self.reward_batch_size = reward_epochs, reward_batch_size
        self._register_config(
            reward_model=reward_model,
            reward_model_kwargs=self.reward_model_kwargs,
            reward_epochs=reward_epochs,
            reward_batch_size=reward_batch_size,
            ensemble_normalization=ensemble_normalization,
            reward_prior=reward_prior,
            prior_weight=float(prior_weight),
            world_pretrain_steps=int(world_pretrain_steps),
            world_batch_size=int(world_batch_size),
            world_lr=float(world_lr),
            world_kwargs=dict(world_kwargs or {}),
        )
        super().__init__(obs_dim, act_dim, reward_normalization=reward_normalization, **iql)
        klass = PreferenceTransformer if reward_model == "transformer" else RewardEnsemble
        self.reward_model = self._make_reward_model(klass)
        self.reward_fit_info: dict[str, Any] = {}
        self.reward_fitted = False

    def _make_reward_model(self, klass: type) -> Any:
        kw = {"seed": self.seed, **self.reward_model_kwargs}
        return klass(self.obs_dim, self.act_dim, **kw)

    def _check_preferences(self, preferences: PreferenceDataset | RatingDataset | None) -> None:
        """Preference pairs as every agent's, or ratings (non-empty, this agent's sizes, the ensemble)."""
        if not isinstance(preferences, RatingDataset):
            return super()._check_preferences(preferences)
        if self.reward_model_name != "ensemble":
            raise ValueError(f"reward_model='{self.reward_model_name}' learns from preference pairs; ratings train "
                             "the ensemble (reward_model='ensemble') with the RbRL rating loss")
        if len(preferences) == 0:
            raise ValueError(f"{type(self).__name__} needs at least one rated segment; the RatingDataset is empty")
        seg = preferences.segments
        if seg.obs_dim != self.obs_dim or seg.act_dim != self.act_dim:
            raise ValueError(f"rated segments have obs_dim={seg.obs_dim}, act_dim={seg.act_dim}; the agent "
                             f"expects {self.obs_dim}, {self.act_dim} (rate segments of the same task's dataset)")
        return None

    def _check_inputs(self, dataset: Any, preferences: PreferenceDataset | RatingDataset | None) -> None:
        """As every agent's; with ``reward_prior="hindsight"`` also pairs (not ratings) and dataset episodes
        longer than the segments (the world model's windows)."""
        super()._check_inputs(dataset, preferences)
        if self.prior is None or self.reward_fitted:
            return
        if isinstance(preferences, RatingDataset):
            raise ValueError("reward_prior='hindsight' learns from preference pairs; ratings train MR+IQL without it "
                             "(reward_prior='none')")
        _check_prior_windows(preferences.segment_length, int(np.max(dataset.episode_lengths())))

    @classmethod
    def check_run(cls, agent_kwargs: dict[str, Any], segment_length: int, longest_episode: int) -> None:
        """A run's settings, before any work (``pbrl train offline`` calls it): the prior's values and, with
        ``reward_prior="hindsight"``, episodes longer than the segments. One ``ValueError`` otherwise."""
        sig = inspect.signature(MRIQL.__init__).parameters  # subclasses (PEARL) take these through **kwargs
        kw = {k: agent_kwargs.get(k, sig[k].default) for k in _PRIOR_ARGS}
        if _prior_term(**kw) is not None:
            _check_prior_windows(segment_length, longest_episode)

    def _fit_losses(self, dataset: Any, preferences: PreferenceDataset) -> dict[str, Any]:
        """The reward fit's loss terms: None (the model's own), or Bradley-Terry + Hindsight PRIOR after
        pre-training the world model on the dataset's episodes (once per segment length)."""
        if self.prior is None:
            return {}
        H = preferences.segment_length
        if self.prior.world is None or self.prior.world.max_len != H:
            self.prior.world = None
            self.prior.train_world(list(dataset.episodes()), H, self.prior.pretrain_steps)
        return {"losses": [BradleyTerryLoss(), self.prior]}

    def _training_rewards(self, dataset: Any, preferences: PreferenceDataset | None) -> np.ndarray:
        """Fit the reward model on ``preferences`` (first ``fit`` only, see ``reward_fitted``) and relabel
        every transition with its mean prediction."""
        assert preferences is not None  # _check_inputs guarantees it
        if not self.reward_fitted:
            kw = {"early_stop_accuracy": 0.99} if self.reward_model_name == "transformer" else {}
            kw.update(self._fit_losses(dataset, preferences))
            self.reward_fit_info = self.reward_model.fit(
                preferences, epochs=self.reward_epochs, batch_size=self.reward_batch_size, **kw
            )
            self.reward_fitted = True
        return self.learned_rewards(dataset)

    def learned_rewards(self, dataset: Any) -> np.ndarray:
        """The fitted reward model's per-step rewards ``[T]`` (float32) for the dataset's flat arrays, before
        normalisation: the ensemble's members merged by ``ensemble_normalization`` (the mean ``r(s, a)`` by
        default), or the transformer's sliding-window relabelling."""
        if self.reward_model_name == "transformer":
            return self.reward_model.relabel(dataset)
        members = self.reward_model.member_rewards(dataset.observations, dataset.actions)
        return combine_member_rewards(members, self.ensemble_normalization)

    def _extra_state(self) -> dict[str, Any]:
        return {"reward_model": self.reward_model.state(), "reward_fitted": self.reward_fitted}

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        if "reward_model" in state:
            self.reward_model = type(self.reward_model).from_state(state["reward_model"])
            self.reward_fitted = bool(state.get("reward_fitted", True))
