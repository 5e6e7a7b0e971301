"""The Store protocol: all durable and shared state of airlock.

Two backends implement it, :class:`~agent_core.store.sqlite.SqliteStore`
(embedded default) and :class:`~agent_core.store.redis.RedisStore` (shared by
many processes), and both pass ``tests/contract/test_store.py``. The pieces
both need (signal fan-out, run saves, approval consumption) live here so
the two cannot drift apart.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import BaseModel, TypeAdapter, ValidationError

from agent_core.audit.chain import AuditAnchor, AuditTrail
from agent_core.errors import (
    ApprovalNotUsable,
    IllegalTransition,
    VersionConflict,
)
from agent_core.memory.records import Memory
from agent_core.models import (
    AlreadyDecided,
    Approval,
    ApprovalStatus,
    AuditEvent,
    Concluded,
    Decision,
    DecisionOutcome,
    HaltState,
    MessageLocation,
    MessagePurpose,
    MessageSubject,
    Run,
    RunStatus,
    Signal,
    is_legal_transition,
)
from agent_core.secrets import redact, redact_value_or_same
from agent_core.store._clean import CleanValues
from agent_core.store.steps import Steps
from agent_core.toolcalls import ToolCallRecord

if TYPE_CHECKING:
    from agent_core.store.run_queue import RedisRunQueue

__all__ = [
    "LEGACY_MESSAGE_FACTS",
    "SIGNAL_ADAPTER",
    "ApprovalRecords",
    "AuditRecords",
    "Lease",
    "Leases",
    "MemoryRecords",
    "MessageLocations",
    "RunRecords",
    "SharedValues",
    "SignalHub",
    "Signals",
    "Store",
    "Subscription",
    "ToolCallJournal",
    "checked_save",
    "closed",
    "consumed",
    "dump",
    "escalated",
    "legacy_location",
    "masked_checkpoint",
    "masked_run",
    "masked_save",
    "masked_tool_call",
    "readable_locations",
    "touched",
]

logger = logging.getLogger(__name__)

SIGNAL_ADAPTER: TypeAdapter[Signal] = TypeAdapter(Signal)
"""Parses and serialises the :data:`~agent_core.models.Signal` union."""


@dataclass(frozen=True)
class Lease:
    """A process's hold on a run, which expires unless renewed (see the Store's leases)."""

    run_id: str
    token: str
    """``<holder>#<n>``: unique, so a lease taken again is never mistaken for an old one."""
    entry: str = ""
    """The queue entry that brought the run (a Redis worker's), or "" for none."""

    @property
    def owner(self) -> str:
        """The process holding it."""
        return self.token.rpartition("#")[0]


def dump(record: BaseModel) -> str:
    """A record as compact JSON, ``None`` fields left out."""
    return record.model_dump_json(exclude_none=True)


# Secrets at rest. A run's record and its checkpoint are masked before they are written, in
# every backend: the goal, plan, results and error are shown to people (App Home, status,
# the CLI), and the checkpoint is a copy of the conversation that outlives the run's process.
# Masked value by value, the checkpoint stays a valid conversation; approvals are not masked
# here (an approval keeps the exact arguments it lets run and its digest binds).


def masked_run(run: Run, *, clean: CleanValues | None = None) -> Run:
    """``run`` as it is stored: every string in it redacted (the same run when none changed).

    ``clean``: the store's last clean versions, to compare with instead of walking again."""
    plain = run.model_dump(mode="json")
    masked = _masked_value(plain, clean, ("run", run.id))
    return run if masked is plain else Run.model_validate(masked)


def masked_checkpoint(data: bytes, *, clean: CleanValues | None = None, run_id: str = "") -> bytes:
    """A checkpoint as it is stored: every string in its JSON redacted.

    ``clean``: the store's last clean versions (by ``run_id``), as for :func:`masked_run`."""
    try:
        plain = json.loads(data)
    except ValueError:  # not JSON: masked as text, every other byte kept as it was
        text = data.decode(errors="surrogateescape")
        masked_text = redact(text)
        return data if masked_text == text else masked_text.encode(errors="surrogateescape")
    masked = _masked_value(plain, clean, ("checkpoint", run_id), size=len(data))
    if masked is plain:
        return data
    _keep_last_round(plain, masked)
    return json.dumps(masked, ensure_ascii=False, separators=(",", ":")).encode()


