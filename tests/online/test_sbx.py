"""PEBBLE on SBX's JAX SAC (``learner="sbx"``): trains, relabels, resets its critic, and a run killed with
SIGKILL resumes to exactly the uninterrupted run. Skipped where sbx-rl is not installed (the ``jax`` extra)."""

from __future__ import annotations

import json
import os
import signal

os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

sbx = pytest.importorskip("sbx")
jax = pytest.importorskip("jax")

from pbrl import runs  # noqa: E402
from pbrl.agents.pebble import PEBBLE, reset_sac_critic  # noqa: E402
from pbrl.agents.qpa import QPA  # noqa: E402
from pbrl.checkpoint import sb3_state, set_sb3_state  # noqa: E402
from pbrl.config import config_from_dict  # noqa: E402
from pbrl.envs import make_env  # noqa: E402
from pbrl.online import PbrlReplayBuffer  # noqa: E402
from pbrl.teachers import make_teacher  # noqa: E402

EP = 40
SAC_KW = {"batch_size": 32, "learning_starts": EP, "buffer_size": 2000, "train_freq": 2, "gradient_steps": 2,
          "policy_kwargs": {"net_arch": [16, 16]}}


def _leaves(tree) -> list[np.ndarray]:
    return [np.array(x) for x in jax.tree_util.tree_leaves(tree)]


def _same(a, b) -> bool:
    return all(np.array_equal(x, y) for x, y in zip(_leaves(a), _leaves(b)))


def _pebble(cls=PEBBLE, **kw):
    return cls(make_env("mujoco/HalfCheetah-v5", seed=0, max_episode_steps=EP), make_teacher("oracle", seed=0),
               total_feedback=12, feedback_per_session=4, feedback_every=EP, segment_length=10, seed=0,
               learner="sbx", learner_kwargs=SAC_KW, reward_model_kwargs={"hidden": (16, 16)}, unsup_steps=EP,
               fit_kwargs={"epochs": 5}, reset_updates=5, **kw)


def test_pebble_on_sbx_trains_relabels_and_resets_its_critic(monkeypatch):
    agent = _pebble()
    assert isinstance(agent.model, sbx.SAC) and agent.is_off_policy
    buf = agent.model.replay_buffer
    assert isinstance(buf, PbrlReplayBuffer) and buf.minibatch_size == 32
    seen = []  # SBX samples batch_size * gradient_steps rows per train call, through the pbrl buffer
    orig_sample = buf.sample
    monkeypatch.setattr(buf, "sample", lambda n, env=None: seen.append(n) or orig_sample(n, env))
    resets = []

    def spy(model):  # the critic reset: new parameters, target = parameters, fresh optimiser state
        qf = model.policy.qf_state
        actor = model.policy.actor_state.params
        reset_sac_critic(model)
        new = model.policy.qf_state
        resets.append(int(model.num_timesteps))
        assert not _same(qf.params, new.params) and _same(new.params, new.target_params)
        adam = new.opt_state.inner_state[0]  # optax.inject_hyperparams(adam): moments and count cleared
        assert int(adam.count) == 0 and not any(np.any(m) for m in _leaves((adam.mu, adam.nu)))
        assert int(new.step) == 0 and _same(actor, model.policy.actor_state.params)

    monkeypatch.setattr("pbrl.agents.pebble.reset_sac_critic", spy)
    agent.learn(6 * EP)
    assert resets == [2 * EP]  # once, at the first reward update (after learning_starts + unsup_steps)
    # 2 gradient steps x batch 32 per train call; the 5 reset updates as calls of 2, 2 and 1 steps (SBX reuses
    # its compiled 2-step update instead of compiling a 5-step one)
    assert set(seen) == {64, 32} and seen.count(32) == 1
    assert agent.callback.updates >= 2 and agent.env.mode == "model" and buf.sample_reward is None
    n = buf.size_filled()  # every stored reward is the current model's (relabelled, then the wrapper's)
    from pbrl.online import unscale_action

    want = agent.reward_model.predict(buf.observations[:n, 0], unscale_action(buf.actions[:n, 0], agent.model.action_space))
    end = agent.callback.history[-1]["step"]
    np.testing.assert_allclose(buf.rewards[:end, 0], want[:end], rtol=1e-4, atol=1e-5)


