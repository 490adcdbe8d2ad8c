"""The service's durable state in one SQLite file (WAL): evaluations, idempotency keys,
assets, the webhook outbox and worker heartbeats.

Why SQLite: one file, nothing else to start, and its write transactions are what the
queue needs. Every state change that must be atomic is one ``BEGIN IMMEDIATE``
transaction (a write lock taken up front, so two writers never deadlock on upgrade):

- a claim re-queues expired leases and leases up to N pending jobs at once;
- a result is written only by the lease holder, and the webhook outbox row is
  inserted in the SAME transaction, so "completed" and "webhook due" cannot diverge;
- admission checks the queue depth and inserts the job together (no overshoot).

Times are Unix seconds (floats) in the database and UTC datetimes at the edges.
Connections come from one bounded pool (``pool_size``, 8 by default): a thread borrows
one for a read or a transaction and gives it back, so a server whose threads come and
go never holds more than ``pool_size`` connections (a connection per thread, never
closed, leaked three file descriptors per thread). SQLite's ``busy_timeout``
serialises writers across threads and processes.
"""

from __future__ import annotations

import base64
import builtins
import json
import logging
import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from imagejury.errors import FailureCode, ImagejuryError, InvalidRequestError

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
SQLITE_MAX_INT = 2**63 - 1
TERMINAL = ("completed", "failed")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS evaluations (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    org_id TEXT NOT NULL,
    status TEXT NOT NULL,
    job_class TEXT NOT NULL,
    client_ref TEXT,
    run_id TEXT,
    request_json TEXT NOT NULL,
    cost TEXT NOT NULL,
    attempt_number INTEGER NOT NULL DEFAULT 1,
    parent_id TEXT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    deadline REAL NOT NULL,
    started_at REAL,
    completed_at REAL,
    superseded_at REAL,
    feedback_is_positive INTEGER,
    feedback_reason TEXT,
    lease_owner TEXT,
    lease_expires REAL,
    claims INTEGER NOT NULL DEFAULT 0,
    completions INTEGER NOT NULL DEFAULT 0,
    failure_code TEXT,
    result_json TEXT
);
CREATE INDEX IF NOT EXISTS evaluations_queue ON evaluations(status, seq);
CREATE INDEX IF NOT EXISTS evaluations_org ON evaluations(org_id, seq);
CREATE INDEX IF NOT EXISTS evaluations_org_status ON evaluations(org_id, status);
CREATE TABLE IF NOT EXISTS idempotency_keys (
    org_id TEXT NOT NULL,
    key TEXT NOT NULL,
    body_hash TEXT NOT NULL,
    state TEXT NOT NULL,
    evaluation_id TEXT,
    created_at REAL NOT NULL,
    PRIMARY KEY (org_id, key)
);
-- a small JPEG of the evaluated image, kept at evaluation time for the review page (the
-- service keeps no full images); added without a schema bump: older stores gain it on open
CREATE TABLE IF NOT EXISTS thumbnails (
    evaluation_id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL,
    jpeg BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS assets (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL,
    path TEXT NOT NULL,
    content_type TEXT NOT NULL,
    size_bytes INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    evaluation_id TEXT NOT NULL,
    org_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    url TEXT NOT NULL,
    payload TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL,
    lease_until REAL,
    last_error TEXT,
    created_at REAL NOT NULL,
    delivered_at REAL
);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox(status, next_attempt_at);
CREATE TABLE IF NOT EXISTS workers (
    id TEXT PRIMARY KEY,
    pid INTEGER NOT NULL,
    host TEXT NOT NULL,
    started_at REAL NOT NULL,
    last_seen REAL NOT NULL,
    ready INTEGER NOT NULL DEFAULT 0,
    problems TEXT NOT NULL DEFAULT '{}'
);
"""


def to_dt(ts: float | None) -> datetime | None:
    return None if ts is None else datetime.fromtimestamp(ts, tz=timezone.utc)


class StoreError(ImagejuryError):
    """A store invariant was violated (a bug or a hand-edited database), with what and where."""


class IdempotencyConflict(InvalidRequestError):
    """Same key, different body (→ 422)."""

    def __init__(self, detail: str = "the Idempotency-Key was used with a different body") -> None:
        super().__init__(detail)


class IdempotencyInProgress(InvalidRequestError):
    """Same key, the first request is still being admitted (→ 409)."""

    def __init__(self, detail: str = "a request with this Idempotency-Key is still being admitted") -> None:
        super().__init__(detail)


class QueueFull(ImagejuryError):
    """Past the configured queue depth, or past the org's share of it (→ 429)."""

    failure_code = FailureCode.dispatch_failed

    def __init__(self, depth: int, limit: int | None = None, org: bool = False) -> None:
        self.depth, self.limit, self.org = depth, limit, org
        what = "this org's share of the queue is full" if org else "queue is full"
        super().__init__(f"{what} ({depth} pending)")


class Conflict(InvalidRequestError):
    """The operation does not fit the evaluation's state (→ 409)."""


@dataclass
class Reservation:
    """The outcome of reserving an idempotency key: new, or a replay of an existing evaluation."""

    new: bool
    evaluation_id: str | None = None


@dataclass
class Claimed:
    """A job leased to a worker."""

    seq: int
    id: str
    org_id: str
    request_json: str
    job_class: str
    cost: str
    attempt_number: int
    parent_id: str | None
    created_at: float
    deadline: float
    claims: int


@dataclass
class OutboxMessage:
    id: str
    evaluation_id: str
    org_id: str
    event_type: str
    url: str
    payload: str
    attempts: int
    created_at: float


class ConnectionPool:
    """At most ``size`` SQLite connections, lent one at a time and reused.

    A thread that already holds a connection gets the same one again (a read inside a
    transaction sees the transaction and cannot wait on itself). Borrowing waits up to
    ``wait_s`` for a free connection; ``close`` closes idle ones at once and the rest
    as they come back."""

    def __init__(self, connect: Callable[[], sqlite3.Connection], size: int, wait_s: float = 30.0) -> None:
        self._connect = connect
        self.size = size
        self.wait_s = wait_s
        self._idle: list[sqlite3.Connection] = []
        self._opened = 0
        self._closed = False
        self._cond = threading.Condition()
        self._local = threading.local()

    @property
    def opened(self) -> int:
        """Connections open now (idle or lent)."""
        return self._opened

    @contextmanager
    def connection(self) -> Iterator[sqlite3.Connection]:
        held = getattr(self._local, "conn", None)
        if held is not None:
            yield held
            return
        conn = self._acquire()
        self._local.conn = conn
        try:
            yield conn
        finally:
            self._local.conn = None
            self._release(conn)

    def _acquire(self) -> sqlite3.Connection:
        with self._cond:
            deadline = time.monotonic() + self.wait_s
            while not self._idle and self._opened >= self.size:
                left = deadline - time.monotonic()
                if self._closed or left <= 0 or not self._cond.wait(left):
                    raise StoreError(f"all {self.size} store connections stayed busy for {self.wait_s:g} s")
            if self._closed:
                raise StoreError("the store is closed")
            if self._idle:
                return self._idle.pop()
            self._opened += 1
        try:
            return self._connect()
        except BaseException:
            with self._cond:
                self._opened -= 1
                self._cond.notify()
            raise

    def _release(self, conn: sqlite3.Connection) -> None:
        with self._cond:
            if conn.in_transaction:  # never hand on a connection mid-transaction
                conn.rollback()
            if self._closed:
                self._opened -= 1
                conn.close()
            else:
                self._idle.append(conn)
            self._cond.notify()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            for conn in self._idle:
                conn.close()
            self._opened -= len(self._idle)
            self._idle.clear()
            self._cond.notify_all()


class Store:
    """Thread-safe access to the SQLite file through one bounded connection pool."""

    def __init__(self, path: str | os.PathLike[str], *, synchronous: str = "FULL", pool_size: int = 8) -> None:
        self.path = Path(path)
        self.synchronous = synchronous
        if self.path.parent and not self.path.parent.exists():
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self.pool = ConnectionPool(self._open, pool_size)
        with self.pool.connection() as conn:
            conn.executescript(_SCHEMA)
        with self.write() as db:
            db.execute("INSERT OR IGNORE INTO meta(key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
            row = db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
            if int(row[0]) != SCHEMA_VERSION:
                raise StoreError(f"{self.path}: schema version {row[0]}, this imagejury expects {SCHEMA_VERSION}")

    # -- connections -------------------------------------------------------------------
    def _open(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=30.0, isolation_level=None, check_same_thread=False)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={self.synchronous}")
        conn.execute("PRAGMA busy_timeout=30000")
        conn.execute("PRAGMA foreign_keys=ON")
        return conn

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (BEGIN IMMEDIATE … COMMIT, rolled back on any error)."""
        with self.pool.connection() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            else:
                conn.execute("COMMIT")

    @contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """A pooled connection for reads (given back when the block ends)."""
        with self.pool.connection() as conn:
            yield conn

    # -- thumbnails -----------------------------------------------------------------------
    def put_thumbnails(self, rows: builtins.list[tuple[str, str, bytes]]) -> None:
        """Keep (org_id, evaluation_id, jpeg) rows, a batch's in one transaction."""
        if not rows:
            return
        with self.write() as db:
            db.executemany("INSERT OR REPLACE INTO thumbnails(org_id, evaluation_id, jpeg) VALUES (?, ?, ?)", rows)

    def thumbnails(self, org_id: str, evaluation_ids: builtins.list[str]) -> dict[str, bytes]:
        """The kept thumbnails of these evaluations of ``org_id`` (another org's: none)."""
        if not evaluation_ids:
            return {}
        marks = ",".join("?" * len(evaluation_ids))
        rows = self._all(
            f"SELECT evaluation_id, jpeg FROM thumbnails WHERE org_id=? AND evaluation_id IN ({marks})",
            [org_id, *evaluation_ids],
        )
        return {r["evaluation_id"]: bytes(r["jpeg"]) for r in rows}

    def _one(self, sql: str, args: tuple[Any, ...] = ()) -> sqlite3.Row | None:
        with self.read() as db:
            return db.execute(sql, args).fetchone()

    def _all(self, sql: str, args: tuple[Any, ...] | builtins.list[Any] = ()) -> builtins.list[sqlite3.Row]:
        with self.read() as db:
            return db.execute(sql, args).fetchall()

    def close(self) -> None:
        self.pool.close()

    def ping(self) -> bool:
        self._one("SELECT 1")
        return True

    # -- idempotency ---------------------------------------------------------------------
    def reserve_key(self, org_id: str, key: str, body_hash: str, *, ttl_s: float, stale_s: float) -> Reservation:
        """Reserve ``key`` for this body, or say what an earlier use of it means.

        Raises IdempotencyConflict (different body) or IdempotencyInProgress (the first
        request is still being admitted). Expired keys and admissions abandoned for
        ``stale_s`` (a crash mid-admission) are freed first.
        """
        now = time.time()
        with self.write() as db:
            db.execute(
                "DELETE FROM idempotency_keys WHERE org_id=? AND key=? AND (created_at < ? OR (state='admitting' AND created_at < ?))",
                (org_id, key, now - ttl_s, now - stale_s),
            )
            # a key whose evaluation is gone (a store edited by hand, a restored backup) is
            # forgotten here, for submit and reevaluate alike: the request is admitted anew
            db.execute(
                "DELETE FROM idempotency_keys WHERE org_id=? AND key=? AND state='done' AND NOT EXISTS "
                "(SELECT 1 FROM evaluations e WHERE e.id=idempotency_keys.evaluation_id AND e.org_id=?)",
                (org_id, key, org_id),
            )
            row = db.execute(
                "SELECT body_hash, state, evaluation_id FROM idempotency_keys WHERE org_id=? AND key=?", (org_id, key)
            ).fetchone()
            if row is None:
                db.execute(
                    "INSERT INTO idempotency_keys(org_id, key, body_hash, state, created_at) VALUES (?,?,?,?,?)",
                    (org_id, key, body_hash, "admitting", now),
                )
                return Reservation(new=True)
            if row["body_hash"] != body_hash:
                raise IdempotencyConflict()
            if row["state"] != "done":
                raise IdempotencyInProgress()
            return Reservation(new=False, evaluation_id=row["evaluation_id"])

    def release_key(self, org_id: str, key: str) -> None:
        """Free a reservation whose admission failed (so a corrected retry may use it)."""
        with self.write() as db:
            db.execute("DELETE FROM idempotency_keys WHERE org_id=? AND key=? AND state='admitting'", (org_id, key))

    def purge_expired_keys(self, ttl_s: float) -> int:
        with self.write() as db:
            return db.execute("DELETE FROM idempotency_keys WHERE created_at < ?", (time.time() - ttl_s,)).rowcount

    # -- admission ------------------------------------------------------------------------
    def admit(
        self,
        *,
        evaluation_id: str,
        org_id: str,
        request_json: str,
        result_json: str,
        job_class: str,
        client_ref: str | None,
        run_id: str | None,
        cost: str,
        job_timeout_s: float,
        max_queue_depth: int,
        max_org_depth: int | None = None,
        idempotency_key: str | None = None,
        parent_id: str | None = None,
        attempt_number: int = 1,
        now: float | None = None,
    ) -> float:
        """Insert a pending job if the queue has room (QueueFull otherwise); returns created_at.

        ``result_json`` is the pending evaluation as the API shows it until the worker
        replaces it with the result.

        ``max_org_depth`` caps the org's own pending jobs (its share of the queue).
        With ``idempotency_key`` the key is marked done in the same transaction; with
        ``parent_id`` the parent is marked superseded in the same transaction (Conflict
        if it already was, or is not terminal).
        """
        now = time.time() if now is None else now
        with self.write() as db:
            _check_room(db, org_id, max_queue_depth, max_org_depth)
            if parent_id is not None:
                _supersede(db, parent_id, org_id, now)
            db.execute(
                "INSERT INTO evaluations(id, org_id, status, job_class, client_ref, run_id, request_json, cost, "
                "attempt_number, parent_id, created_at, updated_at, deadline, result_json) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    evaluation_id,
                    org_id,
                    "pending",
                    job_class,
                    client_ref,
                    run_id,
                    request_json,
                    cost,
                    attempt_number,
                    parent_id,
                    now,
                    now,
                    now + job_timeout_s,
                    result_json,
                ),
            )
            if idempotency_key is not None:
                _mark_key_done(db, org_id, idempotency_key, evaluation_id)
        return now

    def queue_depth(self) -> int:
        row = self._one("SELECT COUNT(*) FROM evaluations WHERE status='pending'")
        return int(row[0]) if row else 0

    def status_counts(self) -> dict[str, int]:
        rows = self._all("SELECT status, COUNT(*) FROM evaluations GROUP BY status")
        return {r[0]: r[1] for r in rows}

    # -- reading ----------------------------------------------------------------------------
    def get(self, org_id: str, evaluation_id: str) -> sqlite3.Row | None:
        return self._one("SELECT * FROM evaluations WHERE id=? AND org_id=?", (evaluation_id, org_id))

    def get_any(self, evaluation_id: str) -> sqlite3.Row | None:
        """Without org scoping: for the worker and tests, never for an API answer."""
        return self._one("SELECT * FROM evaluations WHERE id=?", (evaluation_id,))

    def list(
        self,
        org_id: str,
        *,
        status: str | None = None,
        client_ref: str | None = None,
        run_id: str | None = None,
        before_seq: int | None = None,
        limit: int = 20,
    ) -> list[sqlite3.Row]:
        """Newest first; ``before_seq`` is the cursor (rows older than it)."""
        sql = "SELECT * FROM evaluations WHERE org_id=?"
        args: builtins.list[Any] = [org_id]
        for col, val in (("status", status), ("client_ref", client_ref), ("run_id", run_id)):
            if val is not None:
                sql += f" AND {col}=?"
                args.append(val)
        if before_seq is not None:
            sql += " AND seq<?"
            args.append(before_seq)
        sql += " ORDER BY seq DESC LIMIT ?"
        args.append(limit)
        return self._all(sql, args)

    def set_feedback(self, org_id: str, evaluation_id: str, is_positive: bool, reason: str | None) -> bool:
        now = time.time()
        with self.write() as db:
            return (
                db.execute(
                    "UPDATE evaluations SET feedback_is_positive=?, feedback_reason=?, updated_at=? WHERE id=? AND org_id=?",
                    (int(is_positive), reason, now, evaluation_id, org_id),
                ).rowcount
                == 1
            )

    # -- the worker's side ---------------------------------------------------------------
    def claim(self, owner: str, limit: int, lease_s: float) -> builtins.list[Claimed]:
        """Re-queue expired leases, then lease up to ``limit`` pending jobs, oldest first."""
        now = time.time()
        with self.write() as db:
            requeued = db.execute(
                "UPDATE evaluations SET status='pending', lease_owner=NULL, lease_expires=NULL, updated_at=? "
                "WHERE status='running' AND lease_expires < ?",
                (now, now),
            ).rowcount
            if requeued:
                log.warning("re-queued %d job(s) whose worker lease expired (a worker died or stalled)", requeued)
            rows = db.execute(
                "UPDATE evaluations SET status='running', lease_owner=?, lease_expires=?, claims=claims+1, "
                "started_at=COALESCE(started_at, ?), updated_at=? "
                "WHERE seq IN (SELECT seq FROM evaluations WHERE status='pending' ORDER BY seq LIMIT ?) "
                "RETURNING seq, id, org_id, request_json, job_class, cost, attempt_number, parent_id, created_at, deadline, claims",
                (owner, now + lease_s, now, now, limit),
            ).fetchall()
        out = [Claimed(**dict(r)) for r in rows]
        out.sort(key=lambda c: c.seq)
        return out

    def renew(self, owner: str, ids: builtins.list[str], lease_s: float) -> int:
        """Extend the leases this worker still holds; returns how many it still holds."""
        if not ids:
            return 0
        now = time.time()
        marks = ",".join("?" * len(ids))
        with self.write() as db:
            return db.execute(
                f"UPDATE evaluations SET lease_expires=? WHERE lease_owner=? AND status='running' AND id IN ({marks})",
                (now + lease_s, owner, *ids),
            ).rowcount

    def finish(
        self,
        owner: str,
        evaluation_id: str,
        *,
        status: str,
        failure_code: str | None,
        result_json: str,
        outbox: tuple[str, str, str, str] | None,
    ) -> bool:
        """Write a result if ``owner`` still holds the lease, with its outbox row, atomically.

        ``outbox`` is ``(message_id, event_type, url, payload)`` or None (no callback).
        Returns False when the lease was lost (another worker owns the job now; its
        result will be the one kept), so a job completes exactly once.
        """
        if status not in TERMINAL:
            raise StoreError(f"finish() needs a terminal status, got {status!r}")
        now = time.time()
        with self.write() as db:
            changed = db.execute(
                "UPDATE evaluations SET status=?, failure_code=?, result_json=?, completed_at=?, updated_at=?, "
                "lease_owner=NULL, lease_expires=NULL, completions=completions+1 "
                "WHERE id=? AND lease_owner=? AND status='running'",
                (status, failure_code, result_json, now, now, evaluation_id, owner),
            ).rowcount
            if changed != 1:
                return False
            if outbox is not None:
                msg_id, event_type, url, payload = outbox
                org = db.execute("SELECT org_id FROM evaluations WHERE id=?", (evaluation_id,)).fetchone()[0]
                db.execute(
                    "INSERT INTO outbox(id, evaluation_id, org_id, event_type, url, payload, next_attempt_at, created_at) "
                    "VALUES (?,?,?,?,?,?,?,?)",
                    (msg_id, evaluation_id, org, event_type, url, payload, now, now),
                )
        return True

    def release(self, owner: str, ids: builtins.list[str]) -> int:
        """Give leased jobs back to the queue (a worker shutting down cleanly)."""
        if not ids:
            return 0
        marks = ",".join("?" * len(ids))
        with self.write() as db:
            return db.execute(
                f"UPDATE evaluations SET status='pending', lease_owner=NULL, lease_expires=NULL "
                f"WHERE lease_owner=? AND status='running' AND id IN ({marks})",
                (owner, *ids),
            ).rowcount

    # -- workers ----------------------------------------------------------------------------
    def heartbeat(self, worker_id: str, *, ready: bool, problems: dict[str, str], started_at: float) -> None:
        now = time.time()
        with self.write() as db:
            db.execute(
                "INSERT INTO workers(id, pid, host, started_at, last_seen, ready, problems) VALUES (?,?,?,?,?,?,?) "
                "ON CONFLICT(id) DO UPDATE SET last_seen=excluded.last_seen, ready=excluded.ready, problems=excluded.problems",
                (worker_id, os.getpid(), os.uname().nodename, started_at, now, int(ready), json.dumps(problems)),
            )
            db.execute("DELETE FROM workers WHERE last_seen < ?", (now - 86_400,))

    def live_workers(self, within_s: float) -> builtins.list[sqlite3.Row]:
        return self._all(
            "SELECT * FROM workers WHERE last_seen >= ? ORDER BY last_seen DESC", (time.time() - within_s,)
        )

    def forget_worker(self, worker_id: str) -> None:
        with self.write() as db:
            db.execute("DELETE FROM workers WHERE id=?", (worker_id,))

    # -- assets -------------------------------------------------------------------------------
    def add_asset(self, asset_id: str, org_id: str, path: str, content_type: str, size: int, sha256: str) -> float:
        now = time.time()
        with self.write() as db:
            db.execute(
                "INSERT INTO assets(id, org_id, path, content_type, size_bytes, sha256, created_at) VALUES (?,?,?,?,?,?,?)",
                (asset_id, org_id, path, content_type, size, sha256, now),
            )
        return now

    def asset_path(self, org_id: str, asset_id: str) -> Path:
        """The file of an org's asset; KeyError when the org has no such asset."""
        row = self._one("SELECT path FROM assets WHERE id=? AND org_id=?", (asset_id, org_id))
        if row is None:
            raise KeyError(asset_id)
        return Path(row[0])

    # -- outbox ---------------------------------------------------------------------------------
    def claim_outbox(self, limit: int, lease_s: float) -> builtins.list[OutboxMessage]:
        now = time.time()
        with self.write() as db:
            rows = db.execute(
                "UPDATE outbox SET lease_until=? WHERE seq IN (SELECT seq FROM outbox WHERE status='pending' "
                "AND next_attempt_at<=? AND (lease_until IS NULL OR lease_until<?) ORDER BY next_attempt_at LIMIT ?) "
                "RETURNING id, evaluation_id, org_id, event_type, url, payload, attempts, created_at",
                (now + lease_s, now, now, limit),
            ).fetchall()
        return [OutboxMessage(**dict(r)) for r in rows]

    def outbox_result(
        self, msg_id: str, *, delivered: bool, give_up: bool, next_in_s: float, error: str | None
    ) -> None:
        now = time.time()
        status = "delivered" if delivered else ("failed" if give_up else "pending")
        with self.write() as db:
            db.execute(
                "UPDATE outbox SET status=?, attempts=attempts+1, next_attempt_at=?, lease_until=NULL, last_error=?, "
                "delivered_at=? WHERE id=?",
                (status, now + next_in_s, error, now if delivered else None, msg_id),
            )

    def outbox_pending(self) -> int:
        """Messages still to be sent (due now or later)."""
        row = self._one("SELECT COUNT(*) FROM outbox WHERE status='pending'")
        return int(row[0]) if row else 0

    def requeue_unsigned(self) -> int:
        """Put back messages that an earlier version marked failed for want of a secret."""
        with self.write() as db:
            return db.execute(
                "UPDATE outbox SET status='pending', next_attempt_at=?, lease_until=NULL "
                "WHERE status='failed' AND attempts<=1 AND last_error LIKE 'no webhook secret configured%'",
                (time.time(),),
            ).rowcount

    def outbox_rows(self, evaluation_id: str | None = None) -> builtins.list[sqlite3.Row]:
        if evaluation_id is None:
            return self._all("SELECT * FROM outbox ORDER BY seq")
        return self._all("SELECT * FROM outbox WHERE evaluation_id=? ORDER BY seq", (evaluation_id,))


def _check_room(db: sqlite3.Connection, org_id: str, max_queue_depth: int, max_org_depth: int | None) -> None:
    """QueueFull past the queue depth, or past the org's own share of it."""
    depth = db.execute("SELECT COUNT(*) FROM evaluations WHERE status='pending'").fetchone()[0]
    if depth >= max_queue_depth:
        raise QueueFull(depth, max_queue_depth)
    if max_org_depth is not None:
        mine = db.execute("SELECT COUNT(*) FROM evaluations WHERE org_id=? AND status='pending'", (org_id,)).fetchone()[
            0
        ]
        if mine >= max_org_depth:
            raise QueueFull(mine, max_org_depth, org=True)


def _supersede(db: sqlite3.Connection, parent_id: str, org_id: str, now: float) -> None:
    """Mark the parent of a re-evaluation superseded (Conflict if it already was or is not finished)."""
    changed = db.execute(
        "UPDATE evaluations SET superseded_at=?, updated_at=? "
        "WHERE id=? AND org_id=? AND superseded_at IS NULL AND status IN ('completed','failed')",
        (now, now, parent_id, org_id),
    ).rowcount
    if changed != 1:
        raise Conflict("the evaluation is already superseded or not finished")


def _mark_key_done(db: sqlite3.Connection, org_id: str, key: str, evaluation_id: str) -> None:
    changed = db.execute(
        "UPDATE idempotency_keys SET state='done', evaluation_id=? WHERE org_id=? AND key=? AND state='admitting'",
        (evaluation_id, org_id, key),
    ).rowcount
    if changed != 1:  # the reservation went stale and was taken over: let the client retry
        raise IdempotencyInProgress()


def encode_cursor(seq: int) -> str:
    return base64.urlsafe_b64encode(f"s{seq}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    """The seq a cursor stands for; ValueError if it is not one of ours."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (ValueError, UnicodeDecodeError):
        raise ValueError("cursor is not valid (use next_cursor from a previous page)") from None
    if not raw.startswith("s") or not raw[1:].isascii() or not raw[1:].isdigit() or len(raw) > 20:
        raise ValueError("cursor is not valid (use next_cursor from a previous page)")
    seq = int(raw[1:])
    if seq > SQLITE_MAX_INT:  # a forged cursor: SQLite cannot even compare it (OverflowError)
        raise ValueError("cursor is not valid (use next_cursor from a previous page)")
    return seq


def new_message_id() -> str:
    return "msg_" + uuid.uuid4().hex
