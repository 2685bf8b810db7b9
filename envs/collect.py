"""Collect offline datasets here, with D4RL's vocabulary: random, medium, medium-replay, expert, medium-expert,
and Meta-World scripted policies with Gaussian action noise.

* ``random``: uniform actions in the action space.
* SB3 policies trained here with SAC on the true reward (:func:`train_sac`), following D4RL (Fu et al.,
  2020, Sec. 5): ``expert`` = the final policy, ``medium`` = the checkpoint whose evaluation return is
  closest to a third of the expert's, ``medium-replay`` = every transition the training run collected
  up to the ``medium`` checkpoint (its replay buffer), ``medium-expert`` = medium and expert data joined.
* ``scripted`` (Meta-World): the task's hand-written policy from ``metaworld.policies`` plus
  ``N(0, sigma^2)`` action noise, with one or several noise levels (cycled per episode), and optionally an
  early stop ``early_stop`` steps after the first success, as in the IPL / CPL Meta-World datasets. On the
  two-goal point mass, :func:`pbrl.envs.pointmass.scripted_two_goal` (episodes split between both goals).

Every step records ``infos/qpos`` and ``infos/qvel`` (the simulator state of ``observations[t]``),
``success`` (after the step) and ``next_observations``. Reference returns for normalised scores (random
and expert) are measured by :func:`measure_reference_returns` and stored in the metadata.
"""

from __future__ import annotations

import difflib
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from pbrl.envs.dataset import OfflineDataset
from pbrl.envs.pointmass import scripted_two_goal
from pbrl.envs.registry import (
    check_task,
    episode_length,
    is_metaworld,
    is_pointmass,
    make_env,
    parse_task,
    task_options,
)
from pbrl.envs.rollout import rollout

__all__ = [
    "collect",
    "collect_with",
    "scripted_policy",
    "train_sac",
    "SACRun",
    "measure_reference_returns",
    "POLICY_KINDS",
]

#: the data-collecting policies ``collect`` takes (or a path to an SB3 .zip)
POLICY_KINDS = ("random", "scripted", "medium", "expert", "medium-replay", "medium-expert")


# ---------------------------------------------------------------------- scripted Meta-World policies
def _policy_class_name(task: str) -> str:
    import metaworld.policies as mp

    names = [n for n in dir(mp) if n.startswith("Sawyer") and n.endswith("V3Policy")]
    key = task.removesuffix("-v3").replace("-", "").lower()
    table = {n.removeprefix("Sawyer").removesuffix("V3Policy").lower(): n for n in names}
    if key in table:
        return table[key]
    close = difflib.get_close_matches(key, list(table), n=1, cutoff=0.75)
    if close:
        return table[close[0]]
    raise ValueError(f"metaworld.policies has no scripted policy for '{task}'")


def scripted_policy(task_id: str):
    """The Meta-World scripted policy object of ``task_id`` (``metaworld/button-press-v3`` ->
    ``SawyerButtonPressV3Policy()``); ``.get_action(obs [39]) -> action [4]``. On ``pointmass/two-goal``
    the point mass's (:func:`pbrl.envs.pointmass.scripted_two_goal`)."""
    check_task(task_id)
    if is_pointmass(task_id):
        return scripted_two_goal(task_options(task_id)["goal"])
    if not is_metaworld(task_id):
        raise ValueError(f"scripted policies exist only for Meta-World tasks, not '{task_id}'")
    base, _ = parse_task(task_id)
    if task_options(task_id)["goal"] == "hidden":  # the scripted policies read the goal from obs[-3:]
        raise ValueError(f"the scripted policy of '{base}' reads the goal from the observation, which "
                         f"'{task_id}' hides; collect on '{base}' (goal=observable) or with another policy")
    import metaworld.policies as mp

    return getattr(mp, _policy_class_name(base.split("/", 1)[1]))()


# ---------------------------------------------------------------------- the collection loop
BatchPolicy = Callable[[np.ndarray, np.ndarray], np.ndarray]


