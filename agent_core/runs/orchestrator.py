"""A run from queue to final status: plan, gate, execute in dependency order, checkpoint.

Every status change goes through the Store (compare-and-set on the run's version), and a
checkpoint is written after every model turn and tool round, so another process can pick
the run up where it stopped. Budgets, the run's wall-clock limit and kills all end the run
with their own status and a reason people can read.
"""

from __future__ import annotations

import asyncio
import enum
import graphlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

from pydantic import BaseModel

from agent_core import telemetry
from agent_core.approvals import (
    ApprovalGate,
    ApprovalPolicy,
    Denied,
    Pending,
    RiskPolicy,
    close_with_run,
)
from agent_core.audit import events
from agent_core.audit.trail import Audit, AuditedCalls
from agent_core.channel import (
    BudgetWarning,
    OperatorChannel,
    PlanReady,
    RunFinished,
    StepFinished,
    StepStarted,
)
from agent_core.clock import Clock, SystemClock
from agent_core.config import Settings
from agent_core.errors import LLMError, OwnershipLost, PlanError, VersionConflict
from agent_core.llm import LLM, LLMStack, Usage, llm_stack
from agent_core.llm.budget import Budget, BudgetLimits
from agent_core.llm.messages import Message
from agent_core.models import Plan, Run, RunStatus, Subtask, SubtaskResult
from agent_core.runs.executor import Drained, Executor, ExecutorLimits, Interruption
from agent_core.runs.journal import ToolJournal
from agent_core.runs.limits import SpendLedger
from agent_core.runs.ownership import Ownership
from agent_core.runs.planner import Planner
from agent_core.stops import RunStop
from agent_core.store import Fact, Step, Store
from agent_core.tools import ToolContext, ToolRegistry

if TYPE_CHECKING:  # memory pulls in FAISS; runs without memory need not import it
    from agent_core.memory.service import AgentMemory

__all__ = ["Checkpoint", "Orchestrator", "RunPolicy", "Stop", "StopOf"]


class Stop(enum.StrEnum):
    """Why a run's task was cancelled though the run goes on. Its host records it on the
    task's record before cancelling, and the run is left as it is, at its last checkpoint, for
    whoever resumes it. A cancellation with none recorded is a kill."""

    SHUTDOWN = "shutdown"
    """Its process is shutting down."""
    CLAIM_LOST = "claim_lost"
    """Another process took the run over."""


StopOf: TypeAlias = Callable[[], Stop | None]
"""Why the task working on a run was cancelled, when asked after the cancellation."""


def _killed() -> Stop | None:
    return None


logger = logging.getLogger(__name__)

_CLAIMED_INTO = {
    RunStatus.AWAITING_APPROVAL: RunStatus.RUNNING,
    RunStatus.QUEUED: RunStatus.PLANNING,
}
"""The status a claim saves a run in, by the status it found (others are kept)."""

_AUDITED_CHARS = 4000
"""Longest result text kept in an audit event (the whole result is on the run record)."""

_Outcome: TypeAlias = tuple[RunStatus, str] | Interruption
"""How a pass at a run ends: a final status and its result, or stopped short to resume later."""


class Checkpoint(BaseModel):
    """What a run needs, besides its record, to resume: each unfinished subtask's conversation."""

    conversations: dict[str, list[Message]] = {}
    journal: bool = False
    """Whether every tool call of the run is in the tool-call journal. A checkpoint written by
    a version before the journal (or by one that dropped this field) has it False: resuming
    that run looks the calls with no journal record up in its audit trail."""


