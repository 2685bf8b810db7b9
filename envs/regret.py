"""Regret labels for an offline dataset: the preference model CPL assumes, and the one its authors labelled with.

CPL (Hejna et al., "Contrastive Preference Learning", ICLR 2024) assumes that people prefer the segment of
lower regret, and its authors built their oracle labels that way (``scripts/add_pref_labels.py`` of
``jhejna/cpl``, label key ``rl_sum``): a segment's score is

    sum of its rewards + V*(s_H) - V*(s_0),      V*(s) = E_{a ~ pi*(s)} [Q*(s, a)],

undiscounted, with ``Q*`` and ``pi*`` an expert SAC's critic (mean over its Q heads) and actor (64 sampled
actions). :func:`dataset_regret_teacher` builds that teacher (:class:`pbrl.teachers.RegretTeacher`,
``gamma = 1``) for a dataset, with its value from

* ``critic="auto"`` (default): the dataset's expert policy, ``metadata["expert_policy"]`` (an SB3 SAC
  ``.zip``, a path relative to the dataset file; ``scripts/make_datasets.py`` writes it), else
* ``critic="returns"``: where no critic exists, a value fitted to the dataset's discounted returns-to-go
  (:func:`returns_value_fn`): the behaviour policy's value, not the expert's, so the labels rank segments by
  their advantage over what the data usually does next;
* ``critic=<path to an SB3 SAC .zip>``: that expert's critic.

A segment that ends in a terminal state (a fall) gets ``V(s_H) = 0``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from pbrl.envs.dataset import OfflineDataset
from pbrl.segments import Segments
from pbrl.teachers import RegretTeacher

__all__ = ["sac_value_fn", "returns_value_fn", "discounted_returns_to_go", "dataset_regret_teacher",
           "expert_policy_path", "CRITIC_CHOICES"]

#: what ``critic`` may name besides a path
CRITIC_CHOICES = ("auto", "returns")


def sac_value_fn(model: Any, n_samples: int = 64, seed: int = 0, batch_size: int = 1024) -> Callable[[np.ndarray], np.ndarray]:
    """``V(s) = E_{a ~ pi(s)} [mean_k Q_k(s, a)]`` of an SB3 SAC model, by ``n_samples`` actions per state.

    The samples come from a generator re-seeded with ``seed`` at every call, so a state's value does not
    depend on what was asked before. Returns ``obs [N, obs_dim] -> V [N]`` (float64).
    """
    import torch

    if isinstance(model, (str, os.PathLike)):
        from stable_baselines3 import SAC

        model = SAC.load(str(model), device="cpu")
    if not (hasattr(model, "actor") and hasattr(model, "critic")):
        raise TypeError(f"sac_value_fn needs an SB3 SAC model (actor and critic), got {type(model).__name__}")
    if n_samples < 1:
        raise ValueError(f"n_samples must be >= 1, got {n_samples}")
    actor, critic = model.actor, model.critic

    def value(obs: np.ndarray) -> np.ndarray:
        obs = np.asarray(obs, dtype=np.float32).reshape(len(obs), -1)
        gen = torch.Generator().manual_seed(int(seed))
        out = []
        with torch.no_grad():
            for i in range(0, len(obs), batch_size):
                o = torch.as_tensor(obs[i: i + batch_size])
                mean, log_std, _ = actor.get_action_dist_params(o)
                eps = torch.randn((n_samples, *mean.shape), generator=gen)
                act = torch.tanh(mean + log_std.exp() * eps).reshape(-1, mean.shape[-1])  # SAC's squashed actions
                rep = o.unsqueeze(0).expand(n_samples, -1, -1).reshape(-1, o.shape[-1])
                q = torch.stack(critic(rep, act)).mean(0).reshape(n_samples, -1).mean(0)
                out.append(q.numpy().astype(np.float64))
        return np.concatenate(out) if out else np.zeros(0)

    return value


def discounted_returns_to_go(ds: OfflineDataset, gamma: float) -> np.ndarray:
    """``G_t = sum_k gamma^k r_{t+k}`` to the end of each step's episode, ``[T]`` float64."""
    out = np.zeros(len(ds), dtype=np.float64)
    r = ds.rewards.astype(np.float64)
    for s, e in zip(*ds.episode_bounds):
        g = 0.0
        for t in range(int(e), int(s) - 1, -1):
            g = r[t] + gamma * g
            out[t] = g
    return out


