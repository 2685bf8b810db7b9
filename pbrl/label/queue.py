"""Queue files: the candidate segment pairs (or, in rating mode, single segments) a person will be asked about.

A queue file is an HDF5 file laid out like a :class:`~pbrl.preferences.PreferenceDataset` without labels:

* attrs ``format = "pbrl.label_queue"``, ``version = 1``, ``metadata`` (JSON: ``task_id``, ``dataset_id``,
  ``selector``, ``seed``, ``segment_length``, ``instruction`` (what "better" means, shown on the page), ...);
* groups ``a/`` and ``b/``, each with the :class:`~pbrl.segments.Segments` fields ``obs [N, H, obs_dim]``,
  ``act [N, H, act_dim]``, ``reward [N, H]`` and the simulator states ``qpos [N, H, nq]``,
  ``qvel [N, H, nv]`` (required: they are what the clips are rendered from), plus ``index`` etc. when known.

Pair ``i`` of the queue is ``(a[i], b[i])``; the page shows ``a`` on the left and ``b`` on the right, so
"right is better" is label 1.0 in pbrl's convention.

A **rating queue** (RbRL, White et al. AAAI 2024) holds only group ``a/``: one clip per query, which the
page asks to be rated ``1 .. n`` (stored as classes ``0 .. n - 1``); its metadata records ``mode = "rating"``
and ``n_classes``.
"""

from __future__ import annotations

import json
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from pbrl.envs.datasets import load_dataset
from pbrl.envs.registry import check_task, make_env
from pbrl.io import atomic_write
from pbrl.online.ratings import select_segments
from pbrl.preferences import PreferenceDataset, read_segments_group, write_segments_group
from pbrl.queries import make_selector
from pbrl.ratings import RatingDataset
from pbrl.reward_models import RewardEnsemble
from pbrl.segments import Segments, Trajectory, sample_segment_pairs, sample_segments
from pbrl.validation import check_int

__all__ = ["LabelQueue", "QUEUE_FORMAT_VERSION", "make_queue", "queue_from_file", "queue_from_pairs", "queue_from_segments",
           "check_renderable", "default_instruction", "rating_instruction", "check_states_fit_task"]

#: the queue file format's version
QUEUE_FORMAT_VERSION = 1

_LOCOMOTION = ("HalfCheetah", "Hopper", "Walker2d", "Ant", "Humanoid", "HumanoidStandup", "Swimmer")
_INSTRUCTIONS = {
    "Reacher": "Which arm brings its fingertip (the tip of the second link) closer to the red target "
               "ball, and keeps it there?",
    "Pusher": "Which arm pushes the object closer to the goal?",
    "InvertedPendulum": "Which clip keeps the pole upright and balanced?",
    "InvertedDoublePendulum": "Which clip keeps the double pole upright and balanced?",
    "HumanoidStandup": "Which robot gets closer to standing up?",
}


def default_instruction(task_id: str) -> str:
    """What "better" means on a task, as the labelling page asks it (a sensible default per task family)."""
    name = task_id.split("/", 1)[-1]
    base = re.sub(r"-v\d+$", "", name)
    if task_id.startswith("metaworld/"):
        return f"Which robot arm does more of the task '{base.replace('-', ' ')}' (closer to finishing it)?"
    if base in _INSTRUCTIONS:
        return _INSTRUCTIONS[base]
    if base in _LOCOMOTION:
        return "Which robot moves forward (to the right) faster, without falling or flipping over?"
    return f"Which clip does better at the task {task_id}?"


def rating_instruction(task_id: str, n_classes: int) -> str:
    """What the page asks in rating mode: rate one clip from 1 (worst) to ``n_classes`` (best), with what
    "better" means on the task."""
    return f"Rate this clip from 1 (worst) to {n_classes} (best). Better means: {default_instruction(task_id)}"


_DIMS: dict[str, tuple[int, int]] = {}
_DIMS_LOCK = threading.Lock()


