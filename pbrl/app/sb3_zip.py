"""Policies people share: the ``.zip`` that stable-baselines3's ``model.save()`` writes (SAC, TD3, PPO, A2C,
..., trained anywhere, e.g. with rl-zoo3), loaded as a policy alone to be evaluated on a pbrl task.

:func:`load_sb3_policy` reads the zip's saved data (policy class, its keyword arguments, observation and
action spaces) and its ``policy`` weights, builds the policy without the algorithm (no replay buffer, no
optimiser, no env), and first checks that the spaces are the task's: a policy of another task gives one
line naming both. The result has SB3's ``predict(obs, deterministic=...)``, so ``pbrl eval`` and
:func:`pbrl.app.runs.evaluate_run` evaluate it like a run's own policy, on the task's true reward and success.

A policy trained with ``VecNormalize`` expects normalised observations, whose statistics SB3 keeps in a
separate file; pbrl feeds it raw observations.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from pbrl.envs import make_env
from pbrl.envs.registry import check_task

__all__ = ["load_sb3_policy", "check_spaces", "is_sb3_zip"]


def is_sb3_zip(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a file ending in ``.zip`` (an SB3 model file, not a run directory)."""
    p = Path(path)
    return p.suffix.lower() == ".zip" and p.is_file()


def _describe(space: Any) -> str:
    shape = getattr(space, "shape", None)
    return f"{type(space).__name__}{tuple(shape) if shape is not None else ''}"


def check_spaces(saved_obs: Any, saved_act: Any, task: str, source: str = "the policy") -> None:
    """Raise one ``ValueError`` unless the saved observation and action spaces equal ``task``'s (type and
    shape; a Box action space also its bounds)."""
    env = make_env(task)
    try:
        obs_space, act_space = env.observation_space, env.action_space
    finally:
        env.close()
    same_obs = type(saved_obs) is type(obs_space) and getattr(saved_obs, "shape", None) == obs_space.shape
    same_act = type(saved_act) is type(act_space) and getattr(saved_act, "shape", None) == act_space.shape
    if not (same_obs and same_act):
        raise ValueError(f"{source} was trained on observations {_describe(saved_obs)} and actions "
                         f"{_describe(saved_act)}, but {task} has observations {_describe(obs_space)} and actions "
                         f"{_describe(act_space)}; evaluate it with --task set to the task it was trained on")
    if hasattr(act_space, "low") and not (np.allclose(saved_act.low, act_space.low)
                                          and np.allclose(saved_act.high, act_space.high)):
        raise ValueError(f"{source} acts in [{np.min(saved_act.low):g}, {np.max(saved_act.high):g}] but {task}'s "
                         f"actions are in [{np.min(act_space.low):g}, {np.max(act_space.high):g}]; it was trained "
                         "with other action bounds (a rescaling wrapper): evaluate it on that env")


def load_sb3_policy(path: str | os.PathLike, task: str) -> Any:
    """The policy of an SB3 model ``.zip`` (``model.save(path)`` of any SB3 algorithm), checked against
    ``task``'s spaces (:func:`check_spaces`).

    Args:
        path: the ``.zip`` file.
        task: a pbrl task id (``pbrl tasks``) the policy was trained on.

    Returns:
        The SB3 policy (a ``torch.nn.Module`` with ``predict(obs, deterministic=...)``), on the CPU, in
        evaluation mode.

    Raises:
        ValueError: not a readable SB3 model file, or spaces that are not the task's.
    """
    import zipfile

    from stable_baselines3.common.save_util import load_from_zip_file

    check_task(task)
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"no such file '{path}'; give the .zip that stable-baselines3's model.save() wrote")
    try:
        data, params, _ = load_from_zip_file(path, device="cpu")
    except (zipfile.BadZipFile, KeyError, ValueError, EOFError, RuntimeError) as e:
        raise ValueError(f"'{path}' is not a stable-baselines3 model file ({type(e).__name__}: "
                         f"{' '.join(str(e).split())}); give the .zip that model.save() wrote") from None
    needed = ("policy_class", "observation_space", "action_space")
    if data is None or any(k not in data for k in needed) or "policy" not in params:
        raise ValueError(f"'{path}' has no SB3 policy in it (no {', '.join(needed)} or policy weights); give the "
                         ".zip that model.save() wrote")
    check_spaces(data["observation_space"], data["action_space"], task, source=f"'{path.name}'")
    policy = data["policy_class"](data["observation_space"], data["action_space"], lambda _: 0.0,
                                  **(data.get("policy_kwargs") or {}))
    policy.load_state_dict(params["policy"])
    policy.set_training_mode(False)
    return policy
