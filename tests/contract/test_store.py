"""The Store contract: every backend must pass exactly these tests."""

from __future__ import annotations

import asyncio
import itertools
import json
import sqlite3
import uuid
from datetime import timedelta
from pathlib import Path

import pytest

from agent_core.audit.chain import AuditKey, sealed_at
from agent_core.audit.verify import check_trail
from agent_core.clock import utcnow
from agent_core.errors import (
    AlreadyExists,
    ApprovalNotUsable,
    AuditKeyError,
    AuditTampered,
    IllegalTransition,
    NotFound,
    VersionConflict,
)
from agent_core.memory.records import Memory
from agent_core.models import (
    AlreadyDecided,
    Approval,
    ApprovalDecided,
    ApprovalStatus,
    AuditEvent,
    Concluded,
    Counted,
    Decision,
    DecisionKind,
    Duplicate,
    HaltChanged,
    HaltState,
    Plan,
    PlanSubject,
    RiskLevel,
    Run,
    RunKilled,
    RunStatus,
    Subtask,
    SubtaskResult,
    ToolCallSubject,
)
from agent_core.secrets import register_secrets
from agent_core.store import ApprovalUse, Fact, Store, open_store
from agent_core.store._sqlite_rows import SCHEMA
from agent_core.store.base import Lease, dump
from agent_core.toolcalls import ProcessRecord, ToolCallRecord, ToolCallState, arguments_digest
from tests.attacks.tamper import open_raw, rechain
from tests.support import TEST_AUDIT_KEY, eventually

KEY = AuditKey.from_text(TEST_AUDIT_KEY)
"""The key the ``store`` fixture seals the audit trail with."""


def a_run(**fields: object) -> Run:
    given = {"goal": "restart the staging web tier", "requester": "U0REQUEST"} | fields
    return Run(**given)  # type: ignore[arg-type]


def a_tool_approval(run_id: str, *, required: int = 1, **arguments: object) -> Approval:
    subject = ToolCallSubject(
        subtask_id="s1", tool="run_command", arguments=arguments or {"cmd": "systemctl restart web"}
    )
    return Approval(
        run_id=run_id, subject=subject, risk=RiskLevel.HIGH, required_approvals=required
    )


def approve(by: str, *, admin: bool = False) -> Decision:
    return Decision(kind=DecisionKind.APPROVE, by=by, as_admin=admin)


# Runs


async def test_a_created_run_reads_back_equal(store: Store) -> None:
    run = a_run(channel="C111", thread_ts="1595926230.009600")
    await store.create_run(run)
    assert await store.get_run(run.id) == run


async def test_a_run_id_is_created_once(store: Store) -> None:
    run = a_run()
    await store.create_run(run)
    with pytest.raises(AlreadyExists):
        await store.create_run(run)


async def test_a_missing_run_is_not_found(store: Store) -> None:
    with pytest.raises(NotFound):
        await store.get_run("run_nope")


async def test_runs_are_listed_by_status_oldest_first(store: Store) -> None:
    start = utcnow()
    runs = [a_run(created_at=start + timedelta(seconds=i)) for i in range(3)]
    for run in reversed(runs):
        await store.create_run(run)
    await store.save_run(moved(runs[1], RunStatus.PLANNING))

    queued = await store.list_runs(status=RunStatus.QUEUED)
    assert [r.id for r in queued] == [runs[0].id, runs[2].id]
    assert [r.id for r in await store.list_runs(status=RunStatus.PLANNING)] == [runs[1].id]
    assert [r.id for r in await store.list_runs()] == [r.id for r in runs]
    assert len(await store.list_runs(limit=2)) == 2


async def test_someones_newest_runs_are_found_among_many_older_ones(store: Store) -> None:
    start = utcnow()
    for i in range(120):  # others' runs, and older ones of her own, all before her newest
        await store.create_run(a_run(requester="U0ANA" if i % 40 == 0 else f"U{i:04d}",
                                     created_at=start + timedelta(seconds=i)))  # fmt: skip
    newest = [a_run(requester="U0ANA", created_at=start + timedelta(seconds=200 + i))
              for i in range(3)]  # fmt: skip
    for run in newest:
        await store.create_run(run)
    await store.save_run((await store.get_run(newest[1].id)).model_copy(
        update={"status": RunStatus.PLANNING}))  # fmt: skip

    hers = await store.list_runs(requester="U0ANA", newest_first=True, limit=4)
    assert [r.id for r in hers[:3]] == [r.id for r in reversed(newest)]
    assert len(hers) == 4 and all(r.requester == "U0ANA" for r in hers)
    assert [r.id for r in await store.list_runs(requester="U0ANA", status=RunStatus.PLANNING)] == [
        newest[1].id
    ]
    assert len(await store.list_runs(requester="U0ANA", limit=100)) == 6
    assert [r.id for r in await store.list_runs(newest_first=True, limit=1)] == [newest[2].id]
    assert await store.list_runs(requester="U0NOBODY") == []


def moved(run: Run, status: RunStatus, **changes: object) -> Run:
    """``run`` in ``status``, as the run host and the controls save it."""
    return run.model_copy(update={"status": status, **changes})


async def test_a_status_change_is_compare_and_set(store: Store) -> None:
    run = await store.create_run(a_run())
    planning = await store.save_run(moved(run, RunStatus.PLANNING))
    assert planning.status is RunStatus.PLANNING
    assert planning.version == run.version + 1

    # The same move from the same read, again: the run changed since, so it is refused.
    with pytest.raises(VersionConflict) as lost:
        await store.save_run(moved(run, RunStatus.PLANNING))
    assert (lost.value.expected, lost.value.actual) == (run.version, planning.version)
    assert await store.get_run(run.id) == planning


async def test_an_illegal_status_change_is_an_error_and_changes_nothing(store: Store) -> None:
    run = await store.create_run(a_run())
    with pytest.raises(IllegalTransition):
        await store.save_run(moved(run, RunStatus.COMPLETED))
    assert await store.get_run(run.id) == run


async def test_a_failed_run_goes_back_to_the_queue_as_a_new_attempt(store: Store) -> None:
    run = await store.create_run(a_run())
    failed = await store.save_run(moved(run, RunStatus.FAILED, error="tool crashed"))
    assert (await store.get_run(run.id)).error == "tool crashed"

    # What ``/agent retry`` saves (agent_core/runs/control.py): the next attempt, queued.
    retried = await store.save_run(moved(failed, RunStatus.QUEUED, attempt=2, error=None))
    assert (retried.status, retried.attempt, retried.error) == (RunStatus.QUEUED, 2, None)
    assert await store.get_run(run.id) == retried
    assert [r.id for r in await store.list_runs(status=RunStatus.FAILED)] == []
    assert [r.id for r in await store.list_runs(status=RunStatus.QUEUED)] == [run.id]


async def test_only_one_of_racing_status_changes_wins(store: Store) -> None:
    run = await store.create_run(a_run())
    results = await asyncio.gather(
        *(
            store.save_run(moved(run, target))
            for target in (RunStatus.PLANNING, RunStatus.KILLED) * 5
        ),
        return_exceptions=True,
    )
    winners = [r for r in results if isinstance(r, Run)]
    assert len(winners) == 1
    assert all(isinstance(r, VersionConflict) for r in results if not isinstance(r, Run))
    assert (await store.get_run(run.id)).status is winners[0].status
    assert len(await store.list_runs(status=winners[0].status)) == 1
    assert await store.list_runs(status=RunStatus.QUEUED) == []