def masked_save(
    run: Run, checkpoint: bytes | None, *, clean: CleanValues
) -> tuple[Run, bytes | None]:
    """A run and its checkpoint as a save stores them (:func:`masked_run`,
    :func:`masked_checkpoint`), compared with the store's last clean versions."""
    if checkpoint is not None:
        checkpoint = masked_checkpoint(checkpoint, clean=clean, run_id=run.id)
    return masked_run(run, clean=clean), checkpoint


def _masked_value(
    plain: Any, clean: CleanValues | None, key: tuple[str, str], *, size: int = 0
) -> Any:
    if clean is None:
        return redact_value_or_same(plain)
    return clean.masked(key, plain, size=size)


def _keep_last_round(plain: Any, masked: Any) -> None:
    """Put back the exact arguments of the tool calls still unanswered in each conversation.

    Those calls may still run after a resume, and their risk and approval are worked out
    from their arguments: masked, a call with a secret in it would come back as a different,
    harmless-looking call (LOW, run without asking, a rejection bypassed). Answered calls are
    history and stay masked.
    """
    conversations = plain.get("conversations") if isinstance(plain, dict) else None
    if not isinstance(conversations, dict):
        return
    for key, messages in conversations.items():
        turns = [i for i, m in enumerate(messages or []) if _has_blocks(m, "assistant")]
        if not turns:
            continue
        last = turns[-1]
        after: Any = messages[last + 1] if last + 1 < len(messages) else {}
        answered = {
            b.get("tool_use_id") for b in (after["content"] if _has_blocks(after, "user") else [])
            if isinstance(b, dict) and b.get("type") == "tool_result"
        }  # fmt: skip
        shown = masked["conversations"][key][last]["content"]
        for block, copy in zip(messages[last]["content"], shown, strict=True):
            if _is_call(block) and block.get("id") not in answered:
                copy["input"] = block.get("input")


def _is_call(block: Any) -> bool:
    return isinstance(block, dict) and block.get("type") == "tool_use"


def _has_blocks(message: Any, role: str) -> bool:
    return (
        isinstance(message, dict)
        and message.get("role") == role
        and isinstance(message.get("content"), list)
    )


def masked_tool_call(record: ToolCallRecord) -> ToolCallRecord:
    """A journal record as it is stored: its output redacted (the same record when clean)."""
    if record.output is None:
        return record
    output = redact(record.output)
    return record if output == record.output else record.model_copy(update={"output": output})


class RunRecords(Protocol):
    """Runs and their checkpoints."""

    async def create_run(self, run: Run) -> Run:
        """Persist a new run; :class:`AlreadyExists` if the id is taken."""

    async def get_run(self, run_id: str) -> Run:
        """The run; :class:`NotFound` if there is none."""

    async def list_runs(
        self,
        *,
        status: RunStatus | None = None,
        requester: str | None = None,
        newest_first: bool = False,
        limit: int = 100,
    ) -> list[Run]:
        """Up to ``limit`` runs by creation, oldest first unless ``newest_first``; only those
        in ``status`` and of ``requester`` when given."""

    async def save_run(self, run: Run, *, checkpoint: bytes | None = None) -> Run:
        """Save ``run`` if nobody saved it since it was read.

        With ``checkpoint``, the run's checkpoint blob is replaced in the same atomic
        write, so the record and the checkpoint never disagree.
        Raises :class:`VersionConflict` when the stored version differs and
        :class:`IllegalTransition` when the status change is not allowed.
        Returns the run as stored (version bumped, ``updated_at`` set).
        """

    async def load_checkpoint(self, run_id: str) -> bytes | None:
        """The run's last checkpoint, if any."""


class ApprovalRecords(Protocol):
    """Approvals and the decisions on them, each change one atomic step."""

    async def create_approval(
        self, approval: Approval, *, recording: AuditEvent | None = None
    ) -> Approval:
        """Persist a new approval request; :class:`AlreadyExists` if the id is taken.
        ``recording``, the request's audit line, lands with it, and only if it is created."""

    async def get_approval(self, approval_id: str) -> Approval:
        """The approval; :class:`NotFound` if there is none."""

    async def list_pending_approvals(self, *, run_id: str | None = None) -> list[Approval]:
        """Pending approvals, oldest first."""

    async def record_decision(self, approval_id: str, decision: Decision) -> DecisionOutcome:
        """Apply ``decision`` atomically; the first conclusive decision wins."""

    async def close_approval(
        self, approval_id: str, *, status: ApprovalStatus, by: str, at: datetime
    ) -> DecisionOutcome:
        """Settle a pending approval as expired or cancelled (no human decided)."""

    async def escalate_approval(
        self, approval_id: str, *, hop: int, approvers: list[str], deadline: datetime | None
    ) -> Approval | None:
        """Hand a pending approval to the next approvers (hop ``hop``) with a new deadline.

        None when it is no longer pending or another process escalated it first.
        """

    async def consume_approval(self, approval_id: str, *, digest: str, at: datetime) -> Approval:
        """Use an approval once, for exactly the call it approved.

        :class:`ApprovalNotUsable` if it is not approved, was consumed already,
        or ``digest`` differs from what was approved.
        """


