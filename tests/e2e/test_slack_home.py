"""App Home through the real Bolt app over HTTP: what waits for you, and the admin's kill."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from slack_sdk.web.async_client import AsyncWebClient

from agent_core.approvals import Authority, DecisionService
from agent_core.audit.trail import Audit
from agent_core.config import Settings
from agent_core.models import Approval, ApprovalStatus, RiskLevel, Run, RunStatus, ToolCallSubject
from agent_core.runs.control import RunControl
from agent_core.runs.limits import SpendLedger
from agent_core.store import Store, open_store
from agent_core.testing.slack_requests import SlackRequestSigner, load_json_payload, post_to_bot
from agent_core.testing.slack_server import SlackStandIn
from bot.slack.admin import AdminCommands
from bot.slack.app import build_app
from bot.slack.channel import SlackChannel
from bot.slack.home import register_home
from bot.slack.listeners import register_approvals
from tests.support import eventually

SECRET = "home-secret"
TOKEN = "xoxb-home"
ENVELOPE = load_json_payload("app_mention.json")
CLICK = load_json_payload("block_actions.json")
APPROVER, ADMIN, REQUESTER = CLICK["user"]["id"], "U0ADMIN", "W0ASKER"


@pytest.fixture
async def home(tmp_path: Path) -> AsyncIterator[tuple[str, Store, SlackStandIn]]:
    store = await open_store(f"sqlite:///{tmp_path / 'airlock.db'}")
    async with SlackStandIn(bot_token=TOKEN) as slack:
        client = AsyncWebClient(token=TOKEN, base_url=slack.api_url)
        app = build_app(Settings(slack_signing_secret=SECRET), client=client)
        authority = Authority(approvers=[APPROVER], admins=[ADMIN])
        audit = Audit(store=store)
        register_home(app, store=store, control=RunControl(store=store, authority=authority,
                                                           audit=audit))  # fmt: skip
        register_approvals(app, service=DecisionService(store=store, authority=authority,
                                                        audit=audit),
                           channel=SlackChannel(client=client, store=store))  # fmt: skip
        runner = web.AppRunner(app.web_app(), access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        try:
            yield f"http://127.0.0.1:{runner.addresses[0][1]}/slack/events", store, slack
        finally:
            await runner.cleanup()
            await store.close()


def opened(user: str, n: int) -> dict[str, Any]:
    body = copy.deepcopy(ENVELOPE)
    body["event_id"] = f"EvHome{n}"
    body["event"] = {"type": "app_home_opened", "user": user, "channel": "D0HOME",
                     "tab": "home", "event_ts": f"1595926230.00{n}"}  # fmt: skip
    return body


def pressed_in_home(action_id: str, value: str, user: str) -> dict[str, Any]:
    body = copy.deepcopy(CLICK)
    body["user"]["id"] = user
    body["container"] = {"type": "view", "view_id": "V0HOME"}
    del body["channel"]
    body["actions"][0].update(action_id=action_id, value=value)
    return body


async def test_home_shows_what_waits_and_lets_an_admin_kill(
    home: tuple[str, Store, SlackStandIn],
) -> None:
    url, store, slack = home
    signer = SlackRequestSigner(SECRET)
    run = await store.create_run(Run(goal="restart web <!channel>", requester=REQUESTER))
    subject = ToolCallSubject(subtask_id="s1", tool="restart", arguments={"target": "web"})
    approval = await store.create_approval(
        Approval(run_id=run.id, subject=subject, risk=RiskLevel.HIGH, requester=REQUESTER)
    )

    assert (await post_to_bot(url, signer.event(opened(APPROVER, 1))))[0] == 200
    view = (await slack.wait_for_call("views.publish", timeout=10)).args
    assert view["user_id"] == APPROVER
    text = str(view["view"])
    assert approval.id in text and "airlock_approve" in text and "airlock_kill" not in text

    since = len(slack.calls)
    await SpendLedger(store=store).charge(REQUESTER, 1.25)  # a model call of today
    assert (await post_to_bot(url, signer.event(opened(ADMIN, 2))))[0] == 200
    admin_view = (await slack.wait_for_call("views.publish", since=since, timeout=10)).args
    assert "airlock_kill" in str(admin_view["view"]) and "<!channel>" not in str(admin_view["view"])
    assert "Spend today: $1.25" in str(admin_view["view"])
    status = await AdminCommands(store=store, control=RunControl(
        store=store, authority=Authority(admins=[ADMIN]), audit=Audit(store=store)
    )).answer(ADMIN, "status")  # fmt: skip
    assert "$1.25 spent today" in status

    since = len(slack.calls)
    kill = pressed_in_home("airlock_kill", run.id, ADMIN)
    assert (await post_to_bot(url, signer.interaction(kill)))[0] == 200
    await slack.wait_for_call("views.publish", since=since, timeout=10)
    assert (await store.get_run(run.id)).status is RunStatus.KILLED
    assert (await store.get_approval(approval.id)).status is ApprovalStatus.CANCELLED

    late = pressed_in_home("airlock_approve", approval.id, APPROVER)
    assert (await post_to_bot(url, signer.interaction(late)))[0] == 200
    dm = await slack.wait_for_call("chat.postMessage", timeout=10)
    assert dm.args["channel"] == APPROVER and "Already cancelled" in dm.args["text"]

    async def audited() -> bool:
        return any(e.kind == "run_killed" for e in await store.list_audit(run.id))

    await eventually(audited)


async def test_home_shows_someones_newest_runs_among_more_than_ten_thousand(
    home: tuple[str, Store, SlackStandIn],
) -> None:
    url, store, slack = home
    for start in range(0, 10_050, 525):  # older runs of others, more than Home ever loaded
        await asyncio.gather(*(store.create_run(Run(goal=f"other {i}", requester="U0OTHER"))
                               for i in range(start, min(start + 525, 10_050))))  # fmt: skip
    mine = [await store.create_run(Run(goal=f"mine {i}", requester=REQUESTER)) for i in range(12)]
    running = await store.get_run(mine[-1].id)
    await store.save_run(running.model_copy(update={"status": RunStatus.PLANNING}))

    signer = SlackRequestSigner(SECRET)
    assert (await post_to_bot(url, signer.event(opened(REQUESTER, 3))))[0] == 200
    view = str((await slack.wait_for_call("views.publish", timeout=30)).args["view"])
    shown = [run.id for run in mine if run.id in view]
    assert shown == [run.id for run in mine[2:]]  # the newest ten
    assert view.index(mine[-1].id) < view.index(mine[2].id)  # newest first

    since = len(slack.calls)
    assert (await post_to_bot(url, signer.event(opened(ADMIN, 4))))[0] == 200
    admin = str((await slack.wait_for_call("views.publish", since=since, timeout=30)).args["view"])
    assert "10062 run(s) in flight" in admin and mine[-1].id in admin


async def test_home_opens_plainly_when_slack_refuses_it(
    home: tuple[str, Store, SlackStandIn],
) -> None:
    url, _, slack = home
    slack.workspace.add_user(APPROVER, name="ana")
    slack.fail_next("views.publish", error="invalid_arguments")
    assert (await post_to_bot(url, SlackRequestSigner(SECRET).event(opened(APPROVER, 3))))[0] == 200

    async def published() -> bool:
        return any(c.response["ok"] for c in slack.calls_to("views.publish"))

    await eventually(published)
    refused, plain = slack.calls_to("views.publish")
    assert not refused.response["ok"] and "would not show this Home" in str(plain.args["view"])
