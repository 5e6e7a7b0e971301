"""Slack ack latency: how fast `/slack/events` answers Slack, against a bare Bolt app.

    python -m bench.slack_ack [--n 1000]

Both apps are real Bolt AsyncApps served over HTTP by aiohttp on loopback, with the Web API
pointed at the local Slack stand-in. The bare app only acknowledges. airlock's app is the
one `airlock serve` builds (goal intake, approval buttons), on a SQLite store; runs it
creates are recorded but not executed, so what is measured is the front end. Each request
is a signed app_mention (a new event id each time) or a signed button click on an approval.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from rich.console import Console
from rich.table import Table
from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from agent_core.approvals import Authority, DecisionService
from agent_core.audit.trail import Audit
from agent_core.config import Settings
from agent_core.models import Approval, RiskLevel, ToolCallSubject, new_id
from agent_core.runs.control import RunControl
from agent_core.runs.limits import Admission, Limits
from agent_core.store import Store, open_store
from agent_core.testing.slack_requests import SlackRequestSigner, load_json_payload
from agent_core.testing.slack_server import SlackStandIn
from bot.slack.admin import AdminCommands
from bot.slack.app import build_app
from bot.slack.channel import SlackChannel
from bot.slack.goals import GoalIntake, register_goals
from bot.slack.listeners import register_approvals

SECRET = "bench-signing-secret"
TOKEN = "xoxb-bench"
MENTION = load_json_payload("app_mention.json")
CLICK = load_json_payload("block_actions.json")


def bare_app(client: AsyncWebClient) -> AsyncApp:
    app = AsyncApp(client=client, signing_secret=SECRET)

    @app.event("app_mention")
    async def mention(ack: AsyncAck) -> None:
        await ack()

    @app.action("airlock_approve")
    async def click(ack: AsyncAck) -> None:
        await ack()

    return app


async def _measured_elsewhere(run_id: str) -> None:
    """No runner: this benchmark measures the acknowledgement, not the run."""


async def airlock_app(
    client: AsyncWebClient, store: Store, *, capacity: int
) -> tuple[AsyncApp, GoalIntake]:
    # One person sends every mention: the budgets are checked, the hourly limit would refuse.
    settings = Settings(slack_signing_secret=SECRET, approvers=[CLICK["user"]["id"]],
                        runs_per_user_per_hour=0)  # fmt: skip
    app = build_app(settings, client=client, store=store)  # as `airlock serve` builds it
    channel = SlackChannel(client=client, store=store)
    authority = Authority(approvers=settings.approvers)
    service = DecisionService(store=store, authority=authority, audit=Audit(store=store))
    intake = GoalIntake(store=store, submit=_measured_elsewhere,
                        remember_status=channel.remember_status,
                        admission=Admission(store=store,
                                            limits=Limits.from_settings(settings)),
                        # Room for every mention sent: a goal refused for a full queue is
                        # answered with a post, and what is measured is the normal path.
                        capacity=capacity)  # fmt: skip
    control = RunControl(store=store, authority=authority, audit=Audit(store=store))
    register_goals(app, intake, AdminCommands(store=store, control=control))
    register_approvals(app, service=service, channel=channel, intake=intake)
    return app, intake


async def _nothing() -> None:
    """The bare app leaves no work behind its answers."""


async def serve(app: AsyncApp) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app.web_app(), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}/slack/events"


def mention(i: int) -> dict[str, Any]:
    body = copy.deepcopy(MENTION)
    body["event_id"] = f"Ev{i:08d}"
    body["event"]["ts"] = body["event"]["event_ts"] = f"1595926230.{i:06d}"
    return body


def click(approval_id: str) -> dict[str, Any]:
    body = copy.deepcopy(CLICK)
    body["actions"][0].update(action_id="airlock_approve", value=approval_id)
    return body


async def timed(http: aiohttp.ClientSession, url: str, requests: list[Any]) -> list[float]:
    samples = []
    for body, headers in requests:
        start = time.perf_counter()
        async with http.post(url, data=body.encode(), headers=headers) as response:
            await response.read()
            assert response.status == 200, response.status
        samples.append((time.perf_counter() - start) * 1000)
    return samples


def p99(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]


async def measure(n: int) -> list[tuple[str, list[float], list[float]]]:
    """Per app (bare Bolt, then airlock): ack latencies of mentions and of clicks, in ms."""
    signer = SlackRequestSigner(SECRET)
    rows = []
    with tempfile.TemporaryDirectory(prefix="airlock-bench-") as folder:
        store = await open_store(f"sqlite:///{Path(folder) / 'bench.db'}")
        subject = ToolCallSubject(subtask_id="s1", tool="deploy", arguments={"env": "prod"})
        approvals = [
            await store.create_approval(Approval(run_id=f"run_{i}", subject=subject,
                                                 risk=RiskLevel.HIGH, requester="W0REQ"))
            for i in range(n)
        ]  # fmt: skip
        async with SlackStandIn(bot_token=TOKEN) as slack, aiohttp.ClientSession() as http:
            client = AsyncWebClient(token=TOKEN, base_url=slack.api_url)
            airlock, intake = await airlock_app(client, store, capacity=n)
            apps = (("bare Bolt", bare_app(client), _nothing), ("airlock", airlock, intake.settled))
            for name, app, settled in apps:
                runner, url = await serve(app)
                mentions = [signer.event(mention(i)) for i in range(n)]
                clicks = [signer.interaction(click(a.id)) for a in approvals]
                await timed(http, url, mentions[:20])  # warm-up (auth.test, connections)
                mentions_ms = await timed(http, url, mentions[20:])
                await settled()  # the clicks are measured alone, not beside the goals' intake
                rows.append((name, mentions_ms, await timed(http, url, clicks)))
                await runner.cleanup()
                # The next app gets fresh approvals to click (ids of the real form).
                approvals = [a.model_copy(update={"id": new_id("apr")}) for a in approvals]
                for approval in approvals:
                    await store.create_approval(approval)
            await intake.close()
        await store.close()
    return rows


async def main(n: int) -> None:
    rows = await measure(n)
    table = Table(title=f"/slack/events ack latency, {n} requests each (ms)")
    for column in ("app", "mention median", "mention p99", "click median", "click p99"):
        table.add_column(column, justify="left" if column == "app" else "right")
    for name, mentions_ms, clicks_ms in rows:
        table.add_row(name, f"{statistics.median(mentions_ms):.2f}", f"{p99(mentions_ms):.2f}",
                      f"{statistics.median(clicks_ms):.2f}", f"{p99(clicks_ms):.2f}")  # fmt: skip
    Console(width=120).print(table)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000, help="requests of each kind")
    asyncio.run(main(parser.parse_args().n))
