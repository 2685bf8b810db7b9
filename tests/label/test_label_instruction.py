"""The labelling page says what "better" means (the queue's instruction, a default per task family), and
what a person must judge is visible in the clips (the Reacher target)."""

import os

import numpy as np
import pytest

pytest.importorskip("fastapi")
os.environ.setdefault("MUJOCO_GL", "osmesa")

from fastapi.testclient import TestClient  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from pbrl.app.cli import app  # noqa: E402
from pbrl.envs import make_env, rollout  # noqa: E402
from pbrl.label.queue import LabelQueue, default_instruction, make_queue  # noqa: E402
from pbrl.label.render import ClipRenderer  # noqa: E402
from pbrl.label.server import STATIC_DIR, create_app  # noqa: E402
from pbrl.label.store import LabelStore  # noqa: E402

TASK = "mujoco/Reacher-v5"


@pytest.fixture(scope="module")
def trajs():
    return rollout(make_env(TASK, seed=0), n_steps=120, seed=0)


def test_default_instructions_per_task_family():
    assert "target" in default_instruction("mujoco/Reacher-v5")
    assert "forward" in default_instruction("mujoco/HalfCheetah-v5") == default_instruction("mujoco/Hopper-v5")
    assert "'button press'" in default_instruction("metaworld/button-press-v3")
    assert "upright" in default_instruction("mujoco/InvertedPendulum-v5")


def test_queue_carries_the_instruction_to_the_page(trajs, tmp_path):
    q = make_queue(trajs, 4, 10, task_id=TASK, seed=0, instruction="Which arm is calmer?")
    path = q.save(tmp_path / "q.h5")
    back = LabelQueue.load(path)
    assert back.instruction == "Which arm is calmer?"
    assert LabelQueue.load(make_queue(trajs, 4, 10, task_id=TASK, seed=0).save(tmp_path / "d.h5")).instruction \
        == default_instruction(TASK)
    store = LabelStore(tmp_path / "labels.sqlite")
    store.import_queue(back, path)
    with TestClient(create_app(store, tmp_path / "clips", render=False), base_url="http://127.0.0.1") as c:
        assert c.get("/api/status").json()["instruction"] == "Which arm is calmer?"
        assert c.get("/api/next", params={"annotator": "ann"}).json()["instruction"] == "Which arm is calmer?"
    assert 'id="instruction"' in (STATIC_DIR / "index.html").read_text()
    assert "p.instruction" in (STATIC_DIR / "app.js").read_text()


def test_label_queue_instruction_flag(tmp_path):
    from pbrl.envs.datasets import collect, save_d4rl

    data = save_d4rl(collect(TASK, "random", n_steps=150, seed=0), tmp_path / "r.hdf5")
    out = tmp_path / "q.h5"
    res = CliRunner().invoke(app, ["label", "queue", str(data), "-o", str(out), "--pairs", "3", "--segment-length",
                                   "10", "--instruction", "Which fingertip ends nearer the red ball?"])
    assert res.exit_code == 0, res.output
    assert LabelQueue.load(out).instruction == "Which fingertip ends nearer the red ball?"
    assert "instruction: Which fingertip" in res.output
    res = CliRunner().invoke(app, ["label", "queue", str(data), "-o", str(out), "--pairs", "3"])
    assert res.exit_code == 2 and "already exists" in res.output  # a queue is not replaced by a typo


def test_reacher_target_is_visible_in_clips(trajs):
    t = trajs[0]
    frames = ClipRenderer(TASK, 320, 240, shadows=False).render_frames(t.qpos[:2], t.qvel[:2])
    img = frames[0].astype(int)
    r, g, b = img[..., 0], img[..., 1], img[..., 2]
    red = (r - g > 60) & (r - b > 60)
    green = (g - r > 60) & (g - b > 30)
    assert red.sum() > 100, f"target: only {red.sum()} red pixels"  # the default scene shows about 10
    assert green.sum() > 40, f"fingertip: only {green.sum()} green pixels"
    # only the renderer's env changes: a training env keeps the task's own model
    m = make_env(TASK).unwrapped.model
    assert np.isclose(m.geom_size[-1][0], 0.009)
