"""A scaled-out airlock on one machine, for fault tests: Redis, front ends and workers.

:class:`Cluster` starts a real ``redis-server`` (append-only, so a restart keeps every
acknowledged write), the Slack and Anthropic stand-ins, N front ends
(``python -m bot serve --no-worker``) and M workers (``python -m bot worker``) as real
processes sharing one environment, and tears all of it down on exit, even on failure.

The Anthropic stand-in answers from the conversation alone (:func:`answer`), never from a
script, so hundreds of runs proceed in any order and in parallel; faults enqueued on
``cluster.anthropic`` go first, to whichever request comes next. Each goal carries a unique
token (:class:`Goal`): the planner's plan, the tool call and the final text all derive from
it, so what a run did can be checked file by file in the shared workspace. A goal posted
with ``needs_approval`` calls a HIGH tool and waits for :meth:`Cluster.click_approve`.

    async with Cluster(tmp_path=tmp_path, front_ends=2, workers=3) as cluster:
        goals = [await cluster.post_goal(i % 2) for i in range(100)]
        cluster.anthropic.enqueue(fault(529, retry_after=0.1))  # the next model call fails
        await cluster.kill_worker(0, signal.SIGKILL)
        runs = await cluster.wait_all_final(100, timeout=60)
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import itertools
import json
import os
import re
import signal
import socket
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Literal, Self, TypeVar
from urllib.parse import parse_qsl

import aiohttp
from redis.exceptions import RedisError

from agent_core.errors import StoreError
from agent_core.models import AuditEvent, Run
from agent_core.store import open_store
from agent_core.store.redis import RedisStore
from agent_core.testing.anthropic_server import (
    AnthropicStandIn,
    RecordedRequest,
    Reply,
    text_reply,
    tool_use_reply,
)
from agent_core.testing.redis_server import RedisServer, free_port
from agent_core.testing.slack_requests import (
    SlackRequestSigner,
    load_json_payload,
    load_text_payload,
    post_to_bot,
)
from agent_core.testing.slack_server import SlackCall, SlackStandIn
from tests.e2e.test_serve import clean_env
from tests.support import Deadline, within

__all__ = [
    "APPROVER",
    "NEEDS_APPROVAL",
    "REQUESTER",
    "ApprovalCard",
    "Cluster",
    "Goal",
    "Node",
    "answer",
    "goal_token",
    "plan_reply",
]

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
TOKEN = "xoxb-airlock-cluster"
KEY = "sk-ant-cluster"
MENTION: dict[str, Any] = load_json_payload("app_mention.json")
CLICK: dict[str, Any] = load_json_payload("block_actions.json")
APPROVER: str = CLICK["user"]["id"]
"""Who clicks Approve (the only approver)."""
REQUESTER: str = MENTION["event"]["user"]
"""Who asks for every goal (not an approver, so no self-approval question arises)."""
NEEDS_APPROVAL = "needs-approval"
"""Marker in a goal's text: its tool call is ``run_command`` (HIGH) instead of ``write_file``."""

_TOKEN = re.compile(r"\bgoal-[0-9a-f]{16}\b")
_BASE_TS = 1_700_000_000
_STORE_ERRORS = (StoreError, RedisError, OSError)
T = TypeVar("T")
_ACCESS_LOG = '"logger": "aiohttp.access"'

Kind = Literal["front end", "worker"]


# --- the model -------------------------------------------------------------------------------


def goal_token(request: RecordedRequest) -> str:
    """The goal's token, from the first user message (the planner's and executor's brief)."""
    users = [m for m in request.messages if m.get("role") == "user"]
    first = users[0].get("content") if users else ""
    text = first if isinstance(first, str) else json.dumps(first)
    found = _TOKEN.search(text)
    if found is None:
        raise ValueError(f"no goal token in the request: {text[:200]!r}")
    return found.group(0)


def _needs_approval(request: RecordedRequest) -> bool:
    users = [m for m in request.messages if m.get("role") == "user"]
    return bool(users) and NEEDS_APPROVAL in json.dumps(users[0].get("content"))


