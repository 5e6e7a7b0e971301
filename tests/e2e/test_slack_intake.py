"""Goal intake off the request path, through the real Bolt app over signed HTTP: a burst of
mentions while intake is slow is acknowledged at once and loses none (each becomes a run, or
its thread is told it was not taken), and a replayed mention still starts one run."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from prometheus_client import REGISTRY
from slack_sdk.web.async_client import AsyncWebClient

from agent_core.approvals import Authority
from agent_core.audit.trail import Audit
from agent_core.config import Settings
from agent_core.models import ChannelKind
from agent_core.runs.control import RunControl
from agent_core.runs.limits import Admission, Limits
from agent_core.store import Store, open_store
from agent_core.testing.slack_requests import SlackRequestSigner, load_json_payload, post_to_bot
from agent_core.testing.slack_server import SlackStandIn
from bot.slack.admin import AdminCommands
from bot.slack.app import build_app
from bot.slack.goals import BUSY, STOPPING, GoalIntake, register_goals
from tests.support import eventually

SECRET = "intake-signing-secret"
TOKEN = "xoxb-intake"
MENTION = load_json_payload("app_mention.json")
CHANNEL = MENTION["event"]["channel"]


@dataclass(kw_only=True)
class Bot:
    url: str
    slack: SlackStandIn
    store: Store
    intake: GoalIntake
    signer: SlackRequestSigner
    submitted: list[str]
    release: asyncio.Event
    """Set it to let submissions finish: until then the first one blocks intake."""


@pytest.fixture
async def bot(tmp_path: Path) -> AsyncIterator[Bot]:
    store = await open_store(f"sqlite:///{tmp_path / 'airlock.db'}")
    async with SlackStandIn(bot_token=TOKEN) as slack:
        client = AsyncWebClient(token=TOKEN, base_url=slack.api_url)
        # With the store, as `airlock serve` builds it: replays are dropped.
        app = build_app(Settings(slack_signing_secret=SECRET), client=client, store=store)
        submitted: list[str] = []
        release = asyncio.Event()

        async def submit(run_id: str) -> None:
            submitted.append(run_id)
            await release.wait()  # a runner too busy to take the run yet

        async def remember(*_: object) -> None:
            return None

        intake = GoalIntake(store=store, submit=submit, remember_status=remember,
                            admission=Admission(store=store, limits=Limits()),
                            capacity=3, workers=1)  # fmt: skip
        control = RunControl(store=store, authority=Authority(), audit=Audit(store=store))
        register_goals(app, intake, AdminCommands(store=store, control=control))
        runner = web.AppRunner(app.web_app(), access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        url = f"http://127.0.0.1:{runner.addresses[0][1]}/slack/events"
        try:
            yield Bot(url=url, slack=slack, store=store, intake=intake,
                      signer=SlackRequestSigner(SECRET), submitted=submitted,
                      release=release)  # fmt: skip
        finally:
            release.set()
            await intake.close(grace_seconds=10)
            await runner.cleanup()
            await store.close()


def mention(i: int, *, user: str = "U0ASKER") -> dict[str, Any]:
    body = copy.deepcopy(MENTION)
    body["event_id"] = f"EvBURST{i:04d}"
    body["event"].update(ts=f"1595926230.{i:06d}", event_ts=f"1595926230.{i:06d}", user=user)
    return body


def dropped_again() -> float:
    """Deliveries dropped as repeated so far, in this process."""
    labels = {"reason": "delivered again"}
    return REGISTRY.get_sample_value("airlock_slack_requests_rejected_total", labels) or 0.0


def told_in(bot: Bot, thread_ts: str, text: str) -> bool:
    return any(c.args.get("thread_ts") == thread_ts and text in (c.args.get("text") or "")
               for c in bot.slack.calls_to("chat.postMessage"))  # fmt: skip


async def test_a_burst_while_intake_is_slow_is_acked_and_loses_no_goal(bot: Bot) -> None:
    # Six people (an hourly limit is per person) mention the bot while the runner is slow.
    first = mention(0, user="U0P0")
    assert (await post_to_bot(bot.url, bot.signer.event(first)))[0] == 200

    async def first_submitted() -> bool:
        return len(bot.submitted) == 1

    await eventually(first_submitted, timeout=10)  # the one worker now waits on the runner
    burst = [mention(i, user=f"U0P{i}") for i in range(1, 6)]
    for body in burst:  # each answered while intake is stuck on the first
        assert (await post_to_bot(bot.url, bot.signer.event(body)))[0] == 200
    # Three wait their turn; the two the queue could not hold are told so in their threads.
    refused = [b["event"]["ts"] for b in burst[3:]]
    for ts in refused:

        async def told(ts: str = ts) -> bool:
            return told_in(bot, ts, BUSY)

        await eventually(told, timeout=10)
    assert await bot.store.list_runs() != [] and len(bot.submitted) == 1
    # Slack retries a refused one (and someone replays it): its thread is not told again.
    before = dropped_again()
    again = burst[3]
    assert (await post_to_bot(bot.url, bot.signer.event(again, retry_num=1)))[0] == 200

    async def dropped() -> bool:
        return dropped_again() == before + 1

    await eventually(dropped, timeout=10)
    busy = [c for c in bot.slack.calls_to("chat.postMessage")
            if c.args.get("thread_ts") == again["event"]["ts"]]  # fmt: skip
    assert [c.args["text"] for c in busy] == [BUSY]

    bot.release.set()

    async def all_started() -> bool:
        return len(bot.submitted) == 4

    await eventually(all_started, timeout=10)
    runs = await bot.store.list_runs()
    started = {r.thread_ts for r in runs}
    assert started == {b["event"]["ts"] for b in [first, *burst[:3]]}
    # None lost: every mention is a run or was told in its thread, and never both.
    for body in [first, *burst]:
        ts = body["event"]["ts"]
        assert (ts in started) != told_in(bot, ts, BUSY), ts
    assert all(r.channel == CHANNEL and r.channel_kind is ChannelKind.PUBLIC for r in runs)


async def test_a_replayed_mention_is_acked_and_starts_one_run(bot: Bot) -> None:
    bot.release.set()
    request = bot.signer.event(mention(7))
    for _ in range(3):  # the same signed request, delivered again and again
        assert (await post_to_bot(bot.url, request))[0] == 200
    retry = bot.signer.event(mention(7), retry_num=1, retry_reason="http_timeout")
    assert (await post_to_bot(bot.url, retry))[0] == 200
    await bot.intake.close(grace_seconds=10)  # everything acknowledged has been taken
    [run] = await bot.store.list_runs()
    assert bot.submitted == [run.id]
    planning = [c for c in bot.slack.calls_to("chat.postMessage")
                if "planning" in (c.args.get("text") or "")]  # fmt: skip
    assert len(planning) == 1


async def test_goals_taken_are_started_on_close_and_later_ones_are_told(bot: Bot) -> None:
    for i in range(2):
        assert (await post_to_bot(bot.url, bot.signer.event(mention(10 + i, user=f"U0C{i}"))))[
            0
        ] == 200
    bot.release.set()
    await bot.intake.close(grace_seconds=10)
    assert len(bot.submitted) == 2 and len(await bot.store.list_runs()) == 2
    late = mention(20, user="U0LATE")
    assert (await post_to_bot(bot.url, bot.signer.event(late)))[0] == 200

    async def told() -> bool:
        return told_in(bot, late["event"]["ts"], STOPPING)

    await eventually(told, timeout=10)
    assert len(await bot.store.list_runs()) == 2
