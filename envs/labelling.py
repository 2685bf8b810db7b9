"""Preference datasets from an offline dataset: scripted labels of sampled pairs, or imported label files.

* :func:`label_dataset` samples segment pairs inside episodes (uniformly, or stratified by segment
  return) and labels them with any teacher -> :class:`~pbrl.preferences.PreferenceDataset`.
* :func:`rate_dataset` samples single segments the same way and has a rating teacher rate them
  -> :class:`~pbrl.ratings.RatingDataset`.
* :func:`import_index_labels` reads the index-style label files of Preference Transformer
  (Kim et al., ICLR 2023) and Uni-RLHF (Yuan et al., ICLR 2024).
* :func:`segments_at` gathers segments at given flat start indices.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from pbrl.envs.dataset import OfflineDataset
from pbrl.envs.loading import load_dataset
from pbrl.preferences import PreferenceDataset
from pbrl.ratings import RatingDataset
from pbrl.segments import Segments

__all__ = ["label_dataset", "rate_dataset", "import_index_labels", "segments_at"]


def _window_starts(ds: OfflineDataset, length: int) -> tuple[np.ndarray, np.ndarray]:
    """All flat start indices of windows of ``length`` steps inside one episode, and the episode of each."""
    lens = ds.episode_lengths()
    n = np.maximum(lens - length + 1, 0)
    if n.sum() == 0:
        raise ValueError(
            f"no episode is long enough for segments of length {length} (longest has {int(lens.max())} "
            "steps); choose a shorter segment_length"
        )
    ep = np.repeat(np.arange(len(lens)), n)
    offs = np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n)
    starts, _ = ds.episode_bounds
    return starts[ep] + offs, ep


def segments_at(ds: OfflineDataset, starts, length: int) -> Segments:
    """Gather the segments of ``length`` steps starting at flat indices ``starts [N]`` (inside episodes).

    ``next_obs`` is set when every segment's following observation is known; ``qpos``/``qvel`` when
    the dataset has them; ``index`` = ``starts``.
    """
    starts = np.asarray(starts, dtype=np.int64).reshape(-1)
    _, ends = ds.episode_bounds
    ep = np.searchsorted(ends, starts)
    if np.any(starts < 0) or np.any(ep >= ds.n_episodes) or np.any(starts + length - 1 > ends[np.minimum(ep, ds.n_episodes - 1)]):
        raise ValueError(f"segment starts must leave {length} steps inside their episode")
    cols = starts[:, None] + np.arange(length)[None, :]
    kw: dict[str, Any] = {}
    if ds.success is not None:
        kw["success"] = ds.success[cols]
    for k in ("qpos", "qvel"):
        v = ds.infos.get(k)
        if v is not None and v.ndim == 2:
            kw[k] = v[cols]
    last = starts + length - 1
    inside = last < ends[ep]
    if inside.all():
        kw["next_obs"] = ds.observations[last + 1]
    elif ds.next_observations is not None:
        kw["next_obs"] = np.where(inside[:, None], ds.observations[np.minimum(last + 1, len(ds) - 1)], ds.next_observations[last])
    return Segments(obs=ds.observations[cols], act=ds.actions[cols], reward=ds.rewards[cols], index=starts, **kw)


def _stratified_pick(window_returns: np.ndarray, n: int, n_bins: int, rng: np.random.Generator) -> np.ndarray:
    """Pick ``n`` windows: a non-empty bin of equal width over the return range uniformly, then a window
    uniformly inside it (rare low- and high-return windows are drawn as often as common ones)."""
    lo, hi = float(window_returns.min()), float(window_returns.max())
    if hi <= lo:
        return rng.integers(0, len(window_returns), size=n)
    b = np.clip(((window_returns - lo) / (hi - lo) * n_bins).astype(np.int64), 0, n_bins - 1)
    members = [np.flatnonzero(b == k) for k in range(n_bins)]
    members = [m for m in members if len(m)]
    which = rng.integers(0, len(members), size=n)
    out = np.empty(n, dtype=np.int64)
    for k in np.unique(which):
        sel = which == k
        out[sel] = members[k][rng.integers(0, len(members[k]), size=int(sel.sum()))]
    return out


def label_dataset(
    ds: OfflineDataset,
    teacher,
    n_pairs: int,
    segment_length: int = 50,
    seed: int | np.random.Generator | None = 0,
    stratified: bool = False,
    n_bins: int = 10,
) -> PreferenceDataset:
    """Sample ``n_pairs`` segment pairs from ``ds`` and label them with ``teacher``.

    Segments never cross an episode boundary. With ``stratified=False`` every window is equally likely
    (B-Pref / PEBBLE sampling); with ``stratified=True`` each segment picks one of ``n_bins`` equal-width
    bins over the range of window returns uniformly (among non-empty bins), then a window in it, so rare
    low- and high-return behaviour is queried as often as common behaviour.
    A scripted teacher with no margin gets B-Pref's margin from the dataset (mean episode return *
    H / mean episode length). Skipped queries are dropped (the result may hold fewer pairs).

    Args:
        ds: the dataset.
        teacher: a :class:`~pbrl.teachers.Teacher`, a preset name (``"oracle"``, ``"stoc"``, ...), or
            ``"regret"``: CPL's oracle labels from the dataset's expert critic, else from its returns-to-go
            (:func:`pbrl.envs.regret.dataset_regret_teacher`).
        n_pairs: number of pairs to query (> 0).
        segment_length: H.
        seed: seed or Generator for the sampling (a named teacher is seeded with it too).
        stratified: stratify by segment return.
        n_bins: return bins for stratified sampling.

    Returns:
        PreferenceDataset whose segments carry ``index`` (flat start) and qpos/qvel when known; metadata
        has ``dataset_id``, ``task_id``, ``teacher``, ``segment_length``, ``sampling``, ``seed``; ``user``
        holds who answered each pair when the teacher is several users (``Teacher.answer``).
    """
    teacher, seed_int = _check_labelling(ds, teacher, n_pairs, "n_pairs", segment_length, n_bins, seed)
    rng = np.random.default_rng(seed)
    a = _sample(ds, n_pairs, segment_length, stratified, n_bins, rng)
    b = _sample(ds, n_pairs, segment_length, stratified, n_bins, rng)
    labels, users = _with_margin(teacher, ds, segment_length).answer(a, b)
    return PreferenceDataset(a, b, labels, metadata=_meta(ds, teacher, segment_length, stratified, seed_int, n_pairs),
                             user=users)


def rate_dataset(
    ds: OfflineDataset,
    teacher,
    n_segments: int,
    segment_length: int = 50,
    seed: int | np.random.Generator | None = 0,
    stratified: bool = False,
    n_bins: int = 10,
) -> RatingDataset:
    """Sample ``n_segments`` single segments from ``ds`` (as :func:`label_dataset` samples each side of a pair)
    and have a rating teacher rate them (RbRL). Skipped segments are dropped.

    Args:
        ds: the dataset.
        teacher: a rating teacher (:class:`~pbrl.teachers.RatingTeacher`, ``rate(segments)``) or ``"rating"``.
        n_segments: number of segments to ask about (> 0).
        segment_length, seed, stratified, n_bins: as :func:`label_dataset`.

    Returns:
        RatingDataset with the teacher's ``n_classes``; metadata as :func:`label_dataset`'s.
    """
    teacher, seed_int = _check_labelling(ds, teacher, n_segments, "n_segments", segment_length, n_bins, seed)
    if getattr(teacher, "feedback", None) != "rating":
        raise TypeError(f"rate_dataset needs a rating teacher (e.g. make_teacher('rating')), got "
                        f"'{getattr(teacher, 'name', type(teacher).__name__)}'; label pairs with label_dataset")
    seg = _sample(ds, n_segments, segment_length, stratified, n_bins, np.random.default_rng(seed))
    ratings = _with_margin(teacher, ds, segment_length).rate(seg)
    meta = _meta(ds, teacher, segment_length, stratified, seed_int, n_segments)
    return RatingDataset(seg, ratings, teacher.n_classes, metadata=meta)


def _check_labelling(ds, teacher, n, n_name: str, segment_length, n_bins: int, seed):
    """Validate the common arguments; returns the teacher (built when given by name) and the integer seed."""
    from pbrl.teachers import Teacher, make_teacher

    if not isinstance(ds, OfflineDataset):
        raise TypeError(f"labelling needs an OfflineDataset, got {type(ds).__name__}")
    if not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"{n_name} must be a positive integer, got {n}")
    if not isinstance(segment_length, (int, np.integer)) or segment_length < 1:
        raise ValueError(f"segment_length must be a positive integer, got {segment_length}")
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    seed_int = int(seed) if isinstance(seed, (int, np.integer)) else 0
    if teacher == "regret":  # CPL's oracle: regret under the dataset's expert critic (or its returns-to-go)
        from pbrl.envs.regret import dataset_regret_teacher

        teacher = dataset_regret_teacher(ds, seed=seed_int)
    elif isinstance(teacher, str):
        teacher = make_teacher(teacher, seed=seed_int)
    if not isinstance(teacher, Teacher):
        raise TypeError(f"teacher must be a pbrl Teacher or a preset name, got {type(teacher).__name__}")
    return teacher, seed_int


def _sample(ds: OfflineDataset, n: int, length: int, stratified: bool, n_bins: int, rng: np.random.Generator) -> Segments:
    """``n`` windows inside episodes: uniform over windows, or stratified by window return."""
    starts, _ = _window_starts(ds, length)
    if stratified:
        c = np.concatenate([[0.0], np.cumsum(ds.rewards, dtype=np.float64)])
        pick = _stratified_pick(c[starts + length] - c[starts], n, n_bins, rng)
    else:
        pick = rng.integers(0, len(starts), size=n)
    return segments_at(ds, starts[pick], length)


def _with_margin(teacher, ds: OfflineDataset, segment_length: int):
    """A teacher with a skip margin but none set gets B-Pref's margin from the dataset."""
    if getattr(teacher, "margin", 0.0) is None and hasattr(teacher, "update_margin"):
        teacher.update_margin(ds.episode_returns(), float(ds.episode_lengths().mean()), segment_length)
    return teacher


