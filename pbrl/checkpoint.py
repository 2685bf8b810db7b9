"""Checkpoints of a run: the files (atomic, the newest ``keep`` retained, a corrupt newest one skipped for
the previous one) and the snapshots they hold: the global RNGs, a gymnasium env (MuJoCo integration
state included), a DummyVecEnv, an SB3 learner and its replay buffer.

A checkpoint is a single ``torch.save`` file written with :class:`pbrl.io.atomic_write` (temp file +
rename), so a run killed at any moment (SIGKILL included) leaves the previous checkpoint intact. Should the
newest one still be unreadable (a disk fault, a copy cut short), :meth:`CheckpointFiles.load` says so on
stderr and falls back to the previous retained checkpoint.
"""

from __future__ import annotations

import copy
import json
import pickle
import random
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pbrl.io import atomic_write

__all__ = [
    "CheckpointFiles",
    "CHECKPOINT_FORMAT",
    "CHECKPOINT_VERSION",
    "global_rng_state",
    "set_global_rng_state",
    "SdeNoiseTap",
    "env_state",
    "set_env_state",
    "vec_env_state",
    "set_vec_env_state",
    "sb3_state",
    "set_sb3_state",
    "buffer_state",
    "set_buffer_state",
]

#: the ``format`` field of a run checkpoint; files of another format are refused
CHECKPOINT_FORMAT = "pbrl.run_checkpoint"
#: the run-checkpoint format's version
CHECKPOINT_VERSION = 1


class CheckpointFiles:
    """The ``checkpoints/`` folder of a run: ``step_<N>.pt`` files and ``latest.json`` naming the newest."""

    def __init__(self, folder: str | Path, echo: Callable[[str], None] | None = None):
        self.folder = Path(folder)
        self.echo = echo or (lambda msg: print(f"[pbrl] {msg}", file=sys.stderr))
        self.skipped: list[tuple[Path, str]] = []

    def save(self, step: int, payload: dict[str, Any], keep: int = 2) -> Path:
        """Write ``step_<step>.pt`` atomically, point ``latest.json`` at it, keep the newest ``keep`` files."""
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / f"step_{int(step):010d}.pt"
        payload = {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "step": int(step), **payload}
        with atomic_write(path, suffix=".pt") as tmp:
            torch.save(payload, tmp)
        with atomic_write(self.folder / "latest.json", suffix=".json") as tmp:
            tmp.write_text(json.dumps({"file": path.name, "step": int(step)}))
        for old in sorted(self.folder.glob("step_*.pt"))[:-keep]:
            old.unlink(missing_ok=True)
        return path

    def candidates(self) -> list[Path]:
        """Checkpoint files, newest first (``latest.json``'s choice first when it names an existing file)."""
        files = sorted(self.folder.glob("step_*.pt"), reverse=True) if self.folder.is_dir() else []
        latest = self.folder / "latest.json"
        try:
            named = self.folder / json.loads(latest.read_text())["file"] if latest.exists() else None
        except (json.JSONDecodeError, KeyError, TypeError):
            named = None
        if named is not None and named in files:
            files.remove(named)
            files.insert(0, named)
        return files

    def latest(self) -> Path | None:
        """The newest checkpoint file, or ``None``."""
        c = self.candidates()
        return c[0] if c else None

    @staticmethod
    def read(path: Path) -> dict[str, Any]:
        """One checkpoint file; ``ValueError`` when it is not a readable pbrl run checkpoint."""
        try:
            payload = torch.load(path, map_location="cpu", weights_only=False)
        except Exception as e:  # noqa: BLE001 - torch raises RuntimeError, EOFError, UnpicklingError, ...
            raise ValueError(f"{path} is unreadable ({type(e).__name__}: {str(e)[:120]})") from None
        if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
            raise ValueError(f"{path} is not a pbrl run checkpoint")
        if int(payload.get("version", 0)) > CHECKPOINT_VERSION:
            raise ValueError(f"{path} was written by a newer pbrl (checkpoint version {payload['version']})")
        return payload

    def load(self, path: Path | None = None, then: Callable[[dict], Any] | None = None):
        """The newest readable checkpoint (or exactly ``path``); ``None`` when there is none.

        A checkpoint that cannot be read (or for which ``then(payload)`` raises, e.g. because a file
        saved beside it is corrupt) is skipped for the previous retained one, and the skip is reported
        through ``echo``. With ``then`` the result is ``(payload, then(payload))``. When no retained
        checkpoint is readable, one ``ValueError`` lists them.
        """
        cands = [Path(path)] if path is not None else self.candidates()
        if not cands:
            return None
        errors = []
        for i, p in enumerate(cands):
            try:
                payload = self.read(p)
                res = then(payload) if then is not None else None
            except (ValueError, RuntimeError, OSError, EOFError, pickle.UnpicklingError, KeyError) as e:
                errors.append(f"{p.name}: {e}")
                self.skipped.append((p, str(e)))
                if i + 1 < len(cands):
                    self.echo(f"checkpoint {p.name} cannot be used ({e}); falling back to {cands[i + 1].name}")
                continue
            if i > 0:
                self.echo(f"resuming from the older checkpoint {p.name}")
            return (payload, res) if then is not None else payload
        raise ValueError("no usable checkpoint: " + "; ".join(errors)
                         + "; delete the checkpoints folder to restart the run from its start")


