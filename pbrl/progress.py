"""The progress record of a training run: :class:`Progress`, shared by the run callbacks and saved in checkpoints.

Both training loops (``pbrl train online`` / ``offline``) keep one :class:`Progress`: the evaluation curve, the
evaluation and checkpoint schedule, the session count and the time spent. The evaluation and checkpoint
callbacks of :mod:`pbrl.callbacks` update it; every run checkpoint stores it as a plain dict
(``payload["progress"]``, :meth:`Progress.to_dict`), the format checkpoints have always had, and
:meth:`Progress.from_dict` reads that dict back, also from checkpoints written before this class existed.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Progress"]


@dataclass
class Progress:
    """Where a run stands.

    Attributes:
        curve: every evaluation so far, oldest first; each a dict with the ``curve.csv`` columns (``step,
            labels, mean_return, std_return, success_rate, normalized_score``), see :mod:`pbrl.app.run_dir`.
        next_eval: the step (env steps online, updates offline) at or after which the next evaluation runs.
        next_ckpt: the step at or after which the next checkpoint is written.
        last_ckpt: the step of the latest checkpoint (``None`` before the first).
        session: 0 for the first session of a run, k for its k-th resume.
        wall_time_s, cpu_time_s: time spent by earlier sessions, each up to its last checkpoint (a killed
            session's time after its last checkpoint is lost with its work); :meth:`start_clock` then adds
            the running session's time to every :meth:`to_dict` (so each checkpoint carries the run's
            time up to it) and :meth:`add_time` adds it for good at the end.
    """

    curve: list[dict[str, Any]] = field(default_factory=list)
    next_eval: int = 0
    next_ckpt: int = 0
    last_ckpt: int | None = None
    session: int = 0
    wall_time_s: float = 0.0
    cpu_time_s: float = 0.0
    _clock: tuple[float, float, float] | None = field(default=None, repr=False, compare=False)

    def start_clock(self, wall0: float | None = None, cpu0: float | None = None, share: float = 1.0) -> None:
        """Count this session's time (from ``time.time()`` / ``time.process_time()`` values ``wall0`` /
        ``cpu0``, default now) in every checkpoint until :meth:`add_time`. ``share``: the part of the
        process's time that is this run's (``1 / K`` when K seeds train in one process)."""
        self._clock = (time.time() if wall0 is None else float(wall0),
                       time.process_time() if cpu0 is None else float(cpu0), float(share))

    def _running(self) -> tuple[float, float]:
        if self._clock is None:
            return 0.0, 0.0
        share = self._clock[2]
        return share * (time.time() - self._clock[0]), share * (time.process_time() - self._clock[1])

    # ------------------------------------------------------------------ derived
    @property
    def last_eval(self) -> dict[str, Any] | None:
        """The latest evaluation, or ``None`` before the first."""
        return self.curve[-1] if self.curve else None

    @property
    def step(self) -> int:
        """The step of the latest evaluation (0 before the first)."""
        return int(self.curve[-1]["step"]) if self.curve else 0

    @property
    def labels_used(self) -> int:
        """The labels used at the latest evaluation (0 before the first)."""
        return int(self.curve[-1].get("labels", 0)) if self.curve else 0

    @property
    def best(self) -> float | None:
        """The best mean return evaluated so far (``None`` before the first evaluation)."""
        returns = [float(r["mean_return"]) for r in self.curve if not math.isnan(float(r["mean_return"]))]
        return max(returns) if returns else None

    def add_time(self, wall: float, cpu: float) -> None:
        """Add one session's wall and CPU seconds (and stop its clock)."""
        self.wall_time_s = float(self.wall_time_s) + float(wall)
        self.cpu_time_s = float(self.cpu_time_s) + float(cpu)
        self._clock = None

    # ------------------------------------------------------------------ on disk
    def to_dict(self) -> dict[str, Any]:
        """The plain dict a checkpoint stores (``payload["progress"]``); a deep copy, so training may go on.
        Its times include the running session's so far (see :meth:`start_clock`)."""
        wall, cpu = self._running()
        out: dict[str, Any] = {
            "curve": copy.deepcopy(self.curve),
            "next_eval": int(self.next_eval),
            "next_ckpt": int(self.next_ckpt),
            "session": int(self.session),
            "wall_time_s": float(self.wall_time_s) + wall,
            "cpu_time_s": float(self.cpu_time_s) + cpu,
        }
        if self.last_ckpt is not None:
            out["last_ckpt"] = int(self.last_ckpt)
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Progress:
        """Read :meth:`to_dict`'s dict, or the ``progress`` dict of an older checkpoint (which may lack
        ``last_ckpt``, ``session``, ``wall_time_s`` and ``cpu_time_s``); unknown keys are ignored."""
        if not isinstance(d, dict) or "curve" not in d:
            raise ValueError(f"not a run progress record (expected a dict with a 'curve'), got {type(d).__name__}")
        last = d.get("last_ckpt")
        return cls(
            curve=[dict(r) for r in d["curve"]],
            next_eval=int(d.get("next_eval", 0)),
            next_ckpt=int(d.get("next_ckpt", 0)),
            last_ckpt=None if last is None or int(last) < 0 else int(last),
            session=int(d.get("session", 0)),
            wall_time_s=float(d.get("wall_time_s", 0.0)),
            cpu_time_s=float(d.get("cpu_time_s", 0.0)),
        )
