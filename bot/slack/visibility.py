"""Who may read what a run says: its goal stays with the people who could see it asked.

A goal said in a channel is shown to whoever may see the run (its requester, admins); a
goal said in a direct message is the requester's alone, and everywhere else the run shows
a placeholder instead.
"""

from __future__ import annotations

from agent_core import Approval, Run
from bot.slack.fit import cut
from bot.slack.render import inert

__all__ = ["PRIVATE_GOAL", "goal_seen_by", "in_direct_message", "private_request_notice"]

PRIVATE_GOAL = "_(goal asked in a direct message)_"
"""What others see of a goal someone sent the bot in a direct message."""


def in_direct_message(run: Run) -> bool:
    """Whether ``run`` was asked for in a direct message (Slack's DM channel ids start with D)."""
    return run.channel is not None and run.channel.startswith("D")


def goal_seen_by(run: Run, viewer: str, *, limit: int) -> str:
    """``run``'s goal as ``viewer`` may read it: made inert and cut to ``limit`` characters,
    or :data:`PRIVATE_GOAL` when it was said in someone else's direct message."""
    if in_direct_message(run) and viewer != run.requester:
        return PRIVATE_GOAL
    return cut(inert(run.goal), limit)


def private_request_notice(approval: Approval) -> str:
    """What a shared approval channel is told of a request from a direct message: that it
    waits, and where its approvers see it, without what it asks."""
    return (
        f"Approval needed ({approval.risk.value}) in run `{approval.run_id}`, asked in a direct"
        f" message: approvers see what it asks for, and decide, in airlock's App Home."
        f" (`{approval.id}`)"
    )
