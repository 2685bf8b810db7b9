"""The feedback study's control: PEBBLE's schedule on the true reward.

SAC-true (:class:`~pbrl.agents.sac_true.SACTrue`) learns from the true reward from its first step. PEBBLE
first spends ``learning_starts`` random seed steps and ``unsup_steps`` steps of state-entropy pre-training,
then resets its critic (Lee, Smith & Abbeel, ICML 2021, Sec. 4.1 and B-Pref's code), and only then learns
from its reward. This agent runs exactly that schedule (PEBBLE's :class:`~pbrl.agents.pebble.EntropyPretraining`
and :func:`~pbrl.agents.pebble.reset_sac_critic` with ``reset_updates`` SAC steps) but then learns from the
*true* reward. Beside SAC-true and PEBBLE in a study it separates the cost of pre-training (SAC-true minus
this row) from the cost of learning the reward from labels (this row minus PEBBLE).

During pre-training the replay buffer stores the true rewards (unused: batches get the entropy reward at
sample time); at the end of pre-training the sample-time reward is removed, so every stored transition,
those of pre-training included, carries its true reward, as a perfectly relabelled PEBBLE buffer would.
"""

from __future__ import annotations

from typing import Any

from stable_baselines3.common.callbacks import BaseCallback

from pbrl.agents.online_base import OnlinePrefAgent
from pbrl.agents.pebble import PEBBLE, reset_sac_critic
from pbrl.teachers import make_teacher

__all__ = ["PEBBLETrueReward"]


class _EndOfPretraining(BaseCallback):
    """Ends the agent's pre-training at env step ``learning_starts + unsup_steps`` (once)."""

    def __init__(self, agent: PEBBLETrueReward):
        super().__init__()
        self.agent = agent

    def _on_step(self) -> bool:
        a = self.agent
        if not a.pretraining_over and self.num_timesteps >= a.seed_steps + a.unsup_steps:
            a._end_pretraining()
        return True


class PEBBLETrueReward(PEBBLE):
    """PEBBLE's schedule (seed steps, entropy pre-training, critic reset) on the true reward: the control row.

    ``PEBBLETrueReward(task_id_or_env, teacher=None, total_feedback=0, ..., unsup_steps=9000, reset_updates=100)``:
    PEBBLE's arguments; the feedback arguments are accepted for a uniform interface (runs and sweeps pass
    them) and ignored, as :class:`~pbrl.agents.sac_true.SACTrue` does: no query is ever asked.

    Attributes: ``pretraining_over`` (checkpointed through :meth:`state_dict`).
    """

    requires_preferences = False

    def __init__(self, task_id_or_env, teacher=None, total_feedback: int = 0, feedback_per_session: int = 1,
                 feedback_every: int = 1, *args, **kwargs):
        if isinstance(total_feedback, bool) or not isinstance(total_feedback, int) or total_feedback < 0:
            raise ValueError(f"total_feedback must be an integer >= 0 (the control ignores it), got {total_feedback!r}")
        self.pretraining_over = False
        super().__init__(task_id_or_env, teacher if teacher is not None else make_teacher("oracle"), 0,
                         feedback_per_session, feedback_every, *args, **kwargs)
        self._switch = _EndOfPretraining(self)

    def _setup(self) -> None:
        super()._setup()
        if self.unsup_steps > 0:
            self.env.set_mode("true")  # stored for after pre-training; batches get the entropy reward till then

    def _set_learned_reward(self) -> None:
        self.env.set_mode("true")
        self.model.replay_buffer.sample_reward = None

    def _end_pretraining(self) -> None:
        """PEBBLE's end of pre-training without its reward model: true rewards, critic reset, reset updates."""
        self._set_learned_reward()
        if self.unsup_steps > 0:
            reset_sac_critic(self.model)
            if self.reset_updates > 0:
                self.model.train(gradient_steps=self.reset_updates, batch_size=self.model.batch_size)
        self.pretraining_over = True

    def learn(self, total_timesteps: int, callback: BaseCallback | list | None = None, **learn_kwargs) -> OnlinePrefAgent:
        extra = [] if callback is None else (callback if isinstance(callback, list) else [callback])
        return super().learn(total_timesteps, callback=[self._switch, *extra], **learn_kwargs)

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "pretraining_over": self.pretraining_over}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.pretraining_over = bool(state.get("pretraining_over", False))
        if self.pretraining_over:
            self._set_learned_reward()
