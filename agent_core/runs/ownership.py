"""Who may work on a run now: the hold a process checks before anything with side effects.

Every process that works on a run holds a lease on it (:mod:`agent_core.runs.claims`): a
worker of a Redis deployment, `airlock serve` on SQLite, a terminal's `airlock run`. When the
lease runs out (the process paused, or lost its store for longer than a lease) another
process takes the run over, and the old one must neither run a tool nor write the run again.
The orchestrator checks the hold before every tool call, and the store's version check
refuses its writes once the new owner has saved the run.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Protocol

from agent_core.store.base import Lease

__all__ = ["Ownership"]


class Ownership(Protocol):
    """A process's hold on one run."""

    @property
    def owner(self) -> str:
        """The process holding the run, as shown in the audit trail."""
        ...

    async def check(self) -> None:
        """Raise :class:`~agent_core.errors.OwnershipLost` unless the hold is still ours."""
        ...

    def letting_go(self) -> AbstractContextManager[Lease | None]:
        """Around the save after which the run needs no process (it parks, or ends): the
        lease that save lets go of in its own write, or None to let go of it afterwards as
        ever. The hold is let go if the block ends without an exception (the save landed)."""
        ...
