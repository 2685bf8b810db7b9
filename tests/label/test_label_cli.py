"""`pbrl label queue | serve | export` from the command line (typer's runner; serve only its errors)."""

import numpy as np
import pytest
from typer.testing import CliRunner

from pbrl.app.cli import app
from pbrl.label.queue import LabelQueue
from pbrl.label.store import LabelStore
from pbrl.preferences import PreferenceDataset

TASK = "mujoco/HalfCheetah-v5"
runner = CliRunner()


@pytest.fixture(scope="module")
def d4rl_file(tmp_path_factory):
    datasets = pytest.importorskip("pbrl.envs.datasets")
    ds = datasets.collect(TASK, "random", n_steps=120, seed=0)
    return datasets.save_d4rl(ds, tmp_path_factory.mktemp("ds") / "cheetah.hdf5")


def test_queue_then_export(d4rl_file, tmp_path):
    q_path = tmp_path / "queue.h5"
    r = runner.invoke(app, ["label", "queue", str(d4rl_file), "--pairs", "6", "--segment-length", "8", "-o", str(q_path)])
    assert r.exit_code == 0, r.output
    q = LabelQueue.load(q_path)
    assert len(q) == 6 and q.segment_length == 8 and q.task_id == TASK and q.a.has_states()
    assert q.metadata["dataset_id"] == "mujoco/HalfCheetah-v5/random"
    # the same seed gives the same queue
    r2 = runner.invoke(app, ["label", "queue", str(d4rl_file), "--pairs", "6", "--segment-length", "8", "-o", str(tmp_path / "q2.h5")])
    assert r2.exit_code == 0 and LabelQueue.load(tmp_path / "q2.h5").fingerprint() == q.fingerprint()

    store = LabelStore(q_path.with_suffix(".labels.sqlite"))  # where `pbrl label serve` puts the answers
    store.import_queue(q, q_path)
    pid = store.next_pair("ann")
    for choice in ("right", "skip", "left"):
        _, pid = store.answer(pid, "ann", choice)
    store.close()
    out = tmp_path / "prefs.h5"
    r = runner.invoke(app, ["label", "export", str(q_path), "-o", str(out)])
    assert r.exit_code == 0, r.output
    ds = PreferenceDataset.load(out)
    assert sorted(ds.label.tolist()) == [0.0, 1.0] and ds.metadata["task_id"] == TASK
    assert np.isin(ds.a.index, q.a.index).all()
    # a person's exported labels are never replaced by a typo: refused without --overwrite
    before = out.read_bytes()
    r = runner.invoke(app, ["label", "export", str(q_path), "-o", str(out)])
    assert r.exit_code == 2 and "already exists" in r.output and "--overwrite" in r.output
    assert out.read_bytes() == before
    r = runner.invoke(app, ["label", "export", str(q_path), "-o", str(out), "--overwrite"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["label", "queue", str(d4rl_file), "--pairs", "2", "-o", str(q_path)])
    assert r.exit_code == 2 and "already exists" in r.output  # the queue the answers belong to stays
    assert LabelQueue.load(q_path).fingerprint() == q.fingerprint()

    # a preference file can be queued again for a person
    r = runner.invoke(app, ["label", "queue", str(out), "-o", str(tmp_path / "again.h5")])
    assert r.exit_code == 0, r.output
    assert len(LabelQueue.load(tmp_path / "again.h5")) == 2


def test_cli_errors(d4rl_file, tmp_path):
    r = runner.invoke(app, ["label", "queue", str(tmp_path / "none.hdf5"), "-o", str(tmp_path / "q.h5")])
    assert r.exit_code == 2 and "no dataset file" in r.output
    r = runner.invoke(app, ["label", "queue", str(d4rl_file), "--segment-length", "5000", "-o", str(tmp_path / "q.h5")])
    assert r.exit_code == 2 and "segment length" in r.output
    r = runner.invoke(app, ["label", "queue", str(d4rl_file), "--task", "mujoco/Nope-v5", "-o", str(tmp_path / "q.h5")])
    assert r.exit_code == 2 and "unknown task" in r.output
    assert not (tmp_path / "q.h5").exists()
    r = runner.invoke(app, ["label", "serve"])
    assert r.exit_code == 2 and "--task" in r.output
    r = runner.invoke(app, ["label", "serve", str(tmp_path / "missing.h5")])
    assert r.exit_code == 2 and "no queue file" in r.output
    r = runner.invoke(app, ["label", "serve", "--task", TASK, "--host", "0.0.0.0", "--token", "short"])
    assert r.exit_code == 2 and "16 characters" in r.output
    r = runner.invoke(app, ["label", "export", str(tmp_path / "missing.h5"), "-o", str(tmp_path / "p.h5")])
    assert r.exit_code == 2
