"""In-Dataset Trajectory Return Regularization (DTR): a return-conditioned Decision Transformer regularised
by TD-learning, on ensemble-normalised learned rewards.

Tu, Sun, Zhang, Zhang, Liu, Chen & Zhao, "In-Dataset Trajectory Return Regularization for Offline
Preference-based Reinforcement Learning", AAAI 2025 (authors' code: github.com/TU2021/DTR). Four parts:

1. **Ensemble-normalised rewards** (Sec. 4.3): a :class:`~pbrl.reward_models.RewardEnsemble` of M = 3 members
   is fitted on the preferences; each member's rewards are standardised over the dataset, then averaged
   (:func:`pbrl.reward_models.combine_member_rewards` with ``"zscore"``, the option MR+IQL shares).
2. **The policy**: a Decision Transformer ``pi(R, s, a)`` (:class:`~pbrl.agents.decision_transformer.DecisionTransformerNet`)
   over a context of ``K = 20`` ``(R_t, s_t, a_t)`` tokens, ``R_t`` the undiscounted learned return-to-go
   divided by ``rtg_scale``. Its loss (the paper's policy objective; the authors' ``Trainer.train_step``)::

       L_pi = E_t ||a_hat_t - a_t||^2 + w_s E_t ||s_hat_{t+1} - s_{t+1}||^2 - lambda(n) E_t Q_i(s_t, a_hat_t)
       lambda(n) = eta * min(1, n / N) / E_t |Q_j(s_t, a_hat_t)|    (no gradient through the denominator)

   with ``i`` one of the twin heads drawn with probability 1/2 each update and ``j`` the other,
   ``eta = 3.0`` and ``N`` the planned number of updates                         -> :func:`dtr_policy_loss`.
3. **The critic**: twin Q-functions (3 x 256 Mish MLPs) regressed on n-step targets along each context::

       y_t = sum_{j=t}^{L-2} gamma^{j-t} r_j + gamma^{L-1-t} (1 - d_{L-1}) Q'(s_{L-1}, a'_{L-1}) + gamma^{L-1-t} d_{L-1} r_{L-1}

   for every step ``t < L - 1`` of a context of ``L`` steps, ``Q' = min`` of the Polyak-averaged target
   heads and ``a'_{L-1}`` the action of an exponential moving average of the policy at the context's last
   step                                                                           -> :func:`nstep_targets`.
4. **Inference** (the paper's Sec. 4.2): from ``K_R = 5`` return-to-go targets ``{0.5, 0.75, 1, 1.5, 2}`` x the
   dataset's highest learned return, the policy proposes one action each and the one with the highest
   ``min(Q'_1, Q'_2)`` is executed (:func:`choose_candidate`); every target's return-to-go then drops by the
   learned reward of the executed step (:func:`next_returns_to_go`).

Defaults are the authors' code's (``experiment.py`` and its README command: ``--eta 3.0 --grad_norm 9.0 --K 20
--lr_decay --k_rewards --use_discount --norm_r``, 50 x 1000 updates). ``docs/hyperparameters.md`` (DTR) lists
every value and each of pbrl's differences: the n-step target's discount exponents and terminal reward (the
code weights ``r_j`` by ``gamma^{T-1-j-t}`` and drops ``r_{L-1}`` at a terminal), the argmax over candidates
when ``deterministic`` (the code samples 50 noisy candidates from ``softmax(Q)``; ``deterministic=False``
does that), the learned-reward RTG update (the code's evaluation subtracts ``target / 1000`` per step;
``rtg_update="linear"``), and the auxiliary state loss (in the code it is only active in its ``--sar`` token
layout; ``state_weight=0`` drops it).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from pbrl.agents.decision_transformer import DecisionTransformerNet
from pbrl.agents.networks import TwinQ, soft_update
from pbrl.agents.offline_base import OfflineAgent
from pbrl.preferences import PreferenceDataset
from pbrl.ratings import RatingDataset
from pbrl.reward_models import RewardEnsemble
from pbrl.reward_models.ensemble import ENSEMBLE_NORMALIZATIONS

__all__ = ["DTR", "dtr_policy_loss", "nstep_targets", "eta_at", "next_returns_to_go", "choose_candidate",
           "RTG_UPDATES", "RETURN_MULTIPLIERS"]

#: how the return-to-go of each target falls after a step: by the learned reward (the paper) or linearly
#: by ``target / max_ep_len`` (the authors' evaluation code)
RTG_UPDATES = ("reward", "linear")
#: the paper's K_R = 5 return-to-go targets, as multiples of the dataset's highest learned return
RETURN_MULTIPLIERS = (0.5, 0.75, 1.0, 1.5, 2.0)


# ---------------------------------------------------------------------------------------------- losses


def eta_at(update: int, eta: float, ramp_steps: int) -> float:
    """The Q term's weight at update ``update`` (0-based): ``eta * min(1, update / ramp_steps)``, rising
    linearly from 0 (the authors' ``linear_decay_coefficient(step, max_iters * num_steps_per_iter, 0, 1)``)."""
    return float(eta) * min(1.0, update / max(1, ramp_steps))


def nstep_targets(rewards: torch.Tensor, valid: torch.Tensor, done_last: torch.Tensor, boot: torch.Tensor,
                  gamma: float) -> tuple[torch.Tensor, torch.Tensor]:
    """DTR's n-step critic targets along a context (module docstring, part 3).

    Args:
        rewards: ``[B, T]`` per-step rewards of the contexts.
        valid: ``[B, T]`` 1.0 on the ``L_b`` real steps (right-padded), 0.0 after them.
        done_last: ``[B]`` 1.0 where the context's last real step ``L_b - 1`` ends its episode (terminal).
        boot: ``[B]`` ``Q'(s_{L-1}, a'_{L-1})`` of the target critic (no gradient).
        gamma: discount.

    Returns:
        ``(target [B, T], train [B, T])``: ``y_t``, and 1.0 on the steps it is defined for (``t < L_b - 1``).
    """
    T = rewards.shape[1]
    idx = torch.arange(T, device=rewards.device)
    last_i = valid.sum(1) - 1.0  # [B] index of the last real step
    last = (idx[None, :].to(rewards.dtype) == last_i[:, None]).to(rewards.dtype)
    train = valid - last
    r = rewards * (train + last * done_last[:, None])  # r_{L-1} only where the episode ends there
    lag = (idx[None, :] - idx[:, None]).to(rewards.dtype)  # [t, j] = j - t
    disc = torch.where(lag >= 0, torch.pow(gamma, lag.clamp(min=0.0)), torch.zeros_like(lag))
    to_last = (last_i[:, None] - idx[None, :].to(rewards.dtype)).clamp(min=0.0)
    tail = torch.pow(gamma, to_last) * ((1.0 - done_last) * boot)[:, None]
    return (r @ disc.T + tail) * train, train


def dtr_policy_loss(act_pred: torch.Tensor, act: torch.Tensor, state_pred: torch.Tensor, obs: torch.Tensor,
                    q_pick: torch.Tensor, q_other: torch.Tensor, valid: torch.Tensor, eta: float,
                    state_weight: float = 1.0) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """DTR's policy loss (module docstring, part 2) on a batch of contexts.

    Args:
        act_pred: ``[B, T, act_dim]`` the policy's actions; act: ``[B, T, act_dim]`` the dataset's.
        state_pred: ``[B, T, obs_dim]`` predicted next states; obs: ``[B, T, obs_dim]`` the contexts' states.
        q_pick, q_other: ``[B, T]`` the two critic heads at ``(s_t, a_hat_t)``: the drawn head ``Q_i`` and the
            other, ``Q_j``, whose mean magnitude normalises the term.
        valid: ``[B, T]`` 1.0 on real steps.
        eta: the Q term's weight at this update (:func:`eta_at`).
        state_weight: ``w_s`` of the next-state MSE (default 1.0; 0 drops it).

    Returns:
        ``(loss, {"bc_loss", "state_loss", "q_term", "lambda"})``: action MSE (mean over real steps and action
        dimensions), next-state MSE (over steps whose successor is in the context), ``-E Q_i / E |Q_j|`` and
        ``eta / E |Q_j|``.
    """
    m = valid.unsqueeze(-1)
    bc = ((act_pred - act).pow(2) * m).sum() / (valid.sum() * act.shape[-1]).clamp(min=1.0)
    nxt = (valid[:, :-1] * valid[:, 1:]).unsqueeze(-1)
    state = ((state_pred[:, :-1] - obs[:, 1:]).pow(2) * nxt).sum() / (nxt.sum() * obs.shape[-1]).clamp(min=1.0)
    n = valid.sum().clamp(min=1.0)
    q_abs = ((q_other.abs() * valid).sum() / n).detach()
    q_term = -((q_pick * valid).sum() / n) / q_abs
    loss = bc + state_weight * state + eta * q_term
    return loss, {"bc_loss": bc, "state_loss": state, "q_term": q_term, "lambda": eta / q_abs}


def next_returns_to_go(rtg: np.ndarray, reward: float, targets: np.ndarray, rtg_scale: float, mode: str,
                       max_ep_len: int) -> np.ndarray:
    """Every target's return-to-go for the next step ``[K]`` (all in units of ``rtg_scale``).

    ``"reward"`` (the paper): ``R_{t+1} = R_t - r_hat(s_t, a_t) / rtg_scale``, the learned reward of the executed
    step. ``"linear"`` (the authors' evaluation code): ``R_{t+1} = R_t - R_0 / max_ep_len``.
    """
    if mode == "reward":
        return (rtg - reward / rtg_scale).astype(np.float32)
    return (rtg - targets / max_ep_len).astype(np.float32)


def choose_candidate(q: torch.Tensor, deterministic: bool, generator: torch.Generator | None = None) -> int:
    """The candidate to execute: ``argmax q`` (deterministic), else a draw from ``softmax(q)`` (the code's)."""
    if deterministic:
        return int(torch.argmax(q))
    return int(torch.multinomial(torch.softmax(q, dim=0), 1, generator=generator))


# ---------------------------------------------------------------------------------------------- inference state


@dataclass
class DTRContext:
    """One episode's history for :meth:`DTR.predict` (SB3's recurrent ``state``, one per env).

    ``obs [L, obs_dim]`` (normalised), ``act [L, act_dim]`` (in ``[-1, 1]``), ``rtg [K, L]`` (per target),
    ``timestep [L]``: the last ``L <= context_length`` steps; ``next_rtg [K]`` the targets' returns-to-go at the
    next step (None before the first)."""

    obs: np.ndarray
    act: np.ndarray
    rtg: np.ndarray
    timestep: np.ndarray
    next_rtg: np.ndarray | None = None
    t: int = 0


# ---------------------------------------------------------------------------------------------- agent


def _positive(name: str, v: Any, integer: bool = False, allow_zero: bool = False) -> None:
    kinds = (int, np.integer) if integer else (int, float, np.integer, np.floating)
    if isinstance(v, bool) or not isinstance(v, kinds) or not (v >= 0 if allow_zero else v > 0):
        what = "integer" if integer else "number"
        raise ValueError(f"{name} must be a {'non-negative' if allow_zero else 'positive'} {what}, got {v!r}")


def _check_args(*, eta, state_weight, weight_decay, grad_norm, rtg_noise, context_length, embed_dim, n_layers,
                n_heads, max_ep_len, ema_every, n_candidates, reward_epochs, reward_batch_size, ema_start, rtg_scale,
                schedule_steps, dropout, tau, ema_decay, return_multipliers, rtg_update, ensemble_normalization,
                reward_model_kwargs, critic_hidden) -> None:
    """:class:`DTR`'s hyperparameters: one clear error for an impossible value, before anything is built."""
    for h in critic_hidden:
        _positive("critic_hidden's layer width", h, integer=True)
    for name, v in (("eta", eta), ("state_weight", state_weight), ("weight_decay", weight_decay),
                    ("grad_norm", grad_norm), ("rtg_noise", rtg_noise)):
        _positive(name, v, allow_zero=True)
    for name, v in (("context_length", context_length), ("embed_dim", embed_dim), ("n_layers", n_layers),
                    ("n_heads", n_heads), ("max_ep_len", max_ep_len), ("ema_every", ema_every),
                    ("n_candidates", n_candidates), ("reward_epochs", reward_epochs),
                    ("reward_batch_size", reward_batch_size)):
        _positive(name, v, integer=True)
    _positive("ema_start", ema_start, integer=True, allow_zero=True)
    _positive("rtg_scale", rtg_scale)
    if schedule_steps is not None:
        _positive("schedule_steps", schedule_steps, integer=True)
    if not (0.0 <= dropout < 1.0 and 0.0 < tau <= 1.0 and 0.0 <= ema_decay < 1.0):
        raise ValueError(f"need 0 <= dropout < 1, 0 < tau <= 1 and 0 <= ema_decay < 1; got {dropout}, {tau}, {ema_decay}")
    if embed_dim % n_heads:
        raise ValueError(f"embed_dim ({embed_dim}) must be divisible by n_heads ({n_heads})")
    mult = tuple(return_multipliers)
    if not mult or n_candidates < len(mult):
        raise ValueError(f"need at least one return multiplier and n_candidates >= their number; got "
                         f"{len(mult)} multipliers, n_candidates={n_candidates}")
    if rtg_update not in RTG_UPDATES:
        raise ValueError(f"unknown rtg_update '{rtg_update}'; choose one of {RTG_UPDATES}")
    if ensemble_normalization not in ENSEMBLE_NORMALIZATIONS:
        raise ValueError(f"unknown ensemble_normalization '{ensemble_normalization}'; choose one of {ENSEMBLE_NORMALIZATIONS}")
    if reward_model_kwargs is not None and not isinstance(reward_model_kwargs, dict):
        raise TypeError(f"reward_model_kwargs must be a dict, got {type(reward_model_kwargs).__name__}")


class DTR(OfflineAgent):
    """DTR (Tu et al., AAAI 2025): a Decision Transformer on ensemble-normalised learned rewards, regularised by
    a twin critic's Q (see the module docstring for the losses and the inference).

    The first ``fit`` fits the reward ensemble and relabels the dataset; every update draws ``batch_size``
    contexts of ``context_length`` steps (a uniform start row, cut at its episode's end), takes one critic step
    (:func:`nstep_targets`) and one policy step (:func:`dtr_policy_loss`), then moves the EMA policy and the
    target critic. ``predict`` keeps each episode's history in SB3's ``state`` (reset by ``episode_start``).

    Args:
        obs_dim, act_dim: sizes.
        eta: ``eta``, the final weight of the normalised Q term (default 3.0, the README's ``--eta``).
        state_weight: weight of the auxiliary next-state MSE (default 1.0, the paper's loss; 0 is the code's
            default token layout).
        context_length: ``K``, steps per context (default 20).
        embed_dim, n_layers, n_heads, dropout: the transformer (defaults 256, 4, 4, 0.1).
        max_ep_len: timestep-embedding size (default 1000, the code's for MuJoCo).
        critic_hidden: the twin critic's Mish MLP (default ``(256, 256, 256)``).
        weight_decay: the policy Adam's L2 weight decay (default 1e-4; the critic has none).
        grad_norm: clip of both optimisers' global gradient norm (default 9.0).
        tau: Polyak rate of the target critic (default 0.005).
        ema_decay, ema_start, ema_every: the EMA policy that gives the critic's bootstrap action: decay 0.995,
            updated every 5 updates after update 1000 (the code's).
        lr_decay: cosine decay of both learning rates from ``lr`` to 0 over ``schedule_steps`` (default True,
            the README's ``--lr_decay``).
        schedule_steps: ``N``, the updates over which ``eta`` ramps up and the learning rate decays; None
            (default): the first ``fit`` call's ``steps`` (the authors ramp over their whole run).
        rtg_scale: returns-to-go are divided by this (default 10.0, the code's for MuJoCo).
        return_multipliers: the inference targets as multiples of the dataset's highest learned return
            (default ``(0.5, 0.75, 1, 1.5, 2)``).
        n_candidates: candidates of a stochastic ``predict`` (default 50: each target repeated, the current
            return-to-go of all copies but the first perturbed by ``N(0, rtg_noise^2)``; rtg_noise 0.1).
        rtg_update: ``"reward"`` (default, the paper) or ``"linear"`` (the code), see :func:`next_returns_to_go`.
        reward_model_kwargs: ``RewardEnsemble(obs_dim, act_dim, seed=seed, **kw)`` (default 3 members of
            3 x 256 LeakyReLU with tanh output, the authors' reward model).
        reward_epochs, reward_batch_size: the ensemble's fit (defaults 50 and 64, the authors').
        ensemble_normalization: ``"zscore"`` (default, DTR's) or ``"none"`` (the plain member mean).
        **common: :class:`~pbrl.agents.offline_base.OfflineAgent` arguments (``lr=3e-4`` for both networks,
            ``batch_size=256`` contexts, ``gamma=0.99``, ``normalize_obs``, ``action_low/high``, ``seed``,
            ``device``); ``hidden`` is unused (see ``critic_hidden``).
    """

    feedback_kinds = ("preference",)

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        eta: float = 3.0,
        state_weight: float = 1.0,
        context_length: int = 20,
        embed_dim: int = 256,
        n_layers: int = 4,
        n_heads: int = 4,
        dropout: float = 0.1,
        max_ep_len: int = 1000,
        critic_hidden: tuple[int, ...] = (256, 256, 256),
        weight_decay: float = 1e-4,
        grad_norm: float = 9.0,
        tau: float = 0.005,
        ema_decay: float = 0.995,
        ema_start: int = 1000,
        ema_every: int = 5,
        lr_decay: bool = True,
        schedule_steps: int | None = None,
        rtg_scale: float = 10.0,
        return_multipliers: tuple[float, ...] = RETURN_MULTIPLIERS,
        n_candidates: int = 50,
        rtg_noise: float = 0.1,
        rtg_update: str = "reward",
        reward_model_kwargs: dict | None = None,
        reward_epochs: int = 50,
        reward_batch_size: int = 64,
        ensemble_normalization: str = "zscore",
        **common: Any,
    ):
        _check_args(eta=eta, state_weight=state_weight, weight_decay=weight_decay, grad_norm=grad_norm,
                    rtg_noise=rtg_noise, context_length=context_length, embed_dim=embed_dim, n_layers=n_layers,
                    n_heads=n_heads, max_ep_len=max_ep_len, ema_every=ema_every, n_candidates=n_candidates,
                    reward_epochs=reward_epochs, reward_batch_size=reward_batch_size, ema_start=ema_start,
                    rtg_scale=rtg_scale, schedule_steps=schedule_steps, dropout=dropout, tau=tau, ema_decay=ema_decay,
                    return_multipliers=return_multipliers, rtg_update=rtg_update,
                    ensemble_normalization=ensemble_normalization, reward_model_kwargs=reward_model_kwargs,
                    critic_hidden=critic_hidden)
        mult = tuple(float(m) for m in return_multipliers)
        self.eta, self.state_weight, self.context_length = float(eta), float(state_weight), int(context_length)
        self.embed_dim, self.n_layers, self.n_heads, self.dropout = int(embed_dim), int(n_layers), int(n_heads), float(dropout)
        self.max_ep_len, self.critic_hidden = int(max_ep_len), tuple(int(h) for h in critic_hidden)
        self.weight_decay, self.grad_norm, self.tau = float(weight_decay), float(grad_norm), float(tau)
        self.ema_decay, self.ema_start, self.ema_every = float(ema_decay), int(ema_start), int(ema_every)
        self.lr_decay, self.schedule_steps, self.rtg_scale = bool(lr_decay), schedule_steps, float(rtg_scale)
        self.return_multipliers, self.n_candidates, self.rtg_noise = mult, int(n_candidates), float(rtg_noise)
        self.rtg_update, self.ensemble_normalization = rtg_update, ensemble_normalization
        self.reward_model_kwargs = dict(reward_model_kwargs or {})
        self.reward_epochs, self.reward_batch_size = int(reward_epochs), int(reward_batch_size)
        self._register_config(
            eta=self.eta, state_weight=self.state_weight, context_length=self.context_length, embed_dim=self.embed_dim,
            n_layers=self.n_layers, n_heads=self.n_heads, dropout=self.dropout, max_ep_len=self.max_ep_len,
            critic_hidden=self.critic_hidden, weight_decay=self.weight_decay, grad_norm=self.grad_norm, tau=self.tau,
            ema_decay=self.ema_decay, ema_start=self.ema_start, ema_every=self.ema_every, lr_decay=self.lr_decay,
            schedule_steps=schedule_steps, rtg_scale=self.rtg_scale, return_multipliers=mult,
            n_candidates=self.n_candidates, rtg_noise=self.rtg_noise, rtg_update=rtg_update,
            reward_model_kwargs=self.reward_model_kwargs, reward_epochs=self.reward_epochs,
            reward_batch_size=self.reward_batch_size, ensemble_normalization=ensemble_normalization,
        )
        super().__init__(obs_dim, act_dim, **common)
        self.reward_model = RewardEnsemble(obs_dim, act_dim, **{"seed": self.seed, **self.reward_model_kwargs})
        self.reward_fit_info: dict[str, Any] = {}
        self.reward_fitted = False
        self.member_stats = np.zeros((2, self.reward_model.n_members), np.float32)  # mean, std over the dataset
        self.max_return = 0.0
        self.planned_steps = schedule_steps or 0

    def _build(self) -> None:
        actor = DecisionTransformerNet(self.obs_dim, self.act_dim, self.embed_dim, self.n_layers, self.n_heads,
                                       self.dropout, self.max_ep_len)
        critic = TwinQ(self.obs_dim, self.act_dim, self.critic_hidden, activation=torch.nn.Mish)
        self.nets = {"actor": actor, "actor_ema": copy.deepcopy(actor).requires_grad_(False),
                     "critic": critic, "critic_target": copy.deepcopy(critic).requires_grad_(False)}
        self.optims = {"actor": torch.optim.Adam(actor.parameters(), lr=self.lr, weight_decay=self.weight_decay),
                       "critic": torch.optim.Adam(critic.parameters(), lr=self.lr)}

    # ------------------------------------------------------------------ inputs and rewards
    def _check_preferences(self, preferences: Any) -> None:
        if isinstance(preferences, RatingDataset):
            raise ValueError("DTR fits its reward ensemble on preference pairs, got ratings (a RatingDataset); label "
                             "pairs, or train MR+IQL (--agent mriql) on the ratings")
        super()._check_preferences(preferences)

    def _start_fit(self, dataset: Any, preferences: PreferenceDataset | None, steps: int) -> None:
        if self.planned_steps == 0:  # N of the eta ramp and the cosine decay: the first fit's length
            self.planned_steps = int(steps)
        super()._start_fit(dataset, preferences, steps)

    def _member_rewards(self, obs: np.ndarray, act: np.ndarray) -> np.ndarray:
        """The ensemble's merged reward ``[N]`` of raw ``obs [N, obs_dim]``, env actions ``act [N, act_dim]``, each
        member standardised with its statistics over the training dataset (``"zscore"``) or not (``"none"``)."""
        members = np.asarray(self.reward_model.member_rewards(obs, act), np.float64)  # [M, N]
        if self.ensemble_normalization == "zscore":
            mean, std = self.member_stats[0][:, None], self.member_stats[1][:, None]
            members = (members - mean) / np.where(std < 1e-8, 1.0, std)
        return members.mean(axis=0).astype(np.float32)

    def learned_rewards(self, dataset: Any) -> np.ndarray:
        """Fit the ensemble on first use (see ``_prepare``) and return the dataset's merged rewards ``[T]``: with
        ``"zscore"`` the same numbers as ``combine_member_rewards(members, "zscore")``."""
        members = np.asarray(self.reward_model.member_rewards(dataset.observations, dataset.actions), np.float64)
        self.member_stats = np.stack([members.mean(axis=1), members.std(axis=1)]).astype(np.float32)
        return self._member_rewards(dataset.observations, dataset.actions)

    def _prepare(self, dataset: Any, preferences: PreferenceDataset | None) -> None:
        assert preferences is not None  # _check_inputs guarantees it
        if not self.reward_fitted:
            self.reward_fit_info = self.reward_model.fit(preferences, epochs=self.reward_epochs,
                                                         batch_size=self.reward_batch_size)
            self.reward_fitted = True
            rewards = self.learned_rewards(dataset)
        else:  # a continued fit keeps the statistics the policy was trained with
            rewards = self._member_rewards(dataset.observations, dataset.actions)
        starts, ends = (np.asarray(x, np.int64) for x in dataset.episode_bounds)
        T = len(dataset)
        ep_end = np.zeros(T, np.int64)
        timestep = np.zeros(T, np.int64)
        rtg = np.zeros(T, np.float64)
        returns = []
        for s, e in zip(starts, ends):
            ep_end[s : e + 1] = e
            timestep[s : e + 1] = np.arange(e - s + 1)
            rtg[s : e + 1] = np.cumsum(rewards[s : e + 1][::-1])[::-1]
            returns.append(rtg[s])
        if self.num_updates == 0:
            self.max_return = float(np.max(returns))
        self.flat = {
            "obs": self.tensor(self._norm_obs_np(np.asarray(dataset.observations, np.float32))),
            "act": self.tensor(self._act_to_unit(np.asarray(dataset.actions, np.float32))),
            "rew": self.tensor(rewards), "rtg": self.tensor(rtg / self.rtg_scale),
            "done": self.tensor(np.asarray(dataset.terminals, np.float32)),
            "ep_end": torch.as_tensor(ep_end, device=self.device), "timestep": torch.as_tensor(timestep, device=self.device),
        }

    # ------------------------------------------------------------------ updates
    def _sample(self) -> dict[str, torch.Tensor]:
        """``batch_size`` contexts from uniform start rows (the code's length-weighted trajectory and uniform
        start), cut at their episode's end and right-padded; the Q head of the policy term; the dropout seed."""
        f = self.flat
        start = torch.as_tensor(self.rng.integers(0, len(f["rew"]), size=self.batch_size), device=self.device)
        rows = start[:, None] + torch.arange(self.context_length, device=self.device)
        end = f["ep_end"][start][:, None]
        valid = (rows <= end).float()
        rows = torch.minimum(rows, end)
        last = rows[:, -1]  # the last real row (the padding repeats it)
        batch = {k: f[k][rows] for k in ("obs", "act", "rew", "rtg", "timestep")}
        batch.update(valid=valid, done_last=f["done"][last],
                     head=torch.tensor(float(self.rng.uniform() > 0.5)), torch_seed=self.draw_torch_seed())
        return batch

    def _set_lr(self, frac: float) -> None:
        lr = 0.5 * self.lr * (1.0 + math.cos(math.pi * frac)) if self.lr_decay else self.lr
        for opt in self.optims.values():
            for g in opt.param_groups:
                g["lr"] = lr

    def _update_on(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        n = self.num_updates
        self._set_lr(min(1.0, n / max(1, self.planned_steps)))
        eta = eta_at(n, self.eta, self.planned_steps)
        obs, act, valid = batch["obs"], batch["act"], batch["valid"]
        args = (batch["rtg"], obs, act, batch["timestep"])
        last = (valid.sum(1) - 1).long()
        with self._dropout_scope(batch):
            with torch.no_grad():  # the bootstrap: the EMA policy's action at the context's last step
                a_next = self.nets["actor_ema"](*args)[0]
                take = last[:, None, None].expand(-1, 1, self.act_dim)
                s_last = obs.gather(1, last[:, None, None].expand(-1, 1, self.obs_dim))[:, 0]
                boot = self.nets["critic_target"].min(s_last, a_next.gather(1, take)[:, 0])
                target, train = nstep_targets(batch["rew"], valid, batch["done_last"], boot, self.gamma)

            def critic_loss() -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
                q = self.nets["critic"](obs, act)  # [2, B, T]
                loss = ((q - target).pow(2) * train).sum(dim=(1, 2)).div(train.sum().clamp(min=1.0)).sum()
                return loss, {"q_mean": (q[0] * train).sum() / train.sum().clamp(min=1.0)}

            def policy_loss() -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
                a_hat, s_hat = self.nets["actor"](*args)
                q = self.nets["critic"](obs, a_hat)
                pick = batch["head"] > 0.5
                return dtr_policy_loss(a_hat, act, s_hat, obs, torch.where(pick, q[0], q[1]),
                                       torch.where(pick, q[1], q[0]), valid, eta, self.state_weight)

            c_loss, c_logs = self._step("critic", critic_loss, self.grad_norm or None)
            p_loss, p_logs = self._step("actor", policy_loss, self.grad_norm or None)
        if n > self.ema_start and n % self.ema_every == 0:
            soft_update(self.nets["actor_ema"], self.nets["actor"], 1.0 - self.ema_decay)
        soft_update(self.nets["critic_target"], self.nets["critic"], self.tau)
        return {"critic_loss": c_loss, "policy_loss": p_loss, "eta": torch.tensor(eta), **c_logs, **p_logs}

    # ------------------------------------------------------------------ acting
    def return_targets(self) -> np.ndarray:
        """The inference targets ``[K_R]`` in ``rtg_scale`` units: ``return_multipliers x`` the highest learned return."""
        return (np.asarray(self.return_multipliers, np.float64) * self.max_return / self.rtg_scale).astype(np.float32)

    def _new_context(self) -> DTRContext:
        K = len(self.return_multipliers)
        return DTRContext(obs=np.zeros((0, self.obs_dim), np.float32), act=np.zeros((0, self.act_dim), np.float32),
                          rtg=np.zeros((K, 0), np.float32), timestep=np.zeros(0, np.int64))

    def _candidates(self, ctx: DTRContext, deterministic: bool) -> torch.Tensor:
        """The returns-to-go of the candidates ``[C, L]``: one row per target (deterministic), or each target
        repeated to ``n_candidates`` rows with all copies but the first perturbed at the current step."""
        rtg = self.tensor(ctx.rtg)
        if deterministic:
            return rtg
        K = rtg.shape[0]
        copies = self.n_candidates // K
        rows = rtg.repeat_interleave(copies, dim=0)
        noise = torch.randn(rows.shape[0], generator=self.torch_gen) * self.rtg_noise
        noise[::copies] = 0.0
        rows[:, -1] = rows[:, -1] + noise.to(rows.device)
        return rows

    def _act(self, ctx: DTRContext, raw_obs: np.ndarray, deterministic: bool) -> np.ndarray:
        """One step of an episode: extend the context by ``raw_obs``, choose among the candidates' actions by Q,
        record the action and the next returns-to-go. Returns the action in ``[-1, 1]`` ``[act_dim]``."""
        L = self.context_length
        targets = self.return_targets()
        now = targets if ctx.next_rtg is None else ctx.next_rtg
        ctx.obs = np.concatenate([ctx.obs, self._norm_obs_np(raw_obs[None])])[-L:]
        ctx.act = np.concatenate([ctx.act, np.zeros((1, self.act_dim), np.float32)])[-L:]
        ctx.rtg = np.concatenate([ctx.rtg, now[:, None]], axis=1)[:, -L:]
        ctx.timestep = np.concatenate([ctx.timestep, [min(ctx.t, self.max_ep_len - 1)]])[-L:]
        rtg = self._candidates(ctx, deterministic)
        C = rtg.shape[0]
        obs = self.tensor(ctx.obs)[None].expand(C, -1, -1)
        act = self.tensor(ctx.act)[None].expand(C, -1, -1)
        ts = torch.as_tensor(ctx.timestep, device=self.device)[None].expand(C, -1)
        a_hat = self.nets["actor"](rtg, obs, act, ts)[0][:, -1]  # [C, act_dim]
        q = self.nets["critic_target"].min(obs[:, -1], a_hat)
        unit = a_hat[choose_candidate(q, deterministic, self.torch_gen)].cpu().numpy()
        ctx.act[-1] = unit
        reward = float(self._member_rewards(raw_obs[None], self._unit_to_act(unit[None]))[0]) if self.rtg_update == "reward" else 0.0
        ctx.next_rtg = next_returns_to_go(now, reward, targets, self.rtg_scale, self.rtg_update, self.max_ep_len)
        ctx.t += 1
        return unit

    def predict(self, observation: np.ndarray, state: Any = None, episode_start: np.ndarray | None = None,
                deterministic: bool = True) -> tuple[np.ndarray, list[DTRContext]]:
        """SB3's ``predict`` with the episode's history as ``state``.

        Args:
            observation: ``[obs_dim]`` or ``[n, obs_dim]`` (n envs).
            state: what the previous call returned (a list of ``n`` :class:`DTRContext`), or None to start
                every env's episode afresh.
            episode_start: ``[n]`` bools; True starts that env's history afresh (SB3's ``evaluate_policy`` sets
                it after every episode's end).
            deterministic: True (default): the highest-Q action of the ``K_R`` targets; False: a ``softmax(Q)``
                draw among ``n_candidates`` noisy candidates (the authors' evaluation).

        Returns:
            ``(action [act_dim] or [n, act_dim] in the env's bounds, state)``.
        """
        obs = np.asarray(observation, dtype=np.float32)
        if obs.ndim not in (1, 2) or obs.shape[-1] != self.obs_dim:
            raise ValueError(f"observation must have shape ({self.obs_dim},) or (n, {self.obs_dim}), got {obs.shape}")
        batch = obs[None] if obs.ndim == 1 else obs
        n = len(batch)
        if state is not None and (not isinstance(state, list) or len(state) != n
                                  or not all(isinstance(c, DTRContext) for c in state)):
            raise ValueError(f"state must be what DTR.predict returned for these {n} envs (a list of DTRContext) or None")
        fresh = np.zeros(n, bool) if episode_start is None else np.broadcast_to(np.asarray(episode_start, bool).reshape(-1), (n,))
        # copies: the caller's state stays as it was (the same state twice gives the same action)
        contexts = [self._new_context() if state is None or fresh[i] else copy.copy(state[i]) for i in range(n)]
        for net in self.nets.values():
            net.eval()
        with torch.no_grad():
            unit = np.stack([self._act(ctx, batch[i], deterministic) for i, ctx in enumerate(contexts)])
        act = self._unit_to_act(unit)
        return (act[0] if obs.ndim == 1 else act), contexts

    # ------------------------------------------------------------------ saving
    def _extra_state(self) -> dict[str, Any]:
        return {"reward_model": self.reward_model.state(), "reward_fitted": self.reward_fitted,
                "member_stats": self.member_stats, "max_return": self.max_return, "planned_steps": self.planned_steps}

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        if "reward_model" in state:
            self.reward_model = RewardEnsemble.from_state(state["reward_model"])
            self.reward_fitted = bool(state.get("reward_fitted", True))
        self.member_stats = np.asarray(state.get("member_stats", self.member_stats), np.float32)
        self.max_return = float(state.get("max_return", self.max_return))
        self.planned_steps = int(state.get("planned_steps", self.planned_steps))
