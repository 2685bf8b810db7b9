"""The glue between pbrl and stable-baselines3 (SB3 stays unforked), as swappable parts.

* :mod:`.wrapper`: :class:`LearnedRewardVecEnv`, the VecEnv wrapper that gives the learner ``r_hat(s, a)``,
  keeps the true reward in ``info["true_reward"]`` and records complete episodes for the teacher;
* :mod:`.feedback`: :class:`PreferenceCallback` (B-Pref's schedule, queries, labels, refits, relabelling),
  with its parts :class:`QueryPool` / :class:`AllEpisodes` and :class:`FeedbackHook`;
* :mod:`.ratings`: :class:`RatingCallback`, the same loop asking a rating teacher about single segments;
* :mod:`.replay`: :class:`PbrlReplayBuffer` (sampler, sample-time reward and reward-on-add hooks) and
  :func:`relabel_replay_buffer`;
* :mod:`.entropy`: PEBBLE's k-NN state entropy (:func:`knn_state_entropy`, :class:`StateEntropyReward`);

What makes an algorithm itself (PEBBLE's pre-training and critic reset, SURF's loss, QPA's pool and
replay, RUNE's bonus) lives in that algorithm's file under :mod:`pbrl.agents`.
"""

from pbrl.online.entropy import StateEntropyReward, knn_state_entropy
from pbrl.online.feedback import AllEpisodes, FeedbackHook, PreferenceCallback, QueryPool
from pbrl.online.ratings import RatingCallback
from pbrl.online.replay import PbrlReplayBuffer, relabel_replay_buffer, unscale_action
from pbrl.online.wrapper import LearnedRewardVecEnv, find_wrapper

__all__ = [
    "knn_state_entropy",
    "StateEntropyReward",
    "LearnedRewardVecEnv",
    "find_wrapper",
    "PbrlReplayBuffer",
    "relabel_replay_buffer",
    "unscale_action",
    "PreferenceCallback",
    "RatingCallback",
    "QueryPool",
    "AllEpisodes",
    "FeedbackHook",
]
