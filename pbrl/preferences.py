"""PreferenceDataset: pairs of segments and the labels a teacher gave them.

Label convention everywhere in pbrl: ``1.0`` means the second segment (``b``) is preferred,
``0.0`` the first (``a``), ``0.5`` both equally. A skipped query is not a label and is never stored.

On disk a dataset is a versioned HDF5 file (see :meth:`PreferenceDataset.save`), written atomically.
The segment-pair ``.npz`` layout of public PbRL datasets (``obs_1, obs_2, action_1, action_2, label``)
can be imported and exported.

Labels from several people (or simulated users) carry a **user id** per pair (``PreferenceDataset.user``,
strings ``[N]``): who answered. Agents that learn one reward per user (VPL) group pairs by it. Files
written before user ids existed load with ``user = None``.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import fields
from pathlib import Path

import h5py
import numpy as np

from pbrl.io import atomic_write  # noqa: F401 - re-exported: pbrl.preferences.atomic_write
from pbrl.segments import Segments

__all__ = [
    "PreferenceDataset",
    "FORMAT_VERSION",
    "atomic_write",
    "validate_labels",
    "write_segments_group",
    "read_segments_group",
    "write_label_file",
    "open_label_file",
    "read_strings",
    "as_user_ids",
]

#: the PreferenceDataset HDF5 format's version
FORMAT_VERSION = 1
_VALID_LABELS = (0.0, 0.5, 1.0)


def validate_labels(label, allow_nan: bool = False) -> np.ndarray:
    """Return labels as float32 ``[N]``; raise a clear error for values outside {0, 0.5, 1}."""
    lab = np.asarray(label, dtype=np.float32).reshape(-1)
    finite = np.isfinite(lab)
    if not allow_nan and not finite.all():
        raise ValueError("labels contain NaN; skipped queries must be dropped, not stored")
    ok = np.isin(lab[finite], _VALID_LABELS)
    if not ok.all():
        bad = np.unique(lab[finite][~ok])[:5]
        raise ValueError(
            f"labels must be 0.0 (first preferred), 0.5 (equal) or 1.0 (second preferred); got {bad.tolist()}"
        )
    return lab


def write_segments_group(group: h5py.Group, seg: Segments) -> None:
    """Write every known field of ``seg`` as a (gzip-compressed) dataset of the HDF5 ``group``."""
    for fld in fields(Segments):
        v = getattr(seg, fld.name)
        if v is not None:
            group.create_dataset(fld.name, data=v, compression="gzip", compression_opts=1)


def read_segments_group(
    f: h5py.File, key: str, path: str | os.PathLike, required: tuple[str, ...] = ("obs", "act", "reward")
) -> Segments:
    """Read the ``Segments`` stored in group ``key`` of the open file ``f`` (written by
    :func:`write_segments_group`); a missing group or field, or malformed arrays, give one clear error
    naming ``path``."""
    if key not in f:
        raise ValueError(f"{path} is missing the required key '{key}'")
    g = f[key]
    for req in required:
        if req not in g:
            raise ValueError(f"{path} is missing the required key '{key}/{req}'")
    try:
        return Segments(**{fld.name: g[fld.name][()] for fld in fields(Segments) if fld.name in g})
    except ValueError as e:
        raise ValueError(f"{path}: segments '{key}' are malformed: {e}") from None


def write_label_file(path: str | os.PathLike, fmt: str, version: int, metadata: dict, arrays: dict[str, np.ndarray],
                     segments: dict[str, Segments], annotator: list[str] | None = None,
                     user: list[str] | None = None, **attrs) -> Path:
    """The one HDF5 layout of pbrl's label files (preference pairs, ratings), written atomically (temp file +
    rename): attrs ``format``, ``version``, ``metadata`` (JSON) and ``attrs``; one dataset per ``arrays``
    entry; one group per ``segments`` entry (:func:`write_segments_group`); ``annotator [N]`` and ``user
    [N]`` (strings) when known."""
    path = Path(path)
    with atomic_write(path) as tmp:
        with h5py.File(tmp, "w") as f:
            f.attrs["format"] = fmt
            f.attrs["version"] = version
            for k, v in attrs.items():
                f.attrs[k] = v
            f.attrs["metadata"] = json.dumps(metadata, default=str)
            for k, v in arrays.items():
                f.create_dataset(k, data=v)
            for k, seg in segments.items():
                write_segments_group(f.create_group(k), seg)
            for key, names in (("annotator", annotator), ("user", user)):
                if names is not None:
                    f.create_dataset(key, data=np.asarray(names, dtype=object), dtype=h5py.string_dtype())
    return path


def read_strings(f: h5py.File, key: str) -> list[str] | None:
    """The string dataset ``key`` of an open label file as a list (``None`` when the file has none)."""
    if key not in f:
        return None
    return [x.decode() if isinstance(x, bytes) else str(x) for x in f[key][()]]


@contextlib.contextmanager
def open_label_file(path: str | os.PathLike, fmt: str, what: str, version: int, required: tuple[str, ...],
                    writer: str, unversioned_format_ok: bool = False) -> Iterator[tuple[h5py.File, dict, list[str] | None]]:
    """Open a label file written by :func:`write_label_file` for reading, after the checks every reader
    makes, each failing with one clear error naming ``path``: it exists, is HDF5, is ``fmt`` (a file without
    a ``format`` attribute passes when ``unversioned_format_ok``: the first preference files), has a version
    this pbrl reads (at most ``version``), and holds every ``required`` key. ``what`` names the kind in
    messages ("preference", "rating"), ``writer`` the method that writes it. Yields ``(file, metadata,
    annotator or None)``."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no {what} file at {path}")
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise ValueError(f"{path} is not a readable HDF5 {what} file ({e})") from None
    with f:
        found = f.attrs.get("format")
        if (found is None and not unversioned_format_ok) or (found is not None and str(found) != fmt):
            raise ValueError(f"{path} is a {found or 'unknown'!s} file, not a pbrl {what} dataset")
        v = int(f.attrs.get("version", -1))
        if v < 0:
            raise ValueError(f"{path} has no format version; it was not written by {writer}")
        if v > version:
            raise ValueError(f"{path} uses {what} format version {v}, newer than this pbrl reads ({version}); "
                             "upgrade pbrl to read it")
        for key in required:
            if key not in f:
                raise ValueError(f"{path} is missing the required key '{key}'")
        meta = json.loads(f.attrs.get("metadata", "{}"))
        yield f, meta, read_strings(f, "annotator")


