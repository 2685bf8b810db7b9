"""The feedback study's control row: PEBBLE's schedule (seed steps, entropy pre-training, critic reset) on the
true reward."""

import numpy as np
import pytest
import torch

from pbrl.agents.pebble import EntropyPretraining
from pbrl.agents.registry import get_agent, get_entry
from pbrl.envs import make_env

EP = 50
LK = {"batch_size": 16, "learning_starts": EP, "buffer_size": 1000, "train_freq": 4, "policy_kwargs": {"net_arch": [8]}}


def _agent(**kw):
    cls = get_agent("pebble_true", "online")
    env = make_env("mujoco/HalfCheetah-v5", seed=0, max_episode_steps=EP)
    return cls(env, None, 0, 1, 1, segment_length=10, seed=0, learner_kwargs=dict(LK),
               reward_model_kwargs={"hidden": (8,)}, unsup_steps=2 * EP, reset_updates=2, **kw)


def test_registered_as_a_label_free_control():
    e = get_entry("pebble_true")
    assert e.kind == "online" and e.learner == "SAC" and not e.needs_preferences


def test_pretrains_on_entropy_then_learns_from_the_true_reward():
    agent = _agent()
    buf = agent.model.replay_buffer
    assert isinstance(buf.sample_reward, EntropyPretraining) and not agent.pretraining_over
    agent.learn(2 * EP)  # still inside the seed + entropy steps (EP + 2 EP)
    assert isinstance(buf.sample_reward, EntropyPretraining) and not agent.pretraining_over
    critic = [p.detach().clone() for p in agent.model.critic.parameters()]
    agent.learn(2 * EP, reset_num_timesteps=False)
    assert agent.pretraining_over and buf.sample_reward is None and agent.env.mode == "true"
    assert agent.callback.asked == 0 and len(agent.preferences) == 0
    # the critic was reset (and trained on from there), not merely trained on
    assert any(not torch.allclose(a, b) for a, b in zip(critic, agent.model.critic.parameters()))
    # every stored reward, those of pre-training included, is the environment's reward
    first = list(agent.env.episodes)[0]
    np.testing.assert_allclose(buf.rewards[:EP, 0], first.reward, rtol=1e-6)
    assert np.abs(buf.rewards[: 4 * EP, 0]).sum() > 0


def test_state_dict_restores_the_phase():
    agent = _agent()
    assert agent.state_dict() == {"pretraining_over": False}
    agent.load_state_dict({"pretraining_over": True})
    assert agent.pretraining_over and agent.model.replay_buffer.sample_reward is None and agent.env.mode == "true"


def test_refuses_a_negative_budget():
    with pytest.raises(ValueError, match="total_feedback must be an integer >= 0"):
        get_agent("pebble_true", "online")(make_env("mujoco/HalfCheetah-v5", seed=0), None, -3)
