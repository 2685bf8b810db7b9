"""IQL core and the offline base: losses against hand-computed values, learning a known better action,
fit/predict with SB3's evaluate_policy, save/load, and errors on bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import bandit_dataset
from scipy.stats import norm

from pbrl.agents.iql import IQL, MRIQL, awr_policy_loss, iql_q_loss, iql_value_loss, normalize_rewards
from pbrl.agents.networks import GaussianPolicy, TwinQ
from pbrl.agents.offline_base import OfflineAgent
from pbrl.envs.datasets import OfflineDataset, collect, label_dataset

SMALL = dict(hidden=(32, 32), batch_size=64)
# faster-moving target and learning rate than the paper's, so that a few hundred updates suffice
FAST = dict(SMALL, tau=0.05, lr=1e-3)


pytestmark = pytest.mark.usefixtures("one_thread")


def toy_dataset(n_episodes: int = 60, length: int = 10, seed: int = 0) -> OfflineDataset:
    """The contextual bandit of ``helpers.bandit_dataset``: the better action (positive) is known, so a working
    agent must end up choosing it."""
    return bandit_dataset(n_episodes, length, seed)


@pytest.fixture(scope="module")
def toy():
    ds = toy_dataset()
    return ds, label_dataset(ds, "oracle", 150, segment_length=5, seed=0)


@pytest.fixture(scope="module")
def reacher():
    ds = collect("mujoco/Reacher-v5", "random", n_steps=600, seed=0)
    return ds, label_dataset(ds, "oracle", 40, segment_length=10, seed=0)


# ---------------------------------------------------------------------------------------------- losses


def test_value_loss_is_the_expectile_loss_of_eq5():
    q = np.array([1.0, -0.5, 2.0, 0.3], np.float32)
    v = np.array([0.5, 0.5, 2.5, 0.3], np.float32)
    u = q - v
    for tau in (0.5, 0.7, 0.9):
        want = np.mean(np.where(u < 0, 1 - tau, tau) * u**2)
        got = iql_value_loss(torch.tensor(q), torch.tensor(v), tau)
        assert float(got) == pytest.approx(want, rel=1e-6)
    # tau = 0.5 is half the mean squared error; larger tau penalises V below Q more
    assert float(iql_value_loss(torch.tensor(q), torch.tensor(v), 0.5)) == pytest.approx(0.5 * np.mean(u**2), rel=1e-6)
    per = iql_value_loss(torch.tensor(q), torch.tensor(v), 0.7, reduction="none")
    assert per.shape == (4,) and float(per[0]) == pytest.approx(0.7 * 0.25)


def test_q_loss_is_the_td_error_of_eq6_summed_over_twin_heads():
    q = np.array([[1.0, 2.0, 0.0], [1.5, 1.0, -1.0]], np.float32)
    r = np.array([0.5, -1.0, 2.0], np.float32)
    done = np.array([0.0, 1.0, 0.0], np.float32)
    nv = np.array([3.0, 10.0, -2.0], np.float32)
    gamma = 0.9
    target = r + gamma * (1 - done) * nv
    want = sum(np.mean((q[i] - target) ** 2) for i in range(2))
    got = iql_q_loss(torch.tensor(q), torch.tensor(r), torch.tensor(done), torch.tensor(nv), gamma)
    assert float(got) == pytest.approx(want, rel=1e-6)


def test_policy_loss_is_the_clipped_advantage_weighted_likelihood_of_eq7():
    logp = np.array([-1.0, -2.0, -0.5, -3.0], np.float32)
    adv = np.array([0.0, 0.5, -1.0, 5.0], np.float32)  # exp(3 * 5) is clipped to 100
    beta = 3.0
    w = np.minimum(np.exp(beta * adv), 100.0)
    want = -np.mean(w * logp)
    lp = torch.tensor(logp, requires_grad=True)
    got = awr_policy_loss(lp, torch.tensor(adv), beta)
    assert float(got) == pytest.approx(want, rel=1e-6)
    got.backward()  # the weights carry no gradient: d loss / d logp = -w / B
    assert lp.grad.numpy() == pytest.approx(-w / 4, rel=1e-6)


def test_gaussian_policy_log_prob_is_the_diagonal_normal_density():
    torch.manual_seed(0)
    pi = GaussianPolicy(3, 2, hidden=(8,))
    obs = torch.randn(5, 3)
    act = torch.rand(5, 2) * 2 - 1
    mu, log_std = pi.mean_log_std(obs)
    want = norm.logpdf(act.numpy(), mu.detach().numpy(), np.exp(log_std.detach().numpy())).sum(-1)
    assert pi.log_prob(obs, act).detach().numpy() == pytest.approx(want, abs=1e-5)
    assert torch.all(mu.abs() <= 1)  # tanh mean
    # works on segment-shaped inputs [N, H, dim]
    assert pi.log_prob(obs.reshape(5, 1, 3), act.reshape(5, 1, 2)).shape == (5, 1)


def test_twin_q_heads_are_independent_networks_in_one_pass():
    torch.manual_seed(0)
    q = TwinQ(3, 2, hidden=(16, 16))
    obs, act = torch.randn(7, 3), torch.randn(7, 2)
    out = q(obs, act)
    assert out.shape == (2, 7)
    assert not torch.allclose(out[0], out[1])
    assert torch.equal(q.min(obs, act), out.min(0).values)
    assert q(obs.reshape(7, 1, 3), act.reshape(7, 1, 2)).shape == (2, 7, 1)


def test_iql_scales_true_rewards_by_1000_over_the_return_range_whatever_the_episode_length():
    """IQL's paper and code: r * 1000 / (max R - min R). On short episodes (the toy's are 10 steps) the old
    rule, mean episode length / (max R - min R), was 100 times smaller."""
    ds = toy_dataset()
    agent = IQL.from_dataset(ds, **SMALL)
    agent._start_fit(ds, None, 1)  # what fit does before its first update
    rets = ds.episode_returns()
    assert ds.episode_lengths().mean() == 10 and rets.max() > rets.min()
    got = np.unique(agent.data["rewards"].cpu().numpy())
    want = np.unique(ds.rewards) * 1000.0 / (rets.max() - rets.min())
    assert len(got) == len(want) > 1 and got == pytest.approx(want, rel=1e-5)


def test_reward_normalizations():
    r = np.array([1.0, 2.0, 3.0, 4.0])
    assert normalize_rewards(r, np.array([10.0, 30.0]), "episode_range") == pytest.approx(r * 1000 / 20)
    z = normalize_rewards(r, None, "standard")
    assert z.mean() == pytest.approx(0, abs=1e-6) and z.std() == pytest.approx(1, abs=1e-4)
    assert normalize_rewards(r, None, "minmax") == pytest.approx([0, 1 / 3, 2 / 3, 1])
    # one episode: no range to scale by, falls back to standardisation
    assert normalize_rewards(r, np.array([5.0]), "episode_range") == pytest.approx(z)
    with pytest.raises(ValueError, match="unknown reward normalization"):
        normalize_rewards(r, None, "bogus")


# ---------------------------------------------------------------------------------------------- learning


def _mean_action(agent: OfflineAgent, n: int = 200) -> float:
    obs = np.random.default_rng(1).normal(size=(n, 3)).astype(np.float32)
    act, state = agent.predict(obs)
    assert state is None and act.shape == (n, 1)
    return float(act.mean())


def test_iql_on_true_reward_learns_the_better_action(toy):
    ds, _ = toy
    agent = IQL.from_dataset(ds, **FAST, seed=0)
    info = agent.fit(ds, None, steps=150, progress=False)
    assert info["steps"] == 150 and agent.num_updates == 150
    assert set(info["losses"]) >= {"q_loss", "v_loss", "policy_loss"}
    assert _mean_action(agent) > 0.4  # the data's good action is +0.8, the bad one -0.8


def test_mriql_learns_the_better_action_from_preferences_only(toy):
    ds, prefs = toy
    # the true reward is hidden from the agent: replace it by zeros
    blind = OfflineDataset(ds.observations, ds.actions, np.zeros(len(ds)), ds.terminals, ds.timeouts,
                           next_observations=ds.next_observations)
    agent = MRIQL.from_dataset(blind, **FAST, reward_epochs=30, reward_model_kwargs=dict(hidden=(32, 32)))
    agent.fit(blind, prefs, steps=200, progress=False)
    assert agent.reward_fit_info["accuracy"] > 0.8
    r_good = agent.reward_model.predict(np.zeros((1, 3), np.float32), np.full((1, 1), 0.8, np.float32))
    r_bad = agent.reward_model.predict(np.zeros((1, 3), np.float32), np.full((1, 1), -0.8, np.float32))
    assert r_good[0] > r_bad[0]
    assert _mean_action(agent) > 0.4
    # learned rewards are shifted to [0, 1] before IQL (no termination bias from negative rewards)
    r = agent.data["rewards"]
    assert agent.reward_normalization == "minmax" and float(r.min()) == 0.0 and float(r.max()) == pytest.approx(1.0)
    other = MRIQL.from_dataset(blind, **FAST, reward_epochs=2, reward_normalization="episode_range")
    other.fit(blind, prefs, steps=1, progress=False)
    assert float(other.data["rewards"].min()) < 0.0  # the tanh-output reward keeps its sign without the shift


def test_fit_evaluates_on_the_live_task_and_predict_works_with_sb3_evaluate_policy(reacher):
    from stable_baselines3.common.evaluation import evaluate_policy
    from stable_baselines3.common.monitor import Monitor

    from pbrl.envs import make_env, make_vec_env

    ds, prefs = reacher
    agent = MRIQL.from_dataset(ds, **SMALL, reward_epochs=5, reward_model_kwargs=dict(hidden=(16, 16)))
    calls = []
    info = agent.fit(ds, prefs, steps=200, eval_env="mujoco/Reacher-v5", eval_every=100, n_eval_episodes=2,
                     callback=lambda ag, step, losses: calls.append(step), progress=False)
    assert [e["step"] for e in info["evaluations"]] == [100, 200]
    assert calls == list(range(1, 201))
    ev = info["final_eval"]
    assert np.isfinite(ev["mean_return"]) and 0.0 <= ev["success_rate"] <= 1.0
    mean, std = evaluate_policy(agent, Monitor(make_env("mujoco/Reacher-v5", seed=0)), n_eval_episodes=2)
    assert np.isfinite(mean) and std >= 0
    # batched observations of a VecEnv
    mean2, _ = evaluate_policy(agent, make_vec_env("mujoco/Reacher-v5", n_envs=2, seed=0), n_eval_episodes=2)
    assert np.isfinite(mean2)
    # a callback returning False stops training
    info2 = agent.fit(ds, prefs, steps=50, callback=lambda *a: False, progress=False)
    assert info2["steps"] == 1 and agent.num_updates == 201


def test_normalized_score_is_reported_when_the_dataset_knows_its_references(reacher):
    ds, _ = reacher
    ds2 = OfflineDataset(ds.observations, ds.actions, ds.rewards, ds.terminals, ds.timeouts,
                         next_observations=ds.next_observations,
                         metadata={**ds.metadata, "ref_min_return": -50.0, "ref_max_return": 0.0})
    agent = IQL.from_dataset(ds2, **SMALL)
    ev = agent.fit(ds2, None, steps=5, eval_env="mujoco/Reacher-v5", n_eval_episodes=1, progress=False)["final_eval"]
    assert ev["normalized_score"] == pytest.approx(100 * (ev["mean_return"] + 50) / 50)


def test_save_load_round_trips_actions_exactly_and_training_continues(tmp_path, reacher):
    ds, prefs = reacher
    agent = MRIQL.from_dataset(ds, **SMALL, reward_epochs=3, reward_model_kwargs=dict(hidden=(16, 16)), seed=3)
    agent.fit(ds, prefs, steps=20, progress=False)
    path = agent.save(tmp_path / "mriql.pt")
    back = OfflineAgent.load(path)  # the base class finds the saved class
    assert type(back) is MRIQL and back.num_updates == 20 and back.config == agent.config
    obs = ds.observations[:16]
    assert np.array_equal(back.predict(obs)[0], agent.predict(obs)[0])
    assert np.array_equal(back.predict(obs[0])[0], agent.predict(obs[0])[0])
    assert np.array_equal(back.reward_model.predict(obs, ds.actions[:16]), agent.reward_model.predict(obs, ds.actions[:16]))
    # stochastic actions continue the same random stream
    assert np.array_equal(back.predict(obs, deterministic=False)[0], agent.predict(obs, deterministic=False)[0])
    # the env's action bounds were read from the task (Reacher: [-1, 1]) and actions respect them
    assert np.all(np.abs(agent.predict(obs, deterministic=False)[0]) <= 1.0)
    # training continues from the checkpoint on the same learned reward (no refit)
    r_before = back.reward_model.predict(obs, ds.actions[:16])
    back.fit(ds, prefs, steps=5, progress=False)
    assert back.num_updates == 25 and back.reward_fitted
    assert np.array_equal(back.reward_model.predict(obs, ds.actions[:16]), r_before)
    with pytest.raises(ValueError, match="not a IQL|holds a MRIQL"):
        from pbrl.agents.ipl import IPL

        IPL.load(path)


def test_same_seed_same_numbers(toy):
    ds, _ = toy
    acts = []
    for _ in range(2):
        agent = IQL.from_dataset(ds, **SMALL, seed=7)
        agent.fit(ds, None, steps=30, progress=False)
        acts.append(agent.predict(ds.observations[:8])[0])
    assert np.array_equal(acts[0], acts[1])


def test_action_bounds_map_in_and_out():
    agent = IQL(3, 2, hidden=(8,), action_low=[-2.0, 0.0], action_high=[2.0, 1.0])
    unit = np.array([[-1.0, -1.0], [1.0, 1.0], [0.0, 0.0]], np.float32)
    assert agent._unit_to_act(unit) == pytest.approx(np.array([[-2, 0], [2, 1], [0, 0.5]]))
    assert agent._act_to_unit(agent._unit_to_act(unit)) == pytest.approx(unit)


# ---------------------------------------------------------------------------------------------- errors


def test_bad_input_gives_one_clear_error_before_any_work(toy, reacher):
    ds, prefs = toy
    rds, rprefs = reacher
    agent = IQL.from_dataset(ds, **SMALL)
    with pytest.raises(ValueError, match="steps must be a positive integer"):
        agent.fit(ds, None, steps=-3)
    with pytest.raises(ValueError, match="obs_dim=10"):
        agent.fit(rds, None, steps=10)
    with pytest.raises(TypeError, match="OfflineDataset"):
        agent.fit({"observations": ds.observations}, None, steps=10)
    mr = MRIQL.from_dataset(ds, **SMALL)
    with pytest.raises(ValueError, match="learns from preferences"):
        mr.fit(ds, None, steps=10)
    with pytest.raises(ValueError, match="preference segments have obs_dim=10"):
        mr.fit(ds, rprefs, steps=10)
    assert mr.num_updates == 0 and agent.num_updates == 0
    with pytest.raises(ValueError, match="expectile must be in"):
        IQL(3, 1, expectile=1.5)
    with pytest.raises(ValueError, match="obs_dim must be a positive integer"):
        IQL(0, 1)
    with pytest.raises(ValueError, match="observation must have shape"):
        agent.predict(np.zeros(5, np.float32))
    with pytest.raises(FileNotFoundError):
        IQL.load("/nonexistent/agent.pt")


def test_terminal_flags_of_index_style_segments_come_from_their_own_rows():
    """Index-style label files address D4RL's q-learning rows, which skip dropped time-outs: a segment that
    runs over one ends on another flat row than ``index + H - 1``, and its step across the boundary has no
    known successor."""
    from pbrl.envs.datasets import import_index_labels

    T = 15  # three episodes of 5: time-out at 4, terminal at 9, time-out at 14
    obs = np.arange(T * 3, dtype=np.float32).reshape(T, 3)  # every row distinct
    terminals, timeouts = np.zeros(T, bool), np.zeros(T, bool)
    timeouts[[4, 14]], terminals[9] = True, True
    ds = OfflineDataset(obs, np.zeros((T, 1), np.float32), np.zeros(T, np.float32), terminals, timeouts)
    # q-learning rows: 0 1 2 3 5 6 7 8 9 10 11 12 13; the segment at q-row 3 spans flat rows 3, 5, 6, 7, 8, 9
    prefs = import_index_labels(ds, [3], [0], [1], query_length=6)
    agent = IQL(3, 1, **SMALL)
    np.testing.assert_array_equal(agent.segment_rows(prefs.a, ds), [[3, 5, 6, 7, 8, 9]])
    p = agent.preference_tensors(prefs, ds)
    assert p["done_a"][0].tolist() == [0, 0, 0, 0, 0, 1]  # flat row 9 is the terminal (row 3 + 6 - 1 = 8 is not)
    assert p["mask_a"][0].tolist() == [0, 1, 1, 1, 1, 1]  # 3 -> 5 crosses the dropped time-out at 4
    # segments cut from the flat arrays keep their contiguous rows
    np.testing.assert_array_equal(agent.segment_rows(prefs.b, ds), [[0, 1, 2, 3, 5, 6]])
    from pbrl.envs.datasets import segments_at

    seg = segments_at(ds, [5], 5)
    np.testing.assert_array_equal(agent.segment_rows(seg, ds), [[5, 6, 7, 8, 9]])
    # a segment whose data does not match the dataset's rows is not given another segment's flags
    seg.obs[:, -1] += 1.0
    assert (agent.segment_rows(seg, ds) == -1).all()


def test_an_agent_s_evaluation_on_a_locomotion_task_is_on_d4rls_scale(tmp_path):
    """A Hopper dataset that measured its own expert at 580 is scored with D4RL's 3234.3 (with or without it)."""
    from pbrl.envs.datasets import D4RL_REF_SCORES

    ds = collect("mujoco/Hopper-v5", "random", n_steps=300, seed=0,
                 reference={"ref_min_return": 0.0, "ref_max_return": 580.0})
    agent = IQL.from_dataset(ds, **SMALL)
    lo, hi = D4RL_REF_SCORES["hopper"]
    for dataset in (ds, None):
        ev = agent.evaluate("mujoco/Hopper-v5", n_episodes=1, dataset=dataset)
        assert ev["normalized_score"] == pytest.approx(100 * (ev["mean_return"] - lo) / (hi - lo))