async def test_saving_a_run_is_optimistic(store: Store) -> None:
    run = await store.create_run(a_run())
    plan = Plan(subtasks=[Subtask(id="s1", description="look", risk_level=RiskLevel.LOW)])
    first = run.model_copy(update={"plan": plan, "status": RunStatus.PLANNING})
    saved = await store.save_run(first)
    assert saved.version == run.version + 1
    assert (await store.get_run(run.id)).plan == plan

    stale = run.model_copy(update={"results": {"s1": SubtaskResult(status="completed")}})
    with pytest.raises(VersionConflict):
        await store.save_run(stale)

    illegal = saved.model_copy(update={"status": RunStatus.QUEUED})
    with pytest.raises(IllegalTransition):
        await store.save_run(illegal)
    assert (await store.get_run(run.id)).version == saved.version


async def test_checkpoints_are_replaced_and_binary_safe(store: Store) -> None:
    run = await store.create_run(a_run())
    assert await store.load_checkpoint(run.id) is None
    run = await store.save_run(run, checkpoint=b"\x00first\xff")
    run = await store.save_run(run, checkpoint=b"\x00second\xff")
    assert await store.load_checkpoint(run.id) == b"\x00second\xff"
    # A status move saves no checkpoint (the orchestrator's ``move``): the last one holds.
    await store.save_run(moved(run, RunStatus.PLANNING))
    assert await store.load_checkpoint(run.id) == b"\x00second\xff"


async def test_a_checkpoint_is_not_written_when_its_run_save_loses(store: Store) -> None:
    run = await store.create_run(a_run())
    await store.save_run(run, checkpoint=b"kept")
    with pytest.raises(VersionConflict):
        await store.save_run(run, checkpoint=b"from a stale read")
    assert await store.load_checkpoint(run.id) == b"kept"


async def test_a_run_and_its_checkpoint_rest_with_their_secrets_masked(store: Store) -> None:
    key = "sk-ant-api03-Rf8kLq2Zt5Wn9Xc3Vb7Nm1Pj4Hs6"
    run = await store.create_run(Run(goal=f"rotate the key {key}", requester="U0REQUEST"))
    assert run.goal == "rotate the key sk-ant-[redacted]" == (await store.get_run(run.id)).goal
    done = SubtaskResult(status="completed", output=f"new key: {key}")
    answered = {"type": "tool_use", "id": "t1", "name": "vault", "input": {"token": key}}
    result = {"type": "tool_result", "tool_use_id": "t1", "content": f"rotated {key}"}
    waiting = {"type": "tool_use", "id": "t2", "name": "vault", "input": {"token": key}}
    conversation = [
        {"role": "user", "content": f"rotate {key}"},
        {"role": "assistant", "content": [answered]},
        {"role": "user", "content": [result]},
        {"role": "assistant", "content": [{"type": "text", "text": key}, waiting]},
    ]
    checkpoint = json.dumps({"conversations": {"s1": conversation}})
    saved = await store.save_run(run.model_copy(update={"results": {"s1": done}}),
                                 checkpoint=checkpoint.encode())  # fmt: skip
    assert saved.results["s1"].output == "new key: sk-ant-[redacted]"
    stored = await store.load_checkpoint(run.id)
    masked = "sk-ant-[redacted]"
    # A call still waiting for its result keeps its exact arguments (as its approval does):
    # it may yet run, and its risk is worked out from them. Everything else is masked.
    assert stored is not None and json.loads(stored) == {
        "conversations": {
            "s1": [
                {"role": "user", "content": f"rotate {masked}"},
                {"role": "assistant", "content": [{**answered, "input": {"token": "[redacted]"}}]},
                {"role": "user", "content": [{**result, "content": f"rotated {masked}"}]},
                {"role": "assistant", "content": [{"type": "text", "text": masked}, waiting]},
            ]
        }
    }
    failed = await store.save_run(moved(saved, RunStatus.FAILED, error=f"{key} expired"))
    assert failed.error == "sk-ant-[redacted] expired"
    assert key not in (await store.get_run(run.id)).model_dump_json()


async def test_a_secret_is_masked_in_a_save_that_differs_little_from_a_clean_one(
    store: Store,
) -> None:
    # The store compares a save with the run's last clean one instead of walking it all:
    # what is new, and what became secret since (registered), must still be masked.
    key = "sk-ant-api03-Qw7Er4Ty1Ui8Op5As2Df9Gh6Jk3"
    run = await store.create_run(Run(goal="rotate the vault key", requester="U0REQUEST"))
    turns: list[dict[str, object]] = [{"role": "user", "content": "rotate the vault key"}]

    async def save(run: Run) -> tuple[Run, str]:
        checkpoint = json.dumps({"conversations": {"s1": turns}, "journal": True}).encode()
        saved = await store.save_run(run, checkpoint=checkpoint)
        return saved, (await store.load_checkpoint(run.id) or b"").decode()

    run, stored = await save(run)
    assert json.loads(stored)["conversations"]["s1"] == turns
    turns.append({"role": "assistant", "content": [{"type": "text", "text": f"new: {key}"}]})
    run, stored = await save(run.model_copy(update={"error": f"old {key}"}))
    assert key not in stored and "new: sk-ant-[redacted]" in stored
    assert run.error == "old sk-ant-[redacted]"
    later = f"vault-{uuid.uuid4().hex[:12]}"  # a secret of its own (registering is for good)
    turns[-1] = {"role": "assistant", "content": [{"type": "text", "text": later}]}
    run, stored = await save(run.model_copy(update={"error": None}))
    assert later in stored  # clean, and kept as the next comparison
    register_secrets(later)
    run, stored = await save(run.model_copy(update={"error": later}))
    assert later not in stored and "[redacted]" in stored
    assert run.error == "[redacted]"


# Approvals


async def test_an_approval_reads_back_with_its_digest(store: Store) -> None:
    approval = await store.create_approval(a_tool_approval("run_a"))
    loaded = await store.get_approval(approval.id)
    assert loaded == approval
    assert len(loaded.digest) == 64
    with pytest.raises(AlreadyExists):
        await store.create_approval(approval)
    with pytest.raises(NotFound):
        await store.get_approval("apr_nope")


async def test_an_approvals_line_lands_with_it_and_only_if_it_is_created(store: Store) -> None:
    approval = a_tool_approval("run_a")
    line = AuditEvent(run_id="run_a", kind="approval_requested", actor="airlock",
                      data={"approval_id": approval.id})  # fmt: skip
    await store.create_approval(approval, recording=line)
    [written] = await store.list_audit("run_a")
    assert written.kind == "approval_requested" and written.data["approval_id"] == approval.id
    # A second request under the same id (another process asking at the same moment): no
    # second line for a request that was not made.
    with pytest.raises(AlreadyExists):
        await store.create_approval(approval, recording=line)
    assert len(await store.list_audit("run_a")) == 1


async def test_pending_approvals_are_listed_per_run(store: Store) -> None:
    first = await store.create_approval(a_tool_approval("run_a"))
    second = await store.create_approval(a_tool_approval("run_b"))
    decided = await store.create_approval(a_tool_approval("run_a"))
    await store.record_decision(decided.id, approve("U0APPROVER"))

    assert [a.id for a in await store.list_pending_approvals()] == [first.id, second.id]
    assert [a.id for a in await store.list_pending_approvals(run_id="run_a")] == [first.id]

    # Another run's request naming this run in its arguments, a run whose id starts with
    # this one's, and run ids JSON has to escape: each listed under its own run only.
    await store.create_approval(a_tool_approval("run_b", target="run_a"))
    await store.create_approval(a_tool_approval("run_ab"))
    quoted = await store.create_approval(a_tool_approval('run_"q"\\ü'))
    assert [a.id for a in await store.list_pending_approvals(run_id="run_a")] == [first.id]
    listed = await store.list_pending_approvals(run_id='run_"q"\\ü')
    assert [a.id for a in listed] == [quoted.id]


