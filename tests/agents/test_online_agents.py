"""Each online agent runs a short ``learn`` on a MuJoCo and a Meta-World task; save/load round trips."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pandas as pd
import pytest
from stable_baselines3 import PPO, SAC
from stable_baselines3.common.logger import configure

from pbrl.agents.pebble import PEBBLE
from pbrl.agents.pref_ppo import PrefPPO
from pbrl.agents.qpa import QPA
from pbrl.agents.rune import RUNE
from pbrl.agents.surf import SURF
from pbrl.envs import make_env
from pbrl.online import PbrlReplayBuffer
from pbrl.teachers import make_teacher

EP = 40
H = 10
SAC_KW = {"batch_size": 32, "learning_starts": EP, "buffer_size": 2000, "train_freq": 4,
          "policy_kwargs": {"net_arch": [16, 16]}}
PPO_KW = {"n_steps": 80, "batch_size": 40, "n_epochs": 2, "policy_kwargs": {"net_arch": [16, 16]}}
RM_KW = {"n_members": 3, "hidden": (16, 16)}
AGENTS = {"PEBBLE": PEBBLE, "PrefPPO": PrefPPO, "SURF": SURF, "QPA": QPA, "RUNE": RUNE}
EXTRA = {"SURF": {"crop_range": 2}, "QPA": {"crop_range": 2, "recent_episodes": 2}, "RUNE": {"beta_0": 0.5}}


def _env(task: str):
    if task.startswith("mujoco"):
        return make_env(task, seed=0, max_episode_steps=EP), None
    return gym.wrappers.TimeLimit(make_env(task, seed=0), EP), EP  # Meta-World, episodes cut to EP steps


def _agent(name: str, task: str, total_feedback: int = 12, reward_model_kwargs=None, **kw):
    env, ep = _env(task)
    cls = AGENTS[name]
    return cls(
        env, make_teacher("oracle", seed=0), total_feedback=total_feedback, feedback_per_session=4,
        feedback_every=EP, segment_length=H, seed=0,
        learner_kwargs=PPO_KW if cls is PrefPPO else SAC_KW, reward_model_kwargs=reward_model_kwargs or RM_KW,
        episode_length=ep,
        **{"unsup_steps": EP, "fit_kwargs": {"epochs": 5}, "reset_updates": 5, **EXTRA.get(name, {}), **kw},
    )


@pytest.mark.parametrize("task", ["mujoco/HalfCheetah-v5", "metaworld/reach-v3"])
@pytest.mark.parametrize("name", list(AGENTS))
def test_agent_short_learn_and_save_load(name, task, tmp_path):
    agent = _agent(name, task)
    agent.learn(4 * EP + 4)
    cb = agent.callback
    # the whole budget was asked in sessions of 4, after the unsupervised phase
    assert cb.asked == 12 and cb.sessions == 3 and len(agent.preferences) == 12
    assert cb.history[0]["step"] >= agent.seed_steps + agent.unsup_steps
    assert set(np.unique(agent.preferences.label)) <= {0.0, 0.5, 1.0}
    assert 0.0 <= cb.last_fit["accuracy"] <= 1.0
    # after the first update the learner is on the learned reward
    assert agent.env.mode == "model"
    if isinstance(agent.model, SAC):
        buf = agent.model.replay_buffer
        assert isinstance(buf, PbrlReplayBuffer)
        n = buf.pos
        pred = agent.reward_model.predict(buf.observations[:n, 0], buf.actions[:n, 0])
        assert np.mean(np.isclose(buf.rewards[:n, 0], pred, atol=1e-4)) > 0.95  # relabelled in place
        if name == "RUNE":
            assert buf.sample_reward is not None  # r_hat + beta_t * std at sample time
        else:
            assert buf.sample_reward is None  # the entropy reward is off
    # SB3 save / load round trip gives the same deterministic actions
    obs = np.stack([agent.env.observation_space.sample() for _ in range(5)])
    act = agent.model.predict(obs, deterministic=True)[0]
    agent.model.save(tmp_path / "model.zip")
    loaded = type(agent.model).load(tmp_path / "model.zip", device="cpu")
    np.testing.assert_allclose(loaded.predict(obs, deterministic=True)[0], act, rtol=1e-6)
    assert isinstance(loaded, PPO if name == "PrefPPO" else SAC)


def test_pebble_critic_is_reset_after_first_update_only(monkeypatch):
    import pbrl.agents.pebble as sb3

    agent = _agent("PEBBLE", "mujoco/HalfCheetah-v5")
    resets = []
    orig = sb3.reset_sac_critic

    def spy(model):
        resets.append(int(model.num_timesteps))
        orig(model)

    monkeypatch.setattr(sb3, "reset_sac_critic", spy)
    train_calls = []
    orig_train = agent.model.train

    def train_spy(gradient_steps, batch_size=64):
        train_calls.append((int(agent.model.num_timesteps), gradient_steps))
        orig_train(gradient_steps, batch_size)

    monkeypatch.setattr(agent.model, "train", train_spy)
    agent.learn(4 * EP + 4)
    first = agent.callback.history[0]["step"]
    assert resets == [first]
    # B-Pref's reset_update: 5 extra gradient steps right after the reset, once
    assert [c for c in train_calls if c[1] == 5] == [(first, 5)]


def test_pebble_uses_entropy_reward_during_unsupervised_phase():
    agent = _agent("PEBBLE", "mujoco/HalfCheetah-v5")
    buf = agent.model.replay_buffer
    assert buf.sample_reward is not None and agent.env.mode == "none"  # step-time reward unused in pre-training
    agent.learn(EP + EP // 2)  # seed steps + half of the unsupervised phase: no feedback yet
    assert agent.callback.asked == 0
    r = buf.sample(64).rewards.numpy().ravel()  # the intrinsic reward, not the stored r_hat
    stored = buf.rewards[: buf.pos, 0]
    assert not np.isin(r, stored).all() and np.all(r >= 0)


def test_rune_bonus_decays():
    agent = _agent("RUNE", "mujoco/HalfCheetah-v5", beta_0=0.05, decay=1e-3)
    assert agent.beta(0) == pytest.approx(0.05)
    assert agent.beta(1000) == pytest.approx(0.05 * (1 - 1e-3) ** 1000)
    fn = agent._sample_reward_fn()
    obs = np.random.default_rng(0).normal(size=(8, agent.obs_dim)).astype(np.float32)
    act = np.zeros((8, agent.act_dim), np.float32)
    r = np.zeros(8, np.float32)
    np.testing.assert_allclose(fn(obs, act, obs, r), agent.beta() * agent.reward_model.std(obs, act), rtol=1e-5)


def test_qpa_pool_and_hybrid_replay_and_surf_pool():
    from pbrl.agents.qpa import HybridReplay, RecentEpisodes
    from pbrl.agents.surf import SemiSupervisedLoss, UnlabelledPool
    from pbrl.reward_models import BradleyTerryLoss

    qpa = _agent("QPA", "mujoco/HalfCheetah-v5")
    cb = qpa.callback
    assert cb.selector.name == "uniform" and isinstance(cb.pool, RecentEpisodes) and cb.pool.k == 2
    sampler = qpa.model.replay_buffer.sampler
    assert isinstance(sampler, HybridReplay) and sampler.her_ratio == 0.5 and sampler.window == 2 * EP
    assert isinstance(cb.trainer.losses[0], BradleyTerryLoss) and cb.trainer.losses[0].crop.crop_range == 2
    surf = _agent("SURF", "mujoco/HalfCheetah-v5", unlabelled_ratio=3)
    surf.learn(4 * EP)
    pool = surf.unlabelled_pool
    assert isinstance(pool, UnlabelledPool) and pool in surf.callback.hooks
    assert len(pool) == surf.callback.sessions * 3 * 4
    terms = surf.callback.trainer.losses
    assert isinstance(terms[1], SemiSupervisedLoss) and terms[1].threshold_u == 0.99 and terms[1].mu == 4
    assert "pseudo_fraction" in surf.callback.last_fit


def test_qpa_replays_uniformly_during_pretraining_and_uses_the_authors_defaults():
    qpa = _agent("QPA", "mujoco/HalfCheetah-v5", recent_episodes=None, reward_model_kwargs={"hidden": (16,)})
    sampler = qpa.model.replay_buffer.sampler
    assert qpa.recent_episodes == 10 and qpa.reward_model.n_members == 1  # DMC/MuJoCo K, one network
    qpa.learn(EP + EP // 2)  # seed + part of pre-training: no reward update yet
    assert qpa.callback.updates == 0 and not sampler.active()  # plain entropy updates, no hybrid replay
    qpa.learn(3 * EP, reset_num_timesteps=False)
    assert qpa.callback.updates > 0 and qpa.callback.collecting == sampler.active()
    mw = QPA("metaworld/reach-v3", make_teacher("oracle"), 10, 5, 1000, learner_kwargs=SAC_KW)
    assert mw.recent_episodes == 30
    # B-Pref's reward_update: 10 epochs per session on Meta-World, 50 elsewhere (early stop at 97 %)
    assert mw.callback.trainer.epochs == 10 and mw.callback.trainer.early_stop_accuracy == 0.97
    env, _ = _env("mujoco/HalfCheetah-v5")
    assert PEBBLE(env, make_teacher("oracle"), 10, 5, 1000, segment_length=H, learner_kwargs=SAC_KW).callback.trainer.epochs == 50


def test_pref_ppo_defaults_are_b_prefs():
    from stable_baselines3.common.vec_env import VecNormalize

    from pbrl.agents.pref_ppo import PPO_CPU_PRESET, LinearSchedule

    agent = PrefPPO("mujoco/HalfCheetah-v5", make_teacher("oracle"), 100, 10, 1000)
    m = agent.model
    assert agent.n_envs == 16 and m.n_steps == 250 and m.n_epochs == 20 and m.batch_size == 128
    assert m.use_sde and m.sde_sample_freq == 4 and m.gae_lambda == 0.92 and m.ent_coef == 0.0
    assert isinstance(m.clip_range, LinearSchedule) or m.clip_range(1.0) == pytest.approx(0.4)
    assert m.clip_range(1.0) == pytest.approx(0.4) and m.clip_range(0.25) == pytest.approx(0.1)
    assert isinstance(m.get_env(), VecNormalize) and not m.get_env().norm_reward
    assert agent.unsup_steps == 32000
    obs = np.zeros((1, agent.obs_dim), np.float32)
    agent.predict(obs)  # raw observations are normalised before the policy
    state = agent.state_dict()
    assert set(state["obs_rms"]) == {"mean", "var", "count"}
    cpu = PrefPPO("mujoco/HalfCheetah-v5", make_teacher("oracle"), 100, 10, 1000, **PPO_CPU_PRESET)
    assert cpu.n_envs == 1 and cpu.model.n_steps == 2048


def test_eval_callback_logs_return_vs_steps_and_labels(tmp_path):
    agent = _agent("PEBBLE", "mujoco/HalfCheetah-v5", eval_env=make_env("mujoco/HalfCheetah-v5", seed=5,
                   max_episode_steps=EP), eval_every=2 * EP, n_eval_episodes=2)
    agent.model.set_logger(configure(str(tmp_path), ["csv"]))
    agent.learn(4 * EP + 4)
    hist = agent.eval_callback.history
    assert [h["step"] for h in hist] == [2 * EP, 4 * EP, 4 * EP + 4]
    assert hist[-1]["labels"] == 12 and hist[0]["labels"] < 12
    df = pd.read_csv(tmp_path / "progress.csv")
    for col in ("eval/mean_return", "eval/success_rate", "feedback/labels_used", "reward_model/accuracy"):
        assert col in df.columns
    rows = df.dropna(subset=["eval/mean_return"])
    assert len(rows) == 3 and rows["feedback/labels_used"].iloc[-1] == 12


def test_agent_rejects_bad_input():
    env, _ = _env("mujoco/HalfCheetah-v5")
    t = make_teacher("oracle")
    with pytest.raises(ValueError, match="total_feedback"):
        PEBBLE(env, t, total_feedback=-3, feedback_per_session=1, feedback_every=1)
    with pytest.raises(ValueError, match="unknown task id"):
        PEBBLE("mujoco/Cheetah-v9", t, 10, 1, 1)
    with pytest.raises(ValueError, match="segment_length"):
        PEBBLE(env, t, 10, 1, 1, segment_length=EP + 1)
    with pytest.raises(ValueError, match="selector"):
        PEBBLE(env, t, 10, 1, 1, selector="nope")
    with pytest.raises(TypeError, match="teacher"):
        PEBBLE(env, "oracle", 10, 1, 1)
    with pytest.raises(ValueError, match="learner_kwargs may not set"):
        PEBBLE(env, t, 10, 1, 1, learner_kwargs={"seed": 3})
    with pytest.raises(ValueError, match="crop_range"):
        SURF(env, t, 10, 1, 1, segment_length=10, crop_range=5)
    with pytest.raises(ValueError, match="her_ratio"):
        QPA(env, t, 10, 1, 1, her_ratio=2.0)


def test_pref_ppo_pretrains_on_state_entropy_then_switches_to_learned_reward():
    agent = _agent("PrefPPO", "mujoco/HalfCheetah-v5", unsup_steps=4 * EP)
    assert agent.env.mode == "entropy"
    agent.learn(EP)  # one PPO rollout (2 * EP steps) inside the unsupervised phase: no feedback yet
    assert agent.callback.asked == 0 and agent.env.mode == "entropy"
    assert agent.env._ent_n == agent.model.num_timesteps == 2 * EP  # every visited state entered the store
    agent.learn(4 * EP, reset_num_timesteps=False)  # continues the same schedule
    assert agent.callback.asked > 0 and agent.env.mode == "model"
    assert agent.callback.history[0]["step"] == 4 * EP


def test_learner_defaults_are_not_mutated_by_sb3():
    import copy

    from pbrl.agents.online_base import SAC_DEFAULTS
    from pbrl.agents.pebble import PEBBLE
    from pbrl.teachers import make_teacher

    before = copy.deepcopy(SAC_DEFAULTS)
    overrides = {"policy_kwargs": {"net_arch": [8]}}
    agent = PEBBLE("mujoco/Reacher-v5", make_teacher("oracle"), 10, 5, 100, segment_length=25,
                   learner_kwargs=overrides)
    assert agent.model.policy_kwargs.get("use_sde") is False  # SB3 did write into the dict it was given...
    assert SAC_DEFAULTS == before and overrides == {"policy_kwargs": {"net_arch": [8]}}  # ...a copy of ours


def test_pebble_predicts_no_step_reward_during_pretraining_then_the_model_reward():
    agent = _agent("PEBBLE", "mujoco/HalfCheetah-v5")
    calls = []
    orig = agent.reward_model.predict_step

    def spy(o, a):
        calls.append(int(agent.model.num_timesteps))
        return orig(o, a)

    agent.reward_model.predict_step = spy
    agent.learn(4 * EP + 4)
    first = agent.callback.history[0]["step"]
    assert calls and min(calls) >= first  # none before the first reward update
    obs = np.random.default_rng(0).normal(size=(3, agent.obs_dim)).astype(np.float32)
    act = np.zeros((3, agent.act_dim), np.float32)
    np.testing.assert_allclose(orig(obs, act), agent.reward_model.predict(obs, act), rtol=1e-6)


def test_sac_true_learns_from_the_true_reward_and_asks_nothing():
    from pbrl.agents.sac_true import SACTrue

    env, _ = _env("mujoco/HalfCheetah-v5")
    agent = SACTrue(env, learner_kwargs=SAC_KW, segment_length=H)
    agent.learn(2 * EP)
    buf = agent.model.replay_buffer
    n = buf.pos
    true = np.array([t.reward for t in agent.env.episodes]).ravel()
    np.testing.assert_allclose(buf.rewards[:len(true), 0], true, rtol=1e-6)  # the stored rewards are the env's
    assert n == 2 * EP and agent.callback.asked == 0 and len(agent.preferences) == 0
    assert SACTrue(env, total_feedback=10, segment_length=H).callback.total_feedback == 0  # ignored
    with pytest.raises(ValueError, match="total_feedback"):
        SACTrue(env, total_feedback=-1)


@pytest.mark.parametrize("name", ["PEBBLE", "PrefPPO"])
def test_pebble_and_pref_ppo_learn_from_the_heron_teacher(name):
    """The wrapper records HalfCheetah's reward_forward / reward_ctrl per step; the hierarchical teacher labels
    from them through the ordinary feedback loop (ties are skipped queries, not stored)."""
    env, ep = _env("mujoco/HalfCheetah-v5")
    cls = AGENTS[name]
    agent = cls(env, make_teacher("heron", seed=0), total_feedback=12, feedback_per_session=4, feedback_every=EP,
                segment_length=H, seed=0, learner_kwargs=PPO_KW if cls is PrefPPO else SAC_KW,
                reward_model_kwargs=RM_KW, episode_length=ep, unsup_steps=EP, fit_kwargs={"epochs": 5},
                reset_updates=5)
    agent.learn(4 * EP + 4)
    ep0 = agent.env.episodes[0]
    assert ep0.factors.dtype.names == ("reward_forward", "reward_ctrl")
    np.testing.assert_allclose(ep0.factors["reward_forward"] + ep0.factors["reward_ctrl"], ep0.reward, atol=1e-5)
    prefs = agent.preferences
    assert agent.callback.asked == 12 and 0 < len(prefs) <= 12 and set(np.unique(prefs.label)) <= {0.0, 1.0}
    # every stored label is the teacher's rule on the stored pair's factors (level 1: forward speed)
    again = make_teacher("heron").label(prefs.a, prefs.b)
    assert np.isfinite(again).all()
    fa, fb = prefs.a.factors["reward_forward"].sum(1), prefs.b.factors["reward_forward"].sum(1)
    decided_by_speed = np.abs(fb - fa) > 0.5 * np.concatenate([fa, fb]).std(ddof=1)
    np.testing.assert_array_equal(prefs.label[decided_by_speed], (fb > fa)[decided_by_speed].astype(np.float32))