@dataclass(kw_only=True, frozen=True)
class RunPolicy:
    """The limits and knobs of one run, taken from settings."""

    budget: BudgetLimits
    executor: ExecutorLimits
    approvals: ApprovalPolicy = field(default_factory=ApprovalPolicy)
    risk: RiskPolicy = field(default_factory=RiskPolicy)
    """How each tool call's risk is worked out: tool risk overrides, the egress allow-list."""
    run_timeout_seconds: float = 1800.0
    max_plan_retries: int = 2
    max_concurrent_subtasks: int = 4
    working_memory_tokens: int | None = None
    """Token budget of a subtask's conversation (older turns summarised); None: no limit."""
    token_counting: Literal["estimate", "api"] = "estimate"

    @classmethod
    def from_settings(cls, settings: Settings) -> RunPolicy:
        """The policy the settings describe."""
        return cls(
            budget=BudgetLimits(
                llm_calls=settings.max_llm_calls_per_run,
                tokens=settings.run_token_budget,
                usd=settings.run_budget_usd,
                warning_fraction=settings.budget_warning_fraction,
            ),
            executor=ExecutorLimits(
                max_iterations=settings.max_iterations_per_subtask,
                loop_repeat_limit=settings.loop_repeat_limit,
                output_max_chars=settings.tool_output_max_chars,
                tool_timeout_seconds=settings.tool_timeout_seconds,
                max_tokens=settings.llm_max_tokens,
            ),
            approvals=ApprovalPolicy.from_settings(settings),
            risk=RiskPolicy.from_settings(settings),
            run_timeout_seconds=settings.run_timeout_seconds,
            max_plan_retries=settings.max_plan_retries,
            max_concurrent_subtasks=settings.max_concurrent_subtasks,
            working_memory_tokens=settings.working_memory_tokens,
            token_counting=settings.token_counting,
        )


@dataclass(kw_only=True)
class Orchestrator:
    """Drives runs; one instance serves many runs, each :meth:`execute` call one run."""

    store: Store
    llm: LLM
    tools: ToolRegistry
    channel: OperatorChannel
    policy: RunPolicy
    workspace: Any
    """Folder for file and command tools (a ``Path``)."""
    clock: Clock = field(default_factory=SystemClock)
    memory: AgentMemory | None = None
    """Session facts and long-term memory; None runs without memory."""
    ledger: SpendLedger | None = None
    """Daily spend totals (workspace, requester), charged per model call; None counts none."""
    draining: asyncio.Event = field(default_factory=asyncio.Event)
    """Set when the process is shutting down: each run stops at its next checkpoint."""

    async def execute(
        self,
        run_id: str,
        *,
        ownership: Ownership | None = None,
        stop_of: StopOf = _killed,
        known: Run | None = None,
    ) -> Run:
        """Run ``run_id`` until it reaches a final status or parks waiting for a decision.

        A parked run ends this call with status ``awaiting_approval``; calling it again after
        the decision resumes the run from its checkpoint. Cancelling the task that awaits this
        ends the run as ``killed``, unless ``stop_of`` then gives a :class:`Stop`, which leaves
        it at its checkpoint. If another process finished the run meanwhile (a kill), this
        returns the run as that process left it.

        ``ownership`` is this process's lease on the run: it is written on the run first (so a
        process that lost the run can no longer save it) and checked before risky tool calls.
        Raises :class:`OwnershipLost` when another process has taken the run over.

        ``known`` is the run as its caller just read it (the host, deciding to resume it):
        started from instead of reading it again, where that is safe (see below).
        """
        # A handed run may be stale, and that is caught before anything is done with it: the
        # claim's save, the first thing a run under ``ownership`` does, is a compare-and-set
        # on the version, and a run changed since it was read (killed, decided, saved by
        # another owner) fails it, and is read again. Without ownership nothing saves before
        # the work begins, and a final run may have been retried since: both are read.
        handed = known is not None and ownership is not None and not known.status.is_final
        run = known if handed and known is not None else await self.store.get_run(run_id)
        state = _RunState(orchestrator=self, run=run, ownership=ownership, handed=handed)
        if state.run.status.is_final:
            return state.run
        with telemetry.run_span(state.run, latest=lambda: state.run):
            await self._work_on(state, stop_of)
        return state.run

    async def _work_on(self, state: _RunState, stop_of: StopOf) -> None:
        try:
            await state.claim()
            await state.load_checkpoint()  # after the claim: no earlier owner writes after it
            await self._drive(state, stop_of)
        except _StoppedElsewhere:
            if state.handed and not state.claimed:
                # The handed run had ended before this task saved anything: what a fresh
                # read would have found, and then nothing is told (the ender told people).
                return
            await self.channel.notify(
                RunFinished(run=state.run, status=state.run.status, result=state.run.error or "")
            )
        finally:
            if state.asked:  # no save came after asking (taken over, stopped): write them now
                await asyncio.shield(state.gate().write_asked())

    async def _drive(self, state: _RunState, stop_of: StopOf) -> None:
        deadline = asyncio.timeout(self.policy.run_timeout_seconds)
        try:
            async with deadline:
                outcome = await state.drive()
        except asyncio.CancelledError:
            if stop_of() is not None:
                raise  # the run stays as it is, to be resumed from its checkpoint
            try:
                await asyncio.shield(state.finish(RunStatus.KILLED, "killed"))
            except _StoppedElsewhere:
                finished = RunFinished(run=state.run, status=state.run.status, result="killed")
                await asyncio.shield(self.channel.notify(finished))
            raise
        except TimeoutError:
            if not deadline.expired():
                raise
            limit = self.policy.run_timeout_seconds
            await state.finish(RunStatus.TIMED_OUT, f"the run took longer than {limit:g} s")
        except RunStop as stop:
            await state.finish(stop.status, stop.reason)
        except PlanError as error:
            await state.finish(RunStatus.FAILED, "no valid plan: " + "; ".join(error.errors))
        except LLMError as error:
            await state.finish(RunStatus.FAILED, f"the model call failed: {error}")
        else:
            await _conclude(state, outcome)


