"""Attacks on what `airlock run` shows at the terminal: rich markup and hidden characters in
what the model wrote, through the real process against the Anthropic stand-in."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from agent_core.channel import StepFinished, ToolNotice
from agent_core.models import Approval, Plan, RiskLevel, Run, Subtask, ToolCallSubject
from agent_core.store import open_store
from agent_core.testing.anthropic_server import AnthropicStandIn, text_reply, tool_use_reply
from bot.cli.terminal import TerminalChannel, approval_panel, plan_table
from tests.e2e.test_run_cli import KEY, airlock_run
from tests.e2e.test_serve import airlock, clean_env

MARKUP = "[/] [conceal]SECRET-A[/conceal] [black on black]SECRET-B[/] [link=https://evil]x[/link]"
HIDDEN = "\u202eLTR\u202c \x1b[2Jcleared \x00nul \u200bzw"


async def test_rich_markup_from_the_model_is_shown_as_written_and_hides_nothing(
    tmp_path: Path,
) -> None:
    step = {"id": "s1[/]", "description": f"look {MARKUP} {HIDDEN}", "required_tools": [],
            "depends_on": [], "risk_level": "high"}  # fmt: skip
    plan = {"subtasks": [step]}
    command = f"echo '{MARKUP}' > out.txt # {HIDDEN}"
    script = [
        tool_use_reply("submit_plan", plan),
        tool_use_reply("run_command", {"command": command}),
        text_reply(f"done {MARKUP} {HIDDEN} " + "y" * 400),
    ]
    async with AnthropicStandIn(api_key=KEY, script=script) as server:
        code, out, err = await airlock_run(
            "--yes", "look around", server=server, data=tmp_path / "data",
            extra={"AIRLOCK_WORKSPACE_DIR": str(tmp_path / "work")},
        )  # fmt: skip
    assert code == 0, err  # a stray [/] no longer fails the run
    flat = " ".join(out.split())
    for secret in ("SECRET-A", "SECRET-B", "[conceal]", "[/]", "[black on black]"):
        assert secret in flat  # shown as written, not applied
    assert "⟨U+202E⟩" in out and "⟨U+001B⟩" in out and "⟨U+0000⟩" in out and "⟨U+200B⟩" in out
    assert "\u202e" not in out and "\x1b[2J" not in out and "\x00" not in out


def test_every_panel_and_line_shows_markup_literally_and_marks_cuts() -> None:
    console = Console(record=True, width=300, color_system=None)
    text = f"{MARKUP} {HIDDEN}"
    subject = ToolCallSubject(subtask_id="s1", tool="run_command", arguments={"command": text},
                              preview=text)  # fmt: skip
    console.print(approval_panel(Approval(run_id="r", subject=subject, risk=RiskLevel.HIGH)))
    console.print(plan_table(Plan(subtasks=[Subtask(id="[/]", description=text)])))
    shown = console.export_text()
    assert shown.count("SECRET-A") == 3 and shown.count("[conceal]") == 3
    assert "⟨U+202E⟩" in shown and "\u202e" not in shown


async def test_step_lines_and_notices_mark_what_they_cut() -> None:
    console = Console(record=True, width=400, color_system=None)
    channel = TerminalChannel(operator="local:test", console=console)
    run = Run(goal="g", requester="local:test")
    await channel.notify(StepFinished(run=run, subtask_id="[/]", status="completed",
                                      summary=MARKUP + "z" * 500))  # fmt: skip
    url = "https://x/" + "u" * 3000 + HIDDEN
    await channel.notify(ToolNotice(run=run, tool="http_request", risk=RiskLevel.MEDIUM,
                                    arguments={"url": url}))  # fmt: skip
    shown = console.export_text()
    assert "[conceal]SECRET-A[/conceal]" in shown and "more characters" in shown
    assert "[/]" in shown and "\u202e" not in shown


async def test_airlock_approvals_lists_a_hostile_call_as_written(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    store = await open_store(f"sqlite:///{data / 'airlock.db'}")
    subject = ToolCallSubject(subtask_id="s1", tool="run_command",
                              arguments={"command": f"{MARKUP} {HIDDEN}"})  # fmt: skip
    await store.create_approval(Approval(run_id="run_x", subject=subject, risk=RiskLevel.HIGH))
    await store.close()
    env = clean_env(AIRLOCK_DATA_DIR=str(data), COLUMNS="400")
    code, out, err = await airlock("approvals", cwd=tmp_path, env=env)
    assert code == 0, err  # a stray [/] in a pending call no longer breaks the listing
    assert "[conceal]SECRET-A[/conceal]" in out and "⟨U+202E⟩" in out and "\u202e" not in out