def plan_reply(request: RecordedRequest, token: str, tools: tuple[str, ...] = ()) -> Reply | None:
    """For a planning turn (``tool_choice`` names ``submit_plan``), one LOW subtask that names
    the token and needs ``tools``; None for any other turn."""
    body = request.body or {}
    if (body.get("tool_choice") or {}).get("name") != "submit_plan":
        return None
    subtask = {"id": "s1", "description": f"do {token}", "required_tools": list(tools),
               "depends_on": [], "risk_level": "low"}  # fmt: skip
    return tool_use_reply("submit_plan", {"subtasks": [subtask]})


def answer(request: RecordedRequest) -> Reply:
    """The model, answering from the conversation state alone.

    - A planning turn (``tool_choice`` names ``submit_plan``): one LOW subtask that names
      the token.
    - An executor turn without tool results: one tool call. ``write_file`` of
      ``runs/<token>.txt`` (made LOW by the cluster's ``AIRLOCK_TOOL_RISKS``) or, for a goal
      marked ``needs-approval``, ``run_command`` (HIGH, not idempotent) appending a line to
      ``runs/<token>.cmd``, so a call run twice shows as two lines.
    - After a tool result: the text ``done <token>``.
    """
    token = goal_token(request)
    planned = plan_reply(request, token)
    if planned is not None:
        return planned
    if request.tool_results():
        return text_reply(f"done {token}")
    if _needs_approval(request):
        return tool_use_reply("run_command", {"command": f"echo {token} >> runs/{token}.cmd"})
    return tool_use_reply("write_file", {"path": f"runs/{token}.txt", "content": token})


# --- what the cluster hands back ---------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Goal:
    """One goal posted as an app mention."""

    token: str
    """Unique; in the goal text, the plan, the tool call and the reply."""
    text: str
    """The goal as the run records it (mention removed)."""
    thread_ts: str
    """The mention's ts: the run's thread."""
    event_id: str
    """The Events API delivery id (unique per goal)."""
    needs_approval: bool
    """Whether its tool call waits on an Approve click."""


@dataclass(frozen=True, kw_only=True)
class ApprovalCard:
    """An approval request posted in Slack and still pending in the store."""

    approval_id: str
    message_ts: str
    """The card's ts, which the click carries."""
    thread_ts: str | None
    """The thread it was posted in (the run's)."""


_PORT_TRIES = 3


def listens(pid: int, port: int) -> bool:
    """Whether process ``pid`` holds a socket listening on TCP ``port`` (from /proc)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(FileNotFoundError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                    inodes.add(f"socket:[{fields[9]}]")
    with contextlib.suppress(FileNotFoundError, ProcessLookupError):
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(OSError):  # closed meanwhile
                if os.readlink(fd) in inodes:
                    return True
    return False


@dataclass(kw_only=True)
class Node:
    """One airlock process of the cluster."""

    kind: Kind
    index: int
    port: int
    log: Path
    """Where its stderr goes."""
    process: asyncio.subprocess.Process

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        """Not exited (yet)."""
        return self.process.returncode is None

    @property
    def worker_prefix(self) -> str:
        """How this process's worker names begin (``worker_name()``: host, pid, random)."""
        return f"{socket.gethostname()}-{self.process.pid}-"

    def tail(self, lines: int = 20, *, width: int = 1500) -> str:
        """The last ``lines`` lines of its stderr without the access log (health checks
        drown the rest), each cut to the last ``width`` characters (a JSON log line holds a
        whole traceback; its end names the error)."""
        try:
            text = self.log.read_text(errors="replace")
        except FileNotFoundError:
            return ""
        kept = [line for line in text.splitlines() if _ACCESS_LOG not in line][-lines:]
        return "\n".join(line if len(line) <= width else "…" + line[-width:] for line in kept)


# --- the cluster -------------------------------------------------------------------------------


