"""The whole of an approval request, one click from its card: a modal that pages through it.

A card that had to cut a call, its preview or a plan says so and offers "View full call"
(or "View the whole plan"). The modal shows every character of it, rendered as on the card
(secrets masked, invisible characters shown, nothing taking effect as markup), in pages of
sections within Slack's limits, with Next and Previous buttons that update it in place.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.models.blocks import ActionsBlock, Block, ButtonElement, ContextBlock
from slack_sdk.models.views import View
from slack_sdk.web.async_client import AsyncWebClient

from agent_core import Approval, Authority, NotFound, PlanSubject, Store
from bot.slack.blocks import RISK_BADGE, VIEW_FULL, mrkdwn, plan_lines, section
from bot.slack.fit import SECTION_TEXT, cut, pack, split
from bot.slack.render import code_block, inert, inert_code, json_text, plural

__all__ = ["VIEW_PAGE", "full_view", "register_full_call"]

logger = logging.getLogger(__name__)

VIEW_PAGE = "airlock_view_page"
"""action_id of the Next / Previous buttons in the modal; value: ``<approval id> <page>``."""
_PAGE_SECTIONS = 8  # ~24,000 characters a page: under a view's 250 kB even if all escaped
_PIECE = SECTION_TEXT - 10

ShownAt = Callable[[str], Awaitable[set[tuple[str, str]]]]
"""Where an approval's request messages are: (channel, ts) pairs."""


def full_view(approval: Approval, page: int) -> View:
    """Page ``page`` (from 0; clamped) of the whole request ``approval``."""
    texts = _sections(approval)
    pages = max(1, -(-len(texts) // _PAGE_SECTIONS))
    page = min(max(page, 0), pages - 1)
    blocks: list[Block] = [
        section(t) for t in texts[page * _PAGE_SECTIONS : (page + 1) * _PAGE_SECTIONS]
    ]
    blocks.append(ContextBlock(elements=[mrkdwn(f"Page {page + 1} of {pages}")]))
    moves = []
    if page > 0:
        moves.append(ButtonElement(text="‹ Previous page", action_id=VIEW_PAGE,
                                   value=f"{approval.id} {page - 1}"))  # fmt: skip
    if page < pages - 1:
        moves.append(ButtonElement(text="Next page ›", action_id=VIEW_PAGE,
                                   value=f"{approval.id} {page + 1}"))  # fmt: skip
    if moves:
        blocks.append(ActionsBlock(elements=moves))
    title = "The whole plan" if isinstance(approval.subject, PlanSubject) else "The whole call"
    return View(type="modal", title=title, close="Close", private_metadata=approval.id,
                blocks=blocks)  # fmt: skip


def _sections(approval: Approval) -> list[str]:
    """The whole request as section texts, none over a section's limit."""
    subject = approval.subject
    badge = RISK_BADGE[approval.risk]
    if isinstance(subject, PlanSubject):
        steps = plural(len(subject.plan.subtasks), "step")
        head = f"*The plan* ({steps}) {badge} · `{approval.id}`"
        return [head, *pack(plan_lines(subject.plan), _PIECE)]
    texts = [f"*{cut(inert(subject.tool), 1000)}* {badge} · `{approval.id}`\n*Arguments*"]
    texts += _code(json_text(subject.arguments, indent=2))
    if subject.preview:
        texts += ["*What it would do*", *_code(subject.preview)]
    return texts


def _code(text: str) -> list[str]:
    return [code_block(piece) for piece in split(inert_code(text), _PIECE)]


def register_full_call(
    app: AsyncApp, *, store: Store, authority: Authority, shown_at: ShownAt
) -> None:
    """Open the whole request from a card's "View …" button, and page through it.

    Whoever clicks it on one of the request's own messages may see it; elsewhere (App Home),
    the requester and whoever may decide it.
    """

    @app.action(VIEW_FULL)
    async def on_view(ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient) -> None:
        await ack()
        approval = await _approval(store, str(body["actions"][0].get("value", "")))
        user = body["user"]["id"]
        if approval is None or not await _may_see(approval, user, body, authority, shown_at):
            view = View(
                type="modal",
                title="The whole call",
                close="Close",
                blocks=[section("You may not see this request, or it is gone.")],
            )
        else:
            view = full_view(approval, 0)
        await _slack(client.views_open(trigger_id=body["trigger_id"], view=view))

    @app.action(VIEW_PAGE)
    async def on_page(ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient) -> None:
        await ack()
        approval_id, _, page = str(body["actions"][0].get("value", "")).rpartition(" ")
        view = body.get("view") or {}
        if view.get("private_metadata") != approval_id or not page.isdigit():
            return  # not a page of a modal we opened for this request
        approval = await _approval(store, approval_id)
        if approval is not None:
            await _slack(client.views_update(view_id=view["id"], hash=view.get("hash"),
                                             view=full_view(approval, int(page))))  # fmt: skip


async def _approval(store: Store, approval_id: str) -> Approval | None:
    try:
        return await store.get_approval(approval_id)
    except NotFound:
        return None


async def _may_see(
    approval: Approval, user: str, body: dict[str, Any], authority: Authority, shown_at: ShownAt
) -> bool:
    container = body.get("container") or {}
    where = (str(container.get("channel_id")), str(container.get("message_ts")))
    if where in await shown_at(approval.id) or user == approval.requester:
        return True
    return await authority.refusal(approval, user) is None


async def _slack(call: Awaitable[Any]) -> None:
    try:
        await call
    except SlackApiError as error:  # an expired trigger, a view changed meanwhile: no harm
        logger.warning("slack view failed", extra={"error": error.response.get("error")})
