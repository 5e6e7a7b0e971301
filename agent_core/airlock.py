"""The front door: the agent core assembled from settings, as every front end holds it.

`airlock serve`, `worker`, `run`, the operator commands and the demo each open one
:class:`Airlock` and ask it for what they do (submit a run, decide, kill, halt, resume, serve
runs, memory); none of them assembles the store, the model, the tools, the decision path and
the run host itself, so a new way of working on runs is chosen here, once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Set
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from agent_core.approvals import (
    ApprovalPolicy,
    Authority,
    DecisionService,
    Refused,
    RiskPolicy,
    edit_risk_check,
    schema_edit_check,
)
from agent_core.approvals.authority import Resolver
from agent_core.audit.trail import Audit
from agent_core.channel import OperatorChannel
from agent_core.config import Settings
from agent_core.errors import AirlockError
from agent_core.models import Decision, DecisionOutcome, HaltState, Run, RunStatus
from agent_core.runs.claims import Claims, LocalClaims, worker_name
from agent_core.runs.control import RunControl
from agent_core.runs.host import RunHost
from agent_core.runs.leased import LeasedClaims
from agent_core.runs.limits import Admission, Limits, SpendLedger
from agent_core.runs.orchestrator import Orchestrator, RunPolicy
from agent_core.runs.slots import RunQueue
from agent_core.store import Store, open_settings_store
from agent_core.store.run_queue import RedisRunQueue
from agent_core.tools import ToolRegistry
from agent_core.tools.builtins import builtin_tools
from agent_core.tools.mcp import McpTools, load_mcp_config
from agent_core.tools.sandbox import CommandSandbox

if TYPE_CHECKING:  # importing memory loads FAISS; only a process that uses it pays
    from agent_core.memory.longterm import LongTermMemory
    from agent_core.memory.service import AgentMemory

__all__ = ["Airlock", "ChannelParts", "Decide", "Hosting", "build_tools"]

logger = logging.getLogger(__name__)

C = TypeVar("C", bound=OperatorChannel)

Decide = Callable[[str, Decision], Awaitable[DecisionOutcome | Refused]]
"""The decision path as a front end's channel calls it: approval id and decision in."""

Hosting = Literal["here", "terminal", "queue"]
"""Who works on the runs a front end submits: ``here`` (this process: under leases in the
store with SQLite, as a worker of the shared queue with Redis), ``terminal`` (only the runs
submitted to it, ``airlock run``), ``queue`` (nobody here: they go on the shared queue)."""

_UNLIMITED_SLOTS = 1000
"""A worker's slots when AIRLOCK_MAX_CONCURRENT_RUNS is 0 (no limit)."""


@dataclass(kw_only=True, frozen=True)
class ChannelParts:
    """What a front end's channel may need from the core when it is made."""

    store: Store
    decide: Decide
    """Where a channel that asks people itself (the terminal) sends their answers."""


