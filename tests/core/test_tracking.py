"""``--track``: Weights & Biases logging through the runs' SB3 logger, offline (``WANDB_MODE=offline``, no
network); a resumed run continues the same W&B run; without the ``wandb`` extra, one line and exit 2."""

import glob
import json
import struct
import sys
import time

import numpy as np
import pytest
from typer.testing import CliRunner

from pbrl.app import runs
from pbrl.app.cli import app
from pbrl.app.config import config_from_dict
from pbrl.app.run_dir import RunDir
from pbrl.app.tracking import TRACKING_FILE, WANDB_MISSING, Tracking, enable_tracking, tracking_of

BASE = {
    "kind": "offline",
    "task": "mujoco/Hopper-v5",
    "agent": "mriql",
    "total_feedback": 12,
    "segment_length": 10,
    "steps": 60,
    "eval_every": 20,
    "checkpoint_every": 20,
    "n_eval_episodes": 1,
    "agent_kwargs": {"hidden": [16, 16], "batch_size": 32},
}


@pytest.fixture(scope="module")
def dataset_file(tmp_path_factory):
    from pbrl.envs.datasets import collect, save_d4rl

    path = tmp_path_factory.mktemp("data") / "hopper.hdf5"
    save_d4rl(collect("mujoco/Hopper-v5", policy="random", n_steps=600, seed=0), path)
    return str(path)


def _history(run_file: str) -> list[dict]:
    """The history rows of a W&B ``.wandb`` file (a LevelDB-style log of ``Record`` protobufs after a 7-byte
    header: 32 KiB blocks of chunks with a 7-byte header ``crc32, length, type``)."""
    from wandb.proto import wandb_internal_pb2 as pb

    data = open(run_file, "rb").read()
    block, pos, records, part = 32768, 7, [], b""
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # block trailer
            pos += block - pos % block
            continue
        _, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        if kind == 0:
            pos += block - pos % block
            continue
        chunk, pos = data[pos + 7 : pos + 7 + length], pos + 7 + length
        if kind == 1:
            records.append(chunk)
        elif kind in (2, 3):
            part = (b"" if kind == 2 else part) + chunk
        else:
            records.append(part + chunk)
    rows = []
    for raw in records:
        rec = pb.Record()
        rec.ParseFromString(raw)
        if rec.WhichOneof("record_type") == "history":
            rows.append({i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in rec.history.item})
    return rows


def _logged(run_file: str, last_step: int, timeout: float = 60.0) -> list[dict]:
    """:func:`_history` once W&B's service has written the row of ``last_step`` (``run.finish()`` can return
    before its log file is flushed on a busy machine)."""
    t0 = time.time()
    while True:
        rows = _history(run_file)
        if any(r.get("global_step") == last_step for r in rows) or time.time() - t0 > timeout:
            return rows
        time.sleep(0.5)


def test_track_without_the_wandb_extra_is_one_line_and_makes_nothing(tmp_path, monkeypatch, dataset_file):
    monkeypatch.setitem(sys.modules, "wandb", None)  # `import wandb` raises ImportError
    d = tmp_path / "run"
    res = CliRunner().invoke(app, ["train", "offline", "--dataset", dataset_file, "--task", "mujoco/Hopper-v5",
                                   "--steps", "20", "--run-dir", str(d), "--track", "--quiet"])
    assert res.exit_code == 2, res.output
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and "pip install 'pbrl[wandb]'" in lines[0]
    assert not d.exists()
    res = CliRunner().invoke(app, ["train", "--resume", str(d), "--track"])
    assert res.exit_code == 2 and "pip install 'pbrl[wandb]'" in res.output
    with pytest.raises(ValueError, match=r"pbrl\[wandb\]"):
        runs.train(config_from_dict({**BASE, "dataset": dataset_file}), d, verbose=False, tracking=Tracking())
    assert not d.exists() and WANDB_MISSING.startswith("--track")
    sweep = tmp_path / "sweep"
    res = CliRunner().invoke(app, ["sweep", "--out", str(sweep), "--kind", "offline", "--tasks", "mujoco/Hopper-v5",
                                   "--set", f"dataset={dataset_file}", "--seeds", "0-1", "--track"])
    assert res.exit_code == 2 and "pip install 'pbrl[wandb]'" in res.output and not sweep.exists(), res.output


