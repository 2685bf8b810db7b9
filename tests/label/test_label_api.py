"""The labelling server through FastAPI's test client: every endpoint and every bad input (nothing written)."""

import json
import os
import sqlite3
import time

import numpy as np
import pytest

pytest.importorskip("fastapi")
os.environ.setdefault("MUJOCO_GL", "osmesa")

from fastapi.testclient import TestClient  # noqa: E402

from pbrl.envs import make_env, rollout  # noqa: E402
from pbrl.label.export import export_preferences  # noqa: E402
from pbrl.label.queue import LabelQueue, make_queue  # noqa: E402
from pbrl.label.render import CLIP_NAME_RE, ClipRenderer, states_hash, write_mp4  # noqa: E402
from pbrl.label.server import create_app  # noqa: E402
from pbrl.label.store import LabelStore, majority_label  # noqa: E402
from pbrl.preferences import PreferenceDataset  # noqa: E402
from pbrl.segments import Trajectory, sample_segment_pairs  # noqa: E402

TASK = "mujoco/HalfCheetah-v5"
BASE = "http://127.0.0.1"


@pytest.fixture(scope="module")
def trajs():
    return rollout(make_env(TASK, seed=0), n_steps=80, seed=0)


@pytest.fixture()
def queue_file(trajs, tmp_path):
    q = make_queue(trajs, 6, 6, task_id=TASK, seed=1, metadata={"dataset_id": "test"})
    return q.save(tmp_path / "queue.h5")


@pytest.fixture()
def served(queue_file, tmp_path):
    """(client, store, queue) for a server without a renderer."""
    q = LabelQueue.load(queue_file)
    store = LabelStore(tmp_path / "labels.sqlite")
    store.import_queue(q, queue_file)
    app = create_app(store, tmp_path / "clips", render=False)
    with TestClient(app, base_url=BASE) as c:
        yield c, store, q


def n_rows(store):
    return store.progress()["answers"]


# ---------------------------------------------------------------------------- queue files
def test_queue_roundtrip_and_seeded(trajs, tmp_path):
    q1 = make_queue(trajs, 5, 7, task_id=TASK, seed=3)
    q2 = make_queue(trajs, 5, 7, task_id=TASK, seed=3)
    q3 = make_queue(trajs, 5, 7, task_id=TASK, seed=4)
    assert np.array_equal(q1.a.qpos, q2.a.qpos) and not np.array_equal(q1.a.qpos, q3.a.qpos)
    q1.save(tmp_path / "q.h5")
    back = LabelQueue.load(tmp_path / "q.h5")
    assert back.task_id == TASK and len(back) == 5 and back.segment_length == 7
    assert np.array_equal(back.b.qvel, q1.b.qvel) and np.array_equal(back.a.obs, q1.a.obs)
    assert back.fingerprint() == q1.fingerprint() != q3.fingerprint()


def test_queue_errors(trajs, tmp_path):
    no_states = [Trajectory(obs=t.obs, act=t.act, reward=t.reward) for t in trajs]
    with pytest.raises(ValueError, match="no simulator states"):
        make_queue(no_states, 3, 5, task_id=TASK)
    with pytest.raises(ValueError, match="task id"):
        make_queue(trajs, 3, 5)
    with pytest.raises(ValueError, match="unknown task"):
        make_queue(trajs, 3, 5, task_id="mujoco/Nope-v5")
    with pytest.raises(ValueError, match="n_pairs"):
        make_queue(trajs, 0, 5, task_id=TASK)
    with pytest.raises(FileNotFoundError, match="pbrl label queue"):
        LabelQueue.load(tmp_path / "missing.h5")
    PreferenceDataset(*sample_segment_pairs(trajs, 2, 5, 0), [1.0, 0.0]).save(tmp_path / "prefs.h5")
    with pytest.raises(ValueError, match="not a pbrl label queue"):
        LabelQueue.load(tmp_path / "prefs.h5")


