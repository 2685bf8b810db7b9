"""The task registry: one id scheme for gymnasium's MuJoCo tasks, every Meta-World MT50 task and DMC.

Ids:

* ``mujoco/<Name>-v5`` and ``mujoco/<Name>-v4`` for gymnasium's MuJoCo tasks (``mujoco/HalfCheetah-v5``);
* ``metaworld/<task>-v3`` for the 50 Meta-World tasks (``metaworld/button-press-v3``);
* ``dmc/<domain>-<task>`` for the DeepMind Control Suite (``dmc/walker-walk``, ``dmc/cheetah-run``,
  ``dmc/quadruped-walk``; see :mod:`pbrl.envs.dmc`), listed when the ``dmc`` extra is installed;
* ``pointmass/two-goal``: a point mass with two goals for users who want different things
  (:mod:`pbrl.envs.pointmass`; option ``goal=either|0|1`` picks whose reward and success it reports).

Task options follow the id after a colon, comma-separated ``name=value`` pairs (no spaces, no quoting in a
shell): ``metaworld/button-press-v3:reward=v1,goal=hidden``. Meta-World takes two (:data:`TASK_OPTIONS`):

* ``reward``: the reward function version of Meta-World v3, ``v2`` (default: the dense rewards of Meta-World's
  V2 environments, which B-Pref, PEBBLE, SURF, RUNE, QPA, RIME, IPL and CPL trained on) or ``v1`` (the
  original rewards of Meta-World's V1 environments);
* ``goal``: ``observable`` (default; the goal position is the last 3 observation entries) or ``hidden``
  (those entries are zeros, as in Meta-World's ``ALL_V2_ENVIRONMENTS`` classes that B-Pref's and IPL's code
  instantiate). The evidence and why the default is ``observable`` are in ``docs/tasks.md``.

An id without options is the same task as the one with every default spelled out.

Every env made here

* returns float32 observations,
* reports ``info["success"]`` as a bool at every step (Meta-World's signal; always False for locomotion and DMC),
* reports the simulator state ``info["qpos"]``, ``info["qvel"]`` (for rendering clips of segments),
* has a fixed episode length (MuJoCo: gymnasium's time limit, 1000 steps for locomotion; Meta-World: 500;
  DMC: 1000),
* randomises Meta-World goals between episodes (the benchmark protocol), drawn from the env's seeded RNG,
* is reproducible from its seed: ``make_env(id, seed=s)`` then ``reset()`` gives the same episode.
"""

from __future__ import annotations

import difflib
import os
from functools import lru_cache
from typing import Any

import gymnasium as gym
import numpy as np

from pbrl.envs.dmc import DMC_EPISODE_LENGTH, INSTALL_HINT, dmc_available, dmc_tasks, make_dmc
from pbrl.envs.pointmass import EPISODE_LENGTH as POINTMASS_EPISODE_LENGTH
from pbrl.envs.pointmass import GOAL_OPTIONS, PointMassTwoGoal
from pbrl.envs.pointmass import TASK_ID as POINTMASS_TASK
from pbrl.validation import check_int

__all__ = ["make_env", "make_vec_env", "list_tasks", "PbrlInfoWrapper", "episode_length", "is_metaworld", "is_dmc",
           "is_pointmass", "parse_task", "task_options", "TASK_OPTIONS"]

MUJOCO_NAMES = (
    "Ant",
    "HalfCheetah",
    "Hopper",
    "Humanoid",
    "HumanoidStandup",
    "InvertedDoublePendulum",
    "InvertedPendulum",
    "Pusher",
    "Reacher",
    "Swimmer",
    "Walker2d",
)
METAWORLD_EPISODE_LENGTH = 500
# gymnasium's Pusher-v4 needs mujoco<3, which metaworld's pinned mujoco excludes
_UNSUPPORTED = {("Pusher", "v4")}

TASK_OPTIONS: dict[str, dict[str, tuple[str, ...]]] = {
    "metaworld": {"reward": ("v2", "v1"), "goal": ("observable", "hidden")},
    "pointmass": {"goal": GOAL_OPTIONS},
}
"""Options each suite's task ids take (``id:name=value,...``): option name -> allowed values, default first."""


