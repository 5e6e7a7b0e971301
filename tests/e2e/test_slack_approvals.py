"""Typed decisions in Slack, through the real Bolt app over HTTP and the Slack stand-in."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from slack_sdk.web.async_client import AsyncWebClient

from agent_core.approvals import Authority, DecisionService
from agent_core.audit import Audit
from agent_core.config import Settings
from agent_core.models import Approval, ApprovalStatus, RiskLevel, ToolCallSubject
from agent_core.store import Store, open_store
from agent_core.testing.slack_requests import SlackRequestSigner, load_json_payload, post_to_bot
from agent_core.testing.slack_server import SlackStandIn
from bot.app import build_app
from bot.listeners import register_approvals
from bot.slack_channel import SlackChannel
from tests.support import eventually

SECRET = "typed-decisions-secret"
TOKEN = "xoxb-typed"
DM = load_json_payload("message_im.json")  # a person's message to the bot


@pytest.fixture
async def bot(tmp_path: Path) -> AsyncIterator[tuple[str, Store, SlackStandIn]]:
    store = await open_store(f"sqlite:///{tmp_path / 'airlock.db'}")
    async with SlackStandIn(bot_token=TOKEN) as slack:
        client = AsyncWebClient(token=TOKEN, base_url=slack.api_url)
        settings = Settings(slack_signing_secret=SECRET, approvers=[DM["event"]["user"]])
        app = build_app(settings, client=client)
        channel = SlackChannel(client=client, store=store)
        service = DecisionService(store=store, audit=Audit(store=store),
                                  authority=Authority(approvers=settings.approvers))  # fmt: skip
        register_approvals(app, service=service, channel=channel)
        runner = web.AppRunner(app.web_app(), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        try:
            yield f"http://127.0.0.1:{port}/slack/events", store, slack
        finally:
            await runner.cleanup()
            await store.close()


def typed(text: str) -> dict[str, object]:
    body = copy.deepcopy(DM)
    body["event"]["text"] = text
    return body


async def test_typed_approve_and_a_late_reject(bot: tuple[str, Store, SlackStandIn]) -> None:
    url, store, slack = bot
    subject = ToolCallSubject(subtask_id="s1", tool="deploy", arguments={"env": "prod"})
    approval = await store.create_approval(
        Approval(run_id="run_typed", subject=subject, risk=RiskLevel.HIGH, requester="W0OTHER")
    )
    signer = SlackRequestSigner(SECRET)
    assert (await post_to_bot(url, signer.event(typed(f"approve {approval.id}"))))[0] == 200

    async def approved() -> bool:
        return (await store.get_approval(approval.id)).status is ApprovalStatus.APPROVED

    await eventually(approved)
    since = len(slack.calls)
    late = typed(f"reject {approval.id} too risky")
    late["event_id"] = "Ev222"  # type: ignore[index]
    assert (await post_to_bot(url, signer.event(late)))[0] == 200
    reply = await slack.wait_for_call("chat.postMessage", since=since, timeout=10)
    assert f"Already approved by <@{DM['event']['user']}>" in reply.args["text"]
    assert len((await store.get_approval(approval.id)).decisions) == 1
