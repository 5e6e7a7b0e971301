"""The configuration reference's table (docs/configuration.md), generated from
:class:`Settings` and ``.env.example``.

    python -m bot.cli.readme    # rewrite the table in docs/configuration.md

The table sits between ``<!-- settings:start -->`` and ``<!-- settings:end -->``; a unit
test regenerates it and fails when the document has drifted from the settings.
"""

from __future__ import annotations

import enum
import re
from pathlib import Path

from pydantic import SecretStr

from agent_core import Settings, env_name

__all__ = [
    "CONFIGURATION",
    "END",
    "START",
    "render_settings_table",
    "settings_section",
    "update_reference",
]

START = "<!-- settings:start -->"
END = "<!-- settings:end -->"
REPO = Path(__file__).resolve().parents[2]
CONFIGURATION = REPO / "docs" / "configuration.md"
"""Where the table lives."""
_ASSIGNMENT = re.compile(r"^#? ?([A-Z][A-Z0-9_]+)=")


def descriptions(env_example: Path) -> dict[str, str]:
    """Each variable of ``.env.example``, in file order, with the comment line above it."""
    lines = env_example.read_text().splitlines()
    found: dict[str, str] = {}
    for index, line in enumerate(lines):
        if match := _ASSIGNMENT.match(line):
            found[match.group(1)] = lines[index - 1].removeprefix("# ").strip()
    return found


def default_text(field: str) -> str:
    """A field's default as the table shows it; secrets are shown empty."""
    info = Settings.model_fields[field]
    if "SecretStr" in str(info.annotation) or isinstance(info.default, SecretStr):
        return ""
    value = info.get_default(call_default_factory=True)
    return f"`{_plain(value)}`" if _plain(value) else ""


def _plain(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, enum.Enum):
        return str(value.value)
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, Path):
        return value.as_posix() if value.is_absolute() else f"./{value.as_posix()}"
    if isinstance(value, list):
        return ",".join(map(str, value))
    if isinstance(value, dict):
        # The only non-empty dict default is the price table, described in its own row.
        return "built-in" if value else ""
    return str(value)


def render_settings_table(env_example: Path = REPO / ".env.example") -> str:
    """The markdown table: every setting, in ``.env.example`` order."""
    described = descriptions(env_example)
    by_name = {env_name(field): field for field in Settings.model_fields}
    missing = sorted(set(by_name) - set(described))
    if missing:
        raise ValueError(f".env.example does not document {', '.join(missing)}")
    rows = ["| setting | default | what it does |", "| --- | --- | --- |"]
    for name, text in described.items():
        if name in by_name:
            rows.append(f"| `{name}` | {default_text(by_name[name])} | {_cell(text)} |")
    return "\n".join(rows)


def _cell(text: str) -> str:
    # A bare "|" would end the cell, and "<your login>" would be taken for an HTML tag.
    return text.replace("|", "\\|").replace("<", "&lt;")


def settings_section(text: str) -> str:
    """What a document holds between the markers now."""
    _, start, rest = text.partition(START)
    body, end, _ = rest.partition(END)
    if not (start and end):
        raise ValueError(f"the document lacks the markers {START} ... {END}")
    return body.strip("\n")


def update_reference(document: Path = CONFIGURATION) -> bool:
    """Rewrite the table in ``document``; whether anything changed."""
    text = document.read_text()
    new = render_settings_table()
    if settings_section(text) == new:
        return False
    before, _, rest = text.partition(START)
    _, _, after = rest.partition(END)
    document.write_text(f"{before}{START}\n{new}\n{END}{after}")
    return True


if __name__ == "__main__":
    name = CONFIGURATION.relative_to(REPO)
    print(f"{name} updated" if update_reference() else f"{name} is up to date")
