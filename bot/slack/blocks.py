"""Block Kit messages: approval requests with buttons, what they become once settled, and
their modals.

A card shows the whole call, or says exactly what it cut and offers the whole of it one
click away ("View full call", :mod:`bot.slack.full_call`). Every text a model, a tool or a
person wrote goes through :mod:`bot.slack.render`; every string and list is fitted by
:mod:`bot.slack.fit`, so no card is too large for Slack.
"""

from __future__ import annotations

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
    PlainTextObject,
    SectionBlock,
)
from slack_sdk.models.views import View

from agent_core import (
    Approval,
    ApprovalStatus,
    DecisionKind,
    Plan,
    PlanSubject,
    RiskLevel,
    ToolCallSubject,
    describe_age,
)
from bot.slack.card_context import CardContext, context_text
from bot.slack.editing import editable
from bot.slack.fit import (
    BUTTON_TEXT,
    CONFIRM_TEXT,
    CONTEXT_TEXT,
    INPUT_VALUE,
    SECTION_TEXT,
    cut,
    cut_middle,
    marker,
    pack,
    shorten,
    size,
    split,
)
from bot.slack.render import BACKTICK, code_block, inert, inert_code, json_text, mention, plural

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
    "VIEW_FULL",
    "approval_blocks",
    "approval_text",
    "edit_modal",
    "fallback_blocks",
    "mention",
    "mrkdwn",
    "plan_lines",
    "reject_modal",
    "safe",
    "settled_blocks",
    "settled_fallback_blocks",
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
VIEW_FULL = "airlock_view_full"
"""action_id of "View full call" / "View the whole plan"; its value is the approval id."""
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
# What one card may spend on each part; together well under fit.CARD_TEXT.
_CALL_HEAD, _CALL_TAIL = 2600, 1200
_PREVIEW_HEAD, _PREVIEW_TAIL = 1600, 700
_PLAN_TEXT = 7000
_STEP_TEXT = 600
_PRECEDENTS_TEXT = 1200
_NAMED_APPROVERS = 20
_MAX_WAS = 600  # the arguments an edit replaced, on a settled request

safe = inert
"""Model or tool text made harmless for Slack (kept for callers of the old name)."""


def mrkdwn(text: str) -> MarkdownTextObject:
    """A mrkdwn text object that Slack does not auto-link or auto-mention (``verbatim``)."""
    return MarkdownTextObject(text=text, verbatim=True)


def section(text: str, **extra: Any) -> SectionBlock:
    """A section of mrkdwn ``text`` (fitted to the section limit)."""
    return SectionBlock(text=mrkdwn(cut(text, SECTION_TEXT)), **extra)


def approval_text(approval: Approval) -> str:
    """The plain-text line shown in notifications and by clients without blocks; it follows
    the request's state ("Approval needed", then "Approved by <@U…>", "Expired", ...)."""
    risk, what = approval.risk.value, _what(approval)
    if approval.status is ApprovalStatus.PENDING:
        return f"Approval needed ({risk}): {what}"
    decider = approval.decided_by
    by = f" by {mention(decider)}" if decider and decider != "airlock" else ""  # not a timer
    return f"{_outcome(approval.status)}{by} ({risk}): {what}"


def approval_blocks(approval: Approval, context: CardContext | None = None) -> list[Block]:
    """The request: what it is for (``context``), what would run, its risk, and Approve /
    Reject… / Edit… buttons."""
    return [
        HeaderBlock(text=f"Approval needed: {approval.risk.value} risk"),
        *_why(context),
        *_body(approval),
        ActionsBlock(block_id=f"airlock:{approval.id}"[:255], elements=_buttons(approval)),
        ContextBlock(elements=[mrkdwn(cut(_context(approval), CONTEXT_TEXT))]),
    ]


def _why(context: CardContext | None) -> list[Block]:
    return [] if context is None else [section(context_text(context))]