async def test_the_first_conclusive_decision_wins(store: Store) -> None:
    approval = await store.create_approval(a_tool_approval("run_a"))
    first = await store.record_decision(approval.id, approve("U0ALICE"))
    assert isinstance(first, Concluded)
    assert first.approval.status is ApprovalStatus.APPROVED

    second = await store.record_decision(
        approval.id, Decision(kind=DecisionKind.REJECT, by="U0BOB", reason="no")
    )
    assert isinstance(second, AlreadyDecided)
    assert second.decided_by == "U0ALICE"
    stored = await store.get_approval(approval.id)
    assert stored.status is ApprovalStatus.APPROVED
    assert [d.by for d in stored.decisions] == ["U0ALICE"]


async def test_a_reject_keeps_its_reason(store: Store) -> None:
    approval = await store.create_approval(a_tool_approval("run_a"))
    outcome = await store.record_decision(
        approval.id, Decision(kind=DecisionKind.REJECT, by="U0BOB", reason="wrong host")
    )
    assert isinstance(outcome, Concluded)
    stored = await store.get_approval(approval.id)
    assert stored.status is ApprovalStatus.REJECTED
    assert stored.decisions[-1].reason == "wrong host"


async def test_a_quorum_needs_distinct_approvers_or_one_admin(store: Store) -> None:
    approval = await store.create_approval(a_tool_approval("run_a", required=2))
    counted = await store.record_decision(approval.id, approve("U0ALICE"))
    assert isinstance(counted, Counted)
    assert counted.approvals_needed == 1
    assert isinstance(await store.record_decision(approval.id, approve("U0ALICE")), Duplicate)
    assert (await store.get_approval(approval.id)).status is ApprovalStatus.PENDING
    assert isinstance(await store.record_decision(approval.id, approve("U0BOB")), Concluded)

    by_admin = await store.create_approval(a_tool_approval("run_a", required=2))
    outcome = await store.record_decision(by_admin.id, approve("U0ADMIN", admin=True))
    assert isinstance(outcome, Concluded)
    assert outcome.approval.decided_by == "U0ADMIN"


async def test_an_edit_binds_the_new_arguments(store: Store) -> None:
    approval = await store.create_approval(a_tool_approval("run_a", cmd="rm -rf /srv"))
    edit = Decision(kind=DecisionKind.EDIT, by="U0ALICE", edited_arguments={"cmd": "ls /srv"})
    outcome = await store.record_decision(approval.id, edit)
    assert isinstance(outcome, Concluded)
    edited = await store.get_approval(approval.id)
    assert isinstance(edited.subject, ToolCallSubject)
    assert edited.subject.arguments == {"cmd": "ls /srv"}
    assert edited.digest != approval.digest
    with pytest.raises(ApprovalNotUsable):
        await store.consume_approval(approval.id, digest=approval.digest, at=utcnow())
    await store.consume_approval(approval.id, digest=edited.digest, at=utcnow())


async def test_concurrent_decisions_produce_exactly_one_conclusion(store: Store) -> None:
    approval = await store.create_approval(a_tool_approval("run_a"))
    decisions = [
        approve(f"U0APPROVER{i}")
        if i % 2
        else Decision(kind=DecisionKind.REJECT, by=f"U0APPROVER{i}")
        for i in range(20)
    ]
    outcomes = await asyncio.gather(*(store.record_decision(approval.id, d) for d in decisions))
    winners = [o for o in outcomes if isinstance(o, Concluded)]
    assert len(winners) == 1
    assert all(isinstance(o, AlreadyDecided) for o in outcomes if o is not winners[0])
    stored = await store.get_approval(approval.id)
    assert len(stored.decisions) == 1
    assert stored.decided_by == winners[0].approval.decided_by


async def test_an_expired_approval_takes_no_decision(store: Store) -> None:
    approval = await store.create_approval(a_tool_approval("run_a"))
    closed = await store.close_approval(
        approval.id, status=ApprovalStatus.EXPIRED, by="airlock", at=utcnow()
    )
    assert isinstance(closed, Concluded)
    late = await store.record_decision(approval.id, approve("U0ALICE"))
    assert isinstance(late, AlreadyDecided)
    assert late.approval.status is ApprovalStatus.EXPIRED
    again = await store.close_approval(
        approval.id, status=ApprovalStatus.CANCELLED, by="airlock", at=utcnow()
    )
    assert isinstance(again, AlreadyDecided)
    assert await store.list_pending_approvals() == []


async def test_an_approval_is_consumed_once_and_only_for_its_digest(store: Store) -> None:
    approval = await store.create_approval(a_tool_approval("run_a"))
    with pytest.raises(ApprovalNotUsable, match="pending"):
        await store.consume_approval(approval.id, digest=approval.digest, at=utcnow())
    await store.record_decision(approval.id, approve("U0ALICE"))

    other = a_tool_approval("run_a", cmd="something else")
    with pytest.raises(ApprovalNotUsable, match="different arguments"):
        await store.consume_approval(approval.id, digest=other.digest, at=utcnow())

    used = await store.consume_approval(approval.id, digest=approval.digest, at=utcnow())
    assert used.consumed_at is not None
    with pytest.raises(ApprovalNotUsable, match="used already"):
        await store.consume_approval(approval.id, digest=approval.digest, at=utcnow())


async def test_a_plan_approval_round_trips(store: Store) -> None:
    plan = Plan(subtasks=[Subtask(id="s1", description="drop", risk_level=RiskLevel.CRITICAL)])
    approval = Approval(run_id="run_a", subject=PlanSubject(plan=plan), risk=plan.risk)
    await store.create_approval(approval)
    loaded = await store.get_approval(approval.id)
    assert loaded.subject == PlanSubject(plan=plan)
    assert loaded.risk is RiskLevel.CRITICAL


# Signals


async def test_a_subscriber_receives_what_is_published(store: Store) -> None:
    async with store.subscribe() as signals:
        await store.publish(RunKilled(run_id="run_a", by="U0ADMIN", reason="runaway"))
        async with asyncio.timeout(5):
            received = await signals.get()
    assert received == RunKilled(run_id="run_a", by="U0ADMIN", reason="runaway")


async def test_a_signal_reaches_another_store_on_the_same_backend(store_url: str) -> None:
    publisher = await open_store(store_url, poll_interval=0.02)
    listener = await open_store(store_url, poll_interval=0.02)
    try:
        async with listener.subscribe() as signals, publisher.subscribe() as own:
            sent = [
                ApprovalDecided(approval_id="apr_1", run_id="run_a"),
                HaltChanged(halted=True, by="U0ADMIN"),
            ]
            for signal in sent:
                await publisher.publish(signal)
            async with asyncio.timeout(5):
                assert [await signals.get(), await signals.get()] == sent
                assert [await own.get(), await own.get()] == sent
            assert own.queue.empty()  # our own publication is not delivered twice
    finally:
        await publisher.close()
        await listener.close()


async def test_signals_from_before_subscribing_are_not_replayed(store_url: str) -> None:
    first = await open_store(store_url, poll_interval=0.02)
    await first.publish(RunKilled(run_id="run_old", by="U0ADMIN"))
    second = await open_store(store_url, poll_interval=0.02)
    try:
        async with second.subscribe() as signals:
            await first.publish(RunKilled(run_id="run_new", by="U0ADMIN"))
            async with asyncio.timeout(5):
                received = await signals.get()
        assert isinstance(received, RunKilled)
        assert received.run_id == "run_new"
    finally:
        await first.close()
        await second.close()


# Leases


