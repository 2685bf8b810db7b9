"""DeepMind Control Suite tasks as gymnasium envs: ``dmc/<domain>-<task>`` (``dmc/walker-walk``).

B-Pref (Lee et al., 2021) and PEBBLE evaluate on DMC's walker-walk, cheetah-run and quadruped-walk; every
domain/task pair of ``dm_control.suite.ALL_TASKS`` is registered except the two LQR tasks (no time limit,
unbounded cost). Each env made here

* has a flat float32 observation: DMC's observation dict concatenated in the suite's key order (as dmc2gym
  does), and DMC's action bounds ([-1, 1] for the suite) as a float32 Box;
* runs 1000 control steps per episode with action repeat 1, as in B-Pref. Every suite task ends after 1000
  control steps by DMC's own time limit (``time_limit / control_timestep``); here DMC's limit is switched
  off and :data:`DMC_EPISODE_LENGTH` is a gymnasium ``TimeLimit``, so an episode ends with ``truncated``;
  ``terminated`` is set only when a task signals termination (discount 0; none of the locomotion tasks do);
* gives DMC's reward, in [0, 1] per step, so an episode return is in [0, 1000];
* has no success signal: ``info["success"]`` is always False, as for gymnasium's locomotion tasks;
* is seeded through ``reset(seed=...)``: the seed seeds the env's ``np_random``, which seeds DMC's task RNG
  (the one that draws initial states), so the same seed gives the same episode;
* exposes the MuJoCo state as gymnasium's MuJoCo envs do: ``unwrapped.model`` / ``unwrapped.data`` are the
  ``mujoco.MjModel`` / ``mujoco.MjData`` that DMC's physics steps (the registry's ``info["qpos"]`` /
  ``info["qvel"]`` come from them, the clip renderer sets states into them, and run checkpoints save them).
  Assigning ``unwrapped.data = other_mjdata`` copies that state into the physics in place (how
  ``pbrl.app.runs.set_env_state`` restores a checkpoint), and the task RNG is a plain attribute, so a restored
  env continues bit for bit;
* renders ``rgb_array`` frames offscreen with gymnasium's MuJoCo renderer (``width``, ``height``,
  ``camera_id``; camera 0, or 2 for quadruped, as DrQ and PEBBLE's videos use).

dm_control is an optional dependency: ``pip install 'pbrl[dmc]'`` (dm-control 1.0.28, the newest release
that accepts the ``mujoco==3.3.0`` that Meta-World pins).
"""

from __future__ import annotations

import importlib.util
import os
import warnings
from functools import lru_cache

import gymnasium as gym
import numpy as np

from pbrl.extras import MissingExtra

__all__ = ["DmcEnv", "DMC_EPISODE_LENGTH", "dmc_available", "dmc_tasks", "make_dmc", "INSTALL_HINT"]

#: control steps per episode (every suite task's own limit: time_limit / control_timestep = 1000)
DMC_EPISODE_LENGTH = 1000
#: the one-line error when dm_control (the ``dmc`` extra) is missing
INSTALL_HINT = str(MissingExtra("dm_control", "DeepMind Control tasks (dmc/...)"))
_EXCLUDED_DOMAINS = ("lqr",)
_DEFAULT_CAMERA = {"quadruped": 2}


def dmc_available() -> bool:
    """Whether ``dm_control`` is installed (checked without importing it)."""
    return importlib.util.find_spec("dm_control") is not None


def _suite():
    """``dm_control.suite``, imported with pbrl's offscreen GL default and numpy-2 compatibility."""
    if not dmc_available():
        raise MissingExtra("dm_control", "DeepMind Control tasks (dmc/...)")
    # dm_control picks its GL backend at import; without MUJOCO_GL it tries GLFW first, which imports
    # PyOpenGL for a display that a headless machine lacks and then breaks gymnasium's offscreen renderer
    os.environ.setdefault("MUJOCO_GL", "egl" if os.path.exists("/dev/nvidia0") else "osmesa")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from dm_control import suite
    _patch_numpy2()
    return suite


