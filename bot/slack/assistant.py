"""airlock in Slack's assistant side panel (Bolt's ``AsyncAssistant``).

A thread opened in the panel greets the person and suggests three prompts. What they write
there is answered with the same authority as the slash commands: "What's waiting for my
approval?" lists the requests they may decide (as App Home does), "My runs" is
``/agent status``, and anything else is a goal, started as a direct message starts one
(halts and limits apply). Only threads the panel opened are the assistant's: a reply in a
run's thread in a direct message stays what it was (an answer to the run's question, a typed
decision, or conversation), and so does a reply to a question asked in a panel thread.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from slack_bolt.context.say.async_say import AsyncSay
from slack_bolt.context.set_suggested_prompts.async_set_suggested_prompts import (
    AsyncSetSuggestedPrompts,
)
from slack_bolt.listener_matcher.async_listener_matcher import AsyncCustomListenerMatcher
from slack_bolt.middleware.assistant.async_assistant import AsyncAssistant
from slack_sdk.web.async_client import AsyncWebClient

from agent_core import (
    Approval,
    Authority,
    ChannelKind,
    PlanSubject,
    Store,
    ToolCallSubject,
)
from bot.slack.admin import AdminCommands
from bot.slack.channel import SlackChannel
from bot.slack.fit import cut
from bot.slack.goals import GoalIntake
from bot.slack.listeners import TYPED_DECISION
from bot.slack.render import inert, inert_code

__all__ = ["PROMPTS", "build_assistant"]

WAITING = "What's waiting for my approval?"
MY_RUNS = "My runs"
START = "Start a goal"
PROMPTS = [{"title": p, "message": p} for p in (WAITING, MY_RUNS, START)]
"""The suggested prompts: each is sent as written when clicked."""
_THREAD = "slack:assistant-thread:"
"""Session-fact scope prefix (+ "channel thread_ts"): a thread the panel opened."""
_KEEP_SECONDS = 90 * 86_400.0
_LISTED = 15
_GREETING = ("Hi! Give me a goal and I will plan it, run it, and ask before anything risky. "
             "Or pick one of the suggestions below.")  # fmt: skip


@dataclass(kw_only=True)
class _Panel:
    store: Store
    authority: Authority
    admin: AdminCommands
    intake: GoalIntake
    channel: SlackChannel

    async def started(self, event: dict[str, Any], say: AsyncSay,
                      set_suggested_prompts: AsyncSetSuggestedPrompts) -> None:  # fmt: skip
        thread = event["assistant_thread"]
        where = f"{thread['channel_id']} {thread['thread_ts']}"
        await self.store.set_fact(_THREAD + where, "user", str(thread["user_id"]),
                                  ttl_seconds=_KEEP_SECONDS)  # fmt: skip
        await say(_GREETING)
        await set_suggested_prompts(prompts=PROMPTS, title="Try one of these")

    async def is_ours(self, event: dict[str, Any]) -> bool:
        """A person's message in a thread the panel opened, that is not an answer to a run's
        question there nor a typed decision (those go where they always went)."""
        channel, thread_ts = event.get("channel"), event.get("thread_ts")
        if not channel or not thread_ts or event.get("subtype") or "user" not in event:
            return False
        if not (await self.store.get_facts(f"{_THREAD}{channel} {thread_ts}")).get("user"):
            return False
        if TYPED_DECISION.match(event.get("text") or ""):
            return False
        return await self.channel.question_in(channel, thread_ts) is None

    async def said(self, event: dict[str, Any], client: AsyncWebClient, say: AsyncSay) -> None:
        text, user = (event.get("text") or "").strip(), event["user"]
        asked = _normal(text)
        if asked == _normal(WAITING):
            await say(await self._waiting(user))
        elif asked == _normal(MY_RUNS):
            await say(await self.admin.answer(user, "status"))
        elif asked == _normal(START):
            await say("What should I do? Write the goal here, e.g. _find out why staging is slow_.")
        else:
            delivery = event.get("client_msg_id") or event.get("ts")
            # The assistant panel's threads are the user's direct messages with the app.
            await self.intake.start(client, goal=text, user=user, channel=event["channel"],
                                    thread_ts=event["thread_ts"], kind=ChannelKind.DIRECT,
                                    delivery=delivery)  # fmt: skip

    async def _waiting(self, user: str) -> str:
        """The requests ``user`` may decide now: what App Home lists under "Waiting for you"."""
        waiting = [a for a in await self.store.list_pending_approvals()
                   if await self.authority.refusal(a, user) is None]  # fmt: skip
        if not waiting:
            return "Nothing is waiting for your approval."
        lines = [f"{len(waiting)} request(s) waiting for you:"]
        lines += [_line(a) for a in waiting[:_LISTED]]
        if len(waiting) > _LISTED:
            lines.append(f"… {len(waiting) - _LISTED:,} more: see airlock's Home tab.")
        lines.append("Decide with the buttons in each run's thread, or `approve <id>` here.")
        return cut("\n".join(lines), 3900)


def _line(approval: Approval) -> str:
    subject = approval.subject
    if isinstance(subject, ToolCallSubject):
        step = cut(inert_code(subject.subtask_id), 60)
        what = f"`{cut(inert_code(subject.tool), 100)}` in step `{step}`"
    elif isinstance(subject, PlanSubject):
        what = f"the plan ({len(subject.plan.subtasks)} steps)"
    else:
        what = cut(inert(str(subject)), 100)
    return (f"• `{inert_code(approval.id)}` {approval.risk.value}: {what} · run "
            f"`{inert_code(approval.run_id)}`")  # fmt: skip


def _normal(text: str) -> str:
    return re.sub(r"[^a-z ]", "", text.lower().replace("’", "'")).strip()


def build_assistant(
    *, store: Store, authority: Authority, admin: AdminCommands, intake: GoalIntake,
    channel: SlackChannel,
) -> AsyncAssistant:  # fmt: skip
    """The side panel's listeners (``app.assistant(build_assistant(...))``)."""
    panel = _Panel(store=store, authority=authority, admin=admin, intake=intake, channel=channel)
    assistant = AsyncAssistant()

    async def on_started(event: dict[str, Any], say: AsyncSay,
                         set_suggested_prompts: AsyncSetSuggestedPrompts) -> None:  # fmt: skip
        await panel.started(event, say, set_suggested_prompts)

    async def on_context(event: dict[str, Any]) -> None:
        """Where the person is looking changed; airlock keeps no context (Bolt's default
        would store it on the thread's first message with extra API calls)."""

    async def ours(event: dict[str, Any]) -> bool:
        return await panel.is_ours(event)

    async def on_message(event: dict[str, Any], client: AsyncWebClient, say: AsyncSay) -> None:
        await panel.said(event, client, say)

    assistant.thread_started(on_started)
    assistant.thread_context_changed(on_context)
    # Bolt joins the matchers to its own list (its type hint says one matcher; it needs a list).
    matchers = [AsyncCustomListenerMatcher(app_name="airlock", func=ours)]
    assistant.user_message(on_message, matchers=matchers)  # type: ignore[arg-type]
    return assistant
