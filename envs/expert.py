"""A long SAC run that can stop at any moment and resume to the same bytes: the expert (and the medium policy
and medium-replay buffer) behind D4RL-style datasets (:mod:`scripts/make_datasets.py`).

:func:`train_sac_resumable` trains SB3's SAC on the true reward in chunks of ``chunk_steps`` environment
steps. Every chunk starts from files: the model (networks, optimisers, entropy coefficient) and the replay
buffer saved at the end of the previous chunk, every RNG re-seeded from ``(seed, chunk)``, and the env reset
with that seed. An uninterrupted run goes through the same files, so a run stopped at any moment (Ctrl-C,
SIGKILL) and resumed gives the same networks, checkpoints and recorded transitions, bit for bit, as one that
never stopped; a stop loses at most the chunk in progress. The price is one episode cut (as a time-out) at
each chunk boundary, about one per 50 episodes of 1,000 steps at the default chunk of 50,000 steps.

Layout of ``out_dir``:

    state.json                  the run's settings, steps done, evaluated checkpoints, whether it finished
    boundary.zip, replay.pkl    the model and replay buffer at the last chunk boundary
    ckpt/sac_<step>.zip         the model at every evaluation (every ``eval_every`` steps)
    transitions/chunk_<k>.npz   every transition of chunk k (obs, act, rew, term, trunc, next, qpos, qvel)
    log.csv                     one row per evaluation: step, mean and std return, wall and CPU seconds

The run ends at ``total_steps`` or at the first evaluation whose mean return reaches ``target_return``
(D4RL's expert return, :data:`pbrl.envs.scores.D4RL_REF_SCORES`, unless given).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from pbrl.envs.collect import SACRun
from pbrl.envs.dataset import OfflineDataset
from pbrl.envs.registry import check_task, make_env
from pbrl.envs.rollout import rollout
from pbrl.envs.scores import D4RL_REF_SCORES, d4rl_key
from pbrl.io import atomic_write

__all__ = ["train_sac_resumable", "load_sac_run", "TRANSITION_KEYS"]

#: the arrays a resumable SAC run records per transition
TRANSITION_KEYS = ("obs", "act", "rew", "term", "trunc", "next", "qpos", "qvel")
_SETTINGS = ("task_id", "seed", "total_steps", "chunk_steps", "eval_every", "n_eval_episodes", "target_return",
             "learning_starts", "sac_kwargs")


def _write_json(path: Path, obj: Any) -> None:
    with atomic_write(path, suffix=".json") as tmp:
        tmp.write_text(json.dumps(obj, indent=1))


def _evaluate(model: Any, task_id: str, n_episodes: int, seed: int) -> np.ndarray:
    env = make_env(task_id, seed=seed)
    trajs = rollout(env, model, n_episodes=n_episodes, seed=seed, deterministic=True)
    env.close()
    return np.array([t.ret for t in trajs])


class _Transitions:
    """The transitions of one chunk, written into arrays allocated once for the whole chunk.

    Appending a few small arrays per step (as a list of arrays would) fragments the C heap between SAC's
    per-update temporaries: a resumed 1M-step Hopper run grew by about 250 KB per step (13 GB at 150k steps)
    with memory the allocator had freed but could not return. One allocation per key per chunk does not.
    """

    def __init__(self, capacity: int):
        self.capacity = int(capacity)
        self.n = 0
        self.arrays: dict[str, np.ndarray] = {}

    def add(self, **values: Any) -> None:
        if not self.arrays:
            for k, v in values.items():
                v = np.asarray(v)
                dtype = bool if v.dtype == bool else (np.float64 if k in ("rew", "qpos", "qvel") else np.float32)
                self.arrays[k] = np.zeros((self.capacity, *v.shape), dtype)
        if self.n >= self.capacity:
            raise RuntimeError(f"more than {self.capacity} transitions recorded in one chunk")
        for k, v in values.items():
            self.arrays[k][self.n] = v
        self.n += 1

    def as_dict(self) -> dict[str, np.ndarray]:
        """The recorded transitions, one array per :data:`TRANSITION_KEYS` entry (empty arrays when none)."""
        if not self.arrays:
            return {k: np.zeros(0, np.float32) for k in TRANSITION_KEYS}
        return {k: self.arrays[k][: self.n] for k in TRANSITION_KEYS}


def _recorder(rec: _Transitions, on_eval: Callable[[Any], bool]):
    """An SB3 callback that records every transition into ``rec`` and calls ``on_eval(model)`` after each step
    (it returns False to stop the run)."""
    from stable_baselines3.common.callbacks import BaseCallback

    class _Recorder(BaseCallback):
        def _on_training_start(self) -> None:
            info = self.training_env.reset_infos[0]
            self.state = (info["qpos"], info["qvel"])

        def _on_step(self) -> bool:
            info = self.locals["infos"][0]
            done = bool(self.locals["dones"][0])
            trunc = bool(info.get("TimeLimit.truncated", False))
            nobs = info.get("terminal_observation", self.locals["new_obs"][0]) if done else self.locals["new_obs"][0]
            rec.add(obs=self.model._last_obs[0], act=self.locals["actions"][0], rew=self.locals["rewards"][0],
                    term=done and not trunc, trunc=done and trunc, next=nobs, qpos=self.state[0], qvel=self.state[1])
            nxt = self.training_env.reset_infos[0] if done else info
            self.state = (nxt["qpos"], nxt["qvel"])
            return on_eval(self.model)

    return _Recorder()


def _save_chunk(path: Path, rec: _Transitions) -> None:
    arrays = rec.as_dict()
    if len(arrays["rew"]) and not (arrays["term"][-1] or arrays["trunc"][-1]):
        arrays["trunc"][-1] = True  # the chunk boundary cuts the episode: a time-out
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path, suffix=".npz") as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)


def train_sac_resumable(
    task_id: str,
    out_dir: str | os.PathLike,
    total_steps: int = 1_000_000,
    chunk_steps: int = 50_000,
    eval_every: int = 10_000,
    n_eval_episodes: int = 5,
    target_return: float | None = None,
    seed: int = 0,
    learning_starts: int = 10_000,
    sac_kwargs: dict | None = None,
    log: Callable[[str], None] = print,
) -> SACRun:
    """Train (or resume) SAC on ``task_id`` in resumable chunks (module docstring); returns the run.

    Args:
        task_id: registered task id.
        out_dir: the run's folder; an existing run there resumes (with the same settings only).
        total_steps: at most this many environment steps.
        chunk_steps: steps between resumable boundaries (a multiple of ``eval_every``).
        eval_every: steps between evaluations (``n_eval_episodes`` deterministic episodes, seed ``seed + 10000``),
            each saving a checkpoint.
        n_eval_episodes: episodes per evaluation.
        target_return: stop at the first evaluation at or above this mean return (``None``: D4RL's expert
            return for a locomotion task, else never).
        seed: the run's seed (chunk k re-seeds everything with ``seed * 1000 + k``).
        learning_starts: uniformly random actions before SAC's first update (10,000, as RL-Zoo's MuJoCo SAC).
        sac_kwargs: further ``stable_baselines3.SAC`` arguments.
        log: where progress lines go.

    Returns:
        :class:`pbrl.envs.collect.SACRun` of the checkpoints so far (:func:`load_sac_run`).

    Raises:
        ValueError: bad sizes, or ``out_dir`` holds a run with other settings (named).
    """
    from stable_baselines3 import SAC
    from stable_baselines3.common.vec_env import DummyVecEnv

    check_task(task_id)
    for name, v in (("total_steps", total_steps), ("chunk_steps", chunk_steps), ("eval_every", eval_every),
                    ("n_eval_episodes", n_eval_episodes)):
        if not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"{name} must be a positive integer, got {v}")
    if chunk_steps % eval_every:
        raise ValueError(f"chunk_steps ({chunk_steps}) must be a multiple of eval_every ({eval_every})")
    if target_return is None:
        key = d4rl_key(task_id)
        target_return = D4RL_REF_SCORES[key][1] if key is not None else float("inf")
    out = Path(out_dir)
    settings = {"task_id": task_id, "seed": int(seed), "total_steps": int(total_steps), "chunk_steps": int(chunk_steps),
                "eval_every": int(eval_every), "n_eval_episodes": int(n_eval_episodes),
                "target_return": float(target_return), "learning_starts": int(learning_starts),
                "sac_kwargs": dict(sac_kwargs or {})}
    state_path = out / "state.json"
    if state_path.exists():
        state = json.loads(state_path.read_text())
        diff = [k for k in _SETTINGS if k != "total_steps" and state["settings"].get(k) != settings[k]]
        if diff:
            raise ValueError(f"{out} holds a SAC run with other settings ({', '.join(diff)}); resume with the same "
                             "settings or choose another folder")
        if state["settings"]["total_steps"] != total_steps:  # a longer (or shorter) budget continues the run
            state["finished"] = state["finished"] and state["done_steps"] >= total_steps
            state["settings"]["total_steps"] = int(total_steps)
    else:
        out.mkdir(parents=True, exist_ok=True)
        state = {"settings": settings, "done_steps": 0, "checkpoints": [], "finished": False,
                 "wall_s": 0.0, "cpu_s": 0.0}
        _write_json(state_path, state)
    # a fixed 1M-transition buffer (SB3's default, rlkit's in D4RL's runs): a run continued with a larger
    # total_steps stays the same bytes as one started with it
    kw = {"learning_starts": int(learning_starts), "buffer_size": 1_000_000, "verbose": 0}
    kw.update(sac_kwargs or {})
    while not state["finished"] and state["done_steps"] < total_steps:
        _run_chunk(SAC, DummyVecEnv, task_id, out, state, kw, log)
        _write_json(state_path, state)
    return load_sac_run(out)


def _run_chunk(SAC, DummyVecEnv, task_id: str, out: Path, state: dict, kw: dict, log) -> None:
    """One chunk from the last boundary's files: updates ``state`` and writes the next boundary."""
    s = state["settings"]
    k = state["done_steps"] // s["chunk_steps"]
    steps = min(s["chunk_steps"], s["total_steps"] - state["done_steps"])
    chunk_seed = s["seed"] * 1000 + k
    t0, c0 = time.perf_counter(), time.process_time()
    venv = DummyVecEnv([lambda: make_env(task_id)])
    if k == 0:
        model = SAC("MlpPolicy", venv, seed=s["seed"], device="cpu", **kw)
    else:
        model = SAC.load(out / "boundary.zip", env=venv, device="cpu")
        model.load_replay_buffer(out / "replay.pkl")
    model._last_obs = None  # every chunk starts a fresh episode from the re-seeded env
    model.set_random_seed(chunk_seed)  # python, numpy, torch, the action space and the env's next reset
    rec = _Transitions(steps)
    new_ckpts: list[dict] = []

    def on_eval(m) -> bool:
        if m.num_timesteps % s["eval_every"]:
            return True
        path = out / "ckpt" / f"sac_{m.num_timesteps:08d}.zip"
        path.parent.mkdir(parents=True, exist_ok=True)
        m.save(path)
        rets = _evaluate(m, task_id, s["n_eval_episodes"], s["seed"] + 10_000)
        new_ckpts.append({"step": int(m.num_timesteps), "mean_return": float(rets.mean()),
                          "std_return": float(rets.std()), "path": str(path.relative_to(out))})
        log(f"{task_id} SAC step {m.num_timesteps}: eval return {rets.mean():.1f} +- {rets.std():.1f} "
            f"(target {s['target_return']:.0f}), {time.perf_counter() - t0:.0f} s this chunk")
        return bool(rets.mean() < s["target_return"])

    model.learn(total_timesteps=steps, callback=_recorder(rec, on_eval), reset_num_timesteps=False)
    venv.close()
    _save_chunk(out / "transitions" / f"chunk_{k:04d}.npz", rec)
    with atomic_write(out / "boundary.zip", suffix=".zip") as tmp:
        model.save(tmp)
    with atomic_write(out / "replay.pkl", suffix=".pkl") as tmp:
        model.save_replay_buffer(tmp)
    state["done_steps"] = int(model.num_timesteps)
    state["checkpoints"] += new_ckpts
    state["finished"] = bool(new_ckpts and new_ckpts[-1]["mean_return"] >= s["target_return"])
    state["wall_s"] += time.perf_counter() - t0
    state["cpu_s"] += time.process_time() - c0
    with open(out / "log.csv", "a") as f:
        for c in new_ckpts:
            f.write(f"{c['step']},{c['mean_return']:.3f},{c['std_return']:.3f},{state['wall_s']:.1f},{state['cpu_s']:.1f}\n")