def _patch_numpy2() -> None:
    """dm-control 1.0.28's quadruped calls ``np.in1d``, which NumPy 2.4 removed; use ``np.isin`` there
    (the same result for 1-D input). Later dm-control releases that fix this need mujoco>=3.3.2."""
    from dm_control.suite import quadruped

    fn = quadruped.Physics._get_sensor_names
    if hasattr(np, "in1d") or "in1d" not in fn.__code__.co_names:
        return

    def _get_sensor_names(self, *sensor_types):
        try:
            return self._sensor_types_to_names[sensor_types]
        except KeyError:
            [sensor_ids] = np.where(np.isin(self.model.sensor_type, sensor_types))
            names = [self.model.id2name(s_id, "sensor") for s_id in sensor_ids]
            self._sensor_types_to_names[sensor_types] = names
            return names

    quadruped.Physics._get_sensor_names = _get_sensor_names


@lru_cache(maxsize=1)
def dmc_tasks() -> tuple[tuple[str, str], ...]:
    """The registered ``(domain, task)`` pairs (empty when dm_control is not installed)."""
    if not dmc_available():
        return ()
    return tuple(sorted((d, t) for d, t in _suite().ALL_TASKS if d not in _EXCLUDED_DOMAINS))


def _split(task: str) -> tuple[str, str]:
    domain, _, name = task.partition("-")
    return domain, name


