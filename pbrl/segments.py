"""Trajectories and fixed-length segments: the data every teacher, reward model and agent shares.

Shapes (the convention across pbrl):

* ``Trajectory``: one episode, ``obs [T, obs_dim]``, ``act [T, act_dim]``, ``reward [T]``.
* ``Segments``: a batch of N slices of length H, ``obs [N, H, obs_dim]``, ``act [N, H, act_dim]``,
  ``reward [N, H]``.

``reward`` is always the *true* reward: teachers and logs read it, learners never do.

Reward factors (optional): the per-component rewards an environment reports in ``info``
(:data:`FACTOR_KEYS`: Gymnasium MuJoCo v5's ``reward_forward``, ``reward_ctrl``, ``reward_contact``,
``reward_survive``, ...; Meta-World's ``grasp_reward``, ``in_place_reward``, ...) are kept as a NumPy
*structured* array with one float32 field per factor: ``Trajectory.factors [T]``, ``Segments.factors [N, H]``
(``seg.factors["reward_forward"]`` is ``[N, H]``). A hierarchical teacher (HERON) compares them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, fields

import numpy as np

__all__ = [
    "FACTOR_KEYS",
    "factor_array",
    "Trajectory",
    "Segments",
    "sample_segments",
    "sample_segment_pairs",
    "segment_windows",
]


def _as_float32(name: str, x, ndim: int) -> np.ndarray:
    arr = np.asarray(x)
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
        raise ValueError(f"{name} must be a numeric array, got dtype {arr.dtype}")
    arr = arr.astype(np.float32, copy=False)
    if arr.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
        raise ValueError(f"{name} contains {bad} non-finite values (NaN or inf); clean the data first")
    return arr


#: the ``info`` entries recorded as reward factors when an environment reports them: Gymnasium MuJoCo v5's
#: reward components, then Meta-World's (v3 ``info``: its reward's parts and distances)
FACTOR_KEYS: tuple[str, ...] = (
    "reward_forward", "reward_ctrl", "reward_contact", "reward_survive", "reward_dist", "reward_near",
    "grasp_reward", "in_place_reward", "near_object", "obj_to_target", "grasp_success",
)


def factor_array(name: str, x, shape: tuple[int, ...]) -> np.ndarray:
    """``x`` as a structured array of ``shape`` with only float32 fields, all finite (one clear error
    otherwise). A dict ``{factor: array}`` is accepted too."""
    if isinstance(x, dict):
        if not x:
            raise ValueError(f"{name} must name at least one factor")
        cols = {k: np.asarray(v, dtype=np.float32) for k, v in x.items()}
        out = np.zeros(shape, dtype=[(str(k), np.float32) for k in cols])
        for k, v in cols.items():
            if v.shape != shape:
                raise ValueError(f"{name}['{k}'] must have shape {shape}, got {v.shape}")
            out[k] = v
        x = out
    arr = np.asarray(x)
    if arr.dtype.names is None:
        raise ValueError(f"{name} must be a structured array with one field per factor, got dtype {arr.dtype}")
    if arr.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {arr.shape}")
    arr = arr.astype([(k, np.float32) for k in arr.dtype.names], copy=False)
    for k in arr.dtype.names:
        if not np.all(np.isfinite(arr[k])):
            raise ValueError(f"{name}['{k}'] contains non-finite values (NaN or inf); clean the data first")
    return arr


@dataclass
class Trajectory:
    """One episode (or a piece of one) as recorded from an environment.

    Attributes:
        obs: observations ``[T, obs_dim]`` (float32), ``obs[t]`` is the state action ``act[t]`` was taken in.
        act: actions ``[T, act_dim]`` (float32).
        reward: true rewards ``[T]`` (float32).
        success: optional per-step success flags ``[T]`` (bool).
        qpos, qvel: optional MuJoCo simulator state ``[T, nq]`` / ``[T, nv]``, for rendering clips.
        next_obs: optional observation after the last step ``[obs_dim]`` (needed for value-based teachers).
        terminated: whether the episode ended in a terminal state (not a time-out).
        start: index of ``obs[0]`` in a flat source dataset, or -1 when unknown.
        factors: optional reward factors ``[T]``, a structured array (or a dict) of float32 fields, one per
            factor (see the module docstring).
    """

    obs: np.ndarray
    act: np.ndarray
    reward: np.ndarray
    success: np.ndarray | None = None
    qpos: np.ndarray | None = None
    qvel: np.ndarray | None = None
    next_obs: np.ndarray | None = None
    terminated: bool = False
    start: int = -1
    factors: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.obs = _as_float32("obs", self.obs, 2)
        self.act = _as_float32("act", self.act, 2)
        self.reward = _as_float32("reward", self.reward, 1)
        T = len(self.obs)
        if len(self.act) != T or len(self.reward) != T:
            raise ValueError(
                f"trajectory arrays disagree in length: obs {len(self.obs)}, act {len(self.act)}, "
                f"reward {len(self.reward)}"
            )
        if self.success is not None:
            self.success = np.asarray(self.success).astype(bool)
            if self.success.shape != (T,):
                raise ValueError(f"success must have shape ({T},), got {self.success.shape}")
        for name in ("qpos", "qvel"):
            v = getattr(self, name)
            if v is not None:
                v = _as_float32(name, v, 2)
                if len(v) != T:
                    raise ValueError(f"{name} must have {T} rows, got {len(v)}")
                setattr(self, name, v)
        if self.next_obs is not None:
            self.next_obs = _as_float32("next_obs", self.next_obs, 1)
        if self.factors is not None:
            self.factors = factor_array("factors", self.factors, (T,))

    def __len__(self) -> int:
        return len(self.obs)

    @property
    def ret(self) -> float:
        """Undiscounted return of the trajectory."""
        return float(self.reward.sum())


@dataclass
class Segments:
    """A batch of N fixed-length slices of trajectories.

    Attributes:
        obs: ``[N, H, obs_dim]`` float32.
        act: ``[N, H, act_dim]`` float32.
        reward: ``[N, H]`` float32, the true reward (for teachers and logs only).
        success: optional ``[N, H]`` bool.
        qpos, qvel: optional ``[N, H, nq]`` / ``[N, H, nv]`` simulator states for rendering.
        next_obs: optional ``[N, obs_dim]`` observation after the last step of each segment.
        index: optional ``[N]`` int64 start index of each segment in its source dataset (-1 unknown).
        factors: optional reward factors ``[N, H]``, a structured array of float32 fields (one per factor).

    Construction validates shapes, dtypes and finiteness, so every consumer can trust the batch.
    """

    obs: np.ndarray
    act: np.ndarray
    reward: np.ndarray
    success: np.ndarray | None = None
    qpos: np.ndarray | None = None
    qvel: np.ndarray | None = None
    next_obs: np.ndarray | None = None
    index: np.ndarray | None = field(default=None)
    factors: np.ndarray | None = None

    OPTIONAL = ("success", "qpos", "qvel", "next_obs", "index", "factors")

    def __post_init__(self) -> None:
        self.obs = _as_float32("obs", self.obs, 3)
        self.act = _as_float32("act", self.act, 3)
        self.reward = _as_float32("reward", self.reward, 2)
        N, H = self.obs.shape[:2]
        if self.act.shape[:2] != (N, H):
            raise ValueError(f"act must have shape ({N}, {H}, act_dim) to match obs, got {self.act.shape}")
        if self.reward.shape != (N, H):
            raise ValueError(f"reward must have shape ({N}, {H}) to match obs, got {self.reward.shape}")
        if self.success is not None:
            self.success = np.asarray(self.success).astype(bool)
            if self.success.shape != (N, H):
                raise ValueError(f"success must have shape ({N}, {H}), got {self.success.shape}")
        for name in ("qpos", "qvel"):
            v = getattr(self, name)
            if v is not None:
                v = _as_float32(name, v, 3)
                if v.shape[:2] != (N, H):
                    raise ValueError(f"{name} must have shape ({N}, {H}, dim), got {v.shape}")
                setattr(self, name, v)
        if self.next_obs is not None:
            self.next_obs = _as_float32("next_obs", self.next_obs, 2)
            if self.next_obs.shape != (N, self.obs.shape[2]):
                raise ValueError(f"next_obs must have shape ({N}, {self.obs.shape[2]}), got {self.next_obs.shape}")
        if self.index is not None:
            self.index = np.asarray(self.index, dtype=np.int64)
            if self.index.shape != (N,):
                raise ValueError(f"index must have shape ({N},), got {self.index.shape}")
        if self.factors is not None:
            self.factors = factor_array("factors", self.factors, (N, H))

    @property
    def factor_names(self) -> tuple[str, ...]:
        """The recorded reward factors' names (empty without factors)."""
        return () if self.factors is None else tuple(self.factors.dtype.names)

    # ------------------------------------------------------------------ views
    def __len__(self) -> int:
        return self.obs.shape[0]

    @property
    def length(self) -> int:
        """Segment length H."""
        return self.obs.shape[1]

    @property
    def obs_dim(self) -> int:
        return self.obs.shape[2]

    @property
    def act_dim(self) -> int:
        return self.act.shape[2]

    def returns(self) -> np.ndarray:
        """True undiscounted return of each segment, ``[N]``."""
        return self.reward.sum(axis=1)

    def has_states(self) -> bool:
        """Whether simulator states (qpos, qvel) are known, so the segment can be rendered."""
        return self.qpos is not None and self.qvel is not None

    def __getitem__(self, idx) -> Segments:
        """Select segments by integer array, slice or boolean mask (always returns a batch)."""
        if isinstance(idx, (int, np.integer)):
            idx = [int(idx)]
        kw = {f.name: getattr(self, f.name) for f in fields(self)}
        return Segments(**{k: (None if v is None else v[idx]) for k, v in kw.items()})

    def crop(self, start: np.ndarray, length: int) -> Segments:
        """Per-segment crop: segment i keeps steps ``start[i] : start[i] + length``."""
        start = np.asarray(start, dtype=np.int64)
        if start.shape != (len(self),):
            raise ValueError(f"start must have shape ({len(self)},), got {start.shape}")
        if length < 1 or np.any(start < 0) or np.any(start + length > self.length):
            raise ValueError(f"crop [start, start+{length}) must lie inside segments of length {self.length}")
        cols = start[:, None] + np.arange(length)[None, :]
        rows = np.arange(len(self))[:, None]
        out = {}
        for f in fields(self):
            v = getattr(self, f.name)
            if v is None or f.name in ("next_obs",):
                out[f.name] = None
            elif f.name == "index":
                out[f.name] = np.where(v >= 0, v + start, -1)
            else:
                out[f.name] = v[rows, cols]
        return Segments(**out)

    @staticmethod
    def concatenate(items: Sequence[Segments]) -> Segments:
        """Stack batches of the same segment length and dims; optional fields are kept only if all have them."""
        items = list(items)
        if not items:
            raise ValueError("cannot concatenate an empty list of Segments")
        first = items[0]
        for s in items[1:]:
            if s.obs.shape[1:] != first.obs.shape[1:] or s.act.shape[1:] != first.act.shape[1:]:
                raise ValueError(
                    f"cannot concatenate segments of shapes {first.obs.shape[1:]}/{first.act.shape[1:]} "
                    f"and {s.obs.shape[1:]}/{s.act.shape[1:]}"
                )
        out = {}
        for f in fields(Segments):
            vals = [getattr(s, f.name) for s in items]
            if f.name == "factors" and any(v is not None and v.dtype != vals[0].dtype for v in vals):
                vals = [None]  # different factor sets: drop them, as any other field not all batches have
            out[f.name] = None if any(v is None for v in vals) else np.concatenate(vals, axis=0)
        return Segments(**out)

    @staticmethod
    def empty(length: int, obs_dim: int, act_dim: int) -> Segments:
        """A batch of zero segments with the given shape."""
        return Segments(
            obs=np.zeros((0, length, obs_dim), np.float32),
            act=np.zeros((0, length, act_dim), np.float32),
            reward=np.zeros((0, length), np.float32),
        )


