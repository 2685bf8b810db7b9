"""The named construction steps of an online agent, each on its own: ``_validate`` (before any work),
``_build_env``, ``_build_reward_model``, ``_build_learner``, ``_build_callback``, ``_build_eval_callback``."""

from __future__ import annotations

import gymnasium as gym
import pytest
import torch
from stable_baselines3 import PPO, SAC
from stable_baselines3.common.vec_env import DummyVecEnv

from pbrl.agents.online_base import OnlinePrefAgent
from pbrl.agents.pebble import PEBBLE
from pbrl.agents.pref_ppo import PrefPPO
from pbrl.agents.qpa import QPA
from pbrl.envs import make_env
from pbrl.envs.evaluation import PbrlEvalCallback
from pbrl.online import PbrlReplayBuffer, PreferenceCallback, RatingCallback
from pbrl.teachers import make_teacher

pytestmark = pytest.mark.usefixtures("one_thread")

EP = 40
SAC_KW = {"batch_size": 16, "learning_starts": 7, "buffer_size": 500, "policy_kwargs": {"net_arch": [8]}}
VALID = dict(total_feedback=10, feedback_per_session=2, feedback_every=EP, segment_length=10, selector=None, seed=3,
             unsup_steps=5, large_batch=10, reset_updates=2, n_envs=1, n_eval_episodes=1, eval_env=None,
             eval_every=None, episode_length=None, learner_kwargs=None, reward_model_kwargs=None, fit_kwargs=None)

OWN_OPTIONS = {QPA: {"crop_range": 2, "recent_episodes": 10, "her_ratio": 0.5}}


def _env():
    return make_env("mujoco/HalfCheetah-v5", seed=0, max_episode_steps=EP)


def _bare(cls=PEBBLE, task="mujoco/HalfCheetah-v5", **kw):
    """An agent object with only :meth:`_validate` run (no env, model or callback; a subclass's own options
    at their defaults)."""
    agent = cls.__new__(cls)
    agent.__dict__.update(OWN_OPTIONS.get(cls, {}))
    out = agent._validate(task, make_teacher("oracle", seed=0), **{**VALID, **kw})
    return agent, out


@pytest.fixture()
def no_env(monkeypatch):
    """Fails the test if anything builds an env."""
    built = []

    def make_venv(*args, **kwargs):
        built.append(args)
        raise AssertionError("an env was built before the arguments were checked")

    monkeypatch.setattr(OnlinePrefAgent, "_make_venv", staticmethod(make_venv))
    return built


# ---------------------------------------------------------------------------- step 1: _validate
@pytest.mark.parametrize("task", ["mujoco/HalfCheetah-v5", "env object"])
def test_a_bad_budget_is_one_value_error_before_any_env(task, no_env):
    task_or_env = task if task != "env object" else gym.make("Pendulum-v1")
    with pytest.raises(ValueError, match=r"^total_feedback must be .*-3") as e:
        PEBBLE(task_or_env, make_teacher("oracle"), total_feedback=-3, feedback_per_session=1, feedback_every=1)
    assert "\n" not in str(e.value) and no_env == []


@pytest.mark.parametrize(
    ("kw", "error", "match"),
    [
        ({"fit_kwargs": {"epoch": 3}}, ValueError, "unknown fit_kwargs \\['epoch'\\]"),
        ({"learner_kwargs": {"seed": 1}}, ValueError, "learner_kwargs may not set 'seed'"),
        ({"selector": "nope"}, ValueError, "selector"),
        ({"eval_every": 100}, ValueError, "eval_every needs eval_env="),
        ({"reward_model_kwargs": [3]}, TypeError, "reward_model_kwargs must be a dict"),
        ({"episode_length": 0}, ValueError, "episode_length"),
    ],
)
def test_every_bad_argument_stops_before_any_env(kw, error, match, no_env):
    """The fit arguments and the missing eval env were checked only after the learner was built."""
    env = gym.make("Pendulum-v1")
    with pytest.raises(error, match=match):
        PEBBLE(env, make_teacher("oracle"), 10, 1, 1, **kw)
    assert no_env == []


def test_validate_stores_the_settings_and_returns_the_parts():
    agent, (selector, fit) = _bare(task="metaworld/reach-v3")
    assert agent.task_id == "metaworld/reach-v3" and agent.feedback == "preference"
    assert (agent.total_feedback, agent.feedback_per_session, agent.segment_length, agent.seed) == (10, 2, 10, 3)
    assert agent.unsup_steps == 5 and agent.reset_updates == 2
    assert selector.name == "disagreement" and fit["epochs"] == 10  # PEBBLE: 10 epochs on Meta-World
    assert _bare(task="mujoco/Hopper-v5")[1][1]["epochs"] == 50
    qpa, (selector, _) = _bare(QPA)
    assert selector.name == "uniform"  # the class's default selector
    rated = PEBBLE.__new__(PEBBLE)
    rated._validate("mujoco/Hopper-v5", make_teacher("rating"), **{**VALID, "selector": "uniform"})
    assert rated.feedback == "rating"
    with pytest.raises(ValueError, match="QPA learns from preference feedback"):
        _bare(QPA)[0]._validate("mujoco/Hopper-v5", make_teacher("rating"), **VALID)


