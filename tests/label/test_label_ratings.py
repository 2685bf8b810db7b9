"""The labelling page's rating mode (RbRL): rating queues, a rating store whose answers are classes (checked
by the store and by SQLite), the API through FastAPI's test client, and the export to a RatingDataset."""

import os
import sqlite3

import numpy as np
import pytest

pytest.importorskip("fastapi")
os.environ.setdefault("MUJOCO_GL", "osmesa")

from fastapi.testclient import TestClient  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from pbrl.app.cli import app as cli  # noqa: E402
from pbrl.envs import make_env, rollout  # noqa: E402
from pbrl.label.export import export_preferences, export_ratings  # noqa: E402
from pbrl.label.queue import LabelQueue, make_queue  # noqa: E402
from pbrl.label.server import create_app  # noqa: E402
from pbrl.label.store import ConflictError, LabelStore, majority_rating  # noqa: E402
from pbrl.ratings import RatingDataset  # noqa: E402

TASK = "mujoco/HalfCheetah-v5"
BASE = "http://127.0.0.1"


@pytest.fixture(scope="module")
def trajs():
    return rollout(make_env(TASK, seed=0), n_steps=80, seed=0)


@pytest.fixture()
def queue_file(trajs, tmp_path):
    return make_queue(trajs, 5, 6, task_id=TASK, seed=1, n_classes=3).save(tmp_path / "rate.h5")


@pytest.fixture()
def served(queue_file, tmp_path):
    q = LabelQueue.load(queue_file)
    store = LabelStore(tmp_path / "labels.sqlite", n_classes=3)
    store.import_queue(q, queue_file)
    with TestClient(create_app(store, tmp_path / "clips", render=False), base_url=BASE) as c:
        yield c, store, q


def test_rating_queue_round_trip(trajs, tmp_path, queue_file):
    q = LabelQueue.load(queue_file)
    assert q.mode == "rating" and q.n_classes == 3 and q.b is None and len(q) == 5 and q.segment_length == 6
    assert "1 (worst) to 3 (best)" in q.instruction
    pairs = make_queue(trajs, 5, 6, task_id=TASK, seed=1)
    assert pairs.mode == "pairs" and pairs.n_classes is None
    assert q.fingerprint() != make_queue(trajs, 5, 6, task_id=TASK, seed=1, n_classes=4).fingerprint()
    with pytest.raises(ValueError, match="n_classes must be <= 9"):
        make_queue(trajs, 5, 6, task_id=TASK, n_classes=12)
    with pytest.raises(ValueError, match="needs a reward model"):
        make_queue(trajs, 5, 6, task_id=TASK, n_classes=3, selector="disagreement")
    with pytest.raises(ValueError, match="must record n_classes"):
        LabelQueue(q.a, None, TASK, {})


def test_rating_store_takes_classes_and_refuses_everything_else(served, tmp_path):
    _, store, _ = served
    assert store.mode == "rating" and store.n_classes == 3
    pid = store.next_pair("ann")
    for choice, rating, msg in [("left", None, "rates single clips"), ("rate", 3, r"class in \[0, 2\]"),
                                ("rate", None, "rating must be"), ("skip", 1, "carries no rating")]:
        with pytest.raises(ValueError, match=msg):
            store.answer(pid, "ann", choice, rating)
    assert store.progress()["answers"] == 0  # nothing written by a refused answer
    aid, nxt = store.answer(pid, "ann", "rate", 2)
    assert nxt is not None and nxt != pid
    with pytest.raises(ConflictError):
        store.answer(pid, "ann", "rate", 1)
    store.answer(nxt, "ann", "skip")
    prog = store.progress("ann")
    assert prog["answers"] == 2 and prog["labels"] == 1 and prog["skips"] == 1
    assert store.undo("ann") == nxt
    with pytest.raises(ValueError, match="rating store"):
        store.add_pairs("run", TASK, [])
    # SQLite itself holds the table to classes in [0, 3): nothing else can get in, even around the store
    db = sqlite3.connect(store.path)
    with pytest.raises(sqlite3.IntegrityError):
        db.execute("INSERT INTO answers (pair_id, annotator, choice, label, created) VALUES (?, 'x', 'rate', 5, 0)",
                   (pid,))
    db.close()
    # a pair store is not a rating store, and the other way round
    with pytest.raises(ValueError, match="holds ratings of 3 classes, not ratings of 4"):
        LabelStore(store.path, n_classes=4)
    pair_store = LabelStore(tmp_path / "pairs.sqlite")
    with pytest.raises(ValueError, match="carries no rating"):
        pair_store.answer(1, "ann", "left", 2)
    with pytest.raises(ValueError, match="is a pairs store but the queue asks for ratings"):
        pair_store.import_queue(served[2])


