"""Clips: replay a segment's simulator states offscreen and write a browser-playable H.264 MP4.

* :class:`ClipRenderer` sets ``qpos`` / ``qvel`` of each step into the task's MuJoCo ``data``, calls
  ``mujoco.mj_forward`` and renders offscreen (``MUJOCO_GL=osmesa`` without a GPU, ``egl`` with one).
* :func:`write_mp4` encodes frames with libx264, ``yuv420p`` and ``+faststart`` (imageio-ffmpeg), so that
  Chrome, Firefox and Safari play the file; it is written atomically.
* :class:`RenderWorker` owns the renderer in one background thread (OpenGL contexts belong to a thread)
  and renders clips into a cache folder ahead of the annotator, highest priority first; a clip that is
  requested before its turn jumps the queue.

Clip files are named by a content hash of the task, the render settings and the states
(:func:`clip_name`), so the same segment is rendered once whichever queue or session it comes from.
"""

from __future__ import annotations

import hashlib
import heapq
import itertools
import logging
import os
import re
import tempfile
import threading
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path

import numpy as np

from pbrl.envs.registry import check_task, is_metaworld, make_env
from pbrl.io import default_file_mode
from pbrl.validation import is_int

__all__ = ["ClipRenderer", "RenderWorker", "write_mp4", "clip_name", "states_hash", "task_fps", "default_shadows", "CLIP_NAME_RE"]

log = logging.getLogger("pbrl.label")

#: the only file names the server will ever serve from the cache folder
CLIP_NAME_RE = re.compile(r"^[0-9a-f]{40}\.mp4$")


def states_hash(task_id: str, qpos: np.ndarray, qvel: np.ndarray) -> str:
    """sha1 (hex, 40 chars) of a segment's task and states ``qpos [H, nq]``, ``qvel [H, nv]`` (as float32)."""
    h = hashlib.sha1()
    h.update(task_id.encode())
    for v in (qpos, qvel):
        v = np.ascontiguousarray(v, dtype=np.float32)
        h.update(str(v.shape).encode())
        h.update(v.tobytes())
    return h.hexdigest()


RENDER_STYLE = 2
"""Version of the scene setup (:func:`emphasize_task_objects`); part of every clip's cache name, so clips
rendered with an older setup are rendered again."""


def clip_name(seg_hash: str, width: int, height: int, fps: float, shadows: bool = True) -> str:
    """The cache file name of a segment (given by :func:`states_hash`) rendered with these settings."""
    key = f"{seg_hash}|{width}x{height}|{fps:g}|{int(shadows)}|style{RENDER_STYLE}"
    return hashlib.sha1(key.encode()).hexdigest() + ".mp4"


def emphasize_task_objects(task_id: str, env) -> None:
    """Make what a person must judge visible in a clip (sizes and colours of marker geoms, the camera), in
    the renderer's own env, which only ever shows given states (nothing is simulated with it).

    Reacher: its target is a 9 mm sphere, a few dark pixels from the default camera; it becomes a bright
    red ball of 25 mm, the fingertip a green one of 20 mm, and the camera looks straight down on the arena.
    """
    import mujoco

    if not task_id.startswith("mujoco/Reacher"):
        return
    m = env.unwrapped.model

    def geom(name: str) -> int:
        return mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_GEOM, name)

    for name, size, rgba in (("target", 0.025, (1.0, 0.15, 0.15, 1.0)), ("fingertip", 0.02, (0.2, 1.0, 0.3, 1.0))):
        g = geom(name)
        if g >= 0:  # the renderer's own env: states are set, never simulated, so sizes change no result
            m.geom_size[g][0] = size
            m.geom_rgba[g] = rgba
    cam = env.unwrapped.mujoco_renderer._get_viewer("rgb_array").cam
    cam.distance, cam.elevation, cam.azimuth = 0.95, -90.0, 90.0
    cam.lookat[:] = (0.0, 0.0, 0.0)


def default_shadows() -> bool:
    """Shadows and reflections on a GPU (``MUJOCO_GL=egl``/``glfw``), off with software OSMesa, where they
    cost 4-7x the rendering time (``scripts/bench_label_render.py``: HalfCheetah at 320x240 renders 2.6 frames/s
    with them and 19.3 without on a busy 2-core machine)."""
    gl = os.environ.get("MUJOCO_GL") or ("egl" if os.path.exists("/dev/nvidia0") else "osmesa")
    return gl != "osmesa"


