"""Block Kit messages: approval requests with buttons, and what they become once settled."""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ConfirmObject,
    ContextBlock,
    HeaderBlock,
    InputBlock,
    MarkdownTextObject,
    PlainTextInputElement,
    SectionBlock,
)
from slack_sdk.models.views import View

from agent_core.logs import redact
from agent_core.memory.notes import describe_age
from agent_core.models import (
    Approval,
    ApprovalStatus,
    DecisionKind,
    PlanSubject,
    RiskLevel,
    ToolCallSubject,
)

__all__ = [
    "APPROVE",
    "APPROVE_FOR_RUN",
    "EDIT",
    "EDIT_VIEW",
    "FIELD",
    "REJECT",
    "REJECT_VIEW",
    "REJECT_WITH_REASON",
    "RISK_BADGE",
    "approval_blocks",
    "approval_text",
    "edit_modal",
    "mention",
    "reject_modal",
    "safe",
    "settled_blocks",
]

APPROVE = "airlock_approve"
"""action_id of the Approve button; its value is the approval id."""
REJECT = "airlock_reject"
"""action_id of the Reject button (after a confirm dialog); its value is the approval id."""
REJECT_WITH_REASON = "airlock_reject_reason"
"""action_id of "Reject with reason…", which opens a modal; its value is the approval id."""
EDIT = "airlock_edit"
"""action_id of the Edit button (tool calls only); its value is the approval id."""
APPROVE_FOR_RUN = "airlock_approve_for_run"
"""action_id of "Approve for this run" (grantable tool calls below CRITICAL); value: the id."""
REJECT_VIEW = "airlock_reject_view"
"""callback_id of the reject-with-reason modal."""
EDIT_VIEW = "airlock_edit_view"
"""callback_id of the edit-arguments modal."""
FIELD = "field"
"""block_id and action_id of the one input of either modal."""

RISK_BADGE = {
    RiskLevel.LOW: ":large_green_circle: low",
    RiskLevel.MEDIUM: ":large_yellow_circle: medium",
    RiskLevel.HIGH: ":large_orange_circle: HIGH",
    RiskLevel.CRITICAL: ":red_circle: CRITICAL",
}
_MAX_CODE = 2800  # a section's text holds 3,000 characters
_MAX_WAS = 600  # the arguments an edit replaced, on a settled request


def approval_text(approval: Approval) -> str:
    """The plain-text line shown in notifications and by clients without blocks."""
    return f"Approval needed ({approval.risk.value}): {_what(approval)}"


def approval_blocks(approval: Approval) -> list[Block]:
    """The request: what would run, its risk, and Approve / Reject… / Edit… buttons."""
    return [
        HeaderBlock(text=f"Approval needed: {approval.risk.value} risk"),
        *_body(approval),
        ActionsBlock(
            block_id=f"airlock:{approval.id}",
            elements=_buttons(approval),
        ),
        ContextBlock(elements=[MarkdownTextObject(text=_context(approval))]),
    ]


def _buttons(approval: Approval) -> list[ButtonElement]:
    confirm = ConfirmObject(title="Reject?", text="The agent is told it may not do this.",
                            confirm="Reject", deny="Back", style="danger")  # fmt: skip
    buttons = [
        ButtonElement(text="Approve", action_id=APPROVE, value=approval.id, style="primary"),
        ButtonElement(
            text="Reject", action_id=REJECT, value=approval.id, style="danger", confirm=confirm
        ),
        ButtonElement(text="Reject with reason…", action_id=REJECT_WITH_REASON, value=approval.id),
    ]
    if isinstance(approval.subject, ToolCallSubject):
        buttons.append(ButtonElement(text="Edit…", action_id=EDIT, value=approval.id))
        if approval.grantable and approval.risk is not RiskLevel.CRITICAL:
            buttons.append(ButtonElement(text=f"Approve {approval.subject.tool} for this run",
                                         action_id=APPROVE_FOR_RUN, value=approval.id))  # fmt: skip
    return buttons


def reject_modal(metadata: str) -> View:
    """Asks for the (optional) reason of a rejection; the agent reads it."""
    return View(
        type="modal", callback_id=REJECT_VIEW, title="Reject", submit="Reject", close="Cancel",
        private_metadata=metadata,
        blocks=[InputBlock(block_id=FIELD, label="Why? The agent reads this.", optional=True,
                           element=PlainTextInputElement(action_id=FIELD, multiline=True))],
    )  # fmt: skip


def edit_modal(approval: Approval, metadata: str) -> View:
    """Lets an approver change the call's arguments (JSON) and approve the edited call."""
    arguments = approval.subject.arguments if isinstance(approval.subject, ToolCallSubject) else {}
    element = PlainTextInputElement(action_id=FIELD, multiline=True,
                                    initial_value=_code(arguments))  # fmt: skip
    return View(
        type="modal", callback_id=EDIT_VIEW, title="Edit and approve", submit="Approve",
        close="Cancel", private_metadata=metadata,
        blocks=[InputBlock(block_id=FIELD, label="Arguments (JSON)", element=element)],
    )  # fmt: skip


def settled_blocks(approval: Approval) -> list[Block]:
    """The same request once decided, expired or cancelled: no buttons left to press."""
    return [
        HeaderBlock(text=f"{_outcome(approval.status)}: {approval.risk.value} risk"),
        *_body(approval),
        ContextBlock(elements=[MarkdownTextObject(text=_settled(approval))]),
    ]


