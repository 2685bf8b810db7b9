"""The labelling page in headless Chromium (Debian's ``chromium``, driven by Playwright).

Opens the page, waits until both clips actually play (``currentTime > 0``: H.264 decodes), presses Right,
Down, Space and Left (then Backspace and Left again), and finds exactly three labels 1.0, 0.5, 0.0 in
SQLite and in the exported PreferenceDataset. With ``PBRL_UPDATE_SCREENSHOT=1`` the screenshot is also
written to ``docs/label_page.png`` for the README.
"""

import contextlib
import os
import shutil
import socket
import sqlite3
import threading
import time
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not os.path.exists(CHROMIUM),
        reason="headless Chromium is not installed (apt-get install chromium; scripts/setup.sh does it)",
    ),
]
sync_api = pytest.importorskip("playwright.sync_api", reason="the browser test needs the python package playwright")
uvicorn = pytest.importorskip("uvicorn")
os.environ.setdefault("MUJOCO_GL", "osmesa")

from pbrl.envs import make_env, rollout  # noqa: E402
from pbrl.label.export import export_preferences  # noqa: E402
from pbrl.label.queue import LabelQueue, make_queue  # noqa: E402
from pbrl.label.server import create_app  # noqa: E402
from pbrl.label.store import LabelStore  # noqa: E402

TASK = "mujoco/HalfCheetah-v5"
FLAGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--autoplay-policy=no-user-gesture-required",
]
PLAYING = """() => {
  const a = document.getElementById('clip-a'), b = document.getElementById('clip-b');
  return document.body.dataset.state === 'ready' && a.currentTime > 0 && b.currentTime > 0
    && a.videoWidth > 0 && b.videoWidth > 0;
}"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def labelling_page(tmp_path, n_queries: int, annotator: str, size: tuple[int, int], viewport: tuple[int, int],
                   n_classes: int | None = None):
    """A queue of ``n_queries`` clips (pairs, or single clips to rate into ``n_classes``) served by uvicorn on a
    free port and opened in headless Chromium; yields ``(page, queue file, SQLite file)``."""
    trajs = rollout(make_env(TASK, seed=0), n_steps=60, seed=0)
    kw = {"n_classes": n_classes} if n_classes else {}
    queue = make_queue(trajs, n_queries, 10, task_id=TASK, seed=0, **kw).save(tmp_path / "q.h5")
    db = tmp_path / "labels.sqlite"
    store = LabelStore(db, **kw)
    store.import_queue(LabelQueue.load(queue), queue)
    app = create_app(store, tmp_path / "clips", render=True, width=size[0], height=size[1])
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    t0 = time.monotonic()
    while not server.started:
        assert time.monotonic() - t0 < 60 and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.05)
    try:
        with sync_api.sync_playwright() as p:
            ctx = p.chromium.launch_persistent_context(
                str(tmp_path / "profile"), executable_path=CHROMIUM, headless=True, args=FLAGS,
                viewport={"width": viewport[0], "height": viewport[1]},
            )
            try:
                page = ctx.pages[0] if ctx.pages else ctx.new_page()
                page.goto(f"http://127.0.0.1:{port}/?annotator={annotator}")
                yield page, queue, db
            finally:
                ctx.close()
    finally:
        server.should_exit = True
        thread.join(20)


def test_page_in_chromium(tmp_path):
    shown: dict[str, int] = {}
    with labelling_page(tmp_path, 4, "tester", (320, 240), (1280, 720)) as (page, queue, db):
        page.wait_for_function(PLAYING, timeout=90_000)
        shot = tmp_path / "label_page.png"
        page.screenshot(path=str(shot))
        assert shot.stat().st_size > 10_000
        if os.environ.get("PBRL_UPDATE_SCREENSHOT") == "1":
            dest = Path(__file__).resolve().parents[2] / "docs" / "label_page.png"
            dest.parent.mkdir(exist_ok=True)
            shutil.copyfile(shot, dest)
        assert "0 / 4 answered" in page.inner_text("#progress")
        for key in ("ArrowRight", "ArrowDown", "Space", "ArrowLeft"):
            pid = page.evaluate("document.body.dataset.pairId")
            shown[key] = int(pid)
            page.keyboard.press(key)
            if key != "ArrowLeft":
                page.wait_for_function(
                    f"() => document.body.dataset.pairId !== '{pid}' && ({PLAYING})()", timeout=90_000
                )
        page.wait_for_function("document.body.dataset.state === 'done'", timeout=30_000)
        assert "4 / 4 answered" in page.inner_text("#progress")
        page.keyboard.press("Backspace")  # undo the Left: the pair comes back
        page.wait_for_function(f"document.body.dataset.pairId === '{shown['ArrowLeft']}'", timeout=30_000)
        page.wait_for_function(PLAYING, timeout=90_000)
        page.keyboard.press("ArrowLeft")
        page.wait_for_function("document.body.dataset.state === 'done'", timeout=30_000)
    rows = dict(
        sqlite3.connect(db).execute("SELECT pair_id, label FROM answers WHERE label IS NOT NULL").fetchall()
    )
    assert rows == {shown["ArrowRight"]: 1.0, shown["ArrowDown"]: 0.5, shown["ArrowLeft"]: 0.0}
    skips = sqlite3.connect(db).execute("SELECT pair_id FROM answers WHERE label IS NULL").fetchall()
    assert skips == [(shown["Space"],)]
    ds = export_preferences(db, queue, tmp_path / "prefs.h5")
    assert len(ds) == 3 and sorted(ds.label.tolist()) == [0.0, 0.5, 1.0]
    assert set(ds.annotator.tolist()) == {"tester"}


RATING_PLAYING = """() => {
  const a = document.getElementById('clip-a'), b = document.getElementById('clip-b');
  return document.body.dataset.state === 'ready' && document.body.dataset.mode === 'rating'
    && a.currentTime > 0 && a.videoWidth > 0 && getComputedStyle(b.parentElement).display === 'none';
}"""


def test_rating_mode_in_chromium(tmp_path):
    """Rating mode: one clip plays, the keys 4, Space and 1 store the classes 3 and 0 and one skip."""
    from pbrl.label.export import export_ratings

    shown: dict[str, int] = {}
    with labelling_page(tmp_path, 3, "rater", (160, 120), (1000, 700), n_classes=4) as (page, queue, db):
        page.wait_for_function(RATING_PLAYING, timeout=90_000)
        assert page.inner_text("#title") == "How good is this clip?"
        assert page.locator("#ratings button").count() == 4
        for key in ("4", "Space", "1"):
            pid = page.evaluate("document.body.dataset.pairId")
            shown[key] = int(pid)
            page.keyboard.press(key)
            if key != "1":
                page.wait_for_function(
                    f"() => document.body.dataset.pairId !== '{pid}' && ({RATING_PLAYING})()", timeout=90_000
                )
        page.wait_for_function("document.body.dataset.state === 'done'", timeout=30_000)
        assert "3 / 3 answered" in page.inner_text("#progress")
    rows = sqlite3.connect(db).execute("SELECT pair_id, choice, label FROM answers ORDER BY id").fetchall()
    assert rows == [(shown["4"], "rate", 3.0), (shown["Space"], "skip", None), (shown["1"], "rate", 0.0)]
    ds = export_ratings(db, queue)
    assert sorted(ds.rating.tolist()) == [0, 3] and ds.n_classes == 4
