"""Saving and loading reward models: one file format and one implementation for every model family.

A reward-model file is a torch file (written atomically) holding a dict with a format marker and version,
the class name, the constructor ``config``, the network ``weights``, the input normalisation, the
optimiser state and the RNG states, so that a loaded model predicts the same numbers and continues
training exactly as the saved one would.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from pbrl.io import atomic_write
from pbrl.reward_models.networks import upgrade_optimizer_state
from pbrl.segments import Segments

__all__ = ["FORMAT", "FORMAT_VERSION", "SavedRewardModel", "read_state_file", "check_state", "check_segments"]

#: the ``format`` field of a saved reward model
FORMAT = "pbrl.reward_model"
#: the saved reward model format's version
FORMAT_VERSION = 1


def check_state(state: Any) -> dict[str, Any]:
    """Raise one clear ``ValueError`` unless ``state`` is a reward-model state this pbrl reads."""
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise ValueError("not a pbrl reward model state (missing format marker)")
    if int(state.get("version", -1)) > FORMAT_VERSION:
        raise ValueError(f"reward model format version {state['version']} is newer than this pbrl reads")
    return state


def read_state_file(path: str | os.PathLike) -> dict[str, Any]:
    """The state dict in a reward-model file; a missing or unreadable file gives one clear error."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no reward model file at {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - torch raises many types for bad files
        raise ValueError(f"{path} is not a readable pbrl reward model file ({e})") from None


class SavedRewardModel:
    """Mixin: ``state`` / ``load_state`` / ``save`` / ``load`` for a model with ``net``, ``in_mean``,
    ``in_std``, ``fitted_normalizer``, ``optimizer``, ``rng``, ``torch_gen``, ``device`` and ``config()``.
    A class rebuilds itself in ``from_state``."""

    def state(self) -> dict[str, Any]:
        """Everything :meth:`load` needs: class, config, weights, normalisation, optimiser and RNG states."""
        return {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "class": type(self).__name__,
            "config": self.config(),
            "weights": {k: v.detach().cpu() for k, v in self.net.state_dict().items()},
            "in_mean": self.in_mean.cpu(),
            "in_std": self.in_std.cpu(),
            "fitted_normalizer": self.fitted_normalizer,
            "optimizer": self.optimizer.state_dict(),
            "rng": self.rng.bit_generator.state,
            "torch_rng": self.torch_gen.get_state(),
        }

    def load_state(self, state: dict[str, Any]) -> None:
        """Restore, in place, the weights, normalisation, optimiser and RNG states of :meth:`state`
        (the configuration must match; used by ``from_state`` and by run checkpoints). States of the older
        ``BatchedMLP`` key layout load too (see :mod:`pbrl.reward_models.networks`)."""
        self.net.load_state_dict(state["weights"])
        self.in_mean = state["in_mean"].to(self.device)
        self.in_std = state["in_std"].to(self.device)
        self.fitted_normalizer = bool(state["fitted_normalizer"])
        if "optimizer" in state:
            self.optimizer.load_state_dict(upgrade_optimizer_state(self.net, state["weights"], state["optimizer"]))
        if "rng" in state:
            self.rng.bit_generator.state = state["rng"]
        if "torch_rng" in state:
            self.torch_gen.set_state(state["torch_rng"])
        self.net.eval()

    def save(self, path: str | os.PathLike) -> Path:
        """Write :meth:`state` atomically to ``path`` (a torch file)."""
        path = Path(path)
        with atomic_write(path) as tmp:
            torch.save(self.state(), tmp)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike, device: str = "cpu"):
        """Load a model written by :meth:`save`; a missing or foreign file gives one clear error."""
        state = read_state_file(path)
        try:
            return cls.from_state(state, device=device)
        except ValueError as e:
            raise ValueError(f"{path}: {e}") from None


def check_segments(seg: Any, name: str, obs_dim: int, act_dim: int) -> Segments:
    """``seg`` if it is a :class:`Segments` batch of this reward model's sizes; else one clear error."""
    if not isinstance(seg, Segments):
        raise TypeError(f"{name} must be a pbrl Segments batch, got {type(seg).__name__}")
    if seg.obs_dim != obs_dim or seg.act_dim != act_dim:
        raise ValueError(
            f"{name} has obs_dim={seg.obs_dim}, act_dim={seg.act_dim} but this reward model expects "
            f"obs_dim={obs_dim}, act_dim={act_dim}; build the model for this environment"
        )
    return seg
