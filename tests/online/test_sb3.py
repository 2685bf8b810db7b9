"""Tests of the SB3 glue: reward wrapper, relabelling, budget accounting, entropy reward, hybrid buffer."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from gymnasium import spaces
from stable_baselines3 import SAC
from stable_baselines3.common.buffers import ReplayBuffer
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv

from pbrl.agents.pebble import reset_sac_critic
from pbrl.agents.qpa import HybridReplay
from pbrl.envs import make_env
from pbrl.online import (
    LearnedRewardVecEnv,
    PbrlReplayBuffer,
    PreferenceCallback,
    StateEntropyReward,
    knn_state_entropy,
    relabel_replay_buffer,
)
from pbrl.teachers import ScriptedTeacher, Teacher

TASK = "mujoco/HalfCheetah-v5"
EP = 30


class LinearReward:
    """A stand-in reward model: r = obs @ w + act @ v (known exactly), std = |obs[..., 0]|."""

    def __init__(self, obs_dim: int, act_dim: int, seed: int = 0):
        rng = np.random.default_rng(seed)
        self.w = rng.normal(size=obs_dim).astype(np.float32)
        self.v = rng.normal(size=act_dim).astype(np.float32)
        self.n_predict_calls = 0
        self.fit_sizes: list[int] = []

    def predict(self, obs, act):
        self.n_predict_calls += 1
        return np.asarray(obs, np.float32) @ self.w + np.asarray(act, np.float32) @ self.v

    def std(self, obs, act):
        return np.abs(np.asarray(obs, np.float32)[..., 0])

    def preference_probs(self, a, b):
        ra, rb = self.predict(a.obs, a.act).sum(1), self.predict(b.obs, b.act).sum(1)
        p = 1 / (1 + np.exp(-np.clip(rb - ra, -50, 50)))
        return np.stack([p, 0.9 * p, 1.1 * p.clip(0, 0.9)])

    def fit(self, dataset, **kw):
        self.fit_sizes.append(len(dataset))
        return {"accuracy": 1.0, "loss": 0.0}


class HalfSkipTeacher(Teacher):
    """Oracle labels, but skips every query at an even position; records margins and what it saw."""

    name = "half-skip"

    def __init__(self):
        super().__init__(0)
        self.margins: list[tuple] = []
        self.seen: list = []
        self.answered = 0

    def update_margin(self, episode_returns, episode_length, segment_length):
        self.margins.append((list(episode_returns), episode_length, segment_length))

    def label(self, a, b):
        self.seen.append((a, b))
        lab = (b.reward.sum(1) > a.reward.sum(1)).astype(np.float32)
        lab[::2] = np.nan
        self.answered += int(np.isfinite(lab).sum())
        return lab


def _venv(n_envs: int = 1, seed: int = 0, ep: int = EP) -> DummyVecEnv:
    def thunk(i):
        return lambda: Monitor(make_env(TASK, seed=seed + i, max_episode_steps=ep), info_keywords=("success",))

    return DummyVecEnv([thunk(i) for i in range(n_envs)])


# ---------------------------------------------------------------------------------------- wrapper
def test_wrapper_reward_is_model_prediction_and_true_reward_is_kept():
    raw = _venv(2, seed=3)
    ref = _venv(2, seed=3)  # an identical env stepped with the same actions gives the true rewards
    obs_dim, act_dim = raw.observation_space.shape[0], raw.action_space.shape[0]
    rm = LinearReward(obs_dim, act_dim)
    env = LearnedRewardVecEnv(raw, rm)
    obs = env.reset()
    ref_obs = ref.reset()
    np.testing.assert_allclose(obs, ref_obs)
    rng = np.random.default_rng(0)
    calls0 = rm.n_predict_calls
    monitor_returns = []
    for _ in range(2 * EP + 5):
        act = rng.uniform(-1, 1, size=(2, act_dim)).astype(np.float32)
        env.step_async(act)
        nobs, rew, done, infos = env.step_wait()
        _, ref_rew, _, _ = ref.step(act)
        np.testing.assert_allclose(rew, rm.predict(obs, act), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose([i["true_reward"] for i in infos], ref_rew, rtol=1e-6)
        assert all("success" in i for i in infos)
        for info in infos:
            if "episode" in info:
                monitor_returns.append(info["episode"]["r"])
        obs = nobs
    # one batched predict per vector step (plus the checks above)
    assert rm.n_predict_calls - calls0 == 2 * (2 * EP + 5)
    # complete episodes carry the TRUE reward (what the teacher reads), matching SB3's Monitor
    assert len(env.episodes) == 4 and env.n_episodes == 4
    for tr in env.episodes:
        assert len(tr) == EP and tr.qpos is not None and len(tr.qpos) == EP and tr.next_obs is not None
    np.testing.assert_allclose(sorted(t.ret for t in env.episodes), sorted(monitor_returns), rtol=1e-4)


def test_wrapper_true_mode_and_bad_input():
    raw = _venv(1)
    env = LearnedRewardVecEnv(raw, LinearReward(17, 6))
    env.set_mode("true")
    env.reset()
    _, rew, _, infos = env.step(np.zeros((1, 6), np.float32))
    assert rew[0] == pytest.approx(infos[0]["true_reward"])
    with pytest.raises(ValueError, match="unknown reward mode"):
        env.set_mode("bogus")
    with pytest.raises(ValueError, match="reward_model"):
        LearnedRewardVecEnv(_venv(1))
    with pytest.raises(TypeError, match="VecEnv"):
        LearnedRewardVecEnv(make_env(TASK), LinearReward(17, 6))


# ---------------------------------------------------------------------------------------- relabel
@pytest.mark.parametrize("n_add", [23, 57])  # partly filled, and wrapped around (full)
def test_relabel_rewrites_every_stored_reward(n_add):
    obs_space = spaces.Box(-1, 1, (5,), np.float32)
    act_space = spaces.Box(-1, 1, (2,), np.float32)
    buf = ReplayBuffer(40, obs_space, act_space, device="cpu", n_envs=2)
    rng = np.random.default_rng(0)
    for _ in range(n_add):
        o = rng.normal(size=(2, 5)).astype(np.float32)
        buf.add(o, o, rng.normal(size=(2, 2)), np.full(2, 123.0), np.zeros(2), [{}, {}])
    rm = LinearReward(5, 2)
    n = relabel_replay_buffer(buf, rm.predict, chunk_size=7)
    rows = buf.buffer_size if buf.full else buf.pos
    assert n == rows * 2
    assert rm.n_predict_calls == int(np.ceil(rows * 2 / 7))  # one batched call per chunk
    expected = rm.predict(buf.observations[:rows], buf.actions[:rows])  # [rows, 2]
    np.testing.assert_allclose(buf.rewards[:rows], expected, rtol=1e-5, atol=1e-5)
    assert not np.any(buf.rewards[:rows] == 123.0)
    assert np.all(buf.rewards[rows:] == 0)  # unused rows untouched


def test_relabel_unscales_sb3_actions_to_env_bounds():
    obs_space = spaces.Box(-1, 1, (3,), np.float32)
    act_space = spaces.Box(np.array([-2.0, 0.0], np.float32), np.array([2.0, 1.0], np.float32))
    buf = ReplayBuffer(10, obs_space, act_space, device="cpu")
    scaled = np.array([[0.5, -1.0]], np.float32)  # SB3 stores actions scaled to [-1, 1]
    buf.add(np.zeros((1, 3)), np.zeros((1, 3)), scaled, np.zeros(1), np.zeros(1), [{}])
    seen = []
    relabel_replay_buffer(buf, lambda o, a: seen.append(a.copy()) or a.sum(-1), action_space=act_space)
    np.testing.assert_allclose(seen[0], [[1.0, 0.0]])  # the env's action
    assert buf.rewards[0, 0] == pytest.approx(1.0)


def test_relabel_bad_input():
    with pytest.raises(TypeError, match="ReplayBuffer"):
        relabel_replay_buffer(object(), lambda o, a: o)


# ---------------------------------------------------------------------------------------- entropy
def test_knn_distance_matches_brute_force():
    rng = np.random.default_rng(1)
    x, ref = rng.normal(size=(9, 3)), rng.normal(size=(50, 3))
    d = np.sqrt(((x[:, None] - ref[None]) ** 2).sum(-1))
    np.testing.assert_allclose(knn_state_entropy(x, ref, k=5, chunk=4), np.sort(d, 1)[:, 4], rtol=1e-5)
    with pytest.raises(ValueError, match="at least k"):
        knn_state_entropy(x, ref[:3], k=5)


def test_entropy_reward_is_higher_for_novel_states():
    rng = np.random.default_rng(0)
    visited = rng.normal(0.0, 0.1, size=(500, 4)).astype(np.float32)
    ent = StateEntropyReward(k=5)
    familiar = visited[:10] + 0.01
    novel = rng.normal(3.0, 0.1, size=(10, 4)).astype(np.float32)
    r = ent(np.concatenate([familiar, novel]), visited)
    assert r[10:].min() > r[:10].max()
    assert ent.stats.count > 10  # running statistics were updated
    # normalised by the running std: the scale of the states does not change the ordering
    r2 = StateEntropyReward(k=5)(np.concatenate([familiar, novel]) * 10, visited * 10)
    assert r2[10:].min() > r2[:10].max()


def test_wrapper_entropy_mode_rewards_novelty():
    env = LearnedRewardVecEnv(_venv(1), LinearReward(17, 6))
    env.set_mode("entropy")
    env.reset()
    rews = []
    for _ in range(20):
        _, r, _, _ = env.step(np.zeros((1, 6), np.float32))  # standing still: the state barely changes
        rews.append(r[0])
    assert env._ent_n == 20 and np.all(np.isfinite(rews)) and env.entropy.stats.count > 10
    store = env._ent_store[:20]
    familiar = env.entropy(store[19:], store[:19], update=False)[0]
    novel = env.entropy(store.mean(0, keepdims=True) + 50.0, store[:19], update=False)[0]
    assert novel > familiar


# ---------------------------------------------------------------------------------------- replay buffer
def _filled_pbrl_buffer(n: int = 100) -> PbrlReplayBuffer:
    obs_space = spaces.Box(-np.inf, np.inf, (1,), np.float32)
    act_space = spaces.Box(-1, 1, (1,), np.float32)
    buf = PbrlReplayBuffer(200, obs_space, act_space, device="cpu")
    for i in range(n):
        buf.add(np.array([[i]]), np.array([[i + 1]]), np.zeros((1, 1)), np.array([float(i)]), np.zeros(1), [{}])
    return buf


def test_hybrid_buffer_draws_her_ratio_from_recent_transitions():
    np.random.seed(0)  # noqa: NPY002 - SB3 buffers sample with the global RNG
    buf = _filled_pbrl_buffer()
    on = {"v": True}
    buf.sampler = HybridReplay(0.5, window=10, active=lambda: on["v"])
    idx = buf.sample(1000).observations.numpy().ravel()
    recent = idx >= 90  # the 10 most recent transitions are 90..99
    assert 0.5 <= recent.mean() <= 0.6  # 50 % forced + ~10 % of the uniform half
    assert recent[500:].all()  # the recent share is the tail of the batch
    on["v"] = False  # feedback done: uniform again
    idx = buf.sample(2000).observations.numpy().ravel()
    assert 0.05 <= (idx >= 90).mean() <= 0.15
    with pytest.raises(ValueError, match="her_ratio"):
        HybridReplay(1.5, 10, lambda: True)


def test_buffer_knows_the_flat_row_of_every_sampled_transition():
    np.random.seed(2)  # noqa: NPY002
    buf = _filled_pbrl_buffer()
    s = buf.sample(50)
    np.testing.assert_array_equal(s.observations.numpy().ravel(), buf.last_batch_rows.astype(np.float32))


def test_knn_entropy_skips_the_state_itself_only_when_the_reference_holds_it():
    """A subsampled buffer may miss the batch's own state: the k-th neighbour among the OTHER states is
    used either way (the old rule took the (k+1)-th unconditionally, one neighbour too far when missed)."""
    rng = np.random.default_rng(3)
    states = rng.normal(size=(200, 3)).astype(np.float32)
    x = states[:1]
    others = states[1:]
    d = np.sqrt(((x[:, None] - others[None]) ** 2).sum(-1))
    want = np.sort(d, 1)[:, 4]  # 5th neighbour among the other states
    with_self = knn_state_entropy(x, states, k=5, exclude_self=True)
    without_self = knn_state_entropy(x, others, k=5, exclude_self=True)
    np.testing.assert_allclose(with_self, want, rtol=1e-5)
    np.testing.assert_allclose(without_self, want, rtol=1e-5)
    ent = StateEntropyReward(k=5, ref_includes_query=True)
    np.testing.assert_allclose(ent.raw(x, others), np.log1p(want), rtol=1e-5)


def test_sample_time_reward_hook_replaces_batch_rewards_only():
    np.random.seed(1)  # noqa: NPY002 - SB3 buffers sample with the global RNG
    buf = _filled_pbrl_buffer()
    buf.sample_reward = lambda o, a, no, r: r + 1000.0 * no[:, 0]
    s = buf.sample(64)
    np.testing.assert_allclose(s.rewards.numpy().ravel(), s.observations.numpy().ravel() + 1000.0 * s.next_observations.numpy().ravel())
    assert buf.rewards[:100, 0].max() == 99.0  # stored rewards untouched


def test_reset_sac_critic_reinitialises_critic_and_target():
    torch.manual_seed(0)
    model = SAC("MlpPolicy", make_env(TASK, max_episode_steps=EP), policy_kwargs={"net_arch": [8]}, seed=0)
    before = [p.detach().clone() for p in model.critic.parameters()]
    actor_before = [p.detach().clone() for p in model.actor.parameters()]
    reset_sac_critic(model)
    after = list(model.critic.parameters())
    assert all(not torch.equal(a, b) for a, b in zip(before, after) if a.ndim == 2)
    for p, q in zip(model.critic.parameters(), model.critic_target.parameters()):
        assert torch.equal(p, q)
    assert all(torch.equal(a, b) for a, b in zip(actor_before, model.actor.parameters()))


# ---------------------------------------------------------------------------------------- callback
def _run_callback(total_feedback: int, steps: int, seed: int = 0):
    raw = _venv(1, seed=seed)
    rm = LinearReward(17, 6)
    env = LearnedRewardVecEnv(raw, rm)
    teacher = HalfSkipTeacher()
    cb = PreferenceCallback(
        rm, teacher, "disagreement", total_feedback=total_feedback, feedback_per_session=10, feedback_every=EP,
        segment_length=10, episode_length=EP, first_feedback_step=EP, seed=seed,
    )
    model = SAC("MlpPolicy", env, learning_starts=EP, batch_size=16, train_freq=4, buffer_size=1000,
                policy_kwargs={"net_arch": [8]}, seed=seed, replay_buffer_class=PbrlReplayBuffer)
    model.learn(steps, callback=cb)
    return cb, teacher, rm, env, model


def test_budget_never_exceeded_and_skipped_queries_count():
    cb, teacher, rm, env, model = _run_callback(total_feedback=25, steps=8 * EP)
    # 10 + 10 + 5 queries asked; B-Pref counts every asked query, skipped or not
    assert cb.asked == 25 and cb.sessions == 3
    assert [len(a) for a, _ in teacher.seen] == [10, 10, 5]
    assert sum(len(a) for a, _ in teacher.seen) <= cb.total_feedback
    # only answered queries are stored: odd positions of each session
    assert len(cb.preferences) == teacher.answered == 5 + 5 + 2
    assert np.all(np.isfinite(cb.preferences.label))
    assert rm.fit_sizes == [5, 10, 12]
    # the margin is refreshed from the true returns of recent episodes before every session
    assert len(teacher.margins) == 3 and all(m[2] == 10 for m in teacher.margins)
    # the teacher saw true rewards: every queried segment is a window of a recorded episode
    a, _ = teacher.seen[-1]
    rewards = np.concatenate([t.reward for t in env.episodes])
    for seg_r in a.reward[:3]:
        hits = np.flatnonzero(np.isclose(rewards, seg_r[0]))
        assert any(np.allclose(rewards[h : h + 10], seg_r) for h in hits)
    # the replay buffer was relabelled with the model
    buf = model.replay_buffer
    n = buf.pos
    pred = rm.predict(buf.observations[:n, 0], buf.actions[:n, 0])
    assert np.mean(np.isclose(buf.rewards[:n, 0], pred, atol=1e-4)) > 0.99


class ShiftingReward(LinearReward):
    """Each fit shifts every reward by +100, so a row written with an older model stands out."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.offset = 0.0

    def predict(self, obs, act):
        return super().predict(obs, act) + self.offset

    def fit(self, dataset, **kw):
        self.offset += 100.0
        return super().fit(dataset, **kw)