class Signals(Protocol):
    """Signals between the processes that share the store."""

    async def publish(self, signal: Signal) -> None:
        """Deliver ``signal`` to every subscriber in every process sharing the store."""

    def subscribe(self) -> AbstractAsyncContextManager[Subscription]:
        """Receive signals published from now on, until the context exits."""


class Leases(Protocol):
    """Which process works on a run now, in every process sharing the store."""

    def run_queue(self) -> RedisRunQueue | None:
        """The queue workers of a Redis deployment share; None where runs work in the
        process that submits them (SQLite)."""

    async def take_lease(self, run_id: str, *, holder: str, ttl_seconds: float) -> Lease | None:
        """The run's lease for ``holder``, for ``ttl_seconds``; None while another holds it."""

    async def renew_lease(self, lease: Lease, *, ttl_seconds: float) -> bool:
        """Extend ``lease`` by ``ttl_seconds`` from now; False if it is no longer held."""

    async def holds_lease(self, lease: Lease) -> bool:
        """Whether ``lease`` is still held (not released, not lapsed, not taken again)."""

    async def lease_holder(self, run_id: str) -> tuple[str, float] | None:
        """Who holds the run's lease and for how many more seconds; None if nobody does."""

    async def release_lease(self, lease: Lease) -> bool:
        """Let go of ``lease``; False, and nothing written, if it was no longer held."""


class SharedValues(Protocol):
    """Small shared values: idempotency keys, rate limits, spend, facts, the halt."""

    async def claim_idempotency_key(self, key: str, *, ttl_seconds: float) -> bool:
        """True for the first claim of ``key`` within ``ttl_seconds``, False after."""

    async def hit_rate_limit(self, key: str, *, window_seconds: float) -> int:
        """Count one hit on ``key``; returns the hits in the current fixed window."""

    async def add_spend(
        self, keys: Sequence[str], usd: float, *, ttl_seconds: float
    ) -> list[float]:
        """Add ``usd`` to the running total of each of ``keys`` at once; the new totals.

        A total is kept ``ttl_seconds`` from its first addition, then starts again from 0.
        """

    async def get_spend(self, key: str) -> float:
        """The running total of ``key``; 0.0 when there is none (never added, or expired)."""

    async def set_fact(self, scope: str, key: str, value: str, *, ttl_seconds: float) -> None:
        """Remember a session fact for ``ttl_seconds``."""

    async def get_facts(self, scope: str) -> dict[str, str]:
        """The unexpired facts of ``scope``."""

    async def set_halt(self, state: HaltState) -> None:
        """Set or lift the global halt."""

    async def get_halt(self) -> HaltState | None:
        """The global halt, or None if it was never set."""


class AuditRecords(Protocol):
    """The sealed audit trails (sealing and heads: :mod:`agent_core.audit.chain`)."""

    async def append_audit(self, event: AuditEvent) -> AuditEvent:
        """Append to the run's sealed chain; returns the event with seq and seals.

        The trail's head is read and rewritten in the same atomic write as the event (a
        trail's first append also counts it in the anchor). Appending an event that is the
        trail's newest already returns it unchanged. :class:`AuditTampered` when the head
        or anchor fails its seal, :class:`AuditKeyError` when it is sealed with a key this
        store does not hold; either way nothing is written.
        """

    async def list_audit(self, run_id: str) -> list[AuditEvent]:
        """The run's audit events in order."""

    async def read_audit(self, run_id: str) -> AuditTrail:
        """The run's head and events as stored, read in one atomic read."""

    async def audit_anchor(self) -> AuditAnchor | None:
        """The count of trails ever started, sealed; None before the first.

        :class:`AuditTampered` when what is stored is not an anchor.
        """

    async def audit_runs(self) -> list[str]:
        """The ids of every trail with events or a head (runs, and ``_global``), sorted."""

    async def delete_audit(self, run_id: str) -> int:
        """Purge a whole trail (retention); how many events it held.

        Its head stays, sealed as a tombstone that says how many events were purged and
        when, so a purge is told from a deletion.
        """


