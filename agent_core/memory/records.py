"""The persisted memory record and the scopes that fence memories in.

A scope names who may see a memory: a channel's members (``channel:C123``), one
person in their direct messages (``user:U123``), or the whole workspace
(``workspace``, written only by admins). Retrieval for a run searches its own scope
and the workspace, nothing else; see :func:`scope_of` and :func:`readable_scopes`.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import assert_never

from pydantic import BaseModel, ConfigDict, Field

from agent_core.clock import utcnow
from agent_core.models import ChannelKind, JsonValue, Run, new_id

__all__ = [
    "WORKSPACE",
    "Memory",
    "MemoryType",
    "dm_scope",
    "readable_scopes",
    "scope_of",
    "scope_of_place",
]

WORKSPACE = "workspace"
"""The scope every run may read; only admins write to it."""


class MemoryType(StrEnum):
    """What kind of thing a memory is."""

    EPISODIC = "episodic"
    """Something that happened: a run's outcome, an approval decision."""
    SEMANTIC = "semantic"
    """A fact about the world: "staging deploys go through deploy-web"."""
    PROCEDURAL = "procedural"
    """How to do something: "restart web before clearing the cache"."""


class Memory(BaseModel):
    """One long-term memory: its text and metadata; the vector lives in the scope's index."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(default_factory=lambda: new_id("mem"))
    scope: str = Field(min_length=1, max_length=200)
    content: str = Field(min_length=1, max_length=4000)
    memory_type: MemoryType = MemoryType.SEMANTIC
    importance: float = Field(default=0.5, ge=0.0, le=1.0)
    created_at: datetime = Field(default_factory=utcnow)
    created_by: str = Field(min_length=1)
    last_accessed: datetime | None = None
    access_count: int = Field(default=0, ge=0)
    expires_at: datetime | None = None
    source: str | None = None
    """The run or approval it came from, if any."""
    data: dict[str, JsonValue] = Field(default_factory=dict)
    """Structured detail, e.g. the tool, outcome and reason of an approval decision."""
    seq: int = Field(default=0, ge=0)
    """Set by the store when it is added: its id in the scope's vector index."""

    def expired(self, now: datetime) -> bool:
        """Whether the memory is past its expiry."""
        return self.expires_at is not None and self.expires_at <= now


def dm_scope(user: str) -> str:
    """The scope of what ``user`` says to airlock in a direct message (or a terminal)."""
    return f"user:{user}"


def scope_of_place(*, kind: ChannelKind, channel: str | None, user: str) -> str:
    """The scope of a conversation of ``kind`` in ``channel`` with ``user``.

    What is said in a direct message, or at the terminal, belongs to the person; what is
    said in a channel (or a conversation of unknown kind) to that conversation. The kind is
    what the front end was told, never read from the channel's id.
    """
    match kind:
        case ChannelKind.DIRECT | ChannelKind.TERMINAL:
            return dm_scope(user)
        case ChannelKind.PRIVATE | ChannelKind.PUBLIC:
            return dm_scope(user) if channel is None else f"channel:{channel}"
        case _:
            assert_never(kind)


def scope_of(run: Run) -> str:
    """The scope ``run`` learns into."""
    return scope_of_place(kind=run.channel_kind, channel=run.channel, user=run.requester)


def readable_scopes(scope: str) -> list[str]:
    """The scopes a conversation in ``scope`` may read: its own and the workspace's."""
    return [scope] if scope == WORKSPACE else [scope, WORKSPACE]
