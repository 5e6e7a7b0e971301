"""Checking one audit trail: what ``airlock audit verify`` finds in it, and how it knows.

Each event's seal must hold for its run and its number; a seal that holds for another
number means the event was renumbered, one that holds for none that it was edited, or
the trail rewritten without the key. Numbers missing between the first kept event and
the last one the trail's head counts were deleted; events stored out of number order
were reordered. The head must hold its own seal, so cutting a tail off and rewriting
the head to match needs the key. (Whole trails deleted, head and all, are found by the
anchor's count: :func:`agent_core.audit.verify_store`.)

What cannot be proven is said as a warning: trails from before keys (legacy, unkeyed)
can be rewritten or cut short without a trace; only their edits and gaps show.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

from agent_core.audit.chain import (
    UNKEYED,
    AuditAnchor,
    AuditHead,
    AuditKey,
    AuditTrail,
    sealed_at,
    sealing,
)
from agent_core.models import AuditEvent

__all__ = ["Finding", "TrailReport", "check_trail", "problem", "ranges"]

_RENUMBER_REACH = 32
"""How far from its stored number an event's seal is tried, to tell renumbered from edited."""


@dataclass(kw_only=True, frozen=True)
class Finding:
    """Something wrong with the trails (a problem), or something they cannot prove (a warning)."""

    subject: str | None
    """The trail (run id) it is about; None for the store as a whole."""
    text: str
    seq: int = 0
    """The first event it is about; 0 for the trail as a whole."""
    problem: bool = True
    tag: str = ""
    """What kind of finding, for grouping: ``edited``, ``missing``, ``unkeyed``."""

    def line(self) -> str:
        """The finding for a person: ``✗ run_…: event 3 (…) was edited …``."""
        mark = "✗" if self.problem else "⚠"
        return f"{mark} {self.subject}: {self.text}" if self.subject else f"{mark} {self.text}"


def problem(subject: str | None, text: str, *, seq: int = 0, tag: str = "") -> Finding:
    """A finding that breaks the trail."""
    return Finding(subject=subject, text=text, seq=seq, tag=tag)


def _warning(subject: str, text: str, *, tag: str = "") -> Finding:
    return Finding(subject=subject, text=text, problem=False, tag=tag)


@dataclass(kw_only=True)
class TrailReport:
    """What was found in one trail."""

    run_id: str
    events: int
    head: AuditHead | None
    """The trail's head, when its seal holds (or it is unkeyed, or unchecked)."""
    findings: list[Finding] = field(default_factory=list)

    @property
    def broken(self) -> bool:
        """Whether anything is wrong (warnings alone are not)."""
        return any(finding.problem for finding in self.findings)

    @property
    def unkeyed(self) -> bool:
        """Whether (part of) the trail is sealed without a key."""
        return any(finding.tag == "unkeyed" for finding in self.findings)


def check_trail(
    trail: AuditTrail,
    key: AuditKey | None,
    *,
    anchor: AuditAnchor | None = None,
    with_head: bool = True,
) -> TrailReport:
    """Check one trail against its head and ``key`` (None: seals made with a key unchecked).

    ``anchor``, when it is sealed with ``key``, tells when and from which trail on trails
    were sealed: an unsealed head numbered after that, or unsealed events without a head
    dated after it, were forged. ``with_head=False`` checks the events alone.
    """
    if anchor is not None and sealing(anchor, key) != "keyed":
        anchor = None
    run_id = trail.run_id
    findings = [
        problem(run_id, f"{what} is unreadable: it was not written by airlock")
        for what in trail.unreadable
    ]
    head = _trusted_head(trail, key, findings, anchor)
    if with_head and trail.head is None and trail.events and "its head" not in trail.unreadable:
        findings += _headless(run_id, trail.events, None if anchor is None else anchor.since)
    findings += _Walk(run_id=run_id, head=head, key=key, events=trail.events).findings()
    return TrailReport(run_id=run_id, events=len(trail.events), head=head,
                       findings=_grouped(findings))  # fmt: skip


