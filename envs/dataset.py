"""The in-memory offline dataset, :class:`OfflineDataset`, in D4RL's flat layout: ``observations [T, obs_dim]``,
``actions [T, act_dim]``, ``rewards [T]``, ``terminals [T]`` (the episode ended in a terminal state after
step t) and ``timeouts [T]`` (the episode was cut after step t: time limit, early stop, or the end of
collection). An episode ends after every step where ``terminals | timeouts`` is set (and at the last
step of the arrays). Optional ``next_observations [T, obs_dim]``, ``success [T]`` and ``infos``
(``qpos [T, nq]``, ``qvel [T, nv]``: the simulator state of ``observations[t]``, D4RL's ``infos/qpos``
and ``infos/qvel``) ride along, plus JSON ``metadata``.

Other modules read and write it: :mod:`pbrl.envs.d4rl` (D4RL HDF5), :mod:`pbrl.envs.minari_io` (Minari),
:mod:`pbrl.envs.labelling` (preference pairs from it), :mod:`pbrl.envs.scores` (normalised scores).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import numpy as np

from pbrl.envs.scores import normalize, reference_scores
from pbrl.segments import Trajectory

__all__ = ["OfflineDataset", "REQUIRED_KEYS"]

#: the arrays every dataset has, in D4RL's names
REQUIRED_KEYS = ("observations", "actions", "rewards", "terminals", "timeouts")


def _numeric(name: str, x: Any, ndim: int, dtype, source: str = "") -> np.ndarray:
    where = f"{source}: " if source else ""
    arr = np.asarray(x)
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
        raise ValueError(f"{where}'{name}' must be a numeric array, got dtype {arr.dtype}")
    if arr.ndim != ndim:
        raise ValueError(f"{where}'{name}' must have {ndim} dimension(s), got shape {arr.shape}")
    if np.issubdtype(arr.dtype, np.floating) and not np.all(np.isfinite(arr)):
        bad = np.flatnonzero(~np.isfinite(arr.reshape(len(arr), -1)).all(axis=1))
        raise ValueError(
            f"{where}'{name}' contains NaN or inf at {len(bad)} step(s) (first at index {int(bad[0])}); "
            "clean or drop those steps before building the dataset"
        )
    return arr.astype(dtype, copy=False)


class OfflineDataset:
    """A fixed dataset of transitions in D4RL's flat layout. Validated on construction.

    Args:
        observations: ``[T, obs_dim]`` (stored float32).
        actions: ``[T, act_dim]`` (stored float32).
        rewards: ``[T]`` true rewards (float32).
        terminals: ``[T]`` bool, the episode reached a terminal state after step t.
        timeouts: ``[T]`` bool, the episode was truncated after step t.
        next_observations: optional ``[T, obs_dim]``, the observation after step t.
        success: optional ``[T]`` bool (Meta-World's success signal after step t).
        infos: optional dict of ``[T, ...]`` arrays, e.g. ``{"qpos": [T, nq], "qvel": [T, nv]}``
            (the simulator state of ``observations[t]``).
        metadata: JSON-serialisable dict; pbrl uses ``task_id``, ``dataset_id``, ``policy``,
            ``ref_min_return``, ``ref_max_return``, ``collection``.

    Raises:
        ValueError: on a length mismatch, a non-numeric or NaN array, or a wrong number of dimensions.
    """

    def __init__(
        self,
        observations,
        actions,
        rewards,
        terminals,
        timeouts,
        next_observations=None,
        success=None,
        infos: dict[str, np.ndarray] | None = None,
        metadata: dict | None = None,
        _source: str = "",
    ):
        src = _source
        #: the file the dataset was read from ("" when built in memory); relative metadata paths resolve from it
        self.source_path = str(_source) if _source else ""
        self.observations = _numeric("observations", observations, 2, np.float32, src)
        self.actions = _numeric("actions", actions, 2, np.float32, src)
        self.rewards = _numeric("rewards", np.asarray(rewards).reshape(-1) if np.ndim(rewards) == 2 and np.shape(rewards)[1] == 1 else rewards, 1, np.float32, src)
        self.terminals = _numeric("terminals", terminals, 1, bool, src)
        self.timeouts = _numeric("timeouts", timeouts, 1, bool, src)
        T = len(self.observations)
        lengths = {k: len(getattr(self, k)) for k in REQUIRED_KEYS}
        if len(set(lengths.values())) != 1:
            raise ValueError(
                f"{src + ': ' if src else ''}arrays must all have the same length (one row per step), got "
                + ", ".join(f"{k} {v}" for k, v in lengths.items())
            )
        if T == 0:
            raise ValueError(f"{src + ': ' if src else ''}the dataset is empty (0 steps)")
        self.next_observations = None
        if next_observations is not None:
            nxt = _numeric("next_observations", next_observations, 2, np.float32, src)
            if nxt.shape != self.observations.shape:
                raise ValueError(
                    f"{src + ': ' if src else ''}next_observations must have shape {self.observations.shape} "
                    f"like observations, got {nxt.shape}"
                )
            self.next_observations = nxt
        self.success = None
        if success is not None:
            s = _numeric("success", np.asarray(success).reshape(-1) if np.ndim(success) == 2 else success, 1, bool, src)
            if len(s) != T:
                raise ValueError(f"{src + ': ' if src else ''}success must have {T} entries, got {len(s)}")
            self.success = s
        self.infos: dict[str, np.ndarray] = {}
        for k, v in (infos or {}).items():
            arr = np.asarray(v)
            if arr.ndim == 0 or len(arr) != T:
                raise ValueError(
                    f"{src + ': ' if src else ''}infos/{k} must have {T} rows (one per step), got shape {arr.shape}"
                )
            if np.issubdtype(arr.dtype, np.floating) and not np.all(np.isfinite(arr)):
                raise ValueError(f"{src + ': ' if src else ''}infos/{k} contains NaN or inf")
            self.infos[str(k)] = arr
        self.metadata: dict = dict(metadata or {})
        try:
            json.dumps(self.metadata)
        except TypeError as e:
            raise TypeError(f"metadata must be JSON-serialisable ({e})") from None
        ends = np.flatnonzero(self.terminals | self.timeouts)
        if len(ends) == 0 or ends[-1] != T - 1:
            ends = np.append(ends, T - 1)
        self._ends = ends.astype(np.int64)
        self._starts = np.concatenate([[0], self._ends[:-1] + 1]).astype(np.int64)

    # ------------------------------------------------------------------ basics
    def __len__(self) -> int:
        return len(self.observations)

    def __repr__(self) -> str:
        return (
            f"OfflineDataset(steps={len(self)}, episodes={self.n_episodes}, obs_dim={self.obs_dim}, "
            f"act_dim={self.act_dim}, id={self.metadata.get('dataset_id')!r})"
        )

    @property
    def obs_dim(self) -> int:
        """Observation dimension."""
        return self.observations.shape[1]

    @property
    def act_dim(self) -> int:
        """Action dimension."""
        return self.actions.shape[1]

    @property
    def n_episodes(self) -> int:
        """Number of episodes (pieces between ``terminals | timeouts`` flags)."""
        return len(self._ends)

    @property
    def episode_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """``(starts, ends)``: int64 ``[E]`` flat index of the first and the last step of each episode."""
        return self._starts.copy(), self._ends.copy()

    @property
    def dataset_id(self) -> str | None:
        """``metadata["dataset_id"]`` (None if unknown)."""
        return self.metadata.get("dataset_id")

    @property
    def task_id(self) -> str | None:
        """``metadata["task_id"]`` (None if unknown)."""
        return self.metadata.get("task_id")

    def episode_returns(self) -> np.ndarray:
        """Undiscounted return of every episode, ``[E]`` float64."""
        c = np.concatenate([[0.0], np.cumsum(self.rewards, dtype=np.float64)])
        return c[self._ends + 1] - c[self._starts]

    def episode_lengths(self) -> np.ndarray:
        """Steps in every episode, ``[E]`` int64."""
        return self._ends - self._starts + 1

    def episode_success(self) -> np.ndarray | None:
        """Whether each episode succeeded at any step, ``[E]`` bool (None without ``success``)."""
        if self.success is None:
            return None
        c = np.concatenate([[0], np.cumsum(self.success.astype(np.int64))])
        return (c[self._ends + 1] - c[self._starts]) > 0

    def episodes(self) -> Iterator[Trajectory]:
        """Yield every episode as a :class:`~pbrl.segments.Trajectory`.

        ``start`` is the flat index of its first step; ``qpos``/``qvel`` come from ``infos`` when present
        (2-D), ``next_obs`` from ``next_observations`` at its last step, ``terminated`` from ``terminals``.
        """
        qpos, qvel = self.infos.get("qpos"), self.infos.get("qvel")
        for s, e in zip(self._starts.tolist(), self._ends.tolist()):
            yield Trajectory(
                obs=self.observations[s : e + 1],
                act=self.actions[s : e + 1],
                reward=self.rewards[s : e + 1],
                success=None if self.success is None else self.success[s : e + 1],
                qpos=qpos[s : e + 1] if qpos is not None and qpos.ndim == 2 else None,
                qvel=qvel[s : e + 1] if qvel is not None and qvel.ndim == 2 else None,
                next_obs=None if self.next_observations is None else self.next_observations[e],
                terminated=bool(self.terminals[e]),
                start=s,
            )

    def qlearning_view(self, keep_timeouts: bool = False) -> dict[str, np.ndarray]:
        """Transitions ``(s, a, r, s', done)`` that never cross an episode boundary.

        Row selection follows D4RL's ``qlearning_dataset`` exactly (so that the index-style label files of
        Preference Transformer / Uni-RLHF address the same rows): every step ``t < T - 1`` whose
        ``timeouts[t]`` is not set, in order. ``s'`` is ``next_observations[t]`` when the dataset has them,
        else ``observations[t + 1]``; at a terminal step without ``next_observations`` D4RL would take the
        first observation of the *next* episode, here ``s' = s`` instead (the value is masked by ``done``).

        Args:
            keep_timeouts: also keep the time-out steps and the last step (needs ``next_observations``;
                their ``s'`` is then known). Default False: D4RL's rows, which index-style label files use.

        Returns:
            dict with ``observations [N, obs_dim]``, ``actions [N, act_dim]``, ``rewards [N]``,
            ``next_observations [N, obs_dim]``, ``terminals [N]`` (float32 0/1, D4RL's done flag) and
            ``index [N]`` (int64 flat index of each row).
        """
        T = len(self)
        if keep_timeouts:
            if self.next_observations is None:
                raise ValueError(
                    "keep_timeouts=True needs next_observations (the observation after a time-out is unknown)"
                )
            idx = np.arange(T, dtype=np.int64)
        else:
            keep = ~self.timeouts.copy()
            keep[-1] = False
            idx = np.flatnonzero(keep).astype(np.int64)
        if self.next_observations is not None:
            nxt = self.next_observations[idx]
        else:
            nxt = self.observations[np.minimum(idx + 1, T - 1)].copy()
            term = self.terminals[idx]
            nxt[term] = self.observations[idx[term]]
        return {
            "observations": self.observations[idx],
            "actions": self.actions[idx],
            "rewards": self.rewards[idx],
            "next_observations": nxt,
            "terminals": self.terminals[idx].astype(np.float32),
            "index": idx,
        }

    def normalized_score(self, returns) -> np.ndarray:
        """The normalised score ``100 * (R - R_min) / (R_max - R_min)`` of ``returns`` (any shape, float64).

        On a gymnasium MuJoCo locomotion task (``task_id`` / ``dataset_id`` naming hopper, walker2d,
        halfcheetah or ant) the references are D4RL's (:data:`pbrl.envs.scores.D4RL_REF_SCORES`), whatever
        the metadata measured; on any other task the metadata's ``ref_min_return`` / ``ref_max_return``.
        """
        lo, hi = reference_scores(self)
        return normalize(returns, lo, hi)

    def take(self, rows) -> OfflineDataset:
        """A new dataset of the flat rows ``rows`` (int array); the caller keeps episodes whole."""
        rows = np.asarray(rows, dtype=np.int64)
        return OfflineDataset(
            self.observations[rows],
            self.actions[rows],
            self.rewards[rows],
            self.terminals[rows],
            self.timeouts[rows],
            next_observations=None if self.next_observations is None else self.next_observations[rows],
            success=None if self.success is None else self.success[rows],
            infos={k: v[rows] for k, v in self.infos.items()},
            metadata=self.metadata,
        )

    @staticmethod
    def concatenate(items: list[OfflineDataset], metadata: dict | None = None) -> OfflineDataset:
        """Join datasets end to end (each one's last episode is closed with a time-out if it is open).

        Optional fields are kept only when every part has them. ``metadata`` defaults to the first part's.
        """
        items = list(items)
        if not items:
            raise ValueError("cannot concatenate an empty list of datasets")
        d0 = items[0]
        for d in items[1:]:
            if (d.obs_dim, d.act_dim) != (d0.obs_dim, d0.act_dim):
                raise ValueError(
                    f"cannot join datasets of dims {d0.obs_dim}/{d0.act_dim} and {d.obs_dim}/{d.act_dim}"
                )

        def cat(name):
            vals = [getattr(d, name) for d in items]
            return None if any(v is None for v in vals) else np.concatenate(vals)

        timeouts = []
        for d in items:
            t = d.timeouts.copy()
            if not (d.terminals[-1] or t[-1]):
                t[-1] = True
            timeouts.append(t)
        keys = set.intersection(*(set(d.infos) for d in items))
        return OfflineDataset(
            cat("observations"),
            cat("actions"),
            cat("rewards"),
            cat("terminals"),
            np.concatenate(timeouts),
            next_observations=cat("next_observations"),
            success=cat("success"),
            infos={k: np.concatenate([d.infos[k] for d in items]) for k in sorted(keys)},
            metadata=dict(metadata if metadata is not None else d0.metadata),
        )

    def summary(self) -> dict[str, Any]:
        """Size, episodes and return statistics as a JSON-friendly dict."""
        rets = self.episode_returns()
        out = {
            "dataset_id": self.dataset_id,
            "task_id": self.task_id,
            "policy": self.metadata.get("policy"),
            "steps": len(self),
            "episodes": self.n_episodes,
            "obs_dim": self.obs_dim,
            "act_dim": self.act_dim,
            "terminals": int(self.terminals.sum()),
            "timeouts": int(self.timeouts.sum()),
            "return_mean": float(rets.mean()),
            "return_std": float(rets.std()),
            "return_min": float(rets.min()),
            "return_max": float(rets.max()),
            "episode_length_mean": float(self.episode_lengths().mean()),
        }
        succ = self.episode_success()
        if succ is not None:
            out["success_rate"] = float(succ.mean())
        for k in ("ref_min_return", "ref_max_return"):
            if self.metadata.get(k) is not None:
                out[k] = float(self.metadata[k])
        try:
            out["normalized_return_mean"] = float(self.normalized_score(rets).mean())  # D4RL's scale on locomotion
        except ValueError:  # no reference returns known for this task
            pass
        return out
