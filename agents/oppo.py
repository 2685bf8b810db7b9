"""Offline Preference-guided Policy Optimization (OPPO): search for the best *context*, not the best reward.

Kang, Shi, Liu, He & Wang, "Beyond Reward: Offline Preference-guided Policy Optimization", ICML 2023
(the alternating updates of its Algorithm 1; authors' code: github.com/bkkgbkjb/OPPO).

OPPO models offline trajectories and preferences in one step, without a reward function:

* a context encoder ``z = E_psi(tau)`` maps a segment ``tau = (s_1, a_1, ..., s_H, a_H)`` to a vector
  ``z`` in ``R^d``;
* a contextual policy ``pi_theta(a | s, z)`` is trained by **hindsight information matching** (HIM): it
  must reproduce the actions of a segment given that segment's own context (the paper's HIM objective)::

      L_HIM(theta, psi) = E_{tau ~ D} [ (1 / H) sum_t || pi_theta(s_t, E_psi(tau)) - a_t ||^2 ]   -> him_loss

* a learnable "optimal context" ``z*`` is fitted with the **triplet preference loss**: ``z*`` is the
  anchor, the preferred segment's context ``z+ = E(tau+)`` the positive, the other ``z- = E(tau-)`` the
  negative, with margin ``m`` (the paper's preference-modelling objective)::

      L_PM(z*, psi) = E_{(tau+, tau-)} [ max( ||z* - z+||_2 - ||z* - z-||_2 + m, 0 ) ]          -> triplet_loss

  The encoder minimises ``L_HIM + alpha L_PM(z*.detach(), psi) + beta L_norm`` with the norm
  regulariser ``L_norm = E[(||z|| - 1)^2]`` (keeps contexts on a common scale; the authors' code uses it
  with ``beta = 0.1``), and ``z*`` minimises ``L_PM(z*, psi.detach())`` with its own optimiser, as in
  the paper's alternating scheme. Pairs labelled 0.5 carry no ordering and are skipped by ``L_PM``.

* at test time the policy acts with the fitted optimum: ``a = pi_theta(s, z*)``.

Encoder choice (CPU-sized, as the issue allows): an **MLP set encoder** rather than the paper's
transformer. Each step ``(s_t, a_t, t / H)`` goes through a 2-layer MLP, the step features are averaged
over the segment (masked, so episodes shorter than the context window work), and a linear head gives
``z``. The contextual policy is a deterministic MLP ``tanh(f([s, z]))``.
HIM segments are windows of ``context_length`` steps sampled uniformly from the whole offline dataset
(never crossing an episode boundary); the preference loss uses the labelled pairs.

Defaults are the authors' D4RL (scripted-teacher) settings, ``oppo/scripted/gym/args.py`` and
``experiment.py`` of their code: ``z_dim = 8``, context ``K = 20``, batch 64, AdamW with lr 1e-4 and weight
decay 1e-4 for encoder and policy, the policy's lr warmed up linearly over 10,000 updates, ``z*`` drawn
from ``N(0, 2^2 I)`` and fitted by AdamW at lr 1e-3, margin 1.0, ``alpha`` (``pref_coeff``) 0.1, ``beta``
(``norm_coeff``) 0.1, gradient-norm clipping 0.25. (Their human-label settings differ: ``z_dim`` 16,
``K`` 100, ``alpha`` 10, ``z*`` lr 1e-2.) ``docs/hyperparameters.md`` lists each value and pbrl's
differences.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn as nn

from pbrl.agents.networks import DeterministicPolicy, mlp
from pbrl.agents.offline_base import OfflineAgent
from pbrl.preferences import PreferenceDataset

__all__ = ["OPPO", "SegmentEncoder", "him_loss", "triplet_loss", "context_norm_loss"]


# ---------------------------------------------------------------------------------------------- losses


def him_loss(pred_actions: torch.Tensor, actions: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Hindsight-information-matching loss (Kang et al. 2023): mean squared action error over valid steps.

    ``sum_{n,t} mask[n,t] * ||pred[n,t] - a[n,t]||^2 / (act_dim * sum mask)``, i.e. the MSE over every
    valid step and action dimension.

    Args:
        pred_actions, actions: ``[N, H, act_dim]``.
        mask: optional ``[N, H]`` 1.0 for valid steps (default all valid).
    """
    sq = (pred_actions - actions).pow(2).sum(-1)  # [N, H]
    if mask is None:
        mask = torch.ones_like(sq)
    return (sq * mask).sum() / (mask.sum().clamp_min(1.0) * actions.shape[-1])


