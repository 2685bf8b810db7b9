"""Turn a person's answers into a :class:`~pbrl.preferences.PreferenceDataset` every agent reads, or, for a
rating queue, a :class:`~pbrl.ratings.RatingDataset`."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from pbrl.label.queue import LabelQueue
from pbrl.label.store import LabelStore, majority_label, majority_rating
from pbrl.preferences import PreferenceDataset
from pbrl.ratings import RatingDataset

__all__ = ["export_preferences", "export_ratings", "export_labels", "EXPORT_MODES"]

#: ``pbrl label export --mode``: one label per pair (majority) or one row per answer
EXPORT_MODES = ("majority", "per-annotator")


def export_preferences(
    db: str | os.PathLike,
    queue: str | os.PathLike | LabelQueue,
    out: str | os.PathLike | None = None,
    mode: str = "majority",
) -> PreferenceDataset:
    """The answers in ``db`` to the pairs of ``queue`` as a PreferenceDataset (saved to ``out`` if given).

    Args:
        db: the SQLite store of ``pbrl label serve``.
        queue: the queue file (or loaded :class:`LabelQueue`) the server was started with.
        out: where to write the HDF5 file (atomically); None to only return it.
        mode: ``majority``: one row per answered pair, the majority label of its annotators (a tie is 0.5);
            ``per-annotator``: one row per (pair, annotator), with the ``annotator`` column filled.
            Skips ("can't tell") are never labels; a pair everybody skipped is left out.

    Pair ``i`` keeps ``a = queue.a[i]`` (shown left) and ``b = queue.b[i]`` (shown right); label 1.0 = right.
    The annotator's name is the pair's user id (``PreferenceDataset.user``, what VPL groups labels by) when
    every row has one annotator: always per annotator, and in ``majority`` mode when no pair was answered by
    several people; otherwise ``user`` is None.
    """
    if mode not in EXPORT_MODES:
        raise ValueError(f"mode must be one of {list(EXPORT_MODES)}, got {mode!r}")
    if not Path(db).exists():
        raise FileNotFoundError(f"no label store at {db}; it is made by `pbrl label serve`")
    q = queue if isinstance(queue, LabelQueue) else LabelQueue.load(queue)
    if q.mode == "rating":
        raise ValueError("the queue is a rating queue; export it with export_ratings (`pbrl label export` picks it)")
    rows, meta = _answered(db, q, mode)
    if mode == "majority":
        by_pair: dict[int, list[float]] = {}
        who: dict[int, list[str]] = {}
        for r in rows:
            by_pair.setdefault(r["source_index"], []).append(r["label"])
            who.setdefault(r["source_index"], []).append(r["annotator"])
        idx = np.array(sorted(by_pair), dtype=np.int64)
        labels = np.array([majority_label(by_pair[i]) for i in idx], dtype=np.float32)
        annot = ["+".join(sorted(set(who[i]))) for i in idx]
    else:
        idx, labels, annot = _per_annotator(rows)
    _check_range(db, idx, q)
    meta["annotators"] = _annotators(annot, mode)
    single = all("+" not in a for a in annot) if mode == "majority" else True
    ds = PreferenceDataset(q.a[idx], q.b[idx], labels, metadata=meta, annotator=annot, user=annot if single else None)
    if out is not None:
        ds.save(out)
    return ds


def export_ratings(
    db: str | os.PathLike,
    queue: str | os.PathLike | LabelQueue,
    out: str | os.PathLike | None = None,
    mode: str = "majority",
) -> RatingDataset:
    """The ratings in ``db`` of the clips of a rating ``queue`` as a RatingDataset (saved to ``out`` if given).

    Args:
        db, queue, out: as :func:`export_preferences` (``queue`` must be a rating queue).
        mode: ``majority``: one row per rated clip, the most frequent class among its annotators (a tie goes
            to the lower middle of the tied classes, :func:`~pbrl.label.store.majority_rating`);
            ``per-annotator``: one row per (clip, annotator). Skips are never ratings.

    Row ``i`` keeps ``segments = queue.a[i]``; the page's key ``k`` is class ``k - 1``.
    """
    if mode not in EXPORT_MODES:
        raise ValueError(f"mode must be one of {list(EXPORT_MODES)}, got {mode!r}")
    q = queue if isinstance(queue, LabelQueue) else LabelQueue.load(queue)
    if q.mode != "rating":
        raise ValueError("the queue holds pairs; export it with export_preferences")
    rows, meta = _answered(db, q, mode)
    if mode == "majority":
        by_clip: dict[int, list[float]] = {}
        who: dict[int, list[str]] = {}
        for r in rows:
            by_clip.setdefault(r["source_index"], []).append(r["label"])
            who.setdefault(r["source_index"], []).append(r["annotator"])
        idx = np.array(sorted(by_clip), dtype=np.int64)
        ratings = np.array([majority_rating(by_clip[i]) for i in idx], dtype=np.float64)
        annot = ["+".join(sorted(set(who[i]))) for i in idx]
    else:
        idx, ratings, annot = _per_annotator(rows)
    _check_range(db, idx, q)
    meta["annotators"] = _annotators(annot, mode)
    ds = RatingDataset(q.a[idx], ratings, q.n_classes, metadata=meta, annotator=annot)
    if out is not None:
        ds.save(out)
    return ds


def export_labels(db: str | os.PathLike, queue: str | os.PathLike | LabelQueue, out: str | os.PathLike | None = None,
                  mode: str = "majority") -> PreferenceDataset | RatingDataset:
    """:func:`export_ratings` for a rating queue, :func:`export_preferences` for a queue of pairs."""
    q = queue if isinstance(queue, LabelQueue) else LabelQueue.load(queue)
    return (export_ratings if q.mode == "rating" else export_preferences)(db, q, out, mode)


def _answered(db: str | os.PathLike, q: LabelQueue, mode: str) -> tuple[list[dict], dict]:
    """The queue's answers in ``db`` that are labels (skips dropped), and the export's metadata."""
    if not Path(db).exists():
        raise FileNotFoundError(f"no label store at {db}; it is made by `pbrl label serve`")
    store = LabelStore(db)
    try:
        fp = store.meta().get("queue_fingerprint")
        if fp is None:
            raise ValueError(f"{db} holds no queue's answers (it only served HumanTeacher queries)")
        if fp != q.fingerprint():
            raise ValueError(f"{db} holds the answers of another queue ({store.meta().get('queue_path', '?')})")
        rows = [r for r in store.answers(source="queue") if r["label"] is not None]
    finally:
        store.close()
    meta = {**q.metadata, "teacher": "human", "export_mode": mode, "label_store": str(Path(db).resolve())}
    return rows, meta


def _per_annotator(rows: list[dict]) -> tuple[np.ndarray, np.ndarray, list[str]]:
    rows = sorted(rows, key=lambda r: (r["source_index"], r["id"]))
    idx = np.array([r["source_index"] for r in rows], dtype=np.int64)
    return idx, np.array([r["label"] for r in rows], dtype=np.float64), [r["annotator"] for r in rows]


def _check_range(db: str | os.PathLike, idx: np.ndarray, q: LabelQueue) -> None:
    if len(idx) and idx.max() >= len(q):
        raise ValueError(f"{db} has answers for query {int(idx.max())} but the queue has only {len(q)}")


def _annotators(annot: list[str], mode: str) -> list[str]:
    return sorted(set(annot)) if mode == "per-annotator" else sorted({a for s in annot for a in s.split("+")})