# ---------------------------------------------------------------------------- page and status
def test_page_static_and_status(served):
    c, store, q = served
    r = c.get("/")
    assert r.status_code == 200 and "clip-a" in r.text and "/static/app.js" in r.text
    js = c.get("/static/app.js")
    assert js.status_code == 200 and "ArrowRight" in js.text and "Backspace" in js.text
    assert c.get("/static/style.css").status_code == 200
    assert c.get("/static/../server.py").status_code == 404
    s = c.get("/api/status", params={"annotator": "ann"}).json()
    assert s["pairs"] == len(q) == 6 and s["complete"] == 0 and s["task_id"] == TASK and s["annotators_per_pair"] == 1


def test_next_answer_undo_flow(served):
    c, store, q = served
    first = c.get("/api/next", params={"annotator": "ann"}).json()
    assert not first["done"] and first["clip_a"].startswith("/clips/") and first["clip_a"] != first["clip_b"]
    assert c.get("/api/next", params={"annotator": "ann"}).json()["pair_id"] == first["pair_id"]  # stable on reload
    seen = [first["pair_id"]]
    cur = first
    for choice in ("right", "equal", "skip", "left", "right", "left"):
        r = c.post("/api/answer", json={"pair_id": cur["pair_id"], "annotator": "ann", "choice": choice})
        assert r.status_code == 200, r.text
        cur = r.json()["next"]
        if not cur["done"]:
            seen.append(cur["pair_id"])
    assert cur["done"] and cur["progress"] == {
        "pairs": 6, "complete": 6, "answers": 6, "labels": 5, "skips": 1, "mine": 6,
    }
    assert len(set(seen)) == 6
    r = c.post("/api/undo", json={"annotator": "ann"})
    assert r.status_code == 200 and r.json()["undone"] == seen[-1] and r.json()["next"]["pair_id"] == seen[-1]
    assert n_rows(store) == 5
    r = c.post("/api/answer", json={"pair_id": seen[-1], "annotator": "ann", "choice": "right"})
    assert r.status_code == 200 and r.json()["next"]["done"]
    rows = sqlite3.connect(store.path).execute("SELECT choice, label FROM answers ORDER BY id").fetchall()
    assert rows == [("right", 1.0), ("equal", 0.5), ("skip", None), ("left", 0.0), ("right", 1.0), ("right", 1.0)]


def test_bad_inputs_write_nothing(served):
    c, store, q = served
    pid = c.get("/api/next", params={"annotator": "ann"}).json()["pair_id"]
    bad = [
        ({"pair_id": 9999, "annotator": "ann", "choice": "left"}, 404),
        ({"pair_id": pid, "annotator": "ann", "choice": "maybe"}, 422),
        ({"pair_id": pid, "annotator": "ann", "choice": 1}, 422),
        ({"pair_id": -1, "annotator": "ann", "choice": "left"}, 422),
        ({"pair_id": "1", "annotator": "ann", "choice": "left"}, 422),
        ({"pair_id": True, "annotator": "ann", "choice": "left"}, 422),
        ({"pair_id": pid, "annotator": "", "choice": "left"}, 422),
        ({"pair_id": pid, "annotator": "<script>", "choice": "left"}, 422),
        ({"pair_id": pid, "annotator": "x" * 65, "choice": "left"}, 422),
        ({"pair_id": pid, "annotator": "ann", "choice": "left", "extra": 1}, 422),
        ({"pair_id": pid, "annotator": "ann"}, 422),
    ]
    for body, code in bad:
        r = c.post("/api/answer", json=body)
        assert r.status_code == code, (body, r.status_code, r.text)
    assert c.post("/api/answer", content=b"{not json", headers={"content-type": "application/json"}).status_code == 422
    big = b'{"pair_id": 1, "annotator": "ann", "choice": "left", "pad": "' + b"x" * 20000 + b'"}'
    assert c.post("/api/answer", content=big, headers={"content-type": "application/json"}).status_code == 413
    assert c.get("/api/next").status_code == 422
    assert c.get("/api/next", params={"annotator": "../etc"}).status_code == 422
    assert c.post("/api/undo", json={"annotator": "ann"}).status_code == 409  # nothing to undo
    assert c.post("/api/undo", json={"annotator": "ann", "x": 1}).status_code == 422
    assert n_rows(store) == 0
    # answering twice, or a pair held by someone else (k = 1), is a conflict
    assert c.post("/api/answer", json={"pair_id": pid, "annotator": "ann", "choice": "left"}).status_code == 200
    assert c.post("/api/answer", json={"pair_id": pid, "annotator": "ann", "choice": "right"}).status_code == 409
    assert c.post("/api/answer", json={"pair_id": pid, "annotator": "bob", "choice": "right"}).status_code == 409
    held = c.get("/api/next", params={"annotator": "ann"}).json()["pair_id"]
    assert c.post("/api/answer", json={"pair_id": held, "annotator": "bob", "choice": "left"}).status_code == 409
    assert n_rows(store) == 1


