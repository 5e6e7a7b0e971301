"""Private replies through the real Bolt app over signed HTTP: slash commands are answered on
their response_url, and a goal where the bot is not a member is answered privately, not
with silence."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiohttp import web
from slack_sdk.web.async_client import AsyncWebClient

from agent_core.approvals import Authority
from agent_core.audit.trail import Audit
from agent_core.config import Settings
from agent_core.runs.control import RunControl
from agent_core.runs.limits import Admission, Limits
from agent_core.store import Store, open_store
from agent_core.testing.slack_requests import SlackRequestSigner, load_json_payload, post_to_bot
from agent_core.testing.slack_server import RESPONSE_URL, SlackCall, SlackStandIn, SlackWorkspace
from bot.slack.admin import AdminCommands
from bot.slack.app import build_app
from bot.slack.goals import GoalIntake, register_goals
from tests.support import eventually, slash_command

SECRET = "replies-signing-secret"
TOKEN = "xoxb-replies"
MENTION = load_json_payload("app_mention.json")
USER = MENTION["event"]["user"]
OUTSIDE = "C0NOTAMEMBER"
"""A channel the bot was never invited to."""


@dataclass(kw_only=True)
class Bot:
    url: str
    slack: SlackStandIn
    store: Store
    submitted: list[str]
    signer: SlackRequestSigner

    async def command(self, form: dict[str, str]) -> SlackCall:
        """Send ``form`` signed; what the bot posted to the command's response_url."""
        assert (await post_to_bot(self.url, self.signer.command(form)))[0] == 200
        url = form["response_url"]
        return await self.slack.wait_for_call(RESPONSE_URL, lambda c: c.url == url, timeout=10)


@pytest.fixture
async def bot(tmp_path: Path) -> AsyncIterator[Bot]:
    store = await open_store(f"sqlite:///{tmp_path / 'airlock.db'}")
    workspace = SlackWorkspace(users={USER: {"name": "asker"}}, not_in_channels=[OUTSIDE])
    async with SlackStandIn(bot_token=TOKEN, workspace=workspace) as slack:
        client = AsyncWebClient(token=TOKEN, base_url=slack.api_url)
        app = build_app(Settings(slack_signing_secret=SECRET), client=client)
        submitted: list[str] = []

        async def submit(run_id: str) -> None:
            submitted.append(run_id)

        async def remember(*_: object) -> None:
            return None

        intake = GoalIntake(store=store, submit=submit, remember_status=remember,
                            admission=Admission(store=store, limits=Limits()))  # fmt: skip
        authority = Authority()
        control = RunControl(store=store, authority=authority, audit=Audit(store=store))
        register_goals(app, intake, AdminCommands(store=store, control=control))
        runner = web.AppRunner(app.web_app(), access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        url = f"http://127.0.0.1:{runner.addresses[0][1]}/slack/events"
        try:
            yield Bot(url=url, slack=slack, store=store, submitted=submitted,
                      signer=SlackRequestSigner(SECRET))  # fmt: skip
        finally:
            await runner.cleanup()
            await store.close()


async def test_a_slash_command_is_answered_on_its_response_url(bot: Bot) -> None:
    reply = await bot.command(slash_command(bot.slack, "help", user=USER, channel=OUTSIDE))
    assert reply.args["response_type"] == "ephemeral" and reply.args["replace_original"] is False
    assert "/agent plan <goal>" in reply.args["text"] and reply.status == 200
    assert bot.slack.calls_to("chat.postEphemeral") == []  # it would fail here: not a member
    shown = bot.slack.workspace.ephemerals[-1]
    assert (shown["user"], shown["channel"]) == (USER, OUTSIDE)


async def test_a_used_up_response_url_falls_back_to_an_ephemeral_message(bot: Bot) -> None:
    form = slash_command(bot.slack, "status", user=USER, channel="C0MEMBER")
    for n in range(5):  # Slack takes five answers on one response_url
        hook = bot.slack.hooks
        assert hook.answer(form["response_url"].split("/commands/")[1],
                           f'{{"text": "{n}"}}'.encode(), "application/json")[0] == 200  # fmt: skip
    assert (await post_to_bot(bot.url, bot.signer.command(form)))[0] == 200
    told = await bot.slack.wait_for_call("chat.postEphemeral", timeout=10)
    assert told.args["user"] == USER and "active run(s)" in told.args["text"]
    assert bot.slack.calls_to(RESPONSE_URL)[-1].response == {"ok": False, "error": "used_url"}


async def test_a_goal_typed_where_the_bot_is_not_a_member_says_how_to_invite_it(
    bot: Bot,
) -> None:
    reply = await bot.command(
        slash_command(bot.slack, "restart the web tier", user=USER, channel=OUTSIDE)
    )
    assert "/invite @airlock" in reply.args["text"]
    assert reply.args["response_type"] == "ephemeral"
    assert await bot.store.list_runs() == [] and bot.submitted == []

    bot.slack.workspace.join(OUTSIDE)  # invited: the same goal now starts a run
    again = slash_command(bot.slack, "restart the web tier", user=USER, channel=OUTSIDE)
    assert (await post_to_bot(bot.url, bot.signer.command(again)))[0] == 200

    async def started() -> bool:
        return len(bot.submitted) == 1

    await eventually(started)


async def test_a_mention_where_the_bot_is_not_a_member_is_answered_in_a_direct_message(
    bot: Bot,
) -> None:
    body = copy.deepcopy(MENTION)
    body["event"]["channel"] = OUTSIDE
    assert (await post_to_bot(bot.url, bot.signer.event(body)))[0] == 200
    told = await bot.slack.wait_for_call("chat.postMessage", lambda c: c.response["ok"],
                                         timeout=10)  # fmt: skip
    assert told.args["channel"] == USER and told.response["channel"].startswith("D")
    assert "/invite @airlock" in told.args["text"]
    refused = [c.response.get("error") for c in bot.slack.calls if not c.response.get("ok")]
    assert refused == ["not_in_channel", "not_in_channel"]  # the thread, then an ephemeral
    assert await bot.store.list_runs() == [] and bot.submitted == []
