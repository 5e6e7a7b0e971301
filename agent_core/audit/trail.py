"""The audit trail: who did what to which run, appended to the store's sealed chain.

Every model call of a run goes through :class:`AuditedCalls`, so the trail holds each request (the
new input of the turn; the earlier turns are already in the trail) and each response with
its model, tokens, cost and stop reason, in order with the tool calls and decisions.
How events are sealed is :mod:`agent_core.audit.chain`; how trails are checked,
:mod:`agent_core.audit.verify`.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from agent_core.audit.chain import GLOBAL, AuditAnchor, AuditKey, AuditTrail, sealing
from agent_core.audit.events import LLMAsked, LLMCall, LLMFailed, Recorded, TokenCounts, stored
from agent_core.audit.verify import Finding, TrailReport, check_trail, problem, ranges
from agent_core.errors import AuditTampered, LLMError, NotFound
from agent_core.llm import LLMRequest, LLMResponse, Next
from agent_core.models import AuditEvent, Run
from agent_core.secrets import redact_value_or_same
from agent_core.store import AuditRecords, Store

__all__ = ["GLOBAL", "Audit", "AuditedCalls", "StoreReport", "verify_chain", "verify_store"]

_ALL_RUNS = 2**62


@dataclass(kw_only=True)
class Audit:
    """Appends audit events; one per action, never edited."""

    store: AuditRecords

    async def record(self, run_id: str, event: Recorded, *, actor: str) -> AuditEvent:
        """Append ``event`` by ``actor`` to the trail of ``run_id``, secrets masked first."""
        return await self.store.append_audit(self.entry(run_id, event, actor=actor))

    @staticmethod
    def entry(run_id: str, event: Recorded, *, actor: str) -> AuditEvent:
        """``event`` as :meth:`record` appends it (secrets masked), for a caller that has it
        land with a write of its own (:meth:`~agent_core.store.Step.record_with_save`)."""
        kind, data = stored(event)
        return AuditEvent(run_id=run_id, kind=kind, actor=actor, data=redact_value_or_same(data))


@dataclass(kw_only=True)
class AuditedCalls:
    """A middleware (:mod:`agent_core.llm.stack`) that records every call of one run, and
    every failed one (counting tokens is not audited: nothing is generated)."""

    audit: Audit
    run_id: str

    async def __call__(self, request: LLMRequest, call_next: Next) -> LLMResponse:
        """The call, with an ``llm_call`` event after it, or ``llm_error`` if it failed."""
        messages, system = request.messages, request.system
        asked = LLMAsked(
            tier=request.tier.value,
            system_sha256=hashlib.sha256(system.encode()).hexdigest(),
            messages=len(messages),
            input=messages[-1] if messages else None,
            tools=[t["name"] for t in request.tools or []],
        )
        try:
            response = await call_next(request)
        except LLMError as error:
            failed = LLMFailed(request=asked, model=error.model, error=error.reason)
            await self.audit.record(self.run_id, failed, actor="airlock")
            raise
        usage = response.usage
        counts = TokenCounts(
            input_tokens=usage.input_tokens, output_tokens=usage.output_tokens,
            cache_write_tokens=usage.cache_write_tokens, cache_read_tokens=usage.cache_read_tokens,
        )  # fmt: skip
        call = LLMCall(request=asked, model=response.model, stop_reason=response.stop_reason,
                       content=response.content, usage=counts, cost_usd=usage.cost_usd)  # fmt: skip
        await self.audit.record(self.run_id, call, actor="airlock")
        return response


def verify_chain(events: list[AuditEvent], *, key: AuditKey | None = None) -> list[str]:
    """What is wrong with one trail's events alone: edited, renumbered, reordered, missing.

    Seals made with a key are checked only when ``key`` is given. The trail's head, which
    finds a cut-off tail or an emptied trail, is checked by
    :func:`~agent_core.audit.verify.check_trail` (``airlock audit verify`` does both).
    """
    if not events:
        return []
    trail = AuditTrail(run_id=events[0].run_id, head=None, events=events)
    report = check_trail(trail, key, with_head=False)
    return [f"{f.subject}: {f.text}" for f in report.findings if f.problem]


@dataclass(kw_only=True)
class StoreReport:
    """What ``airlock audit verify`` found: trail by trail, and in the store as a whole."""

    trails: list[TrailReport]
    findings: list[Finding]
    """About the store as a whole: the anchor, trails deleted with their heads."""
    anchor: AuditAnchor | None

    @property
    def broken(self) -> bool:
        """Whether anything is wrong anywhere (warnings alone are not)."""
        return any(f.problem for f in self.findings) or any(t.broken for t in self.trails)

    def lines(self) -> list[str]:
        """Every finding for a person, trail by trail, then the store's."""
        found = [f for trail in self.trails for f in trail.findings] + self.findings
        return [finding.line() for finding in found]


