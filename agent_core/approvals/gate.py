"""The risk gate: the one place that decides whether a tool call or a plan may go ahead.

LOW runs; MEDIUM tells the channel and runs; HIGH and CRITICAL need a persisted approval bound
to the exact call. Nothing waits for a person here: a new request is persisted, shown, and the
verdict is :class:`Pending`, which parks the run; when a decision arrives the run is resumed
from its checkpoint, comes back through this gate for the same call, finds the decided
approval, and consumes it once. The same path serves a restart, in any process.

Each call's requests form a chain of attempts (:func:`approval_id`). The next attempt is asked
when the last one was consumed (the call started, then the process died) or superseded (an
approver's edit made the call riskier): then the edited call is asked at its own risk, and
only its own approval lets it run. An approval is never used for a call riskier than itself.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeAlias

from agent_core import telemetry
from agent_core.approvals.policy import ApprovalPolicy
from agent_core.approvals.rule import apply_decision
from agent_core.approvals.service import GRANTS
from agent_core.audit import events
from agent_core.audit.trail import Audit
from agent_core.channel import ApprovalNeeded, OperatorChannel, ToolNotice
from agent_core.clock import Clock, SystemClock
from agent_core.errors import AlreadyExists, NotFound
from agent_core.models import (
    Approval,
    ApprovalStatus,
    Decision,
    DecisionKind,
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
from agent_core.stops import RunStop
from agent_core.store import ApprovalUse, Fact, Store

_ASKED = "approval-asked:"
"""Session-fact scope prefix (+ approval id): the approvers were asked (the request went out)."""
_ASKED_KEEP_SECONDS = 90 * 86_400.0

__all__ = [
    "Allowed",
    "ApprovalGate",
    "DecisionMemory",
    "Denied",
    "Gate",
    "Pending",
    "RiskOf",
    "Verdict",
    "approval_id",
]

logger = logging.getLogger(__name__)

RiskOf = Callable[[dict[str, Any]], RiskLevel]
"""The risk of the gated tool with other arguments (an approver's edit), worked out exactly
as the call's own was."""


@dataclass(kw_only=True, frozen=True)
class Allowed:
    """Go ahead, with these arguments (an approver may have edited them)."""

    arguments: dict[str, Any]
    approval_id: str | None = None
    approved_by: str | None = None
    """Who decided, when a person did."""
    use: ApprovalUse | None = None
    """The approval this call uses up. Whoever runs the call hands it to the step that
    records the call started (:meth:`~agent_core.store.Step.use`), so that the approval is
    used in the same transaction, and a lost race for it starts nothing."""


@dataclass(kw_only=True, frozen=True)
class Denied:
    """Do not run; ``reason`` goes back to the model as the tool result."""

    reason: str


@dataclass(kw_only=True, frozen=True)
class Pending:
    """Not yet: ``approval_id`` is asked and undecided. The run parks (no coroutine waits
    for a person) and, once it is decided, comes back to the gate for the same call."""

    approval_id: str


Verdict: TypeAlias = Allowed | Denied | Pending


class Gate(Protocol):
    """Decides whether a tool call or a plan may go ahead, may not, or must wait."""

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
        grantable: bool = False,
        risk_of: RiskOf | None = None,
        earlier_copy_ended: bool | None = None,
    ) -> Verdict:
        """Whether the call may go ahead; ``earlier_copy_ended`` (a call resumed after a
        crash) says whether what an earlier attempt started was confirmed ended."""
        ...

    async def check_plan(self, *, run: Run, plan: Plan) -> Verdict: ...

    async def write_asked(self) -> None:
        """Write now what says the approvers of a request were asked, if it waits for the
        run's next save: the request waits on other work (a tool of the same round)."""
        ...


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
    asked: list[Fact] | None = None
    """Where the flags that a request's approvers were asked wait for the run's next save
    (the park that follows); None writes each at once. Either way a flag is written only
    after its request went out, so a process that dies first has it asked again."""

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
        grantable: bool = False,
        risk_of: RiskOf | None = None,
        earlier_copy_ended: bool | None = None,
    ) -> Verdict:
        """Whether the call may run. ``grantable``: an approve-for-this-run may cover it (and
        be offered on it); ``risk_of`` works out the risk of edited arguments (without it,
        any arguments but these count as CRITICAL)."""
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
        rules = _CallRules(arguments=arguments, risk=risk, grantable=grantable, risk_of=risk_of)
        return await self._gate(run, tool_use_id or subtask_id, subject, risk, rules)

    @staticmethod
    def asks_about(plan: Plan) -> bool:
        """Whether :meth:`check_plan` would look further than the plan itself (a risky plan
        needs a person's approval); if not, the plan is allowed, and nothing is written."""
        return plan.risk.rank >= RiskLevel.HIGH.rank

    async def check_plan(self, *, run: Run, plan: Plan) -> Verdict:
        if not self.asks_about(plan):
            return Allowed(arguments={})
        return await self._gate(run, "plan", PlanSubject(plan=plan), plan.risk, None)

    async def _granted(self, run: Run, tool: str, risk: RiskLevel) -> _Grant | None:
        """The grant that covers a call of ``tool`` at ``risk`` in ``run``, if any."""
        if risk is RiskLevel.CRITICAL:
            return None
        value = (await self.store.get_facts(GRANTS + run.id)).get(tool)
        grant = _Grant.parse(value) if value is not None else None
        return grant if grant is not None and grant.risk.rank >= risk.rank else None

    async def _gate(
        self, run: Run, key: str, subject: Subject, risk: RiskLevel, rules: _CallRules | None
    ) -> Verdict:
        latest, attempt = await self._latest(run.id, key, rules)
        if latest is None:
            return await self._first(run, key, subject, risk, rules)
        status = latest.status
        if status is ApprovalStatus.SUPERSEDED or _too_risky(latest, rules):
            return await self._ask_again(run, key, attempt + 1, latest, rules)
        if status is ApprovalStatus.PENDING:
            if not await self.store.get_facts(_ASKED + latest.id):
                # The process that created it died before anyone was asked: ask now.
                await self._deliver(run, latest)
            return Pending(approval_id=latest.id)
        if latest.consumed_at is None:  # met for the first time (a plan's is met on every resume)
            telemetry.approval_waited(latest)
        if self.memory is not None:
            await self.memory.record_decision(run, latest)
        if status is ApprovalStatus.APPROVED:
            approved = latest.subject
            if isinstance(approved, PlanSubject):
                # A plan approval covers the whole run, however often the run is resumed.
                if latest.consumed_at is None:
                    await self.store.consume_approval(
                        latest.id, digest=latest.digest, at=self.clock.now()
                    )
                return Allowed(arguments={}, approval_id=latest.id, approved_by=latest.decided_by)
            if latest.consumed_at is None:
                # Used up by the commit that records the call started, not here: both land in
                # one transaction, or neither (and the call comes back here).
                use = ApprovalUse(approval_id=latest.id, digest=latest.digest, at=self.clock.now())
                return Allowed(arguments=approved.arguments, approval_id=latest.id,
                               approved_by=latest.decided_by, use=use)  # fmt: skip
            # Consumed, yet here again: the process died after the call started. Ask again.
            again = _possibly_partial(approved, subject)
            return await self._ask(run, key, attempt + 1, again, risk, rules)
        return self._closed(latest)

    async def _first(
        self, run: Run, key: str, subject: Subject, risk: RiskLevel, rules: _CallRules | None
    ) -> Verdict:
        """No request yet: a grant of this run may cover the call; otherwise ask."""
        if not isinstance(subject, ToolCallSubject) or rules is None or not rules.grantable:
            return await self._ask(run, key, 0, subject, risk, rules)
        grant = await self._granted(run, subject.tool, risk)
        if grant is None:
            return await self._ask(run, key, 0, subject, risk, rules)
        granted = events.ApprovalGrantedForRun(
            tool=subject.tool, arguments=subject.arguments, tool_use_id=subject.tool_use_id,
            granted_by=grant.by, approval_id=grant.approval, risk=risk,
        )  # fmt: skip
        await self.audit.record(run.id, granted, actor="airlock")
        return Allowed(arguments=subject.arguments, approval_id=grant.approval,
                       approved_by=grant.by)  # fmt: skip

    def _closed(self, approval: Approval) -> Verdict:
        if approval.status is ApprovalStatus.EXPIRED:
            if self.policy.timeout(approval.risk) is TimeoutPolicy.HALT:
                raise _Halted("the approval expired with nobody deciding")
            return Denied(reason="expired: nobody decided in time")
        last = approval.decisions[-1] if approval.decisions else None
        why = f": {last.reason}" if last is not None and last.reason else ""
        return Denied(reason=f"{approval.status} by {approval.decided_by}{why}")

    async def _latest(
        self, run_id: str, key: str, rules: _CallRules | None
    ) -> tuple[Approval | None, int]:
        """The newest approval for ``key`` and its attempt number.

        A later attempt exists only once an earlier one was consumed, superseded by a riskier
        edit, or found to approve less than its call's risk, so the search stops at the first
        approval that is none of these.
        """
        latest: Approval | None = None
        attempt = 0
        while latest is None or _followed(latest, rules):
            try:
                found = await self.store.get_approval(approval_id(run_id, key, attempt))
            except NotFound:
                break
            latest, attempt = found, attempt + 1
        return latest, attempt - 1

    async def _ask_again(
        self, run: Run, key: str, attempt: int, previous: Approval, rules: _CallRules | None
    ) -> Verdict:
        """Ask for ``previous``'s call anew, at its own risk: an approver's edit made it riskier
        (the editor's approve counts toward the new request), or the call now carries more
        risk than ``previous`` approved."""
        subject = previous.subject
        if not isinstance(subject, ToolCallSubject):
            raise AssertionError("only a tool call's request is superseded")
        subject = subject.model_copy(update={"possibly_partial": False})
        edit = previous.decisions[-1] if previous.decisions else None
        risks = [_risk_of(rules, subject.arguments)]
        seed: Decision | None = None
        if previous.status is ApprovalStatus.SUPERSEDED and edit is not None:
            risks.append(edit.edited_risk or RiskLevel.CRITICAL)
            seed = Decision(kind=DecisionKind.APPROVE, by=edit.by, at=edit.at,
                            as_admin=edit.as_admin)  # fmt: skip
        risk = RiskLevel.highest(risks)
        reasked = events.ApprovalReasked(approval_id=approval_id(run.id, key, attempt),
                                  supersedes=previous.id, risk=risk, was=previous.risk)  # fmt: skip
        await self.audit.record(run.id, reasked, actor="airlock")
        return await self._ask(run, key, attempt, subject, risk, rules, seed=seed)

    async def _ask(
        self,
        run: Run,
        key: str,
        attempt: int,
        subject: Subject,
        risk: RiskLevel,
        rules: _CallRules | None,
        *,
        seed: Decision | None = None,
    ) -> Verdict:
        approval = await self._request(run, key, attempt, subject, risk, rules)
        if seed is not None:  # the editor of the request this one supersedes
            approval, _ = apply_decision(approval, seed)
        requested = events.ApprovalRequested(
            approval_id=approval.id, risk=approval.risk, subject=subject
        )
        try:
            # Persisted, with its line, before anyone is asked.
            await self.store.create_approval(
                approval, recording=self.audit.entry(run.id, requested, actor="airlock")
            )
        except AlreadyExists:
            # Another process asked the same at the same moment (a worker that took the run
            # over while this one was still at it): that request stands; go by it.
            return await self._gate(run, key, subject, risk, rules)
        if approval.status is not ApprovalStatus.PENDING:  # decided already (an admin's edit)
            return await self._gate(run, key, subject, risk, rules)
        await self._deliver(run, approval)
        return Pending(approval_id=approval.id)

    async def _request(
        self,
        run: Run,
        key: str,
        attempt: int,
        subject: Subject,
        risk: RiskLevel,
        rules: _CallRules | None,
    ) -> Approval:
        """The request for ``subject``, at no less than the risk of what it would run."""
        precedents: list[Precedent] = []
        grantable = False
        if isinstance(subject, ToolCallSubject):
            risk = RiskLevel.highest([risk, _risk_of(rules, subject.arguments)])
            grantable = rules is not None and rules.grantable_for(subject.arguments, risk)
            if self.memory is not None:
                precedents = await self.memory.precedents(run, subject)
        return Approval(
            id=approval_id(run.id, key, attempt),
            run_id=run.id,
            subject=subject,
            risk=risk,
            requester=run.requester,
            requested_at=self.clock.now(),
            deadline=self.policy.deadline(self.clock.now()),
            required_approvals=self.policy.required(risk),
            precedents=precedents,
            grantable=grantable,
        )

    async def _deliver(self, run: Run, approval: Approval) -> None:
        """Ask the approvers, then note that they were asked (a resume asks again if not)."""
        await self.channel.notify(ApprovalNeeded(run=run, approval=approval))
        await self.channel.request_decision(approval)
        asked = Fact(scope=_ASKED + approval.id, key="at", value=self.clock.now().isoformat(),
                     ttl_seconds=_ASKED_KEEP_SECONDS)  # fmt: skip
        if self.asked is None:
            await self._write(asked)
        else:
            self.asked.append(asked)

    async def write_asked(self) -> None:
        while self.asked:
            await self._write(self.asked.pop(0))

    async def _write(self, asked: Fact) -> None:
        await self.store.set_fact(asked.scope, asked.key, asked.value,
                                  ttl_seconds=asked.ttl_seconds)  # fmt: skip


