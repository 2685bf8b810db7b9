"""Hindsight PRIOR as an option of offline MR+IQL (``MRIQL(reward_prior="hindsight")``): end to end on a tiny
dataset, lambda 0 equals plain MR+IQL bit for bit, one clear error for bad input before any work, and the
save / load round trip (the world model is rebuilt deterministically, not saved)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import bandit_dataset, synthetic_pairs

from pbrl.agents.iql import HINDSIGHT_CPU_PRESET, MRIQL, REWARD_PRIORS
from pbrl.ratings import RatingDataset

TINY = dict(hidden=(16, 16), batch_size=16, reward_model_kwargs={"hidden": (16,), "n_members": 2}, reward_epochs=3,
            world_pretrain_steps=5, world_batch_size=4,
            world_kwargs={"embed_dim": 8, "n_layers": 2, "n_heads": 1, "dropout": 0.1})


def _data():
    return bandit_dataset(12, 10), synthetic_pairs(16, 5, obs_dim=3, act_dim=1, seed=0)


def test_trains_end_to_end_and_the_prior_changes_the_reward():
    ds, prefs = _data()
    agent = MRIQL.from_dataset(ds, seed=0, reward_prior="hindsight", **TINY)
    out = agent.fit(ds, prefs, steps=2, progress=False)
    assert out["num_updates"] == 2
    assert agent.prior.steps_trained == 5 and agent.prior.world.max_len == 5
    info = agent.reward_fit_info
    assert np.isfinite(info["prior_loss"]) and np.isfinite(info["world_loss"])
    plain = MRIQL.from_dataset(ds, seed=0, **{k: v for k, v in TINY.items() if not k.startswith("world")})
    plain.fit(ds, prefs, steps=2, progress=False)
    assert not np.allclose(agent.learned_rewards(ds), plain.learned_rewards(ds))  # lambda 1000 does something
    assert REWARD_PRIORS == ("none", "hindsight") and HINDSIGHT_CPU_PRESET["reward_prior"] == "hindsight"


def test_lambda_zero_is_plain_mriql_bit_for_bit():
    ds, prefs = _data()
    plain = MRIQL.from_dataset(ds, seed=3, **{k: v for k, v in TINY.items() if not k.startswith("world")})
    zero = MRIQL.from_dataset(ds, seed=3, reward_prior="hindsight", prior_weight=0.0, **TINY)
    for agent in (plain, zero):
        agent.fit(ds, prefs, steps=3, progress=False)
    assert zero.prior.steps_trained == 5  # the world model did train
    np.testing.assert_array_equal(zero.learned_rewards(ds), plain.learned_rewards(ds))
    np.testing.assert_array_equal(zero.data["rewards"].numpy(), plain.data["rewards"].numpy())
    for name in plain.nets:
        for p, q in zip(plain.nets[name].parameters(), zero.nets[name].parameters()):
            assert torch.equal(p, q)


def test_bad_input_is_one_clear_error_before_any_work(tmp_path):
    with pytest.raises(ValueError, match="unknown reward_prior 'hind'; choose one of"):
        MRIQL(3, 1, reward_prior="hind")
    with pytest.raises(ValueError, match=r"prior weight \(lambda\) must be a finite number >= 0, got -1"):
        MRIQL(3, 1, reward_prior="hindsight", prior_weight=-1.0)
    with pytest.raises(ValueError, match="use reward_model='ensemble'"):
        MRIQL(3, 1, reward_prior="hindsight", reward_model="transformer")
    with pytest.raises(ValueError, match="unknown world_kwargs"):
        MRIQL(3, 1, reward_prior="hindsight", world_kwargs={"width": 3})
    ds = bandit_dataset(12, 10)
    long_prefs = synthetic_pairs(8, 10, obs_dim=3, act_dim=1, seed=0)
    agent = MRIQL.from_dataset(ds, seed=0, reward_prior="hindsight", **TINY)
    before = [p.detach().clone() for p in agent.reward_model.net.parameters()]
    with pytest.raises(ValueError, match="longest episode has 10 steps; label shorter segments"):
        agent.fit(ds, long_prefs, steps=1, progress=False)
    assert agent.prior.world is None and not agent.reward_fitted  # no work done
    assert all(torch.equal(a, b) for a, b in zip(before, agent.reward_model.net.parameters()))
    seg = synthetic_pairs(8, 5, obs_dim=3, act_dim=1).a
    ratings = RatingDataset(seg, np.zeros(8, np.int64), n_classes=2)
    with pytest.raises(ValueError, match="reward_prior='hindsight' learns from preference pairs"):
        agent.fit(ds, ratings, steps=1, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_save_load_round_trip_and_deterministic_world_rebuild(tmp_path):
    ds, prefs = _data()
    agent = MRIQL.from_dataset(ds, seed=1, reward_prior="hindsight", prior_weight=10.0, **TINY)
    agent.fit(ds, prefs, steps=2, progress=False)
    path = agent.save(tmp_path / "agent")
    loaded = MRIQL.load(path)
    assert loaded.config["reward_prior"] == "hindsight" and loaded.config["prior_weight"] == 10.0
    assert loaded.prior is not None and loaded.prior.world_kwargs["embed_dim"] == 8
    np.testing.assert_array_equal(loaded.learned_rewards(ds), agent.learned_rewards(ds))
    loaded.fit(ds, prefs, steps=1, progress=False)  # continues on the saved reward: no world model needed
    assert loaded.prior.world is None and loaded.num_updates == 3
    loaded.reward_fitted = False  # a refit rebuilds the very same world model from the seed
    loaded.fit(ds, prefs, steps=1, progress=False)
    for (k, v), w in zip(agent.prior.world.state_dict().items(), loaded.prior.world.state_dict().values()):
        assert torch.equal(v, w), k


@pytest.mark.parametrize("sets, needle", [
    (["agent_kwargs.reward_prior=hind"], "unknown reward_prior 'hind'; choose one of"),
    (["agent_kwargs.reward_prior=hindsight", "agent_kwargs.prior_weight=-1"], "prior weight (lambda) must be"),
    (["agent_kwargs.reward_prior=hindsight"], "the longest episode has 50 steps; label shorter segments"),
])
def test_cli_refuses_a_bad_prior_before_the_run_directory(tmp_path, sets, needle):
    from typer.testing import CliRunner

    from pbrl.app.cli import app
    from pbrl.envs.datasets import collect, save_d4rl

    path = tmp_path / "reacher.hdf5"
    save_d4rl(collect("mujoco/Reacher-v5", "random", n_steps=100, seed=0), path)
    run = tmp_path / "run"
    args = ["train", "offline", "-o", str(run), "--steps", "5", "--quiet", "--agent", "mriql", "--dataset", str(path),
            "--task", "mujoco/Reacher-v5", "--segment-length", "50"]
    for s in sets:
        args += ["-s", s]
    res = CliRunner().invoke(app, args)
    text = " ".join(res.output.split())
    assert res.exit_code == 2 and text.startswith("error:") and needle in text, res.output
    assert "Traceback" not in res.output and not run.exists()


def test_check_run_holds_for_every_mriql_subclass():
    """``check_run`` reads the prior's defaults from MR+IQL's signature: a subclass that takes them through
    ``**kwargs`` (PEARL) is checked too, not a KeyError (the bench_offline PEARL rows failed so)."""
    from pbrl.agents.pearl import PEARL

    PEARL.check_run({}, segment_length=5, longest_episode=50)
    with pytest.raises(ValueError, match="longest episode"):
        PEARL.check_run({"reward_prior": "hindsight"}, segment_length=50, longest_episode=50)
