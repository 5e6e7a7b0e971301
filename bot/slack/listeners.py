"""Slack listeners for approvals: the buttons, the typed fallback, and replies to questions.

Every path ends in the same DecisionService call as the CLI's, so a click is checked, recorded
atomically and audited exactly like any other decision. Bolt acknowledges first; the work
happens after, well inside Slack's three seconds. What the bot answers a decision goes to
the person who made it alone, so nobody can make it talk in a thread.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from agent_core import (
    Approval,
    ChannelKind,
    Decision,
    DecisionKind,
    DecisionService,
    NotFound,
    Refused,
    Store,
    ToolCallSubject,
)
from bot.slack.blocks import (
    APPROVE,
    APPROVE_FOR_RUN,
    EDIT,
    EDIT_VIEW,
    FIELD,
    REJECT,
    REJECT_VIEW,
    REJECT_WITH_REASON,
    edit_modal,
    reject_modal,
)
from bot.slack.channel import SlackChannel
from bot.slack.edit_form import (
    VALUE,
    FormErrors,
    FormField,
    form_digest,
    form_fields,
    form_modal,
    read_form,
)
from bot.slack.editing import read_edit
from bot.slack.full_call import register_full_call
from bot.slack.goals import GoalIntake, direct_goal
from bot.slack.payloads import ApprovalClick, ViewSubmission
from bot.slack.privately import reply_privately
from bot.slack.questions import ThreadReplies
from bot.slack.replies import decision_reply

__all__ = ["TYPED_DECISION", "register_approvals"]

TYPED_DECISION = re.compile(
    r"^\s*(?P<verb>approve|reject)\s+(?P<id>apr_[0-9a-f]{12})\b\s*(?P<reason>.*)$",
    re.IGNORECASE | re.DOTALL,
)
"""``approve apr_…`` or ``reject apr_… reason``, typed in a channel or thread."""


Schemas = Callable[[str], dict[str, Any] | None]
"""A tool's name -> its input JSON Schema (None: no such tool)."""

_BUTTON_KINDS = {APPROVE: DecisionKind.APPROVE, APPROVE_FOR_RUN: DecisionKind.APPROVE_FOR_RUN}


@dataclass(kw_only=True, frozen=True)
class _Answer:
    """Who answered which approval, and where to tell them how it went."""

    user: str
    approval_id: str
    channel: str | None
    thread_ts: str | None
    kind: DecisionKind
    reason: str | None = None


def register_approvals(
    app: AsyncApp,
    *,
    service: DecisionService,
    channel: SlackChannel,
    intake: GoalIntake | None = None,
    approvers_answer: bool = False,
    schemas: Schemas | None = None,
) -> None:
    """Wire the approval buttons and typed decisions of ``app`` to ``service``, and replies in
    threads to the questions ``channel`` asked.

    With ``intake``, a direct message that is not a decision or an answer starts a run.
    ``approvers_answer`` lets approvers and admins answer a run's questions too. With
    ``schemas`` (a tool's name -> its input schema), Edit… is a form with a box per simple
    argument (:mod:`bot.slack.edit_form`); without, the call's arguments as JSON.
    """
    replies = ThreadReplies(channel=channel, store=service.store, authority=service.authority,
                            approvers_answer=approvers_answer)  # fmt: skip

    async def on_button(ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient) -> None:
        await ack()
        await _decide(service, client, _from_button(body))

    app.action(APPROVE)(on_button)
    app.action(APPROVE_FOR_RUN)(on_button)

    app.action(REJECT)(on_button)  # the button's confirm dialog came first
    register_full_call(app, store=service.store, authority=service.authority,
                       shown_at=channel.shown_at)  # fmt: skip

    @app.action(REJECT_WITH_REASON)
    async def on_reason_wanted(ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient) -> None:
        await ack()
        answer = _from_button(body)
        await client.views_open(trigger_id=body["trigger_id"], view=reject_modal(_metadata(answer)))

    @app.action(EDIT)
    async def on_edit(ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient) -> None:
        await ack()
        answer = _from_button(body)
        approval = await service.store.get_approval(answer.approval_id)
        fields = _fields(approval, schemas)
        form = form_modal(approval, fields, _metadata(answer, form_digest(fields)))
        view = form if fields and form is not None else edit_modal(approval, _metadata(answer))
        await client.views_open(trigger_id=body["trigger_id"], view=view)

    @app.view(REJECT_VIEW)
    async def on_reason(ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient) -> None:
        answer = _from_view(body, DecisionKind.REJECT)
        await ack()
        await _decide(service, client, answer)

    @app.view(EDIT_VIEW)
    async def on_edited(ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient) -> None:
        answer = _from_view(body, DecisionKind.EDIT)
        # Masked secrets left as shown keep their values: an unchanged form is the same call.
        arguments = await _edited(service.store, schemas, answer, ViewSubmission.parse(body))
        if isinstance(arguments, FormErrors):
            await ack(response_action="errors", errors=arguments.errors)
            return
        decision = Decision(kind=DecisionKind.EDIT, by=answer.user, edited_arguments=arguments)
        outcome = await service.decide(answer.approval_id, decision)
        if isinstance(outcome, Refused):  # keep the modal open and say why
            await ack(response_action="errors", errors={FIELD: outcome.reason})
            return
        await ack()
        await _tell(client, answer, decision_reply(outcome))

    @app.event("message")
    async def on_message(event: dict[str, Any], client: AsyncWebClient) -> None:
        if event.get("bot_id") or event.get("subtype") or "user" not in event:
            return  # our own posts, edits and joins are not answers
        text = event.get("text") or ""
        answer = _from_text(event, text)
        if answer is not None:
            await _decide(service, client, answer)
        elif event.get("thread_ts"):
            await replies.reply(client, channel=event["channel"], thread_ts=event["thread_ts"],
                                user=event["user"], text=text)  # fmt: skip
        elif intake is not None and direct_goal(event):
            await intake.start(client, goal=text, user=event["user"], channel=event["channel"],
                               thread_ts=event["ts"], kind=ChannelKind.DIRECT,
                               delivery=event.get("client_msg_id") or event.get("ts"))  # fmt: skip


