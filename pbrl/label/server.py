"""The labelling server: a FastAPI app over a :class:`~pbrl.label.store.LabelStore`, served by uvicorn.

Endpoints (JSON unless stated; every input is validated and a bad one gets a 4xx with nothing written):

==========================  =====================================================================
``GET /``                   the labelling page (``?annotator=NAME`` pre-fills the name)
``GET /static/{file}``      its script and style sheet
``GET /api/status``         queue size, answered pairs, labels, skips, settings (``?annotator=`` adds ``mine``)
``GET /api/next``           ``?annotator=NAME``: the pair to show (clip URLs, ``mode``) or ``{"done": true}``
``POST /api/answer``        ``{pair_id, annotator, choice}`` with choice ``left|right|equal|skip`` (rating
                            mode: ``rate`` with ``rating`` = the class 0 .. n-1, or ``skip``): committed,
                            then the next pair is returned
``POST /api/undo``          ``{annotator}``: removes their last answer and returns that pair again
``GET /clips/{name}``       an MP4 from the cache folder (names are content hashes; nothing else is served)
``POST /api/queries``       ``{session, task_id, pairs: [{qpos_a, qvel_a, qpos_b, qvel_b}]}``: a training
                            run's queries (HumanTeacher), handed out before the offline queue
``POST /api/results``       ``{pair_ids: [...]}``: answers so far for those pairs
==========================  =====================================================================

Rating mode (a rating queue, RbRL): every query is one clip (``clip_b`` is ``null``, ``mode`` is ``"rating"``,
``n_classes`` is given) and the page rates it with the keys ``1 .. n``.

Safety: :func:`serve` binds ``127.0.0.1`` by default and then accepts only ``Host: 127.0.0.1`` /
``localhost`` (no DNS rebinding). Bound to any other address it requires a token, generated and printed at
start unless given, on every request: header ``X-PBRL-Token`` (the page sends it), or the ``pbrl_token``
cookie the page sets when opened as ``/?token=...`` (video elements cannot send headers). Request bodies are
capped (16 KiB; 32 MiB for ``/api/queries``).
"""


import ipaddress
import json
import logging
import os
import secrets
import threading
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Literal

import numpy as np

from pbrl.envs.registry import check_task, make_env
from pbrl.extras import check_extra, require
from pbrl.label.queue import LabelQueue, default_instruction
from pbrl.label.render import CLIP_NAME_RE, ClipRenderer, RenderWorker, clip_name, default_shadows, task_fps
from pbrl.label.store import ConflictError, LabelStore
from pbrl.validation import is_int

__all__ = ["create_app", "serve", "is_loopback", "TOKEN_HEADER", "STATIC_DIR"]

log = logging.getLogger("pbrl.label")

TOKEN_HEADER = "x-pbrl-token"
TOKEN_COOKIE = "pbrl_token"
STATIC_DIR = Path(__file__).parent / "static"
SMALL_BODY = 16 * 1024
QUERIES_BODY = 32 * 1024 * 1024
ANNOTATOR_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.@ -]{0,63}$"
SESSION_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
MAX_QUERY_PAIRS = 1000
MAX_SEGMENT_STEPS = 1000

_DIMS: dict[str, tuple[int, int]] = {}
_DIMS_LOCK = threading.Lock()


def is_loopback(host: str) -> bool:
    """Whether ``host`` is a loopback address (``127.0.0.0/8``, ``::1``) or ``localhost``."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _task_dims(task_id: str) -> tuple[int, int]:
    """``(nq, nv)`` of a task's MuJoCo model (cached)."""
    with _DIMS_LOCK:
        if task_id not in _DIMS:
            env = make_env(task_id)
            _DIMS[task_id] = (int(env.unwrapped.model.nq), int(env.unwrapped.model.nv))
            env.close()
        return _DIMS[task_id]


# ---------------------------------------------------------------------------- ASGI guards
async def _send_json(send, status: int, detail: str, headers: list | None = None) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
            + (headers or []),
        }
    )
    await send({"type": "http.response.body", "body": body})


