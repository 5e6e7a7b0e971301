"""The README stays true to the code: its settings table, commands and variable names."""

from __future__ import annotations

import re
from pathlib import Path

import typer.main
from typer.core import TyperGroup

from agent_core.config import Settings, env_name
from bot.cli.main import app
from bot.cli.readme import render_settings_table, settings_section

README = Path(__file__).resolve().parents[2] / "README.md"


def code_in(markdown: str) -> str:
    """Inline code spans and fenced blocks: where the README names commands."""
    fenced = re.findall(r"^```[^\n]*\n(.*?)^```", markdown, flags=re.MULTILINE | re.DOTALL)
    prose = re.sub(r"^```.*?^```", "", markdown, flags=re.MULTILINE | re.DOTALL)
    return "\n".join(fenced + re.findall(r"`([^`\n]+)`", prose))


def test_the_configuration_table_is_generated_from_settings() -> None:
    expected = render_settings_table()
    assert settings_section(README.read_text()) == expected, (
        "README.md's configuration table differs from Settings and .env.example: "
        "run `python -m bot.cli.readme` to update it"
    )


def test_every_airlock_command_in_the_readme_exists() -> None:
    cli = typer.main.get_command(app)
    assert isinstance(cli, TyperGroup)
    named = re.findall(
        r"(?<![\w.-])airlock ([a-z][a-z-]*)(?: ([a-z][a-z-]*))?", code_in(README.read_text())
    )
    assert named, "the README names no airlock command"
    for command, sub in named:
        assert command in cli.commands, f"README names `airlock {command}`, which does not exist"
        group = cli.commands[command]
        if isinstance(group, TyperGroup) and sub:
            assert sub in group.commands, (
                f"README names `airlock {command} {sub}`, which does not exist"
            )


def test_every_airlock_variable_in_the_readme_is_a_setting() -> None:
    settings = {env_name(field) for field in Settings.model_fields}
    for name in set(re.findall(r"AIRLOCK_[A-Z0-9_]*", README.read_text())):
        if name.endswith("_"):  # a prefix, as in AIRLOCK_MEMORY_WEIGHT_*
            assert any(s.startswith(name) for s in settings), f"no setting starts with {name}"
        else:
            assert name in settings, f"README names {name}, which is not a setting"
