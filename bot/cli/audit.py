"""``airlock audit show|export|verify|purge|keygen``: the audit trail from the terminal."""

from __future__ import annotations

import unicodedata
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from agent_core import (
    GLOBAL,
    Airlock,
    AuditEvent,
    AuditKey,
    AuditTrail,
    JsonValue,
    NotFound,
    Settings,
    Store,
    StoreReport,
    audit_events,
    canonical_json,
    check_trail,
    utcnow,
    verify_store,
)
from bot.cli.startup import with_store
from bot.cli.status import StatusLine

__all__ = ["audit_app", "describe", "inert"]


def _on_store(
    env_file: Path,
    work: Callable[[Store, Settings], Awaitable[int]],
    *,
    writes: bool = False,
) -> None:

    async def on_store(airlock: Airlock) -> int:
        return await work(airlock.store, airlock.settings)

    with_store(env_file, on_store, audit="write" if writes else "read")


audit_app = typer.Typer(
    help="The audit trail: show, export, verify, purge; keygen for a new key.",
    no_args_is_help=True,
)
out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

EnvFile = Annotated[Path, typer.Option("--env-file", help="Read settings from this file too.")]
RunId = Annotated[str, typer.Argument(help="The run (or _global for halts and kills of all).")]


@audit_app.command("show")
def show(run_id: RunId, env_file: EnvFile = Path(".env")) -> None:
    """A run's timeline: every model call, tool call, decision and stop, in order."""

    async def work(store: Store, settings: Settings) -> int:
        trail = await store.read_audit(run_id)
        if not trail.events:
            err.print(f"airlock audit: no audit trail for {run_id}")
            return 1
        table = Table("#", "time (UTC)", "who", "what", "detail", title=f"audit of {run_id}")
        for event in trail.events:
            when = event.at.strftime("%Y-%m-%d %H:%M:%S")
            table.add_row(str(event.seq), when, inert(event.actor), inert(event.kind),
                          inert(describe(event)))  # fmt: skip
        out.print(table)
        out.print(_totals(trail, settings.audit_chain_key))
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
    """Check every seal, head and count; name each event edited, moved or deleted. Exit 1 if any.

    With no run, every trail is checked, and so is the store as a whole: trails deleted
    with their head, run records deleted, the anchor. Exit 2 for a run that does not exist.
    """

    async def work(store: Store, settings: Settings) -> int:
        key = settings.audit_chain_key
        if key is None:
            err.print("airlock audit verify: AIRLOCK_AUDIT_KEY is not set; verifying needs the"
                      " key the trail is sealed with", markup=False, highlight=False)  # fmt: skip
            return 2
        try:
            with StatusLine().during("verifying the audit trail"):
                report = await verify_store(store, key, run_ids or ())
        except NotFound as missing:
            err.print(f"airlock audit verify: no run or audit trail {inert(missing.key)}",
                      highlight=False)  # fmt: skip
            return 2
        for line in report.lines():
            out.print(inert(line), highlight=False)
        out.print(_summary(report, whole=not run_ids), highlight=False)
        return 1 if report.broken else 0

    _on_store(env_file, work)


def _summary(report: StoreReport, *, whole: bool) -> str:
    trails = report.trails
    events = sum(trail.events for trail in trails)
    notes = [f"{events} events"]
    notes += [f"{n} purged" for n in [sum(1 for t in trails if t.head and t.head.purged)] if n]
    notes += [f"{n} unkeyed" for n in [sum(1 for t in trails if t.unkeyed)] if n]
    if report.broken:
        broken = sum(1 for trail in trails if trail.broken)
        line = f"[red]✗[/] {broken} of {len(trails)} trail(s) broken"
        if store_wide := sum(1 for finding in report.findings if finding.problem):
            line += f", and {store_wide} problem(s) with the store as a whole"
        line += f" ({', '.join(notes)})"
    else:
        line = f"[green]✓[/] {len(trails)} trail(s) intact ({', '.join(notes)})"
    anchor = report.anchor
    if whole and anchor is not None:
        line += (f"\nanchor: {anchor.trails} trail(s) started since"
                 f" {anchor.since:%Y-%m-%d %H:%M:%S} UTC, sealed with key"
                 f" {anchor.key_id or '(none)'}")  # fmt: skip
    return line


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
                count = await store.delete_audit(trail)
                if count:
                    out.print(f"purged {trail} ({count} events; its sealed head stays)")
                purged += count
        out.print(f"{purged} event(s) older than {days:g} days purged")
        return 0

    _on_store(env_file, work, writes=True)


@audit_app.command("keygen")
def keygen() -> None:
    """Print a new random AIRLOCK_AUDIT_KEY (store it as a secret, not in the data folder)."""
    print(f"AIRLOCK_AUDIT_KEY={AuditKey.generate()}")


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
    match audit_events.read(event):
        case audit_events.LLMCall(usage=usage) as call:
            tokens = f"{usage.input_tokens} in / {usage.output_tokens} out"
            return f"{call.model} {call.stop_reason}, {tokens}, ${call.cost_usd:.4f}"
        case audit_events.ToolCalled() as call:
            who = f", approved by {call.approved_by}" if call.approved_by else ""
            edited = " (edited)" if call.original_arguments is not None else ""
            where = f", on {call.worker}" if call.worker else ""
            return f"{call.tool} {_short(call.arguments)}{edited}{who}{where}"
        case audit_events.RunClaimed() as claimed:
            return f"taken up by {claimed.worker} ({claimed.status}, attempt {claimed.attempt})"
        case audit_events.ToolResult() as result:
            flags = f" flags: {', '.join(result.flags)}" if result.flags else ""
            state = "error" if result.is_error else "ok"
            return f"{result.tool} {state} in {event.data['duration_ms']} ms{flags}"
        case audit_events.RunFinished() as finished:
            return f"{finished.status}: {_short(finished.result)}"
    # Any other kind, or data this version does not recognise: the gist of it as stored.
    d = event.data
    return _short({k: v for k, v in d.items() if k not in ("subject", "plan", "content")})


def inert(text: str) -> str:
    """``text`` safe to print: no Rich markup, and control, invisible and direction-changing
    characters shown as escapes (what the store holds may have been written by anyone)."""
    shown = "".join(
        f"\\u{ord(c):04x}" if unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") else c
        for c in text
    )
    return escape(shown)


def _short(value: JsonValue, limit: int = 120) -> str:
    text = value if isinstance(value, str) else canonical_json(value)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _totals(trail: AuditTrail, key: AuditKey | None) -> str:
    events = trail.events
    typed = [audit_events.read(e) for e in events]
    calls = [e for e in typed if isinstance(e, audit_events.LLMCall)]
    tools = [e for e in typed if isinstance(e, audit_events.ToolCalled)]
    tokens = sum(call.usage.input_tokens + call.usage.output_tokens for call in calls)
    cost = sum(call.cost_usd for call in calls)
    chain = "broken" if check_trail(trail, key).broken else "intact"
    if key is None:
        chain += " (seals not checked: AIRLOCK_AUDIT_KEY is not set)"
    return (f"{len(calls)} model call(s), {tokens} tokens (in + out), ${cost:.4f};"
            f" {len(tools)} tool call(s); {len(events)} events, chain {chain}")  # fmt: skip