def fallback_blocks(approval: Approval, error: str) -> list[Block]:
    """A plain request for when Slack refused the full card: the buttons, and the whole call
    one click away."""
    what = "plan" if isinstance(approval.subject, PlanSubject) else "call"
    text = (f"*Approval needed ({approval.risk.value})*: {_what(approval)}\n_Slack would not "
            f"show the whole request here (`{cut(inert_code(error), 80)}`); the whole {what} is "
            "one click away._")  # fmt: skip
    return [
        section(text, accessory=_view_button(approval, what)),
        ActionsBlock(block_id=f"airlock:{approval.id}"[:255], elements=_buttons(approval)),
        ContextBlock(elements=[mrkdwn(cut(_typed(approval), CONTEXT_TEXT))]),
    ]


def _buttons(approval: Approval) -> list[ButtonElement]:
    confirm = ConfirmObject(title="Reject?", text="The agent is told it may not do this.",
                            confirm="Reject", deny="Back", style="danger")  # fmt: skip
    approve = ButtonElement(text="Approve", action_id=APPROVE, value=approval.id,
                            style="primary", confirm=_critical_confirm(approval))  # fmt: skip
    buttons = [
        approve,
        ButtonElement(
            text="Reject", action_id=REJECT, value=approval.id, style="danger", confirm=confirm
        ),
        ButtonElement(text="Reject with reason…", action_id=REJECT_WITH_REASON, value=approval.id),
    ]
    if isinstance(approval.subject, ToolCallSubject):
        buttons.append(ButtonElement(text="Edit…", action_id=EDIT, value=approval.id))
        if approval.grantable and approval.risk is not RiskLevel.CRITICAL:
            buttons.append(ButtonElement(text=_for_run_label(approval.subject.tool),
                                         action_id=APPROVE_FOR_RUN, value=approval.id,
                                         confirm=_for_run_confirm(approval)))  # fmt: skip
    return buttons


def _for_run_label(tool: str) -> str:
    """``Approve <tool> for this run``, the tool's name cut to fit the button."""
    room = BUTTON_TEXT - len("Approve  for this run")
    return f"Approve {shorten(inert(tool), room)} for this run"


def _for_run_confirm(approval: Approval) -> ConfirmObject:
    tool = approval.subject.tool if isinstance(approval.subject, ToolCallSubject) else ""
    text = (f"Later calls of {inert(tool)} in this run will run without asking anyone, up to "
            f"{approval.risk.value} risk.")  # fmt: skip
    return ConfirmObject(title="Approve for this run?", text=mrkdwn(cut(text, CONFIRM_TEXT)),
                         confirm="Approve for this run", deny="Back")  # fmt: skip


def _critical_confirm(approval: Approval) -> ConfirmObject | None:
    if approval.risk is not RiskLevel.CRITICAL:
        return None
    subject = approval.subject
    what = f"this call of {inert(subject.tool)}" if isinstance(subject, ToolCallSubject) else (
        "this plan")  # fmt: skip
    text = f"CRITICAL: {what} may destroy data or cannot be undone. Approve it?"
    return ConfirmObject(title="Approve a CRITICAL action?", text=mrkdwn(cut(text, CONFIRM_TEXT)),
                         confirm="Approve", deny="Back", style="danger")  # fmt: skip


def reject_modal(metadata: str) -> View:
    """Asks for the (optional) reason of a rejection; the agent reads it."""
    return View(
        type="modal", callback_id=REJECT_VIEW, title="Reject", submit="Reject", close="Cancel",
        private_metadata=metadata,
        blocks=[InputBlock(block_id=FIELD, label="Why? The agent reads this.", optional=True,
                           element=PlainTextInputElement(action_id=FIELD, multiline=True))],
    )  # fmt: skip


def edit_modal(approval: Approval, metadata: str) -> View:
    """Lets an approver change the call's arguments and approve the edited call.

    The box holds exactly the call's arguments as JSON (secrets masked; a masked value left as
    it is keeps its value), so submitting it unchanged approves the identical call. A call too
    large for the box (3,000 characters) gets a modal that says so instead.
    """
    arguments = approval.subject.arguments if isinstance(approval.subject, ToolCallSubject) else {}
    text = editable(arguments)
    if size(text) > INPUT_VALUE:
        return _too_large_modal(size(text))
    hint = ("Secrets are shown masked: leave a masked value as it is to keep it. Invisible "
            "characters are shown as \\u escapes.")  # fmt: skip
    element = PlainTextInputElement(action_id=FIELD, multiline=True, initial_value=text)
    return View(
        type="modal", callback_id=EDIT_VIEW, title="Edit and approve", submit="Approve",
        close="Cancel", private_metadata=metadata,
        blocks=[InputBlock(block_id=FIELD, label="Arguments (JSON)", element=element,
                           hint=PlainTextObject(text=hint))],
    )  # fmt: skip


