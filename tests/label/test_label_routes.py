"""The labelling server's routes read their state only through the ``get_state`` dependency, so a test (or
another app) can serve them over a state of its own through ``app.dependency_overrides``."""

import os

import pytest

pytest.importorskip("fastapi")
os.environ.setdefault("MUJOCO_GL", "osmesa")

from fastapi import FastAPI  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402

from pbrl.envs import make_env, rollout  # noqa: E402
from pbrl.label.queue import make_queue  # noqa: E402
from pbrl.label.routes import ServerState, get_state, router  # noqa: E402
from pbrl.label.server import STATIC_DIR, create_app  # noqa: E402
from pbrl.label.store import LabelStore  # noqa: E402

TASK = "mujoco/HalfCheetah-v5"
BASE = "http://127.0.0.1"


@pytest.fixture(scope="module")
def queue(tmp_path_factory):
    trajs = rollout(make_env(TASK, seed=0), n_steps=60, seed=0)
    q = make_queue(trajs, 4, 6, task_id=TASK, seed=1)
    return q, q.save(tmp_path_factory.mktemp("q") / "queue.h5")


def _store(path, queue):
    q, file = queue
    store = LabelStore(path)
    store.import_queue(q, file)
    return store


def test_routes_on_a_bare_app_with_an_injected_state(queue, tmp_path):
    store = _store(tmp_path / "labels.sqlite", queue)
    state = ServerState(store, (tmp_path / "clips").resolve(), STATIC_DIR, instruction="Which one runs faster?")
    app = FastAPI()
    app.include_router(router)
    app.dependency_overrides[get_state] = lambda: state
    with TestClient(app, base_url=BASE) as c:
        s = c.get("/api/status").json()
        assert s["pairs"] == 4 and s["complete"] == 0 and s["instruction"] == "Which one runs faster?"
        nxt = c.get("/api/next", params={"annotator": "ann"}).json()
        assert not nxt["done"] and nxt["clip_a"].startswith("/clips/")
        r = c.post("/api/answer", json={"pair_id": nxt["pair_id"], "annotator": "ann", "choice": "right"})
        assert r.status_code == 200, r.text
        assert c.get("/clips/" + nxt["clip_a"].split("/")[-1]).status_code == 404  # not rendered, no worker
        assert "clip-a" in c.get("/").text
    assert store.progress()["labels"] == 1
    assert set(state.clip_index.values()) >= {(TASK, store.pair(nxt["pair_id"])["seg_a"])}


def test_create_app_routes_follow_an_overridden_state(queue, tmp_path):
    served = _store(tmp_path / "served.sqlite", queue)
    other = LabelStore(tmp_path / "other.sqlite")  # no queue: an empty store
    asgi = create_app(served, tmp_path / "clips", render=False)
    fastapi_app = asgi.app
    assert fastapi_app.state.label_server.store is served
    with TestClient(asgi, base_url=BASE) as c:
        assert c.get("/api/status").json()["pairs"] == 4
        fastapi_app.dependency_overrides[get_state] = lambda: ServerState(
            other, (tmp_path / "clips").resolve(), STATIC_DIR, default_task=TASK
        )
        s = c.get("/api/status").json()
        assert s["pairs"] == 0 and s["task_id"] == TASK
        assert c.get("/api/next", params={"annotator": "ann"}).json()["done"]
        fastapi_app.dependency_overrides.clear()
        assert c.get("/api/status").json()["pairs"] == 4
    assert served.progress()["answers"] == other.progress()["answers"] == 0