def _task_dims(task_id: str) -> tuple[int, int]:
    with _DIMS_LOCK:
        if task_id not in _DIMS:
            env = make_env(task_id)
            try:
                _DIMS[task_id] = (int(env.unwrapped.model.nq), int(env.unwrapped.model.nv))
            finally:
                env.close()
        return _DIMS[task_id]


def check_states_fit_task(task_id: str, nq: int, nv: int, what: str = "the segments") -> None:
    """One clear error unless simulator states of sizes ``nq`` / ``nv`` are those of ``task_id``'s model
    (otherwise every clip would fail to render later)."""
    want = _task_dims(task_id)
    if (int(nq), int(nv)) != want:
        raise ValueError(
            f"{what} hold simulator states of size qpos {nq} / qvel {nv}, but {task_id} has qpos {want[0]} / "
            f"qvel {want[1]}: they come from another task; pass the dataset's own --task"
        )


def check_renderable(a: Segments, b: Segments | None, what: str = "segments") -> None:
    """Raise one clear error unless both batches (``a`` alone when ``b`` is ``None``) carry simulator states
    (``qpos`` and ``qvel``)."""
    for name, seg in (("a", a), ("b", b)) if b is not None else (("a", a),):
        if not seg.has_states():
            raise ValueError(
                f"{what} '{name}' have no simulator states (qpos/qvel), so no clip can be rendered; "
                "collect data with pbrl (it records info['qpos'] / info['qvel']) or use a D4RL file with "
                "infos/qpos and infos/qvel"
            )
    if b is not None and (a.qpos.shape[2] != b.qpos.shape[2] or a.qvel.shape[2] != b.qvel.shape[2]):
        raise ValueError(
            f"{what} a and b have different simulator state sizes: qpos {a.qpos.shape[2]} vs {b.qpos.shape[2]}, "
            f"qvel {a.qvel.shape[2]} vs {b.qvel.shape[2]}"
        )


