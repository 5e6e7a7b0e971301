"""The line of runs waiting for a free slot: at most ``limit`` runs work at once in a process.

A run joins when it is submitted (new, recovered, or resumed after a decision) and leaves
when its task ends, which is when it finishes or parks for a person: a parked run holds no
slot. First come, first served.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

__all__ = ["RunQueue"]


@dataclass(kw_only=True)
class RunQueue:
    """Which runs may work now, and the order of those waiting for a slot."""

    limit: int = 0
    """Most runs working at once; 0 for no limit."""
    working: set[str] = field(default_factory=set)
    """Runs holding a slot."""
    waiting: dict[str, asyncio.Event] = field(default_factory=dict)
    """Runs in line, oldest first; each one's event is set when the line moves."""

    def join(self, run_id: str) -> None:
        """Put ``run_id`` in line; it takes a slot at once if one is free and nobody waits."""
        if run_id not in self.working and run_id not in self.waiting:
            self.waiting[run_id] = asyncio.Event()
            self._advance()

    def place(self, run_id: str) -> int:
        """The place of ``run_id`` in line, 1 being next; 0 when it is not waiting."""
        for place, waiting in enumerate(self.waiting, start=1):
            if waiting == run_id:
                return place
        return 0

    async def moved(self, run_id: str) -> None:
        """Until the line moves, so the place of ``run_id`` may have changed."""
        event = self.waiting.get(run_id)
        if event is not None:
            await event.wait()
            event.clear()

    def leave(self, run_id: str) -> None:
        """``run_id`` stops working or waiting; whoever is next takes the free slot."""
        self.working.discard(run_id)
        if self.waiting.pop(run_id, None) is not None:
            self._moved()
        self._advance()

    def _advance(self) -> None:
        admitted = False
        while self.waiting and (self.limit == 0 or len(self.working) < self.limit):
            run_id = next(iter(self.waiting))
            self.waiting.pop(run_id).set()
            self.working.add(run_id)
            admitted = True
        if admitted:
            self._moved()

    def _moved(self) -> None:
        for event in self.waiting.values():
            event.set()
