"""airlock's agent core: runs goals with tools, and asks humans before anything risky.

It knows nothing about Slack; it reaches people through an operator channel
(:class:`OperatorChannel`, sent :data:`RunEvent` values). Its front door is :class:`Airlock`:
a front end opens one from the settings and asks it for everything it does. The names here
are the whole of what a front end uses (``bot/`` imports nothing else, but the stand-ins of
:mod:`agent_core.testing`).

Importing the package stays cheap: the values are imported now, the services when first
used (PEP 562), so a process that never touches memory never imports FAISS or torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from agent_core.audit import events as audit_events
from agent_core.channel import (
    ApprovalEscalated,
    ApprovalNeeded,
    ApprovalReminder,
    ApprovalSettled,
    BudgetWarning,
    OperatorChannel,
    PlanReady,
    RunEvent,
    RunFinished,
    RunQueued,
    StepFinished,
    StepStarted,
    ToolNotice,
)
from agent_core.clock import utcnow
from agent_core.config import Settings, env_name, load_settings
from agent_core.errors import AirlockError, ConfigError, NotFound
from agent_core.heap import settle_heap
from agent_core.models import (
    FINAL_STATUSES,
    AlreadyDecided,
    Approval,
    ApprovalStatus,
    AuditEvent,
    AuditKind,
    ChannelKind,
    Concluded,
    Counted,
    Decision,
    DecisionKind,
    DecisionOutcome,
    Duplicate,
    HaltState,
    JsonValue,
    MessageLocation,
    MessagePurpose,
    MessageSubject,
    Plan,
    PlanSubject,
    QuestionAnswered,
    RiskLevel,
    Run,
    RunStatus,
    Subtask,
    ToolCallSubject,
    canonical_json,
)
from agent_core.store import Store, Subscription, open_store, shown_url, sqlite_path

if TYPE_CHECKING:
    from agent_core.airlock import Airlock, ChannelParts, Decide, Hosting
    from agent_core.approvals import (
        Authority,
        DecisionService,
        Refused,
        RiskPolicy,
        close_undecided,
        local_identity,
    )
    from agent_core.audit.chain import AuditKey, AuditTrail
    from agent_core.audit.trail import GLOBAL, Audit, StoreReport, verify_store
    from agent_core.audit.verify import check_trail
    from agent_core.logs import configure_logging, redact
    from agent_core.memory.longterm import LongTermMemory
    from agent_core.memory.notes import describe_age, describe_precedents
    from agent_core.memory.records import WORKSPACE, MemoryType, readable_scopes, scope_of_place
    from agent_core.memory.service import AgentMemory
    from agent_core.runs.control import ACTIVE, RunControl
    from agent_core.runs.limits import Admission, Limits, SpendLedger
    from agent_core.store.run_queue import RedisRunQueue
    from agent_core.telemetry import answer_feedback, configure_tracing
    from agent_core.tools.builtins import builtin_tools

_LAZY = {
    "agent_core.airlock": ("Airlock", "ChannelParts", "Decide", "Hosting"),
    "agent_core.approvals": (
        "Authority", "DecisionService", "Refused", "RiskPolicy", "close_undecided",
        "local_identity",
    ),
    "agent_core.audit.chain": ("AuditKey", "AuditTrail"),
    "agent_core.audit.trail": ("GLOBAL", "Audit", "StoreReport", "verify_store"),
    "agent_core.audit.verify": ("check_trail",),
    "agent_core.logs": ("configure_logging", "redact"),
    # FAISS, numpy and (when first embedding) torch: only a process that uses memory pays.
    "agent_core.memory.longterm": ("LongTermMemory",),
    "agent_core.memory.notes": ("describe_age", "describe_precedents"),
    "agent_core.memory.records": ("WORKSPACE", "MemoryType", "readable_scopes", "scope_of_place"),
    "agent_core.memory.service": ("AgentMemory",),
    "agent_core.runs.control": ("ACTIVE", "RunControl"),
    "agent_core.runs.limits": ("Admission", "Limits", "SpendLedger"),
    "agent_core.store.run_queue": ("RedisRunQueue",),
    "agent_core.telemetry": ("answer_feedback", "configure_tracing"),
    "agent_core.tools.builtins": ("builtin_tools",),
}  # fmt: skip
_WHERE = {name: module for module, names in _LAZY.items() for name in names}


def __getattr__(name: str) -> object:
    """A service's name, imported on first use (and kept, so this runs once per name)."""
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'agent_core' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_WHERE))


__all__ = [
    "ACTIVE",
    "FINAL_STATUSES",
    "GLOBAL",
    "WORKSPACE",
    "Admission",
    "AgentMemory",
    "Airlock",
    "AirlockError",
    "AlreadyDecided",
    "Approval",
    "ApprovalEscalated",
    "ApprovalNeeded",
    "ApprovalReminder",
    "ApprovalSettled",
    "ApprovalStatus",
    "Audit",
    "AuditEvent",
    "AuditKey",
    "AuditKind",
    "AuditTrail",
    "Authority",
    "BudgetWarning",
    "ChannelKind",
    "ChannelParts",
    "Concluded",
    "ConfigError",
    "Counted",
    "Decide",
    "Decision",
    "DecisionKind",
    "DecisionOutcome",
    "DecisionService",
    "Duplicate",
    "HaltState",
    "Hosting",
    "JsonValue",
    "Limits",
    "LongTermMemory",
    "MemoryType",
    "MessageLocation",
    "MessagePurpose",
    "MessageSubject",
    "NotFound",
    "OperatorChannel",
    "Plan",
    "PlanReady",
    "PlanSubject",
    "QuestionAnswered",
    "RedisRunQueue",
    "Refused",
    "RiskLevel",
    "RiskPolicy",
    "Run",
    "RunControl",
    "RunEvent",
    "RunFinished",
    "RunQueued",
    "RunStatus",
    "Settings",
    "SpendLedger",
    "StepFinished",
    "StepStarted",
    "Store",
    "StoreReport",
    "Subscription",
    "Subtask",
    "ToolCallSubject",
    "ToolNotice",
    "answer_feedback",
    "audit_events",
    "builtin_tools",
    "canonical_json",
    "check_trail",
    "close_undecided",
    "configure_logging",
    "configure_tracing",
    "describe_age",
    "describe_precedents",
    "env_name",
    "load_settings",
    "local_identity",
    "open_store",
    "readable_scopes",
    "redact",
    "scope_of_place",
    "settle_heap",
    "shown_url",
    "sqlite_path",
    "utcnow",
    "verify_store",
]