@dataclass
class LabelQueue:
    """Candidate pairs ``(a[i], b[i])`` to show a person, with the task they come from; or, with ``b=None``, a
    rating queue of single segments ``a[i]`` to rate into ``metadata["n_classes"]`` classes.

    Attributes:
        a, b: ``Segments`` of equal size N and length H, with ``qpos`` / ``qvel`` (``b`` is ``None`` in rating mode).
        task_id: the registry task id used to render the clips (e.g. ``mujoco/HalfCheetah-v5``).
        metadata: JSON-serialisable provenance (``dataset_id``, ``selector``, ``seed``, ...; in rating mode
            ``mode = "rating"`` and ``n_classes``).
    """

    a: Segments
    b: Segments | None
    task_id: str
    metadata: dict

    def __post_init__(self) -> None:
        meta = dict(self.metadata or {})
        if self.b is None:
            n = meta.get("n_classes")
            if n is None:
                raise ValueError("a rating queue (no segments b) must record n_classes in its metadata")
            check_int("n_classes", n, 2, 9)  # the page's keys 1 .. 9
            meta.update(mode="rating", n_classes=int(n))
        else:
            if len(self.a) != len(self.b):
                raise ValueError(f"a and b must hold the same number of segments, got {len(self.a)} and {len(self.b)}")
            if self.a.obs.shape[1:] != self.b.obs.shape[1:] or self.a.act.shape[1:] != self.b.act.shape[1:]:
                raise ValueError("segments a and b of a queue must have the same length and dims")
            if meta.get("mode", "pairs") != "pairs":
                raise ValueError(f"a queue of pairs cannot have mode '{meta['mode']}'")
        check_renderable(self.a, self.b, "queue segments")
        check_task(self.task_id)
        check_states_fit_task(self.task_id, self.a.qpos.shape[2], self.a.qvel.shape[2], "the queue's segments")
        self.metadata = {**meta, "task_id": self.task_id}
        if not self.metadata.get("instruction"):
            self.metadata["instruction"] = (rating_instruction(self.task_id, self.n_classes) if self.b is None
                                            else default_instruction(self.task_id))

    @property
    def mode(self) -> str:
        """``"pairs"`` or ``"rating"`` (single clips rated ``1 .. n_classes``)."""
        return "rating" if self.b is None else "pairs"

    @property
    def n_classes(self) -> int | None:
        """The number of rating classes (``None`` for a queue of pairs)."""
        return int(self.metadata["n_classes"]) if self.b is None else None

    @property
    def instruction(self) -> str:
        """What "better" means for this queue's pairs (``metadata["instruction"]``)."""
        return str(self.metadata["instruction"])

    def __len__(self) -> int:
        return len(self.a)

    @property
    def segment_length(self) -> int:
        return self.a.length

    def save(self, path: str | os.PathLike) -> Path:
        """Write the queue atomically (temp file + rename) in the layout described in the module docstring."""
        path = Path(path)
        with atomic_write(path) as tmp:
            with h5py.File(tmp, "w") as f:
                f.attrs["format"] = "pbrl.label_queue"
                f.attrs["version"] = QUEUE_FORMAT_VERSION
                f.attrs["metadata"] = json.dumps(self.metadata, default=str)
                for key, seg in (("a", self.a), ("b", self.b)):
                    if seg is not None:
                        write_segments_group(f.create_group(key), seg)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> LabelQueue:
        """Read a queue file written by :meth:`save`; a malformed file gives one clear error."""
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"no queue file at {path}; make one with `pbrl label queue DATASET -o {path}`")
        try:
            f = h5py.File(path, "r")
        except OSError as e:
            raise ValueError(f"{path} is not a readable HDF5 queue file ({e}); make it again with "
                             "`pbrl label queue`") from None
        with f:
            fmt = str(f.attrs.get("format", ""))
            if fmt != "pbrl.label_queue":
                raise ValueError(
                    f"{path} is not a pbrl label queue (format '{fmt or 'none'}'); make one with `pbrl label queue`"
                )
            version = int(f.attrs.get("version", -1))
            if version > QUEUE_FORMAT_VERSION or version < 1:
                raise ValueError(f"{path} has queue format version {version}; this pbrl reads version 1")
            meta = json.loads(f.attrs.get("metadata", "{}"))
            required = ("obs", "act", "reward", "qpos", "qvel")
            rating = meta.get("mode") == "rating"
            segs = {key: read_segments_group(f, key, path, required) for key in (("a",) if rating else ("a", "b"))}
        if "task_id" not in meta:
            raise ValueError(f"{path} does not record its task_id; remake it with `pbrl label queue --task ...`")
        try:
            return cls(segs["a"], segs.get("b"), str(meta["task_id"]), meta)
        except ValueError as e:
            raise ValueError(f"{path}: {e}") from None

    def fingerprint(self) -> str:
        """A short content hash (sha1 of the states and observations) identifying this queue."""
        import hashlib

        h = hashlib.sha1()
        h.update(self.task_id.encode())
        if self.b is None:
            h.update(f"rating:{self.n_classes}".encode())
        for seg in (self.a, self.b) if self.b is not None else (self.a,):
            for v in (seg.obs, seg.qpos, seg.qvel):
                h.update(np.ascontiguousarray(v).tobytes())
        return h.hexdigest()[:16]


def _episodes(source) -> list[Trajectory]:
    if hasattr(source, "episodes"):
        return list(source.episodes())
    eps = list(source)
    if not all(isinstance(t, Trajectory) for t in eps):
        raise TypeError("source must be an OfflineDataset (with .episodes()) or a list of Trajectory")
    return eps