def _too_large_modal(length: int) -> View:
    text = (f"This call is {length:,} characters as JSON, too large to edit here: Slack's edit "
            f"box holds {INPUT_VALUE:,}. Approve it as it is, or reject it with a reason (the "
            "agent reads it and can make a smaller call).")  # fmt: skip
    return View(type="modal", title="Edit and approve", close="Close", blocks=[section(text)])


def settled_blocks(approval: Approval, context: CardContext | None = None) -> list[Block]:
    """The same request once decided, expired or cancelled: no buttons left to press."""
    return [
        HeaderBlock(text=f"{_outcome(approval.status)}: {approval.risk.value} risk"),
        *_why(context),
        *_body(approval),
        ContextBlock(elements=[mrkdwn(cut(_settled(approval), CONTEXT_TEXT))]),
    ]


def settled_fallback_blocks(approval: Approval, context: CardContext | None = None) -> list[Block]:
    """The outcome alone, for when Slack refuses the settled card: the buttons still go.

    ``context`` is taken (as :func:`settled_blocks` takes it) and left out: the outcome alone.
    """
    del context
    return [
        HeaderBlock(text=f"{_outcome(approval.status)}: {approval.risk.value} risk"),
        ContextBlock(elements=[mrkdwn(cut(_settled(approval), CONTEXT_TEXT))]),
    ]


def _body(approval: Approval) -> list[Block]:
    subject = approval.subject
    if isinstance(subject, PlanSubject):
        return _plan(subject.plan, approval)
    title = f"*{cut(inert(subject.tool), 200)}* {RISK_BADGE[approval.risk]}"
    arguments = inert_code(json_text(subject.arguments, indent=2))
    blocks = _code(title, arguments, _CALL_HEAD, _CALL_TAIL, approval)
    if subject.preview:
        blocks += _code("*What it would do*", inert_code(subject.preview), _PREVIEW_HEAD,
                        _PREVIEW_TAIL, approval)  # fmt: skip
    if subject.possibly_partial:
        blocks.append(section(f":warning: {subject.partial_note}"))
    if approval.precedents:
        blocks.append(section(_precedents(approval)))
    return blocks


def _code(title: str, code: str, head: int, tail: int, approval: Approval) -> list[Block]:
    """``code`` under ``title``: whole when it fits, else its head, what was cut, its tail."""
    note = f"\n_{BACKTICK} stands for a backtick_" if BACKTICK in code else ""
    room = SECTION_TEXT - size(title) - size(note) - 8
    if size(code) <= room:
        return [section(f"{title}\n{code_block(code)}{note}")]
    parts = cut_middle(code, head, tail)
    if parts is None:  # it fits in two or three sections: nothing is cut
        pieces = split(code, min(head, room))
        return [section(f"{title}\n{code_block(pieces[0])}"),
                *(section(code_block(p)) for p in pieces[1:-1]),
                section(f"{code_block(pieces[-1])}{note}")]  # fmt: skip
    first, hidden, last = parts
    what = f"_{marker(hidden)} of it are not shown here; the whole call is one click away._"
    return [
        section(f"{title}\n{code_block(first)}"),
        section(what, accessory=_view_button(approval, "call")),
        section(f"{code_block(last)}{note}"),
    ]


def _view_button(approval: Approval, what: str) -> ButtonElement:
    label = "View the whole plan" if what == "plan" else "View full call"
    return ButtonElement(text=label, action_id=VIEW_FULL, value=approval.id)


def plan_lines(plan: Plan, *, limit: int | None = None) -> list[str]:
    """One line per step: id, description (cut to ``limit`` if given), risk."""
    lines = []
    for step in plan.subtasks:
        description = inert(step.description)
        if limit is not None:
            description = cut(description, limit)
        lines.append(f"• `{inert_code(step.id)}` {description} ({RISK_BADGE[step.risk_level]})")
    return lines


