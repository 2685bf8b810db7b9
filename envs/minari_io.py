"""Minari datasets on disk: :func:`to_minari` / :func:`from_minari` through Minari's own API.

Local datasets only, under ``MINARI_DATASETS_PATH`` (default ``~/.minari/datasets``); nothing is ever
downloaded. Minari is in the ``offline`` extra (``pip install 'pbrl[offline]'``).
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np

from pbrl.envs.dataset import OfflineDataset
from pbrl.extras import require
from pbrl.io import atomic_write

__all__ = ["to_minari", "from_minari"]


def _minari():
    return require("minari", "a Minari dataset")


_META_FILE = "pbrl_metadata.json"


def to_minari(ds: OfflineDataset, dataset_id: str, overwrite: bool = False):
    """Create a local Minari dataset ``dataset_id`` (e.g. ``pbrl/hopper/medium-v0``) from ``ds``.

    Written with ``minari.create_dataset_from_buffers`` under ``MINARI_DATASETS_PATH`` (default
    ``~/.minari/datasets``). Each episode stores ``T + 1`` observations (Minari's layout): the last one
    is ``next_observations`` at the episode's last step; when the dataset has no ``next_observations``
    the last observation is repeated (and ``from_minari`` then gives ``next_observations`` that are not
    the original's None). ``success`` and ``infos`` are stored as per-step episode infos of length T.
    pbrl's metadata goes to ``pbrl_metadata.json`` beside Minari's own metadata, and the reference
    returns to Minari's ``ref_min_score`` / ``ref_max_score``.

    Returns:
        the ``minari.MinariDataset``.
    """
    minari = _minari()
    import gymnasium as gym
    from minari.data_collector.episode_buffer import EpisodeBuffer
    from minari.storage.datasets_root_dir import get_dataset_path

    if not isinstance(ds, OfflineDataset):
        raise TypeError(f"to_minari writes an OfflineDataset, got {type(ds).__name__}")
    try:
        minari.dataset.minari_dataset.parse_dataset_id(dataset_id)
    except Exception as e:  # noqa: BLE001 - minari raises several types for bad ids
        raise ValueError(f"invalid Minari dataset id '{dataset_id}' ({e}); use e.g. 'pbrl/hopper/medium-v0'") from None
    if "-v" not in dataset_id.rsplit("/", 1)[-1]:
        raise ValueError(f"Minari dataset ids end in a version, e.g. '{dataset_id}-v0'")
    root = get_dataset_path(dataset_id)
    if root.exists():
        if not overwrite:
            raise ValueError(
                f"a Minari dataset '{dataset_id}' already exists at {root}; pass overwrite=True or a new version"
            )
        minari.delete_dataset(dataset_id)
    buffers = []
    starts, ends = ds.episode_bounds
    for i, (s, e) in enumerate(zip(starts.tolist(), ends.tolist())):
        last = ds.next_observations[e] if ds.next_observations is not None else ds.observations[e]
        obs = np.concatenate([ds.observations[s : e + 1], last[None]], axis=0)
        infos = {k: v[s : e + 1] for k, v in ds.infos.items()}
        if ds.success is not None:
            infos["success"] = ds.success[s : e + 1]
        buffers.append(
            EpisodeBuffer(
                id=i,
                observations=obs,
                actions=ds.actions[s : e + 1],
                rewards=ds.rewards[s : e + 1],
                terminations=ds.terminals[s : e + 1],
                truncations=ds.timeouts[s : e + 1],
                infos=infos or None,
            )
        )
    obs_space = gym.spaces.Box(-np.inf, np.inf, (ds.obs_dim,), np.float32)
    act_space = gym.spaces.Box(
        float(min(-1.0, ds.actions.min())), float(max(1.0, ds.actions.max())), (ds.act_dim,), np.float32
    )
    lo, hi = ds.metadata.get("ref_min_return"), ds.metadata.get("ref_max_return")
    refs = {"ref_min_score": float(lo), "ref_max_score": float(hi)} if lo is not None and hi is not None else {}
    out = minari.create_dataset_from_buffers(
        dataset_id,
        buffers,
        observation_space=obs_space,
        action_space=act_space,
        algorithm_name=str(ds.metadata.get("policy", "unknown")),
        author="pbrl",
        description=f"pbrl dataset of task {ds.task_id}",
    )
    if refs:  # Minari keeps reference scores only when it has an env spec; store them directly
        out.storage.update_metadata(refs)
    meta = {**ds.metadata, "has_next_observations": ds.next_observations is not None}
    with atomic_write(root / _META_FILE, suffix=".json") as tmp:
        tmp.write_text(json.dumps(meta))
    return out


def from_minari(dataset_id: str, metadata: dict | None = None) -> OfflineDataset:
    """Read a local Minari dataset (written by :func:`to_minari`, or any downloaded elsewhere, such as
    D4RL's successors ``mujoco/hopper/medium-v0``) into an :class:`OfflineDataset`. Never downloads.

    Episode infos of length ``T + 1`` (Minari's collector records the reset info first) are aligned so
    that ``qpos[t]`` is the state of ``observations[t]`` and ``success[t]`` the flag after step t.
    Only Box observation and action spaces are supported (Dict observations must be flattened first).
    """
    minari = _minari()
    from minari.storage.datasets_root_dir import get_dataset_path

    root = get_dataset_path(dataset_id)
    if not (root / "data").exists():
        local = sorted(minari.list_local_datasets())
        raise ValueError(
            f"no local Minari dataset '{dataset_id}' under {root.parent if root.parent else root} "
            f"(MINARI_DATASETS_PATH={os.environ.get('MINARI_DATASETS_PATH', '~/.minari/datasets')}); "
            f"local ones: {local[:10]}. Copy or download it there first; pbrl never downloads"
        )
    mds = minari.load_dataset(dataset_id, download=False)
    parts: dict[str, list] = {k: [] for k in ("obs", "act", "rew", "term", "trunc", "next")}
    info_parts: dict[str, list] = {}
    n_eps = mds.total_episodes
    for ep in mds.iterate_episodes():
        obs = np.asarray(ep.observations)
        if obs.dtype == object or obs.ndim != 2:
            raise ValueError(
                f"Minari dataset '{dataset_id}' has observations of shape {obs.shape}; only flat Box "
                "observation spaces can become an OfflineDataset"
            )
        T = len(ep.rewards)
        parts["obs"].append(obs[:T])
        parts["next"].append(obs[1 : T + 1])
        parts["act"].append(np.asarray(ep.actions).reshape(T, -1))
        parts["rew"].append(np.asarray(ep.rewards))
        parts["term"].append(np.asarray(ep.terminations, dtype=bool))
        trunc = np.asarray(ep.truncations, dtype=bool).copy()
        if not (trunc[-1] or ep.terminations[-1]) and len(parts["trunc"]) < n_eps - 1:
            trunc[-1] = True  # an episode ends here whatever the file says (the last one ends anyway)
        parts["trunc"].append(trunc)
        for k, v in (ep.infos or {}).items():
            arr = np.asarray(v) if not isinstance(v, dict) else None
            if arr is None or arr.dtype == object or arr.ndim == 0 or len(arr) not in (T, T + 1):
                continue
            if len(arr) == T + 1:
                arr = arr[1:] if k == "success" else arr[:T]
            info_parts.setdefault(k, []).append(arr)
    info = {k: np.concatenate(v) for k, v in info_parts.items() if len(v) == n_eps}
    meta: dict[str, Any] = {}
    side = root / _META_FILE
    has_next = True
    if side.exists():
        meta = json.loads(side.read_text())
        has_next = bool(meta.pop("has_next_observations", True))
    else:
        m = mds.storage.metadata
        meta = {"dataset_id": dataset_id, "minari_id": dataset_id, "policy": m.get("algorithm_name")}
        if m.get("ref_min_score") is not None and m.get("ref_max_score") is not None:
            meta["ref_min_return"] = float(m["ref_min_score"])
            meta["ref_max_return"] = float(m["ref_max_score"])
        spec = m.get("env_spec")
        if spec:
            try:
                meta["env_id"] = json.loads(spec).get("id")
            except (TypeError, ValueError):
                pass
    meta.update(metadata or {})
    success = info.pop("success", None)
    return OfflineDataset(
        np.concatenate(parts["obs"]),
        np.concatenate(parts["act"]),
        np.concatenate(parts["rew"]),
        np.concatenate(parts["term"]),
        np.concatenate(parts["trunc"]),
        next_observations=np.concatenate(parts["next"]) if has_next else None,
        success=success,
        infos=info,
        metadata=meta,
        _source=f"minari:{dataset_id}",
    )