def _trusted_head(
    trail: AuditTrail, key: AuditKey | None, findings: list[Finding], anchor: AuditAnchor | None
) -> AuditHead | None:
    head, run_id = trail.head, trail.run_id
    if head is None:
        return None
    if head.run_id != run_id:
        findings.append(problem(run_id, f"its head is run {head.run_id}'s: it was copied here"))
        return None
    match sealing(head, key):
        case "keyed":
            return head
        case "unkeyed" if anchor is not None and 0 < anchor.keyed_from <= head.ordinal:
            findings.append(problem(run_id, f"its head is unsealed, though it is trail"
                                    f" #{head.ordinal} and trails are sealed from"
                                    f" #{anchor.keyed_from} on: it was rewritten without the"
                                    " key"))  # fmt: skip
        case "unkeyed":
            findings.append(_warning(run_id, "it was written without an audit key (unkeyed): its"
                                     " seals prove nothing against someone who can write the"
                                     " store", tag="unkeyed"))  # fmt: skip
            return head
        case "unchecked":
            findings.append(_warning(run_id, "its seals are not checked: no audit key"))
            return head
        case "forged":
            findings.append(problem(run_id, "its head was edited or forged: its seal does not"
                                    " match"))  # fmt: skip
        case "other key":
            findings.append(problem(run_id, f"its head is sealed with another key"
                                    f" ({head.key_id}; {_key_name(key)})"))  # fmt: skip
    return None


def _key_name(key: AuditKey | None) -> str:
    return "no key is set" if key is None else f"AIRLOCK_AUDIT_KEY is {key.id}"


def _headless(run_id: str, events: list[AuditEvent], since: datetime | None) -> list[Finding]:
    """A trail with events but no head: from before heads existed, or its head was deleted."""
    if any(event.key_id for event in events):
        return [problem(run_id, "its events are sealed, but its head is missing (deleted)")]
    found = [_warning(run_id, f"{len(events)} events from before the trail was keyed (legacy,"
                      " unkeyed): edits and gaps are checked, but a rewritten or cut-short trail"
                      " cannot be told", tag="unkeyed")]  # fmt: skip
    late = [event for event in events if since is not None and _utc(event.at) >= since]
    if late and since is not None:
        more = f"; so are {len(late) - 1} more" if len(late) > 1 else ""
        found.append(problem(run_id, f"{_name(late[0])} is unsealed, yet dated after trails were"
                             f" first sealed ({since:%Y-%m-%d %H:%M:%S} UTC): it was written"
                             f" without the key{more}", seq=late[0].seq))  # fmt: skip
    return found


def _utc(at: datetime) -> datetime:
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def _name(event: AuditEvent, seq: int | None = None) -> str:
    return f"event {event.seq if seq is None else seq} ({event.id}, {event.kind})"


@dataclass(kw_only=True)
class _Walk:
    """One pass over a trail's events as stored, placing each at the number it was sealed as."""

    run_id: str
    head: AuditHead | None
    key: AuditKey | None
    events: list[AuditEvent]
    found: list[Finding] = field(default_factory=list)

    def findings(self) -> list[Finding]:
        head = self.head
        first = head.purged + 1 if head is not None else 1
        last = head.count if head is not None else max((e.seq for e in self.events), default=0)
        reach = min(_RENUMBER_REACH, max(0, last - first + 1 - len(self.events)) + 1)
        placed, spoiled = self._place(reach)
        self._order(placed)
        by_seq = self._unique(placed)
        self._links(by_seq, first)
        self._missing(set(by_seq) | spoiled, first, last)
        if head is not None:
            self._against_head(by_seq, head)
        return self.found

    def _add(self, text: str, *, seq: int, tag: str = "") -> None:
        self.found.append(problem(self.run_id, text, seq=seq, tag=tag))

    def _place(self, reach: int) -> tuple[list[tuple[int, AuditEvent]], set[int]]:
        head = self.head
        unkeyed_upto = head.legacy if head is not None and head.key_id else None
        placed: list[tuple[int, AuditEvent]] = []
        spoiled: set[int] = set()
        for event in self.events:
            if event.run_id != self.run_id:
                verdict: int | str = f"belongs to run {event.run_id}: it was moved here"
            else:
                verdict = _authentic(event, self.key, unkeyed_upto, reach)
            if isinstance(verdict, str):
                self._add(f"{_name(event)} {verdict}", seq=event.seq, tag="edited")
                spoiled.add(event.seq)
                continue
            if verdict != event.seq:
                self._add(f"the event stored as {event.seq} ({event.id}, {event.kind}) was"
                          f" written as event {verdict}: renumbered", seq=event.seq,
                          tag="renumbered")  # fmt: skip
            placed.append((verdict, event))
        return placed, spoiled

    def _order(self, placed: list[tuple[int, AuditEvent]]) -> None:
        for (a, event), (b, _) in itertools.pairwise(placed):
            if a > b:
                self._add(f"{_name(event, a)} is out of order: stored before event {b}", seq=a)

    def _unique(self, placed: list[tuple[int, AuditEvent]]) -> dict[int, AuditEvent]:
        by_seq: dict[int, AuditEvent] = {}
        for seq, event in placed:
            if seq in by_seq:
                self._add(f"{_name(event, seq)} is stored twice", seq=seq)
            else:
                by_seq[seq] = event
        return by_seq

    def _links(self, by_seq: dict[int, AuditEvent], first: int) -> None:
        """Each event follows the one before it (its seal covers that event's seal)."""
        purge = self.head is not None and self.head.purged > 0
        for seq, event in sorted(by_seq.items()):
            if seq == first:
                expected: str | None = self.head.purged_hash if self.head and purge else ""
                after = "the purged events" if purge else "nothing"
            else:
                before = by_seq.get(seq - 1)
                expected, after = (None if before is None else before.hash), f"event {seq - 1}"
            if expected is not None and event.prev_hash != expected:
                self._add(f"event {seq} ({event.id}) does not follow {after}: one of them was"
                          " changed", seq=seq)  # fmt: skip

    def _missing(self, present: set[int], first: int, last: int) -> None:
        gaps = [seq for seq in range(first, last + 1) if seq not in present]
        for a, b in ranges(gaps):
            text = f"event {a} is missing" if a == b else f"events {a}-{b} are missing"
            text += " (deleted)" + self._tail(a, b, first, last)
            self._add(text, seq=a, tag="missing")

    def _tail(self, a: int, b: int, first: int, last: int) -> str:
        kind = self.head.last_kind if self.head is not None else ""
        if b != last or not kind:
            return ""
        if a == first:
            return f": the whole trail; its last event was {kind}"
        return f": {kind}, the last event its head counts" if a == b else f": the last was {kind}"

    def _against_head(self, by_seq: dict[int, AuditEvent], head: AuditHead) -> None:
        for seq, event in sorted(by_seq.items()):
            if seq > head.count:
                self._add(f"{_name(event, seq)} is not counted by its head: the head was put"
                          " back from an older copy", seq=seq)  # fmt: skip
            elif seq <= head.purged:
                self._add(f"{_name(event, seq)} was purged, yet it is stored again", seq=seq)
        newest = by_seq.get(head.count)
        if newest is not None and (newest.hash, newest.id) != (head.last_hash, head.last_id):
            self._add(f"{_name(newest)} is not the event its head ends with: one of them was"
                      " changed", seq=head.count)  # fmt: skip


