"""Compatibility names: the SB3 glue now lives in :mod:`pbrl.online` (one module per job).

``from pbrl.sb3 import LearnedRewardVecEnv, PreferenceCallback, ...`` keeps working; new code imports
from :mod:`pbrl.online`. ``reset_sac_critic`` is PEBBLE's and lives in :mod:`pbrl.agents.pebble`.
"""

from __future__ import annotations

from typing import Any

from pbrl.online import (  # noqa: F401 - re-exported names
    AllEpisodes,
    FeedbackHook,
    LearnedRewardVecEnv,
    PbrlEvalCallback,
    PbrlReplayBuffer,
    PreferenceCallback,
    QueryPool,
    StateEntropyReward,
    find_wrapper,
    knn_state_entropy,
    relabel_replay_buffer,
    unscale_action,
)

__all__ = [
    "knn_state_entropy",
    "StateEntropyReward",
    "LearnedRewardVecEnv",
    "PbrlReplayBuffer",
    "relabel_replay_buffer",
    "unscale_action",
    "PreferenceCallback",
    "PbrlEvalCallback",
    "find_wrapper",
]


def __getattr__(name: str) -> Any:
    if name == "reset_sac_critic":
        from pbrl.agents.pebble import reset_sac_critic

        return reset_sac_critic
    raise AttributeError(f"module 'pbrl.sb3' has no attribute {name!r}")
