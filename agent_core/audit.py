"""The audit trail: who did what to which run, appended to the store's hash chain."""

from __future__ import annotations

from dataclasses import dataclass

from agent_core.models import AuditEvent, JsonValue
from agent_core.store import Store

__all__ = ["GLOBAL", "Audit"]

GLOBAL = "_global"
"""The trail for actions on no single run (halt, resume, kill all)."""


@dataclass(kw_only=True)
class Audit:
    """Appends audit events; one per action, never edited."""

    store: Store

    async def record(self, run_id: str, kind: str, *, actor: str, **data: JsonValue) -> AuditEvent:
        """Append ``kind`` by ``actor`` to the trail of ``run_id``."""
        return await self.store.append_audit(
            AuditEvent(run_id=run_id, kind=kind, actor=actor, data=data)
        )