def triplet_loss(anchor: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor, margin: float = 1.0) -> torch.Tensor:
    """Triplet preference loss (Kang et al. 2023): ``mean max(||a - p||_2 - ||a - n||_2 + margin, 0)``.

    Args:
        anchor: ``[d]`` (the optimal context ``z*``, broadcast) or ``[N, d]``.
        positive: ``[N, d]`` contexts of the preferred segments.
        negative: ``[N, d]`` contexts of the dispreferred segments.
        margin: ``m`` >= 0 (default 1.0).

    Returns:
        scalar; 0.0 for an empty batch.
    """
    if positive.shape[0] == 0:
        return positive.sum() * 0.0
    d_pos = torch.linalg.vector_norm(anchor - positive, dim=-1)
    d_neg = torch.linalg.vector_norm(anchor - negative, dim=-1)
    return torch.clamp(d_pos - d_neg + margin, min=0.0).mean()


def context_norm_loss(z: torch.Tensor) -> torch.Tensor:
    """Norm regulariser ``mean (||z||_2 - 1)^2`` over contexts ``z [N, d]``."""
    return (torch.linalg.vector_norm(z, dim=-1) - 1.0).pow(2).mean()


# ---------------------------------------------------------------------------------------------- networks


class SegmentEncoder(nn.Module):
    """MLP set encoder ``E(tau)``: ``obs [N, H, obs_dim], act [N, H, act_dim], mask [N, H] -> z [N, z_dim]``.

    Step features ``phi([s_t, a_t, t/H])`` (an MLP, ``hidden`` units, ReLU) are averaged over the valid
    steps and mapped to ``z`` by a linear layer.
    """

    def __init__(self, obs_dim: int, act_dim: int, z_dim: int = 16, hidden: tuple[int, ...] = (128, 128)):
        super().__init__()
        self.step = nn.Sequential(mlp(obs_dim + act_dim + 1, hidden[-1], hidden[:-1] or (hidden[-1],)), nn.ReLU())
        self.head = nn.Linear(hidden[-1], z_dim)

    def forward(self, obs: torch.Tensor, act: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        N, H = obs.shape[:2]
        t = torch.arange(H, dtype=obs.dtype, device=obs.device) / max(H, 1)
        x = torch.cat([obs, act, t.view(1, H, 1).expand(N, H, 1)], dim=-1)
        feats = self.step(x)  # [N, H, h]
        if mask is None:
            pooled = feats.mean(1)
        else:
            pooled = (feats * mask.unsqueeze(-1)).sum(1) / mask.sum(1, keepdim=True).clamp_min(1.0)
        return self.head(pooled)


class OptimalContext(nn.Module):
    """The learnable optimal context ``z* [z_dim]`` (a module so that save/load handle it like a network),
    initialised from ``N(0, init_std^2 I)`` (the authors' code: ``torch.randn(z_dim) * 2``)."""

    def __init__(self, z_dim: int, init_std: float = 2.0):
        super().__init__()
        self.z = nn.Parameter(torch.randn(z_dim) * init_std)

    def forward(self) -> torch.Tensor:
        return self.z


# ---------------------------------------------------------------------------------------------- agent


class OPPO(OfflineAgent):
    """OPPO (Kang et al., ICML 2023): contextual policy + set encoder + learned optimal context ``z*``.

    One update: (1) ``seg_batch_size`` dataset windows and ``pair_batch_size`` labelled pairs are encoded;
    the encoder and policy take one step on ``him_loss + pref_coeff * triplet_loss(z*.detach(), z+, z-)
    + norm_coeff * context_norm_loss``; (2) ``z*`` takes one step on ``triplet_loss(z*, z+, z-)`` with the
    updated (frozen) encoder. ``predict`` returns ``pi(s, z*)``.

    Args:
        obs_dim, act_dim: sizes.
        z_dim: context size ``d`` (default 8, the authors').
        context_length: steps per HIM window (default 20, the authors' ``K``; ``None``: the preference
            segments' length, capped at 50).
        encoder_hidden: the encoder's step-MLP layers (default (128, 128); the authors' encoder is a
            3-layer transformer of width 128).
        margin: triplet margin ``m`` (default 1.0).
        pref_coeff: weight ``alpha`` of the triplet loss in the encoder's objective (default 0.1).
        norm_coeff: weight ``beta`` of the context-norm regulariser (default 0.1).
        z_lr: learning rate of ``z*`` (default 1e-3, the authors'; ``None``: ``lr``).
        z_init_std: ``z*`` starts from ``N(0, z_init_std^2 I)`` (default 2.0, the authors').
        weight_decay: AdamW weight decay of every optimiser (default 1e-4, the authors'; 0 = Adam).
        warmup_steps: the policy's learning rate rises linearly from ``lr / warmup_steps`` to ``lr`` over
            this many updates (default 10,000, the authors'; 0 = none).
        seg_batch_size: HIM windows per update (default 64, the authors' batch).
        pair_batch_size: labelled pairs per update (default 64).
        max_grad_norm: gradient-norm clip of encoder and policy (default 0.25, as in the authors' code).
        **common: ``hidden`` (policy layers, default (256, 256)), ``lr`` (default 1e-4, the authors'),
            ``normalize_obs``, ``action_low``/``action_high``, ``seed``, ``device``: see :class:`OfflineAgent`.
    """

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        z_dim: int = 8,
        context_length: int | None = 20,
        encoder_hidden: tuple[int, ...] = (128, 128),
        margin: float = 1.0,
        pref_coeff: float = 0.1,
        norm_coeff: float = 0.1,
        z_lr: float | None = 1e-3,
        z_init_std: float = 2.0,
        weight_decay: float = 1e-4,
        warmup_steps: int = 10_000,
        seg_batch_size: int = 64,
        pair_batch_size: int = 64,
        max_grad_norm: float = 0.25,
        **common: Any,
    ):
        common.setdefault("lr", 1e-4)
        for name, v in (("z_dim", z_dim), ("seg_batch_size", seg_batch_size), ("pair_batch_size", pair_batch_size)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        if context_length is not None and (
            isinstance(context_length, bool) or not isinstance(context_length, (int, np.integer)) or context_length < 1
        ):
            raise ValueError(f"context_length must be a positive integer or None, got {context_length!r}")
        for name, v in (("margin", margin), ("pref_coeff", pref_coeff), ("norm_coeff", norm_coeff),
                        ("z_init_std", z_init_std), ("weight_decay", weight_decay)):
            if not (isinstance(v, (int, float)) and v >= 0):
                raise ValueError(f"{name} must be a non-negative number, got {v!r}")
        if isinstance(warmup_steps, bool) or not isinstance(warmup_steps, (int, np.integer)) or warmup_steps < 0:
            raise ValueError(f"warmup_steps must be a non-negative integer, got {warmup_steps!r}")
        if z_lr is not None and not (isinstance(z_lr, (int, float)) and z_lr > 0):
            raise ValueError(f"z_lr must be a positive number or None, got {z_lr!r}")
        if not (isinstance(max_grad_norm, (int, float)) and max_grad_norm > 0):
            raise ValueError(f"max_grad_norm must be a positive number, got {max_grad_norm!r}")
        if len(tuple(encoder_hidden)) == 0:
            raise ValueError("encoder_hidden must have at least one layer, e.g. (128, 128)")
        self.z_dim = int(z_dim)
        self.context_length = None if context_length is None else int(context_length)
        self.encoder_hidden = tuple(int(h) for h in encoder_hidden)
        self.margin, self.pref_coeff, self.norm_coeff = float(margin), float(pref_coeff), float(norm_coeff)
        self.z_lr = None if z_lr is None else float(z_lr)
        self.z_init_std, self.weight_decay, self.warmup_steps = float(z_init_std), float(weight_decay), int(warmup_steps)
        self.seg_batch_size, self.pair_batch_size = int(seg_batch_size), int(pair_batch_size)
        self.max_grad_norm = float(max_grad_norm)
        self._register_config(
            z_dim=self.z_dim,
            context_length=self.context_length,
            encoder_hidden=list(self.encoder_hidden),
            margin=self.margin,
            pref_coeff=self.pref_coeff,
            norm_coeff=self.norm_coeff,
            z_lr=self.z_lr,
            z_init_std=self.z_init_std,
            weight_decay=self.weight_decay,
            warmup_steps=self.warmup_steps,
            seg_batch_size=self.seg_batch_size,
            pair_batch_size=self.pair_batch_size,
            max_grad_norm=self.max_grad_norm,
        )
        super().__init__(obs_dim, act_dim, **common)

    def _build(self) -> None:
        encoder = SegmentEncoder(self.obs_dim, self.act_dim, self.z_dim, self.encoder_hidden)
        policy = DeterministicPolicy(self.obs_dim + self.z_dim, self.act_dim, self.hidden)
        z_star = OptimalContext(self.z_dim, self.z_init_std)
        self.nets = {"encoder": encoder, "policy": policy, "z_star": z_star}
        wd = self.weight_decay
        self.optims = {  # AdamW as in the authors' code; group 1 (the policy) has the warmed-up lr
            "model": torch.optim.AdamW([{"params": list(encoder.parameters())}, {"params": list(policy.parameters())}],
                                       lr=self.lr, weight_decay=wd),
            "z_star": torch.optim.AdamW(z_star.parameters(), lr=self.z_lr or self.lr, weight_decay=wd),
        }

    def policy_lr(self, update: int) -> float:
        """The policy's learning rate at update ``update`` (0-based): ``lr * min(1, (update + 1) / warmup_steps)``,
        the authors' linear warmup (their scheduler steps the decoder's optimiser only)."""
        if self.warmup_steps <= 0:
            return self.lr
        return self.lr * min(1.0, (update + 1) / self.warmup_steps)

    def _check_inputs(self, dataset: Any, preferences: PreferenceDataset | None) -> None:
        super()._check_inputs(dataset, preferences)
        if np.count_nonzero(preferences.label != 0.5) == 0:
            raise ValueError(
                "every label is 0.5 (equal preference): OPPO's triplet loss needs at least one strict preference"
            )

    # ------------------------------------------------------------------ data
    def _prepare(self, dataset: Any, preferences: PreferenceDataset | None) -> None:
        # HIM windows come from the flat arrays; an episode ends at a terminal or time-out flag
        obs = np.asarray(dataset.observations, np.float32)
        self._flat_obs = self.tensor(self._norm_obs_np(obs))
        self._flat_act = self.tensor(self._act_to_unit(np.asarray(dataset.actions, np.float32)))
        ends = np.asarray(dataset.terminals, bool) | np.asarray(dataset.timeouts, bool)
        ends[-1] = True
        end_idx = np.flatnonzero(ends)
        T = len(obs)
        self._episode_end = self.tensor(end_idx[np.searchsorted(end_idx, np.arange(T))], torch.long)
        self._window = self.context_length or min(preferences.segment_length, 50)
        self.pref = self.preference_tensors(preferences)
        self._strict = torch.nonzero(self.pref["label"] != 0.5).squeeze(-1)

    def _sample_windows(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """HIM windows: ``obs [B, H, obs_dim], act [B, H, act_dim], mask [B, H]`` (masked past the episode end)."""
        T = len(self._episode_end)
        start = torch.as_tensor(self.rng.integers(0, T, size=self.seg_batch_size), device=self.device)
        idx = start.unsqueeze(1) + torch.arange(self._window, device=self.device).unsqueeze(0)
        end = self._episode_end[start].unsqueeze(1)
        mask = (idx <= end).float()
        idx = torch.minimum(idx, end)
        return self._flat_obs[idx], self._flat_act[idx], mask

    def _sample_pairs(self) -> tuple[torch.Tensor, ...]:
        """Strictly ordered pairs as ``(obs+, act+, obs-, act-)``, each ``[B, H, dim]``."""
        pick = self._strict[torch.as_tensor(self.rng.integers(0, len(self._strict), size=self.pair_batch_size))]
        b_pref = (self.pref["label"][pick] > 0.5).view(-1, 1, 1)
        oa, ob = self.pref["obs_a"][pick], self.pref["obs_b"][pick]
        aa, ab = self.pref["act_a"][pick], self.pref["act_b"][pick]
        return torch.where(b_pref, ob, oa), torch.where(b_pref, ab, aa), torch.where(b_pref, oa, ob), torch.where(b_pref, aa, ab)

    # ------------------------------------------------------------------ update
    def _policy_with(self, obs: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """``pi(s, z)``: ``obs [..., obs_dim]``, ``z`` broadcastable to ``[..., z_dim]`` -> ``[..., act_dim]``."""
        z = z.expand(*obs.shape[:-1], self.z_dim)
        return self.nets["policy"](torch.cat([obs, z], dim=-1))

    def _sample(self) -> dict[str, torch.Tensor]:
        obs, act, mask = self._sample_windows()
        op, ap, on, an = self._sample_pairs()
        return {"obs": obs, "act": act, "mask": mask, "obs_pos": op, "act_pos": ap, "obs_neg": on, "act_neg": an}

    def _update_on(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        enc, z_star = self.nets["encoder"], self.nets["z_star"]
        obs, act, mask = batch["obs"], batch["act"], batch["mask"]
        op, ap, on, an = batch["obs_pos"], batch["act_pos"], batch["obs_neg"], batch["act_neg"]

        # (1) encoder + policy: HIM on dataset windows, triplet with z* frozen, norm regulariser
        def model_loss() -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
            z_seg = enc(obs, act, mask)  # [B, d]
            pred = self._policy_with(obs, z_seg.unsqueeze(1))
            l_him = him_loss(pred, act, mask)
            z_pos, z_neg = enc(op, ap), enc(on, an)
            l_pm = triplet_loss(z_star().detach(), z_pos, z_neg, self.margin)
            l_norm = context_norm_loss(torch.cat([z_seg, z_pos, z_neg], 0))
            return l_him + self.pref_coeff * l_pm + self.norm_coeff * l_norm, {"him_loss": l_him, "norm_loss": l_norm}

        self.optims["model"].param_groups[1]["lr"] = self.policy_lr(self.num_updates)
        _, logs = self._step("model", model_loss, max_grad_norm=self.max_grad_norm)
        # (2) z*: triplet loss with the encoder frozen
        with torch.no_grad():
            z_pos, z_neg = enc(op, ap), enc(on, an)
        logs["triplet_loss"] = self._step("z_star", lambda: triplet_loss(z_star(), z_pos, z_neg, self.margin))
        return logs

    def _policy_act(self, obs: torch.Tensor, deterministic: bool) -> torch.Tensor:
        """``pi(s, z*)`` (deterministic; the policy has no sampling noise)."""
        return self._policy_with(obs, self.nets["z_star"]())

    def context_of(self, obs: np.ndarray, act: np.ndarray) -> np.ndarray:
        """Encode segments: ``obs [N, H, obs_dim]``, ``act [N, H, act_dim]`` (env units) -> ``z [N, z_dim]``."""
        obs, act = np.asarray(obs, np.float32), np.asarray(act, np.float32)
        if obs.ndim != 3 or obs.shape[-1] != self.obs_dim or act.shape[:2] != obs.shape[:2] or act.shape[-1] != self.act_dim:
            raise ValueError(
                f"expected obs [N, H, {self.obs_dim}] and act [N, H, {self.act_dim}], got {obs.shape} and {act.shape}"
            )
        self.nets["encoder"].eval()
        with torch.no_grad():
            z = self.nets["encoder"](self.tensor(self._norm_obs_np(obs)), self.tensor(self._act_to_unit(act)))
        return z.cpu().numpy()

    @property
    def optimal_context(self) -> np.ndarray:
        """The fitted ``z* [z_dim]``."""
        return self.nets["z_star"]().detach().cpu().numpy().copy()
