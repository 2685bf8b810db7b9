"""Hindsight PRIOR: credit assignment from a world model's attention, on top of PEBBLE.

Verma & Metcalf, "Hindsight PRIORs for Reward Learning from Human Preferences", ICLR 2024.

What makes Hindsight PRIOR, all in this file:

1. **A world model** (:class:`WorldModel`): a small causal transformer over the interleaved tokens
   ``(s_1, a_1, ..., s_H, a_H)`` of a segment that predicts each next state ``s_{t+1}`` from the output at
   token ``a_t``. It is trained on windows of the agent's recorded episodes (the replay data the wrapper
   keeps) with an L1 loss, before every reward update.
2. **State importance** (Sec. 4.1): ``alpha_t`` = the attention the last token (``a_H``) pays to ``s_t`` plus
   to ``a_t``, averaged over the layers (:meth:`WorldModel.importance`); over a segment the ``alpha_t`` sum to 1.
3. **The prior** (Sec. 4.2, Eq. 3): each step's predicted reward is pulled toward its share of the segment's
   predicted return, ``L_prior = mean_t (r_hat(s_t, a_t) - alpha_t * sum_k r_hat(s_k, a_k))^2``, and the reward
   objective is ``L_BT + lambda * L_prior`` (:class:`HindsightPriorLoss`, a
   :class:`~pbrl.reward_models.training.LossTerm` beside PEBBLE's Bradley-Terry term).

Everything else is PEBBLE's (:class:`~pbrl.agents.pebble.PEBBLE`). Offline, the same world model and loss
term serve MR+IQL's ``reward_prior="hindsight"`` option (:class:`~pbrl.agents.iql.MRIQL`, the WiseRL port's
setting: the world model pre-trains once on the dataset's episodes, then the reward fit). The world model, its optimizer, input
statistics and random generators are checkpointed (the loss term is also the :class:`FeedbackHook` that trains
the world model, and hooks' states are saved with the feedback callback).

Choices the paper leaves open, and pbrl's (``docs/hyperparameters.md``, ``docs/agents/hprior.md``):

* world model size: embedding 256, 3 layers, 1 head, dropout 0.1, learned step embeddings, lr 3e-4, batch 16
  windows (WiseRL's public ``prior`` port);
* when it trains: ``world_pretrain_steps = 10000`` steps at the first reward update (the port's pre-training),
  then ``world_update_steps = 1000`` more before each later update, on windows of the last episodes;
* inputs standardised with the statistics of the data at the first update (fixed afterwards), the L1 loss
  averaged over windows, steps and state dimensions (the port sums over the batch);
* ``alpha`` is computed in evaluation mode (no dropout) once per reward fit and held fixed during it;
* the predicted return inside the target is not detached (as the port).
"""

from __future__ import annotations

import copy
import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pbrl.agents.pebble import PEBBLE
from pbrl.online import FeedbackHook, PreferenceCallback
from pbrl.reward_models.training import BradleyTerryLoss, LossTerm, PairBatch
from pbrl.segments import Trajectory
from pbrl.validation import check_int

__all__ = ["WorldModel", "HindsightPriorLoss", "HPRIOR", "WORLD_MODEL_DEFAULTS"]

#: WiseRL's ``prior`` port (Meta-World config): embedding 256, 3 layers, 1 head, dropout 0.1, Adam lr 3e-4,
#: batch 16 windows, 10000 pre-training steps
WORLD_MODEL_DEFAULTS: dict[str, Any] = {"embed_dim": 256, "n_layers": 3, "n_heads": 1, "dropout": 0.1}


