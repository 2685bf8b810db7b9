"""The Decision Transformer network (Chen et al., NeurIPS 2021) as DTR uses it: a causal GPT-2 over
``(R_1, s_1, a_1, R_2, s_2, a_2, ...)`` tokens, the action predicted from each state token and the next state
from each action token.

Shapes: ``rtg [B, L]`` (returns-to-go, already divided by the agent's scale), ``obs [B, L, obs_dim]``
(normalised), ``act [B, L, act_dim]`` (in ``[-1, 1]``), ``timestep [B, L]`` (int64, the step's index in
its episode). Sequences shorter than ``L`` are padded on the *right*: with causal attention no valid token
sees a padded one, so the valid positions' outputs are those of the unpadded sequence (the DT code pads on
the left and masks the padded keys instead; the numbers are the same).

Dropout is :class:`pbrl.agents.networks.Dropout`, so an offline agent's ``_dropout_scope`` (and
:class:`~pbrl.agents.multiseed.MultiSeed`) draws its masks from the update's seed.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from pbrl.agents.networks import Dropout
from pbrl.reward_models.transformer_net import CausalBlock

__all__ = ["DecisionTransformerNet"]


class DecisionTransformerNet(nn.Module):
    """``forward(rtg, obs, act, timestep) -> (action [B, L, act_dim] in [-1, 1], next_state [B, L, obs_dim])``.

    Each modality has its own linear embedding, plus a learned embedding of the step's index in its episode
    (the DT's positional encoding; indices are clipped to ``max_ep_len - 1``), a LayerNorm over the
    interleaved tokens, embedding dropout, ``n_layers`` GPT-2 blocks and a final LayerNorm. The action head
    (linear + tanh) reads the state token ``s_t``; the state head reads the action token ``a_t`` and
    predicts ``s_{t+1}`` (DTR's auxiliary state loss).

    Args:
        obs_dim, act_dim: sizes.
        embed_dim: token width (DTR: 256).
        n_layers, n_heads: transformer depth and heads (DTR: 4 and 4).
        dropout: embedding, attention and residual dropout (DTR: 0.1).
        max_ep_len: size of the timestep embedding table (DTR: 1000).
    """

    def __init__(self, obs_dim: int, act_dim: int, embed_dim: int = 256, n_layers: int = 4, n_heads: int = 4,
                 dropout: float = 0.1, max_ep_len: int = 1000):
        super().__init__()
        self.max_ep_len = int(max_ep_len)
        D = embed_dim
        self.embed_rtg, self.embed_state, self.embed_action = nn.Linear(1, D), nn.Linear(obs_dim, D), nn.Linear(act_dim, D)
        self.embed_time = nn.Embedding(self.max_ep_len, D)
        self.embed_ln, self.drop = nn.LayerNorm(D), Dropout(dropout)
        self.blocks = nn.ModuleList([CausalBlock(D, n_heads) for _ in range(n_layers)])  # ReLU MLP, as DT's code
        self.ln_f = nn.LayerNorm(D)
        self.predict_action, self.predict_state = nn.Linear(D, act_dim), nn.Linear(D, obs_dim)
        for blk in self.blocks:  # GPT-2's initialisation of the transformer's weights
            for name, p in blk.named_parameters():
                if name.endswith("weight") and p.dim() == 2:
                    std = 0.02 / math.sqrt(2 * n_layers) if name.startswith(("proj", "fc2")) else 0.02
                    nn.init.normal_(p, 0.0, std)
                elif name.endswith("bias") and not name.startswith("ln"):
                    nn.init.zeros_(p)

    def forward(self, rtg: torch.Tensor, obs: torch.Tensor, act: torch.Tensor,
                timestep: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        B, L = rtg.shape
        t = self.embed_time(timestep.clamp(0, self.max_ep_len - 1))
        tokens = torch.stack(
            (self.embed_rtg(rtg.unsqueeze(-1)) + t, self.embed_state(obs) + t, self.embed_action(act) + t), dim=2
        ).reshape(B, 3 * L, -1)
        x = self.drop(self.embed_ln(tokens))
        for blk in self.blocks:
            x = blk(x, self.drop)
        x = self.ln_f(x).reshape(B, L, 3, -1)
        return torch.tanh(self.predict_action(x[:, :, 1])), self.predict_state(x[:, :, 2])
