"""The package's public surface and the files the README points people to."""

from __future__ import annotations

from pathlib import Path

import yaml

import agent_core

REPO = Path(__file__).resolve().parents[2]


def test_agent_core_exports_a_deliberate_api() -> None:
    """What a front end may use (the front door, the values, the services it is handed):
    a change to it shows here."""
    assert sorted(agent_core.__all__) == [
        "ACTIVE",
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
        "FINAL_STATUSES",
        "GLOBAL",
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
        "WORKSPACE",
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
    for name in agent_core.__all__:
        assert getattr(agent_core, name) is not None


def test_the_manifest_asks_for_what_the_bot_uses() -> None:
    manifest = yaml.safe_load((REPO / "manifest.yml").read_text())
    settings = manifest["settings"]
    events = set(settings["event_subscriptions"]["bot_events"])
    assert events >= {"app_mention", "message.im", "message.channels", "message.groups"}
    assert settings["interactivity"]["is_enabled"]
    assert [c["command"] for c in manifest["features"]["slash_commands"]] == ["/agent"]
    scopes = set(manifest["oauth_config"]["scopes"]["bot"])
    assert {
        "app_mentions:read",
        "chat:write",
        "commands",
        "im:history",
        "usergroups:read",
    } <= scopes
