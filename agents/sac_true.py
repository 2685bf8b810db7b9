"""SAC on the true reward: the upper bound every online PbRL paper plots its agents against.

Haarnoja et al., "Soft Actor-Critic", ICML 2018, with the SAC settings the PbRL agents share
(:data:`~pbrl.agents.online_base.SAC_DEFAULTS`, B-Pref's), so that a feedback-efficiency study differs
from it only in where the reward comes from. It is an online agent like the others (same env wrapper,
evaluation callback, checkpoints and run directories), but the wrapper passes the environment's reward
through and no query is ever asked: it needs no labels.
"""

from __future__ import annotations

from pbrl.agents.online_base import OnlinePrefAgent
from pbrl.teachers import make_teacher

__all__ = ["SACTrue"]


class SACTrue(OnlinePrefAgent):
    """SB3's SAC on the environment's reward, built like the PbRL agents (see the module docstring).

    ``SACTrue(task_id_or_env, teacher=None, total_feedback=0, feedback_per_session=1, feedback_every=1, ...)``:
    the feedback arguments are accepted for a uniform interface (runs and sweeps pass them) and ignored: no
    query is asked whatever the budget; ``teacher`` defaults to the oracle and is never asked.
    """

    requires_preferences = False
    default_unsup_steps = 0

    def __init__(self, task_id_or_env, teacher=None, total_feedback: int = 0, feedback_per_session: int = 1,
                 feedback_every: int = 1, *args, **kwargs):
        if isinstance(total_feedback, bool) or not isinstance(total_feedback, int) or total_feedback < 0:
            raise ValueError(f"total_feedback must be an integer >= 0 (SACTrue ignores it), got {total_feedback!r}")
        if kwargs.get("unsup_steps"):
            raise ValueError("SACTrue has no unsupervised pre-training: leave unsup_steps at 0")
        if teacher is None:
            teacher = make_teacher("oracle")
        super().__init__(task_id_or_env, teacher, 0, feedback_per_session, feedback_every, *args, **kwargs)

    def _setup(self) -> None:
        self.env.set_mode("true")

    def _set_learned_reward(self) -> None:  # there is no learned reward: keep the true one (also after resume)
        self.env.set_mode("true")
