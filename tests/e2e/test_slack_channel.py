"""SlackChannel against the Slack stand-in: where requests go and how they settle."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from slack_sdk.web.async_client import AsyncWebClient

from agent_core.channel import ApprovalSettled, PlanReady, RunFinished
from agent_core.models import (
    Approval,
    ApprovalStatus,
    ChannelKind,
    MessageLocation,
    MessagePurpose,
    MessageSubject,
    Plan,
    RiskLevel,
    Run,
    RunStatus,
    Subtask,
    ToolCallSubject,
)
from agent_core.store import Store, open_store
from agent_core.testing.slack_requests import load_json_payload
from agent_core.testing.slack_server import SlackStandIn
from bot.slack.channel import SlackChannel

MENTION = load_json_payload("app_mention.json")["event"]


@pytest.fixture
async def parts(tmp_path: Path) -> AsyncIterator[tuple[Store, SlackStandIn, AsyncWebClient]]:
    store = await open_store(f"sqlite:///{tmp_path / 'airlock.db'}")
    async with SlackStandIn(bot_token="xoxb-channel") as slack:
        yield store, slack, AsyncWebClient(token="xoxb-channel", base_url=slack.api_url)
    await store.close()


async def test_risky_requests_also_go_to_the_approval_channel_and_both_settle(
    parts: tuple[Store, SlackStandIn, AsyncWebClient],
) -> None:
    store, slack, client = parts
    channel = SlackChannel(client=client, store=store, approval_channel="C0APPROVALS")
    thread_of = {"channel": MENTION["channel"], "thread_ts": MENTION["ts"]}
    run = await store.create_run(Run(goal="deploy", requester=MENTION["user"],
                                     channel_kind=ChannelKind.PUBLIC, **thread_of))  # fmt: skip
    subject = ToolCallSubject(subtask_id="s1", tool="deploy", arguments={"env": "prod"})
    approval = await store.create_approval(
        Approval(run_id=run.id, subject=subject, risk=RiskLevel.HIGH, requester=run.requester)
    )
    await channel.request_decision(approval)
    thread, copy = slack.calls_to("chat.postMessage")
    assert thread.args["thread_ts"] == MENTION["ts"]
    assert copy.args["channel"] == "C0APPROVALS" and "|thread>" in copy.args["text"]

    settled = approval.model_copy(update={"status": ApprovalStatus.APPROVED, "decided_by": "U0BOB"})
    await channel.notify(ApprovalSettled(run=run, approval=settled))
    updated = {c.args["ts"] for c in slack.calls_to("chat.update")}
    assert updated == {thread.response["ts"], copy.response["ts"]}


async def test_in_a_direct_message_the_assistant_status_follows_the_run(
    parts: tuple[Store, SlackStandIn, AsyncWebClient],
) -> None:
    store, slack, client = parts
    channel = SlackChannel(client=client, store=store)
    dm = load_json_payload("message_im_assistant_thread.json")["event"]
    run = await store.create_run(Run(goal="when was Slack released?", requester=dm["user"],
                                     channel=dm["channel"], thread_ts=dm["thread_ts"]))  # fmt: skip
    plan = Plan(subtasks=[Subtask(id="s1", description="look it up")])
    await channel.notify(PlanReady(run=run, plan=plan))
    assert slack.workspace.statuses[(dm["channel"], dm["thread_ts"])] == "is working on it…"
    await channel.notify(RunFinished(run=run, status=RunStatus.COMPLETED, result="2013"))
    assert slack.workspace.statuses[(dm["channel"], dm["thread_ts"])] == ""


async def test_a_request_names_the_configured_approvers_when_it_has_none_of_its_own(
    parts: tuple[Store, SlackStandIn, AsyncWebClient],
) -> None:
    from agent_core.channel import ApprovalNeeded

    store, slack, client = parts
    channel = SlackChannel(client=client, store=store, approvers=["S0ONCALL", "U0ANA"])
    thread_of = {"channel": MENTION["channel"], "thread_ts": MENTION["ts"]}
    run = await store.create_run(Run(goal="deploy", requester=MENTION["user"], **thread_of))
    await channel.remember_status(run, MENTION["channel"], "1595926230.000100")
    subject = ToolCallSubject(subtask_id="s1", tool="deploy", arguments={"env": "prod"})
    approval = await store.create_approval(
        Approval(run_id=run.id, subject=subject, risk=RiskLevel.HIGH, requester=run.requester)
    )
    await channel.notify(ApprovalNeeded(run=run, approval=approval))
    await channel.request_decision(approval)
    card, dm = slack.calls_to("chat.postMessage")  # S0ONCALL is no group Slack knows
    assert card.args["channel"] == MENTION["channel"] and dm.args["channel"] == "U0ANA"
    assert "for: <!subteam^S0ONCALL>, <@U0ANA> or an admin" in str(card.args["blocks"])
    [status] = slack.calls_to("chat.update")
    assert "waiting for approval from <!subteam^S0ONCALL>, <@U0ANA>" in status.args["text"]
    assert (await store.get_approval(approval.id)).approvers is None  # decided against settings


async def test_a_settled_card_slack_refuses_still_loses_its_buttons(
    parts: tuple[Store, SlackStandIn, AsyncWebClient],
) -> None:
    store, slack, client = parts
    channel = SlackChannel(client=client, store=store)
    thread_of = {"channel": MENTION["channel"], "thread_ts": MENTION["ts"]}
    run = await store.create_run(Run(goal="deploy", requester=MENTION["user"], **thread_of))
    subject = ToolCallSubject(subtask_id="s1", tool="deploy", arguments={"env": "prod"})
    approval = await store.create_approval(
        Approval(run_id=run.id, subject=subject, risk=RiskLevel.HIGH, requester=run.requester)
    )
    await channel.request_decision(approval)
    slack.fail_next("chat.update", error="invalid_blocks")
    settled = approval.model_copy(update={"status": ApprovalStatus.REJECTED, "decided_by": "U0BOB"})
    await channel.notify(ApprovalSettled(run=run, approval=settled))
    refused, plain = slack.calls_to("chat.update")
    assert not refused.response["ok"] and plain.response["ok"]
    assert "actions" not in str(plain.args["blocks"]) and "rejected by <@U0BOB>" in str(plain.args)


async def test_a_remembered_location_is_used_only_where_its_message_belongs(
    parts: tuple[Store, SlackStandIn, AsyncWebClient],
) -> None:
    # Rows a compromised store could hold: each a well-formed location, of the right
    # subject, but in a channel a message of its purpose is never posted to.
    store, slack, client = parts
    channel = SlackChannel(client=client, store=store, approval_channel="C0APPROVALS")
    thread_of = {"channel": MENTION["channel"], "thread_ts": MENTION["ts"]}
    run = await store.create_run(Run(goal="deploy", requester=MENTION["user"], **thread_of))
    subject = ToolCallSubject(subtask_id="s1", tool="deploy", arguments={"env": "prod"})
    approval = await store.create_approval(
        Approval(run_id=run.id, subject=subject, risk=RiskLevel.LOW, requester=run.requester)
    )
    await channel.request_decision(approval)
    [card] = slack.calls_to("chat.postMessage")
    for purpose, subject_kind, subject_id in (
        (MessagePurpose.RUN_STATUS, MessageSubject.RUN, run.id),
        (MessagePurpose.APPROVAL_REQUEST, MessageSubject.APPROVAL, approval.id),
        (MessagePurpose.APPROVAL_COPY, MessageSubject.APPROVAL, approval.id),
    ):
        await store.remember_message(MessageLocation(
            subject=subject_kind, subject_id=subject_id, purpose=purpose, channel="C0ELSEWHERE",
            ts="1595926230.000999"), ttl_seconds=60)  # fmt: skip

    assert await channel.shown_at(approval.id) == {(card.response["channel"], card.response["ts"])}
    plan = Plan(subtasks=[Subtask(id="s1", description="look")])
    await channel.notify(PlanReady(run=run, plan=plan))
    settled = approval.model_copy(update={"status": ApprovalStatus.APPROVED, "decided_by": "U0BOB"})
    await channel.notify(ApprovalSettled(run=run, approval=settled))
    assert [c.args["channel"] for c in slack.calls_to("chat.update")] == [MENTION["channel"]]
