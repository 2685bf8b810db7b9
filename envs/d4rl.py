"""D4RL's HDF5 layout on disk: :func:`save_d4rl` (atomic) and :func:`load_d4rl` (D4RL's v2 MuJoCo files too).

Keys: ``observations, actions, rewards, terminals, timeouts``, optional ``next_observations``, ``success``
and ``infos/<name>``; pbrl's metadata is a JSON attribute ``pbrl_metadata`` on the root.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from pbrl.envs.dataset import REQUIRED_KEYS, OfflineDataset
from pbrl.io import atomic_write

__all__ = ["save_d4rl", "load_d4rl"]


def save_d4rl(ds: OfflineDataset, path: str | os.PathLike) -> Path:
    """Write ``ds`` in D4RL's HDF5 layout, atomically (temp file + rename).

    Keys: ``observations, actions, rewards, terminals, timeouts``, ``next_observations`` and ``success``
    when known, ``infos/<name>`` for each info array; root attribute ``pbrl_metadata`` (JSON).
    """
    if not isinstance(ds, OfflineDataset):
        raise TypeError(f"save_d4rl writes an OfflineDataset, got {type(ds).__name__}")
    path = Path(path)
    with atomic_write(path, suffix=".hdf5") as tmp:
        with h5py.File(tmp, "w") as f:
            f.attrs["pbrl_metadata"] = json.dumps(ds.metadata)
            for k in REQUIRED_KEYS:
                f.create_dataset(k, data=getattr(ds, k), compression="gzip", compression_opts=1)
            if ds.next_observations is not None:
                f.create_dataset("next_observations", data=ds.next_observations, compression="gzip", compression_opts=1)
            if ds.success is not None:
                f.create_dataset("success", data=ds.success)
            for k, v in ds.infos.items():
                f.create_dataset(f"infos/{k}", data=v, compression="gzip", compression_opts=1)
    return path


def _read_metadata_group(g: h5py.Group) -> dict:
    out: dict[str, Any] = {}

    def visit(name, obj):
        if isinstance(obj, h5py.Dataset) and obj.size <= 16:
            v = obj[()]
            if isinstance(v, bytes):
                v = v.decode(errors="replace")
            elif isinstance(v, np.ndarray):
                v = v.tolist()
            elif isinstance(v, np.generic):
                v = v.item()
            out[name] = v

    g.visititems(visit)
    return json.loads(json.dumps(out, default=str))


def load_d4rl(path: str | os.PathLike, metadata: dict | None = None) -> OfflineDataset:
    """Read an HDF5 file in D4RL's layout (``observations, actions, rewards, terminals, timeouts``,
    optional ``next_observations``, ``success`` and ``infos/*``), e.g. D4RL's v2 MuJoCo files.

    ``infos/success`` is used as ``success`` when there is no top-level ``success``. D4RL's own
    ``metadata/*`` entries are kept under ``metadata["d4rl"]``; ``metadata`` (argument) is merged on top.

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: not HDF5, a missing key, mismatched lengths, NaN values (each named).
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no dataset file at {path}")
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise ValueError(f"{path} is not a readable HDF5 file ({e})") from None
    with f:
        missing = [k for k in REQUIRED_KEYS if k not in f]
        if missing:
            raise ValueError(
                f"{path} is missing the required key(s) {missing}; a D4RL file needs {list(REQUIRED_KEYS)} "
                f"(found {sorted(f.keys())})"
            )
        arrays = {k: f[k][()] for k in REQUIRED_KEYS}
        nxt = f["next_observations"][()] if "next_observations" in f else None
        infos = {}
        if "infos" in f and isinstance(f["infos"], h5py.Group):
            for k, v in f["infos"].items():
                if isinstance(v, h5py.Dataset):
                    infos[k] = v[()]
        success = f["success"][()] if "success" in f else infos.pop("success", None)
        meta: dict[str, Any] = {}
        if "pbrl_metadata" in f.attrs:
            meta = json.loads(f.attrs["pbrl_metadata"])
        elif "metadata" in f and isinstance(f["metadata"], h5py.Group):
            meta = {"d4rl": _read_metadata_group(f["metadata"]), "source": str(path)}
        else:
            meta = {"source": str(path)}
    meta.update(metadata or {})
    return OfflineDataset(
        **arrays, next_observations=nxt, success=success, infos=infos, metadata=meta, _source=str(path)
    )
