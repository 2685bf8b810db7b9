"""SPO (Swamy et al. 2024): the win-rate reward against hand-computed values, the rewards PPO trains on, the
queue's checkpoint, SIGKILL + resume, and bad input before any work."""

from __future__ import annotations

import json
import signal

import numpy as np
import pytest
from helpers import start_train, tiny_online_config, wait_for_checkpoint

from pbrl.agents.spo import SPO, pad_unit, spread_win_rate, win_rate
from pbrl.envs import make_env
from pbrl.teachers import make_teacher

pytestmark = pytest.mark.usefixtures("one_thread")

SMALL = {"batch_size": 10, "n_epochs": 1, "policy_kwargs": {"net_arch": {"pi": [8], "vf": [8]}}}


def test_win_rate_and_its_spread_match_hand_computed_values():
    assert win_rate([1.0, 0.0, 0.5, np.nan]) == pytest.approx(0.5)  # (1 + 0 + 0.5) / 3, the skip left out
    assert win_rate([1.0, 1.0, 0.0, 1.0]) == pytest.approx(0.75)
    assert win_rate([]) == 0.5 and win_rate([np.nan, np.nan]) == 0.5  # no answered comparison: a tie
    r = spread_win_rate(0.75, 4, 4)
    np.testing.assert_allclose(r, [0.1875] * 4)
    assert r.sum() == pytest.approx(0.75)  # a whole unit's rewards sum to its win rate
    np.testing.assert_allclose(spread_win_rate(0.5, 3, 10), [0.05] * 3)  # a unit's part: win / H per step


def test_a_short_unit_is_padded_with_its_absorbing_state():
    o, a, r = pad_unit(np.ones((2, 3)), np.full((2, 1), 0.5), np.array([1.0, 2.0]), np.array([7.0, 8.0, 9.0]), 4)
    np.testing.assert_array_equal(o[2:], [[7, 8, 9], [7, 8, 9]])
    np.testing.assert_array_equal(a[:, 0], [0.5, 0.5, 0, 0])
    np.testing.assert_array_equal(r, [1, 2, 0, 0])
    with pytest.raises(ValueError, match="does not fit"):
        pad_unit(np.ones((5, 3)), np.ones((5, 1)), np.ones(5), np.ones(3), 4)


def _agent(n_steps: int, unit_length=None, queue_size: int = 10, ep: int = 10, teacher: str = "oracle"):
    env = make_env("mujoco/HalfCheetah-v5", seed=0, max_episode_steps=ep)
    return SPO(env, make_teacher(teacher, seed=0), 1000, 1, 1, segment_length=5, seed=0, queue_size=queue_size,
               unit_length=unit_length, normalize_obs=False, learner_kwargs={"n_steps": n_steps, **SMALL})


def test_ppo_trains_on_the_win_rates_of_whole_episodes():
    """Three 10-step episodes in one 30-step rollout: episode 1 meets an empty queue (0.5), episode 2 is
    compared with 1, episode 3 with 1 and 2; each step gets its episode's win rate / 10."""
    agent = _agent(n_steps=30)
    agent.learn(30)
    eps = list(agent.env.episodes)
    R = [t.ret for t in eps]
    expected = [0.5, float(R[1] > R[0]), (float(R[2] > R[0]) + float(R[2] > R[1])) / 2]
    got = agent.model.rollout_buffer.rewards[:, 0]
    for k, w in enumerate(expected):  # the last step of each episode also holds SB3's time-limit bootstrap
        np.testing.assert_allclose(got[10 * k: 10 * k + 9], w / 10, rtol=1e-6)
    assert agent.callback.asked == 3 and agent.callback.labels_used == 3 and len(agent.callback.queue) == 3


def test_a_unit_crossing_the_rollout_end_is_scored_on_the_same_steps_of_the_queue():
    """Units of 10 steps, rollouts of 15: unit A (steps 0-9) meets an empty queue; the first 5 steps of unit B
    (10-14) are compared with A's first 5 steps; in the next rollout B's steps 5-9 with A's steps 5-9."""
    agent = _agent(n_steps=15, unit_length=10, ep=20)
    agent.learn(15)
    cb = agent.callback
    buf = agent.model.rollout_buffer.rewards[:, 0]
    A = cb.queue[0]
    B = np.asarray(cb._units[0]["reward"])
    np.testing.assert_allclose(buf[:10], 0.05, rtol=1e-6)
    np.testing.assert_allclose(buf[10:15], float(B[:5].sum() > A[2][:5].sum()) / 10, rtol=1e-6)
    agent.learn(15, reset_num_timesteps=False)
    B_full = cb.queue[1][2]
    buf = agent.model.rollout_buffer.rewards[:, 0]
    np.testing.assert_allclose(buf[:4], float(B_full[5:].sum() > A[2][5:].sum()) / 10, rtol=1e-6)
    assert cb.asked == 4 and len(cb.queue) == 3  # A: 0, B's first part: 1, B's rest: 1, C (steps 20-29): 2


