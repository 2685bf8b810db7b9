"""PEBBLE: unsupervised pre-training and off-policy preference learning with relabelling.

Lee, Smith & Abbeel, "PEBBLE: Feedback-Efficient Interactive Reinforcement Learning via Relabeling
Experience and Unsupervised Pre-training", ICML 2021.

What makes PEBBLE, all in this file:

1. **Unsupervised pre-training** (Sec. 4.1, Eq. 9): for ``unsup_steps`` steps after the random seed steps,
   SAC learns from the intrinsic reward ``r_int(s') = log(1 + ||s' - s'^k||) / running std`` of each
   sampled next state, against the replay buffer's next states (k = 5, the state itself excluded),
   computed at sample time (:class:`EntropyPretraining`).
2. **Reward learning** (Eqs. 1-2): the Bradley-Terry cross-entropy on an ensemble of 3 reward networks
   (:class:`~pbrl.reward_models.RewardEnsemble`, loss :class:`~pbrl.reward_models.BradleyTerryLoss`),
   disagreement-based query selection (uniform at the first session), ``large_batch = 10`` candidates
   per query.
3. **Relabelling** (Sec. 4.2): after every reward update every reward in the replay buffer is recomputed
   by the new model (the shared feedback callback does this for every SAC-based agent).
4. **Critic reset** at the end of pre-training (B-Pref's code): after the first reward update the critic
   and its target are re-initialised and ``reset_updates = 100`` SAC gradient steps run on the relabelled
   buffer (:class:`CriticReset`).
"""

from __future__ import annotations

from typing import Any

from pbrl.agents.online_base import OnlinePrefAgent, PhaseHook
from pbrl.online import FeedbackHook, PbrlReplayBuffer, PreferenceCallback, StateEntropyReward

__all__ = ["PEBBLE", "EntropyPretraining", "CriticReset", "reset_sac_critic"]


def reset_sac_critic(model: Any) -> None:
    """Re-initialise an SB3 SAC/TD3 critic and its target and clear the critic optimiser's state.

    PEBBLE resets the critic after the unsupervised phase, so that Q-values learned for the intrinsic
    reward do not bias learning of the preference reward. The actor and the entropy temperature are kept.
    Uses torch's global RNG (seeded by SB3 from the model's seed).
    """
    critic = getattr(getattr(model, "policy", None), "critic", None) or getattr(model, "critic", None)
    if critic is None:
        raise TypeError(f"{type(model).__name__} has no critic to reset (needs an SB3 SAC/TD3 model)")
    for m in critic.modules():
        if m is not critic and hasattr(m, "reset_parameters"):
            m.reset_parameters()
    target = getattr(model, "critic_target", None)
    if target is not None:
        target.load_state_dict(critic.state_dict())
    opt = getattr(critic, "optimizer", None)
    if opt is not None:
        opt.state.clear()


class EntropyPretraining:
    """The sample-time intrinsic reward of PEBBLE's pre-training (Eq. 9) for an SB3 SAC replay buffer.

    Each sampled batch's rewards are replaced by ``StateEntropyReward(next_obs, reference)``, the
    reference being the buffer's next states (a uniform sample of ``max_ref`` when larger); the state's
    own copy is skipped, so the k-th neighbour is the k-th *other* state.
    """

    def __init__(self, buffer: PbrlReplayBuffer, entropy: StateEntropyReward):
        self.buffer = buffer
        self.entropy = entropy

    def __call__(self, obs, act, next_obs, reward):
        return self.entropy(next_obs, self.buffer.filled_next_observations(self.entropy.max_ref))


class CriticReset(FeedbackHook):
    """After the first reward update and relabelling: reset the critic, then ``updates`` SAC steps."""

    def __init__(self, updates: int = 100):
        self.updates = int(updates)

    def after_relabel(self, callback: PreferenceCallback, first: bool) -> None:
        if not first:
            return
        model = callback.model
        reset_sac_critic(model)
        if self.updates > 0 and hasattr(model, "train"):
            model.train(gradient_steps=self.updates, batch_size=model.batch_size)


class PEBBLE(OnlinePrefAgent):
    """PEBBLE on SB3's SAC (see the module docstring for the paper and equations).

    ``PEBBLE(task_id_or_env, teacher, total_feedback, feedback_per_session, feedback_every, segment_length=50,
    selector="disagreement", seed=0, learner_kwargs=None, reward_model_kwargs=None, unsup_steps=9000, ...)``;
    every keyword of :class:`~pbrl.agents.online_base.OnlinePrefAgent` is accepted.

    Defaults (PEBBLE / B-Pref Meta-World settings; ``docs/hyperparameters.md`` has the table): SAC with
    3 x 256 networks, batch 512, lr 3e-4, initial temperature 0.1, tau 0.005, 1000 random seed steps
    (``learning_starts``) then ``unsup_steps=9000`` steps of state-entropy pre-training (k = 5); reward
    ensemble of 3 x (3 x 256) MLPs with tanh output, lr 3e-4, raw inputs as B-Pref's
    (``reward_model_kwargs={"normalize": True}`` standardises them at every refit); each fit up to 10 epochs
    on Meta-World, 50 elsewhere (B-Pref's ``reward_update``; batch 128), stopping at 97 % training accuracy;
    segment length 50; disagreement selection over 10x candidates. The first feedback session is at step
    ``learning_starts + unsup_steps``.

    Attributes: ``model`` (the SB3 SAC), ``reward_model``, ``preferences``, ``callback``
    (:class:`~pbrl.online.PreferenceCallback`), ``env`` (the :class:`~pbrl.online.LearnedRewardVecEnv`),
    ``entropy`` (the :class:`~pbrl.online.StateEntropyReward` of pre-training).
    """

    default_unsup_steps = 9000

    def _fit_kwargs(self, overrides: dict | None) -> dict:
        # B-Pref's PEBBLE scripts: reward_update = 10 epochs on Meta-World, 50 on DMC (and here on every
        # other task), each fit stopping early at 97 % training accuracy
        mw = isinstance(self.task_id, str) and self.task_id.startswith("metaworld/")
        return super()._fit_kwargs({"epochs": 10 if mw else 50, **(overrides or {})})

    def _make_hooks(self) -> list[FeedbackHook]:
        hooks: list[FeedbackHook] = [PhaseHook(self)]
        if self.unsup_steps > 0:
            hooks.append(CriticReset(self.reset_updates))
        return hooks

    def _setup(self) -> None:
        if self.unsup_steps <= 0:
            self._set_learned_reward()
            return
        buf: PbrlReplayBuffer = self.model.replay_buffer
        self.entropy = StateEntropyReward(k=5, max_ref=10000, ref_includes_query=True)
        buf.sample_reward = EntropyPretraining(buf, self.entropy)
        self.env.set_mode("none")  # stored rewards are unused until the first update relabels them
