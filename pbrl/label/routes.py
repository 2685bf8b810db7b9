"""The labelling server's routes: a FastAPI ``APIRouter`` whose handlers get the server's state from a dependency.

Every handler takes the :class:`ServerState` through ``Depends(get_state)``, which reads
``request.app.state.label_server`` (set by :func:`pbrl.label.server.create_app`). A test or another app can
serve the same routes over its own state with ``app.dependency_overrides[get_state] = lambda: state``.
The endpoints and their inputs are listed in :mod:`pbrl.label.server`; every input is validated here and a bad
one gets a 4xx with nothing written.

This module needs the ``label`` extra (fastapi, pydantic) at import time; :func:`~pbrl.label.server.create_app`
imports it only after checking the extra, so a core install never does.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import FileResponse, HTMLResponse
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StringConstraints

from pbrl.envs.registry import check_task, make_env
from pbrl.label.queue import default_instruction
from pbrl.label.render import CLIP_NAME_RE, RenderWorker, clip_name, task_fps
from pbrl.label.store import ConflictError, LabelStore

__all__ = ["ServerState", "get_state", "router"]

ANNOTATOR_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.@ -]{0,63}$"
SESSION_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
MAX_QUERY_PAIRS = 1000
MAX_SEGMENT_STEPS = 1000
#: the shown pair's clips go ahead of everything else in the render queue, a training run's queries next
SHOWN_PRIORITY = -1e12
QUERIES_PRIORITY = -1e9

_DIMS: dict[str, tuple[int, int]] = {}
_DIMS_LOCK = threading.Lock()


def _task_dims(task_id: str) -> tuple[int, int]:
    """``(nq, nv)`` of a task's MuJoCo model (cached)."""
    with _DIMS_LOCK:
        if task_id not in _DIMS:
            env = make_env(task_id)
            _DIMS[task_id] = (int(env.unwrapped.model.nq), int(env.unwrapped.model.nv))
            env.close()
        return _DIMS[task_id]


# ---------------------------------------------------------------------------- the state
@dataclass
class ServerState:
    """What the routes work on: the store, the clip settings and the render worker.

    Args:
        store: the SQLite label store.
        cache_dir: resolved folder of the rendered clips; only its ``<sha1>.mp4`` files are served.
        static_dir: folder of the page (``index.html``, its script and style sheet).
        width, height, fps, shadows: clip settings (see :class:`~pbrl.label.render.ClipRenderer`);
            ``fps=None``: the task's own frame rate.
        instruction: what "better" means, the same for every pair (``None``: per task,
            :func:`~pbrl.label.queue.default_instruction`).
        default_task: task id for queries posted without one (and the status when the store has none).
        token_cookie: name of the cookie the page gets when opened as ``/?token=...`` (``None``: the server
            requires no token, and sets no cookie).
        worker: the background :class:`~pbrl.label.render.RenderWorker` (``None``: serve cached clips only).
    """

    store: LabelStore
    cache_dir: Path
    static_dir: Path
    width: int = 320
    height: int = 240
    fps: float | None = None
    shadows: bool = False
    instruction: str | None = None
    default_task: str | None = None
    token_cookie: str | None = None
    worker: RenderWorker | None = None
    #: clip file name -> (task id, segment hash), for rendering a clip on request
    clip_index: dict[str, tuple[str, str]] = field(default_factory=dict)

    def instruction_for(self, task_id: str | None) -> str:
        """The question above the clips for a pair of ``task_id``."""
        if self.instruction:
            return str(self.instruction)
        return default_instruction(task_id) if task_id else "Which clip is better?"

    def clip_of(self, task_id: str, seg_hash: str) -> str:
        """The clip file name of a segment (remembered, so that ``/clips/{name}`` can render it)."""
        fps = self.fps if self.fps is not None else task_fps(task_id)
        name = clip_name(seg_hash, self.width, self.height, fps, self.shadows)
        self.clip_index[name] = (task_id, seg_hash)
        return name

    def states_for(self, seg_hash: str):
        """A loader of a segment's ``(qpos [H, nq], qvel [H, nv])`` for the render worker."""

        def load():
            found = self.store.segment_states(seg_hash)
            if found is None:
                raise KeyError(f"no segment {seg_hash}")
            return found[1], found[2]

        return load

    def queue_render(self, pairs: list[dict], base: float) -> None:
        """Submit the clips of ``pairs`` to the render worker, in order, at priorities ``base + i``."""
        for i, p in enumerate(pairs):
            for side in ("seg_a", "seg_b"):
                if not p[side]:  # a rating query has one clip
                    continue
                name = self.clip_of(p["task_id"], p[side])
                if self.worker is not None:
                    self.worker.submit(name, p["task_id"], self.states_for(p[side]), priority=base + i)

    def payload(self, pid: int | None, annotator: str) -> dict:
        """What the page shows next: pair ``pid`` with its clip URLs, or ``{"done": true}`` when ``None``."""
        store = self.store
        prog = store.progress(annotator)
        if pid is None:
            return {"done": True, "pair_id": None, "mode": store.mode, "n_classes": store.n_classes, "progress": prog}
        p = store.pair(pid)
        clips = {}
        for side in ("a", "b"):
            seg = p[f"seg_{side}"]
            if not seg:  # rating mode: one clip
                clips[side] = None
                continue
            name = self.clip_of(p["task_id"], seg)
            if self.worker is not None:
                self.worker.submit(name, p["task_id"], self.states_for(seg), priority=SHOWN_PRIORITY)
            clips[side] = f"/clips/{name}"
        return {
            "done": False,
            "pair_id": pid,
            "task_id": p["task_id"],
            "instruction": self.instruction_for(p["task_id"]),
            "source": p["source"],
            "mode": store.mode,
            "n_classes": store.n_classes,
            "clip_a": clips["a"],
            "clip_b": clips["b"],
            "progress": prog,
        }


