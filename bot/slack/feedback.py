"""Thumbs up or down on an answer: audited, counted, and a thumbs up remembered as what worked.

Only the person who asked for the run is heard. Their feedback says whether the answer
served them, and a positive one becomes a memory recalled into later runs of the channel:
letting anyone who can see the thread click would let anyone there steer what the agent
learns. A click by someone else changes nothing; it is audited and its author told,
privately, whose answer it is. Each verdict counts once per run (a double click, a click
delivered again, or the same click after a restart change nothing more).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel
from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from agent_core import Audit, Run, Store, answer_feedback, audit_events
from bot.slack.answers import FEEDBACK
from bot.slack.privately import reply_privately
from bot.slack.render import mention

if TYPE_CHECKING:  # importing memory loads FAISS; only a process that uses it pays
    from agent_core import AgentMemory

__all__ = ["FeedbackClick", "register_feedback"]

_ONCE_SECONDS = 90 * 86_400.0
"""How long a verdict on a run is remembered as given (as long as the answer's buttons live)."""


class _Who(BaseModel):
    id: str


class _Where(BaseModel):
    channel_id: str | None = None
    thread_ts: str | None = None
    message_ts: str | None = None


class _Action(BaseModel):
    action_id: str
    value: str


class FeedbackClick(BaseModel):
    """A click on an answer's feedback buttons, as Slack sends it (``block_actions``)."""

    user: _Who
    container: _Where
    actions: list[_Action]

    @property
    def verdict(self) -> Literal["positive", "negative"]:
        """Which button: ``positive`` or ``negative`` (anything else is malformed)."""
        found = self.actions[0].value.partition(" ")[0]
        if found == "positive":
            return "positive"
        if found == "negative":
            return "negative"
        raise ValueError(f"not a feedback value: {found[:40]!r}")

    @property
    def run_id(self) -> str:
        """The run whose answer was clicked."""
        return self.actions[0].value.partition(" ")[2]


@dataclass(kw_only=True)
class _Feedback:
    store: Store
    audit: Audit
    memory: AgentMemory | None

    async def heard(self, client: AsyncWebClient, click: FeedbackClick) -> None:
        run = await self.store.get_run(click.run_id)
        user, verdict = click.user.id, click.verdict
        if user != run.requester:
            await self.audit.record(
                run.id, audit_events.AnswerFeedbackRefused(value=verdict), actor=user
            )
            await self._tell(client, click, f"Only {mention(run.requester)}, who asked for this "
                             "run, can say whether its answer helped.")  # fmt: skip
            return
        key = f"answer-feedback:{run.id}:{verdict}"
        if not await self.store.claim_idempotency_key(key, ttl_seconds=_ONCE_SECONDS):
            return  # said already
        await self.audit.record(run.id, audit_events.AnswerFeedback(value=verdict), actor=user)
        answer_feedback(verdict)
        if verdict == "positive":
            await self._learn(run, user)

    async def _learn(self, run: Run, user: str) -> None:
        if self.memory is not None:
            await self.memory.learn_from_feedback(run, by=user)

    @staticmethod
    async def _tell(client: AsyncWebClient, click: FeedbackClick, text: str) -> None:
        where = click.container
        await reply_privately(client, user=click.user.id, channel=where.channel_id, text=text,
                              thread_ts=where.thread_ts or where.message_ts)  # fmt: skip


def register_feedback(
    app: AsyncApp, *, store: Store, audit: Audit, memory: AgentMemory | None = None
) -> None:
    """Listen for clicks on answers' feedback buttons."""
    feedback = _Feedback(store=store, audit=audit, memory=memory)

    @app.action(FEEDBACK)
    async def on_feedback(ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient) -> None:
        await ack()
        await feedback.heard(client, FeedbackClick.model_validate(body))
