"""The last version of each run's record and checkpoint found to hold no secret.

A run is saved after every model turn and tool call, each time whole, and each time it has
to be masked whole (:func:`~agent_core.store.base.masked_run`,
:func:`~agent_core.store.base.masked_checkpoint`). Most of it is what was saved the time
before: a conversation with one message more, a record with a new version and spend. Given
the last version that held nothing to mask, the parts equal to it are compared (in C)
instead of walked again (see :func:`~agent_core.secrets.redact_value_or_same`'s ``clean``);
the answer is the same.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from typing import Any

from agent_core.secrets import generation, redact_value_or_same

__all__ = ["CleanValues"]


class CleanValues:
    """Per key, the last value :func:`redact_value_or_same` gave back as it was.

    Bounded by ``entries`` and by ``size`` (the caller's measure of each value, such as
    its length as JSON; parsed, a value takes a few times that): the oldest go first. A
    value is used only while no secret was registered since it was checked. Used on one
    thread (a store's event loop).
    """

    def __init__(self, *, entries: int = 32, size: int = 4_000_000) -> None:
        self._values: OrderedDict[Hashable, tuple[int, int, Any]] = OrderedDict()
        self._entries = entries
        self._size = size
        self._used = 0

    def masked(self, key: Hashable, value: Any, *, size: int = 0) -> Any:
        """``redact_value_or_same(value)``; ``value`` is kept as the next comparison for
        ``key`` when it held nothing to mask (it must not be changed afterwards)."""
        current = generation()  # before the walk: a secret registered during it is seen
        kept = self._values.get(key)
        if kept is not None and kept[0] == current:
            masked = redact_value_or_same(value, clean=kept[2])
        else:
            masked = redact_value_or_same(value)
        if masked is value and size <= self._size:
            self._keep(key, (current, size, value))
        return masked

    def _keep(self, key: Hashable, entry: tuple[int, int, Any]) -> None:
        old = self._values.pop(key, None)
        if old is not None:
            self._used -= old[1]
        self._values[key] = entry
        self._used += entry[1]
        while len(self._values) > self._entries or self._used > self._size:
            self._used -= self._values.popitem(last=False)[1][1]