class _Guard:
    """ASGI middleware: token check (when a token is set) and request-body size caps, before any route runs."""

    def __init__(self, app, token: str | None, allowed_hosts: set[str] | None):
        self.app = app
        self.token = token
        self.allowed_hosts = allowed_hosts

    def _token_ok(self, scope) -> bool:
        if self.token is None:
            return True
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        cands = [headers.get(TOKEN_HEADER, "")]
        for part in headers.get("cookie", "").split(";"):
            k, _, v = part.strip().partition("=")
            if k == TOKEN_COOKIE:
                cands.append(v)
        from urllib.parse import parse_qs

        qs = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        cands.extend(qs.get("token", []))
        return any(c and secrets.compare_digest(c.encode(), self.token.encode()) for c in cands)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        if self.allowed_hosts is not None:
            host = ""
            for k, v in scope.get("headers", []):
                if k.lower() == b"host":
                    host = v.decode("latin-1").rsplit(":", 1)[0] if not v.startswith(b"[") else v.decode("latin-1")
            if host not in self.allowed_hosts:
                return await _send_json(send, 400, f"unexpected Host header '{host}'; open the page at http://127.0.0.1")
        if not self._token_ok(scope):
            return await _send_json(
                send, 401, f"missing or wrong token: send the header {TOKEN_HEADER} (printed when the server started)"
            )
        limit = QUERIES_BODY if scope.get("path") == "/api/queries" else SMALL_BODY
        for k, v in scope.get("headers", []):
            if k.lower() == b"content-length":
                try:
                    n = int(v)
                except ValueError:
                    return await _send_json(send, 400, "bad Content-Length header")
                if n > limit:
                    return await _send_json(send, 413, f"request body of {n} bytes is over the limit of {limit}")
        if scope.get("method") in ("POST", "PUT", "PATCH"):
            chunks, size = [], 0
            while True:
                msg = await receive()
                if msg["type"] == "http.disconnect":
                    return
                chunks.append(msg.get("body", b""))
                size += len(chunks[-1])
                if size > limit:
                    return await _send_json(send, 413, f"request body is over the limit of {limit} bytes")
                if not msg.get("more_body", False):
                    break
            body = b"".join(chunks)
            sent = False

            async def replay():
                nonlocal sent
                if not sent:
                    sent = True
                    return {"type": "http.request", "body": body, "more_body": False}
                return await receive()

            return await self.app(scope, replay, send)
        return await self.app(scope, receive, send)


