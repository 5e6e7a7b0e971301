"""Closing an approval nobody decided: it expired, its run ended, or it could not be asked.

A person's decision goes through :class:`~agent_core.approvals.service.DecisionService`;
everything else that ends a pending approval comes here, so each such end is counted,
audited and signalled the same way whichever part of airlock noticed it.
"""

from __future__ import annotations

from datetime import datetime

from agent_core import telemetry
from agent_core.audit import events
from agent_core.audit.trail import Audit
from agent_core.models import Approval, ApprovalDecided, ApprovalStatus, Concluded
from agent_core.store import Store

__all__ = ["close_undecided", "close_with_run"]


async def close_undecided(
    store: Store,
    approval: Approval,
    *,
    status: ApprovalStatus,
    by: str,
    at: datetime,
    why: events.ApprovalExpired | events.ApprovalCancelled | events.ApprovalUndeliverable,
    trail: bool = True,
) -> Approval | None:
    """Close ``approval`` as ``status`` (expired or cancelled) if it is still pending.

    Only the process whose close wins goes on: it counts the approval as settled, appends
    ``why`` to the run's trail and signals the decision to every process,
    so the parked run resumes (and is told the call was not approved) and every copy of the
    request is updated. ``trail=False`` when the run's record is gone: there is no trail to
    append to, and nothing to resume. None when someone else settled it first.
    """
    outcome = await store.close_approval(approval.id, status=status, by=by, at=at)
    if not isinstance(outcome, Concluded):
        return None
    telemetry.approval_settled(outcome.approval)
    if trail:
        await Audit(store=store).record(approval.run_id, why, actor=by)
        await store.publish(ApprovalDecided.of(outcome.approval))
    return outcome.approval


async def close_with_run(
    store: Store,
    run_id: str,
    *,
    by: str,
    at: datetime,
    reason: str = "its run is over",
) -> None:
    """Cancel every approval of ``run_id`` still pending: its run has ended (finished, failed
    or killed), so nobody should be asked any more, and each request says so where it is shown.
    """
    for approval in await store.list_pending_approvals(run_id=run_id):
        ended = events.ApprovalCancelled(approval_id=approval.id, reason=reason)
        await close_undecided(store, approval, status=ApprovalStatus.CANCELLED, by=by, at=at,
                              why=ended)  # fmt: skip