def _plan(plan: Plan, approval: Approval) -> list[Block]:
    """The steps, over as many sections as they need, up to the card's share; then a note of
    how many more there are, and the whole plan one click away."""
    lines = plan_lines(plan, limit=_STEP_TEXT)
    shown, spent = 0, 0
    while shown < len(lines) and spent + size(lines[shown]) <= _PLAN_TEXT:
        spent += size(lines[shown])
        shown += 1
    title = "*The plan, before anything runs*"
    blocks: list[Block] = [section(t) for t in pack([title, *lines[:shown]], SECTION_TEXT)]
    if shown < len(lines):
        note = f"{marker(len(lines) - shown, 'steps')} are not shown here"
    elif any(size(inert(s.description)) > _STEP_TEXT for s in plan.subtasks):
        note = "Some steps are cut short here"
    else:
        return blocks
    note = f"_{note}; the whole plan is one click away._"
    return [*blocks, section(note, accessory=_view_button(approval, "plan"))]


def _precedents(approval: Approval) -> str:
    lines = ["*Similar decisions here before*"]
    for p in approval.precedents:
        who = mention(p.by) if p.by else "nobody"
        line = f"• {cut(inert(p.outcome), 40)} by {who} {describe_age(p.at, approval.requested_at)}"
        if p.reason:
            line += f": _{cut(inert(p.reason), 300)}_"
        lines.append(f"{line} `{cut(inert_code(p.call), 200)}`")
    return cut("\n".join(lines), _PRECEDENTS_TEXT)


def _what(approval: Approval) -> str:
    subject = approval.subject
    if isinstance(subject, ToolCallSubject):
        call = inert(json_text(subject.arguments))
        return f"{cut(inert(subject.tool), 80)} {cut(call, 200)}"
    return f"a plan of {plural(len(subject.plan.subtasks), 'step')}"


def _context(approval: Approval) -> str:
    parts = [f"`{inert_code(approval.id)}`", f"run `{inert_code(approval.run_id)}`"]
    if approval.requester:
        parts.append(f"asked by {mention(approval.requester)}")
    parts.append(_for_whom(approval))
    if approval.deadline is not None:
        parts.append(f"decide by {_when(approval.deadline)}")
    parts.append(_typed(approval))
    return " · ".join(parts)


def _for_whom(approval: Approval) -> str:
    named = approval.approvers or []
    who = ", ".join(mention(i) for i in named[:_NAMED_APPROVERS]) or "approvers"
    if len(named) > _NAMED_APPROVERS:
        who += f" and {len(named) - _NAMED_APPROVERS} more"
    if approval.required_approvals > 1:
        return f"needs {approval.required_approvals} of: {who}, or an admin"
    return f"for: {who} or an admin"


def _typed(approval: Approval) -> str:
    apr = inert_code(approval.id)
    return f"or type `approve {apr}` / `reject {apr} &lt;reason&gt;`"


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


def _settled(approval: Approval) -> str:
    who = mention(approval.decided_by or "airlock")
    last = approval.decisions[-1] if approval.decisions else None
    reason = f": {cut(inert(last.reason), 1500)}" if last is not None and last.reason else ""
    when = f" {_when(approval.decided_at)}" if approval.decided_at else ""
    settled = f"`{inert_code(approval.id)}` {_outcome(approval.status).lower()} by {who}{when}"
    return settled + reason + _edited(approval)


def _edited(approval: Approval) -> str:
    """Who edited the call and what it was before; for a superseded request, what became of it."""
    subject = approval.subject
    edit = next((d for d in reversed(approval.decisions) if d.kind is DecisionKind.EDIT), None)
    if edit is None or not isinstance(subject, ToolCallSubject):
        return ""
    note = f" · edited by {mention(edit.by)}"
    was = subject.original_arguments
    if was is not None and was != subject.arguments:
        note += f" (was: `{cut(inert_code(json_text(was)), _MAX_WAS)}`)"
    if approval.status is ApprovalStatus.SUPERSEDED:
        risk = (edit.edited_risk or RiskLevel.CRITICAL).value
        note += f"; the edited call is {risk} risk and is asked again as a new request"
    return note