def make_queue(
    source,
    n_pairs: int,
    segment_length: int = 50,
    task_id: str | None = None,
    selector: str = "uniform",
    n_candidates: int | None = None,
    reward_model=None,
    seed: int | np.random.Generator | None = 0,
    metadata: dict | None = None,
    instruction: str | None = None,
    n_classes: int | None = None,
) -> LabelQueue:
    """Candidate pairs for a person to label, drawn from an offline dataset or a list of trajectories; with
    ``n_classes``, a rating queue of ``n_pairs`` single segments to rate into that many classes.

    ``n_candidates`` pairs of windows of ``segment_length`` steps are sampled uniformly over all windows
    (:func:`pbrl.segments.sample_segment_pairs`, seeded), then ``n_pairs`` of them are chosen by the
    query selector ``selector`` (any name of :func:`pbrl.queries.make_selector`; ``disagreement`` /
    ``entropy`` variants need ``reward_model``).

    Args:
        source: an ``OfflineDataset`` (``.episodes()``, ``.metadata``) or a sequence of ``Trajectory``;
            episodes must carry ``qpos`` / ``qvel``.
        n_pairs: pairs in the queue (>= 1).
        segment_length: H.
        task_id: task to render with; defaults to ``source.metadata["task_id"]``.
        selector: query selector name (default ``uniform``).
        n_candidates: candidate pool size; default ``n_pairs`` for ``uniform``, ``10 * n_pairs`` otherwise.
        reward_model: a reward model for uncertainty-based selectors.
        seed: seed or Generator; same seed, same queue.
        metadata: extra provenance stored in the file.
        instruction: what "better" means, shown above the clips (default: :func:`default_instruction`, or
            :func:`rating_instruction` in rating mode).
        n_classes: rating mode (2 .. 9 classes, keys 1 .. n on the page): single segments drawn uniformly,
            or chosen by ``selector="disagreement"`` (the ensemble's disagreement on their return).
    """
    n_pairs = check_int("n_pairs", n_pairs, 1)
    if n_classes is not None:
        check_int("n_classes", n_classes, 2, 9)
    segment_length = check_int("segment_length", segment_length, 1)
    src_meta = dict(getattr(source, "metadata", None) or {})
    task_id = task_id or src_meta.get("task_id")
    if not task_id:
        raise ValueError("the dataset does not record its task id; pass task_id (CLI: --task mujoco/...)")

    check_task(task_id)
    if n_candidates is None:
        n_candidates = n_pairs if selector == "uniform" else 10 * n_pairs
    if n_candidates < n_pairs:
        raise ValueError(f"n_candidates ({n_candidates}) must be at least n_pairs ({n_pairs})")
    episodes = _episodes(source)
    if not episodes:
        raise ValueError("the dataset has no episodes")
    if any(t.qpos is None or t.qvel is None for t in episodes):
        raise ValueError(
            "the dataset's episodes have no simulator states (qpos/qvel), so no clip can be rendered; "
            "use data collected by pbrl or a D4RL file with infos/qpos and infos/qvel"
        )
    check_states_fit_task(task_id, episodes[0].qpos.shape[-1], episodes[0].qvel.shape[-1], "the dataset's episodes")
    rng = np.random.default_rng(seed)
    if n_classes is not None:
        if selector != "uniform" and reward_model is None:
            raise ValueError(f"query selector '{selector}' needs a reward model (--reward-model)")
        a = sample_segments(episodes, int(n_candidates), int(segment_length), rng)
        b = None
        idx = select_segments(selector, a, int(n_pairs), reward_model)
    else:
        a, b = sample_segment_pairs(episodes, int(n_candidates), int(segment_length), rng)
        idx = _select(selector, a, b, int(n_pairs), reward_model, rng)
    meta = {
        "dataset_id": src_meta.get("dataset_id", ""),
        "selector": selector,
        "n_candidates": int(n_candidates),
        "segment_length": int(segment_length),
        "seed": seed if isinstance(seed, (int, type(None))) else "generator",
        **(metadata or {}),
    }
    if instruction:
        meta["instruction"] = str(instruction)
    if n_classes is not None:
        meta["n_classes"] = int(n_classes)
    return LabelQueue(a[idx], None if b is None else b[idx], task_id, meta)


def _select(selector: str, a: Segments, b: Segments, n: int, reward_model, rng: np.random.Generator) -> np.ndarray:
    sel = make_selector(selector)
    idx = np.asarray(sel.select(a, b, n, reward_model=reward_model, rng=rng), dtype=np.int64)
    return idx