def global_rng_state() -> dict[str, Any]:
    """The global ``random``, NumPy and torch RNG states (SB3 samples replay minibatches with
    ``np.random`` and actions with torch's global generator)."""
    return {"random": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}  # noqa: NPY002


def set_global_rng_state(state: dict[str, Any]) -> None:
    """Restore :func:`global_rng_state`."""
    random.setstate(state["random"])
    np.random.set_state(state["numpy"])  # noqa: NPY002 - SB3 samples with the legacy global RNG
    torch.set_rng_state(state["torch"])


class SdeNoiseTap:
    """Remembers torch's RNG state just before each gSDE noise draw of an SB3 policy.

    An on-policy learner with gSDE (PrefPPO's default) draws the rollout's noise matrix in ``collect_rollouts``
    *before* ``on_rollout_start``, where checkpoints are taken. A checkpoint of the RNG state after that draw
    makes a resumed run draw once more and diverge. Checkpointing :attr:`state` instead makes the resumed
    rollout draw the same noise again. ``SdeNoiseTap.attach(model)`` installs it when the model uses gSDE.
    """

    def __init__(self, policy: Any):
        self.state: torch.Tensor | None = None
        self._reset_noise = policy.reset_noise
        policy.reset_noise = self  # an instance attribute: SB3's own calls come here first

    @classmethod
    def attach(cls, model: Any) -> SdeNoiseTap | None:
        """A tap on ``model.policy`` when the model is on-policy with gSDE, else ``None``."""
        if not getattr(model, "use_sde", False) or hasattr(model, "replay_buffer"):
            return None
        return cls(model.policy)

    def __call__(self, *args, **kwargs):
        self.state = torch.get_rng_state()
        return self._reset_noise(*args, **kwargs)

    def rng_state(self) -> dict[str, Any]:
        """:func:`global_rng_state` with torch's state as it was before the last noise draw."""
        state = global_rng_state()
        if self.state is not None:
            state["torch"] = self.state.clone()
        return state


_SIMPLE = (int, float, bool, str, bytes, type(None), np.ndarray, np.generic, np.random.Generator, np.random.RandomState)
_MODEL_FIELDS = ("body_pos", "body_quat", "site_pos", "site_quat", "geom_pos", "geom_quat", "geom_size", "eq_data")


def _is_simple(v: Any, depth: int = 0) -> bool:
    if isinstance(v, _SIMPLE):
        return True
    if depth < 3 and isinstance(v, (list, tuple)):
        return all(_is_simple(x, depth + 1) for x in v)
    if depth < 3 and isinstance(v, dict):
        return all(isinstance(k, (str, int)) and _is_simple(x, depth + 1) for k, x in v.items())
    return False


