"""DTR: the losses, the n-step critic target, the eta ramp, the RTG update and the K-target action choice
against hand-computed values; the agent's inference (the highest-Q target, the learned-reward RTG update, the
history in SB3's state); bad input stopping before any work; a tiny end-to-end run."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import bandit_dataset

from pbrl.agents.dtr import (
    DTR,
    DTRContext,
    choose_candidate,
    dtr_policy_loss,
    eta_at,
    next_returns_to_go,
    nstep_targets,
)
from pbrl.envs.datasets import label_dataset
from pbrl.preferences import PreferenceDataset
from pbrl.ratings import RatingDataset
from pbrl.reward_models import combine_member_rewards

TINY = dict(embed_dim=16, n_layers=1, n_heads=2, critic_hidden=(16, 16), batch_size=16, context_length=4,
            reward_epochs=5, reward_model_kwargs={"hidden": (16,)})


@pytest.fixture(scope="module")
def data():
    ds = bandit_dataset(40, 10, 0)
    return ds, label_dataset(ds, "oracle", 60, segment_length=5, seed=0)


# ---------------------------------------------------------------------------------------------- losses


def test_nstep_targets_match_hand_computation():
    g = 0.5
    rewards = torch.tensor([[1.0, 2.0, 3.0, 4.0], [1.0, 1.0, 5.0, 99.0]])
    valid = torch.tensor([[1.0, 1.0, 1.0, 1.0], [1.0, 1.0, 1.0, 0.0]])  # row 1: 3 real steps, right-padded
    done_last = torch.tensor([0.0, 1.0])  # row 1's last real step ends its episode
    boot = torch.tensor([10.0, 100.0])
    target, train = nstep_targets(rewards, valid, done_last, boot, g)
    # row 0 bootstraps from Q'(s_3, a'_3) = 10 and drops r_3 (it is part of Q'):
    #   y_0 = 1 + .5*2 + .25*3 + .125*10 = 4, y_1 = 2 + .5*3 + .25*10 = 6, y_2 = 3 + .5*10 = 8
    # row 1 ends at a terminal: no bootstrap, the last reward counts: y_0 = 1 + .5*1 + .25*5, y_1 = 1 + .5*5
    assert train.tolist() == [[1, 1, 1, 0], [1, 1, 0, 0]]
    np.testing.assert_allclose(target.numpy(), [[4.0, 6.0, 8.0, 0.0], [2.75, 3.5, 0.0, 0.0]], rtol=1e-6)
    # the authors' code weights r_j by gamma^(T-1-j-t) instead: y_0 would be .125*1 + .25*2 + .5*3 + .125*10
    assert target[0, 0] != pytest.approx(0.125 + 0.5 + 1.5 + 1.25)


def test_policy_loss_matches_hand_computation():
    act_pred = torch.tensor([[[0.5], [0.0]]], requires_grad=True)
    act = torch.tensor([[[0.0], [1.0]]])
    state_pred = torch.tensor([[[1.0], [7.0]]])  # s_hat_1 = 1 (the last step's prediction has no target)
    obs = torch.tensor([[[0.0], [3.0]]])
    q_pick = torch.tensor([[2.0, 4.0]], requires_grad=True)
    q_other = torch.tensor([[-1.0, 3.0]], requires_grad=True)
    valid = torch.ones(1, 2)
    loss, logs = dtr_policy_loss(act_pred, act, state_pred, obs, q_pick, q_other, valid, eta=0.5, state_weight=1.0)
    # bc = (0.25 + 1) / 2; state = (1 - 3)^2; E|Q_j| = 2, q term = -E Q_i / 2 = -1.5; lambda = 0.5 / 2
    assert float(logs["bc_loss"]) == pytest.approx(0.625)
    assert float(logs["state_loss"]) == pytest.approx(4.0)
    assert float(logs["q_term"]) == pytest.approx(-1.5)
    assert float(logs["lambda"]) == pytest.approx(0.25)
    assert float(loss) == pytest.approx(0.625 + 4.0 - 0.75)
    loss.backward()
    assert q_pick.grad[0].tolist() == pytest.approx([-0.125, -0.125])  # -lambda / n per step
    assert q_other.grad is None or float(q_other.grad.abs().sum()) == 0.0  # the normaliser has no gradient
    # padded steps count nowhere; state_weight scales the state term
    loss2, logs2 = dtr_policy_loss(act_pred, act, state_pred, obs, q_pick, q_other, torch.tensor([[1.0, 0.0]]), 0.5, 2.0)
    assert float(logs2["bc_loss"]) == pytest.approx(0.25) and float(logs2["state_loss"]) == 0.0
    assert float(loss2) == pytest.approx(0.25 + 0.5 * (-2.0 / 1.0))


def test_eta_ramp_rtg_update_and_candidate_choice():
    assert [eta_at(n, 3.0, 100) for n in (0, 50, 100, 400)] == pytest.approx([0.0, 1.5, 3.0, 3.0])
    rtg, targets = np.array([10.0, 20.0], np.float32), np.array([12.0, 24.0], np.float32)
    assert next_returns_to_go(rtg, 5.0, targets, 10.0, "reward", 1000).tolist() == pytest.approx([9.5, 19.5])
    assert next_returns_to_go(rtg, 5.0, targets, 10.0, "linear", 1000).tolist() == pytest.approx([9.988, 19.976])
    assert choose_candidate(torch.tensor([1.0, 3.0, 2.0]), deterministic=True) == 1
    gen = torch.Generator().manual_seed(0)
    assert {choose_candidate(torch.tensor([0.0, 0.0, 50.0]), False, gen) for _ in range(20)} == {2}
    draws = [choose_candidate(torch.tensor([0.0, np.log(3.0)]), False, gen) for _ in range(2000)]
    assert np.mean(draws) == pytest.approx(0.75, abs=0.04)  # softmax: 3 / (1 + 3)


# ---------------------------------------------------------------------------------------------- the agent


def test_rewards_are_ensemble_normalised(data):
    ds, prefs = data
    agent = DTR.from_dataset(ds, seed=0, **TINY)
    agent.fit(ds, prefs, steps=1, progress=False)
    members = agent.reward_model.member_rewards(ds.observations, ds.actions)
    want = combine_member_rewards(members, "zscore")
    np.testing.assert_allclose(agent.flat["rew"].numpy(), want, rtol=1e-5, atol=1e-5)
    assert agent.max_return > 0 and agent.planned_steps == 1


def test_inference_takes_the_highest_q_target_and_updates_the_rtg(data):
    ds, prefs = data
    agent = DTR.from_dataset(ds, seed=0, **TINY)
    agent.fit(ds, prefs, steps=5, progress=False)
    o = ds.observations[:1]
    act, state = agent.predict(o[0])
    ctx = state[0]
    targets = agent.return_targets()
    assert targets.tolist() == pytest.approx((np.array([0.5, 0.75, 1, 1.5, 2]) * agent.max_return / 10.0).tolist())
    with torch.no_grad():  # the five candidates by hand: one per target, the one with the highest Q' executed
        K = len(targets)
        obs = agent.tensor(agent._norm_obs_np(o))[None].expand(K, 1, -1)
        a_hat = agent.nets["actor"](torch.tensor(targets)[:, None], obs, torch.zeros(K, 1, 1),
                                    torch.zeros(K, 1, dtype=torch.long))[0][:, -1]
        q = agent.nets["critic_target"].min(obs[:, -1], a_hat)
    best = a_hat[int(q.argmax())].numpy()
    np.testing.assert_allclose(act, agent._unit_to_act(best[None])[0], rtol=1e-6)
    r = agent._member_rewards(o, act[None])[0]
    np.testing.assert_allclose(ctx.next_rtg, targets - r / agent.rtg_scale, rtol=1e-5)
    act2, state = agent.predict(ds.observations[1], state=state)  # the history grows; the RTG fell by r_hat
    assert state[0].obs.shape == (2, 3) and state[0].rtg[:, 1].tolist() == pytest.approx(ctx.next_rtg.tolist())
    _, fresh = agent.predict(ds.observations[1], state=state, episode_start=np.array([True]))
    assert fresh[0].obs.shape == (1, 3)  # episode_start resets the context
    for _ in range(6):
        _, state = agent.predict(ds.observations[2], state=state)
    assert state[0].obs.shape == (agent.context_length, 3)  # at most K steps of history
    noisy, _ = agent.predict(ds.observations[:2], deterministic=False)
    assert noisy.shape == (2, 1) and np.all(np.abs(noisy) <= 1)


def test_the_ema_policy_moves_only_after_ema_start_and_the_target_critic_every_update(data):
    ds, prefs = data
    agent = DTR.from_dataset(ds, seed=0, **{**TINY, "ema_start": 2, "ema_every": 1})
    init = [p.clone() for p in agent.nets["actor_ema"].parameters()]
    critic0 = [p.clone() for p in agent.nets["critic_target"].parameters()]
    agent.fit(ds, prefs, steps=3, progress=False)  # updates 0, 1, 2: the EMA waits until update > 2
    assert all(torch.equal(a, b) for a, b in zip(init, agent.nets["actor_ema"].parameters()))
    assert not all(torch.equal(a, b) for a, b in zip(critic0, agent.nets["critic_target"].parameters()))
    agent.fit(ds, prefs, steps=1, progress=False)  # update 3 moves it by (1 - 0.995) towards the policy
    ema, actor = list(agent.nets["actor_ema"].parameters()), list(agent.nets["actor"].parameters())
    moved = [not torch.equal(a, b) for a, b in zip(init, ema)]
    assert any(moved)
    np.testing.assert_allclose(ema[0].detach(), (0.995 * init[0] + 0.005 * actor[0]).detach(), rtol=1e-5, atol=1e-7)


def test_bad_input_stops_before_any_work(data):
    ds, prefs = data
    agent = DTR.from_dataset(ds, **TINY)
    ratings = RatingDataset(prefs.a, np.zeros(len(prefs), np.int64), n_classes=2)
    with pytest.raises(ValueError, match="DTR fits its reward ensemble on preference pairs, got ratings") as e:
        agent.fit(ds, ratings, steps=2, progress=False)
    assert "\n" not in str(e.value)
    with pytest.raises(ValueError, match="obs_dim"):
        DTR(5, 1, **TINY).fit(ds, prefs, steps=2, progress=False)
    with pytest.raises(ValueError, match="needs at least one labelled pair"):
        agent.fit(ds, PreferenceDataset(prefs.a[:0], prefs.b[:0], np.zeros(0, np.float32)), steps=2, progress=False)
    assert agent.num_updates == 0 and not agent.reward_fitted  # nothing was trained
    for bad, msg in (({"eta": -1.0}, "eta must be a non-negative number"), ({"rtg_update": "fast"}, "unknown rtg_update"),
                     ({"embed_dim": 10, "n_heads": 4}, "divisible"), ({"n_candidates": 3}, "n_candidates"),
                     ({"context_length": 0}, "context_length must be a positive integer"),
                     ({"ensemble_normalization": "rank"}, "unknown ensemble_normalization"),
                     ({"critic_hidden": (16, 0)}, "critic_hidden")):
        with pytest.raises(ValueError, match=msg):
            DTR(3, 1, **{**TINY, **bad})
    with pytest.raises(ValueError, match="observation must have shape"):
        agent.predict(np.zeros(4, np.float32))
    with pytest.raises(ValueError, match="state must be what DTR.predict returned"):
        agent.predict(np.zeros((2, 3), np.float32), state=[DTRContext(*([np.zeros(0)] * 4))])


def test_tiny_end_to_end_learns_the_preferred_action_and_resumes(data, tmp_path):
    """The bandit rewards positive actions; 120 updates of a tiny DTR choose them on unseen states."""
    ds, prefs = data
    agent = DTR.from_dataset(ds, seed=0, lr=1e-3, **TINY)
    info = agent.fit(ds, prefs, steps=120, progress=False)
    probe = np.random.default_rng(7).normal(size=(64, 3)).astype(np.float32)
    act, _ = agent.predict(probe)
    assert (act[:, 0] > 0).mean() > 0.8, info["losses"]
    assert info["losses"]["eta"] > 2.5  # the ramp reached eta_max = 3 at the end of the planned run
    back = DTR.load(agent.save(tmp_path / "dtr.pt"))
    np.testing.assert_array_equal(back.predict(probe)[0], act)
    assert back.planned_steps == 120 and back.max_return == agent.max_return
    w = {k: v.clone() for k, v in back.reward_model.net.state_dict().items()}
    back.fit(ds, prefs, steps=2, progress=False)  # continues on the same learned reward: no refit
    assert back.num_updates == 122
    assert all(torch.equal(w[k], v) for k, v in back.reward_model.net.state_dict().items())
