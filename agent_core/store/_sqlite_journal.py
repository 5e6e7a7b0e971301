"""The SQLite store's tool-call journal: one row per (run, tool_use id), the record as JSON.

The table is in ``_sqlite_rows.SCHEMA`` (created if missing, so a file written before the
journal existed gains it when opened).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import TYPE_CHECKING

from agent_core.store.base import dump, masked_tool_call
from agent_core.store.steps import held
from agent_core.toolcalls import ToolCallRecord

if TYPE_CHECKING:
    from agent_core.store._sqlite_conn import ThreadedConnection

__all__ = ["SqliteJournal", "put_tool_call"]


class SqliteJournal:
    """The journal part of :class:`~agent_core.store.sqlite.SqliteStore`."""

    _db: ThreadedConnection

    async def save_tool_call(self, record: ToolCallRecord) -> None:
        stored = masked_tool_call(record)
        step = held(stored.run_id)
        if step is not None:
            step.tool_calls.append(stored)
            return
        await self._db.write(lambda conn: put_tool_call(conn, stored))

    async def tool_calls(
        self, run_id: str, tool_use_ids: Sequence[str]
    ) -> dict[str, ToolCallRecord]:
        if not tool_use_ids:
            return {}

        def select(conn: sqlite3.Connection) -> dict[str, ToolCallRecord]:
            marks = ",".join("?" * len(tool_use_ids))
            rows = conn.execute(
                f"SELECT tool_use_id, body FROM tool_calls"
                f" WHERE run_id = ? AND tool_use_id IN ({marks})",
                (run_id, *tool_use_ids),
            )
            return {key: ToolCallRecord.model_validate_json(body) for key, body in rows}

        return await self._db.read(select)


def put_tool_call(conn: sqlite3.Connection, record: ToolCallRecord) -> None:
    """Write ``record`` (masked already) over the call's earlier one."""
    conn.execute(
        "INSERT INTO tool_calls (run_id, tool_use_id, body) VALUES (?, ?, ?)"
        " ON CONFLICT (run_id, tool_use_id) DO UPDATE SET body = excluded.body",
        (record.run_id, record.tool_use_id, dump(record)),
    )
