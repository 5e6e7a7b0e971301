"""What an attacker with write access to the store, but not the audit key, can do to it.

Everything here talks to SQLite or Redis directly (``sqlite3``, raw Redis commands), never
through airlock's store code, the way someone holding the database file or a Redis
password would. Events are handled as the JSON bodies that are stored.
"""

from __future__ import annotations

import base64
import hashlib
import json
import sqlite3
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qs, urlsplit

from redis.asyncio import Redis

from agent_core.store._redis_codec import DICTIONARY

__all__ = ["Raw", "open_raw", "rechain", "unkeyed_head"]

Body = dict[str, Any]


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def rechain(bodies: list[Body], *, start: int = 0, renumber: bool = True) -> list[Body]:
    """The trail hashed again with plain SHA-256 from position ``start`` on, as an attacker
    without the key can: each body's ``prev_hash`` is its predecessor's new ``hash``, and
    (``renumber``) its ``seq`` its position. Bodies before ``start`` are left as they are.
    """
    chained = [dict(body) for body in bodies[:start]]
    previous = chained[-1]["hash"] if chained else ""
    for position, body in enumerate(bodies[start:], start=start + 1):
        body = dict(body)
        if renumber:
            body["seq"] = position
        body["prev_hash"] = previous
        body["hash"] = hashlib.sha256(
            _canonical({k: v for k, v in body.items() if k != "hash"}).encode()
        ).hexdigest()
        previous = body["hash"]
        chained.append(body)
    return chained


def unkeyed_head(head: Body) -> Body:
    """``head`` as an unkeyed (SHA-256 "sealed") head: what a store without a key writes,
    and what anyone can compute."""
    body = {"purged_at": None, **head, "key_id": ""}
    body.pop("mac", None)
    return {**body, "mac": hashlib.sha256(_canonical(body).encode()).hexdigest()}


class Raw(Protocol):
    """Direct access to one store's bytes."""

    async def events(self, run_id: str) -> list[Body]:
        """The run's stored event bodies, in stored order."""

    async def replace(self, run_id: str, bodies: list[Body]) -> None:
        """Store ``bodies`` as the run's whole trail, in this order."""

    async def wipe(self, run_id: str) -> None:
        """Delete every trace of the run: its record, its trail, anything keyed by its id."""

    async def drop_run(self, run_id: str) -> None:
        """Delete the run's record only."""

    async def head(self, run_id: str) -> Body | None:
        """The run's stored audit head, if the store keeps one."""

    async def put_head(self, run_id: str, head: Body | None) -> None:
        """Overwrite (or, with None, delete) the run's audit head."""

    async def anchor(self) -> Body | None:
        """The store's audit anchor, if it keeps one."""

    async def put_anchor(self, anchor: Body | None) -> None:
        """Overwrite (or, with None, delete) the audit anchor."""

    async def close(self) -> None:
        """Release the connection."""