def _layers(env: Any) -> list[Any]:
    out = [env]
    while hasattr(out[-1], "env") and out[-1].env is not out[-1]:
        out.append(out[-1].env)
    return out


def env_state(env: Any) -> list[dict[str, Any]]:
    """Snapshot of a (wrapped) gymnasium env: for each wrapper layer its plain attributes (time-limit
    counter, Monitor statistics, Meta-World's goal and path length, the env's ``np_random``), the RNGs of
    its spaces, and for MuJoCo envs the full integration state (``mj_getState(mjSTATE_INTEGRATION)``) and
    the model fields tasks move at reset (body/site/geom positions)."""
    import gymnasium as gym

    out = []
    for layer in _layers(env):
        d: dict[str, Any] = {}
        for k, v in vars(layer).items():
            if _is_simple(v):
                d[k] = copy.deepcopy(v)
            elif isinstance(v, gym.Space) and getattr(v, "_np_random", None) is not None:
                d["__space__" + k] = copy.deepcopy(v._np_random)
        model, data = getattr(layer, "model", None), getattr(layer, "data", None)
        if model is not None and data is not None and type(model).__name__ == "MjModel":
            import mujoco

            spec = mujoco.mjtState.mjSTATE_INTEGRATION
            buf = np.empty(mujoco.mj_stateSize(model, spec))
            mujoco.mj_getState(model, data, buf, spec)
            d["__mjstate__"] = buf
            d["__mjmodel__"] = {f: np.array(getattr(model, f)) for f in _MODEL_FIELDS}
            try:  # the whole MjData: also the derived quantities envs read before stepping (xpos, contacts)
                d["__mjdata__"] = pickle.dumps(data)
            except Exception:  # noqa: BLE001 - older bindings: the integration state alone
                pass
        out.append(d)
    return out


def set_env_state(env: Any, state: list[dict[str, Any]]) -> None:
    """Restore :func:`env_state` into an env built the same way."""
    layers = _layers(env)
    if len(layers) != len(state):
        raise ValueError(f"env has {len(layers)} wrapper layers but the checkpoint has {len(state)}")
    for layer, d in zip(layers, state):
        if "__mjmodel__" in d:
            for f, a in d["__mjmodel__"].items():
                getattr(layer.model, f)[...] = a
        for k, v in d.items():
            if k == "__mjdata__":
                layer.data = pickle.loads(v)
            elif k == "__mjstate__" and "__mjdata__" in d:
                continue
            elif k == "__mjstate__":
                import mujoco

                spec = mujoco.mjtState.mjSTATE_INTEGRATION
                mujoco.mj_setState(layer.model, layer.data, v, spec)
                mujoco.mj_forward(layer.model, layer.data)  # derived quantities (positions, contacts)
                mujoco.mj_setState(layer.model, layer.data, v, spec)  # forward touched the solver warm start
            elif k.startswith("__space__"):
                vars(layer)[k[len("__space__"):]]._np_random = copy.deepcopy(v)
            elif k not in ("__mjmodel__", "__mjdata__"):
                setattr(layer, k, copy.deepcopy(v))


def _base_vec_env(venv: Any) -> Any:
    while hasattr(venv, "venv"):
        venv = venv.venv
    return venv


def vec_env_state(venv: Any) -> dict[str, Any]:
    """The state of an in-process VecEnv: each env's :func:`env_state`, the base VecEnv's buffers and its
    wrappers' plain attributes."""
    base = _base_vec_env(venv)
    if not hasattr(base, "envs"):
        raise TypeError(f"checkpoints need an in-process VecEnv (DummyVecEnv), got {type(base).__name__}")
    bufs = {k: copy.deepcopy(v) for k, v in vars(base).items() if k.startswith("buf_") or k in ("actions", "reset_infos")}
    wrappers = []  # VecEnv wrappers above the base (e.g. LearnedRewardVecEnv): their plain attributes
    layer = venv
    while hasattr(layer, "venv"):
        wrappers.append({k: copy.deepcopy(v) for k, v in vars(layer).items() if _is_simple(v)})
        layer = layer.venv
    return {"envs": [env_state(e) for e in base.envs], "bufs": bufs, "wrappers": wrappers}


