"""A run from queue to final status: plan, gate, execute in dependency order, checkpoint.

Every status change goes through the Store (compare-and-set on the run's version), and a
checkpoint is written after every model turn and tool round, so another process can pick
the run up where it stopped. Budgets, the run's wall-clock limit and kills all end the run
with their own status and a reason people can read.
"""

from __future__ import annotations

import asyncio
import graphlib
import logging
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from agent_core.approvals import Allowed, ChannelGate
from agent_core.budget import BudgetedLLM, BudgetLimits
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
from agent_core.errors import LLMError, PlanError
from agent_core.executor import Executor, ExecutorLimits
from agent_core.llm import LLM
from agent_core.models import Plan, Run, RunStatus, Subtask, SubtaskResult
from agent_core.planner import Planner
from agent_core.stops import RunStop
from agent_core.store import Store
from agent_core.tools import ToolContext, ToolRegistry

__all__ = ["Checkpoint", "Orchestrator", "RunPolicy"]

logger = logging.getLogger(__name__)


class Checkpoint(BaseModel):
    """What a run needs, besides its record, to resume: each unfinished subtask's conversation."""

    conversations: dict[str, list[dict[str, Any]]] = {}


@dataclass(kw_only=True, frozen=True)
class RunPolicy:
    """The limits and knobs of one run, taken from settings."""

    budget: BudgetLimits
    executor: ExecutorLimits
    run_timeout_seconds: float = 1800.0
    max_plan_retries: int = 2
    max_concurrent_subtasks: int = 4
    approval_quorum: int = 2
    approval_ttl_seconds: float = 3600.0

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
            run_timeout_seconds=settings.run_timeout_seconds,
            max_plan_retries=settings.max_plan_retries,
            max_concurrent_subtasks=settings.max_concurrent_subtasks,
            approval_quorum=settings.approval_quorum,
            approval_ttl_seconds=settings.approval_ttl_seconds,
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

    async def execute(self, run_id: str) -> Run:
        """Run ``run_id`` to a final status and return the final record.

        Cancelling the task that awaits this ends the run as ``killed``.
        """
        state = _RunState(orchestrator=self, run=await self.store.get_run(run_id))
        await state.load_checkpoint()
        deadline = asyncio.timeout(self.policy.run_timeout_seconds)
        try:
            async with deadline:
                result = await state.drive()
        except asyncio.CancelledError:
            await asyncio.shield(state.finish(RunStatus.KILLED, "killed"))
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
            await state.finish(result[0], result[1])
        return state.run