def write_mp4(frames: np.ndarray, path: str | os.PathLike, fps: float) -> Path:
    """Encode ``frames [T, H, W, 3]`` uint8 as H.264 (yuv420p, +faststart) at ``path``, atomically.

    ``H`` and ``W`` must be even (yuv420p halves the chroma planes).
    """
    import imageio_ffmpeg

    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or len(frames) == 0:
        raise ValueError(f"frames must be uint8 [T>0, H, W, 3], got {frames.dtype} {frames.shape}")
    h, w = frames.shape[1:3]
    if h % 2 or w % 2:
        raise ValueError(f"frame size must be even for H.264 yuv420p, got {w}x{h}")
    if not fps > 0:
        raise ValueError(f"fps must be positive, got {fps}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".mp4", dir=path.parent)
    os.close(fd)
    try:
        writer = imageio_ffmpeg.write_frames(
            tmp,
            (w, h),
            fps=float(fps),
            codec="libx264",
            pix_fmt_in="rgb24",
            pix_fmt_out="yuv420p",
            macro_block_size=2,
            output_params=["-movflags", "+faststart", "-preset", "veryfast", "-crf", "23"],
            ffmpeg_log_level="error",
        )
        writer.send(None)
        for f in frames:
            writer.send(np.ascontiguousarray(f))
        writer.close()
        os.chmod(tmp, default_file_mode())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


_FPS_CACHE: dict[str, float] = {}


def task_fps(task_id: str) -> float:
    """Default playback rate of a task's clips: real time ``1 / dt``, capped at 30 frames per second."""
    if task_id not in _FPS_CACHE:
        env = make_env(task_id)
        dt = float(getattr(env.unwrapped, "dt", 0.05))
        env.close()
        _FPS_CACHE[task_id] = float(min(30.0, round(1.0 / dt))) if dt > 0 else 20.0
    return _FPS_CACHE[task_id]


class ClipRenderer:
    """Renders segments of one task offscreen.

    Args:
        task_id: registry task id (``mujoco/...`` or ``metaworld/...``).
        width, height: frame size in pixels (even; default 320x240).
        fps: playback rate of the clip; default the task's real time ``1 / dt`` capped at 30, so that
            fast Meta-World steps are slowed down to something a person can judge.
        shadows: render shadows and reflections; default :func:`default_shadows` (off under OSMesa).

    The environment (and its OpenGL context) is made on the first call of :meth:`render_frames`, in the
    calling thread; use one renderer from one thread only (:class:`RenderWorker` does this).
    """

    def __init__(
        self, task_id: str, width: int = 320, height: int = 240, fps: float | None = None, shadows: bool | None = None
    ):
        check_task(task_id)
        for name, v in (("width", width), ("height", height)):
            if not is_int(v) or v < 16 or v > 1920 or v % 2:
                raise ValueError(f"{name} must be an even number of pixels in [16, 1920], got {v!r}")
        if fps is not None and not (0 < fps <= 120):
            raise ValueError(f"fps must be in (0, 120], got {fps}")
        self.task_id = task_id
        self.width, self.height = int(width), int(height)
        self._fps = fps
        self.shadows = default_shadows() if shadows is None else bool(shadows)
        self._metaworld = is_metaworld(task_id)
        self._env = None

    def _make(self):
        import mujoco

        if self._metaworld:
            env = make_env(self.task_id, seed=0, render_mode="rgb_array")
            r = env.unwrapped.mujoco_renderer
            r.width, r.height = self.width, self.height
        else:
            env = make_env(self.task_id, seed=0, render_mode="rgb_array", width=self.width, height=self.height)
        env.reset(seed=0)
        emphasize_task_objects(self.task_id, env)
        if not self.shadows:
            viewer = env.unwrapped.mujoco_renderer._get_viewer("rgb_array")
            for flag in (mujoco.mjtRndFlag.mjRND_SHADOW, mujoco.mjtRndFlag.mjRND_REFLECTION):
                viewer.scn.flags[flag] = 0
        self._env = env
        return env

    @property
    def fps(self) -> float:
        """Playback frames per second."""
        if self._fps is not None:
            return float(self._fps)
        return task_fps(self.task_id)

    def clip_name(self, seg_hash: str) -> str:
        """Cache file name of a segment under this renderer's settings."""
        return clip_name(seg_hash, self.width, self.height, self.fps, self.shadows)

    def render_frames(self, qpos: np.ndarray, qvel: np.ndarray) -> np.ndarray:
        """Frames ``[H, height, width, 3]`` uint8 for states ``qpos [H, nq]``, ``qvel [H, nv]``."""
        import mujoco

        env = self._env or self._make()
        u = env.unwrapped
        qpos = np.asarray(qpos, dtype=np.float64)
        qvel = np.asarray(qvel, dtype=np.float64)
        if qpos.ndim != 2 or qvel.ndim != 2 or len(qpos) != len(qvel) or len(qpos) == 0:
            raise ValueError(f"qpos and qvel must be [H, nq] and [H, nv] with the same H > 0, got {qpos.shape}, {qvel.shape}")
        if qpos.shape[1] != u.model.nq or qvel.shape[1] != u.model.nv:
            raise ValueError(
                f"states do not fit {self.task_id}: it has nq={u.model.nq}, nv={u.model.nv}, the segment has "
                f"qpos {qpos.shape[1]}, qvel {qvel.shape[1]}; is the queue's task id right?"
            )
        frames = np.empty((len(qpos), self.height, self.width, 3), dtype=np.uint8)
        for t in range(len(qpos)):
            u.data.qpos[:] = qpos[t]
            u.data.qvel[:] = qvel[t]
            mujoco.mj_forward(u.model, u.data)
            img = env.render()
            if img.shape[:2] != (self.height, self.width):
                raise RuntimeError(f"renderer returned {img.shape[:2]}, expected {(self.height, self.width)}")
            frames[t] = img
        return frames

    def render_clip(self, qpos: np.ndarray, qvel: np.ndarray, path: str | os.PathLike) -> Path:
        """Render a segment and write it to ``path`` as H.264 MP4."""
        return write_mp4(self.render_frames(qpos, qvel), path, self.fps)

    def close(self) -> None:
        if self._env is not None:
            self._env.close()
            self._env = None


class RenderWorker:
    """Renders clips into ``cache_dir`` in one background thread, lowest ``priority`` value first.

    Args:
        make_renderer: ``task_id -> ClipRenderer``, called in the worker thread (one renderer per task).
        cache_dir: folder of the clip files.

    :meth:`submit` queues a clip (a no-op when it is cached or queued already; a lower priority moves it
    forward) and returns a ``Future`` resolving to the file path; :meth:`ensure` submits with top priority
    and waits.
    """

    def __init__(self, make_renderer: Callable[[str], ClipRenderer], cache_dir: str | os.PathLike):
        self.cache_dir = Path(cache_dir)
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        self._make_renderer = make_renderer
        self._renderers: dict[str, ClipRenderer] = {}
        self._heap: list = []
        self._jobs: dict[str, tuple[float, Future, str, Callable]] = {}
        self._seq = itertools.count()
        self._cv = threading.Condition()
        self._stop = False
        self.rendered = 0
        self.failed = 0
        self._thread = threading.Thread(target=self._run, name="pbrl-render", daemon=True)
        self._thread.start()

    def submit(self, name: str, task_id: str, states: Callable[[], tuple[np.ndarray, np.ndarray]], priority: float = 0.0) -> Future:
        """Queue clip ``name`` of task ``task_id``; ``states()`` returns its ``(qpos, qvel)`` when its turn comes."""
        if not CLIP_NAME_RE.match(name):
            raise ValueError(f"bad clip name {name!r}")
        with self._cv:
            job = self._jobs.get(name)
            if job is not None:
                if priority < job[0]:
                    self._jobs[name] = (priority, job[1], task_id, states)
                    heapq.heappush(self._heap, (priority, next(self._seq), name))
                    self._cv.notify()
                return job[1]
            fut: Future = Future()
            if (self.cache_dir / name).exists():
                fut.set_result(self.cache_dir / name)
                return fut
            self._jobs[name] = (priority, fut, task_id, states)
            heapq.heappush(self._heap, (priority, next(self._seq), name))
            self._cv.notify()
            return fut

    def ensure(self, name: str, task_id: str, states: Callable, timeout: float = 120.0) -> Path:
        """The path of clip ``name``, rendering it now (ahead of everything queued) if needed."""
        return self.submit(name, task_id, states, priority=float("-inf")).result(timeout=timeout)

    def pending(self) -> int:
        """Clips queued and not yet rendered."""
        with self._cv:
            return len(self._jobs)

    def _run(self) -> None:
        while True:
            with self._cv:
                while not self._stop and not self._heap:
                    self._cv.wait()
                if self._stop:
                    return
                prio, _, name = heapq.heappop(self._heap)
                job = self._jobs.get(name)
                if job is None or job[0] != prio:
                    continue  # stale heap entry (done already, or re-queued with another priority)
                _, fut, task_id, states = job
            try:
                path = self.cache_dir / name
                if not path.exists():
                    r = self._renderers.get(task_id)
                    if r is None:
                        r = self._renderers[task_id] = self._make_renderer(task_id)
                    qpos, qvel = states()
                    r.render_clip(qpos, qvel, path)
                    self.rendered += 1
                fut.set_result(path)
            except Exception as e:  # noqa: BLE001 - reported through the future and the log
                self.failed += 1
                log.error("rendering clip %s of %s failed: %s", name, task_id, e)
                fut.set_exception(e)
            finally:
                with self._cv:
                    self._jobs.pop(name, None)

    def close(self, timeout: float = 10.0) -> None:
        """Stop the thread (after the clip being rendered) and release the renderers."""
        with self._cv:
            self._stop = True
            self._cv.notify_all()
        self._thread.join(timeout)
        for r in self._renderers.values():
            try:
                r.close()
            except Exception:  # noqa: BLE001 - closing a GL context at exit must not raise
                pass