def returns_value_fn(ds: OfflineDataset, gamma: float = 0.99, hidden: tuple[int, ...] = (256, 256),
                     updates: int = 3000, batch_size: int = 256, lr: float = 1e-3, seed: int = 0) -> Callable[[np.ndarray], np.ndarray]:
    """A value ``V(s)`` regressed on the dataset's discounted returns-to-go (an MLP, squared error).

    The behaviour policy's value: used for regret labels where no expert critic exists. Each state's own
    return-to-go would make every segment's regret exactly 0; a network shared across states smooths them.
    Deterministic given ``seed``. Returns ``obs [N, obs_dim] -> V [N]`` (float64).
    """
    import torch

    g = discounted_returns_to_go(ds, gamma)
    obs = ds.observations.astype(np.float32)
    mu, sd = obs.mean(0), obs.std(0) + 1e-3
    g_mu, g_sd = float(g.mean()), float(g.std() + 1e-6)
    torch.manual_seed(int(seed))
    layers: list[torch.nn.Module] = []
    d = obs.shape[1]
    for h in hidden:
        layers += [torch.nn.Linear(d, h), torch.nn.ReLU()]
        d = h
    net = torch.nn.Sequential(*layers, torch.nn.Linear(d, 1))
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    x_all = torch.as_tensor((obs - mu) / sd)
    y_all = torch.as_tensor(((g - g_mu) / g_sd).astype(np.float32))
    rng = np.random.default_rng(seed)
    for _ in range(int(updates)):
        idx = torch.as_tensor(rng.integers(0, len(obs), size=batch_size))
        loss = ((net(x_all[idx]).squeeze(-1) - y_all[idx]) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    net.eval()

    def value(o: np.ndarray) -> np.ndarray:
        x = torch.as_tensor((np.asarray(o, dtype=np.float32) - mu) / sd)
        with torch.no_grad():
            return net(x).squeeze(-1).numpy().astype(np.float64) * g_sd + g_mu

    return value


def expert_policy_path(ds: OfflineDataset) -> Path | None:
    """The dataset's expert SAC (``metadata["expert_policy"]``, relative to the dataset file unless absolute),
    or ``None`` when it names none or the file is not there."""
    p = ds.metadata.get("expert_policy")
    if not p:
        return None
    path = Path(p)
    if not path.is_absolute() and getattr(ds, "source_path", None):
        path = Path(ds.source_path).parent / path
    return path if path.exists() else None


def _ends_in_terminal(ds: OfflineDataset) -> Callable[[Segments], np.ndarray]:
    def fn(seg: Segments) -> np.ndarray:
        if seg.index is None or np.any(seg.index < 0):
            return np.zeros(len(seg), dtype=bool)  # not from this dataset: no terminal information
        return ds.terminals[np.asarray(seg.index, dtype=np.int64) + seg.length - 1]

    return fn


def dataset_regret_teacher(ds: OfflineDataset, critic: str = "auto", gamma: float = 1.0, beta: float = float("inf"),
                           n_samples: int = 64, value_gamma: float = 0.99, value_updates: int = 3000, seed: int = 0):
    """CPL's oracle: a :class:`pbrl.teachers.RegretTeacher` for segments of ``ds`` (module docstring).

    Args:
        ds: the dataset the segments come from (its terminals zero ``V(s_H)``).
        critic: ``"auto"`` (the dataset's expert SAC critic if ``metadata["expert_policy"]`` exists, else
            ``"returns"``), ``"returns"`` (a value fitted to returns-to-go) or a path to an SB3 SAC ``.zip``.
        gamma: discount of the segment's reward sum and ``V(s_H)`` (default 1.0, CPL's ``rl_sum``).
        beta: Bradley-Terry inverse temperature (default inf: noiseless).
        n_samples: actions sampled per state for the critic's ``V`` (CPL's 64).
        value_gamma: discount of the returns-to-go the ``"returns"`` value is fitted to (0.99).
        value_updates: minibatch updates of that fit (3000 of 256 states).
        seed: seeds the value's samples or fit and the teacher.

    Raises:
        ValueError: ``critic`` is neither a choice nor an existing file.
    """
    if not isinstance(critic, str):
        raise ValueError(f"critic must be 'auto', 'returns' or a path to an SB3 SAC .zip, got {critic!r}")
    if critic not in CRITIC_CHOICES and not Path(critic).is_file():
        raise ValueError(f"critic '{critic}' is neither {' nor '.join(CRITIC_CHOICES)} nor an existing SB3 SAC .zip file")
    path = expert_policy_path(ds) if critic == "auto" else (Path(critic) if critic != "returns" else None)
    if path is not None:
        value, source = sac_value_fn(path, n_samples=n_samples, seed=seed), f"sac-critic:{path.name}"
    else:
        value = returns_value_fn(ds, gamma=value_gamma, updates=value_updates, seed=seed)
        source = f"returns-to-go(gamma={value_gamma:g})"
    return RegretTeacher(value, gamma=gamma, beta=beta, seed=seed, terminal_fn=_ends_in_terminal(ds),
                         value_source=source)