def test_clips_only_from_cache(served, tmp_path):
    c, store, q = served
    nxt = c.get("/api/next", params={"annotator": "ann"}).json()
    assert c.get(nxt["clip_a"]).status_code == 404  # not rendered and no renderer
    name = nxt["clip_a"].rsplit("/", 1)[1]
    (tmp_path / "clips" / name).write_bytes(b"\x00\x00\x00\x18ftypisom")
    r = c.get(nxt["clip_a"])
    assert r.status_code == 200 and r.headers["content-type"] == "video/mp4" and r.content.startswith(b"\x00\x00\x00\x18ftyp")
    (tmp_path / "secret.txt").write_text("secret")
    for path in ("/clips/../secret.txt", "/clips/..%2Fsecret.txt", "/clips/%2e%2e/secret.txt", "/clips/secret.txt",
                 "/clips/" + "a" * 40 + ".mp4", "/clips/" + name.upper()):
        r = c.get(path)
        assert r.status_code == 404 and b"secret" not in r.content, path


def test_queries_and_results(served, trajs):
    c, store, q = served
    a, b = sample_segment_pairs(trajs, 3, 5, 7)
    pairs = [{"qpos_a": a.qpos[i].tolist(), "qvel_a": a.qvel[i].tolist(), "qpos_b": b.qpos[i].tolist(),
              "qvel_b": b.qvel[i].tolist()} for i in range(3)]
    r = c.post("/api/queries", json={"session": "run1", "pairs": pairs})
    assert r.status_code == 200
    ids = r.json()["pair_ids"]
    assert len(set(ids)) == 3
    # a training run's queries come before the queue
    nxt = c.get("/api/next", params={"annotator": "bob"}).json()
    assert nxt["pair_id"] == ids[0] and nxt["source"] == "run1"
    c.post("/api/answer", json={"pair_id": ids[0], "annotator": "bob", "choice": "left"})
    res = c.post("/api/results", json={"pair_ids": ids}).json()["results"]
    assert res[str(ids[0])] == {"complete": True, "labels": [0.0], "skips": 0, "annotators": ["bob"]}
    assert not res[str(ids[1])]["complete"]
    before = store.progress()["pairs"]
    bad_pair = dict(pairs[0], qpos_a=[row[:-1] for row in pairs[0]["qpos_a"]])
    nan_pair = dict(pairs[0], qvel_b=[[float("nan")] * len(pairs[0]["qvel_b"][0])] * len(pairs[0]["qvel_b"]))
    short_pair = dict(pairs[0], qpos_b=pairs[0]["qpos_b"][:2])
    for body, code in [
        ({"session": "run1", "pairs": [bad_pair]}, 422),
        ({"session": "run1", "pairs": [nan_pair]}, 422),
        ({"session": "run1", "pairs": [short_pair]}, 422),
        ({"session": "run1", "pairs": []}, 422),
        ({"session": "queue", "pairs": pairs}, 422),
        ({"session": "../x", "pairs": pairs}, 422),
        ({"session": "run1", "task_id": "mujoco/Nope-v5", "pairs": pairs}, 422),
        ({"session": "run1", "task_id": "mujoco/Hopper-v5", "pairs": pairs}, 422),  # states of another model
        ({"session": "run1", "pairs": pairs, "extra": 1}, 422),
    ]:
        r = c.post("/api/queries", content=json.dumps(body), headers={"content-type": "application/json"})
        assert r.status_code == code, (r.status_code, r.text)
    assert store.progress()["pairs"] == before
    assert c.post("/api/results", json={"pair_ids": [123456]}).status_code == 404
    assert c.post("/api/results", json={"pair_ids": []}).status_code == 422


