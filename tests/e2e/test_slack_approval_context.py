"""Approval cards with their context, and approvers asked in direct messages: through the real
Bolt app over signed HTTP against the Slack stand-in."""

from __future__ import annotations

import copy
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from slack_sdk.web.async_client import AsyncWebClient

from agent_core.approvals import Authority, DecisionService
from agent_core.audit.trail import Audit
from agent_core.channel import ApprovalSettled
from agent_core.config import Settings
from agent_core.models import (
    Approval,
    ApprovalStatus,
    Plan,
    PlanSubject,
    RiskLevel,
    Run,
    Subtask,
    ToolCallSubject,
)
from agent_core.store import Store, open_store
from agent_core.testing.slack_requests import SlackRequestSigner, load_json_payload, post_to_bot
from agent_core.testing.slack_server import SlackCall, SlackStandIn, SlackWorkspace
from bot.slack.app import build_app
from bot.slack.channel import SlackChannel
from bot.slack.listeners import register_approvals
from tests.support import eventually

SECRET = "context-signing-secret"
TOKEN = "xoxb-context"
CLICK = load_json_payload("block_actions.json")
MENTION = load_json_payload("app_mention.json")["event"]
CHANNEL, THREAD, REQUESTER = MENTION["channel"], MENTION["ts"], MENTION["user"]
ANA, BEN, OUTSIDER = "U0ANA", "U0BEN", "U0OUTSIDER"
ONCALL = "S0ONCALL"
GOAL = "find out why <!channel> staging is slow <https://evil.example|click> `x` \u202eevil"
STEP = "Restart the web tier <@U0EVIL> *now*"


@dataclass(kw_only=True)
class Bot:
    url: str
    slack: SlackStandIn
    store: Store
    channel: SlackChannel
    signer: SlackRequestSigner

    async def click(self, action_id: str, approval_id: str, user: str, posted: SlackCall) -> None:
        """``user`` presses a button on the message ``posted`` (wherever it was posted)."""
        body = copy.deepcopy(CLICK)
        body["user"]["id"] = user
        where = posted.response["channel"]
        body["container"].update(channel_id=where, message_ts=posted.response["ts"],
                                 is_ephemeral=False)  # fmt: skip
        body["channel"]["id"] = where
        body["actions"][0].update(action_id=action_id, value=approval_id)
        assert (await post_to_bot(self.url, self.signer.interaction(body)))[0] == 200


