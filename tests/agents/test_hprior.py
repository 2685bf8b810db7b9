"""Hindsight PRIOR: the world model's importance, the prior term against hand-computed values, the agent's
wiring, its bad input, and SIGKILL + resume equal to an uninterrupted run (the world model is checkpointed)."""

from __future__ import annotations

import json
import signal

import numpy as np
import pytest
import torch
from helpers import start_train, synthetic_pairs, tiny_online_config, wait_for_checkpoint

from pbrl.agents.hprior import HPRIOR, HindsightPriorLoss, WorldModel
from pbrl.preferences import PreferenceDataset
from pbrl.reward_models import RewardEnsemble, RewardTrainer
from pbrl.reward_models.training import BradleyTerryLoss, PairBatch
from pbrl.segments import Trajectory

SMALL = {"embed_dim": 16, "n_layers": 2, "n_heads": 1, "dropout": 0.0}


def test_world_model_is_causal_and_importance_sums_to_one():
    wm = WorldModel(3, 2, max_len=6, embed_dim=16, n_layers=2, seed=0).eval()
    obs, act = torch.randn(4, 6, 3), torch.randn(4, 6, 2)
    pred, atts = wm(obs, act)
    assert pred.shape == (4, 6, 3) and len(atts) == 2 and atts[0].shape == (4, 12, 12)
    # the prediction of s_{t+1} (at token a_t) never sees later tokens
    obs2, act2 = obs.clone(), act.clone()
    obs2[:, 4:], act2[:, 4:] = 7.0, -7.0
    torch.testing.assert_close(wm(obs2, act2)[0][:, :4], pred[:, :4])
    alpha = wm.importance(obs, act)
    assert alpha.shape == (4, 6) and torch.all(alpha >= 0)
    torch.testing.assert_close(alpha.sum(1), torch.ones(4))  # the last token's attention is a distribution
    # alpha is the last row of each layer's attention, s_t + a_t, averaged over layers
    last = torch.stack([a[:, -1] for a in atts]).mean(0)
    torch.testing.assert_close(alpha, last[:, 0::2] + last[:, 1::2])
    # seeded weights, and the caller's global RNG is untouched
    state = torch.random.get_rng_state()
    w2 = WorldModel(3, 2, max_len=6, embed_dim=16, n_layers=2, seed=0)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert all(torch.equal(p, q) for p, q in zip(wm.parameters(), w2.parameters()))


def test_prior_term_matches_hand_computed_values():
    term = HindsightPriorLoss(weight=10.0)
    # one member, one pair of 2-step segments: rewards a = (1, 3), b = (2, 2); alpha a = (0.25, 0.75), b = (0.5, 0.5)
    term._alpha = torch.tensor([[[0.25, 0.75], [0.5, 0.5]]])
    rewards = torch.tensor([[[[1.0, 3.0], [2.0, 2.0]]]])  # [M=1, B=1, 2, H=2]
    batch = PairBatch(x=torch.zeros(1, 1, 2, 2, 1), y=torch.zeros(1, 1), idx=torch.zeros(1, 1, dtype=torch.long))
    batch.cache["rewards"] = rewards
    # returns 4 and 4: targets a = (1, 3) (no error), b = (2, 2) (no error) -> 0
    assert float(term(None, batch)) == 0.0
    rewards[..., 0, :] = torch.tensor([3.0, 1.0])  # a = (3, 1): target (1, 3), errors (2, -2)
    # mean over 2 segments x 2 steps of squared errors (4 + 4 + 0 + 0) / 4 = 2; times lambda 10
    assert float(term(None, batch)) == pytest.approx(20.0)
    # the gradient reaches the rewards through both r_t and the predicted return (not detached, as the port)
    r = rewards.clone().requires_grad_(True)
    batch.cache["rewards"] = r
    term(None, batch).backward()
    # d/dr_a0 of 10/4 * [(r0 - .25 R)^2 + (r1 - .75 R)^2] at r = (3, 1), R = 4: 10/4 * [2*2*.75 + 2*(-2)*(-.75)] = 15
    assert float(r.grad[0, 0, 0, 0]) == pytest.approx(15.0)


def _episodes(n=6, T=30, seed=0):
    rng = np.random.default_rng(seed)
    return [Trajectory(rng.normal(size=(T, 3)), rng.uniform(-1, 1, size=(T, 2)), rng.normal(size=T),
                       next_obs=rng.normal(size=3)) for _ in range(n)]


