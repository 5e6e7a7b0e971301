"""`/agent remember`, `/agent forget` and `/agent memories`: people curating what airlock remembers.

Each works in the scope of the place it is typed in: a channel's memories in that
channel, a person's in their direct messages. Only admins write workspace-wide
memories, or forget a memory from somewhere else. Replies are ephemeral, so a search
shows nobody else what the scope holds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from agent_core import (
    GLOBAL,
    WORKSPACE,
    Audit,
    Authority,
    ChannelKind,
    NotFound,
    Store,
    audit_events,
    describe_age,
    readable_scopes,
    scope_of_place,
)
from bot.slack.blocks import safe
from bot.slack.fit import cut

if TYPE_CHECKING:  # importing it loads FAISS; serve without memory need not
    from agent_core import LongTermMemory

__all__ = ["MEMORY_VERBS", "MemoryCommands"]

MEMORY_VERBS = frozenset({"remember", "forget", "memories"})
"""First words of `/agent` text that curate memory."""

_WORKSPACE_FLAG = "--workspace"


@dataclass(kw_only=True)
class MemoryCommands:
    """Answers the memory subcommands of `/agent`."""

    store: Store
    memory: LongTermMemory | None
    """None when memory is turned off."""
    authority: Authority
    audit: Audit

    async def answer(self, user: str, channel: str, text: str, *, kind: ChannelKind) -> str:
        """The reply to ``text`` (starting with one of :data:`MEMORY_VERBS`) from ``user``, in
        ``channel`` of ``kind``."""
        verb, _, rest = text.strip().partition(" ")
        rest = rest.strip()
        if self.memory is None:
            return "Memory is turned off here (AIRLOCK_MEMORY_ENABLED=false)."
        scope = scope_of_place(kind=kind, channel=channel, user=user)
        verb = verb.lower()
        if verb == "remember":
            return await self._remember(self.memory, user, scope, rest)
        if verb == "forget":
            return await self._forget(self.memory, user, scope, rest)
        return await self._search(self.memory, scope, rest)

    async def _remember(self, memory: LongTermMemory, user: str, scope: str, text: str) -> str:
        if text.startswith(_WORKSPACE_FLAG):
            if not await self.authority.is_admin(user):
                return "Not allowed: only admins add workspace-wide memories."
            scope, text = WORKSPACE, text.removeprefix(_WORKSPACE_FLAG).strip()
        if not text:
            return "Usage: `/agent remember [--workspace] <fact or procedure>`"
        if len(text) > 1000:
            return f"Too long to remember ({len(text)} characters; at most 1000)."
        kept = await memory.remember(scope=scope, content=text, created_by=user, importance=0.7)
        added = audit_events.MemoryAdded(memory_id=kept.memory.id, scope=scope, merged=kept.merged)
        await self.audit.record(GLOBAL, added, actor=user)
        if kept.replaced is not None:
            return (
                f"Updated what I knew: `{kept.replaced.id}` "
                f"({cut(safe(kept.replaced.content), 200)}) is now `{kept.memory.id}`."
            )
        where = "workspace-wide" if scope == WORKSPACE else "here"
        return f"Remembered {where} as `{kept.memory.id}`."

    async def _forget(self, memory: LongTermMemory, user: str, scope: str, memory_id: str) -> str:
        if not memory_id or " " in memory_id:
            return "Usage: `/agent forget <memory id>` (ids are shown by `/agent memories`)"
        try:
            found = await self.store.get_memory(memory_id)
        except NotFound:
            return f"There is no memory `{safe(memory_id)}`."
        if found.scope != scope and not await self.authority.is_admin(user):
            return (
                "Not allowed: that memory belongs somewhere else; forget it there or ask an admin."
            )
        await memory.forget(memory_id)
        forgotten = audit_events.MemoryForgotten(memory_id=memory_id, scope=found.scope)
        await self.audit.record(GLOBAL, forgotten, actor=user)
        return f"Forgot `{safe(memory_id)}`: {cut(safe(found.content), 200)}"

    async def _search(self, memory: LongTermMemory, scope: str, query: str) -> str:
        if not query:
            return "Usage: `/agent memories <what to look for>`"
        found = await memory.recall(scopes=readable_scopes(scope), query=query, k=8)
        if not found:
            return "Nothing remembered here matches that."
        now = memory.clock.now()
        return "\n".join(
            f"• `{hit.memory.id}` {hit.memory.memory_type.value}, "
            f"{describe_age(hit.memory.created_at, now)}"
            f"{' (workspace)' if hit.memory.scope == WORKSPACE else ''}: "
            f"{cut(safe(hit.memory.content), 300)}"
            for hit in found
        )
