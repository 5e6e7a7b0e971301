"""``airlock memory add|search|forget|stats|rebuild``: long-term memory from the terminal.

The terminal's operator is a local admin, so these see and change every scope; Slack's
`/agent remember|memories|forget` are confined to the place they are typed in.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from agent_core import (
    GLOBAL,
    WORKSPACE,
    Airlock,
    Audit,
    MemoryType,
    Store,
    audit_events,
    describe_age,
    local_identity,
)
from bot.cli.startup import with_store
from bot.cli.status import StatusLine
from bot.slack.fit import cut
from bot.slack.render import visible

if TYPE_CHECKING:  # loads FAISS: only the memory commands pay for it
    from agent_core import LongTermMemory

__all__ = ["memory_app"]

memory_app = typer.Typer(help="Long-term memory: add, search, forget, stats, rebuild.",
                         no_args_is_help=True)  # fmt: skip
out = Console()
err = Console(stderr=True, soft_wrap=True)

_SCOPE = re.compile(r"^(workspace|channel:[CG][A-Z0-9]+|user:[A-Za-z0-9:._-]+)$")

Scope = Annotated[
    str | None,
    typer.Option("--scope", help="workspace, channel:C0123ABCD or user:U0123ABCD."),
]
EnvFile = Annotated[Path, typer.Option("--env-file", help="Read settings from this file too.")]


def _checked_scope(scope: str | None) -> str | None:
    if scope is not None and not _SCOPE.match(scope):
        err.print(f"airlock memory: {scope!r} is not a scope (workspace, channel:C..., user:U...)")
        raise typer.Exit(2)
    return scope


def _with_memory(
    env_file: Path,
    work: Callable[[Store, LongTermMemory], Awaitable[int]],
    *,
    embeds: bool = False,
) -> None:
    """Run ``work`` on the long-term memory; ``embeds``: it needs the embedding model, which is
    loaded first (a spinner on a terminal says so: it takes seconds)."""

    async def with_memory(airlock: Airlock) -> int:
        async with airlock.long_term_memory() as memory:
            if embeds:
                with StatusLine().during("loading the embedding model"):
                    await memory.embedder.warm()
            return await work(airlock.store, memory)

    with_store(env_file, with_memory, memory=True)


@memory_app.command("add")
def add(
    content: Annotated[str, typer.Argument(help="The fact or procedure to remember.")],
    scope: Scope = None,
    kind: Annotated[MemoryType, typer.Option("--type")] = MemoryType.SEMANTIC,
    importance: Annotated[float, typer.Option(min=0.0, max=1.0)] = 0.7,
    expires_days: Annotated[float | None, typer.Option(help="Forget after this many days.")] = None,
    env_file: EnvFile = Path(".env"),
) -> None:
    """Remember something (workspace-wide unless --scope says where)."""
    where = _checked_scope(scope) or WORKSPACE
    if not content.strip():
        err.print("airlock memory: there is nothing to remember (the text is empty)")
        raise typer.Exit(2)

    async def work(store: Store, memory: LongTermMemory) -> int:
        expires = None
        if expires_days is not None:
            expires = memory.clock.now() + timedelta(days=expires_days)
        me = local_identity()
        kept = await memory.remember(
            scope=where, content=content, created_by=me, memory_type=kind,
            importance=importance, expires_at=expires,
        )  # fmt: skip
        added = audit_events.MemoryAdded(memory_id=kept.memory.id, scope=where, merged=kept.merged)
        await Audit(store=store).record(GLOBAL, added, actor=me)
        replaced = f", replacing {kept.replaced.id}" if kept.replaced else ""
        out.print(f"remembered as {kept.memory.id} in {where}{replaced}")
        return 0

    _with_memory(env_file, work, embeds=True)


@memory_app.command("search")
def search(
    query: Annotated[str, typer.Argument(help="What to look for.")],
    scope: Scope = None,
    limit: Annotated[int, typer.Option("-k", "--limit", min=1, max=100)] = 10,
    env_file: EnvFile = Path(".env"),
) -> None:
    """The memories most relevant to QUERY (every scope unless --scope is given)."""
    where = _checked_scope(scope)

    async def work(store: Store, memory: LongTermMemory) -> int:
        scopes = [where] if where else list(await store.memory_counts())
        found = await memory.recall(scopes=scopes, query=query, k=limit)
        table = Table(title=f"memories: {query}")
        table.add_column("id", no_wrap=True)
        for name in ("scope", "type", "age", "score"):
            table.add_column(name)
        table.add_column("content", overflow="fold")
        now = memory.clock.now()
        for hit in found:
            m = hit.memory
            table.add_row(m.id, m.scope, m.memory_type.value, describe_age(m.created_at, now),
                          f"{hit.score:.2f}", Text(visible(m.content)))  # fmt: skip
        out.print(table if found else "nothing relevant remembered")
        return 0

    _with_memory(env_file, work, embeds=True)


@memory_app.command("forget")
def forget(
    memory_id: Annotated[str, typer.Argument(help="The memory to forget (mem_...).")],
    env_file: EnvFile = Path(".env"),
) -> None:
    """Forget one memory, everywhere."""

    async def work(store: Store, memory: LongTermMemory) -> int:
        gone = await memory.forget(memory_id)
        if gone is None:
            err.print(f"airlock memory: there is no memory {memory_id}")
            return 1
        forgotten = audit_events.MemoryForgotten(memory_id=memory_id, scope=gone.scope)
        await Audit(store=store).record(GLOBAL, forgotten, actor=local_identity())
        out.print(Text(f"forgot {memory_id} ({gone.scope}): {visible(_short(gone.content))}"))
        return 0

    _with_memory(env_file, work)


@memory_app.command("stats")
def stats(env_file: EnvFile = Path(".env")) -> None:
    """Memories per scope, by type, with expired ones counted."""

    async def work(store: Store, memory: LongTermMemory) -> int:
        table = Table("scope", "memories", "episodic", "semantic", "procedural", "expired",
                      title="long-term memory")  # fmt: skip
        now = memory.clock.now()
        total = 0
        for scope in await store.memory_counts():
            records = await store.list_memories(scope, limit=10_000_000)
            kinds = [m.memory_type for m in records]
            expired = sum(m.expired(now) for m in records)
            table.add_row(scope, str(len(records)), *(str(kinds.count(t)) for t in MemoryType),
                          str(expired))  # fmt: skip
            total += len(records)
        out.print(table if total else "no memories yet")
        return 0

    _with_memory(env_file, work)


@memory_app.command("rebuild")
def rebuild(scope: Scope = None, env_file: EnvFile = Path(".env")) -> None:
    """Rebuild the vector indexes from the store (all scopes unless --scope is given)."""
    where = _checked_scope(scope)

    async def work(store: Store, memory: LongTermMemory) -> int:
        sizes = await memory.rebuild(where)
        for name, size in sizes.items():
            out.print(f"{name}: {size} vectors ({memory.index_kind(name)})")
        if not sizes:
            out.print("no memories to index")
        return 0

    _with_memory(env_file, work, embeds=True)


def _short(text: str) -> str:
    """A memory's text on one line, cut with a marker of how much was cut."""
    return cut(text.replace("\n", " "), 160)