async def test_a_lease_is_one_holders_until_released_or_lapsed(store: Store) -> None:
    lease = await store.take_lease("run_a", holder="serve-1", ttl_seconds=60)
    assert lease is not None and lease.owner == "serve-1" and lease.run_id == "run_a"
    assert await store.take_lease("run_a", holder="terminal-2", ttl_seconds=60) is None
    held = await store.lease_holder("run_a")
    assert held is not None and held[0] == "serve-1" and 50 < held[1] <= 60
    assert await store.holds_lease(lease) and await store.renew_lease(lease, ttl_seconds=60)
    assert await store.lease_holder("run_b") is None
    assert await store.release_lease(lease)
    assert not await store.holds_lease(lease) and not await store.release_lease(lease)
    assert not await store.renew_lease(lease, ttl_seconds=60)  # let go: renewing is no taking
    again = await store.take_lease("run_a", holder="terminal-2", ttl_seconds=60)
    assert again is not None and again.token != lease.token and again.owner == "terminal-2"


async def test_a_lapsed_lease_is_taken_over_and_its_old_holder_can_no_longer_use_it(
    store: Store,
) -> None:
    crashed = await store.take_lease("run_a", holder="serve-1", ttl_seconds=0.2)
    assert crashed is not None

    async def lapsed() -> bool:
        return await store.lease_holder("run_a") is None

    await eventually(lapsed)
    taken = await store.take_lease("run_a", holder="serve-2", ttl_seconds=60)
    assert taken is not None
    assert not await store.renew_lease(crashed, ttl_seconds=60)
    assert not await store.release_lease(crashed) and not await store.holds_lease(crashed)
    assert await store.holds_lease(taken)


# Small shared values


async def test_an_idempotency_key_is_claimed_once_until_it_expires(store: Store) -> None:
    assert await store.claim_idempotency_key("Ev111", ttl_seconds=0.3)
    assert not await store.claim_idempotency_key("Ev111", ttl_seconds=0.3)
    assert await store.claim_idempotency_key("Ev222", ttl_seconds=60)

    async def claimable_again() -> bool:
        return await store.claim_idempotency_key("Ev111", ttl_seconds=60)

    await eventually(claimable_again)


async def test_rate_limit_counts_hits_per_key_and_window(store: Store) -> None:
    counts = [await store.hit_rate_limit("U0ALICE", window_seconds=3600) for _ in range(3)]
    assert counts[-1] - counts[0] == 2 or counts == [1, 2, 3]
    assert await store.hit_rate_limit("U0BOB", window_seconds=3600) == 1

    first = await store.hit_rate_limit("burst", window_seconds=0.2)

    async def new_window() -> bool:
        return await store.hit_rate_limit("burst", window_seconds=0.2) == 1

    assert first == 1
    await eventually(new_window)


async def test_facts_are_scoped_and_expire(store: Store) -> None:
    await store.set_fact("C111:1595926230.009600", "host", "web-3", ttl_seconds=60)
    await store.set_fact("C111:1595926230.009600", "temp", "soon gone", ttl_seconds=0.2)
    await store.set_fact("C222:1", "host", "db-1", ttl_seconds=60)
    await store.set_fact("C111:1595926230.009600", "host", "web-4", ttl_seconds=60)

    assert await store.get_facts("C222:1") == {"host": "db-1"}
    assert await store.get_facts("C999:1") == {}

    async def expired() -> bool:
        return await store.get_facts("C111:1595926230.009600") == {"host": "web-4"}

    await eventually(expired)


async def test_the_halt_flag_is_shared_state(store: Store) -> None:
    assert await store.get_halt() is None
    await store.set_halt(HaltState(halted=True, by="U0ADMIN", reason="incident"))
    halt = await store.get_halt()
    assert halt is not None and halt.halted and halt.reason == "incident"
    await store.set_halt(HaltState(halted=False, by="U0ADMIN"))
    lifted = await store.get_halt()
    assert lifted is not None and not lifted.halted


# Audit


async def test_audit_events_are_appended_in_order_and_chained(store: Store) -> None:
    kinds = ["llm_call", "approval_requested", "approval_decided", "tool_call"]
    for kind in kinds:
        await store.append_audit(AuditEvent(run_id="run_a", kind=kind, actor="airlock"))
    await store.append_audit(AuditEvent(run_id="run_b", kind="llm_call", actor="airlock"))

    events = await store.list_audit("run_a")
    assert [e.kind for e in events] == kinds
    assert [e.seq for e in events] == [1, 2, 3, 4]
    assert events[0].prev_hash == ""
    assert all(later.prev_hash == earlier.hash for earlier, later in itertools.pairwise(events))
    assert all(e.key_id == KEY.id and sealed_at(e, e.seq, KEY) for e in events)
    assert not any(sealed_at(e, e.seq, AuditKey.from_text("another key, " * 4)) for e in events)
    assert [e.seq for e in await store.list_audit("run_b")] == [1]


async def test_concurrent_audit_appends_keep_one_unbroken_chain(store: Store) -> None:
    await asyncio.gather(
        *(
            store.append_audit(AuditEvent(run_id="run_a", kind="tool_call", actor=f"w{i}"))
            for i in range(20)
        )
    )
    events = await store.list_audit("run_a")
    assert [e.seq for e in events] == list(range(1, 21))
    assert all(later.prev_hash == earlier.hash for earlier, later in itertools.pairwise(events))


async def test_two_stores_appending_to_one_trail_keep_one_chain(store_url: str) -> None:
    # Each store keeps the head it wrote last; the other's appends in between must be found
    # (not sealed over), whichever store appends next and however they interleave.
    first = await open_store(store_url, audit_key=TEST_AUDIT_KEY)
    second = await open_store(store_url, audit_key=TEST_AUDIT_KEY)
    try:
        writers = [first, second, second, first, first, second, first]
        for i, writer in enumerate(writers):
            await writer.append_audit(AuditEvent(run_id="run_a", kind="tool_call", actor=f"{i}"))
        await asyncio.gather(*(
            writer.append_audit(AuditEvent(run_id="run_a", kind="tool_call", actor=f"c{i}"))
            for i, writer in enumerate([first, second] * 10)
        ))  # fmt: skip
        trail = await first.read_audit("run_a")
        events = trail.events
        assert [e.seq for e in events] == list(range(1, 28))
        assert [e.actor for e in events[:7]] == [str(i) for i in range(7)]
        assert all(later.prev_hash == earlier.hash for earlier, later in itertools.pairwise(events))
        assert not check_trail(trail, KEY).broken
    finally:
        await first.close()
        await second.close()


async def test_appending_the_same_event_twice_records_it_once(store: Store) -> None:
    event = AuditEvent(run_id="run_a", kind="tool_call", actor="airlock")
    first = await store.append_audit(event)
    again = await store.append_audit(event)
    assert again == first
    assert [e.id for e in await store.list_audit("run_a")] == [event.id]


async def test_a_run_and_its_checkpoint_are_saved_together(store: Store) -> None:
    run = await store.create_run(a_run())
    moved = run.model_copy(update={"status": RunStatus.PLANNING})
    saved = await store.save_run(moved, checkpoint=b"turn-1")
    assert await store.load_checkpoint(run.id) == b"turn-1"
    with pytest.raises(VersionConflict):
        await store.save_run(moved, checkpoint=b"stale")
    assert await store.load_checkpoint(run.id) == b"turn-1"
    assert (await store.get_run(run.id)).version == saved.version


async def test_an_approval_is_escalated_once_per_hop_and_only_while_pending(store: Store) -> None:
    approval = await store.create_approval(a_tool_approval("run_a"))
    later = utcnow() + timedelta(minutes=10)
    moved = await store.escalate_approval(approval.id, hop=1, approvers=["S0LEADS"], deadline=later)
    assert moved is not None and (moved.hop, moved.approvers, moved.deadline) == (
        1,
        ["S0LEADS"],
        later,
    )
    assert (
        await store.escalate_approval(approval.id, hop=1, approvers=["S0X"], deadline=None) is None
    )
    assert (await store.get_approval(approval.id)).approvers == ["S0LEADS"]
    await store.record_decision(approval.id, approve("U0LEAD"))
    assert (
        await store.escalate_approval(approval.id, hop=2, approvers=["S0X"], deadline=None) is None
    )