def test_tracking_file_keeps_the_run_id(tmp_path):
    first = enable_tracking(tmp_path, Tracking(project="p", entity="me", group="sweep1"))
    assert len(first.run_id) == 8 and tracking_of(tmp_path) == first
    again = enable_tracking(tmp_path, Tracking(project="p"))  # a resume with --track: the same W&B run
    assert again.run_id == first.run_id
    (tmp_path / TRACKING_FILE).write_text("{")
    with pytest.raises(ValueError, match="not a pbrl tracking file"):
        tracking_of(tmp_path)
    with pytest.raises(ValueError, match="--wandb-project"):
        Tracking(project="a/b")


def test_a_tracked_run_logs_offline_and_its_resume_continues_the_same_wandb_run(tmp_path, monkeypatch, dataset_file):
    pytest.importorskip("wandb", reason="the wandb extra is not installed (pip install 'pbrl[wandb]')")
    import pbrl.envs.evaluation as cb

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    calls, real = {"n": 0}, cb.evaluation_row

    def flaky(*a, **k):  # the run dies at its second evaluation (step 40), after the checkpoint at step 20
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("simulated failure")
        return real(*a, **k)

    monkeypatch.setattr(cb, "evaluation_row", flaky)
    d = tmp_path / "run"
    with pytest.raises(RuntimeError, match="simulated failure"):
        runs.train(config_from_dict({**BASE, "dataset": dataset_file}), d, verbose=False,
                   tracking=Tracking(project="pbrl-test"))
    run_id = tracking_of(d).run_id
    monkeypatch.setattr(cb, "evaluation_row", real)
    metrics = runs.resume(d, verbose=False)
    assert metrics["steps"] == 60 and tracking_of(d).run_id == run_id
    files = sorted(glob.glob(str(d / "wandb" / f"offline-run-*-{run_id}" / f"run-{run_id}.wandb")))
    assert len(files) == 2, "the resumed session must log to the same W&B run id"
    first, second = _logged(files[0], 20), _logged(files[1], 60)
    evals = lambda rows: {r["global_step"]: r["eval/mean_return"] for r in rows if "eval/mean_return" in r}  # noqa: E731
    assert list(evals(first)) == [20]
    assert list(evals(second)) == [40, 60]
    curve = {r["step"]: r["mean_return"] for r in RunDir(d).curve()}
    assert {**evals(first), **evals(second)} == pytest.approx(curve)
    logged = {k for r in first + second for k in r}
    assert set((d / "progress.csv").read_text().splitlines()[0].split(",")) <= logged  # what the CSV has, W&B has
    assert all(r["feedback/labels_used"] == 12 for r in first + second if "eval/mean_return" in r)


def test_a_tracked_online_run_logs_its_evaluations(tmp_path, monkeypatch):
    pytest.importorskip("wandb", reason="the wandb extra is not installed (pip install 'pbrl[wandb]')")
    from helpers import tiny_online_config

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    d = tmp_path / "online"
    runs.train(config_from_dict(tiny_online_config(total_timesteps=250)), d, verbose=False,
               tracking=Tracking(project="pbrl-test"))
    run_id = tracking_of(d).run_id
    (f,) = glob.glob(str(d / "wandb" / f"offline-run-*-{run_id}" / f"run-{run_id}.wandb"))
    rows = _logged(f, 250)
    evals = {r["global_step"]: r["eval/mean_return"] for r in rows if "eval/mean_return" in r}
    curve = RunDir(d).curve()
    # online, an evaluation is logged with SB3's next dump; the final one at the run's last step
    assert evals[250] == pytest.approx(curve[-1]["mean_return"]) and curve[-1]["step"] == 250
    assert set(np.round(list(evals.values()), 4)) <= set(np.round([r["mean_return"] for r in curve], 4))
    assert any(k.startswith("feedback/") for r in rows for k in r)