class Airlock:
    """The agent core one process holds: open it with :meth:`from_settings`.

    Opened, it has the store and what acts on it (decisions, the kill switch, limits, the
    audit trail). :meth:`connect` adds the agent: the model, memory, tools and the run host,
    reporting to a channel.
    """

    def __init__(
        self, settings: Settings, store: Store, stack: AsyncExitStack, *, groups: Resolver | None
    ) -> None:
        self.settings = settings
        self.store = store
        self._stack = stack
        self.audit = Audit(store=store)
        """The audit trail the front end records its own acts in (feedback, memory)."""
        self.authority = Authority.from_settings(settings, members_of=groups)
        self.decisions = DecisionService(store=store, authority=self.authority, audit=self.audit)
        self.control = RunControl(store=store, authority=self.authority, audit=self.audit)
        self.admission = Admission(store=store, limits=Limits.from_settings(settings))
        self.ledger = SpendLedger(store=store)
        self.queue: RedisRunQueue | None = store.run_queue()
        """The shared run queue (Redis), or None where runs work in the process (SQLite)."""
        self.tools: ToolRegistry | None = None
        self.memory: AgentMemory | None = None
        self._host: RunHost | None = None
        self._connected = False

    @classmethod
    @asynccontextmanager
    async def from_settings(
        cls,
        settings: Settings,
        *,
        groups: Resolver | None = None,
        audit: Literal["write", "read"] = "write",
    ) -> AsyncIterator[Airlock]:
        """The store the settings name, and what acts on it; all closed on the way out.

        ``groups`` resolves a user-group approver to its members (None: there are no groups).
        ``audit="read"``: a command that never writes the audit trail (see
        :func:`~agent_core.store.open_settings_store`).
        """
        async with AsyncExitStack() as stack:
            store = await open_settings_store(settings, audit=audit)
            stack.push_async_callback(store.close)
            yield cls(settings, store, stack, groups=groups)

    async def connect(
        self,
        channel: Callable[[ChannelParts], C],
        *,
        hosting: Hosting = "here",
        report: Callable[[str], None] | None = None,
    ) -> C:
        """Add the agent, reporting to the channel ``channel`` makes; returns that channel.

        The decision path is made again first, now checking edited calls against the tools,
        so a channel that asks people itself is handed it (``ChannelParts.decide``) rather
        than connected to it afterwards; take :attr:`decisions` after this. ``report`` gets the
        one-line problems of tool set-up (a sandbox that cannot start, an MCP server down);
        by default they are logged.
        """
        if self._connected:
            raise RuntimeError("the agent is connected already")
        self._connected = True
        settings, store = self.settings, self.store
        from agent_core.llm.anthropic import AnthropicLLM  # the SDK is slow to import

        llm = await self._stack.enter_async_context(AnthropicLLM.from_settings(settings))
        self.memory = _memory(settings, store, self._stack)
        self.tools = await build_tools(settings, self._stack, report=report or _log,
                                       memory=self.memory)  # fmt: skip
        self.decisions = _decisions(settings, store, self.tools, self.authority, self.audit)
        made = channel(ChannelParts(store=store, decide=self.decisions.decide))
        orchestrator = Orchestrator(
            store=store, llm=llm, tools=self.tools, channel=made,
            policy=RunPolicy.from_settings(settings), workspace=settings.effective_workspace_dir,
            memory=self.memory, ledger=self.ledger,
        )  # fmt: skip
        if hosting != "queue":
            self._host = self._run_host(orchestrator, made, terminal=hosting == "terminal")
        return made

    def _run_host(
        self, orchestrator: Orchestrator, channel: OperatorChannel, *, terminal: bool
    ) -> RunHost:
        """What works on runs here: a terminal's own runs; else a worker on the shared queue
        (Redis), else this process under leases in the store (SQLite)."""
        settings, store = self.settings, self.store
        claims: Claims
        if terminal:  # under a lease in the store, so no other process takes one up meanwhile
            slots = RunQueue()
            claims = LocalClaims(store=store, name=worker_name(terminal=True), everything=False,
                                 lease_seconds=settings.lease_seconds)  # fmt: skip
        elif self.queue is None:
            slots = RunQueue(limit=settings.max_concurrent_runs)
            claims = LocalClaims(store=store, lease_seconds=settings.lease_seconds)
        else:
            slots = RunQueue()  # the worker counts its own slots: it reads no more than it has
            claims = LeasedClaims(
                queue=self.queue, store=store, lease_seconds=settings.lease_seconds,
                slots=settings.max_concurrent_runs or _UNLIMITED_SLOTS,
            )  # fmt: skip
        return RunHost(store=store, orchestrator=orchestrator, channel=channel,
                       policy=ApprovalPolicy.from_settings(settings), claims=claims,
                       slots=slots)  # fmt: skip

    @property
    def works_on_runs(self) -> bool:
        """Whether runs work in this process (:meth:`connect` with hosting other than queue)."""
        return self._host is not None

    async def start_runs(self) -> None:
        """Start working on runs: those left unfinished by an earlier process resume."""
        await self._runs().start()

    async def stop_runs(self, *, grace_seconds: float = 0.0) -> None:
        """Stop working on runs; the working ones get ``grace_seconds`` to checkpoint."""
        await self._runs().stop(grace_seconds=grace_seconds)

    async def submit(self, run_id: str) -> bool:
        """Have ``run_id`` worked on: here, or queued for the workers. False while another
        process holds it (see :meth:`held_by`)."""
        if self._host is not None:
            return await self._host.submit(run_id)
        if self.queue is None:
            raise RuntimeError("runs are queued only with a Redis store")
        await self.queue.enqueue(run_id)
        return True

    async def held_by(self, run_id: str) -> tuple[str, float] | None:
        """Which process holds ``run_id`` and for how many more seconds; None if none does."""
        return await self._runs().held_by(run_id)

    async def wait_for(self, run_id: str, statuses: Set[RunStatus]) -> Run:
        """Until ``run_id`` reaches one of ``statuses``; bound it with asyncio.timeout."""
        return await self._runs().wait_for(run_id, statuses)

    def working(self) -> list[asyncio.Task[Run]]:
        """The tasks of the runs working in this process now."""
        return list(self._host.tasks.values()) if self._host is not None else []

    async def decide(self, approval_id: str, decision: Decision) -> DecisionOutcome | Refused:
        """Apply ``decision`` to ``approval_id`` if its author may."""
        return await self.decisions.decide(approval_id, decision)

    async def kill(self, run_id: str, *, by: str, reason: str | None = None) -> Run | Refused:
        """End ``run_id`` as killed (an admin, or the person who asked for it)."""
        return await self.control.kill(run_id, by=by, reason=reason)

    async def kill_all(self, *, by: str, reason: str | None = None) -> list[Run] | Refused:
        """Kill every run that is not over (admins only)."""
        return await self.control.kill_all(by=by, reason=reason)

    async def retry(self, run_id: str, *, by: str) -> Run | Refused:
        """Queue a failed, timed-out or budget-stopped run again as its next attempt."""
        return await self.control.retry(run_id, by=by)

    async def halt(self, *, by: str, reason: str | None = None) -> list[Run] | Refused:
        """Kill every run and refuse new ones until :meth:`resume` (admins only)."""
        return await self.control.halt(by=by, reason=reason)

    async def resume(self, *, by: str) -> HaltState | Refused:
        """Accept new runs again (admins only)."""
        return await self.control.resume(by=by)

    def input_schema(self, tool: str) -> dict[str, Any] | None:
        """The input JSON Schema of ``tool``; None if there is no such tool (or no agent)."""
        return self.tools.input_schema(tool) if self.tools is not None else None

    def long_term_memory(self) -> AbstractAsyncContextManager[LongTermMemory]:
        """The long-term memory on its own (no agent), its indexes saved on the way out."""
        return _long_term_memory(self.settings, self.store)

    def _runs(self) -> RunHost:
        if self._host is None:
            raise RuntimeError("no runs work in this process: connect the agent with a host")
        return self._host


