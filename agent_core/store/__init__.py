"""Durable, shared state: the :class:`Store` protocol and its two backends."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from agent_core.clock import Clock
from agent_core.config import Settings
from agent_core.errors import ConfigError
from agent_core.store.base import Store, Subscription

__all__ = ["Store", "Subscription", "open_settings_store", "open_store", "shown_url"]


async def open_store(
    url: str,
    *,
    clock: Clock | None = None,
    poll_interval: float = 0.1,
    redis_max_connections: int = 64,
) -> Store:
    """Open the store that ``url`` names.

    ``sqlite:///relative/path.db`` or ``sqlite:////absolute/path.db`` for the
    embedded store; ``redis://host:port/db`` (``rediss://`` for TLS) for the
    shared one, with an optional ``?prefix=`` for its keys (default ``airlock:``).
    """
    parts = urlsplit(url)
    if parts.scheme == "sqlite":
        from agent_core.store.sqlite import SqliteStore

        path = parts.path[1:] if parts.path.startswith("/") else parts.path
        if not path:
            raise ConfigError([f"AIRLOCK_STORE_URL: no file path in {url!r}"])
        return await SqliteStore.open(Path(path), clock=clock, poll_interval=poll_interval)
    if parts.scheme in ("redis", "rediss"):
        from agent_core.store.redis import RedisStore

        prefix = parse_qs(parts.query).get("prefix", ["airlock:"])[0]
        base_url = parts._replace(query="").geturl()
        return await RedisStore.open(
            base_url, prefix=prefix, clock=clock, max_connections=redis_max_connections
        )
    raise ConfigError([f"AIRLOCK_STORE_URL: unsupported scheme {parts.scheme!r} in {url!r}"])


async def open_settings_store(settings: Settings) -> Store:
    """The store the settings name (``AIRLOCK_STORE_URL``, else SQLite in the data folder).

    A store that cannot be opened is a :class:`ConfigError` naming the setting to fix: a
    Redis that does not answer or refuses us, a SQLite file or folder that cannot be used.
    """
    from redis.exceptions import RedisError

    url = settings.effective_store_url
    setting = "AIRLOCK_STORE_URL" if settings.store_url else "AIRLOCK_DATA_DIR"
    try:
        return await open_store(
            url,
            poll_interval=settings.signal_poll_seconds,
            redis_max_connections=settings.redis_max_connections,
        )
    except (RedisError, OSError, sqlite3.Error) as error:
        what = "Redis" if urlsplit(url).scheme.startswith("redis") else "the SQLite store"
        reason = str(error) or type(error).__name__
        problem = f"{setting}: cannot use {what} at {shown_url(url)} ({reason})"
        raise ConfigError([problem]) from None


def shown_url(url: str) -> str:
    """``url`` fit to show: a password in it is replaced by ``***``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.netloc.rpartition("@")[2]
    return parts._replace(netloc=f"{user}:***@{host}").geturl()