def test_token_and_host_guard(queue_file, tmp_path):
    store = LabelStore(tmp_path / "t.sqlite")
    store.import_queue(LabelQueue.load(queue_file))
    token = "s3cret-token-0123456789"
    app = create_app(store, tmp_path / "clips", render=False, token=token, loopback_only=False)
    with TestClient(app, base_url="http://192.0.2.10:8000") as c:
        for path in ("/", "/api/status", "/api/next?annotator=a", "/static/app.js"):
            assert c.get(path).status_code == 401, path
        assert c.post("/api/answer", json={"pair_id": 1, "annotator": "a", "choice": "left"}).status_code == 401
        assert c.get("/api/status", headers={"x-pbrl-token": "wrong"}).status_code == 401
        assert c.get("/api/status", headers={"x-pbrl-token": token}).status_code == 200
        r = c.get(f"/?token={token}")
        assert r.status_code == 200 and "pbrl_token" in r.headers.get("set-cookie", "")
        assert c.get("/api/status").status_code == 200  # the cookie the page got
    assert n_rows(store) == 0
    local = create_app(store, tmp_path / "clips", render=False)
    with TestClient(local, base_url="http://evil.example:8000") as c:
        assert c.get("/api/status").status_code == 400  # DNS rebinding guard on loopback
    with TestClient(local, base_url="http://localhost:8000") as c:
        assert c.get("/api/status").status_code == 200


def test_annotators_per_pair_and_export(queue_file, tmp_path):
    q = LabelQueue.load(queue_file)
    store = LabelStore(tmp_path / "k2.sqlite", annotators_per_pair=2)
    store.import_queue(q, queue_file)
    a1 = store.next_pair("ann")
    assert store.next_pair("bob") == a1  # two annotators share a pair when k = 2
    p2 = store.next_pair("cid")
    assert p2 != a1  # but not three
    store.answer(a1, "ann", "right")
    store.answer(a1, "bob", "left")
    store.answer(p2, "cid", "right")
    assert store.next_pair("ann") == p2
    _, nxt = store.answer(p2, "ann", "right")
    store.answer(nxt, "ann", "skip")
    store.answer(nxt, "bob", "skip")
    store.close()
    maj = export_preferences(tmp_path / "k2.sqlite", queue_file, tmp_path / "maj.h5")
    back = PreferenceDataset.load(tmp_path / "maj.h5")
    assert len(back) == 2 and sorted(back.label.tolist()) == [0.5, 1.0]  # disagreement -> 0.5; all-skip left out
    assert back.metadata["task_id"] == TASK and back.metadata["teacher"] == "human"
    i = int(np.flatnonzero(back.label == 1.0)[0])
    src = int(np.flatnonzero((q.a.obs == back.a.obs[i]).all(axis=(1, 2)))[0])
    assert np.array_equal(q.b.obs[src], back.b.obs[i])
    assert len(maj) == 2
    per = export_preferences(tmp_path / "k2.sqlite", queue_file, tmp_path / "per.h5", mode="per-annotator")
    assert len(per) == 4 and sorted(per.annotator.tolist()) == ["ann", "ann", "bob", "cid"]
    # the annotator's name is the user id (what VPL groups labels by), kept on disk; a pair answered by two
    # people in majority mode has no single user, so the majority export carries none
    assert PreferenceDataset.load(tmp_path / "per.h5").user.tolist() == per.annotator.tolist()
    assert maj.user is None and back.user is None
    with pytest.raises(ValueError, match="mode"):
        export_preferences(tmp_path / "k2.sqlite", queue_file, mode="mean")
    other = make_queue(rollout(make_env(TASK, seed=5), n_steps=30, seed=5), 2, 6, task_id=TASK, seed=9)
    with pytest.raises(ValueError, match="another queue"):
        export_preferences(tmp_path / "k2.sqlite", other)
    with pytest.raises(ValueError, match="another queue"):
        LabelStore(tmp_path / "k2.sqlite").import_queue(other)


