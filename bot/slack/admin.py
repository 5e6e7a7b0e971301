"""Admin subcommands of `/agent`: kill, halt, resume and status, answered privately.

They go through the same kill switch as the CLI, with the same authority rules: an admin
may do anything; the person who asked for a run may kill, retry and audit that run, and
sees it in `/agent status`, which shows admins every run and everyone else only their own.
A goal asked in a direct message is shown to its requester alone.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from agent_core import (
    ACTIVE,
    AuditKind,
    Decision,
    DecisionKind,
    DecisionService,
    NotFound,
    RedisRunQueue,
    Refused,
    Run,
    RunControl,
    SpendLedger,
    Store,
    audit_events,
)
from bot.slack.fit import cut
from bot.slack.render import inert, inert_code, mention
from bot.slack.replies import decision_reply
from bot.slack.visibility import goal_seen_by

__all__ = ["ADMIN_VERBS", "AdminCommands"]

T = TypeVar("T")

_REFUSALS_AND_KILLS = {AuditKind.RUN_KILLED, AuditKind.DECISION_REFUSED, AuditKind.KILL_REFUSED}
_LISTED = 50  # runs `/agent status` lists, and looks at per status for an admin

ADMIN_VERBS = frozenset({"kill", "halt", "resume", "status", "audit", "approve", "reject", "retry"})
"""First words of `/agent` text that are commands, not goals."""


@dataclass(kw_only=True)
class AdminCommands:
    """Answers `/agent kill RUN [reason]`, `/agent kill all`, `/agent halt [reason]`, ..."""

    store: Store
    control: RunControl
    decisions: DecisionService | None = None
    """For `/agent approve <id>` and `/agent reject <id> [reason]`."""
    queue: RedisRunQueue | None = None
    """The shared run queue (Redis), whose depth `/agent status` shows; None in one process."""
    submit: Callable[[str], Awaitable[object]] | None = None
    """Hands a retried run to whatever works on runs (`/agent retry <run>`)."""

    async def answer(self, user: str, text: str) -> str:
        """The reply to ``text`` (which starts with one of :data:`ADMIN_VERBS`) from ``user``."""
        verb, _, rest = text.strip().partition(" ")
        rest = rest.strip()
        verb = verb.lower()
        if verb == "kill":
            return await self._kill(user, rest)
        if verb == "halt":
            return _said(await self.control.halt(by=user, reason=rest or None),
                         lambda runs: f":octagonal_sign: Halted; {len(runs)} run(s) killed. "
                                      "`/agent resume` to accept goals again.")  # fmt: skip
        if verb == "resume":
            return _said(await self.control.resume(by=user), lambda _: ":arrow_forward: Resumed.")
        if verb == "retry":
            return await self._retry(user, rest)
        if verb == "audit":
            return await self._audit(user, rest)
        if verb in ("approve", "reject"):
            return await self._decide(user, verb, rest)
        return await self._status(user)

    async def _decide(self, user: str, verb: str, rest: str) -> str:
        approval_id, _, reason = rest.partition(" ")
        if not approval_id or self.decisions is None:
            return f"Usage: `/agent {verb} <approval id>{' [reason]' if verb == 'reject' else ''}`"
        kind = DecisionKind.APPROVE if verb == "approve" else DecisionKind.REJECT
        decision = Decision(kind=kind, by=user, reason=reason.strip() or None)
        outcome = await self.decisions.decide(approval_id, decision)
        reply = decision_reply(outcome)
        if reply is not None or isinstance(outcome, Refused):
            return reply or "Not accepted."
        return f"`{approval_id}` {outcome.approval.status.value}."

    async def _retry(self, user: str, run_id: str) -> str:
        if not run_id or self.submit is None:
            return "Usage: `/agent retry <run id>` (a failed, timed-out or budget-stopped run)"
        retried = await self.control.retry(run_id, by=user)
        if isinstance(retried, Refused):
            return f"Not allowed: {cut(inert(retried.reason), 500)}."
        await self.submit(retried.id)
        return (f":repeat: Run `{retried.id}` is retrying as attempt {retried.attempt}; steps"
                " that completed and tool calls already made are not done again.")  # fmt: skip

    async def _audit(self, user: str, run_id: str) -> str:
        if not run_id:
            return "Usage: `/agent audit <run id>`"
        try:
            run = await self.store.get_run(run_id)
        except NotFound:
            return f"Not allowed: there is no run {cut(inert(run_id), 100)}."
        if not (user == run.requester or await self.control.authority.is_admin(user)):
            return (
                "Not allowed: only an admin or the person who asked for the run may see its audit."
            )
        events = await self.store.list_audit(run.id)
        typed = [(e, audit_events.read(e)) for e in events]
        tools = [t.tool for _, t in typed if isinstance(t, audit_events.ToolCalled)]
        called = cut(inert(", ".join(str(t) for t in tools)), 1000) or "none"
        lines = [
            f"*Run `{inert_code(run.id)}`* {run.status.value} · asked by {mention(run.requester)}",
            f"{run.spend.llm_calls} model calls, ${run.spend.cost_usd:.4f} · "
            f"{len(tools)} tool call(s): {called}",
        ]
        lines += [f"• {mention(e.actor)} {inert(str(t.decision))} `{inert_code(t.approval_id)}`"
                  for e, t in typed if isinstance(t, audit_events.ApprovalDecided)]  # fmt: skip
        lines += [f"• {e.kind.replace('_', ' ')} by {mention(e.actor)}" for e in events
                  if e.kind in _REFUSALS_AND_KILLS]  # fmt: skip
        return cut("\n".join(lines), 3900)

    async def _kill(self, user: str, rest: str) -> str:
        target, _, reason = rest.partition(" ")
        if not target:
            return "Usage: `/agent kill <run id> [reason]` or `/agent kill all [reason]`"
        if target == "all":
            return _said(await self.control.kill_all(by=user, reason=reason or None),
                         lambda runs: f":skull: {len(runs)} run(s) killed.")  # fmt: skip
        return _said(await self.control.kill(target, by=user, reason=reason or None),
                     lambda run: f":skull: Run `{run.id}` is {run.status.value}.")  # fmt: skip

    async def _status(self, user: str) -> str:
        """Admins: every run in flight, the approvals waiting and the day's spend. Anyone
        else: their own runs in flight. Everyone: the halt and how busy the queue is."""
        admin = await self.control.authority.is_admin(user)
        runs = await self._active(None if admin else user)
        lines = await self._halted()
        lines += await self._overview(runs) if admin else [f"{len(runs)} active run(s) of yours."]
        if self.queue is not None:
            waiting, working = await self.queue.depth()
            lines.append(f"Queue: {waiting} run(s) waiting for a worker, {working} held by one.")
        lines += [
            f"• `{inert_code(r.id)}` {r.status.value}{_by(r)} {mention(r.requester)}: "
            f"{goal_seen_by(r, user, limit=80)}"
            for r in runs[:_LISTED]
        ]
        return cut("\n".join(lines), 3900)

    async def _halted(self) -> list[str]:
        halt = await self.store.get_halt()
        if halt is None or not halt.halted:
            return []
        return [f":octagonal_sign: Halted by {mention(halt.by or 'an admin')}: "
                f"{cut(inert(halt.reason or 'no reason given'), 500)}"]  # fmt: skip

    async def _overview(self, runs: list[Run]) -> list[str]:
        pending = await self.store.list_pending_approvals()
        # The day's ledger: every model call of today, whenever its run was created.
        spend = await SpendLedger(store=self.store).today()
        return [f"{len(runs)} active run(s), {len(pending)} approval(s) waiting, "
                f"${spend:.2f} spent today."]  # fmt: skip

    async def _active(self, requester: str | None) -> list[Run]:
        """Runs not over, each once (one may move between statuses while they are listed);
        only ``requester``'s unless None."""
        runs: dict[str, Run] = {}
        for status in ACTIVE:
            for run in await self.store.list_runs(status=status, requester=requester,
                                                  limit=_LISTED):  # fmt: skip
                runs.setdefault(run.id, run)
        return list(runs.values())


def _by(run: Run) -> str:
    """Which worker has a live run, when workers share the work."""
    return f" on `{inert_code(run.owner)}`" if run.owner and not run.status.is_final else ""


def _said(result: T | Refused, success: Callable[[T], str]) -> str:
    if isinstance(result, Refused):
        return f"Not allowed: {cut(inert(result.reason), 500)}."
    return success(result)