async def test_audit_trails_are_listed_and_deleted_whole(store: Store) -> None:
    for run_id in ("run_b", "run_a", "run_a"):
        await store.append_audit(AuditEvent(run_id=run_id, kind="tool_call", actor="airlock"))
    assert await store.audit_runs() == ["run_a", "run_b"]
    assert await store.delete_audit("run_a") == 2
    assert await store.delete_audit("run_a") == 0
    assert await store.list_audit("run_a") == []
    # The purged trail's head stays, sealed as a tombstone: a purge is not a deletion.
    assert await store.audit_runs() == ["run_a", "run_b"]
    trail = await store.read_audit("run_a")
    assert trail.head is not None and (trail.head.count, trail.head.purged) == (2, 2)
    assert trail.head.purged_at is not None and not check_trail(trail, KEY).findings


async def test_an_append_after_a_purge_follows_the_purged_events(store: Store) -> None:
    for kind in ("llm_call", "run_finished"):
        await store.append_audit(AuditEvent(run_id="run_a", kind=kind, actor="airlock"))
    await store.delete_audit("run_a")
    late = await store.append_audit(AuditEvent(run_id="run_a", kind="kill_refused", actor="U0X"))
    trail = await store.read_audit("run_a")
    assert late.seq == 3 and [e.id for e in trail.events] == [late.id]
    assert not check_trail(trail, KEY).findings


async def test_each_append_moves_the_head_in_the_same_atomic_write(store_url: str) -> None:
    """Two stores append to one trail while a third reads: every read sees head and events
    agree, as they would not if the head were written apart from the event."""
    stores = [await open_store(store_url, poll_interval=0.02, audit_key=KEY) for _ in range(3)]
    writers, reader = stores[:2], stores[2]
    done = asyncio.Event()

    async def write(store: Store, who: str) -> None:
        for i in range(25):
            event = AuditEvent(run_id="run_a", kind="tool_call", actor=f"{who}{i}")
            await store.append_audit(event)

    async def read() -> int:
        seen = 0
        while not done.is_set():
            trail = await reader.read_audit("run_a")
            if trail.head is not None:
                assert trail.head.count == len(trail.events) == trail.events[-1].seq
                assert trail.head.last_hash == trail.events[-1].hash
                seen += 1
            await asyncio.sleep(0)
        return seen

    try:
        reading = asyncio.create_task(read())
        await asyncio.gather(*(write(store, f"w{n}-") for n, store in enumerate(writers)))
        done.set()
        assert await reading > 0
        trail = await reader.read_audit("run_a")
        assert trail.head is not None and trail.head.count == 50
        assert not check_trail(trail, KEY).findings
    finally:
        for store in stores:
            await store.close()


async def test_trails_are_numbered_once_each_even_when_they_start_at_once(store_url: str) -> None:
    stores = [await open_store(store_url, poll_interval=0.02, audit_key=KEY) for _ in range(2)]
    try:
        await asyncio.gather(*(
            stores[i % 2].append_audit(AuditEvent(run_id=f"run_{i}", kind="llm_call", actor="a"))
            for i in range(12)
        ))  # fmt: skip
        anchor = await stores[0].audit_anchor()
        heads = [(await stores[0].read_audit(f"run_{i}")).head for i in range(12)]
        assert anchor is not None and anchor.trails == 12
        assert sorted(head.ordinal for head in heads if head is not None) == list(range(1, 13))
    finally:
        for store in stores:
            await store.close()


async def test_an_append_over_a_forged_head_writes_nothing(store: Store, store_url: str) -> None:
    for kind in ("llm_call", "tool_call", "run_finished"):
        await store.append_audit(AuditEvent(run_id="run_a", kind=kind, actor="airlock"))
    raw = open_raw(store_url)
    try:
        events = await raw.events("run_a")
        head = await raw.head("run_a")
        assert head is not None
        await raw.replace("run_a", events[:-1])  # the tail cut, the head set to match
        forged = {**head, "count": 2, "last_id": events[1]["id"], "last_hash": events[1]["hash"]}
        await raw.put_head("run_a", forged)
        with pytest.raises(AuditTampered):
            await store.append_audit(AuditEvent(run_id="run_a", kind="llm_call", actor="airlock"))
        assert await raw.events("run_a") == events[:-1] and await raw.head("run_a") == forged
        await raw.put_head("run_a", None)  # the head deleted: sealed events are not adopted
        with pytest.raises(AuditTampered):
            await store.append_audit(AuditEvent(run_id="run_a", kind="llm_call", actor="airlock"))
        assert await raw.head("run_a") is None
    finally:
        await raw.close()


async def test_only_the_key_a_trail_is_sealed_with_appends_to_it(store_url: str) -> None:
    keyed = await open_store(store_url, audit_key=KEY)
    other = await open_store(store_url, audit_key="a different key, long enough to be one")
    keyless = await open_store(store_url)
    try:
        first = await keyed.append_audit(AuditEvent(run_id="run_a", kind="llm_call", actor="a"))
        for store in (other, keyless):
            for run_id in ("run_a", "run_b"):  # an existing trail, and a new one (the anchor)
                with pytest.raises(AuditKeyError):
                    await store.append_audit(AuditEvent(run_id=run_id, kind="x", actor="a"))
        assert [e.id for e in await keyed.list_audit("run_a")] == [first.id]
        assert await keyed.audit_runs() == ["run_a"]
    finally:
        for store in (keyed, other, keyless):
            await store.close()


async def test_a_trail_from_before_keys_is_continued_sealed(store: Store, store_url: str) -> None:
    legacy = [AuditEvent(run_id="run_old", kind=kind, actor="airlock") for kind in ("a", "b")]
    legacy = [legacy[0].chained(seq=1, prev_hash="")]
    legacy.append(AuditEvent(run_id="run_old", kind="b", actor="x").chained(
        seq=2, prev_hash=legacy[0].hash))  # fmt: skip
    raw = open_raw(store_url)
    try:
        await raw.replace("run_old", [json.loads(dump(event)) for event in legacy])
    finally:
        await raw.close()
    headless = check_trail(await store.read_audit("run_old"), KEY)
    assert headless.unkeyed and not headless.broken
    later = await store.append_audit(AuditEvent(run_id="run_old", kind="c", actor="airlock"))
    trail = await store.read_audit("run_old")
    assert (later.seq, later.prev_hash, later.key_id) == (3, legacy[1].hash, KEY.id)
    assert trail.head is not None and (trail.head.legacy, trail.head.count) == (2, 3)
    assert not check_trail(trail, KEY).broken


TAMPERING = {
    "the last event deleted": lambda bodies: bodies[:-1],
    "a middle event deleted": lambda bodies: bodies[:1] + bodies[2:],
    "a middle event deleted, the rest renumbered": lambda bodies: bodies[:1] + [
        {**body, "seq": body["seq"] - 1} for body in bodies[2:]],
    "an event edited and the chain rewritten": lambda bodies: rechain(
        [bodies[0], {**bodies[1], "actor": "U0MALLORY"}, *bodies[2:]], start=1),
    "two events swapped": lambda bodies: [bodies[0], bodies[2], bodies[1], bodies[3]],
    "every event deleted": lambda bodies: [],
}  # fmt: skip


