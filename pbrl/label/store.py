"""The labelling store: queries and answers in one SQLite file (WAL journal, ``synchronous=FULL``).

Tables:

* ``meta(key, value)``: the queue's fingerprint, path and task id, the schema version.
* ``pairs(id, source, source_index, task_id, priority, seg_a, seg_b, qpos_a, qvel_a, qpos_b, qvel_b,
  created)``: one row per query. ``source`` is ``"queue"`` for pairs of the queue file (``source_index`` is
  the pair's index there) or a HumanTeacher session id; ``seg_a`` / ``seg_b`` are
  :func:`~pbrl.label.render.states_hash` of the two segments; the states are ``.npy`` blobs.
* ``answers(id, pair_id, annotator, choice, label, created)``: ``choice`` in ``left, right, equal, skip``;
  ``label`` is ``0.0`` (left = a preferred), ``1.0`` (right = b), ``0.5`` (equal) or NULL for a skip
  ("can't tell" is recorded so the pair is not shown again, but it is not a label). One answer per
  annotator and pair.
* ``leases(pair_id, annotator, expires)``: the pair each annotator is looking at, so that with
  ``annotators_per_pair = k`` no more than ``k`` people get a pair at the same time.

A **rating store** (``LabelStore(path, n_classes=n)`` on a new file, for a rating queue; schema 2) rates
single clips: a query row has only side ``a`` (``seg_b = ''``, empty ``b`` blobs), and ``answers.choice``
is ``rate`` (``label`` = the class, an integer in ``[0, n)``; the page's key ``k`` is class ``k - 1``) or
``skip`` (``label`` NULL). SQLite's CHECK constraints hold either store to its own answers.

Every write is one transaction under a lock, committed before the call returns: an answer is on disk
before the next pair is handed out, and a killed server loses nothing it acknowledged.
"""

from __future__ import annotations

import io
import json
import os
import sqlite3
import threading
import time
from pathlib import Path

import numpy as np

from pbrl.label.render import states_hash
from pbrl.validation import is_int

__all__ = ["LabelStore", "ConflictError", "CHOICES", "CHOICE_LABEL", "RATING_CHOICES", "majority_label", "majority_rating"]

#: the page's answers and the label each one stores (1.0 = right / second segment b preferred)
CHOICE_LABEL: dict[str, float | None] = {"left": 0.0, "right": 1.0, "equal": 0.5, "skip": None}
#: the answers a pair store accepts (the keys of :data:`CHOICE_LABEL`)
CHOICES = tuple(CHOICE_LABEL)
#: a rating store's answers: a class (``rate``) or "can't tell" (``skip``)
RATING_CHOICES = ("rate", "skip")
SCHEMA_VERSION = 1
RATING_SCHEMA_VERSION = 2

_ANSWERS = """
CREATE TABLE IF NOT EXISTS answers (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    pair_id INTEGER NOT NULL REFERENCES pairs(id),
    annotator TEXT NOT NULL,
    choice TEXT NOT NULL CHECK (choice IN ('left', 'right', 'equal', 'skip')),
    label REAL CHECK (label IS NULL OR label IN (0.0, 0.5, 1.0)),
    created REAL NOT NULL,
    UNIQUE (pair_id, annotator)
);
"""

