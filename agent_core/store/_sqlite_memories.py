"""The SQLite store's long-term memory records: one row per memory, numbered by ``seq``.

``seq`` is an AUTOINCREMENT key, so numbers are never reused after a delete and a
vector index can catch up by reading the rows after the last one it holds.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from agent_core.errors import AlreadyExists, NotFound
from agent_core.memory.records import Memory
from agent_core.store.base import dump, touched

if TYPE_CHECKING:  # the connection module creates this module's table
    from agent_core.store._sqlite_conn import ThreadedConnection

__all__ = ["MEMORY_SCHEMA", "SqliteMemories"]

MEMORY_SCHEMA = """
CREATE TABLE IF NOT EXISTS memories (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE,
    scope TEXT NOT NULL, body TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS memories_scope ON memories (scope, seq);
"""


class SqliteMemories:
    """The memory half of :class:`~agent_core.store.sqlite.SqliteStore`."""

    _db: ThreadedConnection

    async def add_memory(self, memory: Memory) -> Memory:
        def add(conn: sqlite3.Connection) -> Memory:
            try:
                cursor = conn.execute(
                    "INSERT INTO memories (id, scope, body) VALUES (?, ?, '')",
                    (memory.id, memory.scope),
                )
            except sqlite3.IntegrityError:
                raise AlreadyExists("memory", memory.id) from None
            assert cursor.lastrowid is not None
            added = memory.model_copy(update={"seq": cursor.lastrowid})
            conn.execute("UPDATE memories SET body = ? WHERE seq = ?", (dump(added), added.seq))
            return added

        return await self._db.write(add)

    async def get_memory(self, memory_id: str) -> Memory:
        return await self._db.read(lambda conn: _load(conn, memory_id))

    async def delete_memory(self, memory_id: str) -> Memory | None:
        def delete(conn: sqlite3.Connection) -> Memory | None:
            row = conn.execute(
                "DELETE FROM memories WHERE id = ? RETURNING body", (memory_id,)
            ).fetchone()
            return None if row is None else Memory.model_validate_json(row[0])

        return await self._db.write(delete)

    async def memories_by_seq(self, scope: str, seqs: Sequence[int]) -> list[Memory]:
        if not seqs:
            return []

        def select(conn: sqlite3.Connection) -> list[Memory]:
            marks = ",".join("?" * len(seqs))
            rows = conn.execute(
                f"SELECT seq, body FROM memories WHERE scope = ? AND seq IN ({marks})",
                (scope, *seqs),
            )
            found = {seq: Memory.model_validate_json(body) for seq, body in rows}
            return [found[seq] for seq in seqs if seq in found]

        return await self._db.read(select)

    async def list_memories(
        self, scope: str | None = None, *, after_seq: int = 0, limit: int = 1000
    ) -> list[Memory]:
        def select(conn: sqlite3.Connection) -> list[Memory]:
            rows = conn.execute(
                "SELECT body FROM memories WHERE (? IS NULL OR scope = ?) AND seq > ?"
                " ORDER BY seq LIMIT ?",
                (scope, scope, after_seq, limit),
            )
            return [Memory.model_validate_json(row[0]) for row in rows]

        return await self._db.read(select)

    async def touch_memories(self, memory_ids: Sequence[str], *, at: datetime) -> None:
        def touch(conn: sqlite3.Connection) -> None:
            for memory_id in memory_ids:
                try:
                    memory = touched(_load(conn, memory_id), at)
                except NotFound:
                    continue
                conn.execute("UPDATE memories SET body = ? WHERE id = ?", (dump(memory), memory_id))

        await self._db.write(touch)

    async def memory_counts(self) -> dict[str, int]:
        def count(conn: sqlite3.Connection) -> dict[str, int]:
            rows = conn.execute("SELECT scope, COUNT(*) FROM memories GROUP BY scope ORDER BY 1")
            return {scope: int(n) for scope, n in rows}

        return await self._db.read(count)


def _load(conn: sqlite3.Connection, memory_id: str) -> Memory:
    row = conn.execute("SELECT body FROM memories WHERE id = ?", (memory_id,)).fetchone()
    if row is None:
        raise NotFound("memory", memory_id)
    return Memory.model_validate_json(row[0])
