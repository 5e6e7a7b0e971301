"""App Home: your runs, the approvals waiting for you, and for admins what is in flight.

The approval cards are the same as in threads, buttons included, so a decision can be made
from Home; admins get a kill button per run and today's spend.
"""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_sdk.models.blocks import (
    Block,
    ButtonElement,
    ContextBlock,
    DividerBlock,
    HeaderBlock,
    MarkdownTextObject,
    SectionBlock,
)
from slack_sdk.models.views import View
from slack_sdk.web.async_client import AsyncWebClient

from agent_core.approvals import Authority
from agent_core.control import ACTIVE, RunControl
from agent_core.limits import SpendLedger
from agent_core.models import Run
from agent_core.store import Store
from bot.blocks import approval_blocks, mention, safe
from bot.visibility import goal_seen_by

__all__ = ["KILL", "home_view", "register_home"]

KILL = "airlock_kill"
"""action_id of a Home kill button; its value is the run id."""
_MAX_APPROVALS = 8  # a Home view holds 100 blocks; each card takes up to seven
_MAX_RUNS = 10


async def home_view(store: Store, authority: Authority, user: str) -> View:
    """The Home tab of ``user``."""
    runs = await store.list_runs(limit=10_000)
    blocks: list[Block] = [HeaderBlock(text="Your runs")]
    mine = [r for r in runs if r.requester == user][-_MAX_RUNS:]
    blocks += [_run_line(r) for r in reversed(mine)] or [
        _note("No runs yet: mention me with a goal.")
    ]
    waiting = [a for a in await store.list_pending_approvals()
               if await authority.refusal(a, user) is None][:_MAX_APPROVALS]  # fmt: skip
    blocks += [DividerBlock(), HeaderBlock(text="Waiting for you")]
    for approval in waiting:
        blocks += approval_blocks(approval)[1:]  # the header is implied by this section's
    if not waiting:
        blocks.append(_note("Nothing to decide."))
    if await authority.is_admin(user):
        blocks += [DividerBlock(), HeaderBlock(text="In flight (admin)")]
        blocks += _admin(runs, await SpendLedger(store=store).today(), viewer=user)
    return View(type="home", blocks=blocks)


def _run_line(run: Run) -> SectionBlock:
    text = f"`{run.id}` *{run.status.value}* {safe(run.goal)[:200]}"
    return SectionBlock(text=MarkdownTextObject(text=text))


def _note(text: str) -> ContextBlock:
    return ContextBlock(elements=[MarkdownTextObject(text=text)])


def _admin(runs: list[Run], spend: float, *, viewer: str) -> list[Block]:
    active = [r for r in runs if r.status in ACTIVE][-_MAX_RUNS:]
    blocks: list[Block] = [_note(f"Spend today: ${spend:.2f} · {len(active)} run(s) in flight")]
    for run in active:
        blocks.append(SectionBlock(
            text=MarkdownTextObject(
                text=f"`{run.id}` *{run.status.value}* {mention(run.requester)}: "
                     f"{goal_seen_by(run, viewer, limit=150)}"),
            accessory=ButtonElement(text="Kill", action_id=KILL, value=run.id, style="danger"),
        ))  # fmt: skip
    return blocks


def register_home(app: AsyncApp, *, store: Store, control: RunControl) -> None:
    """Publish Home when it is opened, and handle its kill buttons."""

    async def publish(client: AsyncWebClient, user: str) -> None:
        view = await home_view(store, control.authority, user)
        await client.views_publish(user_id=user, view=view)

    @app.event("app_home_opened")
    async def on_open(event: dict[str, Any], client: AsyncWebClient) -> None:
        if event.get("tab", "home") == "home":
            await publish(client, event["user"])

    @app.action(KILL)
    async def on_kill(ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient) -> None:
        await ack()
        user = body["user"]["id"]
        await control.kill(
            body["actions"][0]["value"], by=user, reason=f"killed from Home by {user}"
        )
        await publish(client, user)