def segment_windows(trajectories: Sequence[Trajectory], length: int) -> tuple[np.ndarray, np.ndarray]:
    """All valid (trajectory, start) windows of ``length`` steps: two int arrays of equal size."""
    if length < 1:
        raise ValueError(f"segment length must be >= 1, got {length}")
    traj_ids, starts = [], []
    for i, tr in enumerate(trajectories):
        n = len(tr) - length + 1
        if n > 0:
            traj_ids.append(np.full(n, i, dtype=np.int64))
            starts.append(np.arange(n, dtype=np.int64))
    if not traj_ids:
        longest = max((len(t) for t in trajectories), default=0)
        raise ValueError(
            f"no trajectory is long enough for segments of length {length} (longest has {longest} steps); "
            "collect longer episodes or choose a shorter segment length"
        )
    return np.concatenate(traj_ids), np.concatenate(starts)


def _gather(trajectories: Sequence[Trajectory], traj_ids: np.ndarray, starts: np.ndarray, length: int) -> Segments:
    sl = [(trajectories[i], s) for i, s in zip(traj_ids.tolist(), starts.tolist())]
    obs = np.stack([t.obs[s : s + length] for t, s in sl])
    act = np.stack([t.act[s : s + length] for t, s in sl])
    rew = np.stack([t.reward[s : s + length] for t, s in sl])
    kw = {}
    for name in ("success", "qpos", "qvel"):
        if all(getattr(t, name) is not None for t, _ in sl):
            kw[name] = np.stack([getattr(t, name)[s : s + length] for t, s in sl])
    # observation after the window: inside the trajectory, or the trajectory's final next_obs
    nxt = []
    for t, s in sl:
        e = s + length
        if e < len(t):
            nxt.append(t.obs[e])
        elif t.next_obs is not None:
            nxt.append(t.next_obs)
        else:
            nxt = None
            break
    if nxt is not None:
        kw["next_obs"] = np.stack(nxt)
    fac = [t.factors for t, _ in sl]
    if fac and all(f is not None and f.dtype == fac[0].dtype for f in fac):
        kw["factors"] = np.stack([t.factors[s : s + length] for t, s in sl])
    kw["index"] = np.array([(t.start + s) if t.start >= 0 else -1 for t, s in sl], dtype=np.int64)
    return Segments(obs=obs, act=act, reward=rew, **kw)


def sample_segments(
    trajectories: Sequence[Trajectory], n: int, length: int, rng: np.random.Generator | int | None = None
) -> Segments:
    """Sample ``n`` windows of ``length`` steps uniformly over all valid windows (with replacement)."""
    if n < 0:
        raise ValueError(f"number of segments must be >= 0, got {n}")
    rng = np.random.default_rng(rng)
    traj_ids, starts = segment_windows(trajectories, length)
    pick = rng.integers(0, len(traj_ids), size=n)
    return _gather(trajectories, traj_ids[pick], starts[pick], length)


def sample_segment_pairs(
    trajectories: Sequence[Trajectory], n: int, length: int, rng: np.random.Generator | int | None = None
) -> tuple[Segments, Segments]:
    """Sample ``n`` pairs ``(a, b)`` of random windows of ``length`` steps from ``trajectories``.

    Every valid window is equally likely (as in PEBBLE / B-Pref); the two members of a pair are
    drawn independently. Returns two ``Segments`` of size ``n``.
    """
    rng = np.random.default_rng(rng)
    a = sample_segments(trajectories, n, length, rng)
    b = sample_segments(trajectories, n, length, rng)
    return a, b
