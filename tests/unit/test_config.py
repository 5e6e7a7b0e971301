"""Settings: environment and .env parsing, one clear line per problem."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from agent_core.config import Settings, env_name, load_settings
from agent_core.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings read the process environment; start every test from none of ours."""
    for name in [env_name(field) for field in Settings.model_fields]:
        monkeypatch.delenv(name, raising=False)


def test_defaults_need_no_environment() -> None:
    settings = load_settings(None)
    assert settings.planner_model == "claude-opus-4-7"
    assert settings.executor_model == "claude-sonnet-4-6"
    assert settings.fast_model == "claude-haiku-4-5"
    assert settings.slack_api_url == "https://slack.com/api/"
    assert settings.effective_store_url == "sqlite:///data/airlock.db"
    assert not settings.socket_mode


def test_lists_of_ids_are_comma_separated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRLOCK_APPROVERS", "U012AB3CD, S0614TZR7 ,W0ABCDEF")
    monkeypatch.setenv("AIRLOCK_ADMINS", "")
    settings = load_settings(None)
    assert settings.approvers == ["U012AB3CD", "S0614TZR7", "W0ABCDEF"]
    assert settings.admins == []


def test_each_invalid_value_is_one_line_naming_its_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AIRLOCK_PORT", "eighty")
    monkeypatch.setenv("AIRLOCK_APPROVERS", "U012AB3CD,alice")
    monkeypatch.setenv("AIRLOCK_RUN_BUDGET_USD", "-1")
    monkeypatch.setenv("AIRLOCK_STORE_URL", "postgres://db")
    with pytest.raises(ConfigError) as error:
        load_settings(None)
    problems = error.value.problems
    assert len(problems) == 4
    assert {p.split(":")[0] for p in problems} == {
        "AIRLOCK_PORT",
        "AIRLOCK_APPROVERS",
        "AIRLOCK_RUN_BUDGET_USD",
        "AIRLOCK_STORE_URL",
    }
    assert any("alice" in p for p in problems)
    assert all("\n" not in p for p in problems)


def test_secrets_never_appear_in_problems(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_BASE_URL", "not-a-url")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-api03-secret")
    with pytest.raises(ConfigError) as error:
        load_settings(None)
    assert "sk-ant" not in str(error.value)


def test_serve_needs_slack_and_anthropic_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_settings(None).missing_for_serve() == [
        "SLACK_BOT_TOKEN",
        "ANTHROPIC_API_KEY",
        "SLACK_SIGNING_SECRET",
        "AIRLOCK_AUDIT_KEY",
    ]
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-1")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-1")
    monkeypatch.setenv("SLACK_APP_TOKEN", "xapp-1")
    monkeypatch.setenv("AIRLOCK_AUDIT_KEY", "0123456789abcdef" * 4)
    settings = load_settings(None)
    assert settings.socket_mode
    assert settings.missing_for_serve() == []


def test_the_env_file_is_read_and_the_environment_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("AIRLOCK_PORT=4000\nAIRLOCK_LOG_LEVEL=DEBUG\nSLACK_APP_TOKEN=\n")
    monkeypatch.setenv("AIRLOCK_PORT", "5000")
    settings = load_settings(env_file)
    assert (settings.port, settings.log_level, settings.slack_app_token) == (5000, "DEBUG", None)


def test_env_example_documents_every_setting_and_loads() -> None:
    example = REPO / ".env.example"
    text = example.read_text()
    lines = text.splitlines()
    documented = {
        m.group(1) for m in re.finditer(r"^#? ?([A-Z][A-Z0-9_]+)=", text, flags=re.MULTILINE)
    }
    expected = {env_name(field) for field in Settings.model_fields}
    assert documented == expected
    for index, line in enumerate(lines):
        if re.match(r"^#? ?[A-Z][A-Z0-9_]+=", line):
            assert lines[index - 1].startswith("# "), f"no comment above {line}"
    load_settings(example)


def test_every_setting_named_like_a_secret_is_kept_as_one() -> None:
    """A SecretStr setting is registered for masking when settings load; a new one typed as a
    plain string would be printed by `airlock config` and never masked."""
    for name, field in Settings.model_fields.items():
        if re.search(r"(^|_)(token|secret|password|passwd|key)$", name):
            assert "SecretStr" in str(field.annotation), name