async def serve(tmp_path: Path, **channel_options: Any) -> AsyncIterator[Bot]:
    store = await open_store(f"sqlite:///{tmp_path / 'airlock.db'}")
    users = {u: {"name": u.lower()} for u in (ANA, BEN, OUTSIDER, REQUESTER)}
    workspace = SlackWorkspace(users=users, usergroups={ONCALL: [BEN, REQUESTER]})
    workspace.add_message(channel=CHANNEL, text=MENTION["text"], user=REQUESTER, ts=THREAD)
    async with SlackStandIn(bot_token=TOKEN, workspace=workspace) as slack:
        client = AsyncWebClient(token=TOKEN, base_url=slack.api_url)
        app = build_app(Settings(slack_signing_secret=SECRET), client=client)
        channel = SlackChannel(client=client, store=store, approvers=[ANA, ONCALL],
                               **channel_options)  # fmt: skip
        authority = Authority(approvers=[ANA, ONCALL], members_of=channel.members_of)
        service = DecisionService(store=store, audit=Audit(store=store), authority=authority)
        register_approvals(app, service=service, channel=channel)
        runner = web.AppRunner(app.web_app(), access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        url = f"http://127.0.0.1:{runner.addresses[0][1]}/slack/events"
        try:
            yield Bot(url=url, slack=slack, store=store, channel=channel,
                      signer=SlackRequestSigner(SECRET))  # fmt: skip
        finally:
            await runner.cleanup()
            await store.close()


@pytest.fixture
async def bot(tmp_path: Path) -> AsyncIterator[Bot]:
    async for served in serve(tmp_path):
        yield served


async def asked(bot: Bot, risk: RiskLevel = RiskLevel.HIGH, *, channel: str = CHANNEL,
                thread: str = THREAD) -> tuple[Run, Approval]:  # fmt: skip
    """A run with a plan, and a request for its first step's call, posted."""
    plan = Plan(subtasks=[Subtask(id="s1", description=STEP, risk_level=risk)])
    run = await bot.store.create_run(Run(goal=GOAL, requester=REQUESTER, channel=channel,
                                         thread_ts=thread, plan=plan))  # fmt: skip
    subject = ToolCallSubject(subtask_id="s1", tool="deploy", arguments={"env": "prod"})
    approval = await bot.store.create_approval(
        Approval(run_id=run.id, subject=subject, risk=risk, requester=REQUESTER)
    )
    await bot.channel.request_decision(approval)
    return run, approval


def shown(call: SlackCall) -> str:
    return json.dumps(call.args.get("blocks") or [], ensure_ascii=False)


def buttons(call: SlackCall) -> list[tuple[str, str]]:
    return [(e["action_id"], e["value"]) for b in call.args["blocks"] if b["type"] == "actions"
            for e in b["elements"]]  # fmt: skip


async def test_the_card_says_what_the_call_is_for_and_links_the_thread(bot: Bot) -> None:
    await asked(bot)
    card = bot.slack.calls_to("chat.postMessage")[0]
    assert card.args["channel"] == CHANNEL and card.args["thread_ts"] == THREAD
    why = card.args["blocks"][1]["text"]["text"]
    assert why.startswith("*For step* `s1`: Restart the web tier &lt;@U0EVIL&gt; *now*")
    assert ("*Goal:* find out why &lt;!channel&gt; staging is slow &lt;https://evil.example|click"
            "&gt; ˋxˋ ⟨U+202E⟩evil") in why  # fmt: skip
    link = f"https://airlock-test.slack.com/archives/{CHANNEL}/p{THREAD.replace('.', '')}"
    assert f"*Asked by* <@{REQUESTER}> · <{link}|Open the run's thread>" in why
    assert card.args["text"].startswith('Approval needed (high): deploy {"env": "prod"}')
    assert "<@U0EVIL>" not in shown(card) and "<!channel>" not in shown(card)
    assert len(bot.slack.calls_to("chat.getPermalink")) == 1


async def test_each_named_approver_gets_the_card_in_a_direct_message(bot: Bot) -> None:
    run, approval = await asked(bot)
    card, *dms = bot.slack.calls_to("chat.postMessage")
    # ANA by name, BEN through the on-call group; the requester (also on call) is not pinged.
    assert [dm.args["channel"] for dm in dms] == [ANA, BEN]
    assert all(dm.response["channel"].startswith("D") for dm in dms)
    assert all(buttons(dm) == buttons(card) for dm in dms)
    assert all("Open the run's thread" in shown(dm) and "you are one of its approvers"
               in dm.args["text"] for dm in dms)  # fmt: skip
    assert len(await bot.channel.shown_at(approval.id)) == 3

    ana, ben = dms
    await bot.click("airlock_approve", approval.id, OUTSIDER, ana)  # same checks as anywhere
    await bot.click("airlock_approve", approval.id, REQUESTER, ben)
    refusals = [await bot.slack.wait_for_call("chat.postEphemeral", lambda c, u=u: c.args[
        "user"] == u, timeout=10) for u in (OUTSIDER, REQUESTER)]  # fmt: skip
    assert "not an approver" in refusals[0].args["text"]
    assert "requesters may not approve" in refusals[1].args["text"]
    assert (await bot.store.get_approval(approval.id)).status is ApprovalStatus.PENDING

    await bot.click("airlock_approve", approval.id, BEN, ben)

    async def approved() -> bool:
        return (await bot.store.get_approval(approval.id)).status is ApprovalStatus.APPROVED

    await eventually(approved)
    decided = await bot.store.get_approval(approval.id)
    await bot.channel.notify(ApprovalSettled(run=run, approval=decided))
    updates = bot.slack.calls_to("chat.update")
    assert {(u.args["channel"], u.args["ts"]) for u in updates} == {
        (c.response["channel"], c.response["ts"]) for c in (card, ana, ben)}  # fmt: skip
    for update in updates:
        assert update.args["text"].startswith(f"Approved by <@{BEN}> (high): deploy")
        assert "actions" not in shown(update) and "*For step* `s1`" in shown(update)


async def test_no_direct_messages_when_turned_off_or_below_high(tmp_path: Path) -> None:
    async for bot in serve(tmp_path, approval_dms=False):
        await asked(bot)
        assert [c.args["channel"] for c in bot.slack.calls_to("chat.postMessage")] == [CHANNEL]
    async for bot in serve(tmp_path / "medium"):
        await asked(bot, RiskLevel.MEDIUM)
        assert [c.args["channel"] for c in bot.slack.calls_to("chat.postMessage")] == [CHANNEL]


async def test_a_goal_said_in_a_direct_message_stays_there(bot: Bot) -> None:
    dm_channel, dm_ts = "D0REQUESTER", "1595926230.000200"
    bot.slack.workspace.add_message(channel=dm_channel, text=GOAL, user=REQUESTER, ts=dm_ts)
    await asked(bot, channel=dm_channel, thread=dm_ts)
    own, *copies = bot.slack.calls_to("chat.postMessage")
    assert "staging is slow" in shown(own) and "Restart the web tier" in shown(own)
    assert [c.args["channel"] for c in copies] == [ANA, BEN]
    for copied in copies:
        assert "staging is slow" not in shown(copied) and "Restart the web tier" not in shown(
            copied)  # fmt: skip
        assert "goal asked in a private conversation" in shown(copied)


async def test_a_plan_card_counts_its_steps_and_names_the_decider(bot: Bot) -> None:
    plan = Plan(subtasks=[Subtask(id="s1", description="look", risk_level=RiskLevel.HIGH)])
    run = await bot.store.create_run(Run(goal="check", requester=REQUESTER, channel=CHANNEL,
                                         thread_ts=THREAD, plan=plan))  # fmt: skip
    approval = await bot.store.create_approval(
        Approval(
            run_id=run.id, subject=PlanSubject(plan=plan), risk=RiskLevel.HIGH, requester=REQUESTER
        )
    )
    await bot.channel.request_decision(approval)
    card = bot.slack.calls_to("chat.postMessage")[0]
    assert card.args["text"] == "Approval needed (high): a plan of 1 step"
    assert "*For step*" not in shown(card) and "*Goal:* check" in shown(card)
    rejected = approval.model_copy(update={"status": ApprovalStatus.REJECTED, "decided_by": ANA})
    await bot.channel.notify(ApprovalSettled(run=run, approval=rejected))
    assert {u.args["text"] for u in bot.slack.calls_to("chat.update")} == {
        f"Rejected by <@{ANA}> (high): a plan of 1 step"
    }


async def test_every_ping_of_a_reminded_request_is_settled(bot: Bot) -> None:
    run, approval = await asked(bot)
    await bot.channel.request_decision(approval)  # a reminder asks again
    pings = [c for c in bot.slack.calls_to("chat.postMessage") if c.args["channel"] in (ANA, BEN)]
    assert len(pings) == 4
    expired = approval.model_copy(
        update={"status": ApprovalStatus.EXPIRED, "decided_by": "airlock"}
    )
    await bot.channel.notify(ApprovalSettled(run=run, approval=expired))
    updated = {(u.args["channel"], u.args["ts"]) for u in bot.slack.calls_to("chat.update")}
    assert {(p.response["channel"], p.response["ts"]) for p in pings} <= updated
    assert all(u.args["text"].startswith("Expired (high): deploy")
               for u in bot.slack.calls_to("chat.update"))  # fmt: skip
