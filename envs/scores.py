"""Normalised scores: D4RL's ``100 * (R - R_random) / (R_expert - R_random)`` and the reference returns.

The one place that defines them. Every normalised score pbrl shows for a gymnasium MuJoCo locomotion task
(hopper, walker2d, halfcheetah, ant; any version, any dataset of them) uses D4RL's reference returns, so
that a number reads the same as in every offline-RL paper; a dataset's own measured returns
(``metadata["ref_min_return"]`` / ``["ref_max_return"]``) are used only for the other tasks.

* :data:`D4RL_REF_SCORES`: D4RL's published (random, expert) returns.
* :func:`d4rl_key`: which of them a task id or dataset id names (``None`` for any other task).
* :func:`reference_scores`: ``(min, max)`` for a task id, a dataset (its metadata) or a metadata dict.
* :func:`normalized_score`: the score itself (Fu et al., 2020).
"""

from __future__ import annotations

import numpy as np

__all__ = ["D4RL_REF_SCORES", "SCORE_NAME", "d4rl_key", "reference_scores", "normalized_score", "normalize"]

#: D4RL's reference returns (random policy, expert policy) of the gym-MuJoCo locomotion tasks, the same
#: for every dataset of a task (``d4rl/infos.py``: REF_MIN_SCORE / REF_MAX_SCORE of ``<env>-random-v0``,
#: which its v1 and v2 datasets reuse).
D4RL_REF_SCORES: dict[str, tuple[float, float]] = {
    "hopper": (-20.272305, 3234.3),
    "walker2d": (1.629008, 4592.3),
    "halfcheetah": (-280.178953, 12135.0),
    "ant": (-325.6, 3879.7),
}

#: how tables and plots name the score: 0 = D4RL's random policy, 100 = D4RL's expert
SCORE_NAME = "D4RL-normalised score (0 = random, 100 = D4RL expert)"

#: namespaces of tasks that are never D4RL's locomotion tasks (DMC's hopper and walker are other robots)
_OTHER_DOMAINS = ("dmc/", "metaworld/", "dm_control/")
#: namespaces in front of a locomotion name: pbrl's task ids, Minari's and D4RL's dataset ids
_PREFIXES = ("mujoco/", "gym/", "d4rl/", "minari/")


def d4rl_key(task: str | None) -> str | None:
    """The key of :data:`D4RL_REF_SCORES` that ``task`` names, or ``None``.

    Accepts pbrl task ids (``mujoco/Hopper-v5``), gymnasium ids (``Walker2d-v4``), D4RL dataset ids
    (``hopper-medium-replay-v2``), Minari ids (``mujoco/halfcheetah/medium-v0``) and pbrl dataset ids
    (``mujoco/Hopper-v5/medium``): the first word of the name, in any case, ``half_cheetah`` too.
    DeepMind Control (``dmc/hopper-hop``) and Meta-World ids are not D4RL's tasks: ``None``.
    """
    if not task:
        return None
    low = str(task).strip().lower()
    if low.startswith(_OTHER_DOMAINS):
        return None
    for p in _PREFIXES:
        if low.startswith(p):
            low = low[len(p):]
            break
    word = low.replace("_", "").split("/")[0].split("-")[0]
    return word if word in D4RL_REF_SCORES else None


def normalize(returns, lo: float, hi: float) -> np.ndarray:
    """``100 * (returns - lo) / (hi - lo)`` (float64, same shape); raises unless ``hi > lo``."""
    if not hi > lo:
        raise ValueError(f"reference returns must satisfy max > min, got min {lo}, max {hi}")
    return 100.0 * (np.asarray(returns, dtype=np.float64) - lo) / (hi - lo)


def _key_of_meta(meta: dict) -> str | None:
    return d4rl_key(str(meta.get("task_id") or "")) or d4rl_key(str(meta.get("dataset_id") or ""))


def reference_scores(task) -> tuple[float, float]:
    """``(min, max)`` reference returns for ``task``.

    ``task`` is a task id or a D4RL / Minari dataset id (D4RL's values for hopper, walker2d, halfcheetah
    and ant, see :func:`d4rl_key`), an :class:`OfflineDataset` or a metadata dict: D4RL's values when its
    ``task_id`` or ``dataset_id`` names a locomotion task (whatever it measured), else its
    ``ref_min_return`` / ``ref_max_return``.
    """
    if not isinstance(task, (str, dict)) and isinstance(getattr(task, "metadata", None), dict):
        task = task.metadata  # an OfflineDataset (read through its metadata, so no import of it here)
    if isinstance(task, dict):
        key = _key_of_meta(task)
        if key is not None:
            return D4RL_REF_SCORES[key]
        lo, hi = task.get("ref_min_return"), task.get("ref_max_return")
        if lo is None or hi is None:
            raise ValueError(
                "this dataset's metadata has no ref_min_return / ref_max_return and its task has no D4RL "
                "reference returns; set them (ds.metadata['ref_min_return'] = ...)"
            )
        return float(lo), float(hi)
    if isinstance(task, str):
        key = d4rl_key(task)
        if key is not None:
            return D4RL_REF_SCORES[key]
        raise ValueError(
            f"no reference scores known for task '{task}' (D4RL's exist for {', '.join(D4RL_REF_SCORES)}); "
            "pass the OfflineDataset (its metadata holds the returns measured at collection) or metadata=..."
        )
    raise TypeError(f"task must be a task id, an OfflineDataset or a dict, got {type(task).__name__}")


def normalized_score(task, returns, metadata: dict | None = None) -> np.ndarray:
    """D4RL's normalised score ``100 * (R - R_min) / (R_max - R_min)``, same shape as ``returns``.

    Args:
        task: a task id (``mujoco/Hopper-v5``, ``hopper-medium-v2`` ...: D4RL's reference returns), or an
            :class:`OfflineDataset` (D4RL's for the locomotion tasks, else its metadata's).
        returns: episode returns, any shape.
        metadata: for other tasks, a dict with ``ref_min_return`` / ``ref_max_return`` (ignored for D4RL's
            locomotion tasks).
    """
    if metadata is not None and (not isinstance(task, str) or d4rl_key(task) is None):
        lo, hi = reference_scores(metadata)
    else:
        lo, hi = reference_scores(task)
    return normalize(returns, lo, hi)
