"""The one batched ensemble MLP of pbrl: M independent MLPs evaluated as one network.

:class:`EnsembleMLP` serves the reward ensembles (:mod:`pbrl.reward_models`, under the name
:class:`BatchedMLP` with their defaults) and the offline agents' twin critics
(:class:`pbrl.agents.networks.TwinQ`). Its layers are :class:`EnsembleLinear` (one ``torch.baddbmm`` for
all members) in an ``nn.Sequential`` called ``net``, so a state dict reads ``net.<i>.weight [M, in, out]`` /
``net.<i>.bias [M, 1, out]``. State dicts of the older ``BatchedMLP`` layout (``weights.<k>`` /
``biases.<k>``, all weights before all biases) still load: a load pre-hook renames their keys, and
:func:`upgrade_optimizer_state` re-indexes an optimiser state saved with that parameter order.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["EnsembleMLP", "EnsembleLinear", "BatchedMLP", "Activation", "ACTIVATIONS", "is_legacy_state",
           "upgrade_optimizer_state"]

#: Activations applied in place where autograd allows it (their backward reads the output, not the
#: input): this saves one activation-sized allocation per layer, which matters for memory-bound CPU work.
ACTIVATIONS = {
    "leaky_relu": lambda x: F.leaky_relu(x, 0.01, inplace=True),
    "relu": lambda x: F.relu(x, inplace=True),
    "tanh": lambda x: x.tanh_(),
    "elu": lambda x: F.elu(x, inplace=True),
    "silu": F.silu,
}


class Activation(nn.Module):
    """The activation ``ACTIVATIONS[name]`` as a module (in place where autograd allows it)."""

    def __init__(self, name: str):
        super().__init__()
        if name not in ACTIVATIONS:
            raise ValueError(f"unknown activation '{name}'; choose one of {sorted(ACTIVATIONS)}")
        self.name = name

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return ACTIVATIONS[self.name](x)

    def extra_repr(self) -> str:
        return self.name


class EnsembleLinear(nn.Module):
    """``M`` independent linear layers applied in one batched matmul: ``[M, B, in] -> [M, B, out]``.

    Weights ``[M, in, out]`` and biases ``[M, 1, out]`` are initialised like ``nn.Linear`` (uniform in
    ``+-1/sqrt(in)``, weight first), from ``generator`` or, when it is ``None``, torch's global RNG.
    """

    def __init__(self, n_members: int, in_dim: int, out_dim: int, generator: torch.Generator | None = None):
        super().__init__()
        bound = 1.0 / math.sqrt(in_dim)
        self.weight = nn.Parameter(torch.empty(n_members, in_dim, out_dim).uniform_(-bound, bound, generator=generator))
        self.bias = nn.Parameter(torch.empty(n_members, 1, out_dim).uniform_(-bound, bound, generator=generator))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.baddbmm(self.bias, x, self.weight)


class EnsembleMLP(nn.Module):
    """``n_members`` MLPs evaluated together (no Python loop over members).

    ``forward(x)``: ``x [B, in_dim]`` (shared by all members) or ``[M, B, in_dim]`` -> ``[M, B, out_dim]``;
    one ``torch.baddbmm`` per layer for all members. ``n_forward_calls`` counts calls to :meth:`forward`, so
    tests can check that an M-member ensemble costs one call per batch, not M.

    Args:
        n_members: M.
        in_dim, out_dim: input and output width.
        hidden: hidden layer widths (default ``(256, 256)``).
        activation: a name of :data:`ACTIVATIONS` (``leaky_relu, relu, tanh, elu, silu``, applied in place)
            or an ``nn.Module`` class (default ``nn.ReLU``).
        layer_norm: a ``LayerNorm`` (shared by the members) after every hidden layer, before the activation.
        seed: seed of the initialisation (a private generator); ``None``: torch's global RNG.
    """

    def __init__(
        self,
        n_members: int,
        in_dim: int,
        out_dim: int,
        hidden: Sequence[int] = (256, 256),
        activation: str | type[nn.Module] = nn.ReLU,
        layer_norm: bool = False,
        seed: int | None = None,
    ):
        super().__init__()
        if isinstance(activation, str) and activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation '{activation}'; choose one of {sorted(ACTIVATIONS)}")
        gen = None if seed is None else torch.Generator().manual_seed(int(seed))
        dims = [int(in_dim), *[int(h) for h in hidden], int(out_dim)]
        layers: list[nn.Module] = []
        for i, (d_in, d_out) in enumerate(zip(dims[:-1], dims[1:])):
            layers.append(EnsembleLinear(n_members, d_in, d_out, generator=gen))
            if i < len(dims) - 2:
                if layer_norm:
                    layers.append(nn.LayerNorm(d_out))
                layers.append(Activation(activation) if isinstance(activation, str) else activation())
        self.net = nn.Sequential(*layers)
        self.n_members = int(n_members)
        self.n_forward_calls = 0
        self._linear_at = [i for i, m in enumerate(self.net) if isinstance(m, EnsembleLinear)]
        self.register_load_state_dict_pre_hook(_rename_legacy_keys)

    @property
    def weights(self) -> list[nn.Parameter]:
        """Every layer's weight ``[M, in, out]``, input layer first."""
        return [self.net[i].weight for i in self._linear_at]

    @property
    def biases(self) -> list[nn.Parameter]:
        """Every layer's bias ``[M, 1, out]``, input layer first."""
        return [self.net[i].bias for i in self._linear_at]

    def legacy_key(self, key: str) -> str:
        """The key of this layout for a key of the older ``BatchedMLP`` layout (``weights.<k>`` ->
        ``net.<i>.weight``, ``biases.<k>`` -> ``net.<i>.bias``); other keys unchanged."""
        for old, attr in (("weights.", "weight"), ("biases.", "bias")):
            if key.startswith(old) and key[len(old):].isdigit():
                return f"net.{self._linear_at[int(key[len(old):])]}.{attr}"
        return key

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.n_forward_calls += 1
        if x.dim() == 2:
            x = x.unsqueeze(0).expand(self.n_members, *x.shape)
        return self.net(x)


