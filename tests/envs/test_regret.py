"""Regret labels for offline datasets (CPL's oracle): the score by hand, terminals, the SAC critic's value,
the returns-to-go value, the dataset's expert found from its metadata, the offline config and CLI options."""

from __future__ import annotations

import numpy as np
import pytest

from pbrl.envs.datasets import OfflineDataset, collect, label_dataset, load_d4rl, save_d4rl, segments_at
from pbrl.envs.regret import dataset_regret_teacher, discounted_returns_to_go, returns_value_fn, sac_value_fn
from pbrl.teachers import RegretTeacher

pytestmark = pytest.mark.usefixtures("one_thread")


def chain(rewards, terminal_at=()) -> OfflineDataset:
    """One-dimensional states obs[t] = t of a single episode with the given rewards; terminals where asked."""
    T = len(rewards)
    term = np.zeros(T, bool)
    for t in terminal_at:
        term[t] = True
    tout = np.zeros(T, bool)
    tout[-1] = not term[-1]
    obs = np.arange(T, dtype=np.float32)[:, None]
    return OfflineDataset(obs, np.zeros((T, 1), np.float32), np.asarray(rewards, np.float32), term, tout,
                          next_observations=obs + 1, metadata={"task_id": "mujoco/Hopper-v5"})


def test_cpl_score_is_reward_sum_plus_value_difference_with_zero_value_after_a_terminal():
    """CPL's rl_sum: sum r + V(s_H) - V(s_0), undiscounted; a segment that ends in a fall gets V(s_H) = 0.
    Both segments here sum the same reward: reward-sum labels cannot tell them apart, regret labels can."""
    ds = chain([1.0] * 10, terminal_at=(4, 9))  # episodes [0..4] (ends in a fall) and [5..9]
    value = lambda o: 10.0 + np.asarray(o, np.float64)[:, 0]  # noqa: E731
    from pbrl.envs.regret import _ends_in_terminal

    t = RegretTeacher(value, gamma=1.0, terminal_fn=_ends_in_terminal(ds))
    a = segments_at(ds, [2], 3)  # steps 2, 3, 4: ends in the terminal at 4
    b = segments_at(ds, [5], 3)  # steps 5, 6, 7: s_H = 8
    assert t.score(a)[0] == pytest.approx(3.0 + 0.0 - 12.0)
    assert t.score(b)[0] == pytest.approx(3.0 + 18.0 - 15.0)
    assert t.label(a, b)[0] == 1.0
    from pbrl.teachers import make_teacher

    assert make_teacher("oracle").label(a, b)[0] == 0.0  # equal reward sums: the tie goes to the first


def test_sac_value_is_the_mean_of_the_q_heads_under_the_policy():
    """With a near-deterministic actor (std e^-20), V(s) is the mean of the critic's heads at tanh(mean)."""
    import torch
    from stable_baselines3 import SAC

    from pbrl.envs.registry import make_env

    model = SAC("MlpPolicy", make_env("mujoco/InvertedPendulum-v5", seed=0), seed=0, device="cpu",
                policy_kwargs={"net_arch": [16, 16]})
    with torch.no_grad():
        model.actor.log_std.weight.zero_()
        model.actor.log_std.bias.fill_(-20.0)
    obs = np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32)
    v = sac_value_fn(model, n_samples=8, seed=1)(obs)
    with torch.no_grad():
        o = torch.as_tensor(obs)
        mean, _, _ = model.actor.get_action_dist_params(o)
        want = torch.stack(model.critic(o, torch.tanh(mean))).mean(0).squeeze(-1).numpy()
    assert v.shape == (5,) and v == pytest.approx(want, abs=1e-5)
    assert np.array_equal(sac_value_fn(model, seed=1)(obs), sac_value_fn(model, seed=1)(obs))  # seeded


def test_returns_to_go_and_their_fitted_value():
    ds = chain([1.0, 2.0, 3.0, 1.0, 1.0], terminal_at=(2,))
    g = discounted_returns_to_go(ds, 0.5)
    assert g == pytest.approx([1 + 0.5 * 2 + 0.25 * 3, 2 + 0.5 * 3, 3.0, 1 + 0.5, 1.0])
    big = chain(list(np.linspace(0, 1, 200)))
    v = returns_value_fn(big, gamma=0.9, hidden=(32, 32), updates=600, seed=0)
    target = discounted_returns_to_go(big, 0.9)
    assert np.corrcoef(v(big.observations), target)[0, 1] > 0.95
    again = returns_value_fn(big, gamma=0.9, hidden=(32, 32), updates=600, seed=0)
    assert np.array_equal(v(big.observations), again(big.observations))


