"""Slack listeners for approvals: the buttons, the typed fallback, and replies to questions.

Every path ends in the same DecisionService call as the CLI's, so a click is checked, recorded
atomically and audited exactly like any other decision. Bolt acknowledges first; the work
happens after, well inside Slack's three seconds.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from agent_core.approvals import DecisionService, Refused
from agent_core.models import (
    Decision,
    DecisionKind,
)
from bot.blocks import (
    APPROVE,
    APPROVE_FOR_RUN,
    EDIT,
    EDIT_VIEW,
    FIELD,
    REJECT,
    REJECT_VIEW,
    REJECT_WITH_REASON,
    edit_modal,
    mention,
    reject_modal,
)
from bot.editing import read_edit
from bot.full_call import register_full_call
from bot.goals import GoalIntake, direct_goal
from bot.replies import decision_reply
from bot.slack_channel import SlackChannel

__all__ = ["TYPED_DECISION", "register_approvals"]

TYPED_DECISION = re.compile(
    r"^\s*(?P<verb>approve|reject)\s+(?P<id>apr_[0-9a-f]{12})\b\s*(?P<reason>.*)$",
    re.IGNORECASE | re.DOTALL,
)
"""``approve apr_…`` or ``reject apr_… reason``, typed in a channel or thread."""


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
) -> None:
    """Wire the approval buttons and typed decisions of ``app`` to ``service``.

    With ``intake``, a direct message that is not a decision or an answer starts a run.
    """

    async def on_button(ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient) -> None:
        await ack()
        await _decide(service, client, _from_button(body), ephemeral=True)

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
        view = edit_modal(approval, _metadata(answer))
        await client.views_open(trigger_id=body["trigger_id"], view=view)

    @app.view(REJECT_VIEW)
    async def on_reason(ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient) -> None:
        await ack()
        answer = _from_view(body, DecisionKind.REJECT)
        await _decide(service, client, answer, ephemeral=True)

    @app.view(EDIT_VIEW)
    async def on_edited(ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient) -> None:
        answer = _from_view(body, DecisionKind.EDIT)
        # Masked secrets left as shown keep their values: an unchanged form is the same call.
        arguments = await read_edit(service.store, answer.approval_id, answer.reason or "")
        if isinstance(arguments, str):
            await ack(response_action="errors", errors={FIELD: arguments})
            return
        decision = Decision(kind=DecisionKind.EDIT, by=answer.user, edited_arguments=arguments)
        outcome = await service.decide(answer.approval_id, decision)
        if isinstance(outcome, Refused):  # keep the modal open and say why
            await ack(response_action="errors", errors={FIELD: outcome.reason})
            return
        await ack()
        await _tell(client, answer, decision_reply(outcome), ephemeral=True)

    @app.event("message")
    async def on_message(event: dict[str, Any], client: AsyncWebClient) -> None:
        if event.get("bot_id") or event.get("subtype") or "user" not in event:
            return  # our own posts, edits and joins are not answers
        text = event.get("text") or ""
        answer = _from_text(event, text)
        if answer is not None:
            await _decide(service, client, answer, ephemeral=False)
        elif event.get("thread_ts"):
            if not channel.answered(event["channel"], event["thread_ts"], text):
                await channel.relay(event["channel"], event["thread_ts"], text)
        elif intake is not None and direct_goal(event):
            await intake.start(client, goal=text, user=event["user"], channel=event["channel"],
                               thread_ts=event["ts"], delivery=event.get("client_msg_id")
                               or event.get("ts"))  # fmt: skip


def _from_button(body: dict[str, Any]) -> _Answer:
    action = body["actions"][0]
    container = body.get("container") or {}
    return _Answer(
        user=body["user"]["id"],
        approval_id=action["value"],
        # A button in App Home has no channel: answers then go to the person directly.
        channel=container.get("channel_id") or (body.get("channel") or {}).get("id"),
        thread_ts=container.get("thread_ts"),
        kind=_BUTTON_KINDS.get(action["action_id"], DecisionKind.REJECT),
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


def _metadata(answer: _Answer) -> str:
    """What a modal must remember: which approval, and where to answer."""
    where = {"approval": answer.approval_id, "channel": answer.channel, "thread": answer.thread_ts}
    return json.dumps(where)


def _from_view(body: dict[str, Any], kind: DecisionKind) -> _Answer:
    view = body["view"]
    where = json.loads(view["private_metadata"])
    text = view["state"]["values"][FIELD][FIELD].get("value")
    return _Answer(user=body["user"]["id"], approval_id=where["approval"], channel=where["channel"],
                   thread_ts=where["thread"], kind=kind, reason=text)  # fmt: skip


async def _decide(
    service: DecisionService, client: AsyncWebClient, answer: _Answer, *, ephemeral: bool
) -> None:
    decision = Decision(kind=answer.kind, by=answer.user, reason=answer.reason)
    await _tell(client, answer, decision_reply(await service.decide(answer.approval_id, decision)),
                ephemeral=ephemeral)  # fmt: skip


async def _tell(
    client: AsyncWebClient, answer: _Answer, reply: str | None, *, ephemeral: bool
) -> None:
    if reply is None:
        return  # settled: the request message itself is updated with the outcome
    if answer.channel is None:
        await client.chat_postMessage(channel=answer.user, text=reply)  # a DM
    elif ephemeral:
        await client.chat_postEphemeral(channel=answer.channel, user=answer.user, text=reply,
                                        thread_ts=answer.thread_ts)  # fmt: skip
    else:
        await client.chat_postMessage(channel=answer.channel, thread_ts=answer.thread_ts,
                                      text=f"{mention(answer.user)} {reply}")  # fmt: skip
