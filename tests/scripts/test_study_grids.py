"""The studies ported onto the harness (pbrl.app.bench) build the same grids as the scripts before it: the same
run-directory names and the same configs, so rerunning a study's command resumes its existing run
directories (pbrl.app.sweep.check_existing_runs finds no difference) instead of refusing them.

``fixtures/old_grids.json`` was written by the scripts before the harness (commits in its ``made_from``), for the
command lines in its ``argv`` fields (points: ``[name, index into configs, seed]``; ``{data}`` stands for
the folder of the offline datasets)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from helpers import load_script

FIXTURE = json.loads((Path(__file__).parent / "fixtures" / "old_grids.json").read_text())


def _old(case: dict, data: str = "") -> list[tuple[str, dict]]:
    """The fixture's points; a config key added since takes its default, as a saved run's config does when
    :func:`pbrl.app.sweep.check_existing_runs` reads it (``dataset_sha256``, for one)."""
    configs = [json.loads(json.dumps(c).replace("{data}", data)) for c in case["configs"]]
    configs = [{**_defaults(c["kind"]), **c} for c in configs]
    return [(name, {**configs[i], "seed": seed}) for name, i, seed in case["points"]]


def _defaults(kind: str) -> dict:
    from pbrl.app.config import OfflineConfig, OnlineConfig

    return json.loads(json.dumps(dataclasses.asdict(OfflineConfig() if kind == "offline" else OnlineConfig())))


def _new(points) -> list[tuple[str, dict]]:
    return [(p.name, json.loads(json.dumps(p.config))) for p in points]


@pytest.mark.parametrize("case", sorted(FIXTURE["bench_feedback"]))
def test_bench_feedback_grid_is_the_old_one(case):
    bench = load_script("bench_feedback")
    old = FIXTURE["bench_feedback"][case]
    assert _new(bench.build_grid(bench.parse_args(old["argv"]))) == _old(old)


@pytest.mark.parametrize("case", sorted(FIXTURE["bench_online"]))
def test_bench_online_grid_is_the_old_one(case):
    bench = load_script("bench_online")
    old = FIXTURE["bench_online"][case]
    assert _new(bench.build_grid(bench.parse_args(old["argv"]))) == _old(old)


def _labels_file(path: Path) -> None:
    from pbrl.preferences import PreferenceDataset
    from pbrl.segments import Segments

    rng = np.random.default_rng(0)

    def segs():
        return Segments(obs=rng.normal(size=(2, 4, 3)), act=rng.normal(size=(2, 4, 2)), reward=rng.normal(size=(2, 4)),
                        index=np.arange(2))

    path.parent.mkdir(parents=True, exist_ok=True)
    PreferenceDataset(segs(), segs(), [0.0, 1.0]).save(path)


@pytest.mark.parametrize("case", sorted(FIXTURE["bench_offline"]))
def test_bench_offline_grid_is_the_old_one(case, tmp_path):
    from pbrl.app.offline_study import build_grid, parse_offline_args

    old = FIXTURE["bench_offline"][case]
    data = str(tmp_path)
    datasets = [json.loads(json.dumps(d).replace("{data}", data)) for d in old["datasets"]]
    for d in datasets:
        Path(d["dataset"]).parent.mkdir(parents=True, exist_ok=True)
        Path(d["dataset"]).touch()  # the grid checks that the file is there, not what it holds
    labels = {}
    for name, seed, path in old["labels"]:
        labels[(name, seed)] = path.replace("{data}", data)
        _labels_file(Path(labels[(name, seed)]))
    # the default budget has changed since (the D4RL-sized curve's); the old command is the one with its default
    # spelled out
    argv = old["argv"] if "--steps" in old["argv"] else [*old["argv"], "--steps", str(old["configs"][0]["steps"])]
    args = parse_offline_args(["--datasets", "collect:mujoco/Reacher-v5:random:600", *argv])
    assert _new(build_grid(args, datasets, labels)) == _old(old, data)


def test_offline_curve_defaults_give_the_old_curve_grid(tmp_path):
    """offline_curve.py is bench_offline's grid with its own defaults: at those defaults it is the old
    measurement's grid (the fixture's ``curve`` case spells them out as bench_offline flags)."""
    from pbrl.app.offline_study import build_grid

    curve = load_script("offline_curve")
    old = FIXTURE["bench_offline"]["curve"]
    data = str(tmp_path)
    datasets = [json.loads(json.dumps(d).replace("{data}", data)) for d in old["datasets"]]
    for d in datasets:
        Path(d["dataset"]).parent.mkdir(parents=True, exist_ok=True)
        Path(d["dataset"]).touch()
    args = curve.parse_args(["--datasets", "collect:mujoco/Reacher-v5:random:600"])
    assert _new(build_grid(args, datasets, {})) == _old(old, data)
