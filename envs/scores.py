"""Normalised scores: D4RL's ``100 * (R - R_random) / (R_expert - R_random)`` and the reference returns.

* :data:`D4RL_REF_SCORES`: D4RL's published (random, expert) returns of hopper, walker2d and halfcheetah.
* :func:`reference_scores`: ``(min, max)`` for a task id, a dataset (its metadata) or a metadata dict.
* :func:`normalized_score`: the score itself (Fu et al., 2020).
"""

from __future__ import annotations

import numpy as np

__all__ = ["D4RL_REF_SCORES", "reference_scores", "normalized_score", "normalize"]

#: D4RL's reference returns (random policy, expert policy) for the v2 MuJoCo locomotion tasks
#: (``d4rl/infos.py``: REF_MIN_SCORE / REF_MAX_SCORE).
D4RL_REF_SCORES: dict[str, tuple[float, float]] = {
    "hopper": (-20.272305, 3234.3),
    "walker2d": (1.629008, 4592.3),
    "halfcheetah": (-280.178953, 12135.0),
}


def normalize(returns, lo: float, hi: float) -> np.ndarray:
    """``100 * (returns - lo) / (hi - lo)`` (float64, same shape); raises unless ``hi > lo``."""
    if not hi > lo:
        raise ValueError(f"reference returns must satisfy max > min, got min {lo}, max {hi}")
    return 100.0 * (np.asarray(returns, dtype=np.float64) - lo) / (hi - lo)


def _d4rl_key(task: str) -> str | None:
    low = task.lower().replace("_", "").replace("-", "").replace(" ", "")
    for key in ("halfcheetah", "walker2d", "hopper"):
        if key in low:
            return key
    return None


def reference_scores(task) -> tuple[float, float]:
    """``(min, max)`` reference returns for ``task``.

    ``task`` is a task id or D4RL/Minari name (hopper, walker2d, halfcheetah in any spelling, e.g.
    ``mujoco/Hopper-v5``, ``hopper-medium-v2``: D4RL's published values), an :class:`OfflineDataset` or a
    metadata dict (its ``ref_min_return`` / ``ref_max_return``, measured at collection).
    """
    if not isinstance(task, (str, dict)) and isinstance(getattr(task, "metadata", None), dict):
        meta = task.metadata  # an OfflineDataset (read through its metadata, so no import of it here)
        key = _d4rl_key(str(meta.get("task_id") or meta.get("dataset_id") or ""))
        if key is not None:
            return D4RL_REF_SCORES[key]
        task = meta
    if isinstance(task, dict):
        lo, hi = task.get("ref_min_return"), task.get("ref_max_return")
        if lo is None or hi is None:
            key = _d4rl_key(str(task.get("task_id") or task.get("dataset_id") or ""))
            if key is not None:
                return D4RL_REF_SCORES[key]
            raise ValueError("the metadata has no ref_min_return / ref_max_return")
        return float(lo), float(hi)
    if isinstance(task, str):
        key = _d4rl_key(task)
        if key is not None:
            return D4RL_REF_SCORES[key]
        raise ValueError(
            f"no reference scores known for task '{task}' (D4RL's exist for hopper, walker2d and halfcheetah); "
            "pass the OfflineDataset (its metadata holds the returns measured at collection) or metadata=..."
        )
    raise TypeError(f"task must be a task id, an OfflineDataset or a dict, got {type(task).__name__}")


def normalized_score(task, returns, metadata: dict | None = None) -> np.ndarray:
    """D4RL's normalised score ``100 * (R - R_min) / (R_max - R_min)``, same shape as ``returns``.

    Args:
        task: a task id (``mujoco/Hopper-v5``, ``hopper`` ... use D4RL's reference scores), or an
            :class:`OfflineDataset` (D4RL's scores for the three locomotion tasks, else its metadata).
        returns: episode returns, any shape.
        metadata: for other tasks, a dict with ``ref_min_return`` / ``ref_max_return``.
    """
    if metadata is not None and (not isinstance(task, str) or _d4rl_key(task) is None):
        lo, hi = reference_scores(metadata)
    else:
        lo, hi = reference_scores(task)
    return normalize(returns, lo, hi)