# ---------------------------------------------------------------------------- step 2: _build_env
def test_build_env_reads_the_episode_length_and_checks_the_segment():
    agent, _ = _bare()
    venv = agent._build_env(_env(), 1, None)
    assert venv.num_envs == 1 and agent.episode_length == EP and (agent.obs_dim, agent.act_dim) == (17, 6)
    agent.segment_length = EP + 1
    with pytest.raises(ValueError, match=f"segment_length {EP + 1} is longer than the episode length {EP}"):
        agent._build_env(_env(), 1, None)
    with pytest.raises(ValueError, match="unknown task id"):
        agent._build_env("mujoco/Cheetah-v9", 1, None)


@pytest.mark.parametrize("task", ["mujoco/HalfCheetah-v5", "metaworld/reach-v3"])
def test_episode_length_of_a_task_id_is_a_time_limit(task):
    """It once only set the length the agent assumed: the env still ran its own 1,000 / 500-step episodes."""
    agent, _ = _bare(task=task)
    venv = agent._build_env(task, 1, 12)
    venv.reset()
    steps, done = 0, False
    while not done:
        _, _, dones, _ = venv.step([venv.action_space.sample()])
        steps, done = steps + 1, bool(dones[0])
    assert agent.episode_length == 12 and steps == 12


@pytest.mark.parametrize("task", ["metaworld/reach-v3", "pointmass/two-goal", "mujoco/Hopper-v5"])
def test_make_env_takes_a_time_limit_for_every_suite(task):
    env = make_env(task, seed=0, max_episode_steps=7)
    env.reset(seed=0)
    steps, term, trunc = 0, False, False
    while not (term or trunc):
        _, _, term, trunc, info = env.step(env.action_space.sample() * 0)
        steps += 1
    assert trunc and steps == 7 and "qpos" in info  # pbrl's info wrapper is still outermost
    with pytest.raises(ValueError, match="max_episode_steps"):
        make_env(task, max_episode_steps=0)


# ---------------------------------------------------------------------------- step 3: _build_reward_model
def test_build_reward_model_gives_the_configured_ensemble():
    agent, _ = _bare()
    rm = agent._build_reward_model(5, 2, {"hidden": (8,)})
    assert rm.n_members == 3 and (rm.obs_dim, rm.act_dim) == (5, 2) and rm.output == "tanh"  # PEBBLE's defaults
    assert _bare(QPA)[0]._build_reward_model(5, 2, {"hidden": (8,)}).n_members == 1  # QPA: one member
    assert agent._build_reward_model(5, 2, {"hidden": (8,), "n_members": 5}).n_members == 5
    again = agent._build_reward_model(5, 2, {"hidden": (8,)})
    agent.seed = 4
    other = agent._build_reward_model(5, 2, {"hidden": (8,)})
    first = [p.detach().clone() for p in rm.net.parameters()]
    assert all(torch.equal(a, b) for a, b in zip(first, again.net.parameters()))  # same seed, same weights
    assert not all(torch.equal(a, b) for a, b in zip(first, other.net.parameters()))


# ---------------------------------------------------------------------------- step 4: _build_learner
def test_build_learner_applies_the_defaults_and_the_replay_buffer():
    agent, _ = _bare()
    venv = DummyVecEnv([_env])
    model = agent._build_learner(venv, SAC_KW)
    assert isinstance(model, SAC) and isinstance(model.replay_buffer, PbrlReplayBuffer)
    assert agent.seed_steps == 7 and model.gamma == 0.99 and agent.learner_kwargs["ent_coef"] == "auto_0.1"
    assert SAC_KW == {"batch_size": 16, "learning_starts": 7, "buffer_size": 500, "policy_kwargs": {"net_arch": [8]}}
    ppo, _ = _bare(PrefPPO)
    model = ppo._build_learner(venv, {"n_steps": 2 * EP, "batch_size": 40, "policy_kwargs": {"net_arch": [8]}})
    assert isinstance(model, PPO) and ppo.seed_steps == 0


# ---------------------------------------------------------------------------- steps 5 and 6: the callbacks
@pytest.mark.parametrize("teacher", ["oracle", "rating"])
def test_build_callback_follows_the_teacher_and_the_schedule(teacher):
    agent = PEBBLE(_env(), make_teacher(teacher), 10, 2, EP, segment_length=10, seed=0, selector="uniform",
                   learner_kwargs=SAC_KW, reward_model_kwargs={"hidden": (8,)}, unsup_steps=5)
    cb = agent.callback
    assert type(cb) is (RatingCallback if teacher == "rating" else PreferenceCallback)
    assert cb.first_feedback_step == 7 + 5 and cb.large_batch == 10 and len(agent.preferences) == 0
    rebuilt = agent._build_callback(cb.selector, {"epochs": 1}, large_batch=3)
    assert type(rebuilt) is type(cb) and rebuilt.large_batch == 3 and rebuilt is not cb
    assert agent.eval_callback is None and agent._build_eval_callback(None, None) is None
    ev = agent._build_eval_callback(_env(), 100, 2)
    assert isinstance(ev, PbrlEvalCallback) and ev.eval_every == 100 and ev.seed == 10_000
    assert ev.preference_callback is agent.callback
