"""Saving and loading an offline agent: one torch file per agent (a mixin of
:class:`~pbrl.agents.offline_base.OfflineAgent`, which provides ``config``, ``nets``, ``optims``, the obs
statistics, ``num_updates``, ``rng``, ``torch_gen`` and the ``_extra_state`` hooks)."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pbrl.io import atomic_write

__all__ = ["SavedAgent", "CHECKPOINT_FORMAT"]

#: the ``format`` field of a saved offline agent
CHECKPOINT_FORMAT = "pbrl.offline_agent"
_CHECKPOINT_VERSION = 1


class SavedAgent:
    """``save`` / ``load`` of an offline agent (see the module docstring)."""

    def save(self, path: str | Path) -> Path:
        """Write the agent (config, networks, optimisers, obs statistics, update count) atomically to ``path``."""
        path = Path(path)
        payload = {
            "format": CHECKPOINT_FORMAT,
            "version": _CHECKPOINT_VERSION,
            "module": type(self).__module__,
            "class": type(self).__qualname__,
            "config": self.config,
            "nets": {k: v.state_dict() for k, v in self.nets.items()},
            "optims": {k: v.state_dict() for k, v in self.optims.items()},
            "obs_mean": torch.as_tensor(self.obs_mean),
            "obs_std": torch.as_tensor(self.obs_std),
            "num_updates": self.num_updates,
            "rng": self.rng.bit_generator.state,
            "torch_gen": self.torch_gen.get_state(),
            "extra": self._extra_state(),
        }
        with atomic_write(path, suffix=".pt") as tmp:
            torch.save(payload, tmp)
        return path

    @classmethod
    def load(cls, path: str | Path, device: str | None = None) -> Any:
        """Read an agent written by :meth:`save`. ``OfflineAgent.load`` returns whatever agent class was saved;
        ``IPL.load`` checks the file holds an IPL. The file is unpickled: load only checkpoints you trust."""
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"no agent checkpoint at {path}")
        try:
            payload = torch.load(path, map_location="cpu", weights_only=False)
        except Exception as e:  # noqa: BLE001 - torch.load raises many types
            raise ValueError(f"{path} is not a readable pbrl agent checkpoint ({e})") from None
        if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
            raise ValueError(f"{path} is not a pbrl offline-agent checkpoint")
        if int(payload.get("version", -1)) > _CHECKPOINT_VERSION:
            raise ValueError(f"{path} was written by a newer pbrl (checkpoint version {payload['version']}); upgrade pbrl")
        try:
            klass = getattr(importlib.import_module(payload["module"]), payload["class"])
        except (ImportError, AttributeError):
            raise ValueError(f"{path} holds a {payload['module']}.{payload['class']}, which this pbrl does not have") from None
        if not issubclass(klass, cls):
            raise ValueError(f"{path} holds a {klass.__name__}, not a {cls.__name__}; load it with {klass.__name__}.load")
        config = dict(payload["config"])
        if device is not None:
            config["device"] = device
        agent = klass(**config)
        for k, sd in payload["nets"].items():
            agent.nets[k].load_state_dict(sd)
        for k, sd in payload["optims"].items():
            agent.optims[k].load_state_dict(sd)
        agent.obs_mean = payload["obs_mean"].numpy().astype(np.float32)
        agent.obs_std = payload["obs_std"].numpy().astype(np.float32)
        agent.num_updates = int(payload["num_updates"])
        agent.rng.bit_generator.state = payload["rng"]
        agent.torch_gen.set_state(payload["torch_gen"])
        agent._load_extra_state(payload.get("extra", {}))
        return agent