def _log(line: str) -> None:
    logger.warning(line)


def _decisions(
    settings: Settings, store: Store, registry: ToolRegistry, authority: Authority, audit: Audit
) -> DecisionService:
    """The decision path, checking an edited call against its tool's schema and risk."""
    return DecisionService(
        store=store, authority=authority, audit=audit, check_edit=schema_edit_check(registry),
        edit_risk=edit_risk_check(registry, RiskPolicy.from_settings(settings), store),
    )  # fmt: skip


@asynccontextmanager
async def _long_term_memory(settings: Settings, store: Store) -> AsyncIterator[LongTermMemory]:
    from agent_core.memory.service import AgentMemory

    memory = AgentMemory.from_settings(settings, store).longterm
    try:
        yield memory
    finally:
        await memory.close()


def _memory(settings: Settings, store: Store, stack: AsyncExitStack) -> AgentMemory | None:
    """Session facts and long-term memory, unless turned off; indexes saved on the way out.

    The embedding model starts loading in a background thread now (importing torch takes
    seconds), while the caller goes on starting up; nothing waits for it but the first
    recall. A model that fails to load is logged here and raises again where it is used.
    """
    if not settings.memory_enabled:
        return None
    from agent_core.memory.service import AgentMemory

    agent_memory = AgentMemory.from_settings(settings, store)
    stack.push_async_callback(agent_memory.longterm.close)
    warming = asyncio.create_task(_warm(agent_memory), name="airlock-warm-memory")
    stack.push_async_callback(_cancelled, warming)
    return agent_memory


async def _warm(agent_memory: AgentMemory) -> None:
    try:
        await agent_memory.longterm.embedder.warm()
    except AirlockError as error:
        logger.warning("embedding model unavailable; memory will fail where used",
                       extra={"error": str(error)})  # fmt: skip


async def _cancelled(task: asyncio.Task[None]) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def build_tools(
    settings: Settings,
    stack: AsyncExitStack,
    *,
    report: Callable[[str], None],
    memory: AgentMemory | None = None,
) -> ToolRegistry:
    """Built-in tools, memory tools and the MCP servers' tools.

    Their configured risk overrides are applied where every call's risk is worked out
    (:class:`RiskPolicy`, through the run policy and the decision path), not here. The
    command sandbox is checked here, once: when it cannot start (or is turned off),
    ``report`` gets one line saying so.
    """
    sandbox = CommandSandbox.from_settings(settings)
    if (line := (await sandbox.check()).startup_line()) is not None:
        report(line)
    built = builtin_tools(settings, sandbox=sandbox)
    if memory is not None:
        from agent_core.tools.builtins.memory import memory_tools

        built += memory_tools(memory.longterm)
    registry = ToolRegistry(built)
    if settings.mcp_config is not None:
        mcp = McpTools(config=load_mcp_config(settings.mcp_config), registry=registry)
        await stack.enter_async_context(mcp)
        for failure in mcp.failures:
            report(f"MCP server {failure.server} unavailable: {failure.reason}")
    settings.effective_workspace_dir.mkdir(parents=True, exist_ok=True)
    return registry
