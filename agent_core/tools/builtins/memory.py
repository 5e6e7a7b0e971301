"""``remember`` and ``recall``: the agent's own use of long-term memory, in its run's scope."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from agent_core.memory.longterm import LongTermMemory
from agent_core.memory.notes import describe_age
from agent_core.memory.records import MemoryType, readable_scopes, scope_of
from agent_core.models import RiskLevel
from agent_core.tools.base import Tool, ToolContext
from agent_core.tools.decorator import tool

__all__ = ["memory_tools"]


def memory_tools(memory: LongTermMemory) -> list[Tool]:
    """The two memory tools, bound to ``memory``; scope always comes from the run."""

    # MEDIUM: what is remembered shapes later runs in this channel, so people see it.
    @tool(risk=RiskLevel.MEDIUM, grantable=True)
    async def remember(
        content: Annotated[str, Field(min_length=1, max_length=1000)],
        kind: Literal["semantic", "procedural"] = "semantic",
        importance: Annotated[float, Field(ge=0, le=1)] = 0.5,
        *,
        context: ToolContext,
    ) -> str:
        """Remember something for future goals in this conversation's channel.

        Use it for durable facts about the systems or how to do something, not for
        passing results between steps.

        Args:
            content: The fact or procedure, self-contained.
            kind: semantic for a fact, procedural for how to do something.
            importance: 0 to 1; how much it should weigh when recalled.
        """
        run = context.run
        kept = await memory.remember(
            scope=scope_of(run), content=content, created_by=run.requester,
            memory_type=MemoryType(kind), importance=importance, source=run.id,
        )  # fmt: skip
        old = kept.replaced
        if old is not None:
            return f"remembered as {kept.memory.id}, replacing {old.id}: {old.content}"
        return f"remembered as {kept.memory.id}"

    @tool(risk=RiskLevel.LOW, idempotent=True, grantable=True, reads_private_data=True)
    async def recall(
        query: Annotated[str, Field(min_length=1, max_length=500)],
        limit: Annotated[int, Field(ge=1, le=20)] = 5,
        *,
        context: ToolContext,
    ) -> str:
        """Search what was remembered in this conversation's channel (and workspace-wide).

        Args:
            query: What you want to know, in plain words.
            limit: How many memories to return at most.
        """
        found = await memory.recall(
            scopes=readable_scopes(scope_of(context.run)), query=query, k=limit
        )
        if not found:
            return "nothing relevant remembered"
        now = memory.clock.now()
        return "\n".join(
            f"- [{hit.memory.id}, {describe_age(hit.memory.created_at, now)},"
            f" similarity {hit.similarity:.2f}] {hit.memory.content}"
            for hit in found
        )

    return [remember, recall]