class ToolCallJournal(Protocol):
    """The tool-call journal (:mod:`agent_core.toolcalls`): what crash recovery decides from."""

    async def save_tool_call(self, record: ToolCallRecord) -> None:
        """Write the journal record of one call, replacing the one with its (run, tool_use) id.

        Secrets in its output are masked first, as in the run's checkpoint.
        """

    async def tool_calls(
        self, run_id: str, tool_use_ids: Sequence[str]
    ) -> dict[str, ToolCallRecord]:
        """The journal records of these calls of ``run_id``, by tool_use id, in one read;
        calls with no record are left out."""


class MemoryRecords(Protocol):
    """Long-term memory records; their vectors live in per-scope indexes beside them."""

    async def add_memory(self, memory: Memory) -> Memory:
        """Persist a new memory with the next sequence number (its vector id).

        :class:`AlreadyExists` if the id is taken. Sequence numbers only grow, so an
        index that holds every memory up to ``seq`` catches up by reading those after it.
        """

    async def get_memory(self, memory_id: str) -> Memory:
        """The memory; :class:`NotFound` if there is none."""

    async def delete_memory(self, memory_id: str) -> Memory | None:
        """Forget a memory; the deleted record, or None if there was none."""

    async def memories_by_seq(self, scope: str, seqs: Sequence[int]) -> list[Memory]:
        """The memories of ``scope`` with these sequence numbers that still exist, in order."""

    async def list_memories(
        self, scope: str | None = None, *, after_seq: int = 0, limit: int = 1000
    ) -> list[Memory]:
        """Memories (of ``scope``, or all) with seq above ``after_seq``, by seq."""

    async def touch_memories(self, memory_ids: Sequence[str], *, at: datetime) -> None:
        """Count one access of each memory at ``at`` (missing ones are ignored)."""

    async def memory_counts(self) -> dict[str, int]:
        """How many memories each scope holds."""


class MessageLocations(Protocol):
    """Where the messages about runs and approvals are, so any process can edit them later."""

    async def remember_message(self, location: MessageLocation, *, ttl_seconds: float) -> None:
        """Keep ``location`` for ``ttl_seconds``; the same message (channel and ts) of the
        same subject remembered again replaces it."""

    async def messages_of(self, subject: MessageSubject, subject_id: str) -> list[MessageLocation]:
        """The unexpired locations of the messages about ``subject_id``, oldest message first.

        A stored value that is not a valid location of this subject is left out (and logged),
        never returned.
        """


class Store(
    RunRecords,
    ApprovalRecords,
    Signals,
    Leases,
    SharedValues,
    AuditRecords,
    ToolCallJournal,
    MemoryRecords,
    Steps,
    MessageLocations,
    Protocol,
):
    """Durable, shared state. Every method is safe to call from many processes at once."""

    async def ping(self) -> None:
        """Raise if the backend cannot be reached."""

    async def close(self) -> None:
        """Stop background work and release connections."""


def readable_locations(
    bodies: Sequence[str | bytes], subject: MessageSubject, subject_id: str
) -> list[MessageLocation]:
    """The stored ``bodies`` that are valid locations of ``subject_id``, oldest message first."""
    found = set()
    for body in bodies:
        try:
            location = MessageLocation.model_validate_json(body)
        except ValidationError:
            location = None
        if location is None or (location.subject, location.subject_id) != (subject, subject_id):
            logger.warning("stored message location refused",
                           extra={"subject": subject.value, "subject_id": subject_id})  # fmt: skip
            continue
        found.add(location)
    return sorted(found, key=lambda at: (float(at.ts), at.channel))


LEGACY_MESSAGE_FACTS = {
    MessageSubject.APPROVAL: "slack:approval-message:",
    MessageSubject.RUN: "slack:status-message:",
}
"""Session-fact scopes (+ the subject's id) that held message locations, as ``"channel ts"``,
before they had a table of their own: read by the upgrade (see docs/operations.md)."""


def legacy_location(
    subject: MessageSubject, subject_id: str, name: str, value: str
) -> MessageLocation | None:
    """The location a legacy fact named ``name`` held, or None if it holds none valid."""
    if subject is MessageSubject.RUN:
        purpose = MessagePurpose.RUN_STATUS if name == "at" else None
    elif name == "at":
        purpose = MessagePurpose.APPROVAL_REQUEST
    elif name == "also":
        purpose = MessagePurpose.APPROVAL_COPY
    else:
        purpose = MessagePurpose.APPROVAL_DM if name.startswith("dm:") else None
    channel, _, ts = value.partition(" ")
    if purpose is None:
        return None
    try:
        return MessageLocation(
            subject=subject, subject_id=subject_id, purpose=purpose, channel=channel, ts=ts
        )
    except ValidationError:
        return None


