"""The README and docs/ stay true to the code: the settings table, commands and variable names."""

from __future__ import annotations

import re
from pathlib import Path

import typer.main
from typer.core import TyperGroup

from agent_core.config import Settings, env_name
from bot.cli.main import app
from bot.cli.readme import CONFIGURATION, render_settings_table, settings_section

REPO = Path(__file__).resolve().parents[2]
DOCUMENTS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def all_text() -> str:
    """The README and every document in docs/."""
    return "\n".join(path.read_text() for path in DOCUMENTS)


def code_in(markdown: str) -> str:
    """Inline code spans and fenced blocks: where the README names commands."""
    fenced = re.findall(r"^```[^\n]*\n(.*?)^```", markdown, flags=re.MULTILINE | re.DOTALL)
    prose = re.sub(r"^```.*?^```", "", markdown, flags=re.MULTILINE | re.DOTALL)
    return "\n".join(fenced + re.findall(r"`([^`\n]+)`", prose))


def test_the_configuration_table_is_generated_from_settings() -> None:
    expected = render_settings_table()
    assert settings_section(CONFIGURATION.read_text()) == expected, (
        "docs/configuration.md's table differs from Settings and .env.example: "
        "run `python -m bot.cli.readme` to update it"
    )


def test_every_airlock_command_in_the_readme_exists() -> None:
    cli = typer.main.get_command(app)
    assert isinstance(cli, TyperGroup)
    named = re.findall(
        r"(?<![\w.-])airlock ([a-z][a-z-]*)(?: ([a-z][a-z-]*))?", code_in(all_text())
    )
    assert named, "the documents name no airlock command"
    for command, sub in named:
        assert command in cli.commands, f"the docs name `airlock {command}`, which does not exist"
        group = cli.commands[command]
        if isinstance(group, TyperGroup) and sub:
            assert sub in group.commands, (
                f"the docs name `airlock {command} {sub}`, which does not exist"
            )


def test_every_airlock_variable_in_the_readme_is_a_setting() -> None:
    settings = {env_name(field) for field in Settings.model_fields}
    for name in set(re.findall(r"AIRLOCK_[A-Z0-9_]*", all_text())):
        if name.endswith("_"):  # a prefix, as in AIRLOCK_MEMORY_WEIGHT_*
            assert any(s.startswith(name) for s in settings), f"no setting starts with {name}"
        else:
            assert name in settings, f"the docs name {name}, which is not a setting"


def test_every_link_between_the_documents_lands() -> None:
    """Relative links resolve to a file, and an anchor to one of that file's headings."""
    for document in DOCUMENTS:
        text = re.sub(r"^```.*?^```", "", document.read_text(), flags=re.MULTILINE | re.DOTALL)
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+:", target):
                continue  # a web address
            path, _, anchor = target.partition("#")
            linked = (document.parent / path).resolve() if path else document
            assert linked.exists(), f"{document.name} links to {target}, which does not exist"
            if anchor and linked.suffix == ".md":
                headings = re.findall(r"^#+ (.+)$", linked.read_text(), flags=re.MULTILINE)
                slugs = {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-")
                         for h in headings}  # fmt: skip
                assert anchor in slugs, f"{document.name} links to {target}: no such heading"