def test_the_queue_keeps_the_last_b_units_and_the_budget_caps_the_comparisons():
    agent = _agent(n_steps=50, queue_size=2)
    agent.callback.total_feedback = 3
    with pytest.warns(UserWarning, match="ask up to 10 labels .* total_feedback leaves 3"):
        agent.learn(50)
    cb = agent.callback
    assert len(cb.queue) == 2 and cb.units == 5
    # comparisons: 0, 1, 2, then only 0 left of the budget of 3
    assert cb.asked == 3
    np.testing.assert_allclose(agent.model.rollout_buffer.rewards[30:39, 0], 0.05, rtol=1e-6)  # budget spent: 0.5


def test_state_round_trip_continues_identically():
    a, b = _agent(n_steps=15, unit_length=10, ep=20), _agent(n_steps=15, unit_length=10, ep=20)
    for ag in (a, b):
        ag.learn(15)
    state = a.callback.state_dict()
    b.callback.load_state_dict(state)
    assert len(b.callback.queue) == 1 and b.callback._piece_start == [5]
    with pytest.raises(ValueError, match="not an SPO callback state"):
        b.callback.load_state_dict({k: v for k, v in state.items() if k != "spo"})


class HumanTeacher:
    """Stands in for pbrl.label.teacher.HumanTeacher (no labelling server needed)."""

    name = "human"

    def label(self, a, b):
        raise AssertionError("never asked")


def test_bad_input_is_one_clear_error_before_any_work():
    # the human teacher is refused before the (unknown) task is even looked up
    with pytest.raises(ValueError, match="too many for a person"):
        SPO("mujoco/NoSuchTask-v5", HumanTeacher(), 100, 1, 1)
    with pytest.raises(ValueError, match="teacher 'heron' needs reward factors"):
        SPO("mujoco/NoSuchTask-v5", make_teacher("heron"), 100, 1, 1)
    with pytest.raises(ValueError, match="queue_size"):
        SPO("mujoco/NoSuchTask-v5", make_teacher("oracle"), 100, 1, 1, queue_size=0)
    with pytest.raises(ValueError, match="unit_length"):
        SPO("mujoco/NoSuchTask-v5", make_teacher("oracle"), 100, 1, 1, unit_length=-2)
    with pytest.raises(ValueError, match="learns from preference feedback"):
        SPO("mujoco/HalfCheetah-v5", make_teacher("rating"), 100, 1, 1)
    with pytest.raises(ValueError, match="unit_length 11 is longer than the episode length 10"):
        _agent(n_steps=10, unit_length=11)


def test_the_cli_config_reaches_spo_and_its_teachers(tmp_path):
    from pbrl.app.config import config_from_dict
    from pbrl.app.train_online import build_online

    cfg = config_from_dict(tiny_online_config(
        agent="spo", teacher="intransitive", teacher_kwargs={"objectives": ["return", "-ctrl"]}, total_feedback=50,
        learner_kwargs={"n_steps": 50, **SMALL}, agent_kwargs={"queue_size": 3, "unit_length": 25, "n_envs": 1}))
    agent = build_online(cfg)
    assert isinstance(agent, SPO) and agent.callback.queue_size == 3 and agent.unit_length == 25
    assert agent.teacher.objectives == ("return", "-ctrl")
    with pytest.raises(ValueError, match="unknown objective 'speed'"):
        config_from_dict(tiny_online_config(agent="spo", teacher="intransitive", teacher_kwargs={"objectives": ["speed", "ctrl"]}))


TINY = tiny_online_config(agent="spo", total_timesteps=600, total_feedback=500, checkpoint_every=100,
                          learner_kwargs={"n_steps": 30, **SMALL}, reward_model_kwargs={},
                          agent_kwargs={"n_envs": 2, "queue_size": 4, "unit_length": 20})


def test_sigkill_then_resume_equals_uninterrupted_run(tmp_path):
    """60-step rollouts of 2 envs, 20-step units (units cross rollouts), checkpoints at rollout starts: a run
    killed after its checkpoint at step 240 and resumed ends as the uninterrupted one."""
    from pbrl.app import runs
    from pbrl.app.config import config_from_dict

    ref = tmp_path / "ref"
    m_ref = runs.train(config_from_dict(dict(TINY)), ref, verbose=False)
    cfg_path = tmp_path / "tiny.json"
    cfg_path.write_text(json.dumps(TINY))
    d = tmp_path / "killed"
    proc = start_train("online", "-c", str(cfg_path), "-o", str(d), "--quiet")
    wait_for_checkpoint(proc, d, 240, timeout=300)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    status = json.loads((d / "status.json").read_text())
    assert status["state"] == "running" and status["checkpoint"] < TINY["total_timesteps"]
    m = runs.resume(d, verbose=False)
    assert m["labels"] == m_ref["labels"] > 0 and m["asked"] == m_ref["asked"]
    assert (ref / "curve.csv").read_text() == (d / "curve.csv").read_text()
    from stable_baselines3 import PPO

    x, y = PPO.load(ref / "model.zip"), PPO.load(d / "model.zip")
    for k, v in x.policy.state_dict().items():
        np.testing.assert_array_equal(v.numpy(), y.policy.state_dict()[k].numpy())