def queue_from_pairs(a: Segments, b: Segments, task_id: str, metadata: dict | None = None,
                     instruction: str | None = None) -> LabelQueue:
    """Wrap existing pairs (e.g. a PreferenceDataset's ``a`` and ``b``) as a queue."""
    meta = dict(metadata or {})
    if instruction:
        meta["instruction"] = str(instruction)
    return LabelQueue(a, b, task_id, meta)


def queue_from_segments(segments: Segments, task_id: str, n_classes: int, metadata: dict | None = None,
                        instruction: str | None = None) -> LabelQueue:
    """Wrap existing segments (e.g. a RatingDataset's) as a rating queue of ``n_classes`` classes."""
    meta = {**dict(metadata or {}), "n_classes": n_classes}
    if instruction:
        meta["instruction"] = str(instruction)
    return LabelQueue(segments, None, task_id, meta)


def _file_format(path: Path) -> str | None:
    """The ``format`` attribute of a pbrl HDF5 file at ``path`` (``None`` for anything else)."""
    if path.suffix not in (".h5", ".hdf5") or not path.exists():
        return None
    try:
        with h5py.File(path, "r") as f:
            return str(f.attrs.get("format", ""))
    except OSError as e:
        raise ValueError(f"'{path}' is not a readable HDF5 file ({e}); it may be truncated or not HDF5: "
                         "collect or download it again") from None


def queue_from_file(
    source: str | os.PathLike,
    n_pairs: int,
    segment_length: int = 50,
    task_id: str | None = None,
    selector: str = "uniform",
    n_candidates: int | None = None,
    reward_model: str | os.PathLike | None = None,
    seed: int = 0,
    instruction: str | None = None,
    n_classes: int | None = None,
) -> LabelQueue:
    """The queue ``pbrl label queue`` writes, from what ``source`` holds.

    * a pbrl rating file (:class:`~pbrl.ratings.RatingDataset`): its first ``n_pairs`` segments, to rate again
      (``n_classes`` defaults to the file's);
    * a pbrl preference file (:class:`~pbrl.preferences.PreferenceDataset`): its first ``n_pairs`` pairs, to
      label again (not with ``n_classes``);
    * otherwise an offline dataset (a D4RL-style HDF5 path or a local Minari id): :func:`make_queue` over it,
      with the saved reward model at ``reward_model`` for uncertainty-based selectors.

    ``task_id`` defaults to the one the file records. Bad input raises one ``ValueError``.
    """
    if instruction is not None and not instruction.strip():
        raise ValueError("--instruction is empty; give the question people should answer, or drop it")
    path = Path(source)
    fmt = _file_format(path)
    if fmt == "pbrl.preferences" and n_classes is not None:
        raise ValueError(f"{path} holds preference pairs; --n-classes makes a rating queue from a dataset "
                         "or a rating file")
    if fmt in ("pbrl.ratings", "pbrl.preferences"):
        held = RatingDataset.load(path) if fmt == "pbrl.ratings" else PreferenceDataset.load(path)
        task_id = task_id or held.metadata.get("task_id")
        if not task_id:
            raise ValueError(f"{path} does not record its task_id; pass --task")
        meta = {"source": str(path), "dataset_id": held.metadata.get("dataset_id", "")}
        n = min(n_pairs, len(held))
        if fmt == "pbrl.ratings":
            return queue_from_segments(held.segments[:n], task_id, n_classes or held.n_classes, meta,
                                       instruction=instruction)
        return queue_from_pairs(held.a[:n], held.b[:n], task_id, meta, instruction=instruction)
    rm = RewardEnsemble.load(reward_model) if reward_model is not None else None
    return make_queue(load_dataset(str(source)), n_pairs, segment_length, task_id=task_id, selector=selector,
                      n_candidates=n_candidates, reward_model=rm, seed=seed, metadata={"source": str(source)},
                      instruction=instruction, n_classes=n_classes)
