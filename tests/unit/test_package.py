"""The package's public surface and the files the README points people to."""

from __future__ import annotations

from pathlib import Path

import yaml

import agent_core

REPO = Path(__file__).resolve().parents[2]


def test_agent_core_exports_a_small_deliberate_api() -> None:
    assert sorted(agent_core.__all__) == [
        "AirlockError",
        "Approval",
        "ConfigError",
        "Decision",
        "Plan",
        "RiskLevel",
        "Run",
        "RunStatus",
        "Settings",
        "Store",
        "Subtask",
        "open_store",
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
