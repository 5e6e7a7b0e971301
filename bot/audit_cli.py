"""``airlock audit show|export|verify|purge``: the audit trail from the terminal."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from agent_core.audit import GLOBAL, verify_chain
from agent_core.clock import utcnow
from agent_core.config import Settings
from agent_core.errors import NotFound
from agent_core.models import AuditEvent, JsonValue, canonical_json
from agent_core.store import Store
from bot.render import visible

__all__ = ["audit_app", "describe"]


def _on_store(env_file: Path, work: Callable[[Store, Settings], Awaitable[int]]) -> None:
    from bot.cli import with_store  # imported late: bot.cli adds this module's commands

    with_store(env_file, work)


audit_app = typer.Typer(help="The audit trail: show, export, verify, purge.", no_args_is_help=True)
out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

EnvFile = Annotated[Path, typer.Option("--env-file", help="Read settings from this file too.")]
RunId = Annotated[str, typer.Argument(help="The run (or _global for halts and kills of all).")]


@audit_app.command("show")
def show(run_id: RunId, env_file: EnvFile = Path(".env")) -> None:
    """A run's timeline: every model call, tool call, decision and stop, in order."""

    async def work(store: Store, settings: Settings) -> int:
        events = await store.list_audit(run_id)
        if not events:
            err.print(f"airlock audit: no audit trail for {run_id}")
            return 1
        table = Table("#", "time (UTC)", "who", "what", "detail", title=f"audit of {run_id}")
        for event in events:
            table.add_row(str(event.seq), event.at.strftime("%Y-%m-%d %H:%M:%S"),
                          escape(visible(event.actor)), event.kind,
                          escape(visible(describe(event))))  # fmt: skip
        out.print(table)
        out.print(_totals(events))
        return 0

    _on_store(env_file, work)


@audit_app.command("export")
def export(
    run_id: RunId,
    jsonl: Annotated[bool, typer.Option("--jsonl", help="One JSON event per line.")] = True,
    env_file: EnvFile = Path(".env"),
) -> None:
    """Every event of a run as JSON lines, hashes included (for an external archive)."""

    async def work(store: Store, settings: Settings) -> int:
        events = await store.list_audit(run_id)
        for event in events:
            print(event.model_dump_json())  # plain stdout: rich would wrap and style it
        return 0 if events else 1

    _on_store(env_file, work)


@audit_app.command("verify")
def verify(
    run_ids: Annotated[
        list[str] | None, typer.Argument(help="Trails to check (default all).")
    ] = None,
    env_file: EnvFile = Path(".env"),
) -> None:
    """Check the hash chains; name every edited or deleted event. Exit 1 if any."""

    async def work(store: Store, settings: Settings) -> int:
        trails = run_ids or await store.audit_runs()
        problems = [p for trail in trails for p in verify_chain(await store.list_audit(trail))]
        for problem in problems:
            out.print(f"[red]✗[/] {escape(problem)}")
        if problems:
            return 1
        out.print(f"[green]✓[/] {len(trails)} trail(s) intact")
        return 0

    _on_store(env_file, work)


@audit_app.command("purge")
def purge(
    older_than_days: Annotated[
        float | None,
        typer.Option("--older-than-days", help="Default: AIRLOCK_AUDIT_RETENTION_DAYS."),
    ] = None,
    env_file: EnvFile = Path(".env"),
) -> None:
    """Delete the trails of runs that finished longer ago than the retention period."""

    async def work(store: Store, settings: Settings) -> int:
        days = settings.audit_retention_days if older_than_days is None else older_than_days
        if days <= 0:
            out.print("retention is unlimited (AIRLOCK_AUDIT_RETENTION_DAYS=0): nothing purged")
            return 0
        cutoff = utcnow() - timedelta(days=days)
        purged = 0
        for trail in await store.audit_runs():
            if trail != GLOBAL and await _expired(store, trail, cutoff):
                purged += await store.delete_audit(trail)
                out.print(f"purged {trail}")
        out.print(f"{purged} event(s) older than {days:g} days purged")
        return 0

    _on_store(env_file, work)


async def _expired(store: Store, trail: str, cutoff: datetime) -> bool:
    """A trail whose run is over and last changed before ``cutoff``."""
    try:
        run = await store.get_run(trail)
    except NotFound:
        events = await store.list_audit(trail)
        return bool(events) and events[-1].at < cutoff
    return run.status.is_final and run.updated_at < cutoff


def describe(event: AuditEvent) -> str:
    """One line for a person: the gist of an event's data."""
    d = event.data
    match event.kind:
        case "llm_call":
            usage = d.get("usage") or {}
            tokens = f"{usage.get('input_tokens', 0)} in / {usage.get('output_tokens', 0)} out"
            return f"{d.get('model')} {d.get('stop_reason')}, {tokens}, ${d.get('cost_usd', 0):.4f}"
        case "tool_call":
            who = f", approved by {d['approved_by']}" if d.get("approved_by") else ""
            edited = " (edited)" if "original_arguments" in d else ""
            where = f", on {d['worker']}" if d.get("worker") else ""
            return f"{d.get('tool')} {_short(d.get('arguments'))}{edited}{who}{where}"
        case "run_claimed":
            return f"taken up by {d.get('worker')} ({d.get('status')}, attempt {d.get('attempt')})"
        case "tool_result":
            flags = f" flags: {', '.join(d['flags'])}" if d.get("flags") else ""
            state = "error" if d.get("is_error") else "ok"
            return f"{d.get('tool')} {state} in {d.get('duration_ms')} ms{flags}"
        case "run_finished":
            return f"{d.get('status')}: {_short(d.get('result'))}"
    return _short({k: v for k, v in d.items() if k not in ("subject", "plan", "content")})


def _short(value: JsonValue, limit: int = 120) -> str:
    text = value if isinstance(value, str) else canonical_json(value)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _totals(events: list[AuditEvent]) -> str:
    calls = [e for e in events if e.kind == "llm_call"]
    tools = [e for e in events if e.kind == "tool_call"]
    tokens = sum((e.data.get("usage") or {}).get("input_tokens", 0)
                 + (e.data.get("usage") or {}).get("output_tokens", 0) for e in calls)  # fmt: skip
    cost = sum(float(e.data.get("cost_usd", 0)) for e in calls)
    return (f"{len(calls)} model call(s), {tokens} tokens (in + out), ${cost:.4f};"
            f" {len(tools)} tool call(s); {len(events)} events, chain"
            f" {'broken' if verify_chain(events) else 'intact'}")  # fmt: skip