def parse_task(task_id: str) -> tuple[str, dict[str, str]]:
    """Split ``task_id`` into the registered id and its options, checking the options' syntax, names and values.

    ``"metaworld/button-press-v3:reward=v1"`` -> ``("metaworld/button-press-v3", {"reward": "v1"})``; an id
    without options gives ``{}``. Raises one ``ValueError`` naming the bad option and the allowed ones (the
    base id itself is checked by :func:`check_task`).
    """
    if not isinstance(task_id, str):
        raise TypeError(f"task id must be a string like 'mujoco/HalfCheetah-v5', got {type(task_id).__name__}")
    base, sep, rest = task_id.partition(":")
    if not sep:
        return task_id, {}
    suite = base.split("/", 1)[0]
    allowed = TASK_OPTIONS.get(suite)
    if allowed is None:
        raise ValueError(f"task '{base}' takes no options (':{rest}'); only "
                         f"{', '.join(f'{k}/...' for k in TASK_OPTIONS)} tasks do; drop ':{rest}'")
    spec = ", ".join(f"{k}={'|'.join(v)}" for k, v in allowed.items())
    opts: dict[str, str] = {}
    for item in rest.split(","):
        name, eq, value = item.partition("=")
        if not eq or not name or not value:
            raise ValueError(f"task option '{item}' of '{task_id}' must look like name=value, e.g. "
                             f"{base}:reward=v1; {suite} options: {spec}")
        if name not in allowed:
            close = difflib.get_close_matches(name, list(allowed), n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise ValueError(f"unknown {suite} task option '{name}' in '{task_id}'{hint}; allowed: {spec}")
        if value not in allowed[name]:
            raise ValueError(f"unknown value '{value}' of {suite} task option '{name}' in '{task_id}'; "
                             f"allowed: {name}={'|'.join(allowed[name])}")
        if name in opts:
            raise ValueError(f"task option '{name}' is given twice in '{task_id}'; give it once")
        opts[name] = value
    return base, opts


def task_options(task_id: str) -> dict[str, str]:
    """Every option of ``task_id``'s suite with its value: the id's own, else the default
    (``task_options("metaworld/reach-v3:goal=hidden")`` -> ``{"reward": "v2", "goal": "hidden"}``)."""
    base, opts = parse_task(task_id)
    allowed = TASK_OPTIONS.get(base.split("/", 1)[0], {})
    return {k: opts.get(k, v[0]) for k, v in allowed.items()}


@lru_cache(maxsize=1)
def _metaworld_tasks() -> tuple[str, ...]:
    import metaworld

    return tuple(sorted(metaworld.ALL_V3_ENVIRONMENTS))


@lru_cache(maxsize=1)
def _base_tasks() -> frozenset[str]:
    ids = [f"mujoco/{n}-{v}" for v in ("v5", "v4") for n in MUJOCO_NAMES if (n, v) not in _UNSUPPORTED]
    return frozenset(ids + [f"metaworld/{t}" for t in _metaworld_tasks()] + [POINTMASS_TASK])


def list_tasks(prefix: str | None = None) -> list[str]:
    """All registered task ids, optionally only those starting with ``prefix`` (``"mujoco"``, ``"metaworld"``,
    ``"dmc"``). DMC ids are listed when dm_control is installed (the ``dmc`` extra)."""
    ids = set(_base_tasks())
    if not prefix or "dmc/".startswith(prefix) or prefix.startswith("dmc/"):  # else skip importing dm_control
        ids.update(f"dmc/{d}-{t}" for d, t in dmc_tasks())
    ids = sorted(ids)
    if prefix:
        ids = [i for i in ids if i.startswith(prefix)]
    return ids


def is_metaworld(task_id: str) -> bool:
    """Whether ``task_id`` names a Meta-World task (``metaworld/<task>-v3``)."""
    return task_id.startswith("metaworld/")


def is_dmc(task_id: str) -> bool:
    """Whether ``task_id`` names a DeepMind Control Suite task (``dmc/<domain>-<task>``)."""
    return task_id.startswith("dmc/")


def is_pointmass(task_id: str) -> bool:
    """Whether ``task_id`` names the two-goal point mass (``pointmass/two-goal``, :mod:`pbrl.envs.pointmass`)."""
    return task_id.startswith("pointmass/")


def check_task(task_id: str) -> str:
    """Return ``task_id`` if registered (with valid options, :func:`parse_task`); otherwise raise a ValueError
    naming the closest ids or the allowed options."""
    full = task_id
    task_id, _ = parse_task(task_id)  # options: syntax, names and values
    if task_id in _base_tasks():
        return full
    if is_dmc(task_id) and not dmc_available():
        raise ValueError(f"'{task_id}': {INSTALL_HINT}")
    tasks = list_tasks()
    if task_id in tasks:
        return full
    close = difflib.get_close_matches(task_id, tasks, n=5, cutoff=0.5)
    if not close:  # try the bare name, e.g. "hopper" -> mujoco/Hopper-v5
        low = task_id.lower().split("/")[-1]
        close = [t for t in tasks if low.split("-v")[0] in t.lower()][:5]
    hint = f"; did you mean {', '.join(close)}?" if close else "; run `pbrl tasks` to list them"
    raise ValueError(f"unknown task id '{task_id}'{hint}")


def episode_length(task_id: str) -> int:
    """The fixed episode length (time limit) of a task."""
    check_task(task_id)
    if is_metaworld(task_id):
        return METAWORLD_EPISODE_LENGTH
    if is_dmc(task_id):
        return DMC_EPISODE_LENGTH
    if is_pointmass(task_id):
        return POINTMASS_EPISODE_LENGTH
    spec = gym.spec(task_id.split("/", 1)[1])
    return int(spec.max_episode_steps or 1000)


class PbrlInfoWrapper(gym.Wrapper):
    """float32 observations, ``info["success"]`` (bool) and the simulator state in ``info`` at every step."""

    def __init__(self, env: gym.Env, task_id: str):
        super().__init__(env)
        self.task_id = task_id
        space = env.observation_space
        self.observation_space = gym.spaces.Box(
            low=space.low.astype(np.float32), high=space.high.astype(np.float32), dtype=np.float32
        )

    def _state(self, info: dict[str, Any]) -> dict[str, Any]:
        data = self.env.unwrapped.data
        info["qpos"] = np.array(data.qpos, dtype=np.float64)
        info["qvel"] = np.array(data.qvel, dtype=np.float64)
        info["success"] = bool(info.get("success", False))
        return info

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        obs, info = self.env.reset(seed=seed, options=options)
        return np.asarray(obs, dtype=np.float32), self._state(dict(info))

    def step(self, action):
        obs, rew, term, trunc, info = self.env.step(action)
        return np.asarray(obs, dtype=np.float32), float(rew), bool(term), bool(trunc), self._state(dict(info))


class _MetaWorldSeeding(gym.Wrapper):
    """Meta-World ignores ``reset(seed=...)``; route it to ``env.seed`` and keep goals random between episodes."""

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        if seed is not None:
            self.env.unwrapped.seed(int(seed))
        return self.env.reset(options=options)


def _make_metaworld(task: str, seed: int | None, render_mode: str | None, camera_name: str | None = None,
                    options: dict[str, str] | None = None):
    import metaworld

    opts = {k: (options or {}).get(k, v[0]) for k, v in TASK_OPTIONS["metaworld"].items()}
    if opts["goal"] == "hidden":  # goal entries of the observation are zeros
        env = metaworld.ALL_V3_ENVIRONMENTS_GOAL_HIDDEN[f"{task}-goal-hidden"](seed=seed if seed is not None else 0)
        env.render_mode = render_mode  # the goal-hidden class takes no render_mode argument
    else:
        env = metaworld.ALL_V3_ENVIRONMENTS_GOAL_OBSERVABLE[f"{task}-goal-observable"](
            seed=seed if seed is not None else 0, render_mode=render_mode)
    # read by every v3 env's compute_reward; the goal-hidden/observable classes cannot take it as an argument
    env.reward_function_version = opts["reward"]
    if camera_name is not None:
        env.camera_name = camera_name
    # benchmark protocol: a new goal each episode, drawn from the env's own seeded RNG
    env._freeze_rand_vec = False
    env.seeded_rand_vec = True
    env = _MetaWorldSeeding(env)
    env = gym.wrappers.TimeLimit(env, max_episode_steps=METAWORLD_EPISODE_LENGTH)
    return env


def make_env(task_id: str, seed: int | None = None, render_mode: str | None = None,
             max_episode_steps: int | None = None, **kwargs) -> gym.Env:
    """Make one environment of the registry.

    Args:
        task_id: ``mujoco/<Name>-v5`` / ``-v4``, ``metaworld/<task>-v3`` or ``dmc/<domain>-<task>``
            (see :func:`list_tasks`), with options after a colon where the suite takes them
            (``metaworld/button-press-v3:reward=v1,goal=hidden``; :data:`TASK_OPTIONS`).
        seed: seeds the env's RNG now (the first ``reset()`` uses it) and its action space.
        render_mode: ``None`` or ``"rgb_array"`` (offscreen; set ``MUJOCO_GL=osmesa`` without a GPU).
        max_episode_steps: a time limit for every suite (default ``None``: the task's own, see
            :func:`episode_length`): episodes are truncated after this many steps.
        **kwargs: passed to ``gymnasium.make`` for MuJoCo tasks (``width``, ``height``, ...); DMC tasks take
            ``width``, ``height`` and ``camera_id``.

    Returns:
        A ``gymnasium.Env`` wrapped by :class:`PbrlInfoWrapper`.
    """
    check_task(task_id)
    if max_episode_steps is not None:
        check_int("max_episode_steps", max_episode_steps, 1)
    limit = {} if max_episode_steps is None else {"max_episode_steps": max_episode_steps}
    if render_mode is not None and "MUJOCO_GL" not in os.environ:
        os.environ["MUJOCO_GL"] = "egl" if os.path.exists("/dev/nvidia0") else "osmesa"
    base, options = parse_task(task_id)
    if is_metaworld(task_id):
        env = _make_metaworld(base.split("/", 1)[1], seed, render_mode, kwargs.pop("camera_name", None), options)
        if kwargs:
            raise TypeError(f"unexpected arguments for a Meta-World task: {sorted(kwargs)}")
    elif is_dmc(task_id):
        env = make_dmc(task_id.split("/", 1)[1], render_mode=render_mode, **limit, **kwargs)
    elif is_pointmass(task_id):
        if render_mode is not None or kwargs:
            raise ValueError(f"'{task_id}' takes no render_mode and no arguments (it has no renderer), got "
                             f"{sorted(kwargs) + (['render_mode'] if render_mode else [])}")
        env = gym.wrappers.TimeLimit(PointMassTwoGoal(options.get("goal", GOAL_OPTIONS[0])),
                                     max_episode_steps=POINTMASS_EPISODE_LENGTH)
    else:
        env = gym.make(task_id.split("/", 1)[1], render_mode=render_mode, **limit, **kwargs)
    if limit and (is_metaworld(task_id) or is_pointmass(task_id)):  # suites that take no limit argument
        env = gym.wrappers.TimeLimit(env, max_episode_steps=max_episode_steps)
    env = PbrlInfoWrapper(env, task_id)
    if seed is not None:
        env.reset(seed=int(seed))  # seed the env RNG; the first user reset() continues from it
        env.action_space.seed(int(seed))
    return env


def make_vec_env(task_id: str, n_envs: int = 1, seed: int | None = None, monitor: bool = True, **kwargs):
    """An SB3 ``DummyVecEnv`` of ``n_envs`` copies (env i seeded ``seed + i``), each under SB3's ``Monitor``.

    ``info["success"]``, ``info["qpos"]``, ``info["qvel"]`` pass through to the VecEnv's infos.
    """
    from stable_baselines3.common.monitor import Monitor
    from stable_baselines3.common.vec_env import DummyVecEnv

    check_task(task_id)
    if not isinstance(n_envs, int) or n_envs < 1:
        raise ValueError(f"n_envs must be a positive integer, got {n_envs}")

    def factory(i: int):
        def _thunk():
            env = make_env(task_id, seed=None if seed is None else seed + i, **kwargs)
            return Monitor(env, info_keywords=("success",)) if monitor else env

        return _thunk

    venv = DummyVecEnv([factory(i) for i in range(n_envs)])
    if seed is not None:
        venv.seed(seed)
    return venv