class BatchedMLP(EnsembleMLP):
    """:class:`EnsembleMLP` with the reward ensembles' defaults: 3 x 256 hidden units, leaky ReLU, seed 0
    (the name the reward models and older code import; same numbers for the same seed as before)."""

    def __init__(
        self,
        n_members: int,
        in_dim: int,
        out_dim: int,
        hidden: Sequence[int] = (256, 256, 256),
        activation: str = "leaky_relu",
        seed: int = 0,
    ):
        super().__init__(n_members, in_dim, out_dim, hidden, activation, seed=seed)


def _rename_legacy_keys(module: EnsembleMLP, state_dict: dict, prefix: str, *_: Any) -> None:
    """Load pre-hook: keys of the older ``BatchedMLP`` layout renamed to this layout, in place."""
    for key in [k for k in state_dict if k.startswith(prefix)]:
        new = module.legacy_key(key[len(prefix):])
        if new != key[len(prefix):]:
            state_dict[prefix + new] = state_dict.pop(key)


def is_legacy_state(state_dict: dict) -> bool:
    """Whether ``state_dict`` (of one ensemble MLP) is in the older ``BatchedMLP`` layout."""
    return any(k.startswith("weights.") for k in state_dict)


def upgrade_optimizer_state(net: nn.Module, weights: dict, optimizer_state: dict) -> dict:
    """An optimiser state saved beside ``weights`` (the net's state dict as saved), re-indexed for ``net``.

    Older ``BatchedMLP`` nets registered all weights before all biases, so an optimiser over their
    ``parameters()`` numbered them in that order; :class:`EnsembleMLP` registers them layer by layer.
    Returns ``optimizer_state`` itself when ``weights`` is not in the older layout (or ``net`` is not an
    ensemble MLP); otherwise a copy whose per-parameter states follow ``net.parameters()``.
    """
    if not isinstance(net, EnsembleMLP) or not is_legacy_state(weights):
        return optimizer_state
    names = [n for n, _ in net.named_parameters()]
    to_new = {i: names.index(net.legacy_key(k)) for i, k in enumerate(weights)}
    groups = [{**g, "params": sorted(to_new[i] for i in g["params"])} for g in optimizer_state["param_groups"]]
    return {"state": {to_new[int(i)]: s for i, s in optimizer_state["state"].items()}, "param_groups": groups}