class _Block(nn.Module):
    """A GPT-2 block (pre-norm causal self-attention, then a 4x MLP) that also returns its attention."""

    def __init__(self, d: int, n_heads: int):
        super().__init__()
        self.n_heads = n_heads
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv, self.proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))

    def forward(self, x: torch.Tensor, drop) -> tuple[torch.Tensor, torch.Tensor]:
        B, T, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).view(B, T, 3, self.n_heads, d // self.n_heads).permute(2, 0, 3, 1, 4)
        att = (q @ k.transpose(-2, -1)) / math.sqrt(d // self.n_heads)  # [B, heads, T, T]
        causal = torch.ones(T, T, dtype=torch.bool, device=x.device).tril()
        att = att.masked_fill(~causal, float("-inf")).softmax(-1)
        y = (drop(att) @ v).transpose(1, 2).reshape(B, T, d)
        x = x + drop(self.proj(y))
        x = x + drop(self.mlp(self.ln2(x)))
        return x, att.mean(1)  # attention averaged over heads: [B, T, T]


class WorldModel(nn.Module):
    """Causal transformer over ``(s_1, a_1, ..., s_H, a_H)`` predicting ``s_{t+1}`` at token ``a_t``.

    Args:
        obs_dim, act_dim: sizes of a state and an action.
        max_len: the longest segment (number of learned step embeddings).
        embed_dim, n_layers, n_heads, dropout: :data:`WORLD_MODEL_DEFAULTS`.
        seed: seeds the weights and the dropout generator.
    """

    def __init__(self, obs_dim: int, act_dim: int, max_len: int, embed_dim: int = 256, n_layers: int = 3,
                 n_heads: int = 1, dropout: float = 0.1, seed: int = 0):
        if embed_dim % n_heads:
            raise ValueError(f"embed_dim ({embed_dim}) must be a multiple of n_heads ({n_heads})")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        super().__init__()
        with torch.random.fork_rng(devices=[]):  # seeded weights; the caller's global RNG is left as it was
            torch.manual_seed(seed)
            self.obs_embed, self.act_embed = nn.Linear(obs_dim, embed_dim), nn.Linear(act_dim, embed_dim)
            self.step_embed = nn.Embedding(max_len, embed_dim)
            self.embed_ln = nn.LayerNorm(embed_dim)
            self.blocks = nn.ModuleList([_Block(embed_dim, n_heads) for _ in range(n_layers)])
            self.ln_f = nn.LayerNorm(embed_dim)
            self.obs_head = nn.Linear(embed_dim, obs_dim)
        self.p = float(dropout)
        self.max_len = int(max_len)
        self.gen = torch.Generator().manual_seed(seed + 1)

    def _drop(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = torch.rand(x.shape, generator=self.gen) >= self.p
        return x * keep / (1.0 - self.p)

    def forward(self, obs: torch.Tensor, act: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """``obs [B, H, obs_dim]``, ``act [B, H, act_dim]`` -> (predicted next states ``[B, H, obs_dim]``,
        per-layer attention ``[B, 2H, 2H]``)."""
        B, H, _ = obs.shape
        if H > self.max_len:
            raise ValueError(f"segments of {H} steps are longer than the world model's {self.max_len}")
        pos = self.step_embed(torch.arange(H, device=obs.device))
        tokens = torch.stack([self.obs_embed(obs) + pos, self.act_embed(act) + pos], dim=2).reshape(B, 2 * H, -1)
        x = self._drop(self.embed_ln(tokens))
        atts = []
        for blk in self.blocks:
            x, att = blk(x, self._drop)
            atts.append(att)
        return self.obs_head(self.ln_f(x)[:, 1::2]), atts

    @torch.no_grad()
    def importance(self, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        """``alpha [B, H]``: the last token's attention to ``s_t`` plus ``a_t``, averaged over layers (eval mode)."""
        was = self.training
        self.eval()
        _, atts = self(obs, act)
        self.train(was)
        last = torch.stack([a[:, -1] for a in atts], 1)  # [B, layers, 2H]
        return last.reshape(*last.shape[:2], -1, 2).sum(-1).mean(1)


class HindsightPriorLoss(LossTerm, FeedbackHook):
    """``lambda * mean_t (r_t - alpha_t * R_hat)^2`` per member (Eq. 3), and the hook that trains the world model.

    As a :class:`FeedbackHook` (``after_labels``, before every reward refit) it trains the world model on
    ``segment_length``-step windows of the callback's episodes: ``pretrain_steps`` at the first refit,
    ``update_steps`` at each later one. As a :class:`LossTerm` it computes ``alpha`` for every training pair
    at the start of a fit (``start``) and, per minibatch, the prior against the Bradley-Terry term's per-step
    rewards (``batch.cache["rewards"]``, so it must come after a :class:`BradleyTerryLoss`).

    Args:
        weight: lambda (default 1000, WiseRL's port).
        pretrain_steps: world-model steps at the first refit (default 10000).
        update_steps: world-model steps before each later refit (default 1000).
        batch_size: windows per world-model step (default 16).
        lr: world-model Adam learning rate (default 3e-4).
        world_kwargs: :class:`WorldModel` sizes (default :data:`WORLD_MODEL_DEFAULTS`).
        seed: seeds the world model, its dropout and its window sampling.
    """

    name = "hindsight_prior"

    def __init__(self, weight: float = 1000.0, pretrain_steps: int = 10_000, update_steps: int = 1000,
                 batch_size: int = 16, lr: float = 3e-4, world_kwargs: dict | None = None, seed: int = 0):
        if not (np.isfinite(weight) and weight >= 0):
            raise ValueError(f"prior weight (lambda) must be a finite number >= 0, got {weight}")
        check_int("world_pretrain_steps", pretrain_steps, 0)
        check_int("world_update_steps", update_steps, 0)
        check_int("world_batch_size", batch_size, 1)
        if not lr > 0:
            raise ValueError(f"world model lr must be > 0, got {lr}")
        bad = set(world_kwargs or {}) - set(WORLD_MODEL_DEFAULTS)
        if bad:
            raise ValueError(f"unknown world_kwargs {sorted(bad)}; allowed keys: {', '.join(WORLD_MODEL_DEFAULTS)}")
        self.weight, self.lr = float(weight), float(lr)
        self.pretrain_steps, self.update_steps, self.batch_size = int(pretrain_steps), int(update_steps), int(batch_size)
        self.world_kwargs = {**WORLD_MODEL_DEFAULTS, **(world_kwargs or {})}
        self.seed = int(seed)
        self.rng = np.random.default_rng(seed)
        self.world: WorldModel | None = None
        self.optimizer: torch.optim.Optimizer | None = None
        self.stats: dict[str, np.ndarray] | None = None
        self.steps_trained = 0
        self.last_world_loss = float("nan")
        self._alpha: torch.Tensor | None = None
        self._last_prior = float("nan")

    # ------------------------------------------------------------------ the world model
    def _windows(self, episodes: list[Trajectory], H: int, n: int) -> tuple[np.ndarray, ...]:
        """``n`` random windows ``(obs [n, H, o], act [n, H, a], next_obs [n, H, o])`` of the episodes."""
        exts = [np.concatenate([t.obs, t.next_obs[None]]) if t.next_obs is not None else t.obs for t in episodes]
        starts = [len(e) - H for e in exts]  # windows whose H next states are known
        ok = [i for i, s in enumerate(starts) if s >= 1]
        if not ok:
            raise ValueError(f"the world model needs episodes longer than {H} steps")
        counts = np.array([starts[i] for i in ok], dtype=np.float64)
        ep = self.rng.choice(ok, size=n, p=counts / counts.sum())
        st = np.array([self.rng.integers(0, starts[i]) for i in ep])
        o = np.stack([exts[i][s : s + H] for i, s in zip(ep, st)])
        nx = np.stack([exts[i][s + 1 : s + H + 1] for i, s in zip(ep, st)])
        a = np.stack([episodes[i].act[s : s + H] for i, s in zip(ep, st)])
        return o, a, nx

    def _norm(self, obs: np.ndarray | torch.Tensor, act: np.ndarray | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        s = self.stats
        o = (torch.as_tensor(obs, dtype=torch.float32) - s["obs_mean"]) / s["obs_std"]
        a = (torch.as_tensor(act, dtype=torch.float32) - s["act_mean"]) / s["act_std"]
        return o, a

    def _build(self, episodes: list[Trajectory], H: int) -> None:
        obs = np.concatenate([t.obs for t in episodes])
        act = np.concatenate([t.act for t in episodes])
        self.stats = {k: torch.as_tensor(v, dtype=torch.float32) for k, v in (
            ("obs_mean", obs.mean(0)), ("obs_std", np.maximum(obs.std(0), 1e-3)),
            ("act_mean", act.mean(0)), ("act_std", np.maximum(act.std(0), 1e-3)))}
        self.world = WorldModel(obs.shape[1], act.shape[1], H, seed=self.seed, **self.world_kwargs)
        self.optimizer = torch.optim.Adam(self.world.parameters(), lr=self.lr)

    def train_world(self, episodes: list[Trajectory], H: int, steps: int) -> float:
        """``steps`` Adam steps of the L1 next-state loss on random windows; returns the last loss."""
        if self.world is None:
            self._build(episodes, H)
        self.world.train()
        for _ in range(steps):
            o, a, nx = self._windows(episodes, H, self.batch_size)
            on, an = self._norm(o, a)
            target = (torch.as_tensor(nx, dtype=torch.float32) - self.stats["obs_mean"]) / self.stats["obs_std"]
            pred, _ = self.world(on, an)
            loss = F.l1_loss(pred, target)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            self.last_world_loss = float(loss.detach())
            self.steps_trained += 1
        self.world.eval()
        return self.last_world_loss

    def importance(self, obs: np.ndarray, act: np.ndarray) -> np.ndarray:
        """``alpha [N, H]`` of segments ``obs [N, H, obs_dim]``, ``act [N, H, act_dim]``."""
        if self.world is None:
            raise ValueError("the world model is not trained yet; it trains at the first reward update")
        o, a = self._norm(obs, act)
        return torch.cat([self.world.importance(o[i : i + 256], a[i : i + 256])
                          for i in range(0, len(o), 256)]).numpy()

    # ------------------------------------------------------------------ FeedbackHook
    def after_labels(self, callback: PreferenceCallback, episodes: list[Trajectory]) -> None:
        steps = self.pretrain_steps if self.world is None else self.update_steps
        if steps > 0 or self.world is None:
            self.train_world(episodes, callback.segment_length, steps)
        callback.logger.record("hprior/world_loss", self.last_world_loss)

    def state(self) -> dict[str, Any]:
        return {
            "rng": self.rng.bit_generator.state, "steps_trained": self.steps_trained,
            "last_world_loss": self.last_world_loss,
            "world": None if self.world is None else {
                "max_len": self.world.max_len, "obs_dim": self.world.obs_embed.in_features,
                "act_dim": self.world.act_embed.in_features, "weights": copy.deepcopy(self.world.state_dict()),
                "gen": self.world.gen.get_state(), "optimizer": copy.deepcopy(self.optimizer.state_dict()),
                "stats": {k: v.clone() for k, v in self.stats.items()}},
        }

    def load_state(self, state: dict[str, Any]) -> None:
        self.rng.bit_generator.state = state["rng"]
        self.steps_trained = int(state["steps_trained"])
        self.last_world_loss = float(state["last_world_loss"])
        w = state["world"]
        if w is None:
            self.world, self.optimizer, self.stats = None, None, None
            return
        self.world = WorldModel(w["obs_dim"], w["act_dim"], w["max_len"], seed=self.seed, **self.world_kwargs)
        self.world.load_state_dict(w["weights"])
        self.world.gen.set_state(w["gen"])
        self.world.eval()
        self.optimizer = torch.optim.Adam(self.world.parameters(), lr=self.lr)
        self.optimizer.load_state_dict(w["optimizer"])
        self.stats = {k: v.clone() for k, v in w["stats"].items()}

    # ------------------------------------------------------------------ LossTerm
    def start(self, model: Any, train: Any) -> None:
        od = train.a.obs_dim
        x = model._pair_inputs(train.a, train.b).cpu()  # [N, 2, H, obs + act], raw
        N, _, H, _ = x.shape
        alpha = self.importance(x[..., :od].reshape(2 * N, H, od).numpy(), x[..., od:].reshape(2 * N, H, -1).numpy())
        self._alpha = torch.as_tensor(alpha, device=model.device).reshape(N, 2, H)

    def __call__(self, model: Any, batch: PairBatch) -> torch.Tensor:
        rewards = batch.cache.get("rewards")
        if rewards is None or self._alpha is None:
            raise ValueError("the hindsight prior comes after a BradleyTerryLoss in losses=[...] (it reads its rewards)")
        alpha = self._alpha[batch.idx]  # [M, B, 2, H]
        target = alpha * rewards.sum(-1, keepdim=True)
        prior = ((rewards - target) ** 2).mean(dim=(1, 2, 3))  # [M]
        self._last_prior = float(prior.detach().mean())
        return self.weight * prior

    def summary(self) -> dict[str, float]:
        return {"prior_loss": self._last_prior, "world_loss": self.last_world_loss}


class HPRIOR(PEBBLE):
    """PEBBLE + Hindsight PRIOR's world-model credit-assignment prior (see the module docstring).

    Extra args:
        prior_weight: lambda of Eq. 3 (default 1000).
        world_pretrain_steps: world-model steps at the first reward update (default 10000).
        world_update_steps: world-model steps before each later update (default 1000).
        world_batch_size: windows per world-model step (default 16).
        world_lr: world-model learning rate (default 3e-4).
        world_kwargs: :class:`WorldModel` sizes (default :data:`WORLD_MODEL_DEFAULTS`).

    Every other argument and default as :class:`~pbrl.agents.pebble.PEBBLE`. Learns from preference pairs only.
    """

    feedback_kinds = ("preference",)

    def __init__(self, *args, prior_weight: float = 1000.0, world_pretrain_steps: int = 10_000,
                 world_update_steps: int = 1000, world_batch_size: int = 16, world_lr: float = 3e-4,
                 world_kwargs: dict | None = None, seed: int = 0, **kwargs):
        self.prior = HindsightPriorLoss(prior_weight, world_pretrain_steps, world_update_steps, world_batch_size,
                                        world_lr, world_kwargs, seed=seed)
        super().__init__(*args, seed=seed, **kwargs)

    def _loss_terms(self) -> list:
        return [BradleyTerryLoss(), self.prior]

    def _make_hooks(self) -> list[FeedbackHook]:
        return [self.prior, *super()._make_hooks()]
