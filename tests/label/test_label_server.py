"""The labelling server as people run it: `pbrl label serve` in a subprocess on loopback.

SIGKILL after N answers keeps the N answers; 1,000 label posts from 20 concurrent clients give 1,000 rows
and no error; a non-loopback bind refuses requests without the token; HumanTeacher gets a person's labels.
"""

import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

httpx = pytest.importorskip("httpx")
pytest.importorskip("uvicorn")

from pbrl.envs import make_env, rollout  # noqa: E402
from pbrl.label.export import export_preferences  # noqa: E402
from pbrl.label.queue import make_queue  # noqa: E402
from pbrl.label.teacher import HumanTeacher  # noqa: E402
from pbrl.segments import sample_segment_pairs  # noqa: E402
from pbrl.teachers import make_teacher  # noqa: E402

TASK = "mujoco/HalfCheetah-v5"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`python -m pbrl.app.cli label serve ...` in a subprocess; always stopped by the test that started it."""

    def __init__(self, args, tmp_path, name="server"):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tmp_path / f"{name}.log"
        env = {**os.environ, "MUJOCO_GL": "osmesa", "COLUMNS": "200"}
        with open(self.log, "w") as fh:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "pbrl.app.cli", "label", "serve", *map(str, args), "--port", str(self.port), "--no-render"],
                stdout=fh, stderr=subprocess.STDOUT, env=env,
            )

    def wait(self, timeout=90.0, headers=None):
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited {self.proc.returncode}: {self.log.read_text()}")
            try:
                return httpx.get(self.url + "/api/status", headers=headers or {}, timeout=2.0)
            except httpx.TransportError:
                time.sleep(0.2)
        raise RuntimeError(f"server did not start in {timeout} s: {self.log.read_text()}")

    def kill(self, sig=signal.SIGTERM):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(15)


@pytest.fixture(scope="module")
def trajs():
    return rollout(make_env(TASK, seed=0), n_steps=120, seed=0)


def test_sigkill_keeps_answers(trajs, tmp_path):
    queue = make_queue(trajs, 40, 4, task_id=TASK, seed=0).save(tmp_path / "q.h5")
    db = tmp_path / "q.labels.sqlite"
    n = 25
    choices = ["left", "right", "equal", "skip", "right"]
    srv = Server([queue], tmp_path, "first")
    try:
        assert srv.wait().status_code == 200
        given = []
        with httpx.Client(base_url=srv.url, timeout=30) as c:
            cur = c.get("/api/next", params={"annotator": "ann"}).json()
            for i in range(n):
                r = c.post("/api/answer", json={"pair_id": cur["pair_id"], "annotator": "ann", "choice": choices[i % 5]})
                assert r.status_code == 200, r.text
                given.append((cur["pair_id"], choices[i % 5]))
                cur = r.json()["next"]
    finally:
        srv.kill(signal.SIGKILL)
    assert srv.proc.returncode == -signal.SIGKILL
    rows = sqlite3.connect(db).execute("SELECT pair_id, choice FROM answers ORDER BY id").fetchall()
    assert rows == given
    srv2 = Server([queue], tmp_path, "second")
    try:
        status = srv2.wait().json()
        assert status["answers"] == n and status["complete"] == n and status["pairs"] == 40
        nxt = httpx.get(srv2.url + "/api/next", params={"annotator": "ann"}).json()
        assert nxt["pair_id"] == cur["pair_id"]  # continues where it stopped
    finally:
        srv2.kill()
    ds = export_preferences(db, queue)
    assert len(ds) == n - n // 5  # skips are not labels
    assert sorted(ds.label.tolist()) == sorted({"left": 0.0, "right": 1.0, "equal": 0.5}[c] for _, c in given if c != "skip")


def test_1000_posts_from_20_clients(trajs, tmp_path):
    n_posts, n_clients = 1000, 20
    queue = make_queue(trajs, n_posts, 2, task_id=TASK, seed=0).save(tmp_path / "big.h5")
    srv = Server([queue], tmp_path, "big")
    errors: list[str] = []
    posted: list[int] = []
    lock = threading.Lock()
    budget = iter(range(n_posts))  # at most n_posts posts in all, whatever happens

    def client(k: int) -> None:
        name = f"client{k}"
        try:
            with httpx.Client(base_url=srv.url, timeout=60) as c:
                cur = c.get("/api/next", params={"annotator": name}).json()
                while not cur["done"]:
                    with lock:
                        if next(budget, None) is None:
                            return
                    r = c.post("/api/answer", json={"pair_id": cur["pair_id"], "annotator": name,
                                                    "choice": ("left", "right", "equal")[cur["pair_id"] % 3]})
                    if r.status_code != 200:
                        with lock:
                            errors.append(f"{r.status_code} {r.text}")
                        return
                    with lock:
                        posted.append(cur["pair_id"])
                    cur = r.json()["next"]
        except Exception as e:  # noqa: BLE001 - collected and asserted below
            with lock:
                errors.append(repr(e))

    try:
        srv.wait()
        threads = [threading.Thread(target=client, args=(k,), daemon=True) for k in range(n_clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(300)
        assert not any(t.is_alive() for t in threads), "clients did not finish"
        status = httpx.get(srv.url + "/api/status").json()
    finally:
        srv.kill()
    assert errors == []
    assert len(posted) == n_posts and len(set(posted)) == n_posts
    assert status["answers"] == n_posts and status["complete"] == n_posts
    db = sqlite3.connect(tmp_path / "big.labels.sqlite")
    assert db.execute("SELECT COUNT(*), COUNT(DISTINCT pair_id) FROM answers").fetchone() == (n_posts, n_posts)
    assert db.execute("SELECT COUNT(DISTINCT annotator) FROM answers").fetchone()[0] > 1
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_non_loopback_bind_requires_token(trajs, tmp_path):
    queue = make_queue(trajs, 3, 4, task_id=TASK, seed=0).save(tmp_path / "q.h5")
    srv = Server([queue, "--host", "0.0.0.0"], tmp_path, "open")
    try:
        assert srv.wait().status_code == 401
        token = None
        for _ in range(50):
            m = re.search(r"^token: (\S+)$", srv.log.read_text(), re.M)
            if m:
                token = m.group(1)
                break
            time.sleep(0.1)
        assert token and len(token) >= 16
        for path in ("/", "/api/next?annotator=a", "/static/app.js"):
            assert httpx.get(srv.url + path).status_code == 401
        r = httpx.post(srv.url + "/api/answer", json={"pair_id": 1, "annotator": "a", "choice": "left"})
        assert r.status_code == 401
        assert httpx.get(srv.url + "/api/status", headers={"x-pbrl-token": token + "x"}).status_code == 401
        ok = httpx.get(srv.url + "/api/status", headers={"x-pbrl-token": token})
        assert ok.status_code == 200 and ok.json()["answers"] == 0
    finally:
        srv.kill()


def _person(url: str, answers: list[str], stop: threading.Event, log: list) -> None:
    """A scripted 'person' at the page: answers each pair that appears, in order."""
    with httpx.Client(base_url=url, timeout=30) as c:
        for choice in answers:
            while not stop.is_set():
                cur = c.get("/api/next", params={"annotator": "person"}).json()
                if not cur["done"]:
                    break
                time.sleep(0.2)
            if stop.is_set():
                return
            r = c.post("/api/answer", json={"pair_id": cur["pair_id"], "annotator": "person", "choice": choice})
            log.append(r.status_code)


def test_human_teacher_gets_labels(trajs, tmp_path, caplog):
    srv = Server(["--task", TASK, "--db", tmp_path / "h.sqlite"], tmp_path, "human")
    stop = threading.Event()
    try:
        srv.wait()
        teacher = make_teacher("human", url=srv.url, timeout=60, poll=0.1, log_every=0.0)
        assert isinstance(teacher, HumanTeacher)
        a, b = sample_segment_pairs(trajs, 3, 5, 0)
        log: list = []
        person = threading.Thread(target=_person, args=(srv.url, ["right", "skip", "equal"], stop, log), daemon=True)
        person.start()
        with caplog.at_level("INFO", logger="pbrl.label"):
            labels = teacher.label(a, b)
        person.join(30)
        assert log == [200, 200, 200]
        assert labels[0] == 1.0 and np.isnan(labels[1]) and labels[2] == 0.5
        assert "waiting for a person" in caplog.text
        with pytest.raises(TimeoutError, match="only 0 of 2"):
            HumanTeacher(srv.url, timeout=0.5, poll=0.1).label(a[:2], b[:2])
        no_states = type(a)(obs=a.obs, act=a.act, reward=a.reward)
        with pytest.raises(ValueError, match="no simulator states"):
            teacher.label(no_states, no_states)
    finally:
        stop.set()
        srv.kill()
    with pytest.raises(ConnectionError, match="pbrl label serve"):
        HumanTeacher(f"http://127.0.0.1:{free_port()}", timeout=1).label(a, b)
    with pytest.raises(ValueError, match="http"):
        HumanTeacher("127.0.0.1:8000")


@pytest.mark.slow
def test_pebble_trains_from_a_person(tmp_path):
    """`PEBBLE(..., teacher=HumanTeacher(url))`: the queries of each feedback session go to the page."""
    pebble = pytest.importorskip("pbrl.agents.pebble")
    import torch

    torch.set_num_threads(1)
    srv = Server(["--task", TASK, "--db", tmp_path / "p.sqlite"], tmp_path, "pebble")
    stop = threading.Event()
    log: list = []
    try:
        srv.wait()
        person = threading.Thread(target=_person, args=(srv.url, ["right"] * 4, stop, log), daemon=True)
        person.start()
        env = make_env(TASK, seed=0, max_episode_steps=40)  # short episodes: sessions need whole ones
        agent = pebble.PEBBLE(
            env, HumanTeacher(srv.url, task_id=TASK, timeout=120, poll=0.1), total_feedback=4,
            feedback_per_session=2, feedback_every=50, segment_length=10, seed=0, unsup_steps=0,
            learner_kwargs={"learning_starts": 50, "batch_size": 32},
            reward_model_kwargs={"hidden": (32, 32)}, fit_kwargs={"epochs": 2},
        )
        agent.learn(200)
        person.join(30)
    finally:
        stop.set()
        srv.kill()
    assert log == [200] * 4
    assert len(agent.preferences) == 4 and np.all(agent.preferences.label == 1.0)
    rows = sqlite3.connect(tmp_path / "p.sqlite").execute(
        "SELECT p.source, a.label FROM answers a JOIN pairs p ON p.id = a.pair_id").fetchall()
    assert len(rows) == 4 and all(src.startswith("run-") and lab == 1.0 for src, lab in rows)
