"""What to tell a person about the decision they just made, wherever they made it."""

from __future__ import annotations

from agent_core import (
    AlreadyDecided,
    ApprovalStatus,
    Concluded,
    Counted,
    DecisionOutcome,
    Duplicate,
    Refused,
)
from bot.slack.fit import cut
from bot.slack.render import inert, mention, plural

__all__ = ["decision_reply"]


def decision_reply(outcome: DecisionOutcome | Refused) -> str | None:
    """A short reply, or None when the request message's own update says it all.

    A refusal's reason may quote what was submitted (an edited value), so it is shown inert.
    """
    if isinstance(outcome, Refused):
        return f"Not accepted: {cut(inert(outcome.reason), 2000)}."
    if isinstance(outcome, AlreadyDecided):
        who = mention(outcome.approval.decided_by or "airlock")
        return f"Already {outcome.approval.status.value} by {who}."
    if isinstance(outcome, Counted):
        return f"Counted. {plural(outcome.approvals_needed, 'more approval')} needed."
    if isinstance(outcome, Duplicate):
        return "You have approved this already."
    if isinstance(outcome, Concluded) and outcome.approval.status is ApprovalStatus.SUPERSEDED:
        return (
            "Your edit makes the call riskier, so it approves nothing yet: the edited call is"
            " asked again as a new request, where your approval counts as one."
        )
    return None
