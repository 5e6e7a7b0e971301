"""Slack ack latency: how fast `/slack/events` answers Slack, against a bare Bolt app.

    python -m bench.slack_ack [--n 1000]

Both apps are real Bolt AsyncApps served over HTTP by aiohttp on loopback, with the Web API
pointed at the local Slack stand-in, which runs in a process of its own (as Slack is not in
airlock's), through one shared HTTP session (as `airlock serve` builds its client). The bare
app only acknowledges. airlock's app is the one `airlock serve` builds (goal intake,
approval buttons), on a SQLite store; runs it creates are recorded but not executed, so what
is measured is the front end. Each request is a signed app_mention (a new event id each time)
or a signed button click on an approval, sent one after the other.

A third app is airlock's with its goal intake held: the mentions are taken and queued but not
started while they are timed (and told to ask again at the end), which is what a front end
whose intake ran in another process would do. It shows how much of airlock's gap to the bare
app is its own middleware and listener, and how much is the intake of earlier goals sharing
the process.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import statistics
import tempfile
import time
from dataclasses import dataclass
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
from bench import scale
from bot.slack.admin import AdminCommands
from bot.slack.app import build_app, build_client
from bot.slack.channel import SlackChannel
from bot.slack.goals import GoalIntake, register_goals
from bot.slack.listeners import register_approvals

SECRET = "bench-signing-secret"
TOKEN = scale.TOKEN  # its Slack stand-in's
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
    client: AsyncWebClient, store: Store, *, capacity: int, intake_tasks: int = 8
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
                        capacity=capacity, workers=intake_tasks)  # fmt: skip
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


@dataclass(kw_only=True)
class Measured:
    """One app's acknowledgement latencies, in ms."""

    app: str
    mentions: list[float]
    clicks: list[float] | None = None
    """None where clicks were not timed (the app with its intake held)."""


async def measure(n: int) -> list[Measured]:
    """Bare Bolt, airlock, and airlock with its intake held: ack latencies of ``n`` mentions
    each, and of ``n`` clicks for the first two."""
    signer = SlackRequestSigner(SECRET)
    rows = []
    with tempfile.TemporaryDirectory(prefix="airlock-bench-") as folder:
        store = await open_store(f"sqlite:///{Path(folder) / 'bench.db'}")
        # The Slack stand-in in a process of its own, as the scale-out benchmark runs it.
        async with scale.standin("slack", 0.0) as (api_url, _), aiohttp.ClientSession() as http:
            settings = Settings(slack_bot_token=TOKEN, slack_api_url=api_url)
            client = build_client(settings, session=http)
            airlock, intake = await airlock_app(client, store, capacity=n)
            held, waiting = await airlock_app(client, store, capacity=n, intake_tasks=0)
            apps = (("bare Bolt", bare_app(client), _nothing), ("airlock", airlock, intake.settled),
                    ("airlock, intake held", held, None))  # fmt: skip
            for number, (name, app, settled) in enumerate(apps):
                runner, url = await serve(app)
                mentions = [signer.event(mention(number * n + i)) for i in range(n)]
                await timed(http, url, mentions[:20])  # warm-up (auth.test, connections)
                row = Measured(app=name, mentions=await timed(http, url, mentions[20:]))
                if settled is not None:
                    await settled()  # the clicks are measured alone, not beside the goals' intake
                    approvals = [
                        await store.create_approval(approval(i)) for i in range(n)
                    ]  # fmt: skip
                    row.clicks = await timed(http, url, [signer.interaction(click(a.id))
                                                         for a in approvals])  # fmt: skip
                rows.append(row)
                await runner.cleanup()
            await intake.close()
            await waiting.close(grace_seconds=0)  # each held goal is told to ask again
        await store.close()
    return rows


def approval(i: int) -> Approval:
    subject = ToolCallSubject(subtask_id="s1", tool="deploy", arguments={"env": "prod"})
    return Approval(id=new_id("apr"), run_id=f"run_{i}", subject=subject, risk=RiskLevel.HIGH,
                    requester="W0REQ")  # fmt: skip


async def main(n: int) -> None:
    rows = await measure(n)
    bare = rows[0]
    table = Table(title=f"/slack/events ack latency, {n} requests each (ms)")
    for column in ("app", "mention median", "mention p99", "p99 vs bare", "click median",
                   "click p99"):  # fmt: skip
        table.add_column(column, justify="left" if column == "app" else "right")
    for row in rows:
        clicks = row.clicks or []
        table.add_row(row.app, f"{statistics.median(row.mentions):.2f}", f"{p99(row.mentions):.2f}",
                      f"{p99(row.mentions) / p99(bare.mentions):.2f}x",
                      f"{statistics.median(clicks):.2f}" if clicks else "",
                      f"{p99(clicks):.2f}" if clicks else "")  # fmt: skip
    Console(width=120).print(table)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000, help="requests of each kind")
    asyncio.run(main(parser.parse_args().n))
