"""The risk gate: the one place that decides whether a tool call or a plan may go ahead.

LOW runs; MEDIUM tells the channel and runs; HIGH and CRITICAL need a persisted approval bound
to the exact call. Nothing waits for a person here: a new request is persisted, shown, and the
run is parked (:class:`~agent_core.stops.AwaitingDecision`); when a decision arrives the run is
resumed from its checkpoint, comes back through this gate for the same call, finds the decided
approval, and consumes it once. The same path serves a restart, in any process.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeAlias

from agent_core import telemetry
from agent_core.approvals.policy import ApprovalPolicy
from agent_core.approvals.service import GRANTS
from agent_core.audit import Audit
from agent_core.channel import ApprovalNeeded, OperatorChannel, ToolNotice
from agent_core.clock import Clock, SystemClock
from agent_core.errors import AlreadyExists, NotFound
from agent_core.models import (
    Approval,
    ApprovalStatus,
    Plan,
    PlanSubject,
    Precedent,
    RiskLevel,
    Run,
    RunStatus,
    Subject,
    TimeoutPolicy,
    ToolCallSubject,
)
from agent_core.stops import AwaitingDecision, RunStop
from agent_core.store import Store

_ASKED = "approval-asked:"
"""Session-fact scope prefix (+ approval id): the approvers were asked (the request went out)."""
_ASKED_KEEP_SECONDS = 90 * 86_400.0

__all__ = [
    "Allowed",
    "ApprovalGate",
    "DecisionMemory",
    "Denied",
    "Gate",
    "Verdict",
    "approval_id",
]


@dataclass(kw_only=True, frozen=True)
class Allowed:
    """Go ahead, with these arguments (an approver may have edited them)."""

    arguments: dict[str, Any]
    approval_id: str | None = None
    approved_by: str | None = None
    """Who decided, when a person did."""


@dataclass(kw_only=True, frozen=True)
class Denied:
    """Do not run; ``reason`` goes back to the model as the tool result."""

    reason: str


Verdict: TypeAlias = Allowed | Denied


class Gate(Protocol):
    """Decides whether a tool call or a plan may go ahead (or parks the run)."""

    async def check_tool_call(
        self,
        *,
        run: Run,
        subtask_id: str,
        tool: str,
        arguments: dict[str, Any],
        risk: RiskLevel,
        tool_use_id: str | None = None,
        preview: str | None = None,
        earlier_copy_ended: bool | None = None,
    ) -> Verdict:
        """Whether the call may go ahead; ``earlier_copy_ended`` (a call resumed after a
        crash) says whether what an earlier attempt started was confirmed ended."""
        ...

    async def check_plan(self, *, run: Run, plan: Plan) -> Verdict: ...


class DecisionMemory(Protocol):
    """Where decisions are remembered and precedent is found (long-term memory)."""

    async def precedents(self, run: Run, subject: ToolCallSubject) -> list[Precedent]:
        """Similar past decisions for a call about to be asked, most similar first."""
        ...

    async def record_decision(self, run: Run, approval: Approval) -> None:
        """Remember how ``approval`` ended (once, however often it is seen)."""
        ...


def approval_id(run_id: str, key: str, attempt: int) -> str:
    """The id of the ``attempt``-th approval for ``key`` (a tool_use id, or "plan") of a run.

    Derived, not random, so a resumed run finds the approval it asked for before.
    """
    digest = hashlib.sha256(f"{run_id}\x00{key}\x00{attempt}".encode()).hexdigest()
    return f"apr_{digest[:12]}"


@dataclass(kw_only=True)
class ApprovalGate:
    """The durable gate: approvals live in the store, decisions resume parked runs."""

    store: Store
    channel: OperatorChannel
    policy: ApprovalPolicy
    audit: Audit
    clock: Clock = field(default_factory=SystemClock)
    memory: DecisionMemory | None = None
    """Remembers decisions and shows precedent on new requests; None for neither."""

    async def check_tool_call(
        self,
        *,
        run: Run,
        subtask_id: str,
        tool: str,
        arguments: dict[str, Any],
        risk: RiskLevel,
        tool_use_id: str | None = None,
        preview: str | None = None,
        earlier_copy_ended: bool | None = None,
    ) -> Verdict:
        if risk is RiskLevel.LOW:
            return Allowed(arguments=arguments)
        if risk is RiskLevel.MEDIUM:
            await self.channel.notify(
                ToolNotice(run=run, tool=tool, arguments=arguments, risk=risk)
            )
            return Allowed(arguments=arguments)
        subject = ToolCallSubject(subtask_id=subtask_id, tool=tool, arguments=arguments,
                                  tool_use_id=tool_use_id, preview=preview,
                                  earlier_copy_ended=earlier_copy_ended)  # fmt: skip
        return await self._gate(run, tool_use_id or subtask_id, subject, risk)

    async def check_plan(self, *, run: Run, plan: Plan) -> Verdict:
        if plan.risk.rank < RiskLevel.HIGH.rank:
            return Allowed(arguments={})
        return await self._gate(run, "plan", PlanSubject(plan=plan), plan.risk)

    async def _granted(self, run: Run, tool: str, risk: RiskLevel) -> bool:
        if risk is RiskLevel.CRITICAL:
            return False
        granted = (await self.store.get_facts(GRANTS + run.id)).get(tool)
        return granted is not None and RiskLevel(granted).rank >= risk.rank

    async def _gate(self, run: Run, key: str, subject: Subject, risk: RiskLevel) -> Verdict:
        latest, attempt = await self._latest(run.id, key)
        if latest is None:
            if isinstance(subject, ToolCallSubject) and await self._granted(
                run, subject.tool, risk
            ):
                await self.audit.record(run.id, "approval_granted_for_run", actor="airlock",
                                        tool=subject.tool, arguments=subject.arguments)  # fmt: skip
                return Allowed(arguments=subject.arguments)
            return await self._ask(run, key, 0, subject, risk)
        status = latest.status
        if status is ApprovalStatus.PENDING:
            if not await self.store.get_facts(_ASKED + latest.id):
                # The process that created it died before anyone was asked: ask now.
                await self._deliver(run, latest)
            raise AwaitingDecision(latest.id)
        if latest.consumed_at is None:  # met for the first time (a plan's is met on every resume)
            telemetry.approval_waited(latest)
        if self.memory is not None:
            await self.memory.record_decision(run, latest)
        if status is ApprovalStatus.APPROVED and (latest.consumed_at is None or key == "plan"):
            # A plan approval covers the whole run, however often the run is resumed.
            used = (
                latest
                if latest.consumed_at
                else await self.store.consume_approval(
                    latest.id, digest=latest.digest, at=self.clock.now()
                )
            )
            arguments = used.subject.arguments if isinstance(used.subject, ToolCallSubject) else {}
            return Allowed(arguments=arguments, approval_id=used.id, approved_by=used.decided_by)
        if status is ApprovalStatus.APPROVED:
            # Consumed, yet here again: the process died after the call started. Ask again.
            again = _possibly_partial(latest.subject, subject)
            return await self._ask(run, key, attempt + 1, again, risk)
        return self._closed(latest)

    def _closed(self, approval: Approval) -> Verdict:
        if approval.status is ApprovalStatus.EXPIRED:
            if self.policy.timeout(approval.risk) is TimeoutPolicy.HALT:
                raise _Halted("the approval expired with nobody deciding")
            return Denied(reason="expired: nobody decided in time")
        last = approval.decisions[-1] if approval.decisions else None
        why = f": {last.reason}" if last is not None and last.reason else ""
        return Denied(reason=f"{approval.status} by {approval.decided_by}{why}")

    async def _latest(self, run_id: str, key: str) -> tuple[Approval | None, int]:
        """The newest approval for ``key`` and its attempt number.

        A later attempt exists only once an earlier one was consumed, so the search stops
        at the first approval that is not.
        """
        latest: Approval | None = None
        attempt = 0
        while latest is None or (latest.status is ApprovalStatus.APPROVED and latest.consumed_at):
            try:
                found = await self.store.get_approval(approval_id(run_id, key, attempt))
            except NotFound:
                break
            latest, attempt = found, attempt + 1
        return latest, attempt - 1

    async def _ask(
        self, run: Run, key: str, attempt: int, subject: Subject, risk: RiskLevel
    ) -> Verdict:
        precedents: list[Precedent] = []
        if self.memory is not None and isinstance(subject, ToolCallSubject):
            precedents = await self.memory.precedents(run, subject)
        approval = Approval(
            id=approval_id(run.id, key, attempt),
            run_id=run.id,
            subject=subject,
            risk=risk,
            requester=run.requester,
            requested_at=self.clock.now(),
            deadline=self.policy.deadline(self.clock.now()),
            required_approvals=self.policy.required(risk),
            precedents=precedents,
        )
        try:
            await self.store.create_approval(approval)  # persisted before anyone is asked
        except AlreadyExists:
            # Another process asked the same at the same moment (a worker that took the run
            # over while this one was still at it): that request stands; go by it.
            return await self._gate(run, key, subject, risk)
        await self.audit.record(run.id, "approval_requested", actor="airlock",
                                approval_id=approval.id, risk=risk.value,
                                subject=subject.model_dump(mode="json"))  # fmt: skip
        await self._deliver(run, approval)
        raise AwaitingDecision(approval.id)

    async def _deliver(self, run: Run, approval: Approval) -> None:
        """Ask the approvers, then note that they were asked (a resume asks again if not)."""
        await self.channel.notify(ApprovalNeeded(run=run, approval=approval))
        await self.channel.request_decision(approval)
        await self.store.set_fact(_ASKED + approval.id, "at", self.clock.now().isoformat(),
                                  ttl_seconds=_ASKED_KEEP_SECONDS)  # fmt: skip


class _Halted(RunStop):
    status = RunStatus.REJECTED


def _possibly_partial(earlier: Subject, now: Subject) -> Subject:
    """The earlier request again, marked possibly partial, with what is known now of the
    earlier attempt's processes."""
    if isinstance(earlier, ToolCallSubject):
        ended = now.earlier_copy_ended if isinstance(now, ToolCallSubject) else None
        return earlier.model_copy(update={"possibly_partial": True, "earlier_copy_ended": ended})
    return earlier