def _body(approval: Approval) -> list[Block]:
    subject = approval.subject
    if isinstance(subject, PlanSubject):
        steps = "\n".join(
            f"• `{s.id}` {s.description} ({RISK_BADGE[s.risk_level]})"
            for s in subject.plan.subtasks
        )
        return [
            SectionBlock(text=MarkdownTextObject(text=f"*The plan, before anything runs*\n{steps}"))
        ]
    blocks: list[Block] = [
        SectionBlock(text=MarkdownTextObject(
            text=f"*{subject.tool}* {RISK_BADGE[approval.risk]}\n```{_code(subject.arguments)}```"
        ))
    ]  # fmt: skip
    if subject.preview:
        blocks.append(SectionBlock(text=MarkdownTextObject(
            text=f"*What it would do*\n```{safe(subject.preview)[:_MAX_CODE]}```")))  # fmt: skip
    if subject.possibly_partial:
        warning = f":warning: {subject.partial_note}"
        blocks.append(SectionBlock(text=MarkdownTextObject(text=warning)))
    if approval.precedents:
        blocks.append(SectionBlock(text=MarkdownTextObject(text=_precedents(approval))))
    return blocks


def _precedents(approval: Approval) -> str:
    lines = ["*Similar decisions here before*"]
    for p in approval.precedents:
        who = mention(p.by) if p.by else "nobody"
        line = f"• {p.outcome} by {who} {describe_age(p.at, approval.requested_at)}"
        if p.reason:
            line += f": _{safe(p.reason)[:300]}_"
        lines.append(f"{line} `{safe(p.call)[:200]}`")
    return "\n".join(lines)[:_MAX_CODE]


def _code(arguments: dict[str, Any]) -> str:
    return safe(json.dumps(arguments, indent=2, ensure_ascii=False))[:_MAX_CODE]


def _what(approval: Approval) -> str:
    subject = approval.subject
    if isinstance(subject, ToolCallSubject):
        return f"{subject.tool} {safe(json.dumps(subject.arguments, ensure_ascii=False))[:200]}"
    return f"a plan of {len(subject.plan.subtasks)} steps"


def _context(approval: Approval) -> str:
    parts = [f"`{approval.id}`", f"run `{approval.run_id}`"]
    if approval.requester:
        parts.append(f"asked by {mention(approval.requester)}")
    who = ", ".join(mention(i) for i in approval.approvers) if approval.approvers else "approvers"
    if approval.required_approvals > 1:
        parts.append(f"needs {approval.required_approvals} of: {who}, or an admin")
    else:
        parts.append(f"for: {who} or an admin")
    if approval.deadline is not None:
        parts.append(f"decide by {_when(approval.deadline)}")
    parts.append(f"or type `approve {approval.id}` / `reject {approval.id} <reason>`")
    return " · ".join(parts)


def _when(moment: datetime) -> str:
    """A time each reader sees in their own time zone (Slack's date formatting)."""
    fallback = moment.strftime("%Y-%m-%d %H:%M UTC")
    return f"<!date^{int(moment.timestamp())}^{{date_short_pretty}} {{time}}|{fallback}>"


def _outcome(status: ApprovalStatus) -> str:
    return {
        ApprovalStatus.APPROVED: "Approved",
        ApprovalStatus.REJECTED: "Rejected",
        ApprovalStatus.EXPIRED: "Expired",
        ApprovalStatus.CANCELLED: "Cancelled",
        ApprovalStatus.SUPERSEDED: "Superseded",
        ApprovalStatus.PENDING: "Waiting",
    }[status]


def safe(text: str) -> str:
    """Model or tool text made harmless for Slack: no secrets, no pings, no links.

    Slack treats ``<...>`` as mentions (``<!channel>``, ``<@U123>``) and links, so the three
    control characters are escaped as Slack's own docs prescribe.
    """
    escaped = redact(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return escaped


def mention(identity: str) -> str:
    """How to name ``identity`` in a message: a user or user-group mention, else as is."""
    if re.match(r"^S[A-Z0-9]+$", identity):
        return f"<!subteam^{identity}>"
    if re.match(r"^[UW][A-Z0-9]+$", identity):
        return f"<@{identity}>"
    return f"`{identity}`"


def _settled(approval: Approval) -> str:
    who = mention(approval.decided_by or "airlock")
    last = approval.decisions[-1] if approval.decisions else None
    reason = f": {safe(last.reason)}" if last is not None and last.reason else ""
    when = f" {_when(approval.decided_at)}" if approval.decided_at else ""
    settled = f"`{approval.id}` {_outcome(approval.status).lower()} by {who}{when}{reason}"
    return settled + _edited(approval)


def _edited(approval: Approval) -> str:
    """Who edited the call and what it was before; for a superseded request, what became of it."""
    subject = approval.subject
    edit = next((d for d in reversed(approval.decisions) if d.kind is DecisionKind.EDIT), None)
    if edit is None or not isinstance(subject, ToolCallSubject):
        return ""
    note = f" · edited by {mention(edit.by)}"
    was = subject.original_arguments
    if was is not None and was != subject.arguments:
        shown = safe(json.dumps(was, ensure_ascii=False))
        if len(shown) > _MAX_WAS:
            shown = f"{shown[:_MAX_WAS]}… [cut: {len(shown) - _MAX_WAS} more characters]"
        note += f" (was: `{shown}`)"
    if approval.status is ApprovalStatus.SUPERSEDED:
        risk = (edit.edited_risk or RiskLevel.CRITICAL).value
        note += f"; the edited call is {risk} risk and is asked again as a new request"
    return note
