"""The one batched ensemble MLP of pbrl: M independent MLPs evaluated as one network.

Used by the reward ensembles (:mod:`pbrl.reward_models`) and by the offline agents' ensemble layers.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["BatchedMLP", "ACTIVATIONS"]

# Activations applied in place where autograd allows it (their backward reads the output, not the
# input): this saves one activation-sized allocation per layer, which matters for memory-bound CPU work.
ACTIVATIONS = {
    "leaky_relu": lambda x: F.leaky_relu(x, 0.01, inplace=True),
    "relu": lambda x: F.relu(x, inplace=True),
    "tanh": lambda x: x.tanh_(),
    "elu": lambda x: F.elu(x, inplace=True),
    "silu": F.silu,
}

# ---------------------------------------------------------------------------------------- batched MLP
class BatchedMLP(nn.Module):
    """M independent MLPs evaluated together: ``forward(x [M, B, in]) -> [M, B, out]``.

    Each layer stores its weights as ``[M, in, out]`` and biases as ``[M, 1, out]`` and is applied to
    every member at once with ``torch.baddbmm``. Members are initialised independently (PyTorch's
    default ``nn.Linear`` scheme, U(-1/sqrt(in), 1/sqrt(in))) from a seeded generator.

    ``n_forward_calls`` counts calls to :meth:`forward`, so tests can check that an M-member ensemble
    costs one call per batch, not M.

    Args:
        n_members: M.
        in_dim, out_dim: input and output width.
        hidden: hidden layer widths, e.g. ``(256, 256, 256)``.
        activation: one of ``leaky_relu, relu, tanh, elu, silu``.
        seed: seed of the initialisation.
    """

    def __init__(
        self,
        n_members: int,
        in_dim: int,
        out_dim: int,
        hidden: tuple[int, ...] = (256, 256, 256),
        activation: str = "leaky_relu",
        seed: int = 0,
    ):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation '{activation}'; choose one of {sorted(ACTIVATIONS)}")
        gen = torch.Generator().manual_seed(int(seed))
        dims = [int(in_dim), *[int(h) for h in hidden], int(out_dim)]
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for d_in, d_out in zip(dims[:-1], dims[1:]):
            bound = 1.0 / math.sqrt(d_in)
            w = (torch.rand(n_members, d_in, d_out, generator=gen) * 2 - 1) * bound
            b = (torch.rand(n_members, 1, d_out, generator=gen) * 2 - 1) * bound
            self.weights.append(nn.Parameter(w))
            self.biases.append(nn.Parameter(b))
        self.act = ACTIVATIONS[activation]
        self.n_members = int(n_members)
        self.n_forward_calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x [M, B, in]`` (or ``[B, in]``, shared by all members) -> ``[M, B, out]``."""
        self.n_forward_calls += 1
        if x.dim() == 2:
            x = x.unsqueeze(0).expand(self.n_members, -1, -1)
        n = len(self.weights)
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            x = torch.baddbmm(b, x, w)
            if i < n - 1:
                x = self.act(x)
        return x
