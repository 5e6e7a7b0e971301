"""What the agent core asks of memory, in one place: context for prompts, learning, precedent.

Memory helps; it never decides and never fails a run. Every call here that could fail
(the embedding model, the fast model, the index) logs and carries on without memory.
Recalled memories go to the model fenced as untrusted data: they may hold text a tool
once returned, and must not be able to pose as instructions.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from agent_core.clock import Clock, SystemClock
from agent_core.config import Settings
from agent_core.llm import LLM
from agent_core.memory.embedder import Embedder
from agent_core.memory.facts import FactExtractor, SessionFacts
from agent_core.memory.longterm import LongTermMemory, Recalled, RecallWeights
from agent_core.memory.notes import describe_age
from agent_core.memory.records import MemoryType, readable_scopes, scope_of
from agent_core.models import (
    Approval,
    ApprovalStatus,
    DecisionKind,
    Precedent,
    Run,
    RunStatus,
    ToolCallSubject,
    canonical_json,
)
from agent_core.secrets import redact
from agent_core.store import Store

__all__ = [
    "AgentMemory",
    "MemoryLimits",
    "approval_memory_id",
    "call_text",
]

logger = logging.getLogger(__name__)

APPROVAL_KIND = "approval"
"""``data["kind"]`` of the memory of an approval decision."""


@dataclass(kw_only=True, frozen=True)
class MemoryLimits:
    """How much memory the agent uses (settings)."""

    max_recalled: int = 5
    """Long-term memories put into a prompt."""
    precedents: int = 3
    """Similar past decisions shown on an approval request."""
    precedent_min_similarity: float = 0.6
    extract: bool = True
    """Ask the fast model for facts and lessons after each step."""
    episodic_ttl_days: float | None = 90.0
    """How long run outcomes are remembered; None: for good."""


@dataclass(kw_only=True)
class AgentMemory:
    """Session facts and long-term memory, as the orchestrator and the gate use them."""

    longterm: LongTermMemory
    facts: SessionFacts
    extractor: FactExtractor = field(default_factory=FactExtractor)
    limits: MemoryLimits = field(default_factory=MemoryLimits)
    clock: Clock = field(default_factory=SystemClock)

    @classmethod
    def from_settings(
        cls, settings: Settings, store: Store, *, embedder: Embedder | None = None
    ) -> AgentMemory:
        """Memory as the settings describe it, with its index files in the data folder."""
        longterm = LongTermMemory(
            store=store,
            embedder=embedder or Embedder(batch_threads=settings.memory_embed_threads),
            folder=Path(settings.data_dir) / "memory",
            weights=RecallWeights(
                similarity=settings.memory_weight_similarity,
                importance=settings.memory_weight_importance,
                recency=settings.memory_weight_recency,
                recency_half_life_days=settings.memory_recency_half_life_days,
                min_similarity=settings.memory_min_similarity,
            ),
            dedup_threshold=settings.memory_dedup_threshold,
            ann_threshold=settings.memory_ann_threshold,
        )
        return cls(
            longterm=longterm,
            facts=SessionFacts(store=store, ttl_seconds=settings.fact_ttl_seconds),
            limits=MemoryLimits(
                max_recalled=settings.memory_max_recalled,
                precedents=settings.memory_precedents,
                extract=settings.memory_extract,
                episodic_ttl_days=settings.memory_episodic_ttl_days or None,
            ),
        )

    async def context(self, run: Run, query: str) -> list[str]:
        """Notes for a prompt: the thread's facts, then memories relevant to ``query``."""
        notes: list[str] = []
        try:
            facts = await self.facts.of(run)
            if facts:
                notes.append(
                    "Facts of this conversation: "
                    + redact("; ".join(f"{k}: {v}" for k, v in facts.items()))
                )
            found = await self.longterm.recall(
                scopes=readable_scopes(scope_of(run)), query=query, k=self.limits.max_recalled
            )
        except Exception:  # memory is a help: the run goes on without it
            logger.warning(
                "memory unavailable for a prompt", extra={"run_id": run.id}, exc_info=True
            )
            return notes
        now = self.clock.now()
        return notes + [_note(hit, now) for hit in found]

    async def learn_from_step(self, llm: LLM, *, run: Run, step: str, result: str) -> None:
        """Keep the facts and lessons the fast model finds in a finished step."""
        if not self.limits.extract:
            return
        extracted = await self.extractor.extract(llm, run=run, step=step, result=result)
        if extracted is None:
            return
        try:
            await self.facts.keep(run, extracted.facts)
            for lesson in extracted.lessons:
                await self.longterm.remember(
                    scope=scope_of(run), content=lesson.content, created_by="airlock",
                    memory_type=lesson.memory_type, importance=lesson.importance, source=run.id,
                )  # fmt: skip
        except Exception:  # as in context(): never a reason to fail the run
            logger.warning(
                "could not keep what a step taught", extra={"run_id": run.id}, exc_info=True
            )

    async def learn_from_run(self, run: Run, *, status: RunStatus, result: str) -> None:
        """Remember how the run ended, as an episodic memory of its scope."""
        ttl = self.limits.episodic_ttl_days
        expires = None if ttl is None else self.clock.now() + timedelta(days=ttl)
        # Masked before it is cut: a secret cut in two is no longer recognised.
        content = f"Goal: {redact(run.goal)}\nOutcome: {status.value}: {redact(result)[:600]}"
        importance = 0.5 if status is RunStatus.COMPLETED else 0.7
        try:
            await self.longterm.remember(
                scope=scope_of(run), content=content, created_by=run.requester,
                memory_type=MemoryType.EPISODIC, importance=importance, expires_at=expires,
                source=run.id, memory_id=f"mem_run_{run.id}_{run.attempt}",
                data={"kind": "run", "status": status.value},
            )  # fmt: skip
        except Exception:
            logger.warning("could not remember a run", extra={"run_id": run.id}, exc_info=True)

    async def learn_from_feedback(self, run: Run, *, by: str) -> None:
        """Remember what worked: the requester said ``run``'s answer helped. Once per run.

        The steps and their outcomes become a procedural memory of the run's scope, masked
        (as every memory is) and cut to what a prompt can hold, so a later goal like it
        recalls how this one was done.
        """
        done = run.results
        steps = [f"- {s.description}: {done[s.id].output[:300] if s.id in done else ''}"
                 for s in (run.plan.subtasks if run.plan else [])]  # fmt: skip
        content = (f"What worked (confirmed by the person who asked) for: {redact(run.goal)}\n"
                   + redact("\n".join(steps))[:3000])  # fmt: skip
        try:
            await self.longterm.remember(
                scope=scope_of(run), content=content[:4000], created_by=by,
                memory_type=MemoryType.PROCEDURAL, importance=0.8, source=run.id,
                memory_id=f"mem_feedback_{run.id}", data={"kind": "feedback"},
            )  # fmt: skip
        except Exception:
            logger.warning("could not remember feedback", extra={"run_id": run.id}, exc_info=True)

    async def precedents(self, run: Run, subject: ToolCallSubject) -> list[Precedent]:
        """Past decisions on calls like this one, in the run's scope, most similar first."""
        try:
            found = await self.longterm.recall(
                scopes=[scope_of(run)], query=call_text(subject.tool, subject.arguments),
                k=self.limits.precedents, kind=APPROVAL_KIND,
                min_similarity=self.limits.precedent_min_similarity,
            )  # fmt: skip
        except Exception:
            logger.warning("precedents unavailable", extra={"run_id": run.id}, exc_info=True)
            return []
        return [
            Precedent.model_validate(hit.memory.data["precedent"])
            for hit in found
            if hit.memory.data.get("tool") == subject.tool and "precedent" in hit.memory.data
        ]

    async def record_decision(self, run: Run, approval: Approval) -> None:
        """Remember how an approval ended, once, in the scope of its run."""
        subject = approval.subject
        if approval.status is ApprovalStatus.PENDING or not isinstance(subject, ToolCallSubject):
            return
        precedent = Precedent(
            outcome=_outcome(approval), tool=subject.tool,
            call=call_text(subject.tool, subject.arguments), by=approval.decided_by,
            at=approval.decided_at or self.clock.now(), reason=_reason(approval),
        )  # fmt: skip
        content = f"{precedent.outcome} by {precedent.by or 'nobody'}: {precedent.call}"
        if precedent.reason:
            content += f" (reason: {redact(precedent.reason)})"
        try:
            await self.longterm.remember(
                scope=scope_of(run), content=content, created_by=precedent.by or "airlock",
                memory_type=MemoryType.EPISODIC, importance=0.8, source=approval.id,
                memory_id=approval_memory_id(approval.id),
                data={"kind": APPROVAL_KIND, "tool": subject.tool, "risk": approval.risk.value,
                      "precedent": precedent.model_dump(mode="json")},
            )  # fmt: skip
        except Exception:
            logger.warning("could not remember a decision", extra={"run_id": run.id}, exc_info=True)


def approval_memory_id(approval_id: str) -> str:
    """The id of the memory of an approval's decision (so it is recorded once)."""
    return f"mem_{approval_id}"


def call_text(tool: str, arguments: object) -> str:
    """A tool call as one line of text, for embedding and for people; secrets masked."""
    text = redact(f"{tool} {canonical_json(arguments)}")
    return text if len(text) <= 300 else text[:299] + "…"


def _note(hit: Recalled, now: datetime) -> str:
    memory = hit.memory
    age = describe_age(memory.created_at, now)
    # Masked again on the way out: memories written before masking at rest may hold secrets.
    return f"[{memory.id}, {memory.memory_type.value}, {age}] {redact(memory.content)}"


def _outcome(approval: Approval) -> str:
    last = approval.decisions[-1] if approval.decisions else None
    if (
        approval.status is ApprovalStatus.APPROVED
        and last is not None
        and last.kind is DecisionKind.EDIT
    ):
        return "edited"
    return approval.status.value


def _reason(approval: Approval) -> str | None:
    last = approval.decisions[-1] if approval.decisions else None
    return None if last is None else last.reason