class DmcEnv(gym.Env):
    """One DMC suite task as a gymnasium env (see the module docstring for its conventions).

    Args:
        domain, task: a pair of ``dm_control.suite.ALL_TASKS`` (``"walker"``, ``"walk"``).
        render_mode: ``None`` or ``"rgb_array"``.
        width, height: frame size of ``render()`` (default 480x480).
        camera_id: MuJoCo camera of ``render()`` (default 0, 2 for quadruped; -1 is the free camera).
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 30}

    def __init__(
        self,
        domain: str,
        task: str,
        render_mode: str | None = None,
        width: int = 480,
        height: int = 480,
        camera_id: int | None = None,
    ):
        suite = _suite()
        if (domain, task) not in dmc_tasks():
            raise ValueError(f"unknown DMC task '{domain}-{task}'; see pbrl.envs.list_tasks('dmc')")
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"DMC tasks render only 'rgb_array' (offscreen), got render_mode={render_mode!r}")
        self.domain, self.task = domain, task
        self._dmc = suite.load(domain, task, task_kwargs={"time_limit": float("inf")})
        self._physics = self._dmc.physics
        self._task_rng: np.random.RandomState = self._dmc.task.random
        self.dt = float(self._dmc.control_timestep())
        self.metadata = {**self.metadata, "render_fps": int(round(1.0 / self.dt))}
        self.spec = gym.envs.registration.EnvSpec(
            id=f"dmc/{domain}-{task}", entry_point="pbrl.envs.dmc:DmcEnv", max_episode_steps=DMC_EPISODE_LENGTH,
            kwargs={"domain": domain, "task": task},
        )
        aspec = self._dmc.action_spec()
        self.action_space = gym.spaces.Box(
            low=np.asarray(aspec.minimum, np.float32) * np.ones(aspec.shape, np.float32),
            high=np.asarray(aspec.maximum, np.float32) * np.ones(aspec.shape, np.float32),
            dtype=np.float32,
        )
        self._obs_keys = list(self._dmc.observation_spec())
        dim = sum(int(np.prod(s.shape)) for s in self._dmc.observation_spec().values())
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (dim,), np.float32)
        self.render_mode = render_mode
        if render_mode is not None:  # (no attribute without it: a checkpoint must not carry a None renderer)
            from gymnasium.envs.mujoco.mujoco_rendering import MujocoRenderer

            model = self.model
            model.vis.global_.offwidth = max(model.vis.global_.offwidth, int(width))
            model.vis.global_.offheight = max(model.vis.global_.offheight, int(height))
            if camera_id is None:
                camera_id = _DEFAULT_CAMERA.get(domain, 0) if model.ncam else -1
            if not -1 <= camera_id < model.ncam:
                raise ValueError(f"camera_id must be in [-1, {model.ncam - 1}] for {domain}, got {camera_id}")
            self.mujoco_renderer = MujocoRenderer(model, self.data, width=int(width), height=int(height),
                                                  camera_id=int(camera_id))

    # ------------------------------------------------------------------ MuJoCo state
    @property
    def model(self):
        """The ``mujoco.MjModel`` of DMC's physics."""
        return self._physics.model.ptr

    @property
    def data(self):
        """The ``mujoco.MjData`` of DMC's physics (the live one: writes to it move the simulation)."""
        return self._physics.data.ptr

    @data.setter
    def data(self, other) -> None:
        """Copy the integration state of ``other`` (a ``mujoco.MjData`` of the same model) into the physics,
        then recompute the derived quantities (positions, contacts) without touching that state."""
        import mujoco

        m = self.model
        spec = mujoco.mjtState.mjSTATE_INTEGRATION
        buf = np.empty(mujoco.mj_stateSize(m, spec))
        mujoco.mj_getState(m, other, buf, spec)
        mujoco.mj_setState(m, self.data, buf, spec)
        mujoco.mj_forward(m, self.data)
        mujoco.mj_setState(m, self.data, buf, spec)  # forward wrote the solver's warm start

    def _link_rng(self) -> None:
        # a checkpoint restore replaces the attribute with a copy; DMC's task must draw from that copy
        task_rng = self._dmc.task.random
        if task_rng is not self._task_rng:
            task_rng.set_state(self._task_rng.get_state())
            self._task_rng = task_rng

    def _flat(self, observation) -> np.ndarray:
        return np.concatenate([np.asarray(observation[k], np.float64).ravel() for k in self._obs_keys]).astype(np.float32)

    # ------------------------------------------------------------------ gymnasium API
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self._link_rng()
        if seed is not None:
            self._task_rng.seed(int(self.np_random.integers(0, 2**32 - 1)))
        ts = self._dmc.reset()
        return self._flat(ts.observation), {}

    def step(self, action):
        self._link_rng()
        action = np.asarray(action, dtype=np.float64).reshape(self.action_space.shape)
        ts = self._dmc.step(action)
        terminated = ts.last() and ts.discount == 0.0
        return self._flat(ts.observation), float(ts.reward or 0.0), bool(terminated), False, {}

    def render(self):
        renderer = getattr(self, "mujoco_renderer", None)
        if renderer is None:
            raise RuntimeError("make the env with render_mode='rgb_array' to render it")
        return renderer.render("rgb_array")

    def close(self) -> None:
        renderer = vars(self).pop("mujoco_renderer", None)
        if renderer is not None:
            renderer.close()


def make_dmc(task: str, render_mode: str | None = None, max_episode_steps: int | None = None, **kwargs) -> gym.Env:
    """``task`` = ``"<domain>-<task>"`` (``"walker-walk"``) -> :class:`DmcEnv` under a ``TimeLimit`` of
    ``max_episode_steps`` (default :data:`DMC_EPISODE_LENGTH`). ``kwargs``: ``width``, ``height``, ``camera_id``."""
    unknown = sorted(set(kwargs) - {"width", "height", "camera_id"})
    if unknown:
        raise TypeError(f"unexpected arguments for a DMC task: {unknown} (DMC tasks take width, height, camera_id)")
    domain, name = _split(task)
    env = DmcEnv(domain, name, render_mode=render_mode, **kwargs)
    return gym.wrappers.TimeLimit(env, max_episode_steps=int(max_episode_steps or DMC_EPISODE_LENGTH))