@pytest.mark.parametrize("tampering", TAMPERING)
async def test_tampering_written_straight_into_the_backend_is_found(
    store: Store, store_url: str, tampering: str
) -> None:
    for kind in ("llm_call", "tool_call", "tool_result", "run_finished"):
        await store.append_audit(AuditEvent(run_id="run_a", kind=kind, actor="airlock"))
    assert not check_trail(await store.read_audit("run_a"), KEY).findings
    raw = open_raw(store_url)
    try:
        await raw.replace("run_a", TAMPERING[tampering](await raw.events("run_a")))
    finally:
        await raw.close()
    assert check_trail(await store.read_audit("run_a"), KEY).broken


# Long-term memory records


def a_memory(
    scope: str = "channel:C111", content: str = "staging deploys use deploy-web"
) -> Memory:
    return Memory(scope=scope, content=content, created_by="U0REQUEST")


async def test_memories_get_growing_sequence_numbers(store: Store) -> None:
    first = await store.add_memory(a_memory())
    second = await store.add_memory(a_memory(content="prod needs two approvers"))
    assert 0 < first.seq < second.seq
    assert await store.get_memory(second.id) == second


async def test_a_memory_id_is_added_once(store: Store) -> None:
    memory = await store.add_memory(a_memory())
    with pytest.raises(AlreadyExists):
        await store.add_memory(memory)


async def test_memories_list_by_scope_after_a_sequence_number(store: Store) -> None:
    a1 = await store.add_memory(a_memory("channel:CA"))
    b1 = await store.add_memory(a_memory("channel:CB"))
    a2 = await store.add_memory(a_memory("channel:CA", "second"))
    assert await store.list_memories("channel:CA") == [a1, a2]
    assert await store.list_memories("channel:CA", after_seq=a1.seq) == [a2]
    assert await store.list_memories() == [a1, b1, a2]
    assert await store.list_memories(limit=1) == [a1]
    assert await store.memory_counts() == {"channel:CA": 2, "channel:CB": 1}


async def test_memories_by_seq_never_cross_scopes(store: Store) -> None:
    mine = await store.add_memory(a_memory("channel:CA"))
    theirs = await store.add_memory(a_memory("channel:CB"))
    found = await store.memories_by_seq("channel:CA", [theirs.seq, mine.seq, 999_999])
    assert found == [mine]


async def test_a_deleted_memory_is_gone_and_its_number_not_reused(store: Store) -> None:
    memory = await store.add_memory(a_memory())
    assert await store.delete_memory(memory.id) == memory
    assert await store.delete_memory(memory.id) is None
    with pytest.raises(NotFound):
        await store.get_memory(memory.id)
    assert await store.memories_by_seq(memory.scope, [memory.seq]) == []
    assert await store.list_memories(memory.scope) == []
    assert await store.memory_counts() == {}
    again = await store.add_memory(a_memory())
    assert again.seq > memory.seq


async def test_touching_memories_counts_each_access(store: Store) -> None:
    memory = await store.add_memory(a_memory())
    at = utcnow()
    await asyncio.gather(*(store.touch_memories([memory.id, "mem_gone"], at=at) for _ in range(5)))
    touched = await store.get_memory(memory.id)
    assert touched.access_count == 5
    assert touched.last_accessed == at


# Spend totals


async def test_spend_totals_add_up_per_key(store: Store) -> None:
    assert await store.get_spend("workspace:2025-06-01") == 0.0
    assert await store.add_spend(["workspace:2025-06-01"], 0.5, ttl_seconds=60) == [0.5]
    totals = await store.add_spend(
        ["workspace:2025-06-01", "user:U0ALICE:2025-06-01"], 0.125, ttl_seconds=60
    )
    assert totals == [0.625, 0.125]
    assert await store.get_spend("workspace:2025-06-01") == 0.625
    assert await store.get_spend("user:U0ALICE:2025-06-01") == 0.125
    assert await store.get_spend("user:U0BOB:2025-06-01") == 0.0
    assert await store.add_spend(["tiny"], 1e-05, ttl_seconds=60) == [pytest.approx(1e-05)]


async def test_concurrent_spend_is_never_lost(store: Store) -> None:
    await asyncio.gather(*(store.add_spend(["day", "user"], 0.25, ttl_seconds=60)
                           for _ in range(20)))  # fmt: skip
    assert (await store.get_spend("day"), await store.get_spend("user")) == (5.0, 5.0)


async def test_a_spend_total_expires_from_its_first_addition(store: Store) -> None:
    await store.add_spend(["day"], 1.5, ttl_seconds=0.3)
    await store.add_spend(["day"], 1.0, ttl_seconds=60)  # adds, but does not extend its life

    async def expired() -> bool:
        return await store.get_spend("day") == 0.0

    await eventually(expired)
    assert await store.add_spend(["day"], 0.75, ttl_seconds=60) == [0.75]


async def test_a_store_from_before_its_key_is_taken_over_by_the_key(store_url: str) -> None:
    keyless = await open_store(store_url)
    keyed = await open_store(store_url, audit_key=KEY)
    try:
        await keyless.append_audit(AuditEvent(run_id="run_old", kind="llm_call", actor="a"))
        await keyed.append_audit(AuditEvent(run_id="run_old", kind="run_finished", actor="a"))
        taken = await keyed.audit_anchor()  # sealed as soon as the key writes to the store
        assert taken is not None and (taken.key_id, taken.trails, taken.keyed_from) == (
            KEY.id,
            1,
            2,
        )
        await keyed.append_audit(AuditEvent(run_id="run_new", kind="llm_call", actor="a"))
        old, new = await keyed.read_audit("run_old"), await keyed.read_audit("run_new")
        anchor = await keyed.audit_anchor()
        assert anchor is not None and (anchor.key_id, anchor.trails, anchor.keyed_from) == (
            KEY.id,
            2,
            2,
        )
        assert old.head is not None and (old.head.legacy, old.head.key_id) == (1, KEY.id)
        assert [e.key_id for e in old.events] == ["", KEY.id]
        assert not check_trail(old, KEY, anchor=anchor).broken
        assert not check_trail(new, KEY, anchor=anchor).findings
        with pytest.raises(AuditKeyError):  # a sealed trail is not written without the key
            await keyless.append_audit(AuditEvent(run_id="run_old", kind="x", actor="a"))
    finally:
        await keyless.close()
        await keyed.close()


# The tool-call journal


def a_call(run_id: str, tool_use_id: str, **fields: object) -> ToolCallRecord:
    given = {"run_id": run_id, "tool_use_id": tool_use_id, "tool": "send_email",
             "digest": arguments_digest({"to": "ops"})} | fields  # fmt: skip
    return ToolCallRecord(**given)  # type: ignore[arg-type]


PROCESS = ProcessRecord(pid=4242, started=17, boot_id="boot", host="web-1", sandboxed=True)


async def test_the_calls_of_a_round_are_read_in_one_lookup(store: Store) -> None:
    first, second = a_call("run_a", "toolu_1"), a_call("run_a", "toolu_2", tool="lookup")
    for record in (first, second, a_call("run_b", "toolu_3")):
        await store.save_tool_call(record)
    found = await store.tool_calls("run_a", ["toolu_1", "toolu_2", "toolu_3", "toolu_none"])
    assert found == {"toolu_1": first, "toolu_2": second}  # another run's call is not seen
    assert await store.tool_calls("run_b", ["toolu_1"]) == {}
    assert await store.tool_calls("run_a", []) == {}


