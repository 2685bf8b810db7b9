"""MP4 videos of a policy on its task (``pbrl eval --video``), rendered offscreen (MuJoCo; ``MUJOCO_GL=osmesa``
without a GPU) and written atomically."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from pbrl.envs import is_metaworld, make_env
from pbrl.io import atomic_write

__all__ = ["render_video"]


def render_video(policy: Any, cfg: Any, path: str | os.PathLike, episodes: int = 1, seed: int = 0,
                 size: tuple[int, int] = (320, 240)) -> Path:
    """Render ``episodes`` deterministic episodes of ``policy`` on ``cfg.task`` to an MP4 file (atomic)."""
    import imageio.v2 as imageio

    os.environ.setdefault("MUJOCO_GL", "egl" if os.path.exists("/dev/nvidia0") else "osmesa")
    kw = {} if is_metaworld(cfg.task) else {"width": int(size[0]), "height": int(size[1])}
    env = make_env(cfg.task, seed=seed, render_mode="rgb_array", **kw)
    limit = getattr(cfg, "max_episode_steps", None)
    fps = int(env.metadata.get("render_fps", 30) or 30)
    path = Path(path)
    with atomic_write(path, suffix=".mp4") as tmp:
        writer = imageio.get_writer(str(tmp), format="FFMPEG", fps=fps, codec="libx264", macro_block_size=1)
        try:
            for ep in range(episodes):
                obs, _ = env.reset(seed=seed + ep)
                writer.append_data(np.asarray(env.render()))
                t, done, state = 0, False, None
                while not done:
                    act, state = policy.predict(obs, state=state, episode_start=np.array([t == 0]), deterministic=True)
                    obs, _, term, trunc, _ = env.step(act)
                    writer.append_data(np.asarray(env.render()))
                    t += 1
                    done = term or trunc or (limit is not None and t >= limit)
        finally:
            writer.close()
    env.close()
    return path