@dataclass(kw_only=True, frozen=True)
class _CallRules:
    """What the gate knows of a tool call's risk beyond its own arguments."""

    arguments: dict[str, Any]
    """The arguments the model asked for."""
    risk: RiskLevel
    """Their risk."""
    grantable: bool
    """Whether a grant may cover (or be offered on) a call with exactly these arguments."""
    risk_of: RiskOf | None
    """The risk with other arguments; None: other arguments count as CRITICAL."""

    def assess(self, arguments: dict[str, Any]) -> RiskLevel:
        if arguments == self.arguments:
            return self.risk
        return self.risk_of(arguments) if self.risk_of is not None else RiskLevel.CRITICAL

    def grantable_for(self, arguments: dict[str, Any], risk: RiskLevel) -> bool:
        return self.grantable and arguments == self.arguments and risk is not RiskLevel.CRITICAL


@dataclass(kw_only=True, frozen=True)
class _Grant:
    """An approve-for-this-run grant, as stored."""

    risk: RiskLevel
    by: str
    approval: str

    @classmethod
    def parse(cls, value: str) -> _Grant | None:
        try:
            data = json.loads(value)
            return cls(risk=RiskLevel(data["risk"]), by=str(data["by"]),
                       approval=str(data["approval"]))  # fmt: skip
        except (ValueError, KeyError, TypeError):
            # Unreadable (or written before grants named their granter): it covers nothing.
            logger.warning("ignoring an unreadable grant", extra={"grant": value[:100]})
            return None


