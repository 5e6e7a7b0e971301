"""Typed decisions in Slack, through the real Bolt app over HTTP and the Slack stand-in."""

from __future__ import annotations

import copy
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from slack_sdk.web.async_client import AsyncWebClient

from agent_core.approvals import (
    Authority,
    DecisionService,
    RiskPolicy,
    edit_risk_check,
    schema_edit_check,
)
from agent_core.audit.trail import Audit
from agent_core.config import Settings
from agent_core.models import Approval, ApprovalStatus, RiskLevel, ToolCallSubject
from agent_core.store import Store, open_store
from agent_core.testing.slack_requests import SlackRequestSigner, load_json_payload, post_to_bot
from agent_core.testing.slack_server import SlackStandIn
from agent_core.tools import Tool, ToolRegistry
from bot.slack.app import build_app
from bot.slack.channel import SlackChannel
from bot.slack.listeners import register_approvals
from tests.support import eventually

SECRET = "typed-decisions-secret"
CLICK = load_json_payload("block_actions.json")
SUBMISSION = load_json_payload("view_submission.json")


async def _never(arguments: dict[str, object], context: object) -> str:
    raise AssertionError("not called in these tests")


DEPLOY = Tool(
    name="deploy", description="Deploy.", risk=RiskLevel.HIGH, handler=_never,  # type: ignore[arg-type]
    input_schema={"type": "object", "properties": {"env": {"enum": ["staging", "prod"]}},
                  "required": ["env"]},
)  # fmt: skip
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
        registry = ToolRegistry([DEPLOY])
        service = DecisionService(
            store=store, audit=Audit(store=store),
            authority=Authority(approvers=settings.approvers),
            check_edit=schema_edit_check(registry),
            edit_risk=edit_risk_check(registry, RiskPolicy(), store),
        )  # fmt: skip
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
    # Told privately: a typed command never makes the bot talk in the thread.
    reply = await slack.wait_for_call("chat.postEphemeral", since=since, timeout=10)
    assert reply.args["user"] == DM["event"]["user"]
    assert f"Already approved by <@{DM['event']['user']}>" in reply.args["text"]
    assert len((await store.get_approval(approval.id)).decisions) == 1


def pressed(action_id: str, approval_id: str, user: str) -> dict[str, Any]:
    body = copy.deepcopy(CLICK)
    body["user"]["id"] = user
    body["actions"][0].update(action_id=action_id, value=approval_id)
    return body


def submitted(callback_id: str, metadata: str, value: str, user: str) -> dict[str, Any]:
    body = copy.deepcopy(SUBMISSION)
    body["user"]["id"] = user
    body["view"].update(callback_id=callback_id, private_metadata=metadata,
                        state={"values": {"field": {"field": {"type": "plain_text_input",
                                                              "value": value}}}})  # fmt: skip
    return body


async def pending_deploy(store: Store, *, grantable: bool = False) -> Approval:
    subject = ToolCallSubject(subtask_id="s1", tool="deploy", arguments={"env": "prod"})
    pending = Approval(run_id="run_modal", subject=subject, risk=RiskLevel.HIGH,
                       requester="W0OTHER", grantable=grantable)  # fmt: skip
    return await store.create_approval(pending)


async def test_reject_asks_for_a_reason_the_agent_will_read(
    bot: tuple[str, Store, SlackStandIn],
) -> None:
    url, store, slack = bot
    approval, user = await pending_deploy(store), DM["event"]["user"]
    signer = SlackRequestSigner(SECRET)
    assert (
        await post_to_bot(
            url, signer.interaction(pressed("airlock_reject_reason", approval.id, user))
        )
    )[0] == 200
    opened = await slack.wait_for_call("views.open", timeout=10)
    view = opened.args["view"]
    assert view["callback_id"] == "airlock_reject_view"
    body = submitted(view["callback_id"], view["private_metadata"], "wrong cluster", user)
    assert (await post_to_bot(url, signer.interaction(body)))[0] == 200

    async def rejected() -> bool:
        return (await store.get_approval(approval.id)).status is ApprovalStatus.REJECTED

    await eventually(rejected)
    assert (await store.get_approval(approval.id)).decisions[-1].reason == "wrong cluster"


async def test_edit_keeps_the_modal_open_until_the_arguments_are_valid(
    bot: tuple[str, Store, SlackStandIn],
) -> None:
    url, store, slack = bot
    approval, user = await pending_deploy(store), DM["event"]["user"]
    signer = SlackRequestSigner(SECRET)
    assert (await post_to_bot(url, signer.interaction(pressed("airlock_edit", approval.id, user))))[
        0
    ] == 200
    view = (await slack.wait_for_call("views.open", timeout=10)).args["view"]
    assert json.loads(view["blocks"][0]["element"]["initial_value"]) == {"env": "prod"}

    async def submit(value: str) -> tuple[int, str]:
        body = submitted(view["callback_id"], view["private_metadata"], value, user)
        return await post_to_bot(url, signer.interaction(body))

    status, text = await submit("{not json")
    assert status == 200 and json.loads(text)["response_action"] == "errors"
    status, text = await submit('{"env": "moon"}')
    assert "invalid at env" in json.loads(text)["errors"]["field"]
    assert (await store.get_approval(approval.id)).status is ApprovalStatus.PENDING
    status, text = await submit('{"env": "staging"}')
    assert status == 200 and not text
    edited = await store.get_approval(approval.id)
    assert edited.status is ApprovalStatus.APPROVED
    assert isinstance(edited.subject, ToolCallSubject) and edited.subject.arguments == {
        "env": "staging"
    }


async def test_approve_for_this_run_grants_the_tool_for_the_rest_of_the_run(
    bot: tuple[str, Store, SlackStandIn],
) -> None:
    url, store, _ = bot
    approval, user = await pending_deploy(store, grantable=True), DM["event"]["user"]
    signer = SlackRequestSigner(SECRET)
    click = pressed("airlock_approve_for_run", approval.id, user)
    assert (await post_to_bot(url, signer.interaction(click)))[0] == 200

    async def granted() -> bool:
        grants = await store.get_facts("grants:run_modal")
        return "deploy" in grants and json.loads(grants["deploy"]) == {
            "risk": "high", "by": user, "approval": approval.id}  # fmt: skip

    await eventually(granted)
    assert (await store.get_approval(approval.id)).decisions[-1].kind.value == "approve_for_run"


async def test_the_plain_reject_button_rejects_at_once(
    bot: tuple[str, Store, SlackStandIn],
) -> None:
    url, store, _ = bot
    approval, user = await pending_deploy(store), DM["event"]["user"]
    signer = SlackRequestSigner(SECRET)
    click = pressed("airlock_reject", approval.id, user)
    assert (await post_to_bot(url, signer.interaction(click)))[0] == 200

    async def rejected() -> bool:
        return (await store.get_approval(approval.id)).status is ApprovalStatus.REJECTED

    await eventually(rejected)