@dataclass
class SqliteRaw:
    """The SQLite file, opened with ``sqlite3`` as any program could."""

    path: Path

    def _run(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        with sqlite3.connect(self.path) as db:
            return db.execute(sql, args).fetchall()

    async def events(self, run_id: str) -> list[Body]:
        rows = self._run("SELECT body FROM audit WHERE run_id = ? ORDER BY seq", run_id)
        return [json.loads(row[0]) for row in rows]

    async def replace(self, run_id: str, bodies: list[Body]) -> None:
        with sqlite3.connect(self.path) as db:
            db.execute("DELETE FROM audit WHERE run_id = ?", (run_id,))
            for position, body in enumerate(bodies, start=1):
                db.execute(
                    "INSERT INTO audit (run_id, seq, body) VALUES (?, ?, ?)",
                    (run_id, position, json.dumps(body)),
                )

    async def wipe(self, run_id: str) -> None:
        with sqlite3.connect(self.path) as db:
            tables = [row[0] for row in db.execute("SELECT name FROM sqlite_master "
                                                   "WHERE type = 'table'")]  # fmt: skip
            for table in tables:
                columns = [row[1] for row in db.execute(f"PRAGMA table_info({table})")]
                for column in {"id", "run_id"} & set(columns):
                    db.execute(f"DELETE FROM {table} WHERE {column} = ?", (run_id,))

    async def drop_run(self, run_id: str) -> None:
        self._run("DELETE FROM runs WHERE id = ?", run_id)

    async def head(self, run_id: str) -> Body | None:
        rows = self._run("SELECT body FROM audit_heads WHERE run_id = ?", run_id)
        return json.loads(rows[0][0]) if rows else None

    async def put_head(self, run_id: str, head: Body | None) -> None:
        self._run("DELETE FROM audit_heads WHERE run_id = ?", run_id)
        if head is not None:
            self._run("INSERT INTO audit_heads (run_id, body) VALUES (?, ?)", run_id,
                      json.dumps(head))  # fmt: skip

    async def anchor(self) -> Body | None:
        rows = self._run("SELECT value FROM kv WHERE ns = 'audit' AND key = 'anchor'")
        return json.loads(rows[0][0]) if rows else None

    async def put_anchor(self, anchor: Body | None) -> None:
        self._run("DELETE FROM kv WHERE ns = 'audit' AND key = 'anchor'")
        if anchor is not None:
            self._run("INSERT INTO kv (ns, key, value) VALUES ('audit', 'anchor', ?)",
                      json.dumps(anchor))  # fmt: skip

    async def close(self) -> None:
        return None


# The Redis store leaves fields holding their default out of what it stores; an attacker
# reads those defaults in the (public) code, and hashes and seals the bodies with them.
_EVENT_DEFAULTS: Body = {"data": {}, "seq": 0, "prev_hash": "", "hash": "", "key_id": ""}
_HEAD_DEFAULTS: Body = {"key_id": "", "count": 0, "last_id": "", "last_hash": "",
                        "last_kind": "", "legacy": 0, "purged": 0, "purged_hash": ""}  # fmt: skip


def _loaded(raw: str) -> Any:
    """A stored value's JSON. The Redis store packs values (raw deflate against a dictionary
    in its public code, then base64, after a ``p``); an attacker unpacks them just so, and
    may write back plain JSON, which the store reads too."""
    if raw.startswith("p"):
        raw = zlib.decompressobj(-15, DICTIONARY).decompress(base64.b64decode(raw[1:])).decode()
    return json.loads(raw)


def _filled(body: Any, defaults: Body) -> Any:
    """``body`` with the defaults it was stored without, if it is an event or a head (it
    names its run); anything else (planted by a test) as it is."""
    return defaults | body if isinstance(body, dict) and "run_id" in body else body


@dataclass
class RedisRaw:
    """The Redis server, with plain commands under the store's key prefix."""

    redis: Redis
    prefix: str

    async def events(self, run_id: str) -> list[Body]:
        raws = await self.redis.lrange(f"{self.prefix}audit:{run_id}", 0, -1)
        return [_filled(_loaded(raw), _EVENT_DEFAULTS) for raw in raws]

    async def replace(self, run_id: str, bodies: list[Body]) -> None:
        key = f"{self.prefix}audit:{run_id}"
        await self.redis.delete(key)
        if bodies:
            await self.redis.rpush(key, *(json.dumps(body) for body in bodies))

    async def wipe(self, run_id: str) -> None:
        async for key in self.redis.scan_iter(match=f"{self.prefix}*"):
            kind = await self.redis.type(key)
            if run_id in key:
                await self.redis.delete(key)
            elif kind == "zset":
                await self.redis.zrem(key, run_id)
            elif kind == "set":
                await self.redis.srem(key, run_id)

    async def drop_run(self, run_id: str) -> None:
        await self.redis.delete(f"{self.prefix}run:{run_id}")
        async for key in self.redis.scan_iter(match=f"{self.prefix}runs*"):
            await self.redis.zrem(key, run_id)

    async def head(self, run_id: str) -> Body | None:
        raw = await self.redis.get(f"{self.prefix}audithead:{run_id}")
        return None if raw is None else _filled(_loaded(raw), _HEAD_DEFAULTS)

    async def put_head(self, run_id: str, head: Body | None) -> None:
        key = f"{self.prefix}audithead:{run_id}"
        if head is None:
            await self.redis.delete(key)
        else:
            await self.redis.set(key, json.dumps(head))

    async def anchor(self) -> Body | None:
        raw = await self.redis.get(f"{self.prefix}auditanchor")
        return None if raw is None else json.loads(raw)

    async def put_anchor(self, anchor: Body | None) -> None:
        key = f"{self.prefix}auditanchor"
        if anchor is None:
            await self.redis.delete(key)
        else:
            await self.redis.set(key, json.dumps(anchor))

    async def close(self) -> None:
        await self.redis.aclose()


def open_raw(store_url: str) -> Raw:
    """Raw access to the store ``store_url`` names (as the tests' fixtures build them)."""
    parts = urlsplit(store_url)
    if parts.scheme == "sqlite":
        return SqliteRaw(Path(parts.path[1:]))
    prefix = parse_qs(parts.query).get("prefix", ["airlock:"])[0]
    base = parts._replace(query="").geturl()
    return RedisRaw(Redis.from_url(base, decode_responses=True), prefix)