def touched(memory: Memory, at: datetime) -> Memory:
    """``memory`` after one more access at ``at``."""
    return memory.model_copy(update={"access_count": memory.access_count + 1, "last_accessed": at})


def checked_save(
    new: Run, *, version: int, status: RunStatus, created_at: datetime, now: datetime
) -> Run:
    """What to write over the stored run (``version``, ``status``, ``created_at``).

    Raises :class:`VersionConflict` if someone saved since ``new`` was read and
    :class:`IllegalTransition` if the status change is not allowed.
    """
    if new.version != version:
        raise VersionConflict("run", new.id, new.version, version)
    if new.status is not status and not is_legal_transition(status, new.status):
        raise IllegalTransition(new.id, status, new.status)
    return new.model_copy(
        update={"version": version + 1, "updated_at": now, "created_at": created_at}
    )


def closed(approval: Approval, *, status: ApprovalStatus, by: str, at: datetime) -> DecisionOutcome:
    """The outcome of settling ``approval`` as expired or cancelled."""
    if status not in (ApprovalStatus.EXPIRED, ApprovalStatus.CANCELLED):
        raise ValueError(f"an approval is closed as expired or cancelled, not {status}")
    if approval.status is not ApprovalStatus.PENDING:
        return AlreadyDecided(approval=approval)
    settled = approval.model_copy(update={"status": status, "decided_by": by, "decided_at": at})
    return Concluded(approval=settled)


def escalated(
    approval: Approval, *, hop: int, approvers: list[str], deadline: datetime | None
) -> Approval | None:
    """``approval`` at escalation hop ``hop``, or None if it is settled or already there."""
    if approval.status is not ApprovalStatus.PENDING or approval.hop != hop - 1:
        return None
    return approval.model_copy(update={"hop": hop, "approvers": approvers, "deadline": deadline})


def consumed(approval: Approval, *, digest: str, at: datetime) -> Approval:
    """``approval`` marked used, if it may release the call with ``digest``."""
    if approval.status is not ApprovalStatus.APPROVED:
        raise ApprovalNotUsable(approval.id, f"it is {approval.status}, not approved")
    if approval.consumed_at is not None:
        raise ApprovalNotUsable(approval.id, "it was used already")
    if approval.digest != digest:
        raise ApprovalNotUsable(approval.id, "it approved different arguments")
    return approval.model_copy(update={"consumed_at": at})


@dataclass(kw_only=True, eq=False)
class Subscription:
    """A stream of signals for one subscriber; iterate it or call :meth:`get`."""

    queue: asyncio.Queue[Signal] = field(default_factory=asyncio.Queue)
    """Signals delivered to this subscriber and not yet read."""

    async def get(self) -> Signal:
        """The next signal, waiting for one if needed."""
        return await self.queue.get()

    def __aiter__(self) -> AsyncIterator[Signal]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Signal]:
        while True:
            yield await self.queue.get()


@dataclass(kw_only=True, eq=False)
class SignalHub:
    """In-process fan-out of signals to the subscriptions of one Store.

    A backend delivers its own publications here at once, and those of other
    processes when its transport (Redis pub/sub, a polled table) brings them;
    ``origin`` lets it tell the two apart.
    """

    origin: str = field(default_factory=lambda: uuid.uuid4().hex)
    """Identifies this Store instance in what it publishes."""

    subscribers: set[Subscription] = field(default_factory=set)
    """Open subscriptions."""

    @asynccontextmanager
    async def subscription(self) -> AsyncIterator[Subscription]:
        """A subscription open for the context's duration."""
        subscription = Subscription()
        self.subscribers.add(subscription)
        try:
            yield subscription
        finally:
            self.subscribers.discard(subscription)

    def deliver(self, signal: Signal) -> None:
        """Hand ``signal`` to every open subscription."""
        for subscription in self.subscribers:
            subscription.queue.put_nowait(signal)

    def envelope(self, signal: Signal) -> str:
        """The wire form of a signal published from here."""
        return f'{{"origin":"{self.origin}","signal":{dump(signal)}}}'

    def open_envelope(self, text: str | bytes) -> Signal | None:
        """The signal in an envelope from another process; None for our own."""
        envelope = _ENVELOPE.validate_json(text)
        if envelope.origin == self.origin:
            return None
        return envelope.signal


class _Envelope(BaseModel):
    origin: str
    signal: Signal


_ENVELOPE = TypeAdapter(_Envelope)