def test_api_in_rating_mode_stores_an_answer(served):
    c, store, _ = served
    st = c.get("/api/status").json()
    assert st["mode"] == "rating" and st["n_classes"] == 3
    nxt = c.get("/api/next", params={"annotator": "ann"}).json()
    assert nxt["mode"] == "rating" and nxt["n_classes"] == 3 and nxt["clip_b"] is None
    assert nxt["clip_a"].startswith("/clips/") and "1 (worst) to 3 (best)" in nxt["instruction"]
    pid = nxt["pair_id"]
    for body in ({"choice": "rate", "rating": 7}, {"choice": "rate", "rating": 3}, {"choice": "left"},
                 {"choice": "rate", "rating": "2"}, {"choice": "rate"}):
        r = c.post("/api/answer", json={"pair_id": pid, "annotator": "ann", **body})
        assert r.status_code == 422, (body, r.text)
    assert store.progress()["answers"] == 0
    r = c.post("/api/answer", json={"pair_id": pid, "annotator": "ann", "choice": "rate", "rating": 2})
    assert r.status_code == 200, r.text
    assert r.json()["saved"] == {"answer_id": 1, "pair_id": pid, "choice": "rate", "rating": 2}
    assert r.json()["next"]["mode"] == "rating"
    rows = sqlite3.connect(store.path).execute("SELECT pair_id, choice, label FROM answers").fetchall()
    assert rows == [(pid, "rate", 2.0)]  # committed before the response
    q = {"session": "run1", "task_id": TASK, "pairs": [{"qpos_a": [[0.0] * 9], "qvel_a": [[0.0] * 9],
                                                        "qpos_b": [[0.0] * 9], "qvel_b": [[0.0] * 9]}]}
    assert c.post("/api/queries", json=q).status_code == 409


def test_export_ratings_majority_and_per_annotator(served, tmp_path, queue_file):
    _, store, q = served
    store2 = LabelStore(store.path, annotators_per_pair=2)
    order = []
    for ann, ratings in (("ann", [2, 0, 1]), ("bob", [2, 2])):
        for r in ratings:
            pid = store2.next_pair(ann)
            store2.answer(pid, ann, "rate", r)
            order.append((ann, pid, r))
    pid_skip = store2.next_pair("bob")
    store2.answer(pid_skip, "bob", "skip")
    ds = export_ratings(store.path, queue_file, tmp_path / "r.h5")
    assert isinstance(ds, RatingDataset) and ds.n_classes == 3
    back = RatingDataset.load(tmp_path / "r.h5")
    np.testing.assert_array_equal(back.rating, ds.rating)
    by_index = {store.pair(pid)["source_index"]: [] for _, pid, _ in order}
    for _, pid, r in order:
        by_index[store.pair(pid)["source_index"]].append(r)
    idx = sorted(by_index)  # rows in queue order, one per rated clip, the annotators' majority class
    np.testing.assert_array_equal(ds.rating, [majority_rating(by_index[i]) for i in idx])
    np.testing.assert_array_equal(ds.segments.obs, q.a.obs[idx])
    per = export_ratings(store.path, queue_file, mode="per-annotator")
    assert len(per) == 5 and set(per.annotator.tolist()) == {"ann", "bob"}
    assert majority_rating([0, 2]) == 0 and majority_rating([0, 1, 2]) == 1 and majority_rating([1, 1, 2]) == 1
    with pytest.raises(ValueError, match="export_ratings"):
        export_preferences(store.path, queue_file)
    # `pbrl label export` picks the rating export for a rating queue
    res = CliRunner().invoke(cli, ["label", "export", str(queue_file), "--db", str(store.path),
                                   "-o", str(tmp_path / "cli.h5")])
    assert res.exit_code == 0, res.output
    assert RatingDataset.load(tmp_path / "cli.h5").n_classes == 3


def test_cli_makes_a_rating_queue(tmp_path):
    from pbrl.envs.datasets import collect, save_d4rl

    data = save_d4rl(collect(TASK, "random", n_steps=120, seed=0), tmp_path / "d.hdf5")
    res = CliRunner().invoke(cli, ["label", "queue", str(data), "-o", str(tmp_path / "q.h5"), "--pairs", "4",
                                   "--segment-length", "10", "--n-classes", "5"])
    assert res.exit_code == 0, res.output
    assert "4 clips to rate 1 .. 5" in " ".join(res.output.split())
    q = LabelQueue.load(tmp_path / "q.h5")
    assert q.mode == "rating" and q.n_classes == 5 and len(q) == 4
    res = CliRunner().invoke(cli, ["label", "queue", str(data), "-o", str(tmp_path / "q2.h5"), "--n-classes", "1"])
    assert res.exit_code == 2
