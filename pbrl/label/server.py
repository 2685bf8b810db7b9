"""The labelling server: a FastAPI app over a :class:`~pbrl.label.store.LabelStore`, served by uvicorn.

:func:`create_app` assembles it: the routes of :mod:`pbrl.label.routes` (handlers that take the server's state
through the dependency :func:`~pbrl.label.routes.get_state`), the page's static files, the render worker's
lifespan, and the ASGI guard below.

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
from contextlib import asynccontextmanager
from pathlib import Path

from pbrl.extras import check_extra, require
from pbrl.label.queue import LabelQueue
from pbrl.label.render import ClipRenderer, RenderWorker, default_shadows
from pbrl.label.store import LabelStore
from pbrl.validation import is_int

__all__ = ["create_app", "serve", "is_loopback", "TOKEN_HEADER", "STATIC_DIR"]

log = logging.getLogger("pbrl.label")

#: the request header that carries the access token off loopback
TOKEN_HEADER = "x-pbrl-token"
TOKEN_COOKIE = "pbrl_token"
#: the page's static files (HTML, JavaScript, CSS)
STATIC_DIR = Path(__file__).parent / "static"
SMALL_BODY = 16 * 1024
QUERIES_BODY = 32 * 1024 * 1024


def is_loopback(host: str) -> bool:
    """Whether ``host`` is a loopback address (``127.0.0.0/8``, ``::1``) or ``localhost``."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


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
def _stored_instruction(store: LabelStore) -> str | None:
    """The instruction the queue file stored in ``store``'s metadata (``None`` when it has none)."""
    try:
        return json.loads(store.meta().get("queue_metadata", "{}")).get("instruction")
    except (ValueError, AttributeError):
        return None


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
    """The FastAPI app serving ``store``: the routes of :mod:`pbrl.label.routes` over one
    :class:`~pbrl.label.routes.ServerState` (at ``app.state.label_server``, read by the routes' dependency
    :func:`~pbrl.label.routes.get_state`), the page's static files, and a lifespan that runs the render worker.

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
    from fastapi import FastAPI
    from fastapi.staticfiles import StaticFiles

    from pbrl.label.routes import ServerState, router  # lazy: routes need FastAPI (the label extra)

    cache_dir = Path(cache_dir).resolve()
    cache_dir.mkdir(parents=True, exist_ok=True)
    state = ServerState(
        store, cache_dir, STATIC_DIR, width=width, height=height, fps=fps,
        shadows=default_shadows() if shadows is None else bool(shadows),
        instruction=instruction or _stored_instruction(store), default_task=default_task,
        token_cookie=TOKEN_COOKIE if token is not None else None,
    )

    @asynccontextmanager
    async def lifespan(app):
        if render:
            state.worker = RenderWorker(
                lambda t: ClipRenderer(t, state.width, state.height, state.fps, state.shadows), cache_dir
            )
        state.queue_render(store.upcoming(), 0.0)
        try:
            yield
        finally:
            if state.worker is not None:
                state.worker.close()

    app = FastAPI(title=title, docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    app.state.label_server = state
    app.state.store = store
    app.state.cache_dir = cache_dir
    app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
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