def collect_with(
    task_id: str,
    act_fn: BatchPolicy,
    n_steps: int,
    seed: int = 0,
    n_envs: int = 1,
    early_stop: int | None = None,
    noise: float | Sequence[float] = 0.0,
    progress: bool = False,
    metadata: dict | None = None,
) -> OfflineDataset:
    """Step ``n_envs`` copies of ``task_id`` in lockstep with a batched policy until ``n_steps`` steps exist.

    Args:
        task_id: registered task id.
        act_fn: ``(obs [n, obs_dim], noise [n]) -> actions [n, act_dim]`` for the n envs stepped now
            (``noise`` is each env's current episode noise level).
        n_steps: total steps over all envs (> 0).
        seed: env ``i`` is reset with ``seed + i`` first; later resets continue its RNG.
        n_envs: environments stepped together (one batched policy call per round).
        early_stop: end an episode (as a time-out) this many steps after its first success; None = never.
        noise: one level, or several used in turn by successive episodes (recorded in ``infos/noise``).
        progress: show a tqdm bar.
        metadata: stored in the dataset (``task_id`` is added).

    Returns:
        OfflineDataset with ``next_observations``, ``success`` and ``infos`` ``qpos``, ``qvel``, ``noise``.
        Episodes are stored in the order they finished; episodes still running at the end are closed
        with a time-out.
    """
    check_task(task_id)
    if not isinstance(n_steps, (int, np.integer)) or n_steps < 1:
        raise ValueError(f"n_steps must be a positive integer, got {n_steps}")
    if not isinstance(n_envs, (int, np.integer)) or n_envs < 1:
        raise ValueError(f"n_envs must be a positive integer, got {n_envs}")
    if early_stop is not None and early_stop < 0:
        raise ValueError(f"early_stop must be >= 0 steps or None, got {early_stop}")
    levels = [float(x) for x in (noise if isinstance(noise, (list, tuple, np.ndarray)) else [noise])]
    if not levels or any(x < 0 or not np.isfinite(x) for x in levels):
        raise ValueError(f"noise levels must be finite and >= 0, got {noise}")

    envs = [make_env(task_id) for _ in range(n_envs)]
    obs, states, bufs, succ_at, ep_noise = [], [], [], [], []
    n_started = 0
    for i, env in enumerate(envs):
        o, info = env.reset(seed=seed + i)
        env.action_space.seed(seed + i)
        obs.append(o)
        states.append((info["qpos"], info["qvel"]))
        bufs.append({k: [] for k in ("obs", "act", "rew", "term", "trunc", "next", "succ", "qpos", "qvel", "noise")})
        succ_at.append(None)
        ep_noise.append(levels[n_started % len(levels)])
        n_started += 1
    low, high = envs[0].action_space.low, envs[0].action_space.high
    done_eps: list[dict] = []
    total = 0
    bar = tqdm(total=int(n_steps), disable=not progress, desc=f"collect {task_id}", unit="step")
    while total < n_steps:
        acts = np.asarray(act_fn(np.stack(obs), np.asarray(ep_noise)), dtype=np.float32)
        acts = np.clip(acts.reshape(n_envs, -1), low, high)
        for i, env in enumerate(envs):
            if total >= n_steps:
                break
            nobs, r, term, trunc, info = env.step(acts[i])
            b = bufs[i]
            b["obs"].append(obs[i])
            b["act"].append(acts[i])
            b["rew"].append(r)
            b["next"].append(nobs)
            b["succ"].append(bool(info.get("success", False)))
            b["qpos"].append(states[i][0])
            b["qvel"].append(states[i][1])
            b["noise"].append(ep_noise[i])
            t = len(b["rew"])
            if b["succ"][-1] and succ_at[i] is None:
                succ_at[i] = t - 1
            if early_stop is not None and succ_at[i] is not None and t - 1 >= succ_at[i] + early_stop:
                trunc = True
            b["term"].append(bool(term))
            b["trunc"].append(bool(trunc) and not term)
            total += 1
            bar.update(1)
            if term or trunc:
                done_eps.append(b)
                o, info = env.reset()
                bufs[i] = {k: [] for k in b}
                succ_at[i] = None
                ep_noise[i] = levels[n_started % len(levels)]
                n_started += 1
                obs[i] = o
            else:
                obs[i] = nobs
            states[i] = (info["qpos"], info["qvel"])
    bar.close()
    for b in bufs:
        if b["rew"]:
            b["trunc"][-1] = not b["term"][-1]
            done_eps.append(b)
    for env in envs:
        env.close()

    def cat(k, dtype):
        return np.concatenate([np.asarray(b[k], dtype=dtype).reshape(len(b["rew"]), -1) for b in done_eps])

    meta = {"task_id": task_id, "seed": int(seed), "n_envs": int(n_envs), **(metadata or {})}
    if early_stop is not None:
        meta["early_stop"] = int(early_stop)
    meta.setdefault("noise", levels if len(levels) > 1 else levels[0])
    return OfflineDataset(
        cat("obs", np.float32),
        cat("act", np.float32),
        cat("rew", np.float32)[:, 0],
        cat("term", bool)[:, 0],
        cat("trunc", bool)[:, 0],
        next_observations=cat("next", np.float32),
        success=cat("succ", bool)[:, 0],
        infos={"qpos": cat("qpos", np.float64), "qvel": cat("qvel", np.float64), "noise": cat("noise", np.float32)[:, 0]},
        metadata=meta,
    )


