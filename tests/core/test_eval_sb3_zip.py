"""``pbrl eval MODEL.zip --task TASK`` and ``runs.evaluate_run``: the policy of an SB3 model trained
elsewhere (plain stable-baselines3, no pbrl), evaluated on the task's true reward; mismatched spaces are one
line."""

import numpy as np
import pytest
from stable_baselines3 import PPO, SAC
from typer.testing import CliRunner

from pbrl.app import runs
from pbrl.app.cli import app
from pbrl.app.sb3_zip import load_sb3_policy
from pbrl.envs import make_env
from pbrl.envs.evaluation import evaluate_policy_episodes

TASK = "mujoco/Reacher-v5"  # 50-step episodes


@pytest.fixture(scope="module", params=["SAC", "PPO"])
def shared_zip(request, tmp_path_factory):
    """A model trained by plain SB3 on Reacher for a few steps and saved with model.save()."""
    env = make_env(TASK, seed=0)
    if request.param == "SAC":
        model = SAC("MlpPolicy", env, learning_starts=20, batch_size=16, policy_kwargs={"net_arch": [16, 16]}, seed=0)
    else:
        model = PPO("MlpPolicy", env, n_steps=64, batch_size=32, n_epochs=1, policy_kwargs={"net_arch": [16, 16]}, seed=0)
    model.learn(64)
    path = tmp_path_factory.mktemp("shared") / f"{request.param.lower()}_reacher.zip"
    model.save(path)
    return path, model


def test_a_shared_zip_is_evaluated_as_its_own_model_would_be(shared_zip):
    path, model = shared_zip
    res = runs.evaluate_run(path, n_episodes=2, seed=3, task=TASK)
    # the same deterministic episodes as the SB3 model itself on the same env: the policy is the model's
    ref = evaluate_policy_episodes(model, make_env(TASK, seed=10_000), 2, deterministic=True, seed=3)
    assert res["returns"] == pytest.approx([float(r) for r in ref["returns"]])
    assert res["task"] == TASK and res["run"] is None and np.isfinite(res["mean_return"])
    assert not list(path.parent.glob("*.json"))  # nothing is written beside a shared file
    cli = CliRunner().invoke(app, ["eval", str(path), "--task", TASK, "--episodes", "2", "--seed", "3"])
    assert cli.exit_code == 0, cli.output
    assert f"return {res['mean_return']:.2f}" in cli.output


def test_a_zip_of_another_task_or_no_task_is_one_line(shared_zip, tmp_path):
    path, _ = shared_zip
    res = CliRunner().invoke(app, ["eval", str(path), "--task", "mujoco/Hopper-v5"])
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert res.exit_code == 2 and len(lines) <= 2, res.output  # one line (a terminal may wrap it)
    assert "trained on observations Box(10,)" in res.output and "Hopper-v5 has observations Box(11,)" in res.output
    res = CliRunner().invoke(app, ["eval", str(path)])
    assert res.exit_code == 2 and "--task" in res.output
    junk = tmp_path / "junk.zip"
    junk.write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="not a stable-baselines3 model file"):
        load_sb3_policy(junk, TASK)
    with pytest.raises(ValueError, match="unknown task|task"):
        load_sb3_policy(path, "mujoco/NoSuchTask-v0")
