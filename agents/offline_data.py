"""How an offline agent reads its inputs: the dataset's transitions and the labelled segment pairs as tensors,
minibatches, and the dataset rows a segment came from (a mixin of :class:`~pbrl.agents.offline_base.OfflineAgent`,
which provides ``obs_dim``, ``device``, ``rng``, ``batch_size`` and the normalisation helpers).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from pbrl.preferences import PreferenceDataset

__all__ = ["OfflineData", "check_positive_int", "finite_mean"]


class OfflineData:
    """Data helpers of the offline agents (see the module docstring)."""

    @staticmethod
    def qlearning_view(dataset: Any) -> dict[str, np.ndarray]:
        """``dataset.qlearning_view()``, keeping time-out steps when the dataset knows their successors."""
        keep = getattr(dataset, "next_observations", None) is not None
        return dataset.qlearning_view(keep_timeouts=keep) if keep else dataset.qlearning_view()

    def transitions_from(self, dataset: Any, rewards: np.ndarray | None = None) -> dict[str, torch.Tensor]:
        """The dataset's transitions (:meth:`qlearning_view` rows) as tensors.

        Returns ``observations, next_observations [N, obs_dim]`` (normalised), ``actions [N, act_dim]`` (in
        ``[-1, 1]``), ``rewards [N]`` and ``dones [N]`` (1.0 at true terminals, not time-outs).

        Args:
            rewards: optional per-step rewards ``[T]`` aligned with the dataset's flat arrays (e.g. relabelled
                by a reward model); the rows of the view are taken from it. Default: the dataset's rewards.
        """
        view = self.qlearning_view(dataset)
        if rewards is None:
            r = np.asarray(view["rewards"], dtype=np.float32)
        else:
            rewards = np.asarray(rewards, dtype=np.float32)
            if rewards.shape != (len(dataset),):
                raise ValueError(f"rewards must have shape ({len(dataset)},) (one per dataset step), got {rewards.shape}")
            r = rewards[view["index"]] if "index" in view else rewards[: len(view["rewards"])]
        return {
            "observations": self.tensor(self._norm_obs_np(view["observations"])),
            "actions": self.tensor(self._act_to_unit(view["actions"])),
            "rewards": self.tensor(r),
            "next_observations": self.tensor(self._norm_obs_np(view["next_observations"])),
            "dones": self.tensor(np.asarray(view["terminals"], dtype=np.float32)),
        }

    def sample_transitions(self, data: dict[str, torch.Tensor] | None = None, batch_size: int | None = None) -> dict[str, torch.Tensor]:
        """A uniform minibatch (with replacement) of ``batch_size`` rows of ``data`` (default ``self.data``)."""
        data = self.data if data is None else data
        n = len(next(iter(data.values())))
        idx = torch.as_tensor(self.rng.integers(0, n, size=batch_size or self.batch_size), device=self.device)
        return {k: v[idx] for k, v in data.items()}

    @staticmethod
    def segment_rows(seg: Any, dataset: Any) -> np.ndarray:
        """The flat dataset row of every step of ``seg``: ``[N, H]`` int64, ``-1`` where it cannot be found.

        Segments carry only their first row (``Segments.index``). Two layouts exist: segments cut from the
        flat arrays (:func:`pbrl.envs.datasets.segments_at`) occupy rows ``index .. index + H - 1``; segments
        imported from index-style label files (:func:`pbrl.envs.datasets.import_index_labels`) occupy ``H``
        consecutive rows of D4RL's q-learning view, which skips every dropped time-out step, so their rows
        jump over an episode boundary wherever one falls inside. Each layout is accepted only if the dataset's
        observations at its first and last rows equal the segment's own, so a segment is never matched to
        the wrong rows; a segment that fits neither (or has no ``index``) gets ``-1``.
        """
        N, H = seg.obs.shape[:2]
        rows = np.full((N, H), -1, np.int64)
        if seg.index is None or dataset is None:
            return rows
        obs = np.asarray(dataset.observations)
        T = len(obs)
        start = np.asarray(seg.index, np.int64)

        def fits(cand: np.ndarray) -> np.ndarray:
            ok = (cand[:, 0] >= 0) & (cand[:, -1] < T) & (cand[:, 0] < T)
            c = np.clip(cand, 0, T - 1)
            ok &= np.all(obs[c[:, 0]] == seg.obs[:, 0], axis=-1) & np.all(obs[c[:, -1]] == seg.obs[:, -1], axis=-1)
            return ok

        flat = start[:, None] + np.arange(H)[None, :]
        ok = fits(flat)
        rows[ok] = flat[ok]
        if not ok.all() and hasattr(dataset, "qlearning_view"):
            q_index = np.asarray(dataset.qlearning_view()["index"])  # D4RL's rows: what index files address
            pos = np.searchsorted(q_index, start)
            in_view = (pos + H <= len(q_index)) & (q_index[np.minimum(pos, len(q_index) - 1)] == start)
            cand = q_index[np.minimum(pos[:, None] + np.arange(H)[None, :], len(q_index) - 1)]
            use = ~ok & in_view & fits(cand)
            rows[use] = cand[use]
        return rows

    def preference_tensors(self, preferences: PreferenceDataset, dataset: Any | None = None) -> dict[str, torch.Tensor]:
        """Preference pairs as tensors.

        Returns ``obs_a, obs_b [N, H, obs_dim]`` (normalised), ``act_a, act_b [N, H, act_dim]`` (``[-1, 1]``),
        ``label [N]`` (1.0 = b preferred), and, for agents that need successor states, ``next_a, next_b
        [N, H, obs_dim]``, ``done_a, done_b [N, H]`` and ``mask_a, mask_b [N, H]``. Step ``t``'s successor
        is ``obs[t + 1]`` inside the segment; for the last step it is ``Segments.next_obs`` when known,
        otherwise the last step has ``mask = 0`` so that callers can drop it. With ``dataset`` given, the
        steps' rows are found by :meth:`segment_rows`: ``done`` is the dataset's terminal flag of each step's
        own row, and a step whose next row is not the following flat row (an index-style segment running
        across a dropped time-out into the next episode) has ``mask = 0``, its successor being unknown.
        """
        out: dict[str, torch.Tensor] = {"label": self.tensor(preferences.label)}
        terminals = None if dataset is None else np.asarray(dataset.terminals, dtype=np.float32)
        for key, seg in (("a", preferences.a), ("b", preferences.b)):
            N, H = seg.obs.shape[:2]
            nxt = np.concatenate([seg.obs[:, 1:], seg.obs[:, -1:]], axis=1)
            done = np.zeros((N, H), np.float32)
            mask = np.ones((N, H), np.float32)
            if seg.next_obs is not None:
                nxt[:, -1] = seg.next_obs
            else:
                mask[:, -1] = 0.0
            if terminals is not None:
                rows = self.segment_rows(seg, dataset)
                known = rows >= 0
                done[known] = terminals[rows[known]]
                jump = known[:, :-1] & (rows[:, 1:] != rows[:, :-1] + 1) & (done[:, :-1] == 0)
                mask[:, :-1][jump] = 0.0
            out[f"obs_{key}"] = self.tensor(self._norm_obs_np(seg.obs))
            out[f"act_{key}"] = self.tensor(self._act_to_unit(seg.act))
            out[f"next_{key}"] = self.tensor(self._norm_obs_np(nxt))
            out[f"done_{key}"] = self.tensor(done)
            out[f"mask_{key}"] = self.tensor(mask)
        return out


def check_positive_int(name: str, value: Any) -> int:
    """``int(value)`` if it is a positive integer (not a bool); else one ``ValueError`` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def finite_mean(values: Sequence[float]) -> float:
    """The mean of the finite values (a logged accuracy is NaN on a batch without strict pairs); NaN if none."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    return float(v.mean()) if len(v) else float("nan")