def _from_button(body: dict[str, Any]) -> _Answer:
    click = ApprovalClick.parse(body)
    return _Answer(
        user=click.user.id,
        approval_id=click.approval_id,
        # A button in App Home has no channel: answers then go to the person directly.
        channel=click.where,
        thread_ts=click.container.thread_ts,
        kind=_BUTTON_KINDS.get(click.action.action_id, DecisionKind.REJECT),
    )


def _from_text(event: dict[str, Any], text: str) -> _Answer | None:
    match = TYPED_DECISION.match(text)
    if match is None:
        return None
    verb = match.group("verb").lower()
    return _Answer(
        user=event["user"],
        approval_id=match.group("id").lower(),
        channel=event["channel"],
        thread_ts=event.get("thread_ts") or event.get("ts"),
        kind=DecisionKind.APPROVE if verb == "approve" else DecisionKind.REJECT,
        reason=match.group("reason").strip() or None,
    )


def _metadata(answer: _Answer, form: str | None = None) -> str:
    """What a modal must remember: which approval, where to answer, and (an Edit form) what
    its boxes are."""
    where = {"approval": answer.approval_id, "channel": answer.channel, "thread": answer.thread_ts}
    return json.dumps(where | ({"form": form} if form else {}))


def _fields(approval: Approval, schemas: Schemas | None) -> list[FormField]:
    subject = approval.subject
    if schemas is None or not isinstance(subject, ToolCallSubject):
        return []
    return form_fields(schemas(subject.tool), subject.arguments)


async def _edited(
    store: Store, schemas: Schemas | None, answer: _Answer, submitted: ViewSubmission
) -> dict[str, Any] | FormErrors:
    """The arguments an Edit submission means (the form or the JSON box), or its problems."""
    digest = submitted.view.private_metadata.form
    if digest is None:
        arguments = await read_edit(store, answer.approval_id, answer.reason or "")
        return FormErrors(errors={FIELD: arguments}) if isinstance(arguments, str) else arguments
    try:
        approval = await store.get_approval(answer.approval_id)
    except NotFound:
        return FormErrors(errors={FIELD: "This request no longer exists."})
    fields = _fields(approval, schemas)
    if form_digest(fields) != digest:
        return FormErrors(errors={FIELD: "The tool's arguments changed since this form was "
                                         "opened: close it and press Edit… again."})  # fmt: skip
    return read_form(approval, fields, submitted.boxes("arg:", VALUE), submitted.value(FIELD))


def _from_view(body: dict[str, Any], kind: DecisionKind) -> _Answer:
    submitted = ViewSubmission.parse(body)
    where = submitted.view.private_metadata
    return _Answer(user=submitted.user.id, approval_id=where.approval, channel=where.channel,
                   thread_ts=where.thread, kind=kind, reason=submitted.value(FIELD))  # fmt: skip


async def _decide(service: DecisionService, client: AsyncWebClient, answer: _Answer) -> None:
    decision = Decision(kind=answer.kind, by=answer.user, reason=answer.reason)
    await _tell(client, answer, decision_reply(await service.decide(answer.approval_id, decision)))


async def _tell(client: AsyncWebClient, answer: _Answer, reply: str | None) -> None:
    if reply is None:
        return  # settled: the request message itself is updated with the outcome
    await reply_privately(client, user=answer.user, channel=answer.channel, text=reply,
                          thread_ts=answer.thread_ts)  # fmt: skip
