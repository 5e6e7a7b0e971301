"""``ask_human``: a question to the person who started the run."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from agent_core.models import RiskLevel
from agent_core.tools.base import Tool, ToolContext
from agent_core.tools.decorator import tool

__all__ = ["ask_human_tool"]


def ask_human_tool(*, timeout_seconds: float | None = None) -> Tool:
    """The ``ask_human`` tool; ``timeout_seconds`` is how long a person may take to answer."""

    @tool(risk=RiskLevel.LOW, timeout_seconds=timeout_seconds, grantable=True)
    async def ask_human(
        question: Annotated[str, Field(min_length=1)], *, context: ToolContext
    ) -> str:
        """Ask the person who started the run a question and return their answer.

        Use it when the goal is ambiguous or a choice is theirs to make, not to ask for approval.

        Args:
            question: The question, self-contained: they may not see the rest of the run.
        """
        return await context.channel.ask(context.run, question)

    return ask_human
