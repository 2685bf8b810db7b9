"""BC: the objective against a hand computation, learning the data's mean action, fit/predict with SB3's
evaluate_policy, save/load, and errors on bad input."""

from __future__ import annotations

import numpy as np
import pytest

from pbrl.agents.bc import BC
from pbrl.agents.offline_base import OfflineAgent
from pbrl.envs.datasets import OfflineDataset, collect

SMALL = dict(hidden=(32, 32), batch_size=64)

pytestmark = pytest.mark.usefixtures("one_thread")


def linear_dataset(T: int = 2000, noise: float = 0.3, seed: int = 0) -> OfflineDataset:
    """obs ~ N(0, 1) [2]; action = 0.5 * obs_0 - 0.3 * obs_1 + zero-mean noise [1]: BC's target is the mean."""
    rng = np.random.default_rng(seed)
    obs = rng.normal(size=(T, 2)).astype(np.float32)
    mean = 0.5 * obs[:, :1] - 0.3 * obs[:, 1:]
    act = np.clip(mean + noise * rng.normal(size=(T, 1)), -1, 1).astype(np.float32)
    timeouts = np.zeros(T, bool)
    timeouts[49::50] = True
    return OfflineDataset(obs, act, np.zeros(T, np.float32), np.zeros(T, bool), timeouts)


def test_bc_learns_the_mean_action_and_its_loss_is_the_summed_squared_error():
    ds = linear_dataset()
    agent = BC.from_dataset(ds, seed=0, lr=3e-3, **SMALL)
    info = agent.fit(ds, steps=600, progress=False)
    test_obs = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, -1.0], [0.5, 0.5]], np.float32)
    pred = agent.predict(test_obs)[0][:, 0]
    assert pred == pytest.approx(0.5 * test_obs[:, 0] - 0.3 * test_obs[:, 1], abs=0.1)
    # the objective is -log pi = ||mu(s) - a||^2 summed over action dims: the whole-data value by hand is
    # close to the noise variance (0.09, a little less after clipping) and to the last minibatch loss
    mu = agent.predict(ds.observations)[0]
    by_hand = float(np.mean(np.sum((mu - ds.actions) ** 2, -1)))
    assert 0.05 < by_hand < 0.12
    assert info["losses"]["bc_loss"] == pytest.approx(by_hand, abs=0.04)


def test_gaussian_bc_learns_the_noise_scale():
    ds = linear_dataset(noise=0.3)
    agent = BC.from_dataset(ds, seed=0, lr=3e-3, policy="gaussian", ortho_init=False, **SMALL)
    agent.fit(ds, steps=800, progress=False)
    std = float(agent.nets["policy"].log_std.exp().mean())
    assert 0.2 < std < 0.45  # the data's noise is 0.3 (a little less after clipping); it starts at 1.0
    assert agent.predict(np.array([[1.0, 0.0]], np.float32))[0][0, 0] == pytest.approx(0.5, abs=0.1)


def test_fit_predict_with_sb3_evaluate_policy_and_save_load_round_trip(tmp_path):
    from stable_baselines3.common.evaluation import evaluate_policy
    from stable_baselines3.common.monitor import Monitor

    from pbrl.envs import make_env

    ds = collect("mujoco/Reacher-v5", "random", n_steps=400, seed=0)
    agent = BC.from_dataset(ds, seed=2, dropout=0.25, **SMALL)
    assert not agent.requires_preferences
    info = agent.fit(ds, None, steps=100, eval_env="mujoco/Reacher-v5", eval_every=50, n_eval_episodes=1,
                     progress=False)
    assert [e["step"] for e in info["evaluations"]] == [50, 100]
    mean, std = evaluate_policy(agent, Monitor(make_env("mujoco/Reacher-v5", seed=0)), n_eval_episodes=2)
    assert np.isfinite(mean) and std >= 0
    back = OfflineAgent.load(agent.save(tmp_path / "bc.pt"))
    assert type(back) is BC and back.config == agent.config and back.num_updates == 100
    obs = ds.observations[:16]
    assert np.array_equal(back.predict(obs)[0], agent.predict(obs)[0])
    # dropout is on while training, off when acting: predictions repeat
    assert np.array_equal(agent.predict(obs)[0], agent.predict(obs)[0])


def test_same_seed_same_numbers_and_bad_input():
    ds = linear_dataset(T=400)
    outs = []
    for _ in range(2):
        agent = BC.from_dataset(ds, seed=5, dropout=0.25, **SMALL)
        agent.fit(ds, steps=20, progress=False)
        outs.append(agent.predict(ds.observations[:8])[0])
    assert np.array_equal(outs[0], outs[1])
    with pytest.raises(ValueError, match="policy must be one of"):
        BC(2, 1, policy="beta")
    with pytest.raises(ValueError, match="dropout"):
        BC(2, 1, dropout=1.0)
    with pytest.raises(ValueError, match="obs_dim=2"):
        BC(3, 1).fit(ds, steps=5, progress=False)


def test_bc_runs_through_the_run_directory_without_labels(tmp_path):
    import json

    from pbrl.app.sweep import run_point

    cfg = {"kind": "offline", "agent": "bc", "task": "mujoco/Hopper-v5", "steps": 30, "eval_every": 30,
           "checkpoint_every": 30, "n_eval_episodes": 1, "collect_steps": 300,
           "agent_kwargs": {"hidden": [16, 16], "batch_size": 32}}
    metrics = run_point(cfg, str(tmp_path / "bc_run"))
    assert metrics["agent"] == "bc" and metrics["steps"] == 30 and metrics["labels"] == 0
    assert json.loads((tmp_path / "bc_run" / "metrics.json").read_text())["steps"] == 30