def get_state(request: Request) -> ServerState:
    """The dependency every route takes: the :class:`ServerState` of the app serving the request."""
    return request.app.state.label_server


State = Annotated[ServerState, Depends(get_state)]
Annotator = Annotated[str, StringConstraints(pattern=ANNOTATOR_PATTERN)]
PairId = Annotated[StrictInt, Field(ge=0, le=2**62)]


# ---------------------------------------------------------------------------- request bodies
class AnswerIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    pair_id: PairId
    annotator: Annotator
    choice: Literal["left", "right", "equal", "skip", "rate"]
    rating: Annotated[StrictInt, Field(ge=0, le=8)] | None = None


class UndoIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    annotator: Annotator


class QueryPair(BaseModel):
    model_config = ConfigDict(extra="forbid")
    qpos_a: list[list[float]] = Field(min_length=1, max_length=MAX_SEGMENT_STEPS)
    qvel_a: list[list[float]] = Field(min_length=1, max_length=MAX_SEGMENT_STEPS)
    qpos_b: list[list[float]] = Field(min_length=1, max_length=MAX_SEGMENT_STEPS)
    qvel_b: list[list[float]] = Field(min_length=1, max_length=MAX_SEGMENT_STEPS)


class QueriesIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    session: Annotated[str, StringConstraints(pattern=SESSION_PATTERN)]
    task_id: str | None = None
    pairs: list[QueryPair] = Field(min_length=1, max_length=MAX_QUERY_PAIRS)


class ResultsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    pair_ids: list[PairId] = Field(min_length=1, max_length=10_000)


# ---------------------------------------------------------------------------- the routes
#: the labelling page's routes; :func:`pbrl.label.server.create_app` includes them
router = APIRouter()


@router.get("/", response_class=HTMLResponse)
def index(request: Request, state: State):
    """The labelling page; opened as ``/?token=...`` on a server with a token, it sets the token cookie."""
    html = (state.static_dir / "index.html").read_text()
    resp = HTMLResponse(html, headers={"Cache-Control": "no-store"})
    tok = request.query_params.get("token")
    if state.token_cookie is not None and tok is not None:
        resp.set_cookie(state.token_cookie, tok, httponly=True, samesite="strict")
    return resp


@router.get("/api/status")
def status(state: State, annotator: Annotated[str | None, Query(pattern=ANNOTATOR_PATTERN)] = None):
    """Queue size, answered pairs, labels, skips and the settings (``mine`` with ``?annotator=``)."""
    store, w = state.store, state.worker
    task = store.meta().get("task_id", state.default_task)
    return {
        **store.progress(annotator),
        "annotators_per_pair": store.k,
        "mode": store.mode,
        "n_classes": store.n_classes,
        "task_id": task,
        "instruction": state.instruction_for(task),
        "render_pending": w.pending() if w is not None else None,
        "render_failed": w.failed if w is not None else None,
    }


@router.get("/api/next")
def next_pair(state: State, annotator: Annotated[str, Query(pattern=ANNOTATOR_PATTERN)]):
    """The pair to show ``annotator`` (the same one until it is answered), or ``{"done": true}``."""
    return state.payload(state.store.next_pair(annotator), annotator)


