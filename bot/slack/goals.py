"""Goals from Slack: an app mention, a direct message, or `/agent <goal>` starts a run.

Bolt acknowledges at once and the listener only hands the goal to a bounded queue; a few
tasks start the goals waiting there (the store writes, the status message) off every
request's path, and the run goes to the runner. A queue that is full, or a process that is
stopping, says so in the goal's thread: nothing acknowledged is dropped silently. A delivery
Slack repeats (a retry after a slow answer, or a replayed signed request) is dropped by a
durable idempotency key on its event id before anything is said or stored, and nothing
starts while airlock is halted or a limit (a daily budget, runs per hour) refuses it; the
thread is told which limit, and when it resets.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from agent_core import Admission, ChannelKind, Run, Store
from bot.slack.admin import ADMIN_VERBS, AdminCommands
from bot.slack.blocks import mention, safe
from bot.slack.conversations import kind_of_command, kind_of_event
from bot.slack.memory_commands import MEMORY_VERBS, MemoryCommands
from bot.slack.privately import NOT_A_MEMBER, invite_me, reply_privately
from bot.slack.request_log import REJECTED, rejections

__all__ = ["GOALS_WAITING", "GoalIntake", "register_goals"]

logger = logging.getLogger(__name__)
GOALS_WAITING = 256
"""Goals a process holds taken but not started: far more than a team types at once, and few
enough that a flood is refused in the threads rather than held in memory."""
BUSY = (":hourglass: Too many goals are waiting to start right now, so I did not take this "
        "one. Please ask again in a minute.")  # fmt: skip
STOPPING = ":hourglass: I am restarting and did not take this goal. Please ask again in a minute."
FAILED = ":warning: Something went wrong while starting this goal. Please ask again."


@dataclass(kw_only=True, frozen=True)
class _Goal:
    client: AsyncWebClient
    goal: str
    user: str
    channel: str
    thread_ts: str
    kind: ChannelKind
    delivery: str | None
    dry_run: bool


_MENTION = re.compile(r"<@[A-Z0-9]+>")
_DELIVERY_TTL_SECONDS = 3600.0  # Slack retries a delivery for well under an hour
HELP = (
    "Tell me what to do, e.g. `@airlock find out why staging is slow` or `/agent <goal>`; "
    "`/agent plan <goal>` only plans. "
    "`/agent status` shows your runs in flight; `/agent audit <run>` shows what one did, "
    "`/agent kill <run> [reason]` stops it and `/agent retry <run>` retries it if it failed. "
    "`/agent approve <id>` and `/agent reject <id> [reason]` decide. "
    "`/agent remember <fact>`, `/agent memories <query>` and `/agent forget <id>` curate what "
    "I remember in this channel. "
    "Admins: `/agent status` shows every run, and `/agent kill all`, `/agent halt [reason]` "
    "and `/agent resume` are theirs."
)


@dataclass(kw_only=True)
class GoalIntake:
    """Turns a goal said in Slack into a queued run in its thread."""

    store: Store
    submit: Callable[[str], Awaitable[object]]
    """Hands a run id to whatever works on it (this process's runner, or the run queue)."""
    remember_status: Callable[[Run, str, str], Awaitable[None]]
    """Records the message that shows the run's status (edited in place as it moves)."""
    admission: Admission
    """Refuses a new run when a daily budget or the requester's hourly limit is used up."""

    capacity: int = GOALS_WAITING
    """Goals taken but not yet started, at most; one more is refused in its thread."""
    workers: int = 8
    """Goals started at once (each a few store writes and one Slack post, which may be slow):
    tasks are made only while goals wait."""
    _waiting: asyncio.Queue[_Goal] = field(init=False, repr=False)
    _tasks: list[asyncio.Task[None]] = field(init=False, repr=False, default_factory=list)
    _closed: bool = field(init=False, repr=False, default=False)

    def __post_init__(self) -> None:
        self._waiting = asyncio.Queue(maxsize=self.capacity)

    async def start(
        self, client: AsyncWebClient, *, goal: str, user: str, channel: str, thread_ts: str,
        kind: ChannelKind, delivery: str | None, dry_run: bool = False,
    ) -> bool:  # fmt: skip
        """Take ``goal`` to be queued as a run answered in ``thread_ts``, without waiting for
        it: Bolt's listener returns at once, and the work (store writes, the status message)
        never shares a request's path. False if it was not taken, which its thread is told:
        too many goals are waiting, or airlock is stopping.

        ``kind`` is what Slack said of the conversation (:mod:`bot.slack.conversations`).
        """
        taken = _Goal(client=client, goal=goal, user=user, channel=channel,
                      thread_ts=thread_ts, kind=kind, delivery=delivery,
                      dry_run=dry_run)  # fmt: skip
        if not self._closed:
            with contextlib.suppress(asyncio.QueueFull):  # full: refused below, in its thread
                self._waiting.put_nowait(taken)
                self._work()
                return True
        # Said, never dropped: a goal that Slack was told was received is answered somewhere;
        # and said once, so a retry or a replay of it (claimed here) posts nothing again.
        if delivery and not await self.first_delivery(delivery):
            _repeated()
            return False
        REJECTED.labels(reason="stopping" if self._closed else "too many goals waiting").inc()
        await _sayer(client, channel, thread_ts)(STOPPING if self._closed else BUSY)
        return False

    async def settled(self) -> None:
        """Until every goal taken so far has been started (or answered)."""
        await self._waiting.join()

    async def close(self, *, grace_seconds: float = 10.0) -> None:
        """Take no more goals and start those taken, for up to ``grace_seconds``; any left
        then are told in their thread to be asked again."""
        self._closed = True
        try:
            async with asyncio.timeout(grace_seconds):
                await self._waiting.join()
        except TimeoutError:
            while not self._waiting.empty():
                left = self._waiting.get_nowait()
                self._waiting.task_done()
                await _tell(left, STOPPING)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()

    def _work(self) -> None:
        self._tasks = [t for t in self._tasks if not t.done()]
        while len(self._tasks) < min(self.workers, self._waiting.qsize() + len(self._tasks)):
            self._tasks.append(asyncio.create_task(self._drain(), name="goal intake"))

    async def _drain(self) -> None:
        while True:
            taken = await self._waiting.get()
            try:
                await self.take(taken.client, goal=taken.goal, user=taken.user,
                                channel=taken.channel, thread_ts=taken.thread_ts,
                                kind=taken.kind, delivery=taken.delivery,
                                dry_run=taken.dry_run)  # fmt: skip
            except Exception as error:  # one goal failing must not stop the others
                logger.error("goal intake failed", extra={"error": type(error).__name__,
                                                          "detail": str(error)[:200]})  # fmt: skip
                await _tell(taken, FAILED)
            finally:
                self._waiting.task_done()

    async def take(
        self, client: AsyncWebClient, *, goal: str, user: str, channel: str, thread_ts: str,
        kind: ChannelKind, delivery: str | None, dry_run: bool = False,
    ) -> Run | None:  # fmt: skip
        """Queue ``goal`` as a run answered in ``thread_ts`` now; None if nothing was started.

        A delivery seen before (a Slack retry, a replayed signed request, in any process
        sharing the store) is dropped here, before anything is said or stored. Where the bot
        cannot post (it is not a member of the channel), nothing starts and ``user`` is told
        privately how to invite it.
        """
        if delivery and not await self.first_delivery(delivery):
            _repeated()
            return None  # a retry of a delivery already handled
        try:
            return await self._start(client, goal=goal.strip(), user=user, channel=channel,
                                     thread_ts=thread_ts, kind=kind, dry_run=dry_run)  # fmt: skip
        except SlackApiError as error:
            if error.response.get("error") not in NOT_A_MEMBER:
                raise
            await reply_privately(client, user=user, channel=channel,
                                  text=invite_me(str(error.response.get("error"))))  # fmt: skip
            return None

    async def _start(
        self, client: AsyncWebClient, *, goal: str, user: str, channel: str, thread_ts: str,
        kind: ChannelKind, dry_run: bool,
    ) -> Run | None:  # fmt: skip
        say = _sayer(client, channel, thread_ts)
        if not goal:
            await say(HELP)
            return None
        halt = await self.store.get_halt()
        if halt is not None and halt.halted:
            why = safe(halt.reason or "no reason given")
            await say(f":no_entry: airlock is halted by {mention(halt.by or 'an admin')}: {why}")
            return None
        refused = await self.admission.admit(user)
        if refused is not None:
            await say(f":no_entry: {refused.describe(self.admission.clock.now())}")
            return None
        run = Run(goal=goal, requester=user, channel=channel, thread_ts=thread_ts,
                  channel_kind=kind, dry_run=dry_run)  # fmt: skip
        # Said before the run exists: where the bot cannot post, no run is left queued.
        posted = await say(f":eyes: `{run.id}` planning…")
        run = await self.store.create_run(run)
        await self.remember_status(run, posted["channel"], posted["ts"])
        await self.submit(run.id)
        return run

    async def first_delivery(self, delivery: str) -> bool:
        """Whether this is the first time Slack delivered ``delivery`` (an event or trigger id)."""
        key = f"slack-delivery:{delivery}"
        return await self.store.claim_idempotency_key(key, ttl_seconds=_DELIVERY_TTL_SECONDS)


def register_goals(
    app: AsyncApp, intake: GoalIntake, admin: AdminCommands, memory: MemoryCommands | None = None
) -> None:
    """Listen for goals (mentions, direct messages, `/agent <goal>`) and `/agent` subcommands."""

    @app.event("app_mention")
    async def on_mention(
        event: dict[str, Any], body: dict[str, Any], client: AsyncWebClient
    ) -> None:
        await intake.start(
            client, goal=_MENTION.sub("", event.get("text") or ""), user=event["user"],
            channel=event["channel"], thread_ts=event.get("thread_ts") or event["ts"],
            kind=kind_of_event(event, otherwise=ChannelKind.PUBLIC), delivery=body.get("event_id"),
        )  # fmt: skip

    @app.command("/agent")
    async def on_command(
        ack: AsyncAck, command: dict[str, Any], client: AsyncWebClient, respond: AsyncRespond
    ) -> None:
        await ack()
        goal = (command.get("text") or "").strip()
        verb, _, rest = goal.partition(" ")
        verb = verb.lower()
        user, channel = command["user_id"], command["channel_id"]
        kind = kind_of_command(command)

        async def answer(text: str) -> None:
            await reply_privately(client, user=user, channel=channel, text=text, respond=respond)

        if memory is not None and verb in MEMORY_VERBS:
            await answer(await memory.answer(user, channel, goal, kind=kind))
            return
        if not goal or verb == "help" or verb in ADMIN_VERBS:
            await answer(await admin.answer(user, goal) if verb in ADMIN_VERBS else HELP)
            return
        trigger = command.get("trigger_id")
        if trigger and not await intake.first_delivery(trigger):
            return  # the same command delivered again: it was answered the first time
        dry_run = verb == "plan"
        goal = rest.strip() if dry_run else goal
        if not goal:
            await answer(HELP)
            return
        asked = f"{mention(user)} asked: {safe(goal)}"
        try:
            top = await client.chat_postMessage(channel=channel, text=asked)
        except SlackApiError as error:
            if error.response.get("error") not in NOT_A_MEMBER:
                raise
            await answer(invite_me(str(error.response.get("error"))))
            return
        await intake.start(client, goal=goal, user=user, channel=top["channel"],
                           thread_ts=top["ts"], kind=kind, delivery=None,
                           dry_run=dry_run)  # fmt: skip


def _repeated() -> None:
    REJECTED.labels(reason="delivered again").inc()
    rejections(signed=True).log(logging.INFO, "slack delivery repeated; dropped", kind="goal")


def direct_goal(event: dict[str, Any]) -> bool:
    """A direct message that opens a conversation (not a reply in a thread)."""
    return event.get("channel_type") == "im" and not event.get("thread_ts")


def _sayer(client: AsyncWebClient, channel: str, thread_ts: str) -> Callable[[str], Awaitable[Any]]:
    async def say(text: str) -> Any:
        return await client.chat_postMessage(channel=channel, thread_ts=thread_ts, text=text)

    return say


async def _tell(goal: _Goal, text: str) -> None:
    """Say ``text`` in ``goal``'s thread; Slack failing too (it may be what failed, or airlock
    is stopping) is logged, and nothing more can be done for that goal."""
    try:
        await _sayer(goal.client, goal.channel, goal.thread_ts)(text)
    except Exception as error:
        logger.warning("could not tell a goal's thread", extra={
            "error": type(error).__name__, "detail": str(error)[:200]})  # fmt: skip