def test_the_transition_of_the_refit_step_is_stored_with_the_new_reward():
    """SB3 stores a step's transition after the callbacks ran: the refit step's row must not keep the
    old model's reward (before the fix it was 100 below every other relabelled row)."""
    rm = ShiftingReward(17, 6)
    env = LearnedRewardVecEnv(_venv(1), rm)
    cb = PreferenceCallback(rm, HalfSkipTeacher(), "uniform", total_feedback=10, feedback_per_session=10,
                            feedback_every=EP, segment_length=10, episode_length=EP, first_feedback_step=EP)
    model = SAC("MlpPolicy", env, learning_starts=10 * EP, buffer_size=1000, policy_kwargs={"net_arch": [8]},
                seed=0, replay_buffer_class=PbrlReplayBuffer)
    model.learn(EP + 5, callback=cb)
    assert cb.updates == 1
    buf = model.replay_buffer
    n = buf.pos
    from pbrl.online import unscale_action

    pred = rm.predict(buf.observations[:n, 0], unscale_action(buf.actions[:n, 0], model.action_space))
    np.testing.assert_allclose(buf.rewards[:n, 0], pred, atol=1e-3)


def test_callback_state_dict_round_trip_continues_identically():
    cb, teacher, rm, env, model = _run_callback(total_feedback=40, steps=3 * EP)
    state = cb.state_dict()
    n0 = len(cb.preferences)
    assert state["asked"] == cb.asked > 0 and len(state["preferences"]) == n0 > 0
    assert len(state["wrapper"]["episodes"]) == len(env.episodes)
    # a fresh callback (other seed) restored from the state picks the same next queries as the original
    cb2 = PreferenceCallback(
        rm, HalfSkipTeacher(), "disagreement", total_feedback=40, feedback_per_session=10, feedback_every=EP,
        segment_length=10, episode_length=EP, first_feedback_step=EP, seed=99,
    )
    cb2.load_state_dict(state)
    cb2.init_callback(model)
    assert cb2.asked == cb.asked and cb2.next_feedback_step == cb.next_feedback_step
    assert cb.run_session() and cb2.run_session()
    np.testing.assert_array_equal(cb.preferences.a.obs, cb2.preferences.a.obs)
    np.testing.assert_array_equal(cb.preferences.label, cb2.preferences.label)
    assert cb2.asked == cb.asked
    assert len(state["preferences"]) == n0  # the state is a snapshot, not a live reference
    with pytest.raises(ValueError, match="missing"):
        cb2.load_state_dict({"asked": 1})