def _meta(ds: OfflineDataset, teacher, segment_length: int, stratified: bool, seed: int, n: int) -> dict:
    return {
        "dataset_id": ds.dataset_id,
        "task_id": ds.task_id,
        "teacher": getattr(teacher, "name", type(teacher).__name__),
        "segment_length": int(segment_length),
        "sampling": "stratified" if stratified else "uniform",
        "seed": int(seed),
        "n_queried": int(n),
        **({"value_source": teacher.value_source} if hasattr(teacher, "value_source") else {}),
    }


def _load_index_array(src, name: str) -> np.ndarray:
    if isinstance(src, (str, os.PathLike)):
        p = Path(src)
        if not p.exists():
            raise FileNotFoundError(f"no {name} file at {p}")
        try:
            if p.suffix == ".npy":
                obj = np.load(p, allow_pickle=False)
            else:
                with open(p, "rb") as fh:
                    obj = pickle.load(fh)  # noqa: S301 - these public label files are pickles
        except Exception as e:  # noqa: BLE001 - unpickling raises many types
            raise ValueError(f"{p} is not a readable pickle/.npy {name} file ({e})") from None
    else:
        obj = src
    return np.asarray(obj)


def import_index_labels(
    ds: OfflineDataset | str | os.PathLike,
    indices_1,
    indices_2,
    labels,
    query_length: int,
    metadata: dict | None = None,
    num_query: int | None = None,
    user: str | Any = None,
) -> PreferenceDataset:
    """Import index-style preference labels (Preference Transformer / Uni-RLHF human labels).

    Those releases store three pickled arrays per task: the start indices of the first segments, of the
    second segments (both into D4RL's ``qlearning_dataset`` rows of the matching D4RL file, which
    :meth:`OfflineDataset.qlearning_view` reproduces with ``keep_timeouts=False``), and the labels, over a
    fixed query length. Their convention (checked against the loaders of Preference Transformer and of
    Uni-RLHF's Clean-Offline-RLHF, which turn a label into a one-hot ``[P(first), P(second)]`` target):
    ``0`` = the first segment is preferred, ``1`` = the second, ``-1`` = equally preferred. In pbrl's
    convention that is 0.0, 1.0 and 0.5 respectively. Like those loaders, ``num_query=n`` keeps the *last*
    n entries of the three arrays.

    Args:
        ds: the matching dataset (or a path / Minari id loaded with :func:`load_dataset`).
        indices_1, indices_2: ``[N]`` int start indices (arrays, or paths to pickle / ``.npy`` files).
        labels: ``[N]`` in {0, 1, -1} (also accepted: one-hot ``[N, 2]``), array or path.
        query_length: segment length used when the labels were collected (e.g. 100 for PT's MuJoCo).
        num_query: keep only the last ``num_query`` queries (None: all).
        user: who labelled them (``PreferenceDataset.user``): one id for every pair (a string), ``[N]`` ids
            (cut by ``num_query`` as the labels are), or None (unknown).

    Returns:
        PreferenceDataset, segments' ``index`` = flat indices into ``ds``; metadata names the source.

    Raises:
        ValueError: index arrays of different lengths, non-integer indices, labels outside {0, 1, -1}, or a
            segment running past the end of the q-learning view (the wrong dataset file).
    """
    if not isinstance(ds, OfflineDataset):
        ds = load_dataset(ds)
    if not isinstance(query_length, (int, np.integer)) or query_length < 1:
        raise ValueError(f"query_length must be a positive integer, got {query_length}")
    i1 = _load_index_array(indices_1, "indices_1").reshape(-1)
    i2 = _load_index_array(indices_2, "indices_2").reshape(-1)
    lab = _load_index_array(labels, "labels")
    if lab.ndim == 2 and lab.shape[1] == 2:
        onehot = lab.astype(np.float64)
        lab = np.where(np.isclose(onehot[:, 0], onehot[:, 1]), -1, np.argmax(onehot, axis=1))
    lab = lab.reshape(-1)
    if not (len(i1) == len(i2) == len(lab)):
        raise ValueError(
            f"indices_1, indices_2 and labels must have the same length, got {len(i1)}, {len(i2)}, {len(lab)}"
        )
    users = None
    if user is not None:
        users = np.full(len(lab), str(user)) if isinstance(user, str) else np.asarray(list(user)).astype(str)
        if users.shape != (len(lab),):
            raise ValueError(f"user must be one id or {len(lab)} ids (one per label), got {len(users)}")
    for name, arr in (("indices_1", i1), ("indices_2", i2)):
        if not np.issubdtype(arr.dtype, np.integer):
            if not (np.issubdtype(arr.dtype, np.floating) and np.all(arr == np.round(arr))):
                raise ValueError(f"{name} must hold integer start indices, got dtype {arr.dtype}")
    i1, i2 = i1.astype(np.int64), i2.astype(np.int64)
    if num_query is not None:
        if not isinstance(num_query, (int, np.integer)) or not 1 <= num_query <= len(lab):
            raise ValueError(f"num_query must be an integer in [1, {len(lab)}], got {num_query}")
        i1, i2, lab = i1[-num_query:], i2[-num_query:], lab[-num_query:]
        users = None if users is None else users[-num_query:]
    lab_num = np.asarray(lab, dtype=np.float64)
    bad = ~np.isin(lab_num, (0.0, 1.0, -1.0))
    if bad.any():
        raise ValueError(
            f"index-style labels must be 0 (first preferred), 1 (second preferred) or -1 (tie); got "
            f"{np.unique(lab_num[bad])[:5].tolist()}"
        )
    q = ds.qlearning_view(keep_timeouts=False)
    n_rows = len(q["index"])
    for name, arr in (("indices_1", i1), ("indices_2", i2)):
        if np.any(arr < 0) or np.any(arr + query_length > n_rows):
            worst = int(arr.max())
            raise ValueError(
                f"{name} reaches row {worst + query_length - 1} but the q-learning view of this dataset has "
                f"{n_rows} rows; is it the matching D4RL file, and is query_length={query_length} right?"
            )
    cols1 = i1[:, None] + np.arange(query_length)[None, :]
    cols2 = i2[:, None] + np.arange(query_length)[None, :]
    flat = q["index"]

    def segs(cols: np.ndarray) -> Segments:
        rows = flat[cols]
        kw: dict[str, Any] = {}
        if ds.success is not None:
            kw["success"] = ds.success[rows]
        for k in ("qpos", "qvel"):
            v = ds.infos.get(k)
            if v is not None and v.ndim == 2:
                kw[k] = v[rows]
        return Segments(
            obs=q["observations"][cols],
            act=q["actions"][cols],
            reward=q["rewards"][cols],
            next_obs=q["next_observations"][cols[:, -1]],
            index=rows[:, 0],
            **kw,
        )

    out = np.where(lab_num == -1.0, 0.5, lab_num).astype(np.float32)
    meta = {
        "dataset_id": ds.dataset_id,
        "task_id": ds.task_id,
        "source": "index-style labels (Preference Transformer / Uni-RLHF)",
        "segment_length": int(query_length),
        **(metadata or {}),
    }
    return PreferenceDataset(segs(cols1), segs(cols2), out, metadata=meta, user=users)