def _authentic(
    event: AuditEvent, key: AuditKey | None, unkeyed_upto: int | None, reach: int
) -> int | str:
    """The number ``event`` was sealed as, or what is wrong with it."""
    if event.key_id:
        if key is None:
            return event.seq
        if event.key_id != key.id:
            return f"is sealed with another key ({event.key_id}; {_key_name(key)})"
        sealer = key
    elif unkeyed_upto is not None and event.seq > unkeyed_upto:
        return (f"is not sealed with the key, though its trail is keyed from event"
                f" {unkeyed_upto + 1} on: it was rewritten without the key")  # fmt: skip
    else:
        sealer = UNKEYED
    for seq in _nearby(event.seq, reach):
        if sealed_at(event, seq, sealer):
            return seq
    if sealer.keyed:
        return "was edited or rewritten without the key: its seal does not match"
    return "was edited: its hash does not match"


def _nearby(seq: int, reach: int) -> Iterator[int]:
    yield seq
    for distance in range(1, reach + 1):
        yield seq + distance
        if seq - distance >= 1:
            yield seq - distance


def ranges(numbers: list[int]) -> Iterator[tuple[int, int]]:
    """Runs of consecutive numbers, as (first, last)."""
    for _, run in itertools.groupby(enumerate(numbers), key=lambda pair: pair[1] - pair[0]):
        values = [number for _, number in run]
        yield values[0], values[-1]


_GROUPED = ("edited", "renumbered")


def _grouped(findings: Iterable[Finding]) -> list[Finding]:
    """In event order; a run of consecutive events edited (or renumbered) is one finding."""
    grouped: list[Finding] = []
    streaks: dict[str, tuple[int, int]] = {}  # tag -> (its finding's index, events after it)
    for finding in sorted(findings, key=lambda f: f.seq):
        open_streak = streaks.get(finding.tag)
        if open_streak is not None:
            index, after = open_streak
            if finding.seq == grouped[index].seq + after + 1:
                streaks[finding.tag] = (index, after + 1)
                continue
        if finding.tag in _GROUPED:
            streaks[finding.tag] = (len(grouped), 0)
        grouped.append(finding)
    for index, after in streaks.values():
        if after:
            first = grouped[index]
            more = "so was the event after it" if after == 1 else f"so were the {after} after it"
            grouped[index] = problem(first.subject, f"{first.text}; {more}", seq=first.seq,
                                     tag=first.tag)  # fmt: skip
    return grouped
