"""Inverse Preference Learning (IPL): preference-based offline RL without a reward network.

Hejna & Sadigh, "Inverse Preference Learning: Preference-based RL without a Reward Function",
NeurIPS 2023. IPL never fits a reward model. The Q-function *implies* a reward through the inverse
Bellman operator (Sec. 4 of the paper),

    r_Q(s, a) = Q(s, a) - gamma * E_{s'} [ V(s') ],                                  -> :func:`implicit_reward`

and Q is trained so that these implicit rewards explain the preferences under the Bradley-Terry model
over segment sums (the same model as a reward network would use),

    L_p(Q) = -E_{(sigma_a, sigma_b, y)} [ y log P_Q[b > a] + (1 - y) log P_Q[a > b] ],
    P_Q[b > a] = sigmoid( sum_t r_Q(s^b_t, a^b_t) - sum_t r_Q(s^a_t, a^a_t) ),  -> :func:`segment_logits`,
                                                                                   :func:`bradley_terry_loss`

plus the chi^2 regulariser on the implicit reward over preference AND unlabelled (offline) transitions,

    L(Q) = L_p(Q) + c * E_{D_p u D_o} [ r_Q(s, a)^2 ],                                -> :func:`chi2_regularizer`

which keeps the implied reward small where no preference constrains it. V and the policy are learned as
in the backbone: with **IQL** (:class:`IPL`) V is the expectile regression of the target Q
(Kostrikov et al. 2022, Eq. 5) and the policy is extracted by advantage-weighted regression (Eq. 7); with
**AWAC** (:class:`IPLAWAC`) ``V(s) = E_{a ~ pi} Q(s, a)`` and the policy is AWR with advantages
``Q(s, a) - Q(s, a_pi)``.

Defaults follow the paper's released configurations: chi^2 coefficient ``c = 0.5`` (IQL backbone,
locomotion) and ``c = 4`` (AWAC, Meta-World); expectile 0.7; AWR temperature 1/3 (``beta = 3.0``);
``tau = 0.005``; lr 3e-4; 256 x 256 nets (AWAC: 256 x 3); 8 preference pairs per update with a random
64-step crop of each segment (AWAC: 16 pairs, 16 steps), 256 unlabelled transitions; losses mixed 50/50
between preference and unlabelled transitions; ``V(s')`` clipped to ``+-1 / (c (1 - gamma))`` (the range
of Q under the chi^2 regulariser).
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from pbrl.agents.iql import IQL, awr_policy_loss, iql_value_loss
from pbrl.agents.networks import GaussianPolicy, TwinQ, soft_update
from pbrl.preferences import PreferenceDataset

__all__ = ["IPL", "IPLAWAC", "implicit_reward", "segment_logits", "bradley_terry_loss", "chi2_regularizer"]


# ---------------------------------------------------------------------------------------------- losses


def implicit_reward(q: torch.Tensor, next_v: torch.Tensor, done: torch.Tensor, gamma: float) -> torch.Tensor:
    """IPL's implicit reward (Hejna & Sadigh 2023, Sec. 4, the inverse Bellman operator):
    ``r_Q(s, a) = Q(s, a) - gamma * (1 - done) * V(s')``.

    Args:
        q: ``[E, ...]`` Q-values (one row per critic head) or ``[...]``.
        next_v: ``[...]`` ``V(s')`` (no gradient through it in IPL).
        done: ``[...]`` 1.0 where ``s`` was terminal (no successor value).
        gamma: discount.
    """
    return q - gamma * (1.0 - done) * next_v


def segment_logits(r_a: torch.Tensor, r_b: torch.Tensor, mask_a: torch.Tensor | None = None,
                   mask_b: torch.Tensor | None = None) -> torch.Tensor:
    """Bradley-Terry logit of "b preferred" over segment sums: ``sum_t r(b_t) - sum_t r(a_t)``.

    Args:
        r_a, r_b: ``[..., N, H]`` per-step (implicit) rewards of the two segments of N pairs.
        mask_a, mask_b: optional ``[N, H]`` 0/1 masks of the steps to count.

    Returns:
        ``[..., N]`` logits; ``sigmoid(logit) = P[b > a]``.
    """
    if mask_a is not None:
        r_a = r_a * mask_a
    if mask_b is not None:
        r_b = r_b * mask_b
    return r_b.sum(-1) - r_a.sum(-1)


def bradley_terry_loss(logits: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
    """Preference cross-entropy (Hejna & Sadigh 2023, the loss ``L_p``; Christiano et al. 2017, Eq. 1):
    ``-mean [ y log sigmoid(l) + (1 - y) log sigmoid(-l) ]`` with ``y = 1`` when b is preferred (0.5 = tie).

    Args:
        logits: ``[..., N]`` from :func:`segment_logits` (leading dims, e.g. critic heads, are averaged).
        label: ``[N]`` labels in {0, 0.5, 1}.
    """
    return F.binary_cross_entropy_with_logits(logits, label.expand_as(logits))


def chi2_regularizer(r: torch.Tensor, coeff: float, n_pref: int | None = None, replay_weight: float = 0.5) -> torch.Tensor:
    """The chi^2 regulariser of IPL (Hejna & Sadigh 2023, Sec. 4, the regularised preference objective):
    ``c * E_{D_p u D_o}[r_Q(s, a)^2]``. This is the function IPL's critic update calls.

    Args:
        r: ``[E, B]`` implicit rewards of each critic head (or ``[B]``); squares are averaged over the heads.
        coeff: ``c``.
        n_pref: the first ``n_pref`` of the ``B`` transitions come from the preference segments (``D_p``),
            the rest from the unlabelled data (``D_o``). ``None``: a plain mean over every entry.
        replay_weight: ``w``, the expectation over ``D_p u D_o`` is ``(1 - w) mean_{D_p} + w mean_{D_o}``
            (the paper's released code mixes the two sources 50/50, the default).

    Returns:
        scalar.
    """
    sq = r.pow(2)
    if n_pref is None:
        return coeff * sq.mean()
    per = sq.reshape(-1, sq.shape[-1]).mean(0)  # per transition, averaged over heads
    return coeff * _mix(per[:n_pref], per[n_pref:], replay_weight)


def _mix(loss_fb: torch.Tensor, loss_replay: torch.Tensor | None, weight: float) -> torch.Tensor:
    """``(1 - w) * mean(preference part) + w * mean(unlabelled part)``; just the first without unlabelled data."""
    if loss_replay is None or loss_replay.numel() == 0:
        return loss_fb.mean()
    return (1.0 - weight) * loss_fb.mean() + weight * loss_replay.mean()


# ---------------------------------------------------------------------------------------------- agents


class IPL(IQL):
    """IPL on the IQL backbone (Hejna & Sadigh, NeurIPS 2023): implicit reward ``Q(s,a) - gamma V(s')`` in a
    Bradley-Terry loss over segment sums, plus ``c * E[r^2]`` over preference and unlabelled transitions.

    Args:
        chi2_coeff: ``c`` of the chi^2 regulariser (default 0.5).
        pref_batch_size: preference pairs per update (default 8).
        segment_crop: random crop of each segment to this many steps per update (default 64; ``None`` or a
            value >= H uses whole segments).
        replay_weight: weight of the unlabelled transitions in the value, chi^2 and policy losses (default 0.5).
        target_clipping: clip ``V(s')`` to ``+-1 / (c (1 - gamma))`` (default True).
        mask_segment_terminals: drop ``V(s')`` at terminal steps *inside preference segments* (default False,
            as the authors' code: its feedback batches carry one constant discount per segment, so a fall step's
            implicit reward is ``Q(s, a) - gamma V(s')`` like any other). With True the terminal step's implicit
            reward is ``Q(s, a)`` itself, so the critic's free level (chi^2 pins ``r_Q``, not ``Q``) becomes a
            bonus or a penalty for ending an episode. Unlabelled transitions always mask terminals (as the
            authors' replay buffer does).
        **iql: :class:`~pbrl.agents.iql.IQL` arguments (``expectile=0.7``, ``beta=3.0``, ``tau=0.005``, ...);
            ``reward_normalization`` is unused (IPL reads no reward).
    """

    requires_preferences = True

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        chi2_coeff: float = 0.5,
        pref_batch_size: int = 8,
        segment_crop: int | None = 64,
        replay_weight: float = 0.5,
        target_clipping: bool = True,
        mask_segment_terminals: bool = False,
        **iql: Any,
    ):
        if not chi2_coeff >= 0:
            raise ValueError(f"chi2_coeff must be >= 0, got {chi2_coeff}")
        if not isinstance(pref_batch_size, int) or pref_batch_size < 1:
            raise ValueError(f"pref_batch_size must be a positive integer, got {pref_batch_size!r}")
        if segment_crop is not None and (not isinstance(segment_crop, int) or segment_crop < 1):
            raise ValueError(f"segment_crop must be a positive integer or None, got {segment_crop!r}")
        if not 0.0 <= replay_weight <= 1.0:
            raise ValueError(f"replay_weight must be in [0, 1], got {replay_weight}")
        self.chi2_coeff, self.pref_batch_size, self.segment_crop = float(chi2_coeff), pref_batch_size, segment_crop
        self.replay_weight, self.target_clipping = float(replay_weight), bool(target_clipping)
        self.mask_segment_terminals = bool(mask_segment_terminals)
        self._register_config(
            chi2_coeff=self.chi2_coeff,
            pref_batch_size=pref_batch_size,
            segment_crop=segment_crop,
            replay_weight=self.replay_weight,
            target_clipping=self.target_clipping,
            mask_segment_terminals=self.mask_segment_terminals,
        )
        super().__init__(obs_dim, act_dim, **iql)

    # ------------------------------------------------------------------ data
    def _prepare(self, dataset: Any, preferences: PreferenceDataset | None) -> None:
        assert preferences is not None
        self.data = self.transitions_from(dataset)  # rewards are never read
        self.prefs = self.preference_tensors(preferences, dataset)

    def _sample_preferences(self) -> dict[str, torch.Tensor]:
        """``pref_batch_size`` pairs, each segment cropped at a random start to ``segment_crop`` steps."""
        n, H = self.prefs["obs_a"].shape[:2]
        idx = torch.as_tensor(self.rng.integers(0, n, size=self.pref_batch_size), device=self.device)
        L = H if self.segment_crop is None else min(self.segment_crop, H)
        start = self.rng.integers(0, H - L + 1, size=self.pref_batch_size)
        cols = torch.as_tensor(start[:, None] + np.arange(L)[None, :], device=self.device)
        rows = idx[:, None]
        out = {"label": self.prefs["label"][idx]}
        for k, v in self.prefs.items():
            if k != "label":
                out[k] = v[rows, cols]
        return out

    def _sample(self) -> dict[str, torch.Tensor]:
        """Cropped preference pairs (``obs_a``..., ``label``) and ``batch_size`` unlabelled transitions."""
        p = self._sample_preferences()
        r = self.sample_transitions()
        return {**p, **{f"replay_{k}": v for k, v in r.items()}}

    def _flat_batch(self, batch: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], int, tuple[int, int]]:
        """Preference steps of a then b, then unlabelled transitions, flattened into one batch. The segments'
        terminal flags are cleared unless ``mask_segment_terminals``."""
        p = batch
        N, L = p["obs_a"].shape[:2]
        cat = lambda a, b, c: torch.cat([a.reshape(N * L, *a.shape[2:]), b.reshape(N * L, *b.shape[2:]), c], 0)  # noqa: E731
        done_a, done_b = p["done_a"], p["done_b"]
        if not self.mask_segment_terminals:
            done_a, done_b = torch.zeros_like(done_a), torch.zeros_like(done_b)
        flat = {
            "obs": cat(p["obs_a"], p["obs_b"], p["replay_observations"]),
            "act": cat(p["act_a"], p["act_b"], p["replay_actions"]),
            "next": cat(p["next_a"], p["next_b"], p["replay_next_observations"]),
            "done": cat(done_a, done_b, p["replay_dones"]),
        }
        return flat, p, 2 * N * L, (N, L)

    # ------------------------------------------------------------------ updates
    def _next_value(self, next_obs: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """``V(s')`` for the implicit reward (IQL backbone: the expectile value net), optionally clipped."""
        with torch.no_grad():
            v = self.nets["v"](next_obs)
            if self.target_clipping and self.chi2_coeff > 0 and self.gamma < 1:
                lim = 1.0 / (self.chi2_coeff * (1.0 - self.gamma))
                v = v.clamp(-lim, lim)
        return v

    def _ipl_critic_loss(self, flat: dict[str, torch.Tensor], p: dict[str, torch.Tensor], n_fb: int,
                         shape: tuple[int, int], next_v: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """IPL's critic objective on a flat batch; returns (loss, logs incl. ``q [E, B]``)."""
        N, L = shape
        q = self.nets["q"](flat["obs"], flat["act"])  # [2, B]
        r = implicit_reward(q, next_v, flat["done"], self.gamma)  # [2, B]
        r_a = r[:, : N * L].reshape(-1, N, L)
        r_b = r[:, N * L : n_fb].reshape(-1, N, L)
        logits = segment_logits(r_a, r_b, p["mask_a"], p["mask_b"])
        pref_loss = bradley_terry_loss(logits, p["label"])
        chi2 = chi2_regularizer(r, self.chi2_coeff, n_pref=n_fb, replay_weight=self.replay_weight)
        with torch.no_grad():  # accuracy on the strict pairs (NaN when there are none); no data-dependent shapes
            strict = (p["label"] != 0.5).float()
            correct = ((logits.mean(0) > 0).float() == (p["label"] > 0.5).float()).float()
            acc = (correct * strict).sum() / strict.sum()
        logs = {"pref_loss": pref_loss, "chi2_loss": chi2, "pref_accuracy": acc, "implicit_reward": r.mean(), "q": q}
        return pref_loss + chi2, logs

    def _critic_step(self, flat: dict[str, torch.Tensor], p: dict[str, torch.Tensor], n_fb: int,
                     shape: tuple[int, int]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Bradley-Terry on implicit rewards + chi^2, one step of the critic; returns (loss, logs incl. ``q``)."""
        next_v = self._next_value(flat["next"], p)
        return self._step("q", lambda: self._ipl_critic_loss(flat, p, n_fb, shape, next_v))

    def _update_on(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        flat, p, n_fb, shape = self._flat_batch(batch)
        obs, act = flat["obs"], flat["act"]
        # value: expectile regression of the target critic (IQL Eq. 5), mixed over the two sources
        with torch.no_grad():
            q_hat = self.nets["q_target"].min(obs, act)

        def value_loss() -> torch.Tensor:
            per = iql_value_loss(q_hat, self.nets["v"](obs), self.expectile, reduction="none")
            return _mix(per[:n_fb], per[n_fb:], self.replay_weight)

        v_loss = self._step("v", value_loss)
        # critic: Bradley-Terry on implicit rewards + chi^2
        loss, logs = self._critic_step(flat, p, n_fb, shape)
        logs.pop("q")
        # policy: AWR (IQL Eq. 7) with A = Q_hat(s, a) - V(s)
        with torch.no_grad():
            adv = q_hat - self.nets["v"](obs)

        def policy_loss() -> torch.Tensor:
            per = awr_policy_loss(self.nets["policy"].log_prob(obs, act), adv, self.beta, self.max_weight, "none")
            return _mix(per[:n_fb], per[n_fb:], self.replay_weight)

        pi_loss = self._step("policy", policy_loss)
        soft_update(self.nets["q_target"], self.nets["q"], self.tau)
        logs.update(v_loss=v_loss, policy_loss=pi_loss, q_loss=loss)
        return logs


class IPLAWAC(IPL):
    """IPL on the AWAC backbone (Hejna & Sadigh 2023; AWAC: Nair et al. 2020): no value network;
    ``V(s') = E_{a' ~ pi(s')} Q_target(s', a')`` (one sample, mean of the twin heads) in the implicit reward,
    and the policy is AWR with ``A(s, a) = Q(s, a) - Q(s, a_pi)``, ``a_pi ~ pi(s)``.

    Defaults from the paper's Meta-World configuration: ``chi2_coeff=4``, 16 pairs per update cropped to
    16 steps, three hidden layers of 256, ``beta=3.0`` (temperature 1/3). ``expectile`` is unused.
    """

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        chi2_coeff: float = 4.0,
        pref_batch_size: int = 16,
        segment_crop: int | None = 16,
        hidden: tuple[int, ...] | list[int] = (256, 256, 256),
        **kw: Any,
    ):
        super().__init__(
            obs_dim, act_dim, chi2_coeff=chi2_coeff, pref_batch_size=pref_batch_size, segment_crop=segment_crop,
            hidden=hidden, **kw,
        )

    def _build(self) -> None:
        q = TwinQ(self.obs_dim, self.act_dim, self.hidden)
        self.nets = {
            "q": q,
            "q_target": copy.deepcopy(q).requires_grad_(False),
            "policy": GaussianPolicy(self.obs_dim, self.act_dim, self.hidden, dropout=self.dropout),
        }
        self.optims = {name: torch.optim.Adam(self.nets[name].parameters(), lr=self.lr) for name in ("q", "policy")}

    def _sample(self) -> dict[str, torch.Tensor]:
        """IPL's batch plus the policy's sampling noise for ``a' ~ pi(s')`` and ``a_pi ~ pi(s)`` (from ``torch_gen``)."""
        batch = super()._sample()
        n = 2 * batch["obs_a"].shape[0] * batch["obs_a"].shape[1] + batch["replay_observations"].shape[0]
        for k in ("noise_next", "noise_pi"):
            batch[k] = torch.randn((n, self.act_dim), generator=self.torch_gen).to(self.device)
        return batch

    def _next_value(self, next_obs: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        with torch.no_grad():
            a_next = self.nets["policy"].sample_with(next_obs, batch["noise_next"])
            return self.nets["q_target"](next_obs, a_next).mean(0)

    def _update_on(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        flat, p, n_fb, shape = self._flat_batch(batch)
        obs, act = flat["obs"], flat["act"]
        loss, logs = self._critic_step(flat, p, n_fb, shape)
        q = logs.pop("q")
        with torch.no_grad():
            a_pi = self.nets["policy"].sample_with(obs, batch["noise_pi"])
            adv = q.mean(0) - self.nets["q"](obs, a_pi).mean(0)

        def policy_loss() -> torch.Tensor:
            per = awr_policy_loss(self.nets["policy"].log_prob(obs, act), adv, self.beta, self.max_weight, "none")
            return _mix(per[:n_fb], per[n_fb:], self.replay_weight)

        pi_loss = self._step("policy", policy_loss)
        soft_update(self.nets["q_target"], self.nets["q"], self.tau)
        logs.update(policy_loss=pi_loss, q_loss=loss)
        return logs
