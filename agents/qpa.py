"""QPA: query-policy alignment for preference-based RL, on top of PEBBLE.

Hu, Li, Zhan, Jia & Zhang, "Query-Policy Misalignment in Preference-Based Reinforcement Learning",
ICLR 2024.

What makes QPA, all in this file (the loss is PEBBLE's Bradley-Terry, Eqs. 1-2 of Lee et al. 2021):

* **Policy-aligned query selection** (Sec. 4.1; :class:`RecentEpisodes`): queries are drawn uniformly
  from the last ``recent_episodes`` (K) episodes, a near on-policy pool, so that the labels inform the
  reward where the current policy goes. The authors' scripts use K = 10 on DMC and K = 30-60 on
  Meta-World (30 for drawer-open and door-unlock, 60 for door-open); pbrl's default is 30 for
  ``metaworld/*`` tasks and 10 otherwise.
* **Hybrid experience replay** (Sec. 4.2; :class:`HybridReplay`): while feedback is being collected, a
  share ``her_ratio`` (0.5) of every SAC batch comes from the most recent ``K * episode_length``
  transitions, the rest uniformly from the whole buffer. During unsupervised pre-training SAC samples
  uniformly, as in the authors' code: hybrid replay starts with the first reward update.
* **Data augmentation** (Sec. 4.3): random sub-snippet pairs of the labelled segments keep the pair's
  label; here the reward trainer's temporal crop (:class:`~pbrl.reward_models.TemporalCrop`), redrawn at
  every minibatch instead of QPA's fixed ``data_aug_ratio`` copies.
* The authors train a single reward network (``ensemble_size=1``): with uniform queries an ensemble
  buys nothing. pbrl's QPA default is one member.
"""

from __future__ import annotations

import numpy as np

from pbrl.agents.online_base import REWARD_MODEL_DEFAULTS
from pbrl.agents.pebble import PEBBLE
from pbrl.online import LearnedRewardVecEnv, PbrlReplayBuffer, PreferenceCallback, QueryPool
from pbrl.reward_models.training import BradleyTerryLoss, TemporalCrop
from pbrl.segments import Trajectory
from pbrl.validation import check_int

__all__ = ["QPA", "RecentEpisodes", "HybridReplay"]


class RecentEpisodes(QueryPool):
    """QPA's policy-aligned query pool: the last ``k`` complete episodes."""

    name = "recent"

    def __init__(self, k: int):
        self.k = check_int("k", k, 1)

    def episodes(self, wrapper: LearnedRewardVecEnv, segment_length: int) -> list[Trajectory]:
        return [t for t in wrapper.episodes if len(t) >= segment_length][-self.k :]


class HybridReplay:
    """QPA's hybrid experience replay as a :class:`~pbrl.online.PbrlReplayBuffer` sampler.

    While ``active()`` is true, ``round(her_ratio * batch_size)`` rows of each batch are drawn uniformly
    from the ``window`` most recent rows (per env), the rest uniformly from the whole buffer; otherwise the
    whole batch is uniform. Draws use NumPy's global RNG, which SB3 seeds, like SB3's own sampling.

    Args:
        her_ratio: share of each batch from recent transitions, in [0, 1].
        window: rows (per env) counted as recent (>= 1).
        active: ``() -> bool``, whether hybrid sampling is on now.
    """

    def __init__(self, her_ratio: float, window: int, active):
        if not 0.0 <= her_ratio <= 1.0:
            raise ValueError(f"her_ratio must be in [0, 1], got {her_ratio}")
        self.her_ratio = float(her_ratio)
        self.window = check_int("window", window, 1)
        self.active = active

    def __call__(self, buffer: PbrlReplayBuffer, batch_size: int) -> np.ndarray:
        n = buffer.size_filled()
        n_recent = int(round(self.her_ratio * batch_size)) if self.active() else 0
        inds = np.random.randint(0, n, size=batch_size - n_recent)  # noqa: NPY002 - SB3 seeds the global RNG
        if n_recent:
            w = min(self.window, n)
            # rows pos-w .. pos-1 (mod buffer_size) are the w most recent
            recent = (buffer.pos - 1 - np.random.randint(0, w, size=n_recent)) % buffer.buffer_size  # noqa: NPY002
            inds = np.concatenate([inds, recent])
        return inds


class QPA(PEBBLE):
    """PEBBLE with QPA's policy-aligned query pool, hybrid replay and crop augmentation.

    ``QPA(task_id_or_env, teacher, total_feedback, feedback_per_session, feedback_every, segment_length=50,
    selector="uniform", ...)``. QPA samples queries uniformly from its small policy-aligned pool, so the
    default selector is ``"uniform"`` (any selector may be passed).

    Extra args:
        recent_episodes: K, the query pool is the last K complete episodes (default ``None``: 30 on
            Meta-World tasks, 10 otherwise, the authors' settings).
        her_ratio: share of each SAC batch from recent transitions while collecting feedback (default 0.5).
        crop_range: temporal-crop augmentation range (default 5; 0 disables).

    Reward model: one member (the authors' ``ensemble_size=1``); every other argument and default as
    :class:`PEBBLE`.
    """

    default_selector = "uniform"
    default_reward_model_kwargs = {**REWARD_MODEL_DEFAULTS, "n_members": 1}
    feedback_kinds = ("preference",)  # the cropped Bradley-Terry loss is a pair mechanism

    def __init__(self, *args, recent_episodes: int | None = None, her_ratio: float = 0.5, crop_range: int = 5,
                 **kwargs):
        if recent_episodes is not None:
            check_int("recent_episodes", recent_episodes, 1)
        check_int("crop_range", crop_range, 0)
        if not 0.0 <= her_ratio <= 1.0:
            raise ValueError(f"her_ratio must be in [0, 1], got {her_ratio}")
        task = args[0] if args else kwargs.get("task_id_or_env")
        if recent_episodes is None:
            recent_episodes = 30 if isinstance(task, str) and task.startswith("metaworld/") else 10
        self.recent_episodes = int(recent_episodes)
        self.her_ratio = float(her_ratio)
        self.crop_range = int(crop_range)
        super().__init__(*args, **kwargs)

    def _check_extra(self, segment_length: int) -> None:
        if self.crop_range > 0:
            TemporalCrop(self.crop_range).check(segment_length)

    def _make_pool(self) -> QueryPool:
        return RecentEpisodes(self.recent_episodes)

    def _loss_terms(self):
        crop = TemporalCrop(self.crop_range) if self.crop_range > 0 else None
        return [BradleyTerryLoss(crop), *self.reward_model.default_loss_terms()]

    def _setup(self) -> None:
        super()._setup()
        cb: PreferenceCallback = self.callback
        # K episodes of transitions in total, i.e. K * episode_length / n_envs rows per env
        window = max(1, self.recent_episodes * self.episode_length // self.n_envs)
        self.model.replay_buffer.sampler = HybridReplay(
            self.her_ratio, window, active=lambda: cb.collecting and cb.updates > 0
        )
