"""The heap of a long-running airlock process, once it has started.

A started process holds some 280,000 objects it made while starting (modules, pydantic
schemas, SDK clients) and keeps for its life. CPython's collector walks every one of them in
each full collection, which pauses the event loop for 100 to 600 ms on a busy 2-core machine:
seen as the p99 of a decision reaching its tool, and of Slack acks. Frozen, they are left out
of every collection from then on; whatever is made afterwards (runs, requests, conversations)
is collected as before.
"""

from __future__ import annotations

import gc

__all__ = ["settle_heap"]


def settle_heap() -> int:
    """Collect what starting left behind, then freeze the rest out of later collections;
    how many objects were frozen. Call once, when a process has started and before it serves."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()