def test_sbx_checkpoint_state_round_trips_params_optimisers_and_keys():
    a, b = _pebble(), _pebble()
    a.learn(3 * EP)
    assert not _same(a.model.policy.qf_state, b.model.policy.qf_state)
    set_sb3_state(b.model, sb3_state(a.model))
    for part in ("qf_state", "actor_state", "key", "noise_key"):
        assert _same(getattr(a.model.policy, part), getattr(b.model.policy, part)), part
    assert _same(a.model.ent_coef_state, b.model.ent_coef_state) and _same(a.model.key, b.model.key)
    with pytest.raises(ValueError, match="another learner"):
        set_sb3_state(b.model, {k: v for k, v in sb3_state(a.model).items() if k != "jax"})


def test_qpa_hybrid_replay_draws_per_gradient_step_on_sbx():
    qpa = _pebble(QPA, recent_episodes=1, crop_range=2)
    buf = qpa.model.replay_buffer
    calls = []
    orig = buf.sampler
    buf.sampler = lambda b, n: calls.append(n) or orig(b, n)
    qpa.learn(2 * EP + 4)
    assert calls and set(calls) == {32}  # one draw per minibatch of a 2-step SBX update


TINY = dict(
    task="mujoco/HalfCheetah-v5", agent="pebble", learner="sbx", total_timesteps=450, total_feedback=40,
    feedback_per_session=10, feedback_every=80, segment_length=10, max_episode_steps=50, checkpoint_every=100,
    eval_every=200, n_eval_episodes=1,
    learner_kwargs={"learning_starts": 50, "batch_size": 32, "buffer_size": 5000, "gradient_steps": 2,
                    "train_freq": 2, "policy_kwargs": {"net_arch": [32, 32]}},
    reward_model_kwargs={"hidden": [32, 32]},
    agent_kwargs={"unsup_steps": 50, "fit_kwargs": {"epochs": 5}, "reset_updates": 5},
)


def test_sigkill_then_resume_equals_uninterrupted_run_on_sbx(tmp_path):
    from tests.core.test_runs import _start, _wait_for_checkpoint

    ref = tmp_path / "ref"
    runs.train(config_from_dict(dict(TINY)), ref, verbose=False)
    cfg_path = tmp_path / "tiny.json"
    cfg_path.write_text(json.dumps(TINY))
    d = tmp_path / "killed"
    proc = _start(cfg_path, d)
    _wait_for_checkpoint(proc, d, 200, timeout=300)  # after the critic reset at step 100
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    status = json.loads((d / "status.json").read_text())
    assert status["state"] == "running" and status["step"] < TINY["total_timesteps"]
    metrics = runs.resume(d, verbose=False)
    assert metrics["steps"] == TINY["total_timesteps"]
    from pbrl.preferences import PreferenceDataset

    x, y = PreferenceDataset.load(ref / "labels.h5"), PreferenceDataset.load(d / "labels.h5")
    assert len(x) == len(y) == 40
    np.testing.assert_array_equal(x.label, y.label)
    np.testing.assert_array_equal(x.a.obs, y.a.obs)
    assert (ref / "curve.csv").read_text() == (d / "curve.csv").read_text()
    m_ref, m_res = sbx.SAC.load(ref / "model.zip"), sbx.SAC.load(d / "model.zip")
    assert _same(m_ref.policy.qf_state.params, m_res.policy.qf_state.params)
    assert _same(m_ref.policy.actor_state, m_res.policy.actor_state)


def test_learner_sbx_is_refused_for_ppo_and_unknown_names():
    with pytest.raises(ValueError, match="unknown learner 'sbx'.*for agent 'pref_ppo'"):
        config_from_dict({**TINY, "agent": "pref_ppo", "learner_kwargs": {}})
    with pytest.raises(ValueError, match="unknown learner 'jax'"):
        config_from_dict({**TINY, "learner": "jax"})