@router.post("/api/answer")
def answer(body: AnswerIn, state: State):
    """Commit one answer, then return the next pair."""
    try:
        aid, nxt = state.store.answer(body.pair_id, body.annotator, body.choice, body.rating)
    except KeyError:
        raise HTTPException(404, f"no pair {body.pair_id}") from None
    except ConflictError as e:
        raise HTTPException(409, str(e)) from None
    except ValueError as e:  # a choice or rating this store does not take
        raise HTTPException(422, str(e)) from None
    saved = {"answer_id": aid, "pair_id": body.pair_id, "choice": body.choice}
    if body.rating is not None:
        saved["rating"] = body.rating
    return {"saved": saved, "next": state.payload(nxt, body.annotator)}


@router.post("/api/undo")
def undo(body: UndoIn, state: State):
    """Remove the annotator's last answer and return that pair again."""
    try:
        pid = state.store.undo(body.annotator)
    except ConflictError as e:
        raise HTTPException(409, str(e)) from None
    return {"undone": pid, "next": state.payload(pid, body.annotator)}


@router.get("/clips/{name}")
def clip(name: str, state: State):
    """An MP4 of the cache folder, rendered first if this server renders and knows the clip."""
    if not CLIP_NAME_RE.match(name):
        raise HTTPException(404, "no such clip")
    path = (state.cache_dir / name).resolve()
    if path.parent != state.cache_dir:
        raise HTTPException(404, "no such clip")
    if not path.exists():
        w, known = state.worker, state.clip_index.get(name)
        if w is None or known is None:
            raise HTTPException(404, "no such clip (not rendered, and this server does not render)")
        try:
            w.ensure(name, known[0], state.states_for(known[1]))
        except Exception as e:  # noqa: BLE001 - reported to the page
            raise HTTPException(500, f"rendering the clip failed: {e}") from None
    return FileResponse(path, media_type="video/mp4", headers={"Cache-Control": "private, max-age=86400, immutable"})


def _query_states(pairs: list[QueryPair], task: str) -> list[tuple[np.ndarray, ...]]:
    """``(qpos_a, qvel_a, qpos_b, qvel_b)`` float32 arrays of each posted pair, checked against the task's
    ``(nq, nv)``; a bad pair raises a 422 naming it."""
    nq, nv = _task_dims(task)
    states = []
    for i, p in enumerate(pairs):
        arrs = []
        for key, dim in (("qpos_a", nq), ("qvel_a", nv), ("qpos_b", nq), ("qvel_b", nv)):
            rows = getattr(p, key)
            if any(len(r) != dim for r in rows):
                raise HTTPException(422, f"pairs[{i}].{key} must have {dim} columns for {task}")
            arr = np.asarray(rows, dtype=np.float32)
            if not np.all(np.isfinite(arr)):
                raise HTTPException(422, f"pairs[{i}].{key} contains NaN or inf")
            arrs.append(arr)
        if not (len(arrs[0]) == len(arrs[1]) == len(arrs[2]) == len(arrs[3])):
            raise HTTPException(422, f"pairs[{i}]: qpos/qvel of both segments must have the same number of steps")
        states.append(tuple(arrs))
    return states


@router.post("/api/queries")
def queries(body: QueriesIn, state: State):
    """A training run's queries (HumanTeacher): stored ahead of the offline queue, their clips rendered next."""
    store = state.store
    task = body.task_id or store.meta().get("task_id") or state.default_task
    if not task:
        raise HTTPException(422, "task_id is required: this server has no queue and no --task")
    try:
        check_task(task)
    except ValueError as e:
        raise HTTPException(422, str(e)) from None
    if body.session == "queue":
        raise HTTPException(422, "session 'queue' is reserved for the queue file's pairs")
    states = _query_states(body.pairs, task)
    try:
        ids = store.add_pairs(body.session, task, states, priority=1)
    except ValueError as e:  # a rating store takes no pairs
        raise HTTPException(409, str(e)) from None
    state.queue_render([store.pair(i) for i in ids], QUERIES_PRIORITY)
    return {"pair_ids": ids}


@router.post("/api/results")
def results(body: ResultsIn, state: State):
    """The answers so far for ``pair_ids``."""
    try:
        res = state.store.results(list(body.pair_ids))
    except KeyError as e:
        raise HTTPException(404, str(e.args[0])) from None
    return {"results": {str(k): v for k, v in res.items()}, "annotators_per_pair": state.store.k}