def test_callback_rejects_bad_input():
    rm = LinearReward(17, 6)
    t = ScriptedTeacher()
    with pytest.raises(ValueError, match="total_feedback"):
        PreferenceCallback(rm, t, "uniform", total_feedback=-3, feedback_per_session=1, feedback_every=1)
    with pytest.raises(ValueError, match="segment_length"):
        PreferenceCallback(rm, t, "uniform", 10, 1, 1, segment_length=100, episode_length=50)
    with pytest.raises(ValueError, match="selector"):
        PreferenceCallback(rm, t, "best", 10, 1, 1)
    with pytest.raises(TypeError, match="teacher"):
        PreferenceCallback(rm, object(), "uniform", 10, 1, 1)


def test_spread_budget_asks_until_the_end_of_the_run():
    from pbrl.online.feedback import session_steps, spread_budget

    assert session_steps(50_000, 10_000, 5_000) == [10_000, 15_000, 20_000, 25_000, 30_000, 35_000, 40_000, 45_000]
    assert spread_budget(1000, 50_000, 10_000, 5_000) == 125
    assert spread_budget(250, 50_000, 10_000, 5_000) == 32  # 7 rounds of 32, the last asks the 26 left
    assert spread_budget(10, 11_000, 10_000, 5_000) == 10  # one round
    with pytest.raises(ValueError, match="first query round .* is not before the run's end"):
        session_steps(10_000, 10_000, 5_000)
    with pytest.raises(ValueError, match="budget"):
        spread_budget(0, 50_000, 10_000, 5_000)


