"""Slack as the operator channel: a run's thread shows its progress and asks its approvals.

Approval and status messages are remembered in the store (their locations, by approval or run
id), so whichever process settles an approval, after any restart, can turn its buttons into the
outcome. A remembered location is used only where that kind of message belongs (a status line
in its run's channel, a copy in the approval channel), whatever a store row says.

Everything a model, a tool or a person wrote is shown through :mod:`bot.slack.render` and fitted by
:mod:`bot.slack.fit`. A card Slack refuses is posted again in a plain form (the buttons, and the
whole call one click away); if Slack refuses that too, the thread is told, the approval is
closed as cancelled and the run goes on without that call, never waiting for a request nobody
can see.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from dataclasses import dataclass, field
from typing import Any, assert_never

from slack_sdk.errors import SlackApiError, SlackObjectFormationError
from slack_sdk.models.blocks import Block
from slack_sdk.web.async_client import AsyncWebClient

from agent_core import (
    Approval,
    ApprovalEscalated,
    ApprovalNeeded,
    ApprovalReminder,
    ApprovalSettled,
    ApprovalStatus,
    BudgetWarning,
    MessageLocation,
    MessagePurpose,
    MessageSubject,
    NotFound,
    Plan,
    PlanReady,
    QuestionAnswered,
    RiskLevel,
    Run,
    RunEvent,
    RunFinished,
    RunQueued,
    RunStatus,
    StepFinished,
    StepStarted,
    Store,
    Subscription,
    ToolNotice,
    audit_events,
    close_undecided,
    utcnow,
)
from bot.slack.answers import AnswerPoster, markdown_blocks
from bot.slack.blocks import (
    approval_blocks,
    approval_text,
    fallback_blocks,
    settled_blocks,
    settled_fallback_blocks,
)
from bot.slack.card_context import CardContext, card_context, thread_permalink
from bot.slack.fit import MESSAGE_TEXT, SECTION_TEXT, cut, cut_markdown
from bot.slack.pings import approvers_to_ping, usergroup_members
from bot.slack.progress import plan_messages, status_line, tool_notice
from bot.slack.render import inert, inert_code, inert_markdown, mention
from bot.slack.visibility import asked_privately, private_request_notice

__all__ = ["SlackChannel", "status_line"]  # status_line: from bot.slack.progress, for its callers

logger = logging.getLogger(__name__)

_QUESTION = "slack:question:"
"""Session-fact scope prefix (+ "channel thread_ts"): the run waiting for a reply there."""
_KEEP_SECONDS = 90 * 86_400.0
_CLOSED_SECONDS = 1.0
_ASSISTANT_STATUS = {
    "run_queued": "is waiting for a free slot…",
    "plan_ready": "is working on it…",
    "step_started": "is working on it…",
    "approval_needed": "is waiting for an approval…",
}
_MAX_REPLY = 3500  # a message's text holds 4,000 characters; leave room for the header
_QUIET: dict[str, Any] = {"unfurl_links": False, "unfurl_media": False}
"""No previews of links a model wrote: an unfurl under a card could say anything."""


@dataclass(kw_only=True)
class SlackChannel:
    """Posts a run's events in its thread and its approval requests with buttons."""

    client: AsyncWebClient
    store: Store
    approval_channel: str | None = None
    """A channel that also gets every HIGH and CRITICAL request, linking to its thread."""
    approvers: list[str] = field(default_factory=list)
    """The configured approvers, named on a request that has none of its own."""
    approval_dms: bool = True
    """Whether each named approver also gets HIGH and CRITICAL requests in a direct message."""
    _questions: dict[tuple[str, str], asyncio.Future[str]] = field(default_factory=dict)
    _answers: AnswerPoster | None = None

    async def notify(self, event: RunEvent) -> None:
        run = event.run
        if run.channel is None:
            return
        await self._update_status(event)
        if isinstance(event, PlanReady):
            await self._plan(run, event.plan)
        elif isinstance(event, RunQueued | StepStarted | ApprovalNeeded):
            return  # the status message says it; the request message has the details
        elif isinstance(event, StepFinished):
            await self._step(run, event)
        elif isinstance(event, ToolNotice):
            await self._say(run, tool_notice(event))
        elif isinstance(event, ApprovalSettled):
            await self._settle(event.approval)
        elif isinstance(event, ApprovalReminder):
            apr = inert_code(event.approval.id)
            await self._say(run, f":alarm_clock: `{apr}` is still waiting for a decision")
        elif isinstance(event, ApprovalEscalated):
            to = ", ".join(mention(i) for i in (event.approval.approvers or [])[:20])
            await self._say(run, f":arrow_up: `{inert_code(event.approval.id)}` escalated to {to}")
        elif isinstance(event, BudgetWarning):
            await self._say(
                run, f":warning: {event.budget} budget: {event.used:g} of {event.limit:g}"
            )
        elif isinstance(event, RunFinished):
            await self._finished(run, event.status, event.result)
        else:
            assert_never(event)

    async def _plan(self, run: Run, plan: Plan) -> None:
        """The whole plan in the thread, over as many messages as it needs."""
        for piece in plan_messages(plan):
            await self._say(run, piece)

    def _shown(self, approval: Approval) -> Approval:
        """``approval`` as people should read it: naming who may decide.

        A request with no approvers of its own is for the configured ones, looked up when
        someone decides; only the message names them.
        """
        if approval.approvers is not None or not self.approvers:
            return approval
        return approval.model_copy(update={"approvers": self.approvers})

    async def request_decision(self, approval: Approval) -> None:
        run = await self.store.get_run(approval.run_id)
        if run.channel is None:
            return
        approval = self._shown(approval)
        thread = await self._thread_link(run)
        context = card_context(run, approval, thread=thread, private=False)
        posted = await self._card(approval, channel=run.channel, thread_ts=run.thread_ts,
                                  context=context)  # fmt: skip
        if isinstance(posted, str):
            await self._undeliverable(run, approval, posted)
            return
        await self._remember(approval, MessagePurpose.APPROVAL_REQUEST, posted)
        if approval.risk.rank < RiskLevel.HIGH.rank:
            return
        # Copies for others: what a DM says stays with its requester.
        copied = card_context(run, approval, thread=thread, private=asked_privately(run))
        if self.approval_channel:
            await self._copy_to_channel(run, approval, posted, copied)
        if self.approval_dms:
            await self._ping_approvers(run, approval, copied)

    async def _copy_to_channel(
        self, run: Run, approval: Approval, posted: Any, context: CardContext
    ) -> None:
        """The card in the approval channel too, linking to the request in its thread."""
        assert self.approval_channel is not None
        if asked_privately(run):  # what a DM or private channel says stays out of a shared one
            notice = private_request_notice(approval)
            await self.client.chat_postMessage(channel=self.approval_channel, text=notice)
            return
        try:
            link = await self.client.chat_getPermalink(channel=posted["channel"],
                                                       message_ts=posted["ts"])  # fmt: skip
            suffix = f" (<{link['permalink']}|thread>)"
        except SlackApiError:
            suffix = ""
        copy = await self._card(approval, channel=self.approval_channel, suffix=suffix,
                                context=context)  # fmt: skip
        if not isinstance(copy, str):
            await self._remember(approval, MessagePurpose.APPROVAL_COPY, copy)

    async def _ping_approvers(self, run: Run, approval: Approval, context: CardContext) -> None:
        """Each named approver gets the card, buttons and all, in a direct message; every
        copy is remembered, so it is settled with the others."""
        named = approval.approvers or []
        for user in await approvers_to_ping(named, self.members_of, requester=run.requester):
            copy = await self._card(approval, channel=user, context=context,
                                    suffix=" · you are one of its approvers")  # fmt: skip
            if isinstance(copy, str):
                continue  # logged; the others and the thread still have it
            await self._remember(approval, MessagePurpose.APPROVAL_DM, copy)  # each ping

    async def _thread_link(self, run: Run) -> str | None:
        return await thread_permalink(self.client, self.store, run)

    async def _card(
        self, approval: Approval, *, channel: str, thread_ts: str | None = None, suffix: str = "",
        context: CardContext | None = None,
    ) -> Any:  # fmt: skip
        """Post the request card; if Slack refuses it, a plain one. Slack's error if neither."""
        text = cut(approval_text(approval), MESSAGE_TEXT - len(suffix)) + suffix
        posted = await self._post_card(approval, channel, thread_ts, text, None, context)
        if isinstance(posted, str):
            posted = await self._post_card(approval, channel, thread_ts, text, posted, context)
        return posted

    async def _post_card(
        self, approval: Approval, channel: str, thread_ts: str | None, text: str,
        refused: str | None, context: CardContext | None,
    ) -> Any:  # fmt: skip
        """The full card (``refused`` None) or the plain one; Slack's error if it refuses."""
        try:
            blocks = approval_blocks(approval, context) if refused is None else fallback_blocks(
                approval, refused)  # fmt: skip
            return await self.client.chat_postMessage(
                channel=channel, thread_ts=thread_ts, text=text, blocks=_checked(blocks), **_QUIET
            )
        except SlackApiError as error:
            why = str(error.response.get("error"))
        except (SlackObjectFormationError, ValueError) as error:
            why = f"the card could not be built: {type(error).__name__}"
        logger.warning("approval card refused", extra={"approval_id": approval.id, "error": why})
        return why

    async def _undeliverable(self, run: Run, approval: Approval, error: str) -> None:
        """Nobody can be asked: say so in the thread, close the request, let the run go on.

        The run is parked on this approval; cancelling it and signalling the decision resumes
        the run, and the gate tells the model the call was not approved.
        """
        why = f"Slack refused it ({cut(error, 200)})"
        await self._say(run, f":warning: The approval request `{inert_code(approval.id)}` could "
                        f"not be posted: {inert(why)}. It is cancelled; the agent is told the "
                        "call was not approved.")  # fmt: skip
        cancelled = audit_events.ApprovalUndeliverable(approval_id=approval.id, reason=why)
        await close_undecided(self.store, approval, status=ApprovalStatus.CANCELLED, by="airlock",
                              at=utcnow(), why=cancelled)  # fmt: skip

    async def shown_at(self, approval_id: str) -> set[tuple[str, str]]:
        """Where the request messages of ``approval_id`` are: (channel, ts) pairs."""
        found = await self.store.messages_of(MessageSubject.APPROVAL, approval_id)
        run = await self._run_of_id(approval_id) if found else None
        return {(at.channel, at.ts) for at in found if self._belongs(at, run)}

    def _belongs(self, at: MessageLocation, run: Run | None) -> bool:
        """Whether a remembered message is where a message of its purpose is posted."""
        match at.purpose:
            case MessagePurpose.APPROVAL_REQUEST | MessagePurpose.RUN_STATUS:
                fits = run is None or at.channel == run.channel
            case MessagePurpose.APPROVAL_COPY:
                fits = at.channel == self.approval_channel
            case MessagePurpose.APPROVAL_DM:
                fits = True  # the direct message Slack opened with one approver
            case _:
                assert_never(at.purpose)
        if not fits:
            logger.warning("message location out of place", extra={
                "subject_id": at.subject_id, "purpose": at.purpose.value})  # fmt: skip
        return fits

    async def _remember(self, approval: Approval, purpose: MessagePurpose, posted: Any) -> None:
        location = MessageLocation(subject=MessageSubject.APPROVAL, subject_id=approval.id,
                                   purpose=purpose, channel=posted["channel"],
                                   ts=posted["ts"])  # fmt: skip
        await self.store.remember_message(location, ttl_seconds=_KEEP_SECONDS)

    async def ask(self, run: Run, question: str) -> str:
        """Ask in the run's thread and wait for the first reply there, in any process.

        A reply reaches the process serving Slack: this one (``answered``), or another front
        end, which finds the open question in the store and passes the reply on as a store
        signal (``relay``).
        """
        if run.channel is None or run.thread_ts is None:
            raise RuntimeError("this run has no Slack thread to ask in")
        where = (run.channel, run.thread_ts)
        answer: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._questions[where] = answer
        scope = _QUESTION + " ".join(where)
        try:
            async with self.store.subscribe() as signals:
                await self.store.set_fact(scope, "run", run.id, ttl_seconds=_KEEP_SECONDS)
                asked = cut(inert(question), _MAX_REPLY)
                await self._say(
                    run, f":question: {mention(run.requester)} {asked}\n_(reply in this thread)_"
                )
                elsewhere = asyncio.create_task(_reply_from(signals, where))
                try:
                    done, _ = await asyncio.wait(
                        {answer, elsewhere}, return_when=asyncio.FIRST_COMPLETED
                    )
                finally:
                    elsewhere.cancel()
                return (answer if answer in done else elsewhere).result()
        finally:
            self._questions.pop(where, None)
            # Closed: a later reply in the thread is conversation, not an answer.
            await self.store.set_fact(scope, "run", "", ttl_seconds=_CLOSED_SECONDS)

    def answered(self, channel: str, thread_ts: str, text: str) -> bool:
        """A reply in a thread; True if it answered an open question asked in this process."""
        waiting = self._questions.get((channel, thread_ts))
        if waiting is None or waiting.done():
            return False
        waiting.set_result(text)
        return True

    async def question_in(self, channel: str, thread_ts: str) -> str | None:
        """The run whose question waits for an answer in this thread (asked by any process)."""
        return (await self.store.get_facts(_QUESTION + f"{channel} {thread_ts}")).get("run") or None

    async def relay(self, channel: str, thread_ts: str, text: str) -> bool:
        """A reply in a thread to a question another process asked: pass it on; True if so."""
        run_id = (await self.store.get_facts(_QUESTION + f"{channel} {thread_ts}")).get("run")
        if not run_id:
            return False
        await self.store.publish(
            QuestionAnswered(run_id=run_id, channel=channel, thread_ts=thread_ts, text=text)
        )
        return True

    async def members_of(self, group: str) -> set[str]:
        return await usergroup_members(self.client)(group)

    async def _say(self, run: Run, text: str) -> None:
        if run.channel is None:
            return
        try:
            await self.client.chat_postMessage(channel=run.channel, thread_ts=run.thread_ts,
                                               text=cut(text, MESSAGE_TEXT), **_QUIET)  # fmt: skip
        except SlackApiError as error:  # progress is best effort; the run itself goes on
            logger.warning("slack post failed", extra={"run_id": run.id,
                           "error": error.response.get("error")})  # fmt: skip

    async def _step(self, run: Run, event: StepFinished) -> None:
        """A step's output as Markdown (the mrkdwn ``text`` stays for notifications)."""
        mark = ":white_check_mark:" if event.status == "completed" else ":x:"
        step = cut(inert_code(event.subtask_id), 200)
        text = f"{mark} `{step}` {cut(inert(event.summary), 3000)}"
        summary, _ = cut_markdown(inert_markdown(event.summary), SECTION_TEXT)
        blocks = markdown_blocks(f"{mark} `{step}`\n\n{summary}")
        try:
            await self.client.chat_postMessage(channel=str(run.channel), thread_ts=run.thread_ts,
                                               text=cut(text, MESSAGE_TEXT), blocks=blocks,
                                               **_QUIET)  # fmt: skip
        except SlackApiError as error:  # the blocks refused: the plain text still says it
            logger.warning("step output refused", extra={"run_id": run.id,
                           "error": error.response.get("error")})  # fmt: skip
            await self._say(run, text)

    async def _finished(self, run: Run, status: RunStatus, result: str) -> None:
        if self._answers is None:
            self._answers = AnswerPoster(client=self.client)
        try:
            await self._answers.post(run, status, result)
        except SlackApiError as error:  # the run is over either way; its status line says so
            logger.warning("answer not posted", extra={"run_id": run.id,
                           "error": error.response.get("error")})  # fmt: skip

    async def remember_status(self, run: Run, channel: str, ts: str) -> None:
        """The message to keep editing with ``run``'s status."""
        location = MessageLocation(subject=MessageSubject.RUN, subject_id=run.id,
                                   purpose=MessagePurpose.RUN_STATUS, channel=channel,
                                   ts=ts)  # fmt: skip
        await self.store.remember_message(location, ttl_seconds=_KEEP_SECONDS)

    async def _update_status(self, event: RunEvent) -> None:
        if isinstance(event, ApprovalNeeded):
            event = dataclasses.replace(event, approval=self._shown(event.approval))
        text = status_line(event)
        if text is None:
            return
        await self._assistant_status(event)
        found = await self.store.messages_of(MessageSubject.RUN, event.run.id)
        shown = [at for at in found if at.purpose is MessagePurpose.RUN_STATUS
                 and self._belongs(at, event.run)]  # fmt: skip
        if not shown:
            return
        try:
            await self.client.chat_update(channel=shown[-1].channel, ts=shown[-1].ts, text=text)
        except SlackApiError as error:
            logger.warning("slack status update failed", extra={"run_id": event.run.id,
                           "error": error.response.get("error")})  # fmt: skip

    async def _assistant_status(self, event: RunEvent) -> None:
        """Slack's own "is thinking…" line follows the run in its thread, in a direct message
        or a channel (``assistant.threads.setStatus`` takes chat:write in channels)."""
        run = event.run
        if run.channel is None or run.thread_ts is None:
            return
        status = "" if isinstance(event, RunFinished) else _ASSISTANT_STATUS.get(event.kind, "")
        try:
            await self.client.assistant_threads_setStatus(
                channel_id=run.channel, thread_ts=run.thread_ts, status=status
            )
        except SlackApiError as error:  # the app may not be an assistant app; the message says it
            logger.debug("assistant status not set", extra={"run_id": run.id,
                         "error": error.response.get("error")})  # fmt: skip

    async def _settle(self, approval: Approval) -> None:
        """Every copy of the request (thread, approval channel, approvers' DMs) shows how it
        ended, and loses its buttons."""
        text = cut(approval_text(approval), MESSAGE_TEXT)
        run = await self._run_of(approval)
        thread = None if run is None else await self._thread_link(run)
        for channel, ts in await self.shown_at(approval.id):
            context = None
            if run is not None:
                private = asked_privately(run) and channel != run.channel
                context = card_context(run, approval, thread=thread, private=private)
            # The buttons must go whatever happens: a plain outcome if the card is refused.
            for build in (settled_blocks, settled_fallback_blocks):
                try:
                    blocks = _checked(build(approval, context))
                    await self.client.chat_update(channel=channel, ts=ts, text=text, blocks=blocks)
                    break
                except (SlackApiError, SlackObjectFormationError) as error:
                    logger.warning("slack update failed", extra={"approval_id": approval.id,
                                   "error": str(error)[:200]})  # fmt: skip

    async def _run_of(self, approval: Approval) -> Run | None:
        try:
            return await self.store.get_run(approval.run_id)
        except NotFound:  # a request made outside a run (tests, the CLI): no context to show
            return None

    async def _run_of_id(self, approval_id: str) -> Run | None:
        try:
            return await self._run_of(await self.store.get_approval(approval_id))
        except NotFound:
            return None


def _checked(blocks: list[Block]) -> list[dict[str, Any]]:
    """``blocks`` as Slack gets them, each checked against slack_sdk's models first."""
    return [block.to_dict() for block in blocks]


async def _reply_from(signals: Subscription, where: tuple[str, str]) -> str:
    """The first reply another process passes on for the question asked at ``where``."""
    async for signal in signals:
        if isinstance(signal, QuestionAnswered) and (signal.channel, signal.thread_ts) == where:
            return signal.text
    raise AssertionError("unreachable: a subscription never ends")
