"""A run directory: its layout, its small atomic files, a fresh start (``--overwrite``) and temp cleanup.

::

    RUN_DIR/
      config.json        the resolved, validated config (OnlineConfig / OfflineConfig)
      status.json        {"state": "running" | "interrupted" | "finished" | "failed", "step", "labels", ...}
      log.txt            SB3 logger's human-readable output (also printed on stdout)
      progress.csv       SB3 logger CSV (a resumed session writes progress.resume<k>.csv)
      tb/                SB3 logger TensorBoard events
      labels.h5          the PreferenceDataset of every label given so far (pbrl.preferences format)
      curve.csv          evaluations: step, labels, mean_return, std_return, success_rate, normalized_score
      checkpoints/       step_<N>.pt: one file per checkpoint, written atomically; latest.json names the newest
      metrics.json       final metrics (written when the run finishes)

``RunDir.create(cfg, overwrite=True)`` starts from nothing: everything the directory held (checkpoints,
labels, curves, logs) is moved aside into a sibling folder ``<RUN_DIR>.replaced-<time>`` (its path is
``RunDir.moved_to``), so a resumed run can never restore the old run's state and nothing is deleted.

One process at a time trains in a run directory: :func:`run_lock` holds an advisory lock beside it,
``<parent>/.<name>.lock``, while a run starts, resumes or trains there, and a second process that asks for it
(a second ``pbrl train --resume``, a second sweep over the same folder) gets :class:`RunBusy` before it touches
anything. The operating system drops the lock when its process ends, a SIGKILL included, so a killed run can
be resumed at once. The lock file stays; it holds the last holder's pid.
"""

from __future__ import annotations

import contextlib
import csv
import json
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from pbrl.app.config import config_from_dict
from pbrl.checkpoint import CheckpointFiles
from pbrl.io import atomic_write, check_writable_dir, remove_temp_files
from pbrl.preferences import PreferenceDataset

try:
    import fcntl
except ImportError:  # not POSIX (Windows): runs are not locked
    fcntl = None

log = logging.getLogger("pbrl.app.run_dir")

__all__ = ["RunDir", "RunBusy", "CURVE_FIELDS", "check_run_dir", "check_not_busy", "lock_path", "run_lock"]

#: the columns of every ``curve.csv`` (one row per evaluation)
CURVE_FIELDS = ("step", "labels", "mean_return", "std_return", "success_rate", "normalized_score")
#: columns ``curve.csv`` adds when the evaluation records carry them (an online PbRL run's)
OPTIONAL_CURVE_FIELDS = ("asked", "reward_accuracy", "reward_saturated")


def check_run_dir(path: str | os.PathLike, overwrite: bool = False) -> Path:
    """Before any work: ``path`` must be (or be makeable as) a writable folder that holds no run, unless
    ``overwrite``. Raises one ``ValueError`` naming the problem and the fix; creates nothing."""
    path = Path(path)
    check_writable_dir(path, "run directory")
    if (path / "config.json").exists() and not overwrite:
        raise ValueError(
            f"{path} already holds a run; resume it with `pbrl train --resume {path}`, "
            "pass --overwrite to start it again (the old run is moved aside), or choose another --run-dir"
        )
    if overwrite and (path / "config.json").exists():
        check_writable_dir(path.absolute().parent, "the folder above the run directory")
    return path


class RunBusy(ValueError):
    """Another process is training in this run directory (it holds :func:`run_lock`)."""


def lock_path(run_dir: str | os.PathLike) -> Path:
    """The lock file of ``run_dir``: ``<parent>/.<name>.lock``, beside the directory (it exists before the run
    directory does, and a run's own files stay the run's). The path is resolved first, so ``.``, a relative path
    and a symbolic link to the same run directory name one lock."""
    p = Path(os.path.realpath(run_dir))
    return p.parent / f".{p.name}.lock"


def _busy_message(run_dir: Path, holder: str) -> str:
    who = f" (pid {holder})" if holder else ""
    return (f"{run_dir} is being trained by another process{who}; wait for it to finish, or stop it and resume "
            f"with `pbrl train --resume {run_dir}`")


