"""App Home: your runs, the approvals waiting for you, and for admins what is in flight.

The approval cards are the same as in threads, buttons included, so a decision can be made
from Home; admins get a kill button per run and today's spend.

Home opens whatever the store holds: every item is fitted on its own, one that still cannot
be shown becomes a plain line naming it, and items past the view's block and size limits are
counted instead of shown.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_sdk.errors import SlackApiError, SlackObjectFormationError
from slack_sdk.models.blocks import (
    Block,
    ButtonElement,
    ContextBlock,
    DividerBlock,
    HeaderBlock,
    SectionBlock,
)
from slack_sdk.models.views import View
from slack_sdk.web.async_client import AsyncWebClient

from agent_core import ACTIVE, Approval, Authority, Run, RunControl, SpendLedger, Store
from bot.slack.blocks import approval_blocks, mrkdwn
from bot.slack.fit import VIEW_BLOCKS, VIEW_BYTES, cut
from bot.slack.render import inert, inert_code, mention
from bot.slack.visibility import goal_seen_by

__all__ = ["KILL", "home_view", "register_home"]

logger = logging.getLogger(__name__)

KILL = "airlock_kill"
"""action_id of a Home kill button; its value is the run id."""
_MAX_APPROVALS = 8
_MAX_RUNS = 10
_ADMIN_BLOCKS = _MAX_RUNS + 3  # kept free for the admin's part of the view
_VIEW_REFUSED = frozenset({"invalid_arguments", "invalid_blocks", "view_too_large"})
"""Slack's answers to a view it will not show (views.publish); a plainer one may pass."""


async def home_view(store: Store, authority: Authority, user: str) -> View:
    """The Home tab of ``user``."""
    mine = await store.list_runs(requester=user, newest_first=True, limit=_MAX_RUNS)
    blocks: list[Block] = [HeaderBlock(text="Your runs")]
    blocks += [_run_line(r) for r in mine] or [_note("No runs yet: mention me with a goal.")]
    waiting = [a for a in await store.list_pending_approvals()
               if await authority.refusal(a, user) is None]  # fmt: skip
    blocks += [DividerBlock(), HeaderBlock(text="Waiting for you")]
    blocks += _cards(waiting, room=VIEW_BLOCKS - len(blocks) - _ADMIN_BLOCKS - 1)
    if not waiting:
        blocks.append(_note("Nothing to decide."))
    if await authority.is_admin(user):
        blocks += [DividerBlock(), HeaderBlock(text="In flight (admin)")]
        blocks += _admin(await _in_flight(store), await SpendLedger(store=store).today(),
                         viewer=user)  # fmt: skip
    return View(type="home", blocks=blocks)


def _cards(waiting: list[Approval], *, room: int) -> list[Block]:
    """The cards of ``waiting``, each on its own, as many as fit in ``room`` blocks and the
    view's size; a card that cannot be built is a plain line; the rest are counted."""
    blocks: list[Block] = []
    text = 0
    for shown, approval in enumerate(waiting):
        card = _card(approval)
        length = sum(len(json.dumps(b.to_dict())) for b in card)
        if shown == _MAX_APPROVALS or len(blocks) + len(card) > room or text + length > VIEW_BYTES:
            more = len(waiting) - shown
            blocks.append(_note(f"… and {more} more waiting: find them in their threads."))
            break
        blocks += card
        text += length
    return blocks


def _card(approval: Approval) -> list[Block]:
    """The request's card without its header (this section's says it), or a plain line."""
    try:
        card = approval_blocks(approval)[1:]
        for block in card:
            block.to_dict()  # validated now, so one bad record cannot break the whole view
        return card
    except (SlackObjectFormationError, ValueError, KeyError) as error:
        logger.warning("approval not shown in Home", extra={"approval_id": approval.id,
                       "error": type(error).__name__})  # fmt: skip
        return [_note(f"`{inert_code(approval.id)}` ({approval.risk.value}) could not be shown "
                      "here; find it in its thread.")]  # fmt: skip


def _plain_home(error: SlackApiError) -> View:
    why = cut(inert_code(str(error.response.get("error"))), 100)
    text = (f"Slack would not show this Home in full (`{why}`). Your runs and the approvals "
            "waiting for you are in their threads.")  # fmt: skip
    return View(type="home", blocks=[HeaderBlock(text="airlock"), _note(text)])


def _run_line(run: Run) -> SectionBlock:
    text = f"`{inert_code(run.id)}` *{run.status.value}* {cut(inert(run.goal), 200)}"
    return SectionBlock(text=mrkdwn(text))


def _note(text: str) -> ContextBlock:
    return ContextBlock(elements=[mrkdwn(cut(text, 3000))])


async def _in_flight(store: Store) -> list[Run]:
    """Every run not over, newest first (one moving between statuses meanwhile, once)."""
    runs: dict[str, Run] = {}
    for status in ACTIVE:
        for run in await store.list_runs(status=status, newest_first=True, limit=100_000):
            runs.setdefault(run.id, run)
    return sorted(runs.values(), key=lambda r: r.created_at, reverse=True)


def _admin(active: list[Run], spend: float, *, viewer: str) -> list[Block]:
    blocks: list[Block] = [_note(f"Spend today: ${spend:.2f} · {len(active)} run(s) in flight")]
    for run in active[:_MAX_RUNS]:
        blocks.append(SectionBlock(
            text=mrkdwn(f"`{inert_code(run.id)}` *{run.status.value}* {mention(run.requester)}: "
                        f"{goal_seen_by(run, viewer, limit=150)}"),
            accessory=ButtonElement(text="Kill", action_id=KILL, value=run.id[:2000],
                                    style="danger"),
        ))  # fmt: skip
    return blocks


def register_home(app: AsyncApp, *, store: Store, control: RunControl) -> None:
    """Publish Home when it is opened, and handle its kill buttons."""

    async def publish(client: AsyncWebClient, user: str) -> None:
        view = await home_view(store, control.authority, user)
        try:
            await client.views_publish(user_id=user, view=view)
        except SlackApiError as error:
            if error.response.get("error") not in _VIEW_REFUSED:
                raise
            # Home must open: a plain view that says so rather than nothing.
            logger.warning("home refused", extra={"error": error.response.get("error")})
            await client.views_publish(user_id=user, view=_plain_home(error))

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
