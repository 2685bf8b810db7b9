"""PEBBLE's particle-based state entropy: the k-NN distance estimator and the normalised intrinsic reward.

Shared by the agents that pre-train on it (PEBBLE and its descendants on SAC, PrefPPO on PPO).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from stable_baselines3.common.running_mean_std import RunningMeanStd

__all__ = ["knn_state_entropy", "StateEntropyReward"]


def knn_state_entropy(
    x: np.ndarray, ref: np.ndarray, k: int = 5, chunk: int = 1024, exclude_self: bool = False
) -> np.ndarray:
    """Distance from each row of ``x`` to its ``k``-th nearest neighbour in ``ref``.

    The particle-based entropy estimate of PEBBLE (Lee et al. ICML 2021, Sec. 4.1, Eq. 9, after
    Singh et al. 2003): the state entropy is proportional to ``sum_i log ||s_i - s_i^k||``.

    Args:
        x: ``[B, obs_dim]`` query states.
        ref: ``[N, obs_dim]`` reference states, ``N >= k`` (``k + 1`` with ``exclude_self``).
        k: which neighbour (default 5, PEBBLE's value).
        chunk: rows of ``x`` per batched distance computation.

    The distances are ``torch.cdist``'s, bit for bit (the same padded matrix product), and the neighbours are
    ranked by squared distance with :func:`k_smallest` (the clamp at 0 and the square root are taken of the
    ``k`` kept values only).
        exclude_self: the query states may themselves be rows of ``ref`` (a replay buffer, or a sample of
            it): one exact copy of each query (distance 0) is skipped when present, so the result is the
            k-th neighbour among the *other* states whether or not the sample happened to contain the
            query. (Counting the (k+1)-th neighbour unconditionally, as when the query is known to be in
            ``ref``, is off by one whenever a subsample misses it.)

    Returns:
        ``[B]`` float32 distances.
    """
    x = np.asarray(x, dtype=np.float32)
    ref = np.asarray(ref, dtype=np.float32)
    if x.ndim != 2 or ref.ndim != 2 or x.shape[1] != ref.shape[1]:
        raise ValueError(f"x and ref must be [B, d] and [N, d] with the same d, got {x.shape} and {ref.shape}")
    if not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    need = k + 1 if exclude_self else k
    if len(ref) < need:
        raise ValueError(f"need at least k={k} reference states ({need} when the query is excluded), got {len(ref)}")
    r = torch.from_numpy(ref)
    r_pad = _padded(r, query=False)
    out = []
    for i in range(0, len(x), chunk):
        d2 = _padded(torch.from_numpy(x[i : i + chunk]), query=True).matmul(r_pad.mT)  # [b, N]
        # clamp and sqrt are monotone: applied to the k smallest only, they give cdist's k smallest distances
        v = k_smallest(d2, need).clamp_min_(0.0).sqrt_()  # ascending
        if exclude_self:
            self_hit = v[:, 0] == 0.0
            out.append(torch.where(self_hit, v[:, k], v[:, k - 1]))
        else:
            out.append(v[:, k - 1])
    return torch.cat(out).numpy() if out else np.zeros(0, np.float32)


def _padded(a: torch.Tensor, query: bool) -> torch.Tensor:
    """``[n, d] -> [n, d + 2]`` rows whose products give squared distances: ``[-2 x, |x|^2, 1]`` for queries,
    ``[r, 1, |r|^2]`` for references, so ``q @ r.T = |x|^2 - 2 x.r + |r|^2`` (the matrix ``torch.cdist``
    computes for more than 25 rows before its square root, bit for bit)."""
    sq = a.pow(2).sum(-1, keepdim=True)
    one = torch.ones_like(sq)
    return torch.cat([a.mul(-2), sq, one] if query else [a, one, sq], -1)


def k_smallest(d: torch.Tensor, k: int) -> torch.Tensor:
    """The ``k`` smallest values of each row of ``d [b, N]``, ascending: ``torch.topk(d, k, largest=False)``'s
    values, found on a fraction of the row.

    The row is cut into blocks of about ``sqrt(N)``; the ``k`` smallest values lie in the ``k`` blocks with the
    smallest minima (each block holding one of them has its minimum at or below the ``k``-th value), so one
    min-reduction over the row and a ``topk`` over ``k`` blocks replace a ``topk`` over all ``N`` columns.
    """
    b, n = d.shape
    size = max(k, math.isqrt(n))
    blocks = -(-n // size)
    if blocks <= 2 * k:
        return torch.topk(d, k, dim=1, largest=False).values
    if blocks * size != n:
        d = torch.cat([d, d.new_full((b, blocks * size - n), math.inf)], 1)
    d = d.view(b, blocks, size)
    best = torch.topk(d.amin(-1), k, dim=1, largest=False).indices  # [b, k] blocks
    cand = torch.gather(d, 1, best.unsqueeze(-1).expand(b, k, size)).reshape(b, k * size)
    return torch.topk(cand, k, dim=1, largest=False).values


class StateEntropyReward:
    """PEBBLE's intrinsic reward for unsupervised pre-training (Lee et al. ICML 2021, Sec. 4.1, Eq. 9).

    ``r_int(s) = log(1 + ||s - s^k||) / sigma``, where ``s^k`` is the k-th nearest neighbour of ``s``
    (k = 5) among a reference set of states (the replay buffer, or a sample of it) and ``sigma`` is the
    running standard deviation of the un-normalised values (PEBBLE normalises by a running std). The
    paper writes ``log ||s - s^k||``; the ``1 +`` (as in APT, Liu & Abbeel 2021) keeps a duplicate state
    at 0 instead of ``-inf`` and leaves the ordering, so novel states still get the higher reward.

    Args:
        k: neighbour index (default 5).
        max_ref: at most this many reference states are used (a uniform sample beyond that; default
            10000, which covers PEBBLE's whole buffer during its 9000 unsupervised steps).
        ref_includes_query: the query states may be rows of the reference set (a replay buffer): the
            query's own copy is skipped (see :func:`knn_state_entropy`'s ``exclude_self``).
    """

    def __init__(self, k: int = 5, max_ref: int = 10000, ref_includes_query: bool = False):
        if not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(f"k must be a positive integer, got {k!r}")
        if max_ref < k + 1:
            raise ValueError(f"max_ref must be > k, got {max_ref}")
        self.k = int(k)
        self.max_ref = int(max_ref)
        self.ref_includes_query = bool(ref_includes_query)
        self.stats = RunningMeanStd(shape=())

    def raw(self, x: np.ndarray, ref: np.ndarray) -> np.ndarray:
        """Un-normalised ``log(1 + d_k)``, ``[B]``."""
        excl = self.ref_includes_query and len(ref) > self.k
        k = min(self.k, len(ref) - 1 if excl else len(ref))
        return np.log1p(knn_state_entropy(x, ref, k=max(k, 1), exclude_self=excl))

    def __call__(self, x: np.ndarray, ref: np.ndarray, update: bool = True) -> np.ndarray:
        """Normalised intrinsic reward ``[B]`` of the states ``x [B, obs_dim]`` against ``ref [N, obs_dim]``."""
        raw = self.raw(x, ref)
        if update:
            self.stats.update(raw.astype(np.float64))
        return (raw / max(float(np.sqrt(self.stats.var)), 1e-6)).astype(np.float32)

    def get_state(self) -> dict[str, Any]:
        """Running statistics, for checkpoints."""
        return {"mean": float(self.stats.mean), "var": float(self.stats.var), "count": float(self.stats.count)}

    def set_state(self, state: dict[str, Any]) -> None:
        """Restore :meth:`get_state`."""
        self.stats.mean = np.float64(state["mean"])
        self.stats.var = np.float64(state["var"])
        self.stats.count = float(state["count"])