@dataclass(kw_only=True)
class _RunState:
    """One run in flight: its latest record, conversations, and the helpers bound to it."""

    orchestrator: Orchestrator
    run: Run
    checkpoint: Checkpoint = field(default_factory=Checkpoint)
    waiting: int = 0
    executing: bool = False
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    llm: BudgetedLLM | None = None

    def __post_init__(self) -> None:
        o = self.orchestrator
        self.llm = BudgetedLLM(
            llm=o.llm,
            limits=o.policy.budget,
            spend=self.run.spend.model_copy(),
            on_warning=self._budget_warning,
        )

    @property
    def budgeted(self) -> BudgetedLLM:
        assert self.llm is not None
        return self.llm

    async def load_checkpoint(self) -> None:
        raw = await self.orchestrator.store.load_checkpoint(self.run.id)
        if raw:
            self.checkpoint = Checkpoint.model_validate_json(raw)

    async def drive(self) -> tuple[RunStatus, str]:
        o = self.orchestrator
        if self.run.status is RunStatus.QUEUED:  # new, or retried with its plan kept
            await self.move(RunStatus.PLANNING)
        if self.run.plan is None:
            planner = Planner(llm=self.budgeted, max_retries=o.policy.max_plan_retries)
            plan = await planner.plan(goal=self.run.goal, tools=o.tools)
            await self.save(plan=plan)
            await o.channel.notify(PlanReady(run=self.run, plan=plan))
            if self.run.dry_run:
                return (
                    RunStatus.COMPLETED,
                    f"dry run: {len(plan.subtasks)} subtasks planned, none run",
                )
            verdict = await self.gate().check_plan(run=self.run, plan=plan)
            if not isinstance(verdict, Allowed):
                return RunStatus.REJECTED, f"plan {verdict.reason}"
        await self.move(RunStatus.RUNNING)
        self.executing = True
        assert self.run.plan is not None
        return await _Schedule(state=self, plan=self.run.plan).run()

    def gate(self) -> ChannelGate:
        o = self.orchestrator
        return ChannelGate(
            store=o.store,
            channel=o.channel,
            quorum=o.policy.approval_quorum,
            ttl_seconds=o.policy.approval_ttl_seconds,
            clock=o.clock,
            on_wait=self._waiting,
        )

    def executor(self) -> Executor:
        o = self.orchestrator
        return Executor(
            llm=self.budgeted,
            tools=o.tools,
            gate=self.gate(),
            limits=o.policy.executor,
            context=lambda run: ToolContext(run=run, workspace=o.workspace, channel=o.channel),
            on_progress=self.progress,
        )

    async def progress(self, subtask_id: str, messages: list[dict[str, Any]]) -> None:
        """Checkpoint after a model turn or tool round."""
        self.checkpoint.conversations[subtask_id] = messages
        await self.save()

    async def save(self, **changes: Any) -> None:
        """Write the run (spend included) and its checkpoint in one atomic step."""
        async with self.lock:
            updated = self.run.model_copy(
                update={"spend": self.budgeted.spend.model_copy(), **changes}
            )
            checkpoint = self.checkpoint.model_dump_json().encode()
            self.run = await self.orchestrator.store.save_run(updated, checkpoint=checkpoint)

    async def move(self, status: RunStatus) -> None:
        if self.run.status is not status:
            await self.save(status=status)

    async def finish(self, status: RunStatus, result: str) -> None:
        if self.run.status.is_final:
            return
        error = None if status is RunStatus.COMPLETED else result
        await self.save(status=status, error=error)
        await self.orchestrator.channel.notify(
            RunFinished(run=self.run, status=status, result=result)
        )
        logger.info("run finished", extra={"run_id": self.run.id, "status": status.value})

    async def _waiting(self, started: bool) -> None:
        self.waiting += 1 if started else -1
        if started and self.waiting == 1:
            await self.move(RunStatus.AWAITING_APPROVAL)
        elif not started and self.waiting == 0 and self.executing:
            await self.move(RunStatus.RUNNING)

    async def _budget_warning(self, budget: str, used: float, limit: float) -> None:
        await self.orchestrator.channel.notify(
            BudgetWarning(run=self.run, budget=budget, used=used, limit=limit,  # type: ignore[arg-type]
                          spend=self.budgeted.spend.model_copy())
        )  # fmt: skip


@dataclass(kw_only=True)
class _Schedule:
    """Runs a plan's subtasks in dependency order, independent ones at the same time."""

    state: _RunState
    plan: Plan
    running: dict[asyncio.Task[SubtaskResult], str] = field(default_factory=dict)

    async def run(self) -> tuple[RunStatus, str]:
        sorter = graphlib.TopologicalSorter({s.id: set(s.depends_on) for s in self.plan.subtasks})
        sorter.prepare()
        ready: list[str] = []
        try:
            while sorter.is_active():
                ready += sorter.get_ready()
                ready = await self._start(ready, sorter)
                if self.running:
                    await self._collect(sorter)
        finally:
            await self._cancel_all()
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
            await self._record(subtask_id, task.result())
            sorter.done(subtask_id)

    async def _one(self, subtask_id: str) -> SubtaskResult:
        state, subtask = self.state, self._subtask(subtask_id)
        index = [s.id for s in self.plan.subtasks].index(subtask_id) + 1
        await state.orchestrator.channel.notify(
            StepStarted(
                run=state.run, subtask_id=subtask_id, index=index, total=len(self.plan.subtasks)
            )
        )
        inputs = {d: state.run.results[d].output for d in subtask.depends_on}
        resumed = state.checkpoint.conversations.get(subtask_id)
        return await state.executor().run(
            run=state.run, subtask=subtask, inputs=inputs, messages=resumed
        )

    async def _record(self, subtask_id: str, result: SubtaskResult) -> None:
        state = self.state
        state.checkpoint.conversations.pop(subtask_id, None)
        await state.save(results={**state.run.results, subtask_id: result})
        summary = result.output if result.status == "completed" else (result.error or result.status)
        await state.orchestrator.channel.notify(
            StepFinished(
                run=state.run, subtask_id=subtask_id, status=result.status, summary=summary
            )
        )

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