async def test_a_call_record_is_replaced_as_the_call_goes(store: Store) -> None:
    started = a_call("run_a", "toolu_1")
    await store.save_tool_call(started)
    running = started.with_process(PROCESS)
    await store.save_tool_call(running)
    assert (await store.tool_calls("run_a", ["toolu_1"]))["toolu_1"].processes == [PROCESS]
    done = running.ended(ToolCallState.FINISHED, output="sent", is_error=True, at=utcnow())
    await store.save_tool_call(done)
    assert await store.tool_calls("run_a", ["toolu_1"]) == {"toolu_1": done}
    again = done.again(digest=arguments_digest({"to": "dev"}), at=utcnow())
    await store.save_tool_call(again)
    [stored] = (await store.tool_calls("run_a", ["toolu_1"])).values()
    assert (stored.state, stored.attempts, stored.output, stored.processes) == (
        ToolCallState.STARTED, 2, None, [PROCESS])  # fmt: skip


async def test_a_call_result_rests_with_its_secrets_masked(store: Store) -> None:
    key = "sk-ant-api03-Rf8kLq2Zt5Wn9Xc3Vb7Nm1Pj4Hs6"
    record = a_call("run_a", "toolu_1").ended(
        ToolCallState.FINISHED, output=f"rotated to {key}", is_error=False, at=utcnow()
    )
    await store.save_tool_call(record)
    [stored] = (await store.tool_calls("run_a", ["toolu_1"])).values()
    assert stored.output == "rotated to sk-ant-[redacted]"


