"""The audit trail: who did what to which run, appended to the store's hash chain.

Every model call goes through :class:`AuditedLLM`, so the trail holds each request (the
new input of the turn; the earlier turns are already in the trail) and each response with
its model, tokens, cost and stop reason, in order with the tool calls and decisions.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from agent_core.errors import LLMError
from agent_core.llm import LLM, LLMResponse, ModelTier, count_through
from agent_core.logs import redact_value
from agent_core.models import AuditEvent, JsonValue
from agent_core.store import Store

__all__ = ["GLOBAL", "Audit", "AuditedLLM", "verify_chain"]

GLOBAL = "_global"
"""The trail for actions on no single run (halt, resume, kill all)."""


@dataclass(kw_only=True)
class Audit:
    """Appends audit events; one per action, never edited."""

    store: Store

    async def record(self, run_id: str, kind: str, *, actor: str, **data: JsonValue) -> AuditEvent:
        """Append ``kind`` by ``actor`` to the trail of ``run_id``, secrets masked first."""
        return await self.store.append_audit(
            AuditEvent(run_id=run_id, kind=kind, actor=actor, data=redact_value(data))
        )


@dataclass(kw_only=True)
class AuditedLLM:
    """An :class:`LLM` that records every call of one run, and every failed one."""

    llm: LLM
    audit: Audit
    run_id: str

    async def complete(
        self,
        *,
        tier: ModelTier,
        system: str,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]] | None = None,
        tool_choice: dict[str, Any] | None = None,
        max_tokens: int = 4096,
    ) -> LLMResponse:
        request = {
            "tier": tier.value,
            "system_sha256": hashlib.sha256(system.encode()).hexdigest(),
            "messages": len(messages),
            "input": messages[-1] if messages else None,
            "tools": [t.get("name") for t in tools or []],
        }
        try:
            response = await self.llm.complete(
                tier=tier, system=system, messages=messages, tools=tools,
                tool_choice=tool_choice, max_tokens=max_tokens,
            )  # fmt: skip
        except LLMError as error:
            await self.audit.record(self.run_id, "llm_error", actor="airlock", request=request,
                                    model=error.model, error=error.reason)  # fmt: skip
            raise
        usage = response.usage
        await self.audit.record(
            self.run_id, "llm_call", actor="airlock", request=request, model=response.model,
            stop_reason=response.stop_reason, content=response.content,
            usage={"input_tokens": usage.input_tokens, "output_tokens": usage.output_tokens,
                   "cache_write_tokens": usage.cache_write_tokens,
                   "cache_read_tokens": usage.cache_read_tokens},
            cost_usd=usage.cost_usd,
        )  # fmt: skip
        return response

    async def count_tokens(
        self,
        *,
        tier: ModelTier,
        system: str,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]] | None = None,
    ) -> int:
        """The model's own count (not audited: nothing is generated)."""
        return await count_through(
            self.llm, tier=tier, system=system, messages=messages, tools=tools
        )


def verify_chain(events: list[AuditEvent]) -> list[str]:
    """What is wrong with one trail: edited events, missing (deleted) ones, a broken chain.

    An edited event no longer matches its own hash; a deleted one leaves a gap in the
    sequence numbers; either way the next event's ``prev_hash`` no longer matches.
    """
    problems: list[str] = []
    previous: AuditEvent | None = None
    for event in events:
        expected_seq = 1 if previous is None else previous.seq + 1
        if event.seq > expected_seq:
            last = event.seq - 1
            gap = f"{expected_seq}" if last == expected_seq else f"{expected_seq}-{last}"
            problems.append(f"{event.run_id}: event {gap} is missing (deleted)")
        elif previous is not None and event.prev_hash != previous.hash:
            problems.append(
                f"{event.run_id}: event {event.seq} ({event.id}) does not follow event"
                f" {previous.seq}: one of them was changed"
            )
        if event.chained(seq=event.seq, prev_hash=event.prev_hash).hash != event.hash:
            problems.append(
                f"{event.run_id}: event {event.seq} ({event.id}, {event.kind}) was edited"
            )
        previous = event
    return problems