def _random_fn(task_id: str, seed: int) -> BatchPolicy:
    env = make_env(task_id)
    low, high = env.action_space.low.astype(np.float32), env.action_space.high.astype(np.float32)
    env.close()
    rng = np.random.default_rng(seed)
    return lambda o, nz: rng.uniform(low, high, size=(len(o), len(low))).astype(np.float32)


def _noisy(base: Callable[[np.ndarray], np.ndarray], seed: int) -> BatchPolicy:
    """Wrap a batched deterministic policy with per-env Gaussian noise of std ``noise[i]``."""
    rng = np.random.default_rng(seed)

    def fn(o: np.ndarray, nz: np.ndarray) -> np.ndarray:
        a = np.asarray(base(o), dtype=np.float32)
        return a + rng.normal(size=a.shape).astype(np.float32) * nz[:, None].astype(np.float32)

    return fn


def _scripted_fn(task_id: str, seed: int) -> BatchPolicy:
    pol = scripted_policy(task_id)
    # the scripted policies expect Meta-World's float64 observation layout; ours is the same, in float32
    return _noisy(lambda o: np.stack([pol.get_action(x.astype(np.float64)) for x in o]), seed)


def _sb3_fn(model: Any, seed: int, deterministic: bool = True) -> BatchPolicy:
    return _noisy(lambda o: model.predict(o, deterministic=deterministic)[0], seed)


# ---------------------------------------------------------------------- SAC training (medium / expert / replay)
@dataclass
class SACRun:
    """The result of :func:`train_sac`.

    Attributes:
        task_id: the task.
        checkpoints: ``[{"step", "mean_return", "std_return", "path"}]`` in training order (the last is the
            final, ``expert`` policy).
        medium_index: index into ``checkpoints`` of the ``medium`` policy.
        replay: every transition the run collected, in order (an OfflineDataset).
        out_dir: where the checkpoints live.
    """

    task_id: str
    checkpoints: list[dict]
    medium_index: int
    replay: OfflineDataset
    out_dir: str
    seed: int = 0
    extra: dict = field(default_factory=dict)

    @property
    def expert(self) -> dict:
        """The final checkpoint."""
        return self.checkpoints[-1]

    @property
    def medium(self) -> dict:
        """The checkpoint closest to a third of the expert's return."""
        return self.checkpoints[self.medium_index]

    def load(self, which: str = "expert"):
        """Load the ``"expert"`` or ``"medium"`` SB3 SAC model."""
        from stable_baselines3 import SAC

        if which not in ("expert", "medium"):
            raise ValueError(f"which must be 'expert' or 'medium', got {which!r}")
        return SAC.load(self.expert["path"] if which == "expert" else self.medium["path"], device="cpu")

    def medium_replay(self) -> OfflineDataset:
        """Transitions collected up to the medium checkpoint (D4RL's medium-replay)."""
        n = int(self.medium["step"])
        rows = np.arange(min(n, len(self.replay)))
        ds = self.replay.take(rows)
        if not (ds.terminals[-1] or ds.timeouts[-1]):
            ds.timeouts[-1] = True
            ds = ds.take(np.arange(len(ds)))  # recompute episode bounds
        return ds

    def summary(self) -> dict:
        """JSON-friendly description (checkpoint returns, medium step)."""
        return {
            "task_id": self.task_id,
            "seed": self.seed,
            "checkpoints": [{k: v for k, v in c.items() if k != "path"} for c in self.checkpoints],
            "medium_step": int(self.medium["step"]),
            "medium_return": float(self.medium["mean_return"]),
            "expert_return": float(self.expert["mean_return"]),
            **self.extra,
        }


