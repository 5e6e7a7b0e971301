"""The SQLite store's tables, and how runs, checkpoints and approvals map to their rows.

Runs, approvals, audit events, audit heads and tool-call journal records are kept whole as
JSON in ``body``; the other columns of their rows hold only what a query filters or sorts
on, or what a check compares, so that neither has to parse the body (audit trails are read
and written by ``_sqlite_audit``, the journal by ``_sqlite_journal``). The functions here run
inside a transaction their caller opened (see ``_sqlite_conn``); they raise
:class:`AlreadyExists` for a taken id and :class:`NotFound` for a missing row.
"""

from __future__ import annotations

import sqlite3

from agent_core.errors import AlreadyExists, NotFound
from agent_core.models import Approval, Run, RunStatus
from agent_core.store.base import dump

__all__ = [
    "SCHEMA",
    "insert_approval",
    "insert_run",
    "load_approval",
    "load_run",
    "put_approval",
    "put_checkpoint",
    "put_run",
    "runs_where",
]

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY, status TEXT NOT NULL, created_at TEXT NOT NULL,
    version INTEGER NOT NULL, body TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS runs_status ON runs (status, created_at);
CREATE INDEX IF NOT EXISTS runs_requester ON runs (json_extract(body, '$.requester'), created_at);
CREATE TABLE IF NOT EXISTS checkpoints (run_id TEXT PRIMARY KEY, data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS approvals (
    id TEXT PRIMARY KEY, run_id TEXT NOT NULL, status TEXT NOT NULL,
    requested_at TEXT NOT NULL, body TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS approvals_status ON approvals (status, requested_at);
CREATE TABLE IF NOT EXISTS signals (
    id INTEGER PRIMARY KEY AUTOINCREMENT, at REAL NOT NULL, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS kv (
    ns TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, expires_at REAL,
    PRIMARY KEY (ns, key));
CREATE TABLE IF NOT EXISTS audit (
    run_id TEXT NOT NULL, seq INTEGER NOT NULL, body TEXT NOT NULL, PRIMARY KEY (run_id, seq));
CREATE TABLE IF NOT EXISTS audit_heads (run_id TEXT PRIMARY KEY, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tool_calls (
    run_id TEXT NOT NULL, tool_use_id TEXT NOT NULL, body TEXT NOT NULL,
    PRIMARY KEY (run_id, tool_use_id));
"""


def runs_where(*, status: RunStatus | None, requester: str | None) -> tuple[str, tuple[str, ...]]:
    """The WHERE clause (and its arguments) of a runs query; each filter matches an index."""
    # The requester is read from the body, as the runs_requester index is built, so runs
    # stored before that index existed are found too.
    conditions = {"status = ?": status, "json_extract(body, '$.requester') = ?": requester}
    used = {sql: str(value) for sql, value in conditions.items() if value is not None}
    return ("WHERE " + " AND ".join(used) if used else ""), tuple(used.values())


def insert_run(conn: sqlite3.Connection, run: Run) -> Run:
    try:
        conn.execute(
            "INSERT INTO runs (id, status, created_at, version, body) VALUES (?,?,?,?,?)",
            (run.id, run.status, run.created_at.isoformat(), run.version, dump(run)),
        )
    except sqlite3.IntegrityError:
        raise AlreadyExists("run", run.id) from None
    return run


def load_run(conn: sqlite3.Connection, run_id: str) -> Run:
    row = conn.execute("SELECT body FROM runs WHERE id = ?", (run_id,)).fetchone()
    if row is None:
        raise NotFound("run", run_id)
    return Run.model_validate_json(row[0])


def put_run(conn: sqlite3.Connection, run: Run) -> Run:
    conn.execute(
        "UPDATE runs SET status = ?, version = ?, body = ? WHERE id = ?",
        (run.status, run.version, dump(run), run.id),
    )
    return run


def put_checkpoint(conn: sqlite3.Connection, run_id: str, data: bytes) -> None:
    conn.execute(
        "INSERT INTO checkpoints (run_id, data) VALUES (?, ?)"
        " ON CONFLICT (run_id) DO UPDATE SET data = excluded.data",
        (run_id, data),
    )


def insert_approval(conn: sqlite3.Connection, approval: Approval) -> Approval:
    try:
        conn.execute(
            "INSERT INTO approvals (id, run_id, status, requested_at, body) VALUES (?,?,?,?,?)",
            (
                approval.id,
                approval.run_id,
                approval.status,
                approval.requested_at.isoformat(),
                dump(approval),
            ),
        )
    except sqlite3.IntegrityError:
        raise AlreadyExists("approval", approval.id) from None
    return approval


def load_approval(conn: sqlite3.Connection, approval_id: str) -> Approval:
    row = conn.execute("SELECT body FROM approvals WHERE id = ?", (approval_id,)).fetchone()
    if row is None:
        raise NotFound("approval", approval_id)
    return Approval.model_validate_json(row[0])


def put_approval(conn: sqlite3.Connection, approval: Approval) -> None:
    conn.execute(
        "UPDATE approvals SET status = ?, body = ? WHERE id = ?",
        (approval.status, dump(approval), approval.id),
    )
