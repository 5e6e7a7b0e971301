"""What an approval card says a call is for: the plan step, the goal, who asked, the thread.

Step descriptions and goals are model and person text: they are shown through
:func:`~bot.slack.render.inert` and cut by :mod:`bot.slack.fit`. The requester is a mention
built from their user id, never from text, and the thread link is Slack's own permalink,
shown only when it has the shape of one. A goal said in a direct message (and the steps the
model made of it) stays with its requester: copies for anyone else show a placeholder.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from agent_core import Approval, Run, Store, ToolCallSubject
from bot.slack.fit import cut
from bot.slack.render import inert, inert_code, mention
from bot.slack.visibility import PRIVATE_GOAL

__all__ = ["CardContext", "card_context", "context_text", "thread_link", "thread_permalink"]

logger = logging.getLogger(__name__)

_THREAD = "slack:thread-link:"
"""Session-fact scope prefix (+ run id): Slack's permalink to the run's thread."""
_KEEP_SECONDS = 90 * 86_400.0

_GOAL_TEXT = 500
_STEP_TEXT = 600
_PERMALINK = re.compile(
    r"https://[a-z0-9-]+(?:\.[a-z0-9-]+)*\.slack\.com/archives/[A-Z0-9]{2,30}/p\d{6,20}"
    r"(?:\?thread_ts=\d{1,12}\.\d{1,8}&cid=[A-Z0-9]{2,30})?"
)


@dataclass(kw_only=True, frozen=True)
class CardContext:
    """Why a card asks: the raw texts (made inert where shown) and the run's thread."""

    goal: str | None = None
    """The run's goal; None when this audience may not read it."""
    step_id: str | None = None
    """The plan step the call belongs to (a call's card; None on a plan's)."""
    step: str | None = None
    """That step's description; None when unknown or not for this audience."""
    requester: str | None = None
    """Who asked for the run (a Slack user id)."""
    thread: str | None = None
    """A permalink to the run's thread, if Slack gave one."""


def thread_link(permalink: object) -> str | None:
    """``permalink`` if it has the shape of a Slack message link, else None (never shown)."""
    if isinstance(permalink, str) and _PERMALINK.fullmatch(permalink):
        return permalink
    return None


async def thread_permalink(client: AsyncWebClient, store: Store, run: Run) -> str | None:
    """Slack's permalink to ``run``'s thread (``chat.getPermalink``, no scope needed), asked
    once per run and then remembered; None when Slack gives none."""
    if run.channel is None or run.thread_ts is None:
        return None
    scope = _THREAD + run.id
    known = (await store.get_facts(scope)).get("url")
    if known:
        return thread_link(known)
    try:
        found = await client.chat_getPermalink(channel=run.channel, message_ts=run.thread_ts)
    except SlackApiError as error:
        logger.info("no permalink for the thread", extra={"run_id": run.id,
                    "error": error.response.get("error")})  # fmt: skip
        return None
    link = thread_link(found.get("permalink"))
    if link is not None:
        await store.set_fact(scope, "url", link, ttl_seconds=_KEEP_SECONDS)
    return link


def card_context(run: Run, approval: Approval, *, thread: str | None, private: bool) -> CardContext:
    """The context of ``approval`` in ``run``; ``private`` hides the goal and the step's
    description (a copy, outside the direct message the goal was said in)."""
    subject = approval.subject
    step_id = subject.subtask_id if isinstance(subject, ToolCallSubject) else None
    plan = run.plan.subtasks if run.plan is not None else []
    step = next((s.description for s in plan if s.id == step_id), None)
    return CardContext(
        goal=None if private else run.goal,
        step_id=step_id,
        step=None if private else step,
        requester=run.requester,
        thread=thread,
    )


def context_text(context: CardContext) -> str:
    """The card's "what for" section, as mrkdwn."""
    lines = []
    if context.step_id is not None:
        step = f"`{cut(inert_code(context.step_id), 64)}`"
        said = f": {cut(inert(context.step), _STEP_TEXT)}" if context.step else ""
        lines.append(f"*For step* {step}{said}")
    goal = cut(inert(context.goal), _GOAL_TEXT) if context.goal is not None else PRIVATE_GOAL
    lines.append(f"*Goal:* {goal}")
    where = []
    if context.requester:
        where.append(f"*Asked by* {mention(context.requester)}")
    if context.thread:
        where.append(f"<{context.thread}|Open the run's thread>")
    if where:
        lines.append(" · ".join(where))
    return "\n".join(lines)
