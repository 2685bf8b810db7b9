"""Helpers that several test modules share (``pythonpath = ["tests"]`` in pyproject makes ``import helpers``
work from every test folder); fixtures live in ``conftest.py``.

* Synthetic preference data: :func:`random_segments`, :func:`segment_pair`, :func:`synthetic_pairs`
  (random segments whose true reward is ``obs[..., 0]`` unless told otherwise, oracle labels).
* Toy offline problems: :func:`bandit_dataset` (a contextual bandit in episodes) and
  :func:`contrast_problem` (segments acting ``+good`` preferred to segments acting ``-good``).
* A training run in a child process: :func:`start_train` (``python -m pbrl.cli train ...``) and
  :func:`wait_for_checkpoint`, for the tests that kill a run (SIGKILL, SIGINT) and resume it.
* A script of ``scripts/`` (or ``scripts/investigations/``) as a module: :func:`load_script`.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from pbrl.preferences import PreferenceDataset
from pbrl.segments import Segments

__all__ = ["random_segments", "segment_pair", "synthetic_pairs", "bandit_dataset", "contrast_problem", "start_train",
           "wait_for_checkpoint", "load_script"]

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


# ---------------------------------------------------------------------------------------- synthetic data
def random_segments(rng: np.random.Generator, n: int, H: int, obs_dim: int = 4, act_dim: int = 2,
                    reward: Callable[[np.ndarray], np.ndarray] | None = None) -> Segments:
    """``n`` segments of ``H`` steps: obs ~ N(0, 1) ``[n, H, obs_dim]`` (float32), then actions ~ U(-1, 1)
    ``[n, H, act_dim]``, drawn from ``rng`` in that order; the true reward is ``reward(obs)`` (default
    ``obs[..., 0]``)."""
    obs = rng.normal(size=(n, H, obs_dim)).astype(np.float32)
    act = rng.uniform(-1, 1, size=(n, H, act_dim)).astype(np.float32)
    return Segments(obs=obs, act=act, reward=obs[..., 0] if reward is None else reward(obs))


def segment_pair(n: int = 64, H: int = 10, obs_dim: int = 4, act_dim: int = 2, seed: int = 0) -> tuple[Segments, Segments]:
    """Two batches of :func:`random_segments` (``a`` then ``b``) from ``default_rng(seed)``."""
    rng = np.random.default_rng(seed)
    return random_segments(rng, n, H, obs_dim, act_dim), random_segments(rng, n, H, obs_dim, act_dim)


def synthetic_pairs(n: int = 64, H: int = 10, obs_dim: int = 4, act_dim: int = 2, seed: int = 0,
                    label: float | np.ndarray | None = None, last_only: bool = False) -> PreferenceDataset:
    """Pairs of :func:`segment_pair` whose true reward is ``obs[..., 0]``, labelled by an oracle (``1.0``
    when ``b``'s return is higher) unless ``label`` is given; with ``last_only`` the oracle compares only
    the last step's reward (a non-Markovian preference)."""
    a, b = segment_pair(n, H, obs_dim, act_dim, seed)
    if label is None:
        ra, rb = (a.reward[:, -1], b.reward[:, -1]) if last_only else (a.returns(), b.returns())
        label = (rb > ra).astype(np.float32)
    return PreferenceDataset(a, b, np.broadcast_to(np.asarray(label, np.float32), (n,)).copy())


def bandit_dataset(n_episodes: int = 60, length: int = 10, seed: int = 0):
    """A contextual bandit in episodes of ``length`` steps: obs ~ N(0, 1) ``[3]``, action +-0.8 (+ N(0, 0.05)
    noise) ``[1]``, reward 1 iff action > 0 (so a working agent ends up choosing positive actions); an
    ``OfflineDataset`` with timeouts at episode ends and ``next_observations``."""
    from pbrl.envs.datasets import OfflineDataset

    rng = np.random.default_rng(seed)
    T = n_episodes * length
    obs = rng.normal(size=(T, 3)).astype(np.float32)
    act = (0.8 * rng.choice([-1.0, 1.0], size=(T, 1)) + 0.05 * rng.normal(size=(T, 1))).astype(np.float32)
    timeouts = np.zeros(T, bool)
    timeouts[length - 1 :: length] = True
    return OfflineDataset(obs, act, (act[:, 0] > 0).astype(np.float32), np.zeros(T, bool), timeouts,
                          next_observations=np.roll(obs, -1, axis=0))


def contrast_problem(n_pairs: int = 64, H: int = 8, good: float = 0.6, noise: float = 0.1, seed: int = 0):
    """``2 n_pairs`` segments of random states (obs ``[3]``), the even ones acting ``+good``, the odd ones
    ``-good`` (+ N(0, noise) action noise), reward +-1; each pair has one of each, the good one preferred,
    on a random side. Returns ``(dataset, prefs, obs [2n, H, 3], act [2n, H, 1], sign [2n])``."""
    from pbrl.envs.datasets import OfflineDataset

    rng = np.random.default_rng(seed)
    obs = rng.normal(size=(2 * n_pairs, H, 3)).astype(np.float32)
    sign = np.where(np.arange(2 * n_pairs) % 2 == 0, 1.0, -1.0)  # even rows are the good segments
    act = (sign[:, None, None] * good + noise * rng.normal(size=(2 * n_pairs, H, 1))).astype(np.float32)
    rew = np.broadcast_to(sign[:, None], (2 * n_pairs, H)).astype(np.float32)
    terminals = np.zeros(2 * n_pairs * H, bool)
    timeouts = terminals.copy()
    timeouts[H - 1 :: H] = True
    ds = OfflineDataset(obs.reshape(-1, 3), act.reshape(-1, 1), rew.reshape(-1), terminals, timeouts)
    segs = Segments(obs=obs, act=act, reward=rew, index=np.arange(2 * n_pairs) * H)
    flip = rng.random(n_pairs) < 0.5
    good_i, bad_i = np.arange(0, 2 * n_pairs, 2), np.arange(1, 2 * n_pairs, 2)
    prefs = PreferenceDataset(segs[np.where(flip, bad_i, good_i)], segs[np.where(flip, good_i, bad_i)],
                              flip.astype(np.float32))  # label 1 <=> b (the good segment) preferred
    return ds, prefs, obs, act, sign


# ---------------------------------------------------------------------------------------- child runs
def tiny_online_config(**over) -> dict:
    """A tiny online run config (PEBBLE on HalfCheetah: 450 steps of 50-step episodes, 40 labels in sessions
    of 10 every 80 steps, checkpoints every 100 steps, 32-wide networks) for resume and CLI tests;
    ``over`` replaces top-level keys."""
    return {
        "task": "mujoco/HalfCheetah-v5",
        "agent": "pebble",
        "total_timesteps": 450,
        "total_feedback": 40,
        "feedback_per_session": 10,
        "feedback_every": 80,
        "segment_length": 10,
        "max_episode_steps": 50,
        "checkpoint_every": 100,
        "eval_every": 200,
        "n_eval_episodes": 1,
        "learner_kwargs": {"learning_starts": 50, "batch_size": 32, "buffer_size": 5000,
                           "policy_kwargs": {"net_arch": [32, 32]}},
        "reward_model_kwargs": {"hidden": [32, 32]},
        "agent_kwargs": {"unsup_steps": 50, "fit_kwargs": {"epochs": 5}},
        **over,
    }



def start_train(*args: str) -> subprocess.Popen:
    """``python -m pbrl.cli train ARGS`` in a child process (stdout discarded, stderr kept for errors)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "pbrl.cli", "train", *args],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, text=True)


def wait_for_checkpoint(proc: subprocess.Popen, run_dir: Path, step: int, timeout: float = 120) -> int:
    """Wait until ``run_dir/status.json`` names a checkpoint at ``step`` or later and return its step;
    fails when the child exits first (with its stderr) or after ``timeout`` seconds."""
    t0 = time.time()
    while time.time() - t0 < timeout:
        try:
            ckpt = json.loads((Path(run_dir) / "status.json").read_text()).get("checkpoint", -1)
        except (FileNotFoundError, json.JSONDecodeError):  # not written yet, or caught mid-replace
            ckpt = -1
        if ckpt >= step:
            return int(ckpt)
        if proc.poll() is not None:
            raise AssertionError(f"training exited early (rc {proc.returncode}): {proc.stderr.read()[-2000:]}")
        time.sleep(0.02)
    raise AssertionError("no checkpoint in time")


def sigkill_then_resume(cfg: dict, tmp_path: Path, step: int) -> tuple[Path, dict]:
    """Train ``cfg`` online in a child process, SIGKILL it after its checkpoint at ``step`` (checked to be
    mid-run), then resume it here; returns ``(run directory, final metrics)``."""
    import signal

    from pbrl import runs

    cfg_path = Path(tmp_path) / "tiny.json"
    cfg_path.write_text(json.dumps(cfg))
    d = Path(tmp_path) / "killed"
    proc = start_train("online", "-c", str(cfg_path), "-o", str(d), "--quiet")
    wait_for_checkpoint(proc, d, step)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    status = json.loads((d / "status.json").read_text())
    assert status["state"] == "running" and status["step"] < cfg["total_timesteps"]  # really killed mid-run
    return d, runs.resume(d, verbose=False)


def load_script(name: str):
    """The module of ``scripts/<name>.py`` (else ``scripts/investigations/<name>.py``), loaded once by its
    path (scripts are programs, not a package; they never import each other)."""
    key = f"pbrl_script_{name}"
    if key in sys.modules:
        return sys.modules[key]
    path = SCRIPTS / f"{name}.py"
    if not path.exists():
        path = SCRIPTS / "investigations" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(key, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[key] = mod
    spec.loader.exec_module(mod)
    return mod
