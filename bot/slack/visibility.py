"""Who may read what a run says: its goal stays with the people who could see it asked.

A goal said in a public channel is shown to whoever may see the run (its requester, admins);
a goal said in a direct message or a private conversation (or in one of unknown kind: a run
stored before its kind was kept) is the requester's alone, and everywhere else the run shows a
placeholder instead. Which it was is the run's ``channel_kind``, set by the front end from what
Slack said of the conversation, never guessed from the channel's id.
"""

from __future__ import annotations

from typing import assert_never

from agent_core import Approval, ChannelKind, Run
from bot.slack.fit import cut
from bot.slack.render import inert

__all__ = ["PRIVATE_GOAL", "asked_privately", "goal_seen_by", "private_request_notice"]

PRIVATE_GOAL = "_(goal asked in a private conversation)_"
"""What others see of a goal someone sent the bot in a direct message or private channel."""


def asked_privately(run: Run) -> bool:
    """Whether ``run`` was asked for where only some could read it (its ``channel_kind``)."""
    match run.channel_kind:
        case ChannelKind.DIRECT | ChannelKind.PRIVATE:
            return run.channel is not None
        case ChannelKind.PUBLIC | ChannelKind.TERMINAL:
            return False
        case _:
            assert_never(run.channel_kind)


def goal_seen_by(run: Run, viewer: str, *, limit: int) -> str:
    """``run``'s goal as ``viewer`` may read it: made inert and cut to ``limit`` characters,
    or :data:`PRIVATE_GOAL` when it was said privately and ``viewer`` did not ask for it."""
    if asked_privately(run) and viewer != run.requester:
        return PRIVATE_GOAL
    return cut(inert(run.goal), limit)


def private_request_notice(approval: Approval) -> str:
    """What a shared approval channel is told of a request asked privately: that it
    waits, and where its approvers see it, without what it asks."""
    return (
        f"Approval needed ({approval.risk.value}) in run `{approval.run_id}`, asked in a private"
        f" conversation: approvers see what it asks for, and decide, in airlock's App Home."
        f" (`{approval.id}`)"
    )
