"""The registries (agents, teachers, selectors) and one contract test over every registered agent.

As SB3's ``tests/test_save_load.py`` runs one test over its model list: every agent of
:mod:`pbrl.agents.registry` trains a few steps, predicts actions of the right shape, runs under SB3's
``evaluate_policy``, saves and loads to the same actions, and keeps training.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from pbrl.agents.registry import AGENTS, agent_names, get_agent, get_entry

pytestmark = pytest.mark.usefixtures("one_thread")

EP = 40


def test_registry_entries_agree_with_their_classes():
    from pbrl.agents.online_base import OnlinePrefAgent

    assert set(agent_names("online")) | set(agent_names("offline")) == set(AGENTS)
    for name, entry in AGENTS.items():
        cls = entry.load()
        assert cls.kind == entry.kind, name
        assert cls.requires_preferences == entry.needs_preferences, name
        if entry.kind == "online":
            assert issubclass(cls, OnlinePrefAgent) and cls.learner_cls.__name__ == entry.learner, name
        else:
            assert entry.learner is None, name


def test_package_level_imports_and_clear_errors():
    from pbrl.agents import (  # noqa: F401 - the import is the test
        BC,
        CPL,
        CPLBC,
        DPPO,
        IPL,
        IPLAWAC,
        IQL,
        MRIQL,
        OPPO,
        PEARL,
        PEBBLE,
        QPA,
        RUNE,
        SURF,
        VPL,
        PrefPPO,
    )

    assert PEBBLE is get_agent("pebble") and CPLBC is get_agent("cplbc", "offline")
    with pytest.raises(ValueError, match="unknown agent 'pebbel'.*did you mean 'pebble'"):
        get_entry("pebbel")
    with pytest.raises(ValueError, match="for offline training"):
        get_entry("pebble", "offline")
    with pytest.raises(ValueError, match="unknown agent kind"):
        agent_names("sideways")


def test_the_registry_imports_no_torch():
    code = "import sys; import pbrl.agents.registry as r; r.agent_names(); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_teacher_and_selector_registries():
    from pbrl.queries import SELECTORS, make_selector
    from pbrl.teachers import TEACHER_PRESETS, TEACHERS, RegretTeacher, make_teacher, teacher_names

    assert set(teacher_names()) == set(TEACHER_PRESETS) | set(TEACHERS)
    assert isinstance(make_teacher("regret", value_fn=lambda o: o[..., 0]), RegretTeacher)
    with pytest.raises(ValueError, match="unknown teacher 'oracel'"):
        make_teacher("oracel")
    for name in SELECTORS:
        assert make_selector(name).name == name
    # pbrl.teachers no longer imports the labelling server (no teachers <-> label.teacher cycle)
    code = "import sys; import pbrl.teachers; print('pbrl.label.teacher' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


# --------------------------------------------------------------------------------------- contract
@pytest.fixture(scope="session")
def reacher_data(reacher_random):
    from pbrl.envs.collect import collect
    from pbrl.envs.datasets import label_dataset

    ds = reacher_random
    prefs = label_dataset(ds, "oracle", 24, segment_length=10, seed=0)
    source = collect("mujoco/Swimmer-v5", "random", n_steps=400, seed=1)
    source_prefs = label_dataset(source, "oracle", 24, segment_length=10, seed=0)
    return ds, prefs, source_prefs


OFFLINE_SMALL = {
    "cpl": {"pair_batch_size": 8},
    "cplbc": {"pair_batch_size": 8},
    "ipl": {"pref_batch_size": 8},
    "iplawac": {"pref_batch_size": 8},
    "oppo": {"encoder_hidden": (16,), "z_dim": 4, "seg_batch_size": 8, "pair_batch_size": 8},
    "mriql": {"reward_model_kwargs": {"hidden": (16,)}},
    "pearl": {"reward_model_kwargs": {"hidden": (16,)}, "n_target_pairs": 10, "reward_epochs": 5},
    "dppo": {"predictor_kwargs": {"size": "small", "embed_dim": 16, "pref_attn_dim": 16}, "predictor_epochs": 2},
    "dtr": {"embed_dim": 16, "n_layers": 1, "n_heads": 2, "critic_hidden": (16, 16), "context_length": 4,
            "reward_epochs": 2, "reward_model_kwargs": {"hidden": (16,)}},
    "vpl": {"context_size": 4, "latent_dim": 4, "encoder_hidden": 16, "reward_epochs": 2},
}


def _same_actions(a, b, obs):
    np.testing.assert_array_equal(a.predict(obs, deterministic=True)[0], b.predict(obs, deterministic=True)[0])


@pytest.mark.parametrize("name", agent_names("offline"))
def test_offline_contract(name, reacher_data, tmp_path):
    from stable_baselines3.common.evaluation import evaluate_policy
    from stable_baselines3.common.monitor import Monitor

    from pbrl.envs import make_env
    from pbrl.preferences import PreferenceDataset

    ds, prefs, source_prefs = reacher_data
    entry = get_entry(name)
    cls = entry.load()
    kw = {"hidden": (16, 16), "batch_size": 32, "seed": 0, **OFFLINE_SMALL.get(name, {})}
    if name == "oppo":
        kw.pop("batch_size")
    agent = cls.from_dataset(ds, **kw)
    labels = (source_prefs if name == "pearl" else prefs) if entry.needs_preferences else None
    if name == "vpl":  # VPL learns one latent per user: the same pairs, answered by two users
        labels = PreferenceDataset(prefs.a, prefs.b, prefs.label, user=np.arange(len(prefs)) % 2)
    agent.fit(ds, labels, steps=3, progress=False)
    assert agent.num_updates == 3
    obs = ds.observations[:5]
    act, _ = agent.predict(obs, deterministic=True)
    assert act.shape == (5, ds.act_dim) and np.all(np.isfinite(act))
    mean, _ = evaluate_policy(agent, Monitor(make_env("mujoco/Reacher-v5", seed=0)), n_eval_episodes=1)
    assert np.isfinite(mean)
    back = type(agent).load(agent.save(tmp_path / f"{name}.pt"))
    _same_actions(agent, back, obs)
    back.fit(ds, labels, steps=2, progress=False)  # training continues from the loaded state
    assert back.num_updates == 5


@pytest.mark.parametrize("name", agent_names("online"))
def test_online_contract(name, tmp_path):
    import gymnasium as gym
    from stable_baselines3.common.evaluation import evaluate_policy
    from stable_baselines3.common.monitor import Monitor

    from pbrl.envs import make_env
    from pbrl.teachers import make_teacher

    entry = get_entry(name)
    cls = entry.load()
    env = make_env("mujoco/HalfCheetah-v5", seed=0, max_episode_steps=EP)
    if entry.learner == "SAC":
        lk = {"batch_size": 16, "learning_starts": EP, "buffer_size": 1000, "train_freq": 4,
              "policy_kwargs": {"net_arch": [8]}}
    else:
        lk = {"n_steps": 2 * EP, "batch_size": 40, "n_epochs": 1, "policy_kwargs": {"net_arch": [8]}}
    extra = {"crop_range": 2} if name in ("surf", "qpa") else {}
    if name == "hprior":
        extra = {"world_pretrain_steps": 3, "world_update_steps": 1, "world_kwargs": {"embed_dim": 8, "n_layers": 1}}
    labels = entry.needs_preferences
    agent = cls(env, make_teacher("oracle"), 8 if labels else 0, 4, EP, segment_length=10, seed=0, learner_kwargs=lk,
                reward_model_kwargs={"hidden": (8,)}, unsup_steps=EP if labels else 0, fit_kwargs={"epochs": 2},
                reset_updates=2, **extra)
    agent.learn(3 * EP)
    assert (agent.callback.asked > 0) == labels
    obs = np.zeros((1, agent.obs_dim), np.float32)
    act, _ = agent.predict(obs)
    assert act.shape == (1, agent.act_dim)
    eval_env = Monitor(gym.wrappers.TimeLimit(make_env("mujoco/HalfCheetah-v5", seed=1), EP))
    mean, _ = evaluate_policy(agent, eval_env, n_eval_episodes=1)
    assert np.isfinite(mean)
    path = tmp_path / f"{name}.zip"
    agent.model.save(path)
    back = entry.learner and getattr(__import__("stable_baselines3"), entry.learner).load(path)
    raw = obs if agent.model.get_vec_normalize_env() is None else agent.model.get_vec_normalize_env().normalize_obs(obs)
    np.testing.assert_array_equal(back.predict(raw, deterministic=True)[0], agent.model.predict(raw, deterministic=True)[0])
    steps = agent.model.num_timesteps
    agent.learn(EP, reset_num_timesteps=False)  # training continues on the same schedule
    assert agent.model.num_timesteps >= steps + EP
