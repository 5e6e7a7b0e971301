"""Who may work on a run now: the hold a worker checks before anything with side effects.

In one process nothing else works on its runs and there is nothing to check. A worker of a
Redis deployment holds a lease on each run it works on; when the lease runs out (the worker
paused, or lost Redis for longer than a lease) another worker takes the run over, and the
old one must neither run a tool nor write the run again. The orchestrator checks the hold
before every tool call, and the store's version check refuses its writes once the new
owner has saved the run.
"""

from __future__ import annotations

from typing import Protocol

__all__ = ["Ownership"]


class Ownership(Protocol):
    """A process's hold on one run."""

    @property
    def owner(self) -> str:
        """The worker holding the run, as shown in the audit trail."""
        ...

    async def check(self) -> None:
        """Raise :class:`~agent_core.errors.OwnershipLost` unless the hold is still ours."""
        ...
