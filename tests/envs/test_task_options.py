"""Meta-World v3's options as task options (issue 29): ``reward=v1|v2`` and ``goal=observable|hidden``."""

import numpy as np
import pytest
from typer.testing import CliRunner

from pbrl.app.cli import app
from pbrl.envs import make_env
from pbrl.envs.registry import check_task, parse_task, task_options

TASK = "metaworld/button-press-v3"
runner = CliRunner()


def _rollout(task: str, n: int = 8):
    env = make_env(task, seed=3)
    obs, _ = env.reset(seed=3)
    rng = np.random.default_rng(0)
    out, rews, infos = [obs], [], []
    for _ in range(n):
        obs, r, _, _, info = env.step(rng.uniform(-1, 1, 4).astype(np.float32))
        out.append(obs)
        rews.append(r)
        infos.append(info)
    env.close()
    return np.stack(out), np.array(rews), infos


def test_parse_and_defaults():
    assert parse_task(TASK) == (TASK, {})
    assert parse_task(f"{TASK}:reward=v1,goal=hidden") == (TASK, {"reward": "v1", "goal": "hidden"})
    assert task_options(TASK) == {"reward": "v2", "goal": "observable"}
    assert task_options(f"{TASK}:goal=hidden") == {"reward": "v2", "goal": "hidden"}
    assert check_task(f"{TASK}:reward=v1") == f"{TASK}:reward=v1"


def test_the_default_is_v2_rewards_with_the_goal_observable():
    """No options = the options spelled out at their defaults: same observations, same rewards."""
    obs, rew, _ = _rollout(TASK)
    obs2, rew2, _ = _rollout(f"{TASK}:reward=v2,goal=observable")
    np.testing.assert_array_equal(obs, obs2)
    np.testing.assert_array_equal(rew, rew2)
    assert np.abs(obs[:, -3:]).sum() > 0  # the goal position is in the observation
    assert make_env(TASK).unwrapped.reward_function_version == "v2"


def test_reward_v1_changes_the_reward_not_the_dynamics():
    obs, rew, info = _rollout(TASK)
    obs1, rew1, info1 = _rollout(f"{TASK}:reward=v1")
    np.testing.assert_array_equal(obs, obs1)
    assert not np.allclose(rew, rew1)
    assert make_env(f"{TASK}:reward=v1").unwrapped.reward_function_version == "v1"
    assert all(isinstance(i["success"], bool) for i in info1)


def test_goal_hidden_zeros_the_goal_entries_only():
    obs, rew, _ = _rollout(TASK)
    hid, rew_h, _ = _rollout(f"{TASK}:goal=hidden")
    assert np.all(hid[:, -3:] == 0)
    np.testing.assert_allclose(hid[:, :-3], obs[:, :-3], atol=1e-6)
    np.testing.assert_allclose(rew_h, rew, atol=1e-6)


@pytest.mark.parametrize("task, needle", [
    (f"{TASK}:rewrd=v1", "did you mean 'reward'?"),
    (f"{TASK}:reward=v3", "allowed: reward=v2|v1"),
    (f"{TASK}:goal", "must look like name=value"),
    (f"{TASK}:goal=hidden,goal=observable", "given twice"),
    ("mujoco/Hopper-v5:goal=hidden", "takes no options"),
])
def test_unknown_options_are_one_clear_error(task, needle, tmp_path):
    with pytest.raises(ValueError, match=needle.replace("|", r"\|").replace("?", r"\?")):
        check_task(task)
    d = tmp_path / "run"
    res = runner.invoke(app, ["train", "online", "--task", task, "--total-timesteps", "100", "-o", str(d)])
    assert res.exit_code == 2, res.output
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), res.output
    assert not d.exists()


def test_scripted_policy_refuses_a_hidden_goal():
    from pbrl.envs.collect import scripted_policy

    assert scripted_policy(f"{TASK}:reward=v1") is not None
    with pytest.raises(ValueError, match="hides"):
        scripted_policy(f"{TASK}:goal=hidden")


def test_pbrl_tasks_lists_the_options():
    res = runner.invoke(app, ["tasks", "metaworld"])
    assert res.exit_code == 0 and "metaworld/<task>:reward=v2|v1,goal=observable|hidden" in res.output