async def test_a_sqlite_file_from_before_the_journal_gains_it(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as db:  # a store as the version before the journal left it
        db.executescript(SCHEMA.split("CREATE TABLE IF NOT EXISTS tool_calls")[0])
    store = await open_store(f"sqlite:///{path}", audit_key=TEST_AUDIT_KEY)
    try:
        assert await store.tool_calls("run_a", ["toolu_1"]) == {}
        await store.save_tool_call(a_call("run_a", "toolu_1"))
        assert list(await store.tool_calls("run_a", ["toolu_1"])) == ["toolu_1"]
    finally:
        await store.close()


# Steps: a step's journal records and audit events land with the run's next save


async def test_a_step_lands_with_the_run_save_that_follows_it(store_url: str) -> None:
    writer = await open_store(store_url, audit_key=TEST_AUDIT_KEY)
    reader = await open_store(store_url, audit_key=TEST_AUDIT_KEY)
    try:
        run = await writer.create_run(a_run())
        finished = a_call(run.id, "toolu_1").ended(
            ToolCallState.FINISHED, output="sent", is_error=False, at=utcnow()
        )
        async with writer.step(run.id):
            await writer.save_tool_call(finished)
            await writer.append_audit(AuditEvent(run_id=run.id, kind="tool_result", actor="a"))
            # Another run's writes, and another task's (even one the step's task started),
            # are not held.
            await writer.append_audit(AuditEvent(run_id="run_other", kind="x", actor="a"))
            await asyncio.create_task(
                writer.append_audit(AuditEvent(run_id=run.id, kind="approval_decided", actor="b"))
            )
            assert await reader.tool_calls(run.id, ["toolu_1"]) == {}
            assert [e.kind for e in await reader.list_audit(run.id)] == ["approval_decided"]
            assert [e.kind for e in await reader.list_audit("run_other")] == ["x"]
            saved = await writer.save_run(run.model_copy(update={"status": RunStatus.PLANNING}),
                                          checkpoint=b"turn-1")  # fmt: skip
            assert await reader.tool_calls(run.id, ["toolu_1"]) == {"toolu_1": finished}
            assert [e.kind for e in await reader.list_audit(run.id)] == [
                "approval_decided", "tool_result"]  # fmt: skip
            assert await reader.load_checkpoint(run.id) == b"turn-1"
            assert (await reader.get_run(run.id)).version == saved.version
            # After the save the step holds again, until its end.
            await writer.append_audit(AuditEvent(run_id=run.id, kind="subtask_finished", actor="a"))
            assert len(await reader.list_audit(run.id)) == 2
        trail = await reader.read_audit(run.id)
        assert [e.kind for e in trail.events][-1] == "subtask_finished"
        assert not check_trail(trail, KEY).broken
    finally:
        await writer.close()
        await reader.close()


async def test_a_step_whose_save_loses_its_race_still_keeps_what_happened(store: Store) -> None:
    run = await store.create_run(a_run())
    await store.save_run(run.model_copy(update={"status": RunStatus.PLANNING}))
    with pytest.raises(VersionConflict):
        async with store.step(run.id):
            await store.save_tool_call(a_call(run.id, "toolu_1"))
            await store.append_audit(AuditEvent(run_id=run.id, kind="tool_call", actor="a"))
            await store.save_run(run.model_copy(update={"status": RunStatus.FAILED}),
                                 checkpoint=b"stale")  # fmt: skip
    # The call started and was audited: that stands, though the run was saved elsewhere.
    assert list(await store.tool_calls(run.id, ["toolu_1"])) == ["toolu_1"]
    assert [e.kind for e in await store.list_audit(run.id)] == ["tool_call"]
    assert (await store.get_run(run.id)).status is RunStatus.PLANNING
    assert await store.load_checkpoint(run.id) is None


async def test_a_step_commits_what_it_holds_when_it_ends_by_an_error(store: Store) -> None:
    with pytest.raises(RuntimeError):
        async with store.step("run_a") as step:
            await store.save_tool_call(a_call("run_a", "toolu_1"))
            await step.commit()
            assert list(await store.tool_calls("run_a", ["toolu_1"])) == ["toolu_1"]
            await store.append_audit(AuditEvent(run_id="run_a", kind="tool_result", actor="a"))
            async with step.outside():  # what is held first, then written at once in here
                await store.append_audit(AuditEvent(run_id="run_a", kind="approval", actor="a"))
                assert len(await store.list_audit("run_a")) == 2
            await store.append_audit(AuditEvent(run_id="run_a", kind="refused", actor="a"))
            assert len(await store.list_audit("run_a")) == 2
            raise RuntimeError("the step failed")
    kinds = [e.kind for e in await store.list_audit("run_a")]
    assert kinds == ["tool_result", "approval", "refused"]


async def test_a_step_uses_an_approval_in_the_same_commit_as_the_call_it_starts(
    store_url: str,
) -> None:
    writer = await open_store(store_url, audit_key=TEST_AUDIT_KEY)
    reader = await open_store(store_url, audit_key=TEST_AUDIT_KEY)
    try:
        approval = await writer.create_approval(a_tool_approval("run_a"))
        await writer.record_decision(approval.id, approve("U0ALICE"))
        async with writer.step("run_a") as step:
            step.use(ApprovalUse(approval_id=approval.id, digest=approval.digest, at=utcnow()))
            await writer.save_tool_call(a_call("run_a", "toolu_1"))
            await writer.append_audit(AuditEvent(run_id="run_a", kind="tool_call", actor="a"))
            # Held like the rest: nothing is used up before the call is recorded started.
            assert (await reader.get_approval(approval.id)).consumed_at is None
            await step.commit()
            assert (await reader.get_approval(approval.id)).consumed_at is not None
            assert list(await reader.tool_calls("run_a", ["toolu_1"])) == ["toolu_1"]
            assert [e.kind for e in await reader.list_audit("run_a")] == ["tool_call"]
    finally:
        await writer.close()
        await reader.close()


async def test_a_step_whose_approval_was_used_elsewhere_starts_nothing(store_url: str) -> None:
    """Two processes resuming the same decided call: the one whose use of the approval
    loses records no start of the call and no tool_call event, and is told so."""
    here = await open_store(store_url, audit_key=TEST_AUDIT_KEY)
    there = await open_store(store_url, audit_key=TEST_AUDIT_KEY)
    try:
        approval = await here.create_approval(a_tool_approval("run_a"))
        await here.record_decision(approval.id, approve("U0ALICE"))
        with pytest.raises(ApprovalNotUsable, match="used already"):
            async with here.step("run_a") as step:
                step.use(ApprovalUse(approval_id=approval.id, digest=approval.digest,
                                     at=utcnow()))  # fmt: skip
                await here.save_tool_call(a_call("run_a", "toolu_1"))
                await here.append_audit(AuditEvent(run_id="run_a", kind="tool_call", actor="a"))
                await there.consume_approval(approval.id, digest=approval.digest, at=utcnow())
                await step.commit()
        assert await there.tool_calls("run_a", ["toolu_1"]) == {}
        assert await there.list_audit("run_a") == []
    finally:
        await here.close()
        await there.close()


async def test_a_step_cannot_use_an_approval_for_other_arguments(store: Store) -> None:
    approval = await store.create_approval(a_tool_approval("run_a", cmd="ls"))
    await store.record_decision(approval.id, approve("U0ALICE"))
    other = a_tool_approval("run_a", cmd="rm -rf /")
    run = await store.create_run(a_run())
    with pytest.raises(ApprovalNotUsable, match="different arguments"):
        async with store.step(run.id) as step:
            step.use(ApprovalUse(approval_id=approval.id, digest=other.digest, at=utcnow()))
            await store.save_tool_call(a_call(run.id, "toolu_1"))
            await store.save_run(run.model_copy(update={"status": RunStatus.PLANNING}))
    assert (await store.get_approval(approval.id)).consumed_at is None
    assert await store.tool_calls(run.id, ["toolu_1"]) == {}
    assert (await store.get_run(run.id)).status is RunStatus.QUEUED


async def test_an_event_of_a_save_lands_with_it_only_if_it_lands(store: Store) -> None:
    run = await store.create_run(a_run())
    claimed = AuditEvent(run_id=run.id, kind="run_claimed", actor="airlock")
    async with store.step(run.id) as step:
        step.record_with_save(claimed)
        await store.append_audit(AuditEvent(run_id=run.id, kind="before", actor="a"))
        with pytest.raises(RuntimeError, match="must save the run"):
            await step.commit()
        saved = await store.save_run(run.model_copy(update={"status": RunStatus.PLANNING}))
    assert [e.kind for e in await store.list_audit(run.id)] == ["before", "run_claimed"]
    # A save that loses its race: its event is not recorded, what happened before it is.
    with pytest.raises(VersionConflict):
        async with store.step(run.id) as step:
            step.record_with_save(claimed)
            await store.append_audit(AuditEvent(run_id=run.id, kind="tool_call", actor="a"))
            await store.save_run(run.model_copy(update={"status": RunStatus.FAILED}))
    assert [e.kind for e in await store.list_audit(run.id)] == [
        "before", "run_claimed", "tool_call"]  # fmt: skip
    # A step that ends without its save records nothing of it.
    with pytest.raises(RuntimeError, match="no save"):
        async with store.step(run.id) as step:
            step.record_with_save(claimed)
            raise RuntimeError("no save")
    assert len(await store.list_audit(run.id)) == 3
    assert (await store.get_run(run.id)).version == saved.version
    with pytest.raises(ValueError, match="not run_other"):
        async with store.step(run.id) as step:
            step.record_with_save(AuditEvent(run_id="run_other", kind="x", actor="a"))


async def test_a_fact_held_by_a_step_lands_with_the_next_commit_whatever_it_is(
    store: Store,
) -> None:
    run = await store.create_run(a_run())
    asked = Fact(scope="approval-asked:apr_1", key="at", value="then", ttl_seconds=60)
    async with store.step(run.id) as step:
        step.set_fact(asked)
        assert await store.get_facts(asked.scope) == {}  # held, not yet written
        run = await store.save_run(moved(run, RunStatus.PLANNING))
    assert await store.get_facts(asked.scope) == {"at": "then"}
    # It happened: a save that loses its race does not take it back, nor does a step's end.
    stale = moved(run, RunStatus.RUNNING, version=run.version - 1)
    with pytest.raises(VersionConflict):
        async with store.step(run.id) as step:
            step.set_fact(Fact(scope="approval-asked:apr_2", key="at", value="x",
                               ttl_seconds=60))  # fmt: skip
            await store.save_run(stale)
    assert await store.get_facts("approval-asked:apr_2") == {"at": "x"}
    async with store.step(run.id) as step:
        step.set_fact(Fact(scope="approval-asked:apr_3", key="at", value="y", ttl_seconds=60))
    assert await store.get_facts("approval-asked:apr_3") == {"at": "y"}


async def test_a_lease_let_go_with_a_save_goes_only_if_the_save_lands(store: Store) -> None:
    run = await store.create_run(a_run())
    lease = await store.take_lease(run.id, holder="serve-1", ttl_seconds=60)
    assert lease is not None
    # The save loses its compare-and-set (another process saved the run): the lease stays.
    await store.save_run(run.model_copy(update={"status": RunStatus.PLANNING}))
    with pytest.raises(VersionConflict):
        async with store.step(run.id) as step:
            step.release_with_save(lease)
            await store.save_run(moved(run, RunStatus.FAILED))
    assert await store.holds_lease(lease)
    # A step that ends without its save lets go of nothing, and cannot commit it alone.
    with pytest.raises(RuntimeError, match="must save the run"):
        async with store.step(run.id) as step:
            step.release_with_save(lease)
            await step.commit()
    assert await store.holds_lease(lease)
    # The save lands: the lease is gone in the same write, and the run is free to take.
    current = await store.get_run(run.id)
    async with store.step(run.id) as step:
        step.release_with_save(lease)
        await store.save_run(moved(current, RunStatus.FAILED))
    assert (await store.get_run(run.id)).status is RunStatus.FAILED
    assert not await store.holds_lease(lease) and await store.lease_holder(run.id) is None
    with pytest.raises(ValueError, match="not run_other"):
        async with store.step(run.id) as step:
            step.release_with_save(Lease(run_id="run_other", token="serve-1#1"))


async def test_a_save_never_lets_go_of_a_lease_taken_again_by_another(store: Store) -> None:
    run = await store.create_run(a_run())
    lapsing = await store.take_lease(run.id, holder="serve-1", ttl_seconds=0.2)
    assert lapsing is not None

    async def lapsed() -> bool:
        return await store.lease_holder(run.id) is None

    await eventually(lapsed)
    taken = await store.take_lease(run.id, holder="serve-2", ttl_seconds=60)
    assert taken is not None
    async with store.step(run.id) as step:
        step.release_with_save(lapsing)
        await store.save_run(run.model_copy(update={"status": RunStatus.PLANNING}))
    assert await store.holds_lease(taken)
    assert (await store.get_run(run.id)).status is RunStatus.PLANNING


async def test_a_write_that_fails_among_concurrent_ones_fails_alone(store: Store) -> None:
    # On SQLite concurrent writes share a commit, each in a savepoint of its own.
    run = await store.create_run(a_run())
    await store.save_run(run.model_copy(update={"status": RunStatus.PLANNING}))
    calls = [store.save_tool_call(a_call(run.id, f"toolu_{i}")) for i in range(10)]
    stale = store.save_run(run.model_copy(update={"status": RunStatus.FAILED}), checkpoint=b"x")
    events = [
        store.append_audit(AuditEvent(run_id=run.id, kind="tool_call", actor=f"{i}"))
        for i in range(5)
    ]
    results = await asyncio.gather(*calls, stale, *events, return_exceptions=True)
    assert isinstance(results[10], VersionConflict)
    assert [r for r in results if isinstance(r, BaseException)] == [results[10]]
    assert len(await store.tool_calls(run.id, [f"toolu_{i}" for i in range(10)])) == 10
    assert [e.seq for e in await store.list_audit(run.id)] == [1, 2, 3, 4, 5]
    assert (await store.get_run(run.id)).status is RunStatus.PLANNING
    assert await store.load_checkpoint(run.id) is None
