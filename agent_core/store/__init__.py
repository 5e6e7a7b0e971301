"""Durable, shared state: the :class:`Store` protocol and its two backends."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path
from typing import Literal
from urllib.parse import parse_qs, urlsplit

from agent_core.audit.chain import UNKEYED, AuditKey, trusted
from agent_core.clock import Clock
from agent_core.config import Settings
from agent_core.errors import AuditTampered, ConfigError
from agent_core.store.base import (
    ApprovalRecords,
    AuditRecords,
    Leases,
    MemoryRecords,
    MessageLocations,
    RunRecords,
    SharedValues,
    Signals,
    Store,
    Subscription,
    ToolCallJournal,
)
from agent_core.store.steps import ApprovalUse, Fact, Step, Steps

__all__ = [
    "ApprovalRecords",
    "ApprovalUse",
    "AuditRecords",
    "Fact",
    "Leases",
    "MemoryRecords",
    "MessageLocations",
    "RunRecords",
    "SharedValues",
    "Signals",
    "Step",
    "Steps",
    "Store",
    "Subscription",
    "ToolCallJournal",
    "open_settings_store",
    "open_store",
    "shown_url",
    "sqlite_path",
]

logger = logging.getLogger(__name__)


async def open_store(
    url: str,
    *,
    clock: Clock | None = None,
    poll_interval: float = 0.1,
    redis_max_connections: int = 64,
    audit_key: AuditKey | str | None = None,
) -> Store:
    """Open the store that ``url`` names.

    ``sqlite:///relative/path.db`` or ``sqlite:////absolute/path.db`` for the
    embedded store; ``redis://host:port/db`` (``rediss://`` for TLS) for the
    shared one, with an optional ``?prefix=`` for its keys (default ``airlock:``).
    ``audit_key`` (an :class:`AuditKey`, or the text of ``AIRLOCK_AUDIT_KEY``) seals
    the audit trail; without one the store seals it unkeyed, which proves nothing
    against someone who can write the store (tests and throwaway stores).
    """
    key = AuditKey.from_text(audit_key) if isinstance(audit_key, str) else audit_key or UNKEYED
    parts = urlsplit(url)
    if parts.scheme == "sqlite":
        from agent_core.store.sqlite import SqliteStore

        path = sqlite_path(url)
        if path is None:
            raise ConfigError([f"AIRLOCK_STORE_URL: no file path in {url!r}"])
        return await SqliteStore.open(path, clock=clock, poll_interval=poll_interval, audit_key=key)
    if parts.scheme in ("redis", "rediss"):
        from agent_core.store.redis import RedisStore

        prefix = parse_qs(parts.query).get("prefix", ["airlock:"])[0]
        base_url = parts._replace(query="").geturl()
        return await RedisStore.open(
            base_url, prefix=prefix, clock=clock, max_connections=redis_max_connections,
            audit_key=key,
        )  # fmt: skip
    raise ConfigError([f"AIRLOCK_STORE_URL: unsupported scheme {parts.scheme!r} in {url!r}"])


def sqlite_path(url: str) -> Path | None:
    """The file a ``sqlite://`` URL names; None for any other store, or no path."""
    parts = urlsplit(url)
    if parts.scheme != "sqlite":
        return None
    path = parts.path[1:] if parts.path.startswith("/") else parts.path
    return Path(path) if path else None


async def open_settings_store(
    settings: Settings, *, audit: Literal["write", "read"] = "write"
) -> Store:
    """The store the settings name (``AIRLOCK_STORE_URL``, else SQLite in the data folder).

    A store that cannot be opened is a :class:`ConfigError` naming the setting to fix: a
    Redis that does not answer or refuses us, a SQLite file or folder that cannot be used.

    Its audit trail is sealed with ``AIRLOCK_AUDIT_KEY``. A command that may write the
    trail opens it for ``"write"``, which checks the key against the trail's anchor, so
    that a process with another key, or none while the trail is sealed, fails at start
    (:class:`ConfigError`) instead of in the middle of what it does. Without a key, an
    unsealed store is written unkeyed (``serve`` and ``worker`` require the key).
    ``"read"`` (showing and verifying the trail) checks nothing.
    """
    from redis.exceptions import RedisError

    url = settings.effective_store_url
    setting = "AIRLOCK_STORE_URL" if settings.store_url else "AIRLOCK_DATA_DIR"
    key = settings.audit_chain_key
    try:
        store = await open_store(
            url,
            poll_interval=settings.signal_poll_seconds,
            redis_max_connections=settings.redis_max_connections,
            audit_key=key,
        )
        if audit == "write":
            await _checked_anchor(store, key or UNKEYED)
    except (RedisError, OSError, sqlite3.Error) as error:
        what = "Redis" if urlsplit(url).scheme.startswith("redis") else "the SQLite store"
        reason = str(error) or type(error).__name__
        problem = f"{setting}: cannot use {what} at {shown_url(url)} ({reason})"
        raise ConfigError([problem]) from None
    return store


async def _checked_anchor(store: Store, key: AuditKey) -> None:
    """:func:`_check_anchor`, closing ``store`` when the key does not fit it."""
    try:
        await _check_anchor(store, key)
    except BaseException:
        await store.close()
        raise


def shown_url(url: str) -> str:
    """``url`` fit to show: a password in it is replaced by ``***``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.netloc.rpartition("@")[2]
    return parts._replace(netloc=f"{user}:***@{host}").geturl()


async def _check_anchor(store: Store, key: AuditKey) -> None:
    anchor = await store.audit_anchor()
    if anchor is None or (not key.keyed and not anchor.key_id):
        if not key.keyed:
            logger.warning(
                "AIRLOCK_AUDIT_KEY is not set: the audit trail is written unkeyed,"
                " which proves nothing against someone who can write the store"
            )
        return
    try:
        trusted(anchor, key, trail="the anchor")
    except AuditTampered:
        raise ConfigError(["AIRLOCK_AUDIT_KEY: the audit anchor does not match its seal under"
                           " this key: it was written without the key"
                           " (`airlock audit verify` shows what else was)"]) from None  # fmt: skip
