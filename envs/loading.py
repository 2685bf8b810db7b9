"""One entry point for datasets on disk: a D4RL-layout HDF5 path or a local Minari id."""

from __future__ import annotations

import os
from pathlib import Path

from pbrl.envs.d4rl import load_d4rl
from pbrl.envs.dataset import OfflineDataset
from pbrl.envs.minari_io import from_minari

__all__ = ["load_dataset"]


def load_dataset(path_or_id: str | os.PathLike) -> OfflineDataset:
    """Load an :class:`OfflineDataset` from a D4RL-layout ``.hdf5``/``.h5`` path or a local Minari id."""
    p = Path(path_or_id)
    if p.suffix in (".hdf5", ".h5") or p.exists():
        return load_d4rl(p)
    return from_minari(str(path_or_id))
