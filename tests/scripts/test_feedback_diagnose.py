"""scripts/investigations/feedback_diagnose.py: a finished tiny PbRL run on Meta-World is diagnosed (its own policy, the
scripted expert and random episodes under the true and the learned reward); SAC and unfinished runs are
skipped; a bad folder is one clear error."""

from __future__ import annotations

import json

import pytest
from helpers import load_script, tiny_online_config


def test_a_finished_run_is_diagnosed_and_others_are_skipped(tmp_path):
    from pbrl.app import runs
    from pbrl.app.config import config_from_dict

    diag = load_script("feedback_diagnose")
    out = tmp_path / "study"
    cfg = tiny_online_config(task="metaworld/button-press-v3", total_timesteps=300, total_feedback=20,
                             max_episode_steps=None, eval_every=300, checkpoint_every=300)
    runs.train(config_from_dict(cfg), out / "pebble_run", verbose=False)
    (out / "not_finished").mkdir()
    (out / "not_finished" / "config.json").write_text(json.dumps(cfg))
    rows = diag.main(["--out", str(out), "--episodes", "1"])
    assert [r["run"] for r in rows] == ["pebble_run"]
    r = rows[0]
    assert r["expert"]["success"] == 1.0 and r["random"]["success"] == 0.0  # the references behave as named
    assert -1.0 <= r["spearman_step"] <= 1.0
    assert r["expert"]["true_return"] > r["random"]["true_return"]
    gap = r["expert"]["learned_return"] / r["expert"]["steps"] - r["random"]["learned_return"] / r["random"]["steps"]
    assert r["learned_gap_per_step"] == pytest.approx(gap) and -2.0 <= gap <= 2.0  # tanh rewards: |r| <= 1
    assert "| pebble_run | 1 |" in diag.summary(rows)  # rows are named by the run name before its first "__"
    assert json.loads((out / "diagnose.json").read_text())[0]["run"] == "pebble_run"
    # a rerun where the models are gone (a fresh checkout) keeps the saved rows instead of emptying the file
    (out / "pebble_run" / "reward_model.pt").unlink()
    assert diag.main(["--out", str(out), "--episodes", "1"]) == rows
    assert [r["run"] for r in json.loads((out / "diagnose.json").read_text())] == ["pebble_run"]
    with pytest.raises(SystemExit):
        diag.main(["--out", str(tmp_path / "nope")])


def test_the_expert_is_given_the_goal_a_hidden_goal_task_hides():
    from pbrl.envs import make_env
    from pbrl.envs.rollout import rollout

    diag = load_script("feedback_diagnose")
    live = {}
    act = diag.expert_policy("metaworld/button-press-v3:goal=hidden", live)
    env = make_env("metaworld/button-press-v3:goal=hidden", seed=0, max_episode_steps=150)
    live["env"] = env
    (traj,) = rollout(env, act, n_episodes=1, seed=3)
    assert not traj.obs[:, -3:].any()  # the run's observations keep the goal hidden
    assert traj.success.any()  # and the expert, given the goal, presses the button
