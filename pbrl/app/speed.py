"""Helpers of the speed benchmarks (``scripts/bench_speed.py``, ``scripts/speed_compare.py``): synthetic
Hopper-sized data with oracle labels, one offline agent prepared for updates, FLOPs per update, timed
updates and the matmul peak.

``scripts/speed_compare.py``'s children may measure an older source tree's pbrl: they load this file by its
path after pointing ``pbrl`` at that tree, so everything here uses only the long-stable API
(``OfflineDataset``, ``label_dataset``, ``get_agent``, an agent's ``from_dataset`` / ``fit`` / ``_update``).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch

from pbrl.agents.registry import get_agent
from pbrl.envs.datasets import OfflineDataset, label_dataset

__all__ = ["PREP", "prefs_for", "matmul_peak", "synthetic_task", "flops_per_update", "timed_updates", "single_agent"]

#: per-agent settings that only shorten the preparation before the updates (the reward-model fit of MR+IQL
#: and PEARL, PEARL's target pairs); the update itself runs at the agent's defaults
PREP = {
    "mriql": dict(reward_epochs=5),
    "pearl": dict(reward_epochs=5, n_target_pairs=64),
}


def matmul_peak(threads: int, n: int, seconds: float) -> float:
    """Best GFLOP/s of ``n x n @ n x n`` float32 matmuls on ``threads`` threads over about ``seconds``."""
    torch.set_num_threads(threads)
    a, b = torch.randn(n, n), torch.randn(n, n)
    out = torch.empty(n, n)
    for _ in range(3):
        torch.mm(a, b, out=out)
    best, t_end = 0.0, time.perf_counter() + seconds
    while time.perf_counter() < t_end:
        t0 = time.perf_counter()
        reps = 5
        for _ in range(reps):
            torch.mm(a, b, out=out)
        best = max(best, 2 * n**3 * reps / (time.perf_counter() - t0) / 1e9)
    return best


def synthetic_task(T: int, n_pairs: int, H: int, seed: int = 0) -> tuple[OfflineDataset, Any]:
    """Hopper-sized random data (obs 11, act 3, episodes of 1000 steps) with oracle labels on a linear reward."""
    rng = np.random.default_rng(seed)
    obs = rng.normal(size=(T, 11)).astype(np.float32)
    act = np.tanh(rng.normal(size=(T, 3))).astype(np.float32)
    w = rng.normal(size=11)
    reward = (obs @ w + act.sum(-1)).astype(np.float32)
    timeouts = np.zeros(T, bool)
    timeouts[999::1000] = True
    timeouts[-1] = True
    ds = OfflineDataset(obs, act, reward, np.zeros(T, bool), timeouts, next_observations=np.roll(obs, -1, axis=0))
    return ds, label_dataset(ds, "oracle", n_pairs, segment_length=H, seed=seed)


def prefs_for(klass: type, prefs: Any) -> Any:
    """``prefs`` for an agent class that learns from labels, ``None`` for one that does not
    (``requires_preferences``)."""
    return prefs if klass.requires_preferences else None


def flops_per_update(agent: Any) -> float:
    """FLOPs of one update (forward + backward), counted by FlopCounterMode on a real update."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        agent._update()
    return float(counter.get_total_flops())


def timed_updates(run_one: Any, seconds: float, warmup: int = 3, min_updates: int = 3) -> float:
    """Updates/s of ``run_one()`` (one update per call) over about ``seconds`` after ``warmup`` calls."""
    for _ in range(warmup):
        run_one()
    n, t0 = 0, time.perf_counter()
    while n < min_updates or time.perf_counter() - t0 < seconds:
        run_one()
        n += 1
    return n / (time.perf_counter() - t0)


def single_agent(name: str, ds: Any, prefs: Any, seed: int = 0, **over: Any) -> Any:
    """One agent at its defaults (plus :data:`PREP`), prepared for updates (``fit`` for one update)."""
    klass = get_agent(name)
    agent = klass.from_dataset(ds, seed=seed, **PREP.get(name, {}), **over)
    agent.fit(ds, prefs_for(klass, prefs), steps=1, progress=False)
    return agent