def _risk_of(rules: _CallRules | None, arguments: dict[str, Any]) -> RiskLevel:
    return rules.assess(arguments) if rules is not None else RiskLevel.CRITICAL


def _too_risky(approval: Approval, rules: _CallRules | None) -> bool:
    """An approved, unused approval for arguments riskier than it approved (settings or the
    run's state changed since, or it was recorded by an older version): it releases nothing."""
    subject = approval.subject
    if approval.status is not ApprovalStatus.APPROVED or approval.consumed_at is not None:
        return False
    if not isinstance(subject, ToolCallSubject) or rules is None:
        return False
    return rules.assess(subject.arguments).rank > approval.risk.rank


def _followed(approval: Approval, rules: _CallRules | None) -> bool:
    """Whether a later attempt may follow ``approval`` in its chain."""
    if approval.status is ApprovalStatus.SUPERSEDED:
        return True
    consumed = approval.status is ApprovalStatus.APPROVED and approval.consumed_at is not None
    return consumed or _too_risky(approval, rules)


class _Halted(RunStop):
    status = RunStatus.REJECTED


def _possibly_partial(earlier: Subject, now: Subject) -> Subject:
    """The earlier request again, marked possibly partial, with what is known now of the
    earlier attempt's processes."""
    if isinstance(earlier, ToolCallSubject):
        ended = now.earlier_copy_ended if isinstance(now, ToolCallSubject) else None
        return earlier.model_copy(update={"possibly_partial": True, "earlier_copy_ended": ended})
    return earlier