def test_the_dataset_s_expert_critic_is_found_from_its_metadata(tmp_path):
    """make_datasets writes metadata["expert_policy"] (relative to the file): 'auto' uses that SAC's critic;
    without it, the returns-to-go value. The labels say which value they came from."""
    from stable_baselines3 import SAC

    from pbrl.envs.registry import make_env

    ds = collect("mujoco/InvertedPendulum-v5", "random", n_steps=300, seed=0)
    SAC("MlpPolicy", make_env("mujoco/InvertedPendulum-v5", seed=0), seed=0, device="cpu",
        policy_kwargs={"net_arch": [16, 16]}).save(tmp_path / "sac" / "expert.zip")
    with_expert = OfflineDataset(ds.observations, ds.actions, ds.rewards, ds.terminals, ds.timeouts,
                                 next_observations=ds.next_observations,
                                 metadata={**ds.metadata, "expert_policy": "sac/expert.zip"})
    back = load_d4rl(save_d4rl(with_expert, tmp_path / "ip.hdf5"))
    assert dataset_regret_teacher(back).value_source == "sac-critic:expert.zip"
    assert dataset_regret_teacher(ds, value_updates=5).value_source.startswith("returns-to-go")
    assert dataset_regret_teacher(back, critic="returns", value_updates=5).value_source.startswith("returns-to-go")
    prefs = label_dataset(back, "regret", 20, segment_length=5, seed=0)
    assert prefs.metadata["teacher"] == "regret" and prefs.metadata["value_source"] == "sac-critic:expert.zip"
    with pytest.raises(ValueError, match="neither auto nor returns"):
        dataset_regret_teacher(ds, critic=str(tmp_path / "missing.zip"))


def test_offline_runs_accept_the_regret_teacher_and_online_runs_do_not(tmp_path):
    from pbrl.app.config import OfflineConfig, OnlineConfig

    OfflineConfig(task="mujoco/Hopper-v5", agent="cpl", teacher="regret", teacher_kwargs={"critic": "returns"}).validate()
    with pytest.raises(ValueError, match="neither auto nor returns"):
        OfflineConfig(task="mujoco/Hopper-v5", agent="cpl", teacher="regret",
                      teacher_kwargs={"critic": str(tmp_path / "none.zip")}).validate()
    with pytest.raises(ValueError, match="unknown key 'bogus'"):
        OfflineConfig(task="mujoco/Hopper-v5", agent="cpl", teacher="regret", teacher_kwargs={"bogus": 1}).validate()
    with pytest.raises(ValueError, match="unknown teacher 'regret'"):
        OnlineConfig(task="mujoco/Hopper-v5", teacher="regret").validate()


def test_dataset_label_cli_takes_the_regret_teacher(tmp_path):
    from stable_baselines3 import SAC
    from typer.testing import CliRunner

    from pbrl.app.cli import app
    from pbrl.envs.registry import make_env
    from pbrl.preferences import PreferenceDataset

    ds = collect("mujoco/InvertedPendulum-v5", "random", n_steps=300, seed=0)
    SAC("MlpPolicy", make_env("mujoco/InvertedPendulum-v5", seed=0), seed=0, device="cpu",
        policy_kwargs={"net_arch": [16, 16]}).save(tmp_path / "expert.zip")
    path = save_d4rl(ds, tmp_path / "ip.hdf5")
    out = tmp_path / "prefs.h5"
    res = CliRunner().invoke(app, ["dataset", "label", str(path), "--out", str(out), "--pairs", "10",
                                   "--segment-length", "5", "--teacher", "regret", "--critic", str(tmp_path / "expert.zip")])
    assert res.exit_code == 0, res.output
    assert PreferenceDataset.load(out).metadata["value_source"] == "sac-critic:expert.zip"
    bad = CliRunner().invoke(app, ["dataset", "label", str(path), "--out", str(tmp_path / "x.h5"),
                                   "--teacher", "regret", "--critic", "nope.zip"])
    assert bad.exit_code == 2 and "neither auto nor returns" in bad.output and not (tmp_path / "x.h5").exists()


def test_pbrl_train_offline_labels_with_the_regret_teacher(tmp_path):
    """`pbrl train offline --teacher regret`: the run's labels are the regret teacher's (here from the
    returns-to-go value: the dataset names no expert), the same pairs as the oracle's with other labels."""
    from typer.testing import CliRunner

    from pbrl.app.cli import app
    from pbrl.preferences import PreferenceDataset

    data = save_d4rl(collect("mujoco/Hopper-v5", "random", n_steps=600, seed=0), tmp_path / "hopper.hdf5")
    common = ["--dataset", str(data), "--task", "mujoco/Hopper-v5", "--agent", "cpl", "--segment-length", "5",
              "--total-feedback", "40", "--steps", "20", "--eval-every", "20", "--checkpoint-every", "20",
              "--n-eval-episodes", "1", "--quiet", "-s", "agent_kwargs.hidden=[16,16]"]
    runner = CliRunner()
    res = runner.invoke(app, ["train", "offline", "--teacher", "regret", "-s", "teacher_kwargs.critic=returns",
                              "-s", "teacher_kwargs.value_updates=50", "-o", str(tmp_path / "r"), *common])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["train", "offline", "--teacher", "oracle", "-o", str(tmp_path / "o"), *common])
    assert res.exit_code == 0, res.output
    reg, orc = PreferenceDataset.load(tmp_path / "r" / "labels.h5"), PreferenceDataset.load(tmp_path / "o" / "labels.h5")
    assert reg.metadata["teacher"] == "regret" and reg.metadata["value_source"].startswith("returns-to-go")
    assert np.array_equal(reg.a.index, orc.a.index) and np.array_equal(reg.b.index, orc.b.index)
    assert not np.array_equal(reg.label, orc.label)
