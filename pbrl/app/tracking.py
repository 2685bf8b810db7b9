"""Experiment tracking with Weights & Biases (``pbrl train --track``), CleanRL's convention.

A tracked run has a file ``wandb.json`` in its run directory: the W&B project, entity and run id. The SB3
logger of the run (:func:`pbrl.app.train_common.make_logger`, used by the online and the offline loop alike)
then gets one more output format, :class:`WandbOutputFormat`, beside stdout, CSV and TensorBoard: every
``logger.dump(step)`` sends the recorded scalars to W&B with ``global_step = step`` (env steps online,
gradient updates offline). A resumed run reads the same ``wandb.json`` and continues the same W&B run
(``wandb.init(id=..., resume="allow")``).

W&B is an optional extra (``pip install 'pbrl[wandb]'``); :func:`check_tracking` says so in one line before
any work. ``WANDB_MODE=offline`` logs into ``RUN_DIR/wandb/`` without a network (``wandb sync`` uploads it
later); without it, W&B needs ``wandb login`` (or ``WANDB_API_KEY``).
"""

from __future__ import annotations

import json
import os
import secrets
import string
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from stable_baselines3.common.logger import KVWriter

from pbrl.io import atomic_write

__all__ = ["Tracking", "TRACKING_FILE", "WANDB_MISSING", "check_tracking", "enable_tracking", "tracking_of",
           "WandbOutputFormat"]

TRACKING_FILE = "wandb.json"
"""The file of a run directory that marks the run as tracked (project, entity, run id)."""

WANDB_MISSING = "--track logs to Weights & Biases, which is not installed; install it: pip install 'pbrl[wandb]'"
"""The one line of ``--track`` without the ``wandb`` extra."""

_ID_CHARS = string.ascii_lowercase + string.digits


@dataclass(frozen=True)
class Tracking:
    """Where a run is tracked on W&B.

    Args:
        project: W&B project (default ``"pbrl"``; CleanRL's ``--wandb-project-name``).
        entity: W&B team or user (default ``None``: the logged-in user's default entity).
        run_id: the W&B run id; :func:`enable_tracking` draws one (8 lowercase letters and digits, W&B's
            own format) when ``None``, and a resumed run reuses the stored one.
        group: W&B run group (default ``None``; ``pbrl sweep --track`` uses the sweep folder's name).
    """

    project: str = "pbrl"
    entity: str | None = None
    run_id: str | None = None
    group: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.project, str) or not self.project.strip() or "/" in self.project:
            raise ValueError(f"--wandb-project must be a non-empty name without '/', got {self.project!r}")
        if self.entity is not None and (not self.entity.strip() or "/" in self.entity):
            raise ValueError(f"--wandb-entity must be a non-empty name without '/', got {self.entity!r}")


def check_tracking() -> None:
    """Raise one ``ValueError`` (:data:`WANDB_MISSING`) unless the ``wandb`` package can be imported."""
    try:
        import wandb  # noqa: F401
    except ImportError:
        raise ValueError(WANDB_MISSING) from None


def enable_tracking(run_dir: str | os.PathLike, tracking: Tracking) -> Tracking:
    """Mark the run in ``run_dir`` as tracked: write ``wandb.json`` (atomically) with ``tracking``'s
    project, entity and run id (a new id unless given). A run already tracked keeps its stored id, so a
    resumed run continues the same W&B run. Returns what is stored."""
    stored = tracking_of(run_dir)
    if stored is not None:
        tracking = replace(tracking, run_id=stored.run_id)
    elif tracking.run_id is None:
        rng = secrets.SystemRandom()
        tracking = replace(tracking, run_id="".join(rng.choice(_ID_CHARS) for _ in range(8)))
    path = Path(run_dir) / TRACKING_FILE
    with atomic_write(path, suffix=".json") as tmp:
        tmp.write_text(json.dumps(asdict(tracking), indent=2))
    return tracking


def tracking_of(run_dir: str | os.PathLike) -> Tracking | None:
    """The run's :class:`Tracking` from its ``wandb.json`` (``None``: the run is not tracked)."""
    path = Path(run_dir) / TRACKING_FILE
    if not path.exists():
        return None
    try:
        d = json.loads(path.read_text())
        return Tracking(project=d["project"], entity=d.get("entity"), run_id=d["run_id"], group=d.get("group"))
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise ValueError(f"'{path}' is not a pbrl tracking file ({type(e).__name__}: {e}); delete it to stop "
                         "tracking the run, or write it again with `pbrl train --resume RUN --track`") from None


def _scalar(v: Any) -> float | int | None:
    """``v`` as a plain number, or ``None`` for what W&B's history does not plot (strings, videos, figures)."""
    if isinstance(v, bool):
        return int(v)
    if isinstance(v, (int, float, np.integer, np.floating)):
        return v.item() if isinstance(v, np.generic) else v
    if hasattr(v, "ndim") and getattr(v, "ndim", 1) == 0 and hasattr(v, "item"):  # a 0-d tensor / array
        return v.item()
    return None


class WandbOutputFormat(KVWriter):
    """An SB3 logger output format that sends each dump to a W&B run.

    ``write(key_values, key_excluded, step)`` logs the numeric values (keys excluded for ``"wandb"`` are
    skipped, as SB3's formats skip theirs) with ``global_step = step``, W&B's x-axis for every metric. The
    W&B run is started at construction: ``wandb.init(project, entity, id=run_id, resume="allow",
    dir=run_dir, config=config, name=name, reinit="create_new")``; ``close()`` finishes it.

    Args:
        run_dir: the run directory (W&B's files go to ``run_dir/wandb/``).
        tracking: project, entity and run id (:func:`enable_tracking`).
        config: the run's configuration, stored as the W&B run's config.
        name: display name of the W&B run (default: the run directory's name).
    """

    def __init__(self, run_dir: str | os.PathLike, tracking: Tracking, config: dict[str, Any] | None = None,
                 name: str | None = None):
        try:
            import wandb
        except ImportError:
            raise ValueError(WANDB_MISSING) from None
        run_dir = Path(run_dir)
        try:
            self.run = wandb.init(project=tracking.project, entity=tracking.entity, id=tracking.run_id,
                                  resume="allow", dir=str(run_dir), config=config or {},
                                  name=name or run_dir.name, group=tracking.group, reinit="create_new")
        except Exception as e:  # wandb's errors (no API key, no network) as one line
            raise ValueError(f"--track: Weights & Biases could not start run {tracking.run_id} ({type(e).__name__}: "
                             f"{' '.join(str(e).split())}); log in with `wandb login`, or set WANDB_MODE=offline to "
                             "log locally and upload later with `wandb sync`") from None
        self.run.define_metric("global_step")
        self.run.define_metric("*", step_metric="global_step")

    def write(self, key_values: dict[str, Any], key_excluded: dict[str, tuple[str, ...]], step: int = 0) -> None:
        row: dict[str, Any] = {}
        for key, value in key_values.items():
            excluded = key_excluded.get(key)
            if excluded is not None and "wandb" in excluded:
                continue
            v = _scalar(value)
            if v is not None:
                row[key] = v
        if row:
            row["global_step"] = int(step)
            self.run.log(row)

    def close(self) -> None:
        if self.run is not None:
            self.run.finish()
            self.run = None