def _evaluate(model: Any, task_id: str, n_episodes: int, seed: int) -> np.ndarray:
    env = make_env(task_id, seed=seed)
    trajs = rollout(env, model, n_episodes=n_episodes, seed=seed, deterministic=True)
    env.close()
    return np.array([t.ret for t in trajs])


def train_sac(
    task_id: str,
    total_steps: int = 100_000,
    seed: int = 0,
    eval_every: int = 10_000,
    n_eval_episodes: int = 3,
    out_dir: str | os.PathLike | None = None,
    learning_starts: int | None = None,
    progress: bool = False,
    sac_kwargs: dict | None = None,
) -> SACRun:
    """Train SB3's SAC on the true reward of ``task_id``, recording every transition and checkpointing.

    A checkpoint is saved and evaluated (``n_eval_episodes`` deterministic episodes) every ``eval_every``
    steps and at the end. ``medium`` is the checkpoint (not the last) whose mean return is closest to
    a third of the final one's, as D4RL's "medium" is a policy at about a third of expert performance.

    Args:
        task_id: registered task id.
        total_steps: SAC environment steps (the final policy is ``expert``).
        seed: seeds SAC, the env and evaluation.
        eval_every: checkpoint period in steps.
        n_eval_episodes: evaluation episodes per checkpoint.
        out_dir: checkpoint directory (a new temporary directory when None).
        learning_starts: random-action warm-up steps of SAC (default ``min(5000, total_steps // 10)``).
        progress: tqdm bar over training steps.
        sac_kwargs: extra ``stable_baselines3.SAC`` arguments.

    Returns:
        SACRun (checkpoints, medium index, the recorded replay data).
    """
    from stable_baselines3 import SAC
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.vec_env import DummyVecEnv

    check_task(task_id)
    for name, v in (("total_steps", total_steps), ("eval_every", eval_every), ("n_eval_episodes", n_eval_episodes)):
        if not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"{name} must be a positive integer, got {v}")
    if eval_every > total_steps:
        raise ValueError(f"eval_every ({eval_every}) must not exceed total_steps ({total_steps})")
    out = Path(out_dir) if out_dir is not None else Path(tempfile.mkdtemp(prefix="pbrl_sac_"))
    out.mkdir(parents=True, exist_ok=True)
    venv = DummyVecEnv([lambda: make_env(task_id, seed=seed)])
    if learning_starts is None:
        learning_starts = min(5_000, total_steps // 10)
    kw = {"learning_starts": min(learning_starts, total_steps), "buffer_size": max(total_steps, 1000), "verbose": 0}
    kw.update(sac_kwargs or {})
    model = SAC("MlpPolicy", venv, seed=seed, device="cpu", **kw)

    rec: dict[str, list] = {k: [] for k in ("obs", "act", "rew", "term", "trunc", "next", "succ", "qpos", "qvel")}
    checkpoints: list[dict] = []

    class _Recorder(BaseCallback):
        def _on_training_start(self) -> None:
            info = self.training_env.reset_infos[0]
            self.state = (info["qpos"], info["qvel"])
            self.bar = tqdm(total=total_steps, disable=not progress, desc=f"SAC {task_id}", unit="step")

        def _on_step(self) -> bool:
            info = self.locals["infos"][0]
            done = bool(self.locals["dones"][0])
            nobs = self.locals["new_obs"][0]
            trunc = bool(info.get("TimeLimit.truncated", False))
            if done:
                nobs = info.get("terminal_observation", nobs)
            rec["obs"].append(np.array(self.model._last_obs[0]))
            rec["act"].append(np.array(self.locals["actions"][0]))
            rec["rew"].append(float(self.locals["rewards"][0]))
            rec["term"].append(done and not trunc)
            rec["trunc"].append(done and trunc)
            rec["next"].append(np.array(nobs))
            rec["succ"].append(bool(info.get("success", False)))
            rec["qpos"].append(self.state[0])
            rec["qvel"].append(self.state[1])
            nxt = self.training_env.reset_infos[0] if done else info
            self.state = (nxt["qpos"], nxt["qvel"])
            self.bar.update(1)
            if self.num_timesteps % eval_every == 0 or self.num_timesteps == total_steps:
                path = out / f"sac_step{self.num_timesteps}.zip"
                self.model.save(path)
                rets = _evaluate(self.model, task_id, n_eval_episodes, seed + 10_000)
                checkpoints.append(
                    {"step": int(self.num_timesteps), "mean_return": float(rets.mean()),
                     "std_return": float(rets.std()), "path": str(path)}
                )
                self.bar.set_postfix(eval_return=f"{rets.mean():.1f}")
            return True

        def _on_training_end(self) -> None:
            self.bar.close()

    model.learn(total_timesteps=total_steps, callback=_Recorder())
    venv.close()
    if not checkpoints or checkpoints[-1]["step"] != model.num_timesteps:
        path = out / f"sac_step{model.num_timesteps}.zip"
        model.save(path)
        rets = _evaluate(model, task_id, n_eval_episodes, seed + 10_000)
        checkpoints.append({"step": int(model.num_timesteps), "mean_return": float(rets.mean()),
                            "std_return": float(rets.std()), "path": str(path)})
    target = checkpoints[-1]["mean_return"] / 3.0
    if len(checkpoints) > 1:
        medium_index = int(np.argmin([abs(c["mean_return"] - target) for c in checkpoints[:-1]]))
    else:
        medium_index = 0
    trunc = np.asarray(rec["trunc"], bool)
    term = np.asarray(rec["term"], bool)
    if not (trunc[-1] or term[-1]):
        trunc[-1] = True
    replay = OfflineDataset(
        np.asarray(rec["obs"], np.float32),
        np.asarray(rec["act"], np.float32),
        np.asarray(rec["rew"], np.float32),
        term,
        trunc,
        next_observations=np.asarray(rec["next"], np.float32),
        success=np.asarray(rec["succ"], bool),
        infos={"qpos": np.asarray(rec["qpos"], np.float64), "qvel": np.asarray(rec["qvel"], np.float64)},
        metadata={"task_id": task_id, "policy": "sac-replay", "seed": int(seed)},
    )
    return SACRun(task_id, checkpoints, medium_index, replay, str(out), seed=int(seed))


# ---------------------------------------------------------------------- reference returns
def measure_reference_returns(
    task_id: str,
    expert: Any = None,
    n_episodes: int = 5,
    seed: int = 0,
    progress: bool = False,
) -> dict[str, float]:
    """Mean episode return of the random policy and of ``expert`` (an SB3 model, a batch policy
    ``obs [n, d] -> act [n, k]``, or ``"scripted"`` for Meta-World), over ``n_episodes`` each.

    Returns:
        ``{"ref_min_return": ..., "ref_max_return": ...}`` (``ref_max_return`` only when ``expert`` given).
    """
    check_task(task_id)
    if n_episodes < 1:
        raise ValueError(f"n_episodes must be >= 1, got {n_episodes}")
    L = episode_length(task_id)
    out: dict[str, float] = {}
    ds = collect_with(task_id, _random_fn(task_id, seed), n_episodes * L, seed=seed, n_envs=n_episodes, progress=progress)
    out["ref_min_return"] = float(ds.episode_returns().mean())
    if expert is not None:
        if isinstance(expert, str) and expert == "scripted":
            fn = _scripted_fn(task_id, seed)
        elif hasattr(expert, "predict"):
            fn = _sb3_fn(expert, seed)
        elif callable(expert):
            fn = _noisy(expert, seed)
        else:
            raise TypeError(f"expert must be 'scripted', an SB3 model or a callable, got {type(expert).__name__}")
        ds = collect_with(task_id, fn, n_episodes * L, seed=seed + 1, n_envs=n_episodes, progress=progress)
        out["ref_max_return"] = float(ds.episode_returns().mean())
    return out


# ---------------------------------------------------------------------- the public entry point
def collect(
    task_id: str,
    policy: Any = "random",
    n_steps: int = 10_000,
    seed: int = 0,
    n_envs: int = 1,
    noise: float | Sequence[float] = 0.0,
    early_stop: int | None = None,
    sac_run: SACRun | None = None,
    sac_steps: int = 100_000,
    sac_eval_every: int = 10_000,
    dataset_id: str | None = None,
    reference: dict | None = None,
    progress: bool = False,
    metadata: dict | None = None,
) -> OfflineDataset:
    """Collect an :class:`OfflineDataset` of ``n_steps`` steps on ``task_id``.

    Args:
        task_id: registered task id.
        policy: ``"random"``; ``"scripted"`` (Meta-World, with ``noise``); ``"medium"``, ``"expert"``,
            ``"medium-replay"`` (the training run's own transitions up to the medium checkpoint; its size is
            what the run collected, ``n_steps`` is ignored), ``"medium-expert"`` (``n_steps`` of each, joined),
            which use ``sac_run`` or train one with :func:`train_sac` (``sac_steps``, ``sac_eval_every``);
            an SB3 model; a path to a saved SB3 SAC ``.zip``; or a callable ``obs [n, d] -> act [n, k]``.
        n_steps: steps to collect (> 0).
        seed: seed of envs, noise and random actions.
        n_envs: envs stepped in lockstep (batched policy calls).
        noise: Gaussian action-noise std (one level, or several cycled per episode); added to any
            non-random policy.
        early_stop: end episodes this many steps after the first success (Meta-World datasets).
        dataset_id: stored as ``metadata["dataset_id"]`` (default ``"<task>/<policy>"``).
        reference: ``{"ref_min_return", "ref_max_return"}`` to store (see :func:`measure_reference_returns`).
        progress: tqdm bars.
        metadata: extra metadata.
    """
    check_task(task_id)
    if isinstance(policy, str) and policy not in POLICY_KINDS and not policy.endswith(".zip"):
        raise ValueError(f"unknown policy '{policy}'; choose one of {list(POLICY_KINDS)}, an SB3 model or a .zip path")
    name = policy if isinstance(policy, str) else type(policy).__name__
    if isinstance(policy, str) and policy.endswith(".zip"):
        if not Path(policy).exists():
            raise FileNotFoundError(f"no SB3 model file at {policy}")
        name = f"sb3:{Path(policy).stem}"
    if policy == "scripted" and not (is_metaworld(task_id) or is_pointmass(task_id)):
        raise ValueError(f"the scripted policy exists only for Meta-World tasks and pointmass/two-goal, not '{task_id}'")
    meta = {"policy": name, "dataset_id": dataset_id or f"{task_id}/{name}", "collection": "pbrl.envs.collect"}
    meta.update(reference or {})
    meta.update(metadata or {})

    def run_with(fn: BatchPolicy, steps: int, s: int, extra: dict) -> OfflineDataset:
        return collect_with(task_id, fn, steps, seed=s, n_envs=n_envs, early_stop=early_stop, noise=noise,
                            progress=progress, metadata={**meta, **extra})

    if policy == "random":
        return run_with(_random_fn(task_id, seed), n_steps, seed, {"noise": 0.0})
    if policy == "scripted":
        return run_with(_scripted_fn(task_id, seed), n_steps, seed, {})
    if isinstance(policy, str) and policy in ("medium", "expert", "medium-replay", "medium-expert"):
        run = sac_run or train_sac(task_id, sac_steps, seed=seed, eval_every=min(sac_eval_every, sac_steps),
                                   progress=progress)
        info = {"sac_medium_step": int(run.medium["step"]), "sac_medium_return": run.medium["mean_return"],
                "sac_expert_return": run.expert["mean_return"], "sac_total_steps": int(run.expert["step"])}
        if policy == "medium-replay":
            ds = run.medium_replay()
            ds.metadata = {**ds.metadata, **meta, **info}
            return ds
        if policy in ("medium", "expert"):
            return run_with(_sb3_fn(run.load(policy), seed), n_steps, seed, info)
        med = run_with(_sb3_fn(run.load("medium"), seed), n_steps, seed, info)
        exp = run_with(_sb3_fn(run.load("expert"), seed + 1), n_steps, seed + 1, info)
        return OfflineDataset.concatenate([med, exp], metadata={**med.metadata})
    if isinstance(policy, str):  # a .zip path
        from stable_baselines3 import SAC

        policy = SAC.load(policy, device="cpu")
    if hasattr(policy, "predict"):
        return run_with(_sb3_fn(policy, seed), n_steps, seed, {})
    if callable(policy):
        return run_with(_noisy(policy, seed), n_steps, seed, {})
    raise TypeError(f"policy must be a name, an SB3 model, a .zip path or a callable; got {type(policy).__name__}")
