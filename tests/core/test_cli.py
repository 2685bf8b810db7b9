"""The `pbrl` command: --help everywhere, `pbrl tasks`, the teacher-agreement table."""

import typer.main
from typer.testing import CliRunner

from pbrl.app.cli import app

runner = CliRunner()


def _walk(cmd, path: tuple[str, ...] = ()):
    yield path
    if hasattr(cmd, "commands"):  # a group (typer may vendor its own click)
        for name, sub in cmd.commands.items():
            yield from _walk(sub, (*path, name))


def test_every_command_has_help():
    root = typer.main.get_command(app)
    paths = list(_walk(root))
    assert ("tasks",) in paths and ("demo",) in paths
    for path in paths:
        res = runner.invoke(app, [*path, "--help"])
        assert res.exit_code == 0, (path, res.output)
        assert "Usage" in res.output


def test_tasks_lists_registry():
    res = runner.invoke(app, ["tasks", "metaworld"])
    assert res.exit_code == 0
    assert "metaworld/button-press-v3" in res.output and "mujoco/" not in res.output
    assert "50 tasks" in res.output


def test_teacher_agreement_table_numbers():
    from pbrl.app.demo import teacher_agreement_table

    rows = {r["teacher"]: r for r in teacher_agreement_table("mujoco/HalfCheetah-v5", 2, 400, 25, seed=0)}
    assert rows["oracle"]["agreement"] == 1.0 and rows["oracle"]["skipped"] == 0
    assert 0.8 < rows["mistake"]["agreement"] < 0.97  # 10 % mistakes
    assert rows["skip"]["skipped"] > 0 and rows["skip"]["answered"] + rows["skip"]["skipped"] == 400
    assert rows["equal"]["equal"] > 0
    assert rows["myopic"]["agreement"] < 1.0


def test_demo_tour_end_to_end_small(tmp_path):
    """The demo's tour at toy sizes: a dataset, the teachers' table, IQL on the true reward and BC beside
    MR+IQL at two budgets, two seeds each, and one plot (the full-size demo is timed in the README)."""
    from pbrl.app.demo import run_tour

    small = {"steps": 20, "eval_every": 10, "checkpoint_every": 10, "n_eval_episodes": 1, "segment_length": 10,
             "agent_kwargs": {"hidden": [16, 16], "batch_size": 16}}
    kw = dict(budgets=(3, 8), teacher_pairs=50, overrides=small, dataset_steps=1000, seeds=(0, 1))
    res = run_tour(str(tmp_path / "demo"), **kw)
    assert set(res["runs"]) == {"IQL, true reward", "BC, imitates the data", "MR+IQL, 3 labels", "MR+IQL, 8 labels"}
    assert all(sorted(by_seed) == [0, 1] and all(len(c) == 2 for c in by_seed.values())
               for by_seed in res["runs"].values())  # two seeds, two evaluations each
    assert res["labels"] == {"MR+IQL, 3 labels": 3, "MR+IQL, 8 labels": 8}
    assert [r["teacher"] for r in res["teachers"]][0] == "oracle" and res["teachers"][0]["agreement"] == 1.0
    assert (tmp_path / "demo" / "demo.png").stat().st_size > 10_000
    again = run_tour(str(tmp_path / "demo"), **kw)
    returns = {k: {s: [r["mean_return"] for r in c] for s, c in v.items()} for k, v in res["runs"].items()}
    assert {k: {s: [r["mean_return"] for r in c] for s, c in v.items()} for k, v in again["runs"].items()} == returns