_RATING_ANSWERS = """
CREATE TABLE IF NOT EXISTS answers (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    pair_id INTEGER NOT NULL REFERENCES pairs(id),
    annotator TEXT NOT NULL,
    choice TEXT NOT NULL CHECK (choice IN ('rate', 'skip')),
    label REAL CHECK ((choice = 'skip' AND label IS NULL) OR (choice = 'rate' AND label >= 0
                      AND label < {n} AND label = CAST(label AS INTEGER))),
    created REAL NOT NULL,
    UNIQUE (pair_id, annotator)
);
"""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS pairs (
    id INTEGER PRIMARY KEY,
    source TEXT NOT NULL,
    source_index INTEGER NOT NULL,
    task_id TEXT NOT NULL,
    priority INTEGER NOT NULL DEFAULT 0,
    seg_a TEXT NOT NULL,
    seg_b TEXT NOT NULL,
    qpos_a BLOB NOT NULL, qvel_a BLOB NOT NULL, qpos_b BLOB NOT NULL, qvel_b BLOB NOT NULL,
    created REAL NOT NULL,
    UNIQUE (source, source_index)
);
CREATE INDEX IF NOT EXISTS answers_pair ON answers(pair_id);
CREATE INDEX IF NOT EXISTS answers_annotator ON answers(annotator, id);
CREATE TABLE IF NOT EXISTS leases (
    pair_id INTEGER NOT NULL REFERENCES pairs(id),
    annotator TEXT NOT NULL,
    expires REAL NOT NULL,
    PRIMARY KEY (pair_id, annotator)
);
CREATE INDEX IF NOT EXISTS leases_annotator ON leases(annotator);
"""


def _blob(x: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(x, dtype=np.float32), allow_pickle=False)
    return buf.getvalue()


def _unblob(b: bytes) -> np.ndarray:
    return np.load(io.BytesIO(b), allow_pickle=False)


class ConflictError(Exception):
    """A request that is well formed but cannot be applied now (already answered, nothing to undo, ...)."""


class LabelStore:
    """Queries and answers in SQLite; every method is one committed transaction and thread-safe.

    Args:
        path: the SQLite file (created if missing).
        annotators_per_pair: how many people answer each pair (k >= 1, default 1).
        lease_s: how long a pair handed to an annotator stays reserved for them (seconds).
        n_classes: make a new file a rating store of this many classes (2 .. 9); an existing store keeps its
            mode, and a different ``n_classes`` for it is refused. ``None``: whatever the file is (a new
            file becomes a pair store).

    Attributes:
        mode: ``"pairs"`` or ``"rating"``; n_classes: the rating store's classes (``None`` for pairs).
    """

    def __init__(self, path: str | os.PathLike, annotators_per_pair: int = 1, lease_s: float = 600.0,
                 n_classes: int | None = None):
        if not is_int(annotators_per_pair) or annotators_per_pair < 1:
            raise ValueError(f"annotators_per_pair must be a positive integer, got {annotators_per_pair!r}")
        if n_classes is not None and (not is_int(n_classes) or not 2 <= n_classes <= 9):
            raise ValueError(f"n_classes must be an integer in [2, 9] (the page's keys 1 .. 9), got {n_classes!r}")
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.k = int(annotators_per_pair)
        self.lease_s = float(lease_s)
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30.0)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA foreign_keys=ON")
            new = self._db.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='answers'").fetchone() is None
            if new:
                self._db.executescript(_ANSWERS if n_classes is None else _RATING_ANSWERS.format(n=int(n_classes)))
            self._db.executescript(_SCHEMA)
        except sqlite3.DatabaseError as e:
            raise ValueError(f"{self.path} is not a usable SQLite label store ({e}); choose another --db") from None
        with self._tx() as c:
            row = c.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
            if row is None:
                version = SCHEMA_VERSION if n_classes is None else RATING_SCHEMA_VERSION
                c.execute("INSERT INTO meta VALUES ('schema', ?)", (str(version),))
                if n_classes is not None:
                    c.executemany("INSERT INTO meta VALUES (?, ?)", [("mode", "rating"), ("n_classes", str(n_classes))])
            elif int(row[0]) not in (SCHEMA_VERSION, RATING_SCHEMA_VERSION):
                raise ValueError(f"{self.path} has label store schema {row[0]}; this pbrl uses {SCHEMA_VERSION} "
                                 f"(pairs) and {RATING_SCHEMA_VERSION} (ratings)")
            meta = dict(c.execute("SELECT key, value FROM meta").fetchall())
        self.mode = meta.get("mode", "pairs")
        self.n_classes = int(meta["n_classes"]) if self.mode == "rating" else None
        if n_classes is not None and self.n_classes != n_classes:
            have = "pairs" if self.n_classes is None else f"ratings of {self.n_classes} classes"
            raise ValueError(f"{self.path} holds {have}, not ratings of {n_classes} classes; use a new --db")

    # ------------------------------------------------------------------ plumbing
    class _Tx:
        def __init__(self, store: LabelStore):
            self.s = store

        def __enter__(self) -> sqlite3.Connection:
            self.s._lock.acquire()
            self.s._db.execute("BEGIN IMMEDIATE")
            return self.s._db

        def __exit__(self, exc_type, exc, tb) -> None:
            try:
                self.s._db.execute("COMMIT" if exc_type is None else "ROLLBACK")
            finally:
                self.s._lock.release()

    def _tx(self) -> LabelStore._Tx:
        return LabelStore._Tx(self)

    def close(self) -> None:
        """Close the connection (checkpointing the WAL)."""
        with self._lock:
            self._db.close()

    def meta(self) -> dict[str, str]:
        with self._tx() as c:
            return dict(c.execute("SELECT key, value FROM meta").fetchall())

    # ------------------------------------------------------------------ queries
    def import_queue(self, queue, path: str | os.PathLike = "") -> int:
        """Add the pairs of a :class:`~pbrl.label.queue.LabelQueue` once; returns how many were added.

        A store already holding this queue (same fingerprint) adds nothing, so a restart continues; a
        store made for a different queue is refused with a clear error.
        """
        fp = queue.fingerprint()
        if queue.mode != self.mode or queue.n_classes != self.n_classes:
            want = "ratings" if queue.mode == "rating" else "pairs"
            raise ValueError(f"{self.path} is a {self.mode} store but the queue asks for {want}"
                             f"{f' of {queue.n_classes} classes' if queue.n_classes else ''}; use a new --db")
        with self._tx() as c:
            row = c.execute("SELECT value FROM meta WHERE key='queue_fingerprint'").fetchone()
            if row is not None:
                if row[0] != fp:
                    old = c.execute("SELECT value FROM meta WHERE key='queue_path'").fetchone()
                    raise ValueError(
                        f"{self.path} holds the answers of another queue ({old[0] if old else '?'}); "
                        "use a new --db for this queue"
                    )
                return 0
            now = time.time()
            rows = []
            for i in range(len(queue)):
                qa, va = queue.a.qpos[i], queue.a.qvel[i]
                if queue.b is None:  # a rating query: one clip
                    seg_b, blob_b = "", (b"", b"")
                else:
                    qb, vb = queue.b.qpos[i], queue.b.qvel[i]
                    seg_b, blob_b = states_hash(queue.task_id, qb, vb), (_blob(qb), _blob(vb))
                rows.append(
                    ("queue", i, queue.task_id, 0, states_hash(queue.task_id, qa, va), seg_b, _blob(qa), _blob(va),
                     *blob_b, now)
                )
            c.executemany(
                "INSERT INTO pairs (source, source_index, task_id, priority, seg_a, seg_b, qpos_a, qvel_a, qpos_b,"
                " qvel_b, created) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                rows,
            )
            c.executemany(
                "INSERT INTO meta VALUES (?, ?)",
                [
                    ("queue_fingerprint", fp),
                    ("queue_path", str(Path(path).resolve()) if path else ""),
                    ("task_id", queue.task_id),
                    ("queue_metadata", json.dumps(queue.metadata, default=str)),
                ],
            )
        return len(rows)

    def add_pairs(self, source: str, task_id: str, states: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]],
                  priority: int = 1) -> list[int]:
        """Add query pairs of a session ``source``; ``states[i] = (qpos_a, qvel_a, qpos_b, qvel_b)``.

        Returns the new pair ids. Pairs with a higher ``priority`` are handed out first (a training run
        waiting on a person goes ahead of the offline queue). A rating store takes no pairs.
        """
        if self.mode == "rating":
            raise ValueError(f"{self.path} is a rating store (single clips); pair queries need a pair store")
        now = time.time()
        with self._tx() as c:
            start = c.execute("SELECT COALESCE(MAX(source_index) + 1, 0) FROM pairs WHERE source=?", (source,)).fetchone()[0]
            ids = []
            for j, (qa, va, qb, vb) in enumerate(states):
                cur = c.execute(
                    "INSERT INTO pairs (source, source_index, task_id, priority, seg_a, seg_b, qpos_a, qvel_a, qpos_b,"
                    " qvel_b, created) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                    (source, start + j, task_id, int(priority), states_hash(task_id, qa, va), states_hash(task_id, qb, vb),
                     _blob(qa), _blob(va), _blob(qb), _blob(vb), now),
                )
                ids.append(int(cur.lastrowid))
        return ids

    def pair(self, pair_id: int) -> dict | None:
        """``{id, source, source_index, task_id, priority, seg_a, seg_b}`` or None if unknown."""
        with self._tx() as c:
            row = c.execute(
                "SELECT id, source, source_index, task_id, priority, seg_a, seg_b FROM pairs WHERE id=?", (int(pair_id),)
            ).fetchone()
        if row is None:
            return None
        return dict(zip(("id", "source", "source_index", "task_id", "priority", "seg_a", "seg_b"), row))

    def states(self, pair_id: int, side: str) -> tuple[np.ndarray, np.ndarray]:
        """``(qpos [H, nq], qvel [H, nv])`` of side ``a`` or ``b`` of a pair."""
        if side not in ("a", "b"):
            raise ValueError(f"side must be 'a' or 'b', got {side!r}")
        with self._tx() as c:
            row = c.execute(f"SELECT qpos_{side}, qvel_{side} FROM pairs WHERE id=?", (int(pair_id),)).fetchone()
        if row is None:
            raise KeyError(f"no pair {pair_id}")
        return _unblob(row[0]), _unblob(row[1])

    def segment_states(self, seg_hash: str) -> tuple[str, np.ndarray, np.ndarray] | None:
        """``(task_id, qpos, qvel)`` of any pair side whose states hash to ``seg_hash``, or None."""
        with self._tx() as c:
            for side in ("a", "b"):
                row = c.execute(
                    f"SELECT task_id, qpos_{side}, qvel_{side} FROM pairs WHERE seg_{side}=? LIMIT 1", (seg_hash,)
                ).fetchone()
                if row is not None:
                    return row[0], _unblob(row[1]), _unblob(row[2])
        return None

    def upcoming(self, limit: int = 10_000) -> list[dict]:
        """Pairs that still need answers, in the order they are handed out (for rendering ahead)."""
        with self._tx() as c:
            rows = c.execute(
                "SELECT p.id, p.task_id, p.seg_a, p.seg_b FROM pairs p "
                "WHERE (SELECT COUNT(*) FROM answers a WHERE a.pair_id=p.id) < ? "
                "ORDER BY p.priority DESC, p.id LIMIT ?",
                (self.k, int(limit)),
            ).fetchall()
        return [dict(zip(("id", "task_id", "seg_a", "seg_b"), r)) for r in rows]

    # ------------------------------------------------------------------ annotators
    def _next(self, c: sqlite3.Connection, annotator: str, now: float) -> int | None:
        row = c.execute(
            "SELECT p.id FROM pairs p "
            "WHERE NOT EXISTS (SELECT 1 FROM answers a WHERE a.pair_id=p.id AND a.annotator=:ann) "
            "AND (SELECT COUNT(*) FROM answers a WHERE a.pair_id=p.id) "
            "  + (SELECT COUNT(*) FROM leases l WHERE l.pair_id=p.id AND l.annotator!=:ann AND l.expires>:now) < :k "
            "ORDER BY EXISTS (SELECT 1 FROM leases l WHERE l.pair_id=p.id AND l.annotator=:ann AND l.expires>:now) DESC,"
            " p.priority DESC, p.id LIMIT 1",
            {"ann": annotator, "now": now, "k": self.k},
        ).fetchone()
        if row is None:
            c.execute("DELETE FROM leases WHERE annotator=?", (annotator,))
            return None
        pid = int(row[0])
        self._lease(c, pid, annotator, now)
        return pid

    def _lease(self, c: sqlite3.Connection, pid: int, annotator: str, now: float) -> None:
        c.execute("DELETE FROM leases WHERE annotator=? AND pair_id!=?", (annotator, pid))
        c.execute("INSERT OR REPLACE INTO leases VALUES (?, ?, ?)", (pid, annotator, now + self.lease_s))

    def next_pair(self, annotator: str) -> int | None:
        """The pair to show ``annotator`` now (kept for them while they look at it), or None when done."""
        with self._tx() as c:
            return self._next(c, annotator, time.time())

    def answer(self, pair_id: int, annotator: str, choice: str, rating: int | None = None) -> tuple[int, int | None]:
        """Store ``annotator``'s ``choice`` for ``pair_id`` and hand out the next pair, in one transaction.

        A rating store takes ``choice="rate"`` with ``rating``, the class in ``[0, n_classes)``, or ``"skip"``.

        Returns ``(answer_id, next_pair_id or None)``. Raises ``KeyError`` for an unknown pair, ``ValueError``
        for a choice outside ``left/right/equal/skip`` (rating store: ``rate/skip``, a rating outside the
        classes) and :class:`ConflictError` when this annotator answered the pair already or it has its ``k``
        annotators; nothing is written then.
        """
        label = self._label_of(choice, rating)
        now = time.time()
        with self._tx() as c:
            if c.execute("SELECT 1 FROM pairs WHERE id=?", (int(pair_id),)).fetchone() is None:
                raise KeyError(f"no pair {pair_id}")
            if c.execute("SELECT 1 FROM answers WHERE pair_id=? AND annotator=?", (pair_id, annotator)).fetchone():
                raise ConflictError(f"{annotator} already answered pair {pair_id}; undo it first to change the answer")
            taken = c.execute(
                "SELECT (SELECT COUNT(*) FROM answers WHERE pair_id=:p) + "
                "(SELECT COUNT(*) FROM leases WHERE pair_id=:p AND annotator!=:a AND expires>:now)",
                {"p": pair_id, "a": annotator, "now": now},
            ).fetchone()[0]
            if taken >= self.k:
                raise ConflictError(f"pair {pair_id} already has its {self.k} annotator(s); ask for the next pair")
            cur = c.execute(
                "INSERT INTO answers (pair_id, annotator, choice, label, created) VALUES (?,?,?,?,?)",
                (int(pair_id), annotator, choice, label, now),
            )
            c.execute("DELETE FROM leases WHERE annotator=?", (annotator,))
            nxt = self._next(c, annotator, now)
            return int(cur.lastrowid), nxt

    def _label_of(self, choice: str, rating: int | None) -> float | None:
        """The label an answer stores (pairs: by ``choice``; ratings: the class), or one clear ``ValueError``."""
        if self.mode == "rating":
            if choice not in RATING_CHOICES:
                raise ValueError(f"this store rates single clips: choice must be one of {list(RATING_CHOICES)}, "
                                 f"got {choice!r}")
            if choice == "skip":
                if rating is not None:
                    raise ValueError("a skip carries no rating")
                return None
            if not is_int(rating) or not 0 <= rating < self.n_classes:
                raise ValueError(f"rating must be a class in [0, {self.n_classes - 1}] (keys 1 .. {self.n_classes}), "
                                 f"got {rating!r}")
            return float(rating)
        if choice not in CHOICE_LABEL:
            raise ValueError(f"choice must be one of {list(CHOICES)}, got {choice!r}")
        if rating is not None:
            raise ValueError("this store compares pairs; an answer carries no rating")
        return CHOICE_LABEL[choice]

    def undo(self, annotator: str) -> int:
        """Delete ``annotator``'s most recent answer and give its pair back to them; returns the pair id."""
        with self._tx() as c:
            row = c.execute(
                "SELECT id, pair_id FROM answers WHERE annotator=? ORDER BY id DESC LIMIT 1", (annotator,)
            ).fetchone()
            if row is None:
                raise ConflictError(f"{annotator} has no answer to undo")
            c.execute("DELETE FROM answers WHERE id=?", (row[0],))
            self._lease(c, int(row[1]), annotator, time.time())
            return int(row[1])

    # ------------------------------------------------------------------ reading answers
    def progress(self, annotator: str | None = None) -> dict:
        """``{pairs, complete, answers, labels, skips, mine}``: counts over the whole store."""
        with self._tx() as c:
            pairs = c.execute("SELECT COUNT(*) FROM pairs").fetchone()[0]
            complete = c.execute(
                "SELECT COUNT(*) FROM (SELECT pair_id FROM answers GROUP BY pair_id HAVING COUNT(*) >= ?)", (self.k,)
            ).fetchone()[0]
            answers, labels = c.execute("SELECT COUNT(*), COUNT(label) FROM answers").fetchone()
            mine = (
                c.execute("SELECT COUNT(*) FROM answers WHERE annotator=?", (annotator,)).fetchone()[0]
                if annotator else 0
            )
        return {
            "pairs": int(pairs), "complete": int(complete), "answers": int(answers), "labels": int(labels),
            "skips": int(answers - labels), "mine": int(mine),
        }

    def results(self, pair_ids: list[int]) -> dict[int, dict]:
        """For each pair: ``{complete, labels: [...], skips, annotators: [...]}`` (labels exclude skips)."""
        out: dict[int, dict] = {}
        with self._tx() as c:
            known = {
                r[0]
                for r in c.execute(
                    f"SELECT id FROM pairs WHERE id IN ({','.join('?' * len(pair_ids))})", [int(p) for p in pair_ids]
                ).fetchall()
            } if pair_ids else set()
            for pid in pair_ids:
                if pid not in known:
                    raise KeyError(f"no pair {pid}")
                rows = c.execute("SELECT annotator, label FROM answers WHERE pair_id=? ORDER BY id", (pid,)).fetchall()
                out[int(pid)] = {
                    "complete": len(rows) >= self.k,
                    "labels": [r[1] for r in rows if r[1] is not None],
                    "skips": sum(r[1] is None for r in rows),
                    "annotators": [r[0] for r in rows],
                }
        return out

    def answers(self, source: str | None = None) -> list[dict]:
        """Every answer (skips included) as ``{id, pair_id, source, source_index, annotator, choice, label, created}``."""
        q = (
            "SELECT a.id, a.pair_id, p.source, p.source_index, a.annotator, a.choice, a.label, a.created "
            "FROM answers a JOIN pairs p ON p.id=a.pair_id"
        )
        args: tuple = ()
        if source is not None:
            q += " WHERE p.source=?"
            args = (source,)
        with self._tx() as c:
            rows = c.execute(q + " ORDER BY a.id", args).fetchall()
        keys = ("id", "pair_id", "source", "source_index", "annotator", "choice", "label", "created")
        return [dict(zip(keys, r)) for r in rows]


def majority_rating(ratings: list[float]) -> float:
    """The most frequent class among annotators' ratings; a tie goes to the lower middle of the tied classes
    (``[0, 2]`` -> 0, ``[0, 1, 2]`` -> 1). An empty list (every annotator skipped) gives NaN."""
    if not ratings:
        return float("nan")
    vals, counts = np.unique(np.asarray(ratings, dtype=np.float64), return_counts=True)
    top = vals[counts == counts.max()]
    return float(top[(len(top) - 1) // 2])


def majority_label(labels: list[float]) -> float:
    """Majority vote over labels in {0, 0.5, 1}: the most frequent label; any tie (e.g. one 0.0 and one 1.0) is 0.5 (equal).

    An empty list (every annotator skipped) gives NaN.
    """
    if not labels:
        return float("nan")
    vals, counts = np.unique(np.asarray(labels, dtype=np.float64), return_counts=True)
    top = vals[counts == counts.max()]
    return float(top[0]) if len(top) == 1 else 0.5