def _unlockable(path: Path, e: OSError) -> None:
    log.warning("pbrl: cannot lock %s (%s: %s; a file system without flock?): the run is not protected against a "
                "second process training it", path, type(e).__name__, e)


def _flock(fd: int, mode: int, path: Path, run_dir: str | os.PathLike) -> bool:
    """``flock(fd, mode | LOCK_NB)``: True when taken; :class:`RunBusy` naming the holder's pid when another
    process holds it; False (with a warning) on a file system without ``flock``."""
    try:
        fcntl.flock(fd, mode | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        raise RunBusy(_busy_message(Path(run_dir), os.pread(fd, 32, 0).decode(errors="replace").strip())) from None
    except OSError as e:
        _unlockable(path, e)
        return False


def check_not_busy(run_dir: str | os.PathLike) -> None:
    """Raise :class:`RunBusy` if another process holds ``run_dir``'s lock; creates and changes nothing (a run
    directory without a lock file is not busy). A shared lock taken and let go at once: it fails only while
    another process holds the exclusive one, and two checks never collide."""
    path = lock_path(run_dir)
    if fcntl is None or not path.exists():
        return
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as e:
        return _unlockable(path, e)
    try:
        _flock(fd, fcntl.LOCK_SH, path, run_dir)
    finally:
        os.close(fd)  # closing the descriptor releases a lock taken here


@contextlib.contextmanager
def run_lock(*run_dirs: str | os.PathLike) -> Iterator[None]:
    """Hold the lock of every one of ``run_dirs`` (see the module docstring) for the ``with`` block; raises
    :class:`RunBusy` before the block if another process holds any of them: the ones taken are let go, and the
    lock files and folders this call made are removed. The parent folder is made if needed; nothing else is
    written but the lock file and its pid. On a file system without ``flock`` (some network mounts) it warns
    and goes on unlocked; where Python has no ``fcntl`` (Windows) runs are not locked."""
    fds: list[int] = []
    made: list[Path] = []
    try:
        for d in run_dirs:
            if fcntl is None:
                break
            path = lock_path(d)
            made += [q for q in (path, path.parent, *path.parent.parents) if not q.exists()]
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            fds.append(fd)
            if not _flock(fd, fcntl.LOCK_EX, path, d):
                continue
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    except BaseException:
        for fd in fds:
            os.close(fd)
        for q in sorted(set(made), key=lambda q: len(q.parts), reverse=True):  # files first, then empty folders
            with contextlib.suppress(OSError):
                q.unlink() if q.suffix == ".lock" and q.is_file() else q.rmdir()
        raise
    try:
        yield
    finally:
        for fd in fds:
            os.close(fd)


class RunDir:
    """Paths and small atomic readers/writers of one run directory (see the module docstring)."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.moved_to: Path | None = None

    config_path = property(lambda self: self.path / "config.json")
    status_path = property(lambda self: self.path / "status.json")
    labels_path = property(lambda self: self.path / "labels.h5")
    curve_path = property(lambda self: self.path / "curve.csv")
    metrics_path = property(lambda self: self.path / "metrics.json")
    ckpt_dir = property(lambda self: self.path / "checkpoints")

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    # -- creation
    def create(self, cfg, overwrite: bool = False) -> RunDir:
        """Make the directory and write ``config.json``; refuses to clobber an existing run unless
        ``overwrite``, which first moves everything the directory held aside (see :attr:`moved_to`)."""
        check_run_dir(self.path, overwrite)
        if self.path.is_dir() and any(self.path.iterdir()) and overwrite:
            self.moved_to = self._move_aside()
        self.path.mkdir(parents=True, exist_ok=True)
        self.ckpt_dir.mkdir(exist_ok=True)
        cfg.save(self.config_path)
        self.write_status("running", step=0, labels=0)
        return self

    def _move_aside(self) -> Path:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        dest = self.path.absolute().parent / f"{self.path.absolute().name}.replaced-{stamp}"
        k = 1
        while dest.exists():
            dest = dest.with_name(f"{self.path.absolute().name}.replaced-{stamp}-{k}")
            k += 1
        dest.mkdir()
        for p in self.path.iterdir():
            os.replace(p, dest / p.name)
        return dest

    def config(self):
        """The run's validated config."""
        if not self.config_path.exists():
            raise ValueError(f"{self.path} is not a pbrl run directory (no config.json); "
                             "give the folder `pbrl train` wrote")
        try:
            data = json.loads(self.config_path.read_text())
        except json.JSONDecodeError as e:
            raise ValueError(f"{self.config_path} is not valid JSON ({e}); restore it or start the run again") from None
        return config_from_dict(data)

    def remove_temp_files(self) -> list[Path]:
        """Delete leftovers of writes killed mid-way (``.step_*.pt.*``, ``.labels.h5.*.tmp``, ...)."""
        return remove_temp_files(self.path) + remove_temp_files(self.ckpt_dir)

    # -- small JSON / CSV files
    def _write_json(self, path: Path, data: dict) -> None:
        with atomic_write(path, suffix=".json") as tmp:
            tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=_json_default))

    def write_status(self, state: str, **kw: Any) -> None:
        """Write ``status.json``: ``{"state", "time", **kw}`` (step, labels, checkpoint)."""
        self._write_json(self.status_path, {"state": state, "time": time.time(), **kw})

    def status(self) -> dict[str, Any]:
        """``status.json`` as a dict (``{"state": "unknown"}`` when missing or unreadable)."""
        try:
            return json.loads(self.status_path.read_text()) if self.status_path.exists() else {"state": "unknown"}
        except json.JSONDecodeError:
            return {"state": "unknown"}

    def write_metrics(self, metrics: dict[str, Any]) -> None:
        """Write ``metrics.json`` atomically."""
        self._write_json(self.metrics_path, metrics)

    def metrics(self) -> dict[str, Any] | None:
        """``metrics.json`` as a dict, or ``None`` before the run finished."""
        return json.loads(self.metrics_path.read_text()) if self.metrics_path.exists() else None

    def write_curve(self, rows: list[dict[str, Any]]) -> None:
        """Rewrite ``curve.csv`` atomically from all evaluation records."""
        with atomic_write(self.curve_path, suffix=".csv") as tmp:
            with open(tmp, "w", newline="") as fh:
                fields = CURVE_FIELDS + tuple(f for f in OPTIONAL_CURVE_FIELDS if any(f in r for r in rows))
                w = csv.DictWriter(fh, fieldnames=fields, extrasaction="ignore")
                w.writeheader()
                for r in rows:
                    w.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in fields})

    def curve(self) -> list[dict[str, float]]:
        """Evaluation records from ``curve.csv`` (empty fields read as NaN)."""
        if not self.curve_path.exists():
            return []
        with open(self.curve_path, newline="") as fh:
            return [{k: (float(v) if v not in ("", None) else float("nan")) for k, v in r.items()} for r in csv.DictReader(fh)]

    def labels(self):
        """The run's labels (``labels.h5``), or ``None`` before the first one."""
        return PreferenceDataset.load(self.labels_path) if self.labels_path.exists() else None

    # -- checkpoints (see pbrl.checkpoint.CheckpointFiles)
    @property
    def checkpoints(self) -> CheckpointFiles:
        return CheckpointFiles(self.ckpt_dir)

    def save_checkpoint(self, step: int, payload: dict[str, Any], keep: int = 2) -> Path:
        """Write ``checkpoints/step_<step>.pt`` atomically, point ``latest.json`` at it, keep the newest ``keep``."""
        return self.checkpoints.save(step, payload, keep=keep)

    def latest_checkpoint(self) -> Path | None:
        """The newest checkpoint file, or ``None``."""
        return self.checkpoints.latest()

    def load_checkpoint(self, path: Path | None = None) -> dict[str, Any] | None:
        """Read a checkpoint (default: the newest readable one, falling back past corrupt files with a
        warning); ``None`` when there is none."""
        return self.checkpoints.load(path)


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)