def test_a_gated_selector_skips_queries_without_counting_them():
    """Behind a gate no member disagreement reaches epsilon 0.9 (a std of probabilities is at most 0.5): after
    the first (uniform) session nothing is asked, counted or refitted; the sessions (at steps 30, 60, 90, 120)
    still happen."""
    from pbrl.queries import make_selector

    rm = LinearReward(17, 6)
    env = LearnedRewardVecEnv(_venv(1), rm)
    teacher = HalfSkipTeacher()
    cb = PreferenceCallback(rm, teacher, make_selector("gated_disagreement", epsilon=0.9), total_feedback=40,
                            feedback_per_session=10, feedback_every=EP, segment_length=10, episode_length=EP,
                            first_feedback_step=EP)
    model = SAC("MlpPolicy", env, learning_starts=EP, batch_size=16, train_freq=4, buffer_size=1000,
                policy_kwargs={"net_arch": [8]}, seed=0, replay_buffer_class=PbrlReplayBuffer)
    model.learn(4 * EP, callback=cb)
    assert cb.sessions == 4 and cb.asked == 10 and cb.budget_left == 30
    assert [len(a) for a, _ in teacher.seen] == [10, 0, 0, 0]
    assert rm.fit_sizes == [5] and cb.updates == 1
    assert [h["gated"] for h in cb.history] == [0, 10, 10, 10]
    # epsilon 0 passes every pair: the same run asks and counts all of them
    rm2 = LinearReward(17, 6)
    cb2 = PreferenceCallback(rm2, HalfSkipTeacher(), make_selector("gated_disagreement", epsilon=0.0), 40, 10, EP,
                             segment_length=10, episode_length=EP, first_feedback_step=EP)
    model2 = SAC("MlpPolicy", LearnedRewardVecEnv(_venv(1), rm2), learning_starts=EP, batch_size=16, train_freq=4,
                 buffer_size=1000, policy_kwargs={"net_arch": [8]}, seed=0, replay_buffer_class=PbrlReplayBuffer)
    model2.learn(4 * EP, callback=cb2)
    assert cb2.asked == 40 and [h["gated"] for h in cb2.history] == [0, 0, 0, 0]
