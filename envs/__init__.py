"""Environments and data for pbrl: the task registry, rollouts, datasets and scripted policies.

Installed as ``pbrl.envs``.
"""

from pbrl.envs.registry import episode_length, is_dmc, is_metaworld, list_tasks, make_env, make_vec_env
from pbrl.envs.rollout import rollout

__all__ = ["make_env", "make_vec_env", "list_tasks", "episode_length", "is_metaworld", "is_dmc", "rollout"]