async def _conclude(state: _RunState, outcome: _Outcome) -> None:
    """Record how the pass ended: parked for a person, left for the next process, or over."""
    if isinstance(outcome, Pending):
        await state.move(RunStatus.AWAITING_APPROVAL, let_go=True)  # a person's turn now
    elif isinstance(outcome, Drained):
        # Left as it is, just checkpointed: the next process to start resumes it there.
        logger.info("run stopped at a checkpoint for shutdown", extra={"run_id": state.run.id})
    else:
        await state.finish(*outcome)


class _StoppedElsewhere(Exception):
    """Signal: another process ended the run (a kill); stop without writing."""


@dataclass(kw_only=True)
class _RunState:
    """One run in flight: its latest record, conversations, and the helpers bound to it."""

    orchestrator: Orchestrator
    run: Run
    checkpoint: Checkpoint = field(default_factory=lambda: Checkpoint(journal=True))
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    notes: list[str] | None = None
    ownership: Ownership | None = None
    asked: list[Fact] = field(default_factory=list)
    """Flags that approvers were asked, written with the run's next save (the park)."""
    handed: bool = False
    """``run`` came from the caller, not a read of this task's (see ``execute``)."""
    claimed: bool = False
    """The claim's save landed: ``run`` is this task's own from then on."""
    budget: Budget = field(init=False)
    """The run's budget and what it spent so far."""
    llm: LLMStack = field(init=False)
    """The run's model: every call is budgeted, then audited, then traced and timed."""

    def __post_init__(self) -> None:
        o = self.orchestrator
        self.budget = Budget(
            limits=o.policy.budget,
            spend=self.run.spend.model_copy(),
            baseline=self.run.spent_before,
            on_warning=self._budget_warning,
            on_usage=self._charge,
        )
        # Outermost first: a call the budget refuses is neither audited nor traced, and the
        # span times the model alone, not the audit write.
        self.llm = llm_stack(
            o.llm,
            self.budget,
            AuditedCalls(audit=Audit(store=o.store), run_id=self.run.id),
            telemetry.ObservedCalls(model=o.llm),
        )

    async def load_checkpoint(self) -> None:
        raw = await self.orchestrator.store.load_checkpoint(self.run.id)
        if raw:
            self.checkpoint = Checkpoint.model_validate_json(raw)

    async def claim(self) -> None:
        """Take the run up: a worker writes its name on it, and a parked run goes back to work.

        Both are compare-and-sets on the run's version. A worker that holds the lease but
        loses the write saw an earlier owner's last save land first: it reads the run again
        and claims once more; after its claim no earlier owner can save the run.
        """
        ownership = self.ownership
        while ownership is not None:
            await ownership.check()
            was = self.run.status
            # One save: the owner, and the run on to its next status (a parked run back at
            # work: a decision is waiting; a queued one to planning, drive's first move).
            status = _CLAIMED_INTO.get(was, was)
            claimed = events.RunClaimed(worker=ownership.owner, status=was,
                                        attempt=self.run.attempt)  # fmt: skip
            try:
                await self.save(owner=ownership.owner, status=status, with_checkpoint=False,
                                recording=claimed)  # fmt: skip
            except OwnershipLost:
                # Saved by someone else since it was read: the run is read again (in _save),
                # and so is what it spent, or the next save would write the old spend back.
                self.budget.spend = self.run.spend.model_copy()
                self.budget.baseline = self.run.spent_before
                continue
            self.claimed = True
            break
        if self.run.status is RunStatus.AWAITING_APPROVAL:
            await self.move(RunStatus.RUNNING)

    async def drive(self) -> _Outcome:
        o = self.orchestrator
        if self.run.status is RunStatus.QUEUED:  # new, or retried with its plan kept
            await self.move(RunStatus.PLANNING)
        if self.run.plan is None:
            # One step: the planning calls' lines, the plan, its line and (a plan that needs
            # nobody's approval) the move to work land in one write; the plan's line only if
            # the save does.
            async with o.store.step(self.run.id):
                with telemetry.plan_span(self.run):
                    planner = Planner(llm=self.llm, max_retries=o.policy.max_plan_retries,
                                      risk=o.policy.risk)  # fmt: skip
                    notes = await self.memory_notes()
                    plan = await planner.plan(goal=self.run.goal, tools=o.tools, memory=notes)
                allowed = not self.run.dry_run and not ApprovalGate.asks_about(plan)
                status = RunStatus.RUNNING if allowed else self.run.status
                await self.save(plan=plan, status=status, recording=events.PlanCreated(plan=plan))
            await o.channel.notify(PlanReady(run=self.run, plan=plan))
        assert self.run.plan is not None
        if self.run.dry_run:
            count = len(self.run.plan.subtasks)
            planned = f"{count} subtask{'' if count == 1 else 's'}"
            return RunStatus.COMPLETED, f"dry run: {planned} planned, none run"
        verdict = await self.gate().check_plan(run=self.run, plan=self.run.plan)
        if isinstance(verdict, Pending):
            return verdict
        if isinstance(verdict, Denied):
            return RunStatus.REJECTED, f"plan {verdict.reason}"
        await self.move(RunStatus.RUNNING)
        return await _Schedule(state=self, plan=self.run.plan).run()

    def gate(self) -> ApprovalGate:
        o = self.orchestrator
        return ApprovalGate(
            store=o.store,
            channel=o.channel,
            policy=o.policy.approvals,
            audit=Audit(store=o.store),
            clock=o.clock,
            memory=o.memory,
            asked=self.asked,
        )

    async def memory_notes(self) -> list[str]:
        """Facts and memories for this run's prompts, looked up once per process."""
        memory = self.orchestrator.memory
        if self.notes is None:
            self.notes = [] if memory is None else await memory.context(self.run, self.run.goal)
        return self.notes

    def executor(self) -> Executor:
        o = self.orchestrator
        working = None
        if o.policy.working_memory_tokens is not None:
            from agent_core.memory.working import WorkingMemory, token_counter

            # The run's own budgeted model: summaries count against the run's budget.
            counter = token_counter(o.policy.token_counting, self.llm)
            working = WorkingMemory(llm=self.llm, counter=counter,
                                    budget_tokens=o.policy.working_memory_tokens)  # fmt: skip
        return Executor(
            llm=self.llm,
            tools=o.tools,
            gate=self.gate(),
            limits=o.policy.executor,
            context=lambda run: ToolContext(run=run, workspace=o.workspace, channel=o.channel),
            journal=ToolJournal(
                store=o.store, clock=o.clock, audit_fallback=not self.checkpoint.journal
            ),
            on_progress=self.progress,
            audit=Audit(store=o.store),
            working=working,
            ownership=self.ownership,
            risk=o.policy.risk,
            private_data=_PrivateData(state=self),
        )

    async def progress(self, subtask_id: str, messages: list[Message]) -> Drained | None:
        """Checkpoint after a model turn or tool round; :class:`Drained` while shutting down
        (the subtask stops at this checkpoint)."""
        self.checkpoint.conversations[subtask_id] = messages
        await self.save()
        return Drained() if self.orchestrator.draining.is_set() else None

    async def save(
        self,
        *,
        with_checkpoint: bool = True,
        recording: events.Recorded | None = None,
        let_go: bool = False,
        **changes: Any,
    ) -> None:
        """Write the run (spend included) and, unless told not to, its checkpoint, atomically;
        ``recording``, the line of what this save does (a claim, a plan, the end), lands in
        the same write, and only if the save does. With ``let_go`` (the run parks or ends),
        so does the letting go of this process's lease, where the ownership allows it."""
        if recording is None and not self.asked and not (let_go and self.ownership is not None):
            return await self._save(with_checkpoint, changes)
        async with self.orchestrator.store.step(self.run.id) as step:
            self.note_asked(step)
            if recording is not None:
                step.record_with_save(Audit.entry(self.run.id, recording, actor="airlock"))
            if not let_go or self.ownership is None:
                return await self._save(with_checkpoint, changes)
            with self.ownership.letting_go() as lease:
                if lease is not None:
                    step.release_with_save(lease)
                await self._save(with_checkpoint, changes)

    def note_asked(self, step: Step) -> None:
        """Have ``step`` write the flags of the approvals asked since the last save (they
        land with its commit even if the save loses: the approvers were asked)."""
        asked, self.asked[:] = list(self.asked), []
        for fact in asked:
            step.set_fact(fact)

    async def _save(self, with_checkpoint: bool, changes: dict[str, Any]) -> None:
        async with self.lock:
            updated = self.run.model_copy(
                update={"spend": self.budget.spend.model_copy(), **changes}
            )
            checkpoint = self.checkpoint.model_dump_json().encode() if with_checkpoint else None
            try:
                self.run = await self.orchestrator.store.save_run(updated, checkpoint=checkpoint)
            except VersionConflict:
                self.run = await self.orchestrator.store.get_run(self.run.id)
                if self.run.status.is_final:
                    raise _StoppedElsewhere from None
                # Someone else saved a live run: it is theirs now (a worker that took it over).
                raise OwnershipLost(self.run.id, "saved by another process") from None

    async def move(self, status: RunStatus, *, let_go: bool = False) -> None:
        if self.run.status is not status:
            # A status move changes no conversation: the last checkpoint still holds.
            await self.save(status=status, with_checkpoint=False, let_go=let_go)

    async def finish(self, status: RunStatus, result: str) -> None:
        if self.run.status.is_final:
            return
        error = None if status is RunStatus.COMPLETED else result
        finished = events.RunFinished(
            status=status, result=result[:_AUDITED_CHARS], spend=self.budget.spend.model_copy()
        )
        await self.save(status=status, error=error, recording=finished, let_go=True)
        telemetry.run_finished(status)
        # A step may still wait for a person (another step ended the run): nobody is asked now.
        await close_with_run(self.orchestrator.store, self.run.id, by="airlock",
                             at=self.orchestrator.clock.now())  # fmt: skip
        await self.orchestrator.channel.notify(
            RunFinished(run=self.run, status=status, result=result)
        )
        logger.info("run finished", extra={"run_id": self.run.id, "status": status.value})
        if self.orchestrator.memory is not None:
            await self.orchestrator.memory.learn_from_run(self.run, status=status, result=result)

    async def _charge(self, usage: Usage) -> None:
        """Count a model call's cost in today's workspace and requester totals."""
        ledger = self.orchestrator.ledger
        if ledger is not None:
            await ledger.charge(self.run.requester, usage.cost_usd)

    async def _budget_warning(self, budget: str, used: float, limit: float) -> None:
        await self.orchestrator.channel.notify(
            BudgetWarning(run=self.run, budget=budget, used=used, limit=limit,  # type: ignore[arg-type]
                          spend=self.budget.spend.model_copy())
        )  # fmt: skip