def load_sac_run(out_dir: str | os.PathLike, expert: str = "best") -> SACRun:
    """The run in ``out_dir`` as a :class:`~pbrl.envs.collect.SACRun`: its evaluated checkpoints up to the
    expert, the medium checkpoint (the one before the expert closest to a third of its return, D4RL's
    definition) and, as ``replay``, the recorded transitions of every chunk up to the medium checkpoint's.

    Args:
        expert: ``"best"`` (the checkpoint of highest evaluation return; default) or ``"last"``.
    """
    out = Path(out_dir)
    state = json.loads((out / "state.json").read_text())
    ckpts = [{**c, "path": str(out / c["path"])} for c in state["checkpoints"]]
    if not ckpts:
        raise ValueError(f"{out} has no evaluated checkpoint yet; train longer than eval_every steps")
    if expert not in ("best", "last"):
        raise ValueError(f"expert must be 'best' or 'last', got {expert!r}")
    e = int(np.argmax([c["mean_return"] for c in ckpts])) if expert == "best" else len(ckpts) - 1
    ckpts = ckpts[: e + 1]
    target = ckpts[-1]["mean_return"] / 3.0
    medium = int(np.argmin([abs(c["mean_return"] - target) for c in ckpts[:-1]])) if len(ckpts) > 1 else 0
    s = state["settings"]
    # the transitions up to the medium checkpoint's chunk: what medium-replay needs (a long run holds GBs more)
    last_chunk = (int(ckpts[medium]["step"]) - 1) // s["chunk_steps"]
    files = [out / "transitions" / f"chunk_{k:04d}.npz" for k in range(last_chunk + 1)]
    parts = [dict(np.load(f)) for f in files]
    cat = {k: np.concatenate([p[k] for p in parts]) for k in TRANSITION_KEYS}
    replay = OfflineDataset(
        cat["obs"], cat["act"], cat["rew"], cat["term"], cat["trunc"], next_observations=cat["next"],
        infos={"qpos": cat["qpos"].astype(np.float64), "qvel": cat["qvel"].astype(np.float64)},
        metadata={"task_id": s["task_id"], "policy": "sac-replay", "seed": int(s["seed"])},
    )
    extra = {"done_steps": state["done_steps"], "finished": state["finished"], "target_return": s["target_return"],
             "sac_wall_s": state["wall_s"], "sac_cpu_s": state["cpu_s"], "expert_rule": expert}
    return SACRun(s["task_id"], ckpts, medium, replay, str(out), seed=int(s["seed"]), extra=extra)