@dataclass(kw_only=True)
class Cluster:
    """Redis, the stand-ins, ``front_ends`` front ends and ``workers`` workers; see the module.

    With ``front_ends_work`` the front ends run plain ``serve`` (front end and worker in one
    process), e.g. before the worker command exists, or to mix both kinds.
    """

    tmp_path: Path
    """Everything goes below it: Redis's folder, airlock's data folder, process logs."""
    front_ends: int = 1
    workers: int = 1
    front_ends_work: bool = False
    lease_seconds: float = 2.0
    """AIRLOCK_LEASE_SECONDS: how long a dead worker's runs stay stranded."""
    max_concurrent_runs: int = 8
    """AIRLOCK_MAX_CONCURRENT_RUNS: slots per worker."""
    latency: float = 0.0
    """Seconds every model reply (and enqueued fault) waits."""
    llm_max_retries: int = 2
    """AIRLOCK_LLM_MAX_RETRIES."""
    shutdown_grace_seconds: float = 5.0
    """AIRLOCK_SHUTDOWN_GRACE_SECONDS."""
    startup_timeout: float = 30.0
    """Seconds a process gets to answer /healthz on an idle machine; every wait on the
    processes stretches with the machine's load (:class:`tests.support.Deadline`)."""
    extra_env: dict[str, str] = field(default_factory=dict)
    """More settings for every process (overrides the cluster's)."""

    redis: RedisServer = field(init=False)
    slack: SlackStandIn = field(init=False)
    anthropic: AnthropicStandIn = field(init=False)
    """Enqueue faults here: ``cluster.anthropic.enqueue(fault(529))``; they go first."""
    store: RedisStore = field(init=False)
    """The cluster's store, as the test sees it."""
    env: dict[str, str] = field(init=False)
    """The environment every process starts with (plus its own AIRLOCK_PORT)."""
    nodes: list[Node] = field(init=False, default_factory=list)
    """Every process started, in order, exited ones included."""
    goals: list[Goal] = field(init=False, default_factory=list)
    """Every goal posted, in order."""

    _stack: AsyncExitStack = field(init=False, default_factory=AsyncExitStack)
    _http: aiohttp.ClientSession = field(init=False)
    _signer: SlackRequestSigner = field(init=False)
    _logs: list[IO[bytes]] = field(init=False, default_factory=list)
    _serial: itertools.count[int] = field(init=False, default_factory=lambda: itertools.count(1))
    _started: dict[Kind, int] = field(
        init=False, default_factory=lambda: {"front end": 0, "worker": 0}
    )

    # -- lifetime

    async def __aenter__(self) -> Self:
        try:
            await self._start()
        except BaseException:
            await self._stop(failed=True)
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._stop(failed=exc is not None)

    async def _start(self) -> None:
        data = self.tmp_path / "data"
        (data / "workspace" / "runs").mkdir(parents=True, exist_ok=True)
        (self.tmp_path / "logs").mkdir(exist_ok=True)
        self.redis = RedisServer(appendonly=True, directory=self.tmp_path / "redis")
        self.redis.directory.mkdir(exist_ok=True)
        await asyncio.to_thread(self.redis.start)
        self._stack.push_async_callback(asyncio.to_thread, self.redis.stop)
        self.slack = await self._stack.enter_async_context(SlackStandIn(bot_token=TOKEN))
        self.anthropic = await self._stack.enter_async_context(
            AnthropicStandIn(api_key=KEY, default=answer, latency=self.latency,
                             check_on_exit=False)
        )  # fmt: skip
        self._http = await self._stack.enter_async_context(aiohttp.ClientSession())
        self._signer = SlackRequestSigner(SECRET)
        store = await open_store(self.redis.url, poll_interval=0.05)
        assert isinstance(store, RedisStore)
        self.store = store
        self._stack.push_async_callback(self.store.close)
        self.env = clean_env(
            SLACK_BOT_TOKEN=TOKEN, SLACK_SIGNING_SECRET=SECRET, SLACK_API_URL=self.slack.api_url,
            ANTHROPIC_API_KEY=KEY, ANTHROPIC_BASE_URL=self.anthropic.base_url,
            AIRLOCK_STORE_URL=self.redis.url, AIRLOCK_DATA_DIR=str(data),
            AIRLOCK_APPROVERS=APPROVER, AIRLOCK_LEASE_SECONDS=f"{self.lease_seconds:g}",
            AIRLOCK_MAX_CONCURRENT_RUNS=str(self.max_concurrent_runs),
            AIRLOCK_LLM_MAX_RETRIES=str(self.llm_max_retries),
            AIRLOCK_SIGNAL_POLL_SECONDS="0.05",
            AIRLOCK_SHUTDOWN_GRACE_SECONDS=f"{self.shutdown_grace_seconds:g}",
            # Hundreds of runs from one requester: no per-user or daily limit may refuse one.
            AIRLOCK_RUNS_PER_USER_PER_HOUR="0", AIRLOCK_DAILY_BUDGET_USD="0",
            AIRLOCK_USER_DAILY_BUDGET_USD="0",
            AIRLOCK_TOOL_RISKS=json.dumps({"write_file": "low"}),
        ) | self.extra_env  # fmt: skip
        await asyncio.gather(
            *(self._spawn("front end") for _ in range(self.front_ends)),
            *(self._spawn("worker") for _ in range(self.workers)),
        )

    async def _stop(self, *, failed: bool) -> None:
        try:
            for node in self.nodes:
                if node.running:
                    node.process.kill()
            for node in self.nodes:
                await node.process.wait()
            if failed:
                self.print_logs()
            else:
                # Enqueued faults all used, no responder error, no request unanswered.
                self.anthropic.assert_script_consumed()
        finally:
            for log in self._logs:
                log.close()
            # Store, HTTP session, stand-ins and Redis, newest first.
            await self._stack.aclose()

    # -- processes

    @property
    def front_end_nodes(self) -> list[Node]:
        """The front ends, in start order."""
        return sorted((n for n in self.nodes if n.kind == "front end"), key=lambda n: n.index)

    @property
    def worker_nodes(self) -> list[Node]:
        """The workers, in start order (killed ones included: indexes are stable)."""
        return sorted((n for n in self.nodes if n.kind == "worker"), key=lambda n: n.index)

    async def start_worker(self) -> int:
        """Start one more worker, wait for its /healthz; its index in :attr:`worker_nodes`."""
        return (await self._spawn("worker")).index

    async def start_front_end(self) -> int:
        """Start one more front end; its index in :attr:`front_end_nodes`."""
        return (await self._spawn("front end")).index

    async def kill_worker(
        self, index: int, sig: signal.Signals = signal.SIGKILL, *, timeout: float = 30.0
    ) -> int:
        """Send ``sig`` to worker ``index`` and wait for it to exit; its exit code."""
        return await self._signal(self.worker_nodes[index], sig, timeout)

    async def kill_front_end(
        self, index: int, sig: signal.Signals = signal.SIGKILL, *, timeout: float = 30.0
    ) -> int:
        """Send ``sig`` to front end ``index`` and wait for it to exit; its exit code."""
        return await self._signal(self.front_end_nodes[index], sig, timeout)

    async def _signal(self, node: Node, sig: signal.Signals, timeout: float) -> int:
        if node.running:
            node.process.send_signal(sig)
        try:
            async with within(timeout) as deadline:
                return await node.process.wait()
        except TimeoutError:
            node.process.send_signal(signal.SIGUSR1)  # it logs its tasks' stacks
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(2):
                    await node.process.wait()
            raise AssertionError(
                f"{node.kind} {node.index} did not exit {deadline} after {sig.name}\n"
                f"{node.tail(60, width=4000)}"
            ) from None

    async def restart_redis(self, *, crash: bool = False) -> None:
        """Stop Redis (SIGTERM, or SIGKILL with ``crash``) and start it on the same port."""
        await asyncio.to_thread(self.redis.kill if crash else self.redis.stop)
        await asyncio.to_thread(self.redis.start)

    async def _spawn(self, kind: Kind) -> Node:
        # Taken before the first await: spawns run concurrently at start-up.
        index = self._started[kind]
        self._started[kind] += 1
        for _ in range(_PORT_TRIES):
            node = await self._spawn_on(kind, index, free_port())
            if await self._wait_healthy(node):
                return node
            # Another process (a parallel test's) took the port between its pick and the
            # bind: the same node again on another port.
            self.nodes.remove(node)
        raise AssertionError(f"{kind} {index} found no free port in {_PORT_TRIES} tries")

    async def _spawn_on(self, kind: Kind, index: int, port: int) -> Node:
        name = "worker" if kind == "worker" else "front-end"
        log_path = self.tmp_path / "logs" / f"{name}-{index}.log"
        log = log_path.open("ab")
        self._logs.append(log)
        if kind == "worker":
            args = ["worker"]
        else:
            args = ["serve"] if self.front_ends_work else ["serve", "--no-worker"]
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", *args, cwd=self.tmp_path,
            env=self.env | {"AIRLOCK_PORT": str(port)},
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL, stderr=log,
        )  # fmt: skip
        node = Node(kind=kind, index=index, port=port, log=log_path, process=process)
        self.nodes.append(node)
        return node

    async def _wait_healthy(self, node: Node) -> bool:
        """Whether ``node`` came up healthy; False if its port was another process's."""
        deadline = Deadline(seconds=self.startup_timeout)
        while not deadline.passed():
            if not node.running:
                if "Address already in use" in node.tail():
                    return False
                raise AssertionError(
                    f"{node.kind} {node.index} exited with {node.process.returncode} at "
                    f"start-up\n{node.tail()}"
                )
            # Only its own answer counts: on a port taken meanwhile, another process answers.
            if listens(node.process.pid, node.port):
                with contextlib.suppress(aiohttp.ClientError):
                    async with self._http.get(f"{node.url}/healthz") as response:
                        if response.status == 200:
                            return True
            # A process gives no readiness event: poll until the deadline.
            await asyncio.sleep(0.05)
        raise AssertionError(
            f"{node.kind} {node.index} did not answer /healthz in {deadline}\n{node.tail()}"
        )

    async def scrape(self, node: Node, path: str = "/metrics") -> tuple[int, str]:
        """GET ``path`` (``/metrics``, ``/healthz``) from one process: (status, body)."""
        async with self._http.get(f"{node.url}{path}") as response:
            return response.status, await response.text()

    def print_logs(self) -> None:
        """Print the tail of every process's stderr (pytest shows it with a failure)."""
        for node in self.nodes:
            code = "running" if node.running else f"exit {node.process.returncode}"
            print(f"----- {node.kind} {node.index} ({code}): {node.log}", file=sys.stderr)
            print(node.tail(), file=sys.stderr)

    # -- Slack in

    async def post_goal(self, front_end: int = 0, *, needs_approval: bool = False) -> Goal:
        """Post a signed app mention with a new goal to front end ``front_end``.

        Returns once the front end acknowledged it (HTTP 200), not when the run starts.
        """
        serial = next(self._serial)
        token = f"goal-{uuid.uuid4().hex[:16]}"
        text = f"write the note {token}" + (f" {NEEDS_APPROVAL}" if needs_approval else "")
        ts = f"{_BASE_TS + serial}.{serial:06d}"
        body = copy.deepcopy(MENTION)
        event_id = f"EvCLUSTER{serial:06d}{token[-6:].upper()}"
        body.update(event_id=event_id, event_time=int(time.time()))
        body["event"].update(
            text=f"<@{body['authed_users'][0]}> {text}", ts=ts, event_ts=ts,
            client_msg_id=str(uuid.uuid4()),
        )  # fmt: skip
        status, answer_text = await post_to_bot(
            self._events_url(front_end), self._signer.event(body), session=self._http
        )
        if status != 200:
            raise AssertionError(f"front end {front_end} answered {status}: {answer_text}")
        goal = Goal(token=token, text=text, thread_ts=ts, event_id=event_id,
                    needs_approval=needs_approval)  # fmt: skip
        self.goals.append(goal)
        return goal

    async def click_approve(
        self, front_end: int, approval_id: str, message_ts: str, *, user: str = APPROVER
    ) -> int:
        """Click Approve on a card, through front end ``front_end``; the HTTP status."""
        body = copy.deepcopy(CLICK)
        body["user"]["id"] = user
        body["container"].update(channel_id=MENTION["event"]["channel"], message_ts=message_ts,
                                 is_ephemeral=False)  # fmt: skip
        body["actions"][0].update(
            action_id="airlock_approve", block_id=f"airlock:{approval_id}", value=approval_id,
            text={"type": "plain_text", "text": "Approve"},
        )  # fmt: skip
        status, _ = await post_to_bot(
            self._events_url(front_end), self._signer.interaction(body), session=self._http
        )
        return status

    async def slash_command(self, front_end: int, text: str, *, user: str = REQUESTER) -> int:
        """``/agent <text>`` typed by ``user`` in the goals' channel, through ``front_end``;
        the HTTP status (the answer goes to its response_url, on the Slack stand-in)."""
        form = dict(parse_qsl(load_text_payload("slash_command.txt")))
        channel = MENTION["event"]["channel"]
        form.update(command="/agent", text=text, user_id=user, channel_id=channel,
                    trigger_id=f"{next(self._serial)}.{uuid.uuid4().hex[:12]}",
                    response_url=self.slack.response_url(user=user, channel=channel))  # fmt: skip
        status, _ = await post_to_bot(
            self._events_url(front_end), self._signer.command(form), session=self._http
        )
        return status

    async def reply_in_thread(
        self, front_end: int, thread_ts: str, text: str, *, user: str = REQUESTER
    ) -> int:
        """``user`` (the requester) replies ``text`` in a goal's thread, through ``front_end``;
        the HTTP status. Built from the shared app_mention delivery, as a plain ``message``."""
        serial = next(self._serial)
        body = copy.deepcopy(MENTION)
        ts = f"{_BASE_TS + serial}.{serial:06d}"
        body.update(event_id=f"EvREPLY{serial:06d}", event_time=int(time.time()))
        event = body["event"]
        event.update(type="message", text=text, ts=ts, event_ts=ts, thread_ts=thread_ts, user=user,
                     client_msg_id=str(uuid.uuid4()), channel_type="channel")  # fmt: skip
        event.pop("blocks", None)  # the mention's rich text would still say the old text
        status, _ = await post_to_bot(
            self._events_url(front_end), self._signer.event(body), session=self._http
        )
        return status

    async def approve_new_cards(
        self, clicked: set[str], front_end: Callable[[ApprovalCard], int]
    ) -> None:
        """Click Approve on every pending card not in ``clicked`` (through the front end
        ``front_end`` picks for it), adding each to ``clicked``."""
        for card in await self.pending_approval_cards():
            if card.approval_id not in clicked:
                status = await self.click_approve(
                    front_end(card), card.approval_id, card.message_ts
                )
                assert status == 200, f"an Approve click answered {status}"
                clicked.add(card.approval_id)

    def _events_url(self, front_end: int) -> str:
        return f"{self.front_end_nodes[front_end].url}/slack/events"

    # -- state

    async def pending_approval_cards(self) -> list[ApprovalCard]:
        """Approval cards posted in Slack whose approval is still pending in the store."""
        pending = {a.id for a in await self._read(self.store.list_pending_approvals)}
        cards: dict[str, ApprovalCard] = {}
        for call in self.slack.calls_to("chat.postMessage"):
            approval_id = _card_approval(call)
            in_thread = call.args.get("thread_ts")  # approvers' DM copies are not in one
            if approval_id in pending and call.response.get("ok") and in_thread:
                cards[approval_id] = ApprovalCard(
                    approval_id=approval_id, message_ts=str(call.response["ts"]),
                    thread_ts=call.args.get("thread_ts"),
                )  # fmt: skip
        return list(cards.values())

    async def wait_for_cards(self, count: int = 1, *, timeout: float = 30.0) -> list[ApprovalCard]:
        """Wait until at least ``count`` cards are pending (see :meth:`pending_approval_cards`)."""
        deadline = Deadline(seconds=timeout)
        cards: list[ApprovalCard] = []
        while not deadline.passed():
            cards = await self.pending_approval_cards()
            if len(cards) >= count:
                return cards
            # Cards are posted by other processes: polling is the only way to see them.
            await asyncio.sleep(0.05)
        raise AssertionError(f"{len(cards)} pending approval card(s) after {deadline}, not {count}")

    async def runs(self, *, limit: int = 100_000) -> list[Run]:
        """Every run in the store."""
        return await self._read(lambda: self.store.list_runs(limit=limit))

    async def wait_all_final(self, run_count: int, *, timeout: float = 60.0) -> list[Run]:
        """Wait until the store holds ``run_count`` runs, all final; those runs.

        Store errors while polling (Redis restarting) are retried until the deadline. On
        the deadline: AssertionError with the runs by status (leaving the ``async with``
        prints every process's log tail).
        """
        deadline = Deadline(seconds=timeout)
        runs: list[Run] = []
        problem = ""
        while not deadline.passed():
            try:
                runs = await self.runs()
                problem = ""
            except _STORE_ERRORS as error:
                problem = f"; last store error: {error!r}"
            else:
                if len(runs) >= run_count and all(r.status.is_final for r in runs):
                    return runs
            # Runs advance in other processes: polling is the only way to see them.
            await asyncio.sleep(0.05)
        by_status: dict[str, int] = {}
        for run in runs:
            by_status[run.status] = by_status.get(run.status, 0) + 1
        raise AssertionError(
            f"not all {run_count} runs final in {deadline}: {len(runs)} runs {by_status}{problem}"
        )

    async def lease_holder(self, run_id: str) -> str | None:
        """The worker holding the run's lease now, if any."""
        return await self._read(lambda: self.store.run_queue().holder(run_id))

    async def queue_depth(self) -> tuple[int, int]:
        """Runs on the queue waiting for a worker, and runs a worker holds."""
        return await self._read(lambda: self.store.run_queue().depth())

    async def audit_tool_calls(self, run_id: str) -> list[AuditEvent]:
        """The run's ``tool_call`` audit events, in order (each a call that started)."""
        events = await self._read(lambda: self.store.list_audit(run_id))
        return [e for e in events if e.kind == "tool_call"]

    async def _read(self, read: Callable[[], Awaitable[T]], *, timeout: float = 10.0) -> T:
        """``read()``, again while the store fails (the first command on each pooled
        connection fails after Redis restarted), until ``timeout``."""
        deadline = Deadline(seconds=timeout)
        while True:
            try:
                return await read()
            except _STORE_ERRORS:
                if deadline.passed():
                    raise
            await asyncio.sleep(0.05)

    def workspace_file(self, goal: Goal) -> Path:
        """Where the goal's tool call writes (``.txt``, or ``.cmd`` when it needs approval)."""
        suffix = ".cmd" if goal.needs_approval else ".txt"
        return self.tmp_path / "data" / "workspace" / "runs" / f"{goal.token}{suffix}"

    def goal_of(self, run: Run) -> Goal:
        """The posted goal a run came from."""
        found = _TOKEN.search(run.goal)
        match = [g for g in self.goals if found is not None and g.token == found.group(0)]
        if not match:
            raise KeyError(f"run {run.id} has no posted goal: {run.goal!r}")
        return match[0]


def _card_approval(call: SlackCall) -> str | None:
    for block in call.args.get("blocks") or []:
        block_id = str(block.get("block_id") or "")
        if block.get("type") == "actions" and block_id.startswith("airlock:"):
            return block_id.removeprefix("airlock:")
    return None