@dataclass(kw_only=True)
class _PrivateData:
    """The run's has-read-private-data flag, saved with the run record (so it survives a
    restart) and shared by all its subtasks."""

    state: _RunState

    def is_set(self) -> bool:
        return self.state.run.private_data_read

    async def set(self) -> None:
        if not self.state.run.private_data_read:
            await self.state.save(with_checkpoint=False, private_data_read=True)


@dataclass(kw_only=True)
class _Schedule:
    """Runs a plan's subtasks in dependency order, independent ones at the same time."""

    state: _RunState
    plan: Plan
    running: dict[asyncio.Task[SubtaskResult | Interruption], str] = field(default_factory=dict)
    parked: Interruption | None = None
    """Why the schedule stops early: a decision to wait for, or a shutdown."""

    async def run(self) -> _Outcome:
        sorter = graphlib.TopologicalSorter({s.id: set(s.depends_on) for s in self.plan.subtasks})
        sorter.prepare()
        ready: list[str] = []
        try:
            while sorter.is_active() and self.parked is None:
                ready += sorter.get_ready()
                ready = await self._start(ready, sorter)
                if self.running:
                    await self._collect(sorter)
            # A parked or drained subtask stops new ones; those already running reach their
            # own checkpoint or end first.
            while self.running:
                await self._collect(sorter)
        finally:
            await self._cancel_all()
        if self.parked is not None:
            return self.parked
        return self._outcome()

    async def _start(self, ready: list[str], sorter: graphlib.TopologicalSorter[str]) -> list[str]:
        waiting = []
        for subtask_id in ready:
            results = self.state.run.results
            if subtask_id in results or self._blocked(subtask_id):
                if subtask_id not in results:
                    await self._record(
                        subtask_id,
                        SubtaskResult(status="skipped", error="a dependency did not complete"),
                    )
                sorter.done(subtask_id)
            elif len(self.running) < self.state.orchestrator.policy.max_concurrent_subtasks:
                self.running[asyncio.create_task(self._one(subtask_id))] = subtask_id
            else:
                waiting.append(subtask_id)
        return waiting

    def _blocked(self, subtask_id: str) -> bool:
        subtask = self._subtask(subtask_id)
        results = self.state.run.results
        return any(results[d].status != "completed" for d in subtask.depends_on if d in results)

    async def _collect(self, sorter: graphlib.TopologicalSorter[str]) -> None:
        done, _ = await asyncio.wait(self.running, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            subtask_id = self.running.pop(task)
            result = task.result()
            if isinstance(result, Pending | Drained):
                # Waiting for a person says more than shutting down: it wins.
                if not isinstance(self.parked, Pending):
                    self.parked = result
                if self.running:  # the park waits for these: the asked flags do not
                    await self.state.gate().write_asked()
                continue
            await self._record(subtask_id, result)
            sorter.done(subtask_id)

    async def _one(self, subtask_id: str) -> SubtaskResult | Interruption:
        state, subtask = self.state, self._subtask(subtask_id)
        index = [s.id for s in self.plan.subtasks].index(subtask_id) + 1
        await state.orchestrator.channel.notify(
            StepStarted(
                run=state.run, subtask_id=subtask_id, index=index, total=len(self.plan.subtasks)
            )
        )
        inputs = {d: state.run.results[d].output for d in subtask.depends_on}
        resumed = state.checkpoint.conversations.get(subtask_id)
        notes = [] if resumed else await state.memory_notes()
        return await state.executor().run(
            run=state.run, subtask=subtask, inputs=inputs, messages=resumed, notes=notes
        )

    async def _record(self, subtask_id: str, result: SubtaskResult) -> None:
        state = self.state
        if result.status == "completed":
            # A failed step keeps its conversation: a retry resumes it, calls already made
            # and their results included, instead of making them again.
            state.checkpoint.conversations.pop(subtask_id, None)
        store = state.orchestrator.store
        finished = events.SubtaskFinished(
            subtask_id=subtask_id, status=result.status, output=result.output[:_AUDITED_CHARS],
            error=result.error,
        )  # fmt: skip
        async with store.step(state.run.id):  # the event lands with the result it records
            await Audit(store=store).record(state.run.id, finished, actor="airlock")
            await state.save(results={**state.run.results, subtask_id: result})
        summary = result.output if result.status == "completed" else (result.error or result.status)
        await state.orchestrator.channel.notify(
            StepFinished(
                run=state.run, subtask_id=subtask_id, status=result.status, summary=summary
            )
        )
        memory = state.orchestrator.memory
        if memory is not None and result.status == "completed":
            step = self._subtask(subtask_id).description
            await memory.learn_from_step(state.llm, run=state.run, step=step, result=summary)

    async def _cancel_all(self) -> None:
        for task in self.running:
            task.cancel()
        await asyncio.gather(*self.running, return_exceptions=True)

    def _subtask(self, subtask_id: str) -> Subtask:
        return next(s for s in self.plan.subtasks if s.id == subtask_id)

    def _outcome(self) -> tuple[RunStatus, str]:
        results = self.state.run.results
        for subtask in self.plan.subtasks:
            result = results[subtask.id]
            if result.status == "failed":
                return RunStatus.FAILED, f"subtask {subtask.id} failed: {result.error}"
        needed = {d for s in self.plan.subtasks for d in s.depends_on}
        sinks = [s.id for s in self.plan.subtasks if s.id not in needed]
        if len(sinks) == 1:
            return RunStatus.COMPLETED, results[sinks[0]].output
        return RunStatus.COMPLETED, "\n\n".join(f"{s}: {results[s].output}" for s in sinks)