def as_user_ids(user: Iterable | None, n: int) -> np.ndarray | None:
    """User ids as a str array ``[n]`` (ints become their decimal string), or ``None``; one clear error for a
    wrong length or an empty id."""
    if user is None:
        return None
    if isinstance(user, (str, bytes)):
        raise ValueError(f"user must hold one id per pair ({n}), got the single string {user!r}")
    ids = np.asarray([u.decode() if isinstance(u, bytes) else str(u) for u in user], dtype=object).astype(str)
    if ids.shape != (n,):
        raise ValueError(f"user must have {n} entries (one id per pair), got {ids.shape[0] if ids.ndim else 0}")
    if n and np.any(np.char.str_len(ids) == 0):
        raise ValueError("user ids must be non-empty strings; give every pair the id of the user who labelled it")
    return ids


class PreferenceDataset:
    """Pairs of segments ``(a, b)`` with labels ``[N]`` in {0.0, 0.5, 1.0}.

    Args:
        a, b: ``Segments`` of equal size, length and dims.
        label: ``[N]`` labels (1.0 = ``b`` preferred). NaN entries (skipped queries) are dropped.
        metadata: free-form JSON-serialisable dict (task id, dataset id, teacher, ...).
        annotator: optional ``[N]`` array of annotator names (human labels).
        user: optional ``[N]`` user ids (strings; ints are converted), who answered each pair: a
            multi-user teacher's user, or the annotator of a labelling page. ``None`` when unknown.
    """

    def __init__(
        self,
        a: Segments,
        b: Segments,
        label,
        metadata: dict | None = None,
        annotator: Iterable[str] | None = None,
        user: Iterable | None = None,
    ):
        label = validate_labels(label, allow_nan=True)
        if not (len(a) == len(b) == len(label)):
            raise ValueError(f"a, b and label must have the same length, got {len(a)}, {len(b)}, {len(label)}")
        if a.obs.shape[1:] != b.obs.shape[1:] or a.act.shape[1:] != b.act.shape[1:]:
            raise ValueError(
                f"segments a and b must have the same shape, got obs {a.obs.shape[1:]} vs {b.obs.shape[1:]}, "
                f"act {a.act.shape[1:]} vs {b.act.shape[1:]}"
            )
        ann = None if annotator is None else np.asarray(list(annotator), dtype=object).astype(str)
        if ann is not None and len(ann) != len(label):
            raise ValueError(f"annotator must have {len(label)} entries, got {len(ann)}")
        users = as_user_ids(user, len(label))
        keep = np.isfinite(label)
        if not keep.all():
            a, b, label = a[keep], b[keep], label[keep]
            ann = None if ann is None else ann[keep]
            users = None if users is None else users[keep]
        self.a, self.b, self.label = a, b, label
        self.annotator = ann
        self.user = users
        self.metadata = dict(metadata or {})

    def __setstate__(self, state: dict) -> None:
        """Unpickle, also from checkpoints written before pairs carried user ids (they get ``user = None``)."""
        self.__dict__.update(state)
        self.__dict__.setdefault("user", None)
        self.__dict__.setdefault("annotator", None)

    # ------------------------------------------------------------------ basics
    @classmethod
    def empty(cls, length: int, obs_dim: int, act_dim: int, metadata: dict | None = None) -> PreferenceDataset:
        """A dataset with no pairs, ready to ``append`` to."""
        e = Segments.empty(length, obs_dim, act_dim)
        return cls(e, e, np.zeros(0, np.float32), metadata=metadata)

    def __len__(self) -> int:
        return len(self.label)

    def __repr__(self) -> str:
        return (
            f"PreferenceDataset(n={len(self)}, H={self.segment_length}, obs_dim={self.a.obs_dim}, "
            f"act_dim={self.a.act_dim}, b_preferred={int((self.label == 1).sum())}, "
            f"a_preferred={int((self.label == 0).sum())}, equal={int((self.label == 0.5).sum())})"
        )

    @property
    def segment_length(self) -> int:
        return self.a.length

    def append(self, a: Segments, b: Segments, label, annotator: Iterable[str] | None = None,
               user: Iterable | None = None) -> int:
        """Add pairs; NaN labels (skipped queries) are dropped. Returns the number of pairs added.

        User ids must stay complete: appending pairs without ``user`` to a dataset with user ids (or the
        reverse, to a non-empty dataset without) is an error."""
        new = PreferenceDataset(a, b, label, annotator=annotator, user=user)
        if len(new) == 0:
            return 0
        if len(self) and (new.a.obs.shape[1:] != self.a.obs.shape[1:] or new.a.act.shape[1:] != self.a.act.shape[1:]):
            raise ValueError(
                f"cannot append segments of shape {new.a.obs.shape[1:]}/{new.a.act.shape[1:]} to a dataset of "
                f"{self.a.obs.shape[1:]}/{self.a.act.shape[1:]}"
            )
        if len(self) and (self.user is None) != (new.user is None):
            have = "has user ids" if self.user is not None else "has no user ids"
            raise ValueError(f"cannot append pairs {'without' if new.user is None else 'with'} user ids to a dataset "
                             f"that {have}; give user=... for every pair or for none")
        if len(self) == 0:
            self.a, self.b, self.label, self.user = new.a, new.b, new.label, new.user
        else:
            if new.user is not None:
                self.user = np.concatenate([self.user, new.user])
            self.a = Segments.concatenate([self.a, new.a])
            self.b = Segments.concatenate([self.b, new.b])
            self.label = np.concatenate([self.label, new.label])
        if self.annotator is not None or new.annotator is not None:
            old = self.annotator if self.annotator is not None else np.full(len(self) - len(new), "", dtype=object)
            add = new.annotator if new.annotator is not None else np.full(len(new), "", dtype=object)
            self.annotator = np.concatenate([old.astype(object), add.astype(object)]).astype(str)
        return len(new)

    def subset(self, idx) -> PreferenceDataset:
        """The pairs at ``idx`` (index array, slice or mask)."""
        idx = np.arange(len(self))[idx]
        return PreferenceDataset(
            self.a[idx],
            self.b[idx],
            self.label[idx],
            metadata=self.metadata,
            annotator=None if self.annotator is None else self.annotator[idx],
            user=None if self.user is None else self.user[idx],
        )

    def split(self, frac: float, seed: int | np.random.Generator | None = 0) -> tuple[PreferenceDataset, PreferenceDataset]:
        """Random split into ``(first, rest)`` with ``round(frac * N)`` pairs in ``first``."""
        if not 0.0 <= frac <= 1.0:
            raise ValueError(f"split fraction must be in [0, 1], got {frac}")
        perm = np.random.default_rng(seed).permutation(len(self))
        k = int(round(frac * len(self)))
        return self.subset(np.sort(perm[:k])), self.subset(np.sort(perm[k:]))

    def swapped(self) -> PreferenceDataset:
        """The same pairs with a and b exchanged (labels become 1 - label)."""
        return PreferenceDataset(self.b, self.a, 1.0 - self.label, self.metadata, self.annotator, self.user)

    def users(self) -> list[str]:
        """The distinct user ids, sorted (empty when ``user`` is None)."""
        return [] if self.user is None else sorted(set(self.user.tolist()))

    def of_user(self, user: str) -> PreferenceDataset:
        """The pairs labelled by ``user`` (one clear error when there are no user ids or none of ``user``)."""
        if self.user is None:
            raise ValueError("these preferences carry no user ids (PreferenceDataset.user is None)")
        mask = self.user == str(user)
        if not mask.any():
            raise ValueError(f"no pairs of user {user!r}; the users are {self.users()}")
        return self.subset(mask)

    # ------------------------------------------------------------------ HDF5
    def save(self, path: str | os.PathLike) -> Path:
        """Write a versioned HDF5 file atomically (temp file + rename).

        Layout: attrs ``format=pbrl.preferences``, ``version``, ``metadata`` (JSON); datasets ``label [N]``,
        groups ``a/`` and ``b/`` each with ``obs, act, reward`` and any optional segment fields,
        ``annotator [N]`` and ``user [N]`` (strings) when known. A file without ``user`` (every file written
        before user ids existed) loads with ``user = None``.
        """
        return write_label_file(path, "pbrl.preferences", FORMAT_VERSION, self.metadata, {"label": self.label},
                                {"a": self.a, "b": self.b}, self.annotator,
                                None if self.user is None else self.user.tolist())

    @classmethod
    def load(cls, path: str | os.PathLike) -> PreferenceDataset:
        """Read a file written by :meth:`save`; every malformed file gives one clear error."""
        with open_label_file(path, "pbrl.preferences", "preference", FORMAT_VERSION, ("label", "a", "b"),
                             "PreferenceDataset.save", unversioned_format_ok=True) as (f, meta, ann):
            segs = {key: read_segments_group(f, key, path) for key in ("a", "b")}
            label = f["label"][()]
            user = read_strings(f, "user")
            try:
                validate_labels(label)
            except ValueError as e:
                raise ValueError(f"{path}: {e}") from None
        try:
            return cls(segs["a"], segs["b"], label, metadata=meta, annotator=ann, user=user)
        except ValueError as e:
            raise ValueError(f"{path}: {e}") from None

    # ------------------------------------------------------------------ .npz interchange
    def to_npz(self, path: str | os.PathLike) -> Path:
        """Export in the public segment-pair layout: ``obs_1, obs_2, action_1, action_2, label``
        (plus ``reward_1, reward_2``, and ``user`` when known); label 1 = second preferred, 0.5 = tie."""
        path = Path(path)
        extra = {} if self.user is None else {"user": self.user.astype(str)}
        with atomic_write(path, suffix=".npz") as tmp:
            with open(tmp, "wb") as fh:
                np.savez_compressed(
                    fh,
                    obs_1=self.a.obs,
                    obs_2=self.b.obs,
                    action_1=self.a.act,
                    action_2=self.b.act,
                    reward_1=self.a.reward,
                    reward_2=self.b.reward,
                    label=self.label,
                    **extra,
                )
        return path

    @classmethod
    def from_npz(cls, path: str | os.PathLike, metadata: dict | None = None) -> PreferenceDataset:
        """Import the public segment-pair ``.npz`` layout.

        Required keys: ``obs_1, obs_2, action_1, action_2, label``; ``label`` may be ``[N]`` or one-hot
        style ``[N, 2]`` (then ``[0, 1]`` = second preferred, ``[0.5, 0.5]`` = tie). Optional ``reward_1,
        reward_2`` hold true rewards; otherwise zeros are stored (the true reward is unknown). An optional
        ``user [N]`` (strings or ints) holds the user id of each pair.
        """
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"no .npz file at {path}")
        try:
            z = np.load(path, allow_pickle=False)
        except Exception as e:  # noqa: BLE001 - np.load raises many types
            raise ValueError(f"{path} is not a readable .npz file ({e})") from None
        with z:
            for k in ("obs_1", "obs_2", "action_1", "action_2", "label"):
                if k not in z:
                    raise ValueError(f"{path} is missing the required key '{k}' (have {sorted(z.files)})")
            label = np.asarray(z["label"], dtype=np.float32)
            if label.ndim == 2 and label.shape[1] == 2:
                label = label[:, 1]
            label = label.reshape(-1)
            o1, o2 = z["obs_1"], z["obs_2"]
            r1 = z["reward_1"] if "reward_1" in z else np.zeros(o1.shape[:2], np.float32)
            r2 = z["reward_2"] if "reward_2" in z else np.zeros(o2.shape[:2], np.float32)
            user = z["user"].tolist() if "user" in z else None
            try:
                a = Segments(obs=o1, act=z["action_1"], reward=r1)
                b = Segments(obs=o2, act=z["action_2"], reward=r2)
                validate_labels(label)
            except ValueError as e:
                raise ValueError(f"{path}: {e}") from None
        meta = {"source": str(path), **(metadata or {})}
        try:
            return cls(a, b, label, metadata=meta, user=user)
        except ValueError as e:
            raise ValueError(f"{path}: {e}") from None