def test_majority_label():
    assert majority_label([1.0, 1.0, 0.0]) == 1.0
    assert majority_label([0.0, 1.0]) == 0.5
    assert majority_label([0.5]) == 0.5
    assert np.isnan(majority_label([]))


def test_render_clip_is_browser_h264(trajs, tmp_path):
    r = ClipRenderer(TASK, width=64, height=48)
    tr = trajs[0]
    frames = r.render_frames(tr.qpos[:4], tr.qvel[:4])
    assert frames.shape == (4, 48, 64, 3) and frames.dtype == np.uint8
    assert frames.std() > 1.0 and not np.array_equal(frames[0], frames[3])  # a scene that moves
    path = r.render_clip(tr.qpos[:4], tr.qvel[:4], tmp_path / "c.mp4")
    data = path.read_bytes()
    assert data[4:8] == b"ftyp" and b"avc1" in data[:4096]  # H.264 in an MP4
    assert data.find(b"moov") < data.find(b"mdat")  # +faststart: index first, plays while loading
    with pytest.raises(ValueError, match="nq="):
        r.render_frames(tr.qpos[:2, :3], tr.qvel[:2])
    with pytest.raises(ValueError, match="even"):
        write_mp4(np.zeros((2, 5, 6, 3), np.uint8), tmp_path / "odd.mp4", 10)
    with pytest.raises(ValueError, match="even"):
        ClipRenderer(TASK, width=63)
    r.close()
    h = states_hash(TASK, tr.qpos[:4], tr.qvel[:4])
    assert len(h) == 40 and h != states_hash(TASK, tr.qpos[1:5], tr.qvel[1:5])
    assert CLIP_NAME_RE.match(ClipRenderer(TASK, 64, 48).clip_name(h))


def test_render_worker_serves_clip(served, tmp_path, queue_file):
    """With the renderer on, a requested clip is rendered (ahead of the queue) and served as MP4."""
    store = LabelStore(tmp_path / "r.sqlite")
    store.import_queue(LabelQueue.load(queue_file))
    app = create_app(store, tmp_path / "rclips", render=True, width=64, height=48)
    with TestClient(app, base_url=BASE) as c:
        nxt = c.get("/api/next", params={"annotator": "ann"}).json()
        r = c.get(nxt["clip_b"])
        assert r.status_code == 200 and r.content[4:8] == b"ftyp"
        assert (tmp_path / "rclips" / nxt["clip_b"].rsplit("/", 1)[1]).exists()


def test_render_worker_order(tmp_path):
    """Clips render in priority order ahead of the annotator; a requested clip jumps the queue."""
    import threading

    from pbrl.label.render import RenderWorker

    gate = threading.Event()
    order: list[str] = []

    class Fake:
        def render_clip(self, qpos, qvel, path):
            gate.wait(10)
            order.append(path.name)
            path.write_bytes(b"mp4")

        def close(self):
            pass

    names = [f"{i:040x}.mp4" for i in range(6)]
    w = RenderWorker(lambda task: Fake(), tmp_path / "c")
    try:
        futs = [w.submit(n, TASK, lambda: (None, None), priority=float(i)) for i, n in enumerate(names)]
        assert w.submit(names[3], TASK, lambda: (None, None), priority=9.0) is futs[3]  # queued once
        time.sleep(0.2)  # the worker is now blocked inside clip 0
        urgent = threading.Thread(target=w.ensure, args=(names[4], TASK, lambda: (None, None)))
        urgent.start()
        time.sleep(0.2)
        gate.set()
        urgent.join(10)
        for f in futs:
            assert f.result(10).exists()
    finally:
        w.close()
    assert order == [names[0], names[4], names[1], names[2], names[3], names[5]]
    assert w.submit(names[2], TASK, lambda: (None, None)).done()  # cached: nothing to render
    with pytest.raises(ValueError, match="bad clip name"):
        w.submit("../x.mp4", TASK, lambda: (None, None))