# ---------------------------------------------------------------------------- the app
def create_app(
    store: LabelStore,
    cache_dir: str | os.PathLike,
    render: bool = True,
    width: int = 320,
    height: int = 240,
    fps: float | None = None,
    shadows: bool | None = None,
    token: str | None = None,
    loopback_only: bool = True,
    default_task: str | None = None,
    title: str = "pbrl labelling",
    instruction: str | None = None,
):
    """The FastAPI app serving ``store``.

    Args:
        store: the SQLite label store (queue pairs already imported).
        cache_dir: folder of the rendered clips; only its ``<sha1>.mp4`` files are ever served.
        render: start the background render worker (False: serve only clips already in the cache).
        width, height, fps, shadows: clip settings (see :class:`~pbrl.label.render.ClipRenderer`).
        token: when set, required on every request (header, cookie or ``?token=``).
        loopback_only: accept only ``Host: 127.0.0.1`` / ``localhost`` (set when bound to loopback).
        default_task: task id for queries posted without one.
        instruction: what "better" means, shown above the clips (default: the queue's stored instruction,
            else :func:`pbrl.label.queue.default_instruction` of each pair's task).

    Returns:
        An ASGI app (the FastAPI app behind the token / Host / body-size guard, which is at ``.app``).
    """
    check_extra("fastapi", "the labelling server")
    from fastapi import Body, FastAPI, HTTPException, Query, Request
    from fastapi.responses import FileResponse, HTMLResponse
    from fastapi.staticfiles import StaticFiles
    from pydantic import BaseModel, ConfigDict, Field, StrictInt, StringConstraints

    cache_dir = Path(cache_dir).resolve()
    cache_dir.mkdir(parents=True, exist_ok=True)

    try:
        stored = json.loads(store.meta().get("queue_metadata", "{}")).get("instruction")
    except (ValueError, AttributeError):
        stored = None
    fixed_instruction = instruction or stored

    def instruction_for(task_id: str | None) -> str:
        if fixed_instruction:
            return str(fixed_instruction)
        return default_instruction(task_id) if task_id else "Which clip is better?"

    shadows = default_shadows() if shadows is None else bool(shadows)
    Annotator = Annotated[str, StringConstraints(pattern=ANNOTATOR_PATTERN)]
    PairId = Annotated[StrictInt, Field(ge=0, le=2**62)]
    clip_index: dict[str, tuple[str, str]] = {}  # clip file name -> (task_id, segment hash)
    state: dict = {"worker": None}

    def clip_of(task_id: str, seg_hash: str) -> str:
        name = clip_name(seg_hash, width, height, fps if fps is not None else task_fps(task_id), shadows)
        clip_index[name] = (task_id, seg_hash)
        return name

    def _states_for(seg_hash: str):
        def load():
            found = store.segment_states(seg_hash)
            if found is None:
                raise KeyError(f"no segment {seg_hash}")
            return found[1], found[2]

        return load

    def queue_render(pairs: list[dict], base: float) -> None:
        w = state["worker"]
        for i, p in enumerate(pairs):
            for side in ("seg_a", "seg_b"):
                if not p[side]:  # a rating query has one clip
                    continue
                name = clip_of(p["task_id"], p[side])
                if w is not None:
                    w.submit(name, p["task_id"], _states_for(p[side]), priority=base + i)

    @asynccontextmanager
    async def lifespan(app):
        if render:
            state["worker"] = RenderWorker(lambda t: ClipRenderer(t, width, height, fps, shadows), cache_dir)
        queue_render(store.upcoming(), 0.0)
        try:
            yield
        finally:
            if state["worker"] is not None:
                state["worker"].close()

    app = FastAPI(title=title, docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    app.state.store = store
    app.state.cache_dir = cache_dir
    app.state.render_state = state

    def payload(pid: int | None, annotator: str) -> dict:
        prog = store.progress(annotator)
        if pid is None:
            return {"done": True, "pair_id": None, "mode": store.mode, "n_classes": store.n_classes, "progress": prog}
        p = store.pair(pid)
        w = state["worker"]
        clips = {}
        for side in ("a", "b"):
            seg = p[f"seg_{side}"]
            if not seg:  # rating mode: one clip
                clips[side] = None
                continue
            name = clip_of(p["task_id"], seg)
            if w is not None:  # the shown pair goes to the front of the render queue
                w.submit(name, p["task_id"], _states_for(seg), priority=-1e12)
            clips[side] = f"/clips/{name}"
        return {
            "done": False,
            "pair_id": pid,
            "task_id": p["task_id"],
            "instruction": instruction_for(p["task_id"]),
            "source": p["source"],
            "mode": store.mode,
            "n_classes": store.n_classes,
            "clip_a": clips["a"],
            "clip_b": clips["b"],
            "progress": prog,
        }

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

    @app.get("/", response_class=HTMLResponse)
    def index(request: Request):
        html = (STATIC_DIR / "index.html").read_text()
        resp = HTMLResponse(html, headers={"Cache-Control": "no-store"})
        tok = request.query_params.get("token")
        if token is not None and tok is not None:
            resp.set_cookie(TOKEN_COOKIE, tok, httponly=True, samesite="strict")
        return resp

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.get("/api/status")
    def status(annotator: Annotated[str | None, Query(pattern=ANNOTATOR_PATTERN)] = None):
        w = state["worker"]
        return {
            **store.progress(annotator),
            "annotators_per_pair": store.k,
            "mode": store.mode,
            "n_classes": store.n_classes,
            "task_id": store.meta().get("task_id", default_task),
            "instruction": instruction_for(store.meta().get("task_id", default_task)),
            "render_pending": w.pending() if w is not None else None,
            "render_failed": w.failed if w is not None else None,
        }

    @app.get("/api/next")
    def next_pair(annotator: Annotated[str, Query(pattern=ANNOTATOR_PATTERN)]):
        return payload(store.next_pair(annotator), annotator)

    @app.post("/api/answer")
    def answer(body: AnswerIn):
        try:
            aid, nxt = store.answer(body.pair_id, body.annotator, body.choice, body.rating)
        except KeyError:
            raise HTTPException(404, f"no pair {body.pair_id}") from None
        except ConflictError as e:
            raise HTTPException(409, str(e)) from None
        except ValueError as e:  # a choice or rating this store does not take
            raise HTTPException(422, str(e)) from None
        saved = {"answer_id": aid, "pair_id": body.pair_id, "choice": body.choice}
        if body.rating is not None:
            saved["rating"] = body.rating
        return {"saved": saved, "next": payload(nxt, body.annotator)}

    @app.post("/api/undo")
    def undo(body: UndoIn):
        try:
            pid = store.undo(body.annotator)
        except ConflictError as e:
            raise HTTPException(409, str(e)) from None
        return {"undone": pid, "next": payload(pid, body.annotator)}

    @app.get("/clips/{name}")
    def clip(name: str):
        if not CLIP_NAME_RE.match(name):
            raise HTTPException(404, "no such clip")
        path = (cache_dir / name).resolve()
        if path.parent != cache_dir:
            raise HTTPException(404, "no such clip")
        if not path.exists():
            w, known = state["worker"], clip_index.get(name)
            if w is None or known is None:
                raise HTTPException(404, "no such clip (not rendered, and this server does not render)")
            try:
                w.ensure(name, known[0], _states_for(known[1]))
            except Exception as e:  # noqa: BLE001 - reported to the page
                raise HTTPException(500, f"rendering the clip failed: {e}") from None
        return FileResponse(path, media_type="video/mp4", headers={"Cache-Control": "private, max-age=86400, immutable"})

    @app.post("/api/queries")
    def queries(body: QueriesIn = Body(...)):
        task = body.task_id or store.meta().get("task_id") or default_task
        if not task:
            raise HTTPException(422, "task_id is required: this server has no queue and no --task")
        try:
            check_task(task)
        except ValueError as e:
            raise HTTPException(422, str(e)) from None
        if body.session == "queue":
            raise HTTPException(422, "session 'queue' is reserved for the queue file's pairs")
        nq, nv = _task_dims(task)
        states = []
        for i, p in enumerate(body.pairs):
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
        try:
            ids = store.add_pairs(body.session, task, states, priority=1)
        except ValueError as e:  # a rating store takes no pairs
            raise HTTPException(409, str(e)) from None
        queue_render([store.pair(i) for i in ids], -1e9)
        return {"pair_ids": ids}

    @app.post("/api/results")
    def results(body: ResultsIn):
        try:
            res = store.results(list(body.pair_ids))
        except KeyError as e:
            raise HTTPException(404, str(e.args[0])) from None
        return {"results": {str(k): v for k, v in res.items()}, "annotators_per_pair": store.k}

    return _Guard(app, token, {"127.0.0.1", "localhost"} if loopback_only else None)


def serve(
    queue: str | os.PathLike | None = None,
    db: str | os.PathLike | None = None,
    host: str = "127.0.0.1",
    port: int = 8000,
    cache_dir: str | os.PathLike | None = None,
    annotators_per_pair: int = 1,
    token: str | None = None,
    task_id: str | None = None,
    width: int = 320,
    height: int = 240,
    fps: float | None = None,
    render: bool = True,
    shadows: bool | None = None,
    echo=print,
) -> None:
    """Start the labelling server (blocking) for ``queue`` (a file from ``pbrl label queue``).

    The answers go to ``db`` (default: next to the queue, ``<queue>.labels.sqlite``; ``labels.sqlite``
    without a queue), the clips to ``cache_dir`` (default ``<db>.clips/``). On a non-loopback ``host`` a
    token is required; one is generated and printed unless ``token`` is given.
    """
    uvicorn = require("uvicorn", "the labelling server")
    check_extra("fastapi", "the labelling server")

    q = LabelQueue.load(queue) if queue is not None else None
    if q is None and task_id is None:
        raise ValueError("give a QUEUE file or --task (a server without a queue only serves HumanTeacher queries)")
    if q is not None and task_id is not None and task_id != q.task_id:
        raise ValueError(f"--task {task_id} differs from the queue's task {q.task_id}; drop --task")
    if not is_int(port) or not 0 <= port < 65536:
        raise ValueError(f"port must be in [0, 65535], got {port!r}")
    loopback = is_loopback(host)
    if token is not None and len(token) < 16:
        raise ValueError("a token must have at least 16 characters")
    if not loopback and token is None:
        token = secrets.token_urlsafe(24)
    if db is None:
        db = Path(queue).with_suffix(".labels.sqlite") if queue is not None else Path("labels.sqlite")
    db = Path(db)
    cache_dir = Path(cache_dir) if cache_dir is not None else db.with_suffix(".clips")
    store = LabelStore(db, annotators_per_pair=annotators_per_pair, n_classes=q.n_classes if q is not None else None)
    if q is not None:
        added = store.import_queue(q, queue)
        prog = store.progress()
        what = "pairs" if q.mode == "pairs" else f"clips to rate 1 .. {q.n_classes}"
        echo(f"queue {queue}: {len(q)} {what} of {q.task_id} ({added} new); {prog['complete']} answered so far")
    asgi = create_app(
        store, cache_dir, render=render, width=width, height=height, fps=fps, shadows=shadows, token=token,
        loopback_only=loopback, default_task=task_id, instruction=q.instruction if q is not None else None,
    )
    shown = host if ":" not in host else f"[{host}]"
    url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else shown}:{port}/"
    echo(f"answers: {db.resolve()}   clips: {cache_dir.resolve()}")
    if token is not None:
        echo(f"every request needs the token (header {TOKEN_HEADER}, or open the page with ?token=...):")
        echo(f"token: {token}")
        echo(f"open {url}?token={token}")
    else:
        echo(f"open {url}")
    uvicorn.run(asgi, host=host, port=int(port), log_level="warning", timeout_graceful_shutdown=2)

