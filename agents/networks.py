"""The networks pbrl's offline agents share: MLPs, ensembles, twin critics, value nets and policies.

Shapes follow the agents' convention (any leading shape, features last). Every module here is plain
``torch.nn``; the agents in :mod:`pbrl.agents` compose them (IQL, IPL and PEARL: :class:`TwinQ`,
:class:`ValueNet`, :class:`GaussianPolicy`; CPL, BC and OPPO: :class:`DeterministicPolicy`).
:mod:`pbrl.agents.offline_base` re-exports every name for older imports. :class:`EnsembleMLP` and
:class:`EnsembleLinear` are pbrl's one batched ensemble MLP (:mod:`pbrl.reward_models.networks`, which the
reward ensembles share), importable from here as before.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn as nn

from pbrl.reward_models.networks import EnsembleLinear, EnsembleMLP  # the one batched ensemble MLP of pbrl

__all__ = [
    "Dropout",
    "dropout_noise",
    "mlp",
    "orthogonal_init",
    "EnsembleLinear",
    "EnsembleMLP",
    "TwinQ",
    "ValueNet",
    "DeterministicPolicy",
    "GaussianPolicy",
    "soft_update",
    "expectile_loss",
]

# ---------------------------------------------------------------------------------------------- networks


def dropout_noise(shape: Sequence[int], p: float, rng: np.random.Generator,
                  device: torch.device | str = "cpu") -> torch.Tensor:
    """Scaled dropout noise ``keep / (1 - p)`` of ``shape`` (float32), drawn from ``rng``'s raw bits.

    Each element is kept with probability ``1 - p`` and then holds ``1 / (1 - p)`` (the float32 value that
    ``F.dropout`` multiplies by), else 0. The draw reads ``rng.bit_generator.random_raw`` and compares each
    element's ``k`` bits with ``p 2^k``: ``k = 8`` when ``p`` is a multiple of ``1/256`` (0.25, 0.5, ...),
    ``k = 16`` when it is a multiple of ``1/65536``, so the keep probability is exactly ``1 - p``; any other
    ``p`` compares a float32 uniform (``rng.random``) with ``p``, as exact as ``bernoulli_``. One 64-bit draw
    yields 8 (or 4) masks, and a lookup table turns each element's bits into its noise in one pass: about
    5x cheaper on one CPU thread than ``bernoulli_`` and ``div_`` (``scripts/bench_speed.py``).
    The same ``rng`` state gives the same noise; the masks are drawn on the CPU and the noise is made on
    ``device``.
    """
    n = math.prod(shape)
    scale = torch.ones((), dtype=torch.float32).div_(1.0 - p)  # F.dropout's scale, rounded the same way
    for bits, dtype in ((8, np.uint8), (16, np.uint16)):
        threshold = p * 2**bits
        if threshold == int(threshold):
            raw = rng.bit_generator.random_raw(-(-n * bits // 64)).view(dtype)[:n]
            table = np.where(np.arange(2**bits) >= int(threshold), scale.numpy(), np.float32(0.0))
            noise = table[raw]  # one lookup per element: compare and scale in one pass
            break
    else:
        noise = np.where(rng.random(n, dtype=np.float32) >= np.float32(p), scale.numpy(), np.float32(0.0))
    return torch.from_numpy(noise).reshape(tuple(shape)).to(device)


class Dropout(nn.Dropout):
    """``nn.Dropout`` that draws its masks from :attr:`noise_source` when one is set.

    Outside a source's scope it is plain ``nn.Dropout`` (``F.dropout``: ``bernoulli(1 - p) / (1 - p)`` from
    torch's global generator). The offline agents set a source for each update
    (:meth:`pbrl.agents.offline_base.OfflineAgent._dropout_scope`: :func:`dropout_noise` from a generator
    seeded by the update's ``torch_seed``), and :class:`pbrl.agents.multiseed.MultiSeed` sets one while K
    seeds run vmapped, so that each seed's masks come from that seed's own generator, exactly as in a
    single-seed run.
    """

    #: ``noise_source(shape, p) -> noise``, the scaled masks of one call (``None``: plain ``nn.Dropout``)
    noise_source: Callable[[torch.Size, float], torch.Tensor] | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        source = Dropout.noise_source
        if source is None or not self.training or self.p == 0.0:
            return super().forward(x)
        return x * source(x.shape, self.p)


def mlp(
    in_dim: int,
    out_dim: int,
    hidden: Sequence[int] = (256, 256),
    activation: type[nn.Module] = nn.ReLU,
    layer_norm: bool = False,
    dropout: float = 0.0,
) -> nn.Sequential:
    """A fully connected network ``in_dim -> hidden... -> out_dim`` (no output activation).

    Works on any leading shape: ``[..., in_dim] -> [..., out_dim]``. ``layer_norm`` adds LayerNorm after
    every hidden linear layer, ``dropout`` a Dropout after every hidden activation.
    """
    layers: list[nn.Module] = []
    d = in_dim
    for h in hidden:
        layers.append(nn.Linear(d, h))
        if layer_norm:
            layers.append(nn.LayerNorm(h))
        layers.append(activation())
        if dropout > 0:
            layers.append(Dropout(dropout))
        d = h
    layers.append(nn.Linear(d, out_dim))
    return nn.Sequential(*layers)


def orthogonal_init(module: nn.Module, gain: float = 1.0) -> nn.Module:
    """Orthogonal weights (``gain``) and zero biases for every ``nn.Linear`` in ``module``, in place.

    The initialisation of the CPL authors' actors (``ortho_init: True``, gain 1, in their configs).
    """
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.orthogonal_(m.weight, gain=gain)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    return module


class TwinQ(nn.Module):
    """Two Q-functions ``Q_1, Q_2 (s, a)`` (clipped double Q), vectorised as one ensemble.

    ``forward(obs [..., obs_dim], act [..., act_dim]) -> [2, ...]``; :meth:`min` gives ``[...]``.
    Default 2 hidden layers of 256 units with ReLU (IQL's critic); ``activation`` is any ``nn.Module`` class
    (DTR's critic: ``nn.Mish``).
    """

    def __init__(self, obs_dim: int, act_dim: int, hidden: Sequence[int] = (256, 256), layer_norm: bool = False,
                 activation: type[nn.Module] = nn.ReLU):
        super().__init__()
        self.net = EnsembleMLP(2, obs_dim + act_dim, 1, hidden, activation=activation, layer_norm=layer_norm)

    def forward(self, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        lead = obs.shape[:-1]
        x = torch.cat([obs, act], dim=-1).reshape(-1, obs.shape[-1] + act.shape[-1])
        return self.net(x).reshape(2, *lead)

    def min(self, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        """``min(Q_1, Q_2)``, shape ``obs.shape[:-1]``."""
        return self.forward(obs, act).min(dim=0).values


class ValueNet(nn.Module):
    """State value ``V(s)``: ``[..., obs_dim] -> [...]`` (IQL's value network, 2 x 256 by default)."""

    def __init__(self, obs_dim: int, hidden: Sequence[int] = (256, 256), layer_norm: bool = False):
        super().__init__()
        self.net = mlp(obs_dim, 1, hidden, layer_norm=layer_norm)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.net(obs).squeeze(-1)


class DeterministicPolicy(nn.Module):
    """``a = tanh(f(s))`` in ``[-1, 1]^act_dim``: ``[..., obs_dim] -> [..., act_dim]``.

    ``dropout`` after every hidden activation; ``ortho_init`` initialises the layers with
    :func:`orthogonal_init` (default: PyTorch's uniform init).
    """

    def __init__(self, obs_dim: int, act_dim: int, hidden: Sequence[int] = (256, 256), dropout: float = 0.0,
                 ortho_init: bool = False):
        super().__init__()
        self.net = mlp(obs_dim, act_dim, hidden, dropout=dropout)
        if ortho_init:
            orthogonal_init(self.net)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.net(obs))

    def act(self, obs: torch.Tensor, deterministic: bool = True, generator: torch.Generator | None = None) -> torch.Tensor:
        """The action (the same with or without ``deterministic``)."""
        return self.forward(obs)

    def log_prob(self, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        """``-||f(s) - a||^2`` summed over action dims, shape ``obs.shape[:-1]``.

        The log-density of a unit-variance Gaussian around the action up to a constant and a factor 2: the
        surrogate ``log pi`` that CPL's reference experiments use for deterministic policies.
        """
        return -(self.forward(obs) - act).pow(2).sum(-1)


class GaussianPolicy(nn.Module):
    """Gaussian policy with a tanh-squashed mean: ``pi(a|s) = N(tanh(f(s)), diag(sigma^2))``.

    This is the policy parameterisation of IQL's and CPL's reference experiments: the mean lies in
    ``[-1, 1]``, the log-density is evaluated on dataset actions directly (no change of variables, so
    actions at the bounds are fine), and sampled actions are clipped to ``[-1, 1]``.

    Args:
        obs_dim, act_dim: sizes.
        hidden: hidden layers (default 256 x 256).
        state_dependent_std: if True the network also outputs ``log sigma(s)``; otherwise ``log sigma`` is
            one learned vector (IQL's choice, the default).
        log_std_min, log_std_max: clamp of ``log sigma`` (default -5, 2).
        dropout: dropout after hidden layers (0 by default).
        ortho_init: initialise the layers with :func:`orthogonal_init` (default False).

    ``log_prob(obs [..., obs_dim], act [..., act_dim]) -> [...]`` (summed over action dims);
    ``act(obs, deterministic)`` -> ``[..., act_dim]`` (the mean when deterministic).
    """

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        hidden: Sequence[int] = (256, 256),
        state_dependent_std: bool = False,
        log_std_min: float = -5.0,
        log_std_max: float = 2.0,
        dropout: float = 0.0,
        ortho_init: bool = False,
    ):
        super().__init__()
        self.act_dim = act_dim
        self.state_dependent_std = state_dependent_std
        self.log_std_min, self.log_std_max = log_std_min, log_std_max
        self.net = mlp(obs_dim, 2 * act_dim if state_dependent_std else act_dim, hidden, dropout=dropout)
        if ortho_init:
            orthogonal_init(self.net)
        if not state_dependent_std:
            self.log_std = nn.Parameter(torch.zeros(act_dim))

    def mean_log_std(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean ``[..., act_dim]`` in ``[-1, 1]`` and clamped ``log sigma`` ``[..., act_dim]``."""
        out = self.net(obs)
        if self.state_dependent_std:
            mu, log_std = out.split(self.act_dim, dim=-1)
        else:
            mu, log_std = out, self.log_std.expand_as(out)
        return torch.tanh(mu), log_std.clamp(self.log_std_min, self.log_std_max)

    def log_prob(self, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        """``log pi(a|s)`` summed over action dimensions, shape ``obs.shape[:-1]``."""
        mu, log_std = self.mean_log_std(obs)
        z = (act - mu) * torch.exp(-log_std)
        return (-0.5 * z.pow(2) - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)

    def act(self, obs: torch.Tensor, deterministic: bool = True, generator: torch.Generator | None = None) -> torch.Tensor:
        """The mean action (deterministic) or a sample clipped to ``[-1, 1]``."""
        mu, log_std = self.mean_log_std(obs)
        if deterministic:
            return mu
        noise = torch.randn(mu.shape, generator=generator, dtype=mu.dtype, device=mu.device)
        return (mu + noise * log_std.exp()).clamp(-1.0, 1.0)

    def sample_with(self, obs: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """The sampled action of :meth:`act` for given standard-normal ``noise`` (shape of the action)."""
        mu, log_std = self.mean_log_std(obs)
        return (mu + noise * log_std.exp()).clamp(-1.0, 1.0)


def soft_update(target: nn.Module, source: nn.Module, tau: float) -> None:
    """Polyak averaging ``theta_target <- (1 - tau) theta_target + tau theta_source`` (in place)."""
    with torch.no_grad():
        for t, s in zip(target.parameters(), source.parameters()):
            t.copy_(torch.lerp(t, s, tau))  # not lerp_: vmap (K seeds at once) has a batching rule for this


def expectile_loss(diff: torch.Tensor, expectile: float, reduction: str = "mean") -> torch.Tensor:
    """Asymmetric squared loss ``L_2^tau(u) = |tau - 1(u < 0)| u^2``.

    Kostrikov, Nair & Levine, "Offline Reinforcement Learning with Implicit Q-Learning", ICLR 2022,
    Eq. (5) (with ``u = Q(s, a) - V(s)``). ``diff`` any shape; ``reduction="mean"`` returns a scalar,
    ``"none"`` the per-element losses.
    """
    loss = torch.where(diff < 0, 1.0 - expectile, expectile) * diff.pow(2)
    return loss.mean() if reduction == "mean" else loss
