"""RatingDataset: single segments and the class a teacher rated each one (rating-based feedback).

A teacher sorts one segment at a time into one of ``n_classes`` ordered classes, ``0`` ("bad") ...
``n_classes - 1`` ("good") (White et al., "Rating-based Reinforcement Learning", AAAI 2024), instead of
comparing two. One rating costs the teacher one clip watched; one preference pair costs two.

Rating convention everywhere in pbrl: an integer class in ``[0, n_classes)``, higher is better. A skipped
query is not a rating and is never stored (teachers return NaN for it, as for preference labels).

On disk a rating dataset is a versioned HDF5 file (see :meth:`RatingDataset.save`) written atomically,
laid out like a :class:`~pbrl.preferences.PreferenceDataset` with one segment group instead of two.
:func:`load_labels` reads either kind of label file.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import h5py
import numpy as np

from pbrl.preferences import PreferenceDataset, open_label_file, read_segments_group, write_label_file
from pbrl.segments import Segments
from pbrl.validation import check_int

__all__ = ["RatingDataset", "RATING_FORMAT_VERSION", "validate_ratings", "load_labels", "is_rating_data"]

#: the RatingDataset HDF5 format's version
RATING_FORMAT_VERSION = 1


def validate_ratings(rating, n_classes: int, allow_nan: bool = False) -> np.ndarray:
    """Ratings as float64 ``[N]`` (NaN kept only with ``allow_nan``); one clear ``ValueError`` for a value
    that is not an integer class in ``[0, n_classes)``."""
    arr = np.asarray(rating)
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
        raise ValueError(f"ratings must be numbers (integer classes), got dtype {arr.dtype}")
    r = arr.astype(np.float64).reshape(-1)
    finite = np.isfinite(r)
    if not allow_nan and not finite.all():
        raise ValueError("ratings contain NaN; skipped queries must be dropped, not stored")
    vals = r[finite]
    bad = (vals != np.round(vals)) | (vals < 0) | (vals >= n_classes)
    if bad.any():
        raise ValueError(
            f"ratings must be integer classes in [0, {n_classes - 1}] (0 = worst, {n_classes - 1} = best) for "
            f"n_classes={n_classes}; got {np.unique(vals[bad])[:5].tolist()}"
        )
    return r


class RatingDataset:
    """Segments ``[N, H, ...]`` with one rating each, an integer class in ``[0, n_classes)``.

    Args:
        segments: the rated :class:`~pbrl.segments.Segments` (``obs [N, H, obs_dim]``, ``act [N, H, act_dim]``,
            true ``reward [N, H]``, optional simulator states).
        rating: ``[N]`` classes (0 = worst). NaN entries (skipped queries) are dropped.
        n_classes: number of ordered classes (>= 2).
        metadata: free-form JSON-serialisable dict (task id, dataset id, teacher, class names, ...).
        annotator: optional ``[N]`` annotator names (human ratings).

    Attributes:
        segments, rating, n_classes, metadata, annotator: the arguments as stored (``rating`` int64 ``[N]``,
            ``annotator`` ``None`` or str ``[N]``).
    """

    def __init__(
        self,
        segments: Segments,
        rating,
        n_classes: int,
        metadata: dict | None = None,
        annotator: Iterable[str] | None = None,
    ):
        if not isinstance(segments, Segments):
            raise TypeError(f"segments must be a pbrl Segments batch, got {type(segments).__name__}")
        n_classes = check_int("n_classes", n_classes, 2)
        r = validate_ratings(rating, n_classes, allow_nan=True)
        if len(r) != len(segments):
            raise ValueError(f"segments and rating must have the same length, got {len(segments)} and {len(r)}")
        ann = None if annotator is None else np.asarray(list(annotator), dtype=object).astype(str)
        if ann is not None and len(ann) != len(r):
            raise ValueError(f"annotator must have {len(r)} entries, got {len(ann)}")
        keep = np.isfinite(r)
        if not keep.all():
            segments, r = segments[keep], r[keep]
            ann = None if ann is None else ann[keep]
        self.segments = segments
        self.rating = r.astype(np.int64)
        self.n_classes = n_classes
        self.annotator = ann
        self.metadata = dict(metadata or {})

    # ------------------------------------------------------------------ basics
    @classmethod
    def empty(cls, length: int, obs_dim: int, act_dim: int, n_classes: int, metadata: dict | None = None) -> RatingDataset:
        """A dataset with no ratings, ready to ``append`` to."""
        return cls(Segments.empty(length, obs_dim, act_dim), np.zeros(0), n_classes, metadata=metadata)

    def __len__(self) -> int:
        return len(self.rating)

    def __repr__(self) -> str:
        return (
            f"RatingDataset(n={len(self)}, H={self.segment_length}, obs_dim={self.segments.obs_dim}, "
            f"act_dim={self.segments.act_dim}, n_classes={self.n_classes}, per_class={self.class_counts().tolist()})"
        )

    @property
    def segment_length(self) -> int:
        """H, the steps per rated segment."""
        return self.segments.length

    def class_counts(self) -> np.ndarray:
        """Ratings per class, int64 ``[n_classes]``."""
        return np.bincount(self.rating, minlength=self.n_classes).astype(np.int64)

    def append(self, segments: Segments, rating, annotator: Iterable[str] | None = None) -> int:
        """Add rated segments; NaN ratings (skipped queries) are dropped. Returns the number added."""
        new = RatingDataset(segments, rating, self.n_classes, annotator=annotator)
        if len(new) == 0:
            return 0
        old = self.segments
        if len(self) and (new.segments.obs.shape[1:] != old.obs.shape[1:] or new.segments.act.shape[1:] != old.act.shape[1:]):
            raise ValueError(
                f"cannot append segments of shape {new.segments.obs.shape[1:]}/{new.segments.act.shape[1:]} to a "
                f"rating dataset of {old.obs.shape[1:]}/{old.act.shape[1:]}"
            )
        n_old = len(self)
        if n_old == 0:
            self.segments, self.rating = new.segments, new.rating
        else:
            self.segments = Segments.concatenate([old, new.segments])
            self.rating = np.concatenate([self.rating, new.rating])
        if self.annotator is not None or new.annotator is not None:
            a = self.annotator if self.annotator is not None else np.full(n_old, "", dtype=object)
            b = new.annotator if new.annotator is not None else np.full(len(new), "", dtype=object)
            self.annotator = np.concatenate([a.astype(object), b.astype(object)]).astype(str)
        return len(new)

    def subset(self, idx) -> RatingDataset:
        """The ratings at ``idx`` (index array, slice or mask)."""
        idx = np.arange(len(self))[idx]
        return RatingDataset(self.segments[idx], self.rating[idx], self.n_classes, metadata=self.metadata,
                             annotator=None if self.annotator is None else self.annotator[idx])

    def split(self, frac: float, seed: int | np.random.Generator | None = 0) -> tuple[RatingDataset, RatingDataset]:
        """Random split into ``(first, rest)`` with ``round(frac * N)`` ratings in ``first``."""
        if not 0.0 <= frac <= 1.0:
            raise ValueError(f"split fraction must be in [0, 1], got {frac}")
        perm = np.random.default_rng(seed).permutation(len(self))
        k = int(round(frac * len(self)))
        return self.subset(np.sort(perm[:k])), self.subset(np.sort(perm[k:]))

    # ------------------------------------------------------------------ HDF5
    def save(self, path: str | os.PathLike) -> Path:
        """Write a versioned HDF5 file atomically (temp file + rename).

        Layout: attrs ``format=pbrl.ratings``, ``version``, ``n_classes``, ``metadata`` (JSON); dataset
        ``rating [N]`` (int64); group ``segments/`` with ``obs, act, reward`` and any optional segment fields;
        ``annotator [N]`` (strings) when known.
        """
        return write_label_file(path, "pbrl.ratings", RATING_FORMAT_VERSION, self.metadata, {"rating": self.rating},
                                {"segments": self.segments}, self.annotator, n_classes=self.n_classes)

    @classmethod
    def load(cls, path: str | os.PathLike) -> RatingDataset:
        """Read a file written by :meth:`save`; every malformed file gives one clear error naming it."""
        with open_label_file(path, "pbrl.ratings", "rating", RATING_FORMAT_VERSION, ("rating", "segments"),
                             "RatingDataset.save") as (f, meta, ann):
            if "n_classes" not in f.attrs:
                raise ValueError(f"{path} does not record n_classes; it was not written by RatingDataset.save")
            n_classes = int(f.attrs["n_classes"])
            seg = read_segments_group(f, "segments", path)
            rating = f["rating"][()]
        try:
            validate_ratings(rating, max(n_classes, 2))
            return cls(seg, rating, n_classes, metadata=meta, annotator=ann)
        except ValueError as e:
            raise ValueError(f"{path}: {e}") from None


def is_rating_data(labels) -> bool:
    """Whether ``labels`` is a :class:`RatingDataset` (rather than preference pairs)."""
    return isinstance(labels, RatingDataset)


def load_labels(path: str | os.PathLike) -> PreferenceDataset | RatingDataset:
    """A label file of either kind: a :class:`~pbrl.preferences.PreferenceDataset` (``format=pbrl.preferences``)
    or a :class:`RatingDataset` (``format=pbrl.ratings``), chosen by the file's ``format`` attribute."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no label file at {path}")
    try:
        with h5py.File(path, "r") as f:
            fmt = str(f.attrs.get("format", ""))
    except OSError as e:
        raise ValueError(f"{path} is not a readable HDF5 label file ({e})") from None
    if fmt == "pbrl.ratings":
        return RatingDataset.load(path)
    if fmt in ("pbrl.preferences", ""):
        return PreferenceDataset.load(path)
    raise ValueError(f"{path} is a {fmt} file, not pbrl labels (a preference or rating dataset)")