async def verify_store(
    store: Store, key: AuditKey | None, run_ids: Sequence[str] = ()
) -> StoreReport:
    """Check the trails of ``run_ids``, or every trail and the store as a whole.

    As a whole: the anchor's count against the heads' numbers (a trail deleted with its
    head leaves a gap), run records without trails, trails without run records.
    :class:`NotFound` for a run id with neither a run record nor a trail (``_global``, the
    trail of actions on no single run, is always known).
    """
    anchor_findings, anchor = await _anchor(store, key)
    runs = await _runs(store, run_ids)
    trails = [await store.read_audit(run_id) for run_id in run_ids or await store.audit_runs()]
    for trail in trails:
        named = trail.run_id in runs or trail.run_id == GLOBAL
        if run_ids and not named and trail.head is None and not trail.events:
            raise NotFound("run or audit trail", trail.run_id)
    reports = [_with_run(check_trail(trail, key, anchor=anchor), trail, runs) for trail in trails]
    if not run_ids:
        known = {trail.run_id for trail in trails}
        # A run still queued or working may have no trail yet; a finished one has one.
        reports += [
            TrailReport(run_id=run.id, events=0, head=None, findings=[_gone(run)])
            for run in runs.values()
            if run.id not in known and run.status.is_final
        ]
    trusted = anchor if not anchor_findings else None
    findings = anchor_findings + _numbering(trails, reports, trusted, whole=not run_ids)
    return StoreReport(trails=reports, findings=findings, anchor=anchor)


async def _anchor(store: Store, key: AuditKey | None) -> tuple[list[Finding], AuditAnchor | None]:
    """The anchor, and what is wrong with it."""
    try:
        anchor = await store.audit_anchor()
    except AuditTampered:
        unreadable = "the audit anchor is unreadable: it was not written by airlock"
        return [problem(None, unreadable)], None
    if anchor is None:
        return [], None
    match sealing(anchor, key):
        case "forged":
            return [problem(None, "the audit anchor was edited or forged: its seal does not"
                            " match")], anchor  # fmt: skip
        case "other key":
            return [problem(None, f"the audit anchor is sealed with another key"
                            f" ({anchor.key_id})")], anchor  # fmt: skip
    return [], anchor


async def _runs(store: Store, run_ids: Sequence[str]) -> dict[str, Run]:
    if not run_ids:
        return {run.id: run for run in await store.list_runs(limit=_ALL_RUNS)}
    runs = {}
    for run_id in run_ids:
        try:
            runs[run_id] = await store.get_run(run_id)
        except NotFound:
            continue
    return runs


def _with_run(report: TrailReport, trail: AuditTrail, runs: dict[str, Run]) -> TrailReport:
    """``report``, with what the run record (or its absence) tells about the trail."""
    run = runs.get(trail.run_id)
    has_trail = trail.head is not None or bool(trail.events) or bool(trail.unreadable)
    if trail.run_id == GLOBAL:
        return report
    if run is None and has_trail:
        report.findings.insert(0, problem(trail.run_id, "its run record is missing (deleted)"))
    elif run is not None and not has_trail and run.status.is_final:
        report.findings.insert(0, _gone(run))
    return report


def _gone(run: Run) -> Finding:
    return problem(run.id, f"the run is {run.status.value} but has no audit trail: its events"
                   " and head were deleted")  # fmt: skip


def _numbering(
    trails: list[AuditTrail],
    reports: list[TrailReport],
    anchor: AuditAnchor | None,
    *,
    whole: bool,
) -> list[Finding]:
    """Trails deleted with their heads (gaps in the heads' numbers) and an anchor put back."""
    heads = [r.head for r in reports if r.head is not None and r.head.key_id]
    if anchor is None or not anchor.key_id:
        if whole and heads:
            state = (
                "missing (deleted)" if anchor is None else "unsealed (rewritten without the key)"
            )
            return [problem(None, f"the audit anchor is {state}, though {len(heads)} trail(s)"
                            " have sealed heads")]  # fmt: skip
        if anchor is None:
            return []
    counts = f"the anchor counts {anchor.trails}: the anchor was put back from an older copy"
    found = [
        problem(head.run_id, f"it is trail #{head.ordinal}, but {counts}")
        for head in heads
        if head.ordinal > anchor.trails
    ]
    if not whole:
        return found
    claimed: dict[int, list[str]] = defaultdict(list)
    for trail in trails:
        if trail.head is not None:
            claimed[trail.head.ordinal].append(trail.run_id)
    found += [problem(None, f"trail #{number} is claimed by {', '.join(runs)}")
              for number, runs in sorted(claimed.items()) if len(runs) > 1]  # fmt: skip
    gaps = [number for number in range(1, anchor.trails + 1) if number not in claimed]
    for a, b in ranges(gaps):
        which = f"trail #{a} of {anchor.trails} is" if a == b else (
            f"trails #{a}-#{b} of {anchor.trails} are")  # fmt: skip
        found.append(problem(None, f"{which} missing (deleted): its head and every event are"
                             " gone, and no purge left a tombstone"))  # fmt: skip
    return found