def test_the_world_model_learns_and_the_prior_joins_the_trainer():
    eps = _episodes()
    term = HindsightPriorLoss(weight=1.0, batch_size=8, lr=3e-3, world_kwargs=SMALL, seed=0)
    first = term.train_world(eps, 10, 1)
    last = term.train_world(eps, 10, 150)
    assert term.steps_trained == 151 and last < first  # the next-state loss goes down
    ds = synthetic_pairs(40, H=10, obs_dim=3, act_dim=2)
    alpha = term.importance(ds.a.obs, ds.a.act)
    assert alpha.shape == (40, 10) and np.allclose(alpha.sum(1), 1.0, atol=1e-5)
    model = RewardEnsemble(3, 2, n_members=2, hidden=(16,), seed=0)
    out = RewardTrainer([BradleyTerryLoss(), term], epochs=3, early_stop_accuracy=None).fit(model, ds)
    assert np.isfinite(out["prior_loss"]) and out["prior_loss"] >= 0
    with pytest.raises(ValueError, match="comes after a BradleyTerryLoss"):
        term(model, PairBatch(x=torch.zeros(1, 1, 2, 10, 5), y=torch.zeros(1, 1), idx=torch.zeros(1, 1, dtype=torch.long)))


def test_state_round_trip_continues_identically():
    eps = _episodes()
    a = HindsightPriorLoss(batch_size=4, world_kwargs={**SMALL, "dropout": 0.1}, seed=3)
    a.train_world(eps, 10, 5)
    b = HindsightPriorLoss(batch_size=4, world_kwargs={**SMALL, "dropout": 0.1}, seed=99)
    b.load_state(a.state())
    assert a.train_world(eps, 10, 4) == b.train_world(eps, 10, 4)  # same windows, dropout and Adam steps
    assert all(torch.equal(p, q) for p, q in zip(a.world.parameters(), b.world.parameters()))


def test_bad_input_is_one_clear_error():
    with pytest.raises(ValueError, match="lambda"):
        HindsightPriorLoss(weight=-1)
    with pytest.raises(ValueError, match="world_pretrain_steps"):
        HindsightPriorLoss(pretrain_steps=-5)
    with pytest.raises(ValueError, match="unknown world_kwargs"):
        HindsightPriorLoss(world_kwargs={"layers": 2})
    with pytest.raises(ValueError, match="not trained yet"):
        HindsightPriorLoss().importance(np.zeros((1, 2, 3)), np.zeros((1, 2, 1)))
    with pytest.raises(ValueError, match="lambda"):
        HPRIOR("mujoco/HalfCheetah-v5", None, 10, 5, 100, prior_weight=float("nan"))
    from pbrl.app.config import config_from_dict

    with pytest.raises(ValueError, match="unknown key 'world_layers' in agent_kwargs for agent 'hprior'"):
        config_from_dict({"agent": "hprior", "agent_kwargs": {"world_layers": 2}})


TINY = tiny_online_config(agent="hprior", total_timesteps=400, total_feedback=30, checkpoint_every=50,
                          agent_kwargs={"unsup_steps": 50, "fit_kwargs": {"epochs": 5}, "world_pretrain_steps": 20,
                                        "world_update_steps": 5, "world_kwargs": {"embed_dim": 16, "n_layers": 1}})


def test_sigkill_then_resume_equals_uninterrupted_run(tmp_path):
    from pbrl.app import runs
    from pbrl.app.config import config_from_dict

    ref = tmp_path / "ref"
    runs.train(config_from_dict(dict(TINY)), ref, verbose=False)
    cfg_path = tmp_path / "tiny.json"
    cfg_path.write_text(json.dumps(TINY))
    d = tmp_path / "killed"
    # killed after the world model was pre-trained and refitted (sessions at steps 100, 180, 260)
    proc = start_train("online", "-c", str(cfg_path), "-o", str(d), "--quiet")
    wait_for_checkpoint(proc, d, 200, timeout=300)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    status = json.loads((d / "status.json").read_text())
    assert status["state"] == "running" and status["checkpoint"] < TINY["total_timesteps"]
    runs.resume(d, verbose=False)
    x, y = PreferenceDataset.load(ref / "labels.h5"), PreferenceDataset.load(d / "labels.h5")
    assert len(x) == len(y) == 30
    np.testing.assert_array_equal(x.label, y.label)
    np.testing.assert_array_equal(x.a.obs, y.a.obs)
    assert (ref / "curve.csv").read_text() == (d / "curve.csv").read_text()
    a = torch.load(ref / "reward_model.pt", weights_only=True)["weights"]
    b = torch.load(d / "reward_model.pt", weights_only=True)["weights"]
    assert all(torch.equal(a[k], b[k]) for k in a)
