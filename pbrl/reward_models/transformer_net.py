"""The Preference Transformer's network (Kim et al., ICLR 2023): a causal GPT-style transformer over
(state, action) tokens and the preference-attention layer (Eqs. 3-5), plus the sliding windows that relabel
a flat dataset. The model that trains it is :class:`pbrl.reward_models.transformer.PreferenceTransformer`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["CausalBlock", "PTNetwork", "relabel_windows"]


# ---------------------------------------------------------------------------------------- network
def _dropout(x: torch.Tensor, p: float, gen: torch.Generator | None) -> torch.Tensor:
    """Inverted dropout drawn from ``gen`` (seeded, saved with the model); identity when ``gen`` is None."""
    if gen is None or p <= 0.0:
        return x
    keep = torch.rand(x.shape, generator=gen, device=x.device) >= p
    return x * keep / (1.0 - p)


def _identity(x: torch.Tensor) -> torch.Tensor:
    return x


class CausalBlock(nn.Module):
    """A pre-LayerNorm GPT-2 block: ``x + Drop(Proj(Attn(LN(x))))`` (causal, multi-head), then
    ``x + Drop(MLP(LN(x)))`` with a ReLU MLP of width ``4 dim``.

    The Preference Transformer and the Decision Transformer (:mod:`pbrl.agents.decision_transformer`) share it.
    It holds no dropout of its own: ``forward(x, drop)`` applies ``drop`` to the attention weights and to both
    residual branches, in that order, so each caller keeps its own random stream (the Preference
    Transformer's seeded generator, the offline agents' dropout scope).

    Args:
        dim: token width; divisible by ``n_heads``.
        n_heads: attention heads.
    """

    def __init__(self, dim: int, n_heads: int):
        super().__init__()
        if dim % n_heads:
            raise ValueError(f"embed_dim ({dim}) must be divisible by n_heads ({n_heads})")
        self.n_heads = n_heads
        self.ln1, self.ln2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.fc1, self.fc2 = nn.Linear(dim, 4 * dim), nn.Linear(4 * dim, dim)

    def forward(self, x: torch.Tensor, drop: Callable[[torch.Tensor], torch.Tensor] = _identity) -> torch.Tensor:
        """``x`` ``[B, L, dim]`` -> ``[B, L, dim]``; token ``t`` attends to tokens ``<= t`` only."""
        B, L, D = x.shape
        h = self.n_heads
        q, k, v = self.qkv(self.ln1(x)).split(D, dim=-1)
        q, k, v = (t.reshape(B, L, h, D // h).transpose(1, 2) for t in (q, k, v))  # [B, h, L, d]
        att = q @ k.transpose(-1, -2) / math.sqrt(D // h)
        future = torch.ones(L, L, dtype=torch.bool, device=x.device).triu(1)
        att = drop(att.masked_fill(future, float("-inf")).softmax(-1))
        y = (att @ v).transpose(1, 2).reshape(B, L, D)
        x = x + drop(self.proj(y))
        return x + drop(self.fc2(F.relu(self.fc1(self.ln2(x)))))


class PTNetwork(nn.Module):
    """The Preference Transformer's network: ``forward(obs [B, H, o], act [B, H, a]) -> dict``.

    Returns ``reward`` ``[B, H]`` (``r_t``, causal), ``weight`` ``[B, H]`` (``w_t``, sums to 1 over the
    window), ``score`` ``[B]`` (``sum_t w_t r_t``), ``attention`` ``[B, H, H]`` (``A_it``) and ``hidden``
    ``[B, H, embed_dim]`` (``x_t``). ``gen`` (a torch Generator) turns dropout on; None is evaluation.
    """

    def __init__(self, obs_dim: int, act_dim: int, embed_dim: int, n_layers: int, n_heads: int,
                 pref_attn_dim: int, max_length: int, dropout: float):
        super().__init__()
        self.embed_obs = nn.Linear(obs_dim, embed_dim)
        self.embed_act = nn.Linear(act_dim, embed_dim)
        self.embed_pos = nn.Embedding(max_length, embed_dim)
        self.ln_in, self.ln_out = nn.LayerNorm(embed_dim), nn.LayerNorm(embed_dim)
        self.blocks = nn.ModuleList(CausalBlock(embed_dim, n_heads) for _ in range(n_layers))
        self.pref = nn.Linear(embed_dim, 2 * pref_attn_dim + 1)  # query, key, reward (the value)
        self.pref_attn_dim, self.dropout = pref_attn_dim, dropout

    def hidden(self, obs: torch.Tensor, act: torch.Tensor, gen: torch.Generator | None = None) -> torch.Tensor:
        """The causal transformer's output ``x_t`` ``[B, H, embed_dim]`` at every step's action token."""
        B, H, _ = obs.shape
        pos = self.embed_pos(torch.arange(H, device=obs.device))
        tokens = torch.stack([self.embed_obs(obs) + pos, self.embed_act(act) + pos], dim=2)  # [B, H, 2, D]
        x = _dropout(self.ln_in(tokens.reshape(B, 2 * H, -1)), self.dropout, gen)
        drop = partial(_dropout, p=self.dropout, gen=gen)
        for block in self.blocks:
            x = block(x, drop)
        return self.ln_out(x)[:, 1::2]  # the a_t token has seen s_1..s_t and a_1..a_t

    def forward(self, obs: torch.Tensor, act: torch.Tensor, gen: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        x = self.hidden(obs, act, gen)
        d = self.pref_attn_dim
        q, k, r = self.pref(x).split([d, d, 1], dim=-1)
        r = r.squeeze(-1)  # [B, H]
        attn = (q @ k.transpose(-1, -2) / math.sqrt(d)).softmax(-1)  # A_it, bidirectional  [B, H, H]
        w = attn.mean(dim=1)  # w_t = (1/H) sum_i A_it                                          [B, H]
        return {"reward": r, "weight": w, "score": (w * r).sum(-1), "attention": attn, "hidden": x}


def relabel_windows(episode_starts: np.ndarray, episode_ends: np.ndarray, context_length: int) -> dict[str, np.ndarray]:
    """The windows that relabel a flat dataset of episodes ``[starts[e], ends[e]]`` (inclusive) by
    sliding windows of ``H = context_length`` steps (see :meth:`PreferenceTransformer.relabel`).

    Returns ``first`` ``[E]`` (each episode's first window starts at its first step; its positions
    ``0 .. min(H, L) - 1`` give the rewards of the episode's first ``min(H, L)`` steps), ``first_len``
    ``[E]`` (``min(H, L)``), ``first_end`` ``[E]`` (the episode's last step, where a short episode's window
    is clipped), and ``last`` ``[W]`` (the flat steps t with a full history of H steps inside their
    episode: step t's reward is the last position of the window ``[t - H + 1, t]``).
    """
    starts = np.asarray(episode_starts, dtype=np.int64)
    ends = np.asarray(episode_ends, dtype=np.int64)
    H = int(context_length)
    lens = ends - starts + 1
    n_late = np.maximum(lens - H, 0)
    late = np.repeat(starts + H, n_late) + (np.arange(n_late.sum()) - np.repeat(np.cumsum(n_late) - n_late, n_late))
    return {"first": starts, "first_len": np.minimum(lens, H), "first_end": ends, "last": late.astype(np.int64)}