def set_vec_env_state(venv: Any, state: dict[str, Any]) -> None:
    """Restore :func:`vec_env_state` into a VecEnv built the same way (same number of envs)."""
    base = _base_vec_env(venv)
    if len(base.envs) != len(state["envs"]):
        raise ValueError(f"the VecEnv has {len(base.envs)} envs but the checkpoint has {len(state['envs'])}")
    for e, s in zip(base.envs, state["envs"]):
        set_env_state(e, s)
    for k, v in state["bufs"].items():
        setattr(base, k, copy.deepcopy(v))
    layer = venv
    for attrs in state.get("wrappers", []):
        for k, v in attrs.items():
            setattr(layer, k, copy.deepcopy(v))
        layer = layer.venv


_SB3_ATTRS = (
    "num_timesteps",
    "_n_updates",
    "_last_obs",
    "_last_episode_starts",
    "_last_original_obs",
    "_episode_num",
    "ep_info_buffer",
    "ep_success_buffer",
    "_current_progress_remaining",
    "_n_calls",
)


def sb3_state(model: Any) -> dict[str, Any]:
    """An SB3 model's training state: its torch state dicts and tensors, counters and the action space's RNG."""
    from stable_baselines3.common.save_util import recursive_getattr

    dicts, tensors = model._get_torch_save_params()
    return {
        "state_dicts": {n: copy.deepcopy(recursive_getattr(model, n).state_dict()) for n in dicts},
        "tensors": {n: recursive_getattr(model, n).detach().clone() for n in (tensors or [])},
        "attrs": {k: copy.deepcopy(getattr(model, k)) for k in _SB3_ATTRS if hasattr(model, k)},
        "action_space_rng": copy.deepcopy(model.action_space._np_random),
    }


def set_sb3_state(model: Any, state: dict[str, Any]) -> None:
    """Restore :func:`sb3_state` into an SB3 model built the same way."""
    from stable_baselines3.common.save_util import recursive_getattr

    for n, sd in state["state_dicts"].items():
        recursive_getattr(model, n).load_state_dict(sd)
    with torch.no_grad():
        for n, t in state["tensors"].items():
            recursive_getattr(model, n).copy_(t)
    for k, v in state["attrs"].items():
        setattr(model, k, copy.deepcopy(v))
    model.action_space._np_random = copy.deepcopy(state["action_space_rng"])


def buffer_state(buf: Any) -> dict[str, Any] | None:
    """The replay buffer's attributes; arrays of ``buffer_size`` rows are cut to the filled rows."""
    if buf is None:
        return None
    n = buf.buffer_size if buf.full else buf.pos
    out: dict[str, Any] = {}
    for k, v in vars(buf).items():
        if isinstance(v, np.ndarray) and v.ndim >= 1 and v.shape[0] == buf.buffer_size:
            out[k] = ("__rows__", v[:n].copy())
        elif isinstance(v, torch.device) or callable(v):
            continue  # hooks (sample-time reward functions) are re-attached by the agent
        else:
            try:
                out[k] = copy.deepcopy(v)
            except Exception:  # noqa: BLE001 - an attribute that cannot be copied is rebuilt by the constructor
                continue
    return out


def set_buffer_state(buf: Any, state: dict[str, Any] | None) -> None:
    """Restore :func:`buffer_state` into a replay buffer built the same way (``None``: nothing to restore)."""
    if buf is None or state is None:
        return
    for k, v in state.items():
        if isinstance(v, tuple) and len(v) == 2 and isinstance(v[0], str) and v[0] == "__rows__":
            arr = getattr(buf, k)
            arr[: len(v[1])] = v[1]
        else:
            setattr(buf, k, copy.deepcopy(v))
