"""Replies in a thread where a run asked a question (``ask_human``): who may answer it.

A run asks the person who asked for it, so only their reply is the answer; with
``AIRLOCK_APPROVERS_ANSWER_QUESTIONS=true`` approvers and admins may answer too. Anyone
else's reply stays conversation: it never reaches the run, in this process or another, and
its author is told once, privately, who can answer.
"""

from __future__ import annotations

from dataclasses import dataclass

from slack_sdk.web.async_client import AsyncWebClient

from agent_core import Authority, NotFound, Run, Store
from bot.slack.blocks import mention
from bot.slack.channel import SlackChannel
from bot.slack.privately import reply_privately

__all__ = ["ThreadReplies"]

_TOLD_SECONDS = 86_400.0  # a person is told once per question, for a day at most


@dataclass(kw_only=True)
class ThreadReplies:
    """Passes an allowed reply on to the question waiting in its thread."""

    channel: SlackChannel
    store: Store
    authority: Authority
    approvers_answer: bool = False
    """Whether approvers and admins may answer, besides the run's requester."""

    async def reply(
        self, client: AsyncWebClient, *, channel: str, thread_ts: str, user: str, text: str
    ) -> None:
        """``user`` said ``text`` in the thread ``thread_ts`` of ``channel``."""
        run = await self._asking(channel, thread_ts)
        if run is None:
            return  # no question waits there: conversation
        if not await self.may_answer(run, user):
            await self._refuse_once(client, run, channel=channel, thread_ts=thread_ts, user=user)
            return
        if not self.channel.answered(channel, thread_ts, text):
            await self.channel.relay(channel, thread_ts, text)

    async def may_answer(self, run: Run, user: str) -> bool:
        """Whether ``user``'s reply answers ``run``'s question."""
        if user == run.requester:
            return True
        return self.approvers_answer and await self.authority.is_approver(user)

    async def _asking(self, channel: str, thread_ts: str) -> Run | None:
        run_id = await self.channel.question_in(channel, thread_ts)
        if run_id is None:
            return None
        try:
            return await self.store.get_run(run_id)
        except NotFound:
            return None

    async def _refuse_once(
        self, client: AsyncWebClient, run: Run, *, channel: str, thread_ts: str, user: str
    ) -> None:
        key = f"question-refused:{run.id}:{channel}:{thread_ts}:{user}"
        if not await self.store.claim_idempotency_key(key, ttl_seconds=_TOLD_SECONDS):
            return
        who = "the person who asked for this run" + (
            ", an approver or an admin" if self.approvers_answer else ""
        )
        await reply_privately(
            client, user=user, channel=channel, thread_ts=thread_ts,
            text=f"Only {who} ({mention(run.requester)}) can answer its question; "
                 "your reply was not passed on to the agent.",
        )  # fmt: skip
