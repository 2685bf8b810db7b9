"""Every bad input stops before any work with one line naming the problem and the fix, exit code 2, no
traceback (issue 15); a failed start leaves no run directory; help texts come from the registry."""

from pathlib import Path

import pytest
from typer.testing import CliRunner

from pbrl.agents.registry import agent_names
from pbrl.cli import app

runner = CliRunner()


@pytest.fixture(scope="module")
def reacher_h5(tmp_path_factory) -> Path:
    from pbrl.envs.datasets import collect, save_d4rl

    path = tmp_path_factory.mktemp("data") / "reacher.hdf5"
    save_d4rl(collect("mujoco/Reacher-v5", "random", n_steps=200, seed=0), path)
    return path


@pytest.fixture(scope="module")
def truncated_h5(reacher_h5, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("trunc") / "cut.hdf5"
    data = reacher_h5.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def _one_line_error(res, *needles: str) -> str:
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output and res.exception is None or isinstance(res.exception, SystemExit)
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    text = " ".join(res.output.split())
    assert text.startswith("error:"), res.output
    assert len([ln for ln in lines if ln.startswith("error:")]) == 1, res.output
    for n in needles:
        assert n in text, res.output
    return text


def _offline(run_dir: Path, *args: str) -> list[str]:
    return ["train", "offline", "-o", str(run_dir), "--steps", "5", "--quiet", *args]


@pytest.mark.parametrize(
    "args, needles",
    [
        (["--task", "metaworld/button-press-v3"], ["collected on mujoco/Reacher-v5", "--task mujoco/Reacher-v5"]),
        (["--task", "mujoco/HalfCheetah-v5"], ["collected on mujoco/Reacher-v5"]),
        (["--task", "mujoco/Reacher-v5", "--segment-length", "60"], ["longer than every episode", "<= 50"]),
        (["--task", "mujoco/Reacher-v5", "-s", "agent_kwargs.hiden=[8]"],
         ["unknown key 'hiden' in agent_kwargs", "did you mean 'hidden'"]),
        (["--task", "mujoco/Reacher-v5", "--agent", "vpl"], ["learns one reward per user", "--teacher multi_user"]),
    ],
)
def test_offline_start_is_validated_before_the_run_directory(reacher_h5, tmp_path, args, needles):
    d = tmp_path / "run"
    _one_line_error(runner.invoke(app, _offline(d, "--dataset", str(reacher_h5), *args)), *needles)
    assert not d.exists()


def test_online_start_is_validated_before_the_run_directory(tmp_path):
    d = tmp_path / "run"
    _one_line_error(runner.invoke(app, ["train", "online", "-o", str(d), "--total-feedback", "0"]),
                    "total_feedback must be >= 1, got 0")
    _one_line_error(runner.invoke(app, ["train", "online", "-o", str(d), "--task", "mujoco/Reacher-v5",
                                        "--segment-length", "80"]), "longer than an episode", "(50 steps)")
    _one_line_error(runner.invoke(app, _offline(d, "--task", "mujoco/Reacher-v5", "--segment-length", "60")),
                    "longer than an episode")  # offline, with a dataset still to collect
    assert not d.exists()
    f = tmp_path / "afile"
    f.write_text("notes")
    _one_line_error(runner.invoke(app, ["train", "online", "-o", str(f)]), "is an existing file, not a folder")
    _one_line_error(runner.invoke(app, ["train", "online", "-o", str(f / "run")]), "is a file")
    _one_line_error(runner.invoke(app, ["train", "online", "-o", "/proc/pbrl_run"]), "not writable")
    assert f.read_text() == "notes"


def test_truncated_and_foreign_hdf5_files_are_one_line(truncated_h5, tmp_path):
    for args in (["label", "queue", str(truncated_h5), "-o", str(tmp_path / "q.h5")],
                 ["dataset", "info", str(truncated_h5)],
                 ["dataset", "label", str(truncated_h5), "-o", str(tmp_path / "p.h5")],
                 _offline(tmp_path / "run", "--dataset", str(truncated_h5), "--task", "mujoco/Reacher-v5")):
        _one_line_error(runner.invoke(app, args), "cut.hdf5")
    assert not (tmp_path / "run").exists() and not (tmp_path / "q.h5").exists()


def test_label_queue_checks_the_task_against_the_states(reacher_h5, tmp_path):
    _one_line_error(runner.invoke(app, ["label", "queue", str(reacher_h5), "--task", "mujoco/HalfCheetah-v5",
                                        "-o", str(tmp_path / "q.h5"), "--segment-length", "10"]),
                    "qpos 4", "mujoco/HalfCheetah-v5 has qpos 9", "--task")
    assert not (tmp_path / "q.h5").exists()


def test_every_dataset_subcommand_has_the_handler(tmp_path):
    _one_line_error(runner.invoke(app, ["dataset", "info", str(tmp_path / "none.hdf5")]), "none.hdf5")
    _one_line_error(runner.invoke(app, ["dataset", "label", str(tmp_path / "none.hdf5"), "-o", str(tmp_path / "p.h5")]),
                    "none.hdf5")
    _one_line_error(runner.invoke(app, ["dataset", "collect", "mujoco/Hoper-v5", "-o", str(tmp_path / "d.hdf5")]),
                    "unknown task id 'mujoco/Hoper-v5'")
    _one_line_error(runner.invoke(app, ["dataset", "collect", "mujoco/Hopper-v5", "--policy", "scripted",
                                        "-o", str(tmp_path / "d.hdf5")]), "only for Meta-World")


def test_sweep_seed_range_must_not_be_empty(tmp_path):
    _one_line_error(runner.invoke(app, ["sweep", "-o", str(tmp_path / "s"), "--seeds", "4-0", "--dry-run"]),
                    "'4-0' is empty", "0-4")
    res = runner.invoke(app, ["sweep", "-o", str(tmp_path / "s"), "--seeds", "2-4", "--dry-run"])
    assert res.exit_code == 0 and "3 runs" in res.output


def test_debug_shows_the_traceback(tmp_path):
    res = runner.invoke(app, ["--debug", "dataset", "info", str(tmp_path / "none.hdf5")])
    assert res.exit_code != 0 and isinstance(res.exception, (OSError, ValueError))
    res = runner.invoke(app, ["dataset", "info", str(tmp_path / "none.hdf5")])
    assert res.exit_code == 2 and isinstance(res.exception, SystemExit)


def test_help_texts_list_the_registry_and_survive_rich():
    res = runner.invoke(app, ["train", "offline", "--help"], env={"COLUMNS": "250"})
    text = " ".join(res.output.split())
    assert " | ".join(agent_names("offline")) in text  # cplbc, bc, iplawac included
    res = runner.invoke(app, ["train", "online", "--help"], env={"COLUMNS": "250"})
    assert " | ".join(agent_names("online")) in " ".join(res.output.split())
    res = runner.invoke(app, ["sweep", "--help"], env={"COLUMNS": "250"})
    assert "pbrl[sweep]" in " ".join(res.output.split())


def test_config_messages_say_an_online_run():
    from pbrl.config import config_from_dict

    with pytest.raises(ValueError, match="for an online run"):
        config_from_dict({"total_feedbak": 3})
    with pytest.raises(ValueError, match="for an offline run"):
        config_from_dict({"kind": "offline", "total_timesteps": 3})


def test_check_int_accepts_numpy_integers_and_rejects_bools():
    import numpy as np

    from pbrl.validation import check_int

    assert check_int("n", np.int64(3), 1) == 3 and isinstance(check_int("n", np.int32(3)), int)
    for bad in (True, 3.0, "3", None, np.float64(3)):
        with pytest.raises(ValueError, match="must be an integer"):
            check_int("n", bad)
    with pytest.raises(ValueError, match="n must be >= 1, got 0"):
        check_int("n", 0, 1)
