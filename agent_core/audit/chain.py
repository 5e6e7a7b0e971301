"""The sealed audit chain: what a store writes with every event, so none can go unnoticed.

Every event is sealed with HMAC-SHA256 under the audit key (``AIRLOCK_AUDIT_KEY``), which
is never stored with the trail; the seal covers the event's run, number and the seal of
the event before it. Each trail has a *head* (how many events it has had, the last one's
id, kind and seal), sealed too and written in the same transaction as every append, so
cutting events off the end, or emptying the trail, leaves a head that no longer matches.
An *anchor* counts the trails ever started, sealed; each head carries its number among
them (its ordinal), so a trail deleted whole, head and all, leaves a gap in the count.

Neither the store nor anyone who can write it can forge a seal without the key. Both
store backends call these pure functions inside their transactions, so they cannot
drift apart; :mod:`agent_core.audit.verify` checks what they wrote.

A store opened without a key seals with plain SHA-256 instead (:data:`UNKEYED`): that is
how trails were written before they were keyed, and what tests and throwaway stores use.
An unkeyed seal shows an accident, not an attack; ``airlock serve`` and ``worker`` do
not start without a key, and no process writes to a sealed trail without its key.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar, Literal, Self, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from agent_core.errors import AuditKeyError, AuditTampered
from agent_core.models import AuditEvent, canonical_json

__all__ = [
    "GLOBAL",
    "MIN_KEY_CHARS",
    "UNKEYED",
    "AuditAnchor",
    "AuditHead",
    "AuditKey",
    "AuditTrail",
    "HeadCache",
    "Sealing",
    "Write",
    "append_to",
    "appended",
    "needs_anchor",
    "parsed",
    "purge",
    "purged",
    "read_trail",
    "seal_event",
    "sealed_at",
    "sealing",
    "start_trail",
    "trusted",
    "unsealed_after_keying",
]

_M = TypeVar("_M", bound=BaseModel)

GLOBAL = "_global"
"""The trail for actions on no single run (halt, resume, kill all): it has no run record."""

MIN_KEY_CHARS = 32
"""The shortest audit key accepted: 32 characters (``airlock audit keygen`` makes 64)."""


class AuditKey:
    """The secret that seals the trail; :data:`UNKEYED` when there is none.

    ``id`` names the key in what is stored (an HMAC of a constant under it, so it tells
    keys apart without revealing anything); it is empty for :data:`UNKEYED`.
    """

    __slots__ = ("_prepared", "_secret", "id")

    def __init__(self, secret: bytes | None) -> None:
        self._secret = secret
        # The key schedule, done once: each seal copies it (a third of the cost of hmac.new).
        self._prepared = None if secret is None else hmac.new(secret, digestmod=hashlib.sha256)
        self.id = "" if secret is None else self._hmac(b"airlock audit key id")[:12]

    @classmethod
    def from_text(cls, text: str) -> AuditKey:
        """The key ``AIRLOCK_AUDIT_KEY`` holds (at least :data:`MIN_KEY_CHARS` characters)."""
        if len(text.strip()) < MIN_KEY_CHARS:
            raise AuditKeyError(
                f"AIRLOCK_AUDIT_KEY must be at least {MIN_KEY_CHARS} characters", key_id=""
            )
        return cls(text.strip().encode())

    @staticmethod
    def generate() -> str:
        """A new random key, as text for ``AIRLOCK_AUDIT_KEY`` (256 bits, hex)."""
        return secrets.token_hex(32)

    @property
    def keyed(self) -> bool:
        """False for :data:`UNKEYED`."""
        return self._secret is not None

    def seal(self, domain: bytes, text: str) -> str:
        """HMAC-SHA256 of ``domain`` + ``text`` under the key; unkeyed, SHA-256 of ``text``."""
        if self._secret is None:
            return hashlib.sha256(text.encode()).hexdigest()
        return self._hmac(domain + text.encode())

    def _hmac(self, data: bytes) -> str:
        assert self._prepared is not None
        mac = self._prepared.copy()
        mac.update(data)
        return mac.hexdigest()

    def __repr__(self) -> str:
        return f"AuditKey(id={self.id!r})" if self.keyed else "AuditKey(unkeyed)"


UNKEYED = AuditKey(None)
"""No key: seals are plain SHA-256 (legacy trails, tests, throwaway stores)."""


def _event_text(event: AuditEvent) -> str:
    # An unkeyed event is hashed without its (empty) key_id, exactly as before keys existed.
    exclude = {"hash"} if event.key_id else {"hash", "key_id"}
    return canonical_json(event.model_dump(mode="json", exclude=exclude))


def seal_event(event: AuditEvent, *, seq: int, prev_hash: str, key: AuditKey) -> AuditEvent:
    """``event`` as the ``seq``-th of its trail, after the event sealed ``prev_hash``."""
    sealed = event.model_copy(
        update={"seq": seq, "prev_hash": prev_hash, "hash": "", "key_id": key.id}
    )
    sealed.hash = key.seal(b"airlock audit event\n", _event_text(sealed))
    return sealed


def sealed_at(event: AuditEvent, seq: int, key: AuditKey) -> bool:
    """Whether ``event``'s seal holds for it as event ``seq`` (its own number, or another)."""
    moved = event.model_copy(update={"seq": seq})
    expected = key.seal(b"airlock audit event\n", _event_text(moved))
    return _same(expected, event.hash)


def _same(expected: str, stored: str) -> bool:
    # Bytes: compare_digest refuses str with non-ASCII characters, which a forger may store.
    return hmac.compare_digest(expected.encode(), stored.encode())


class _Sealed(BaseModel):
    model_config = ConfigDict(extra="forbid")

    key_id: str = ""
    """The key the seal is made with ("" for unkeyed)."""
    mac: str = ""
    """HMAC-SHA256 (or SHA-256, unkeyed) of everything else."""

    _domain: ClassVar[bytes] = b""

    def sealed(self, key: AuditKey, **changes: object) -> Self:
        """This record, with ``changes``, sealed under ``key``."""
        record = self.model_copy(update={**changes, "key_id": key.id, "mac": ""})
        record.mac = key.seal(self._domain, canonical_json(record._body()))
        return record

    def _body(self) -> dict[str, object]:
        return self.model_dump(mode="json", exclude={"mac"})

    def seal_holds(self, key: AuditKey) -> bool:
        """Whether the seal matches the record under ``key``."""
        return _same(key.seal(self._domain, canonical_json(self._body())), self.mac)


class AuditHead(_Sealed):
    """Where one trail ends, sealed; written with every append to it, atomically."""

    run_id: str
    ordinal: int
    """This trail's number among every trail the store has started (1, 2, ...)."""
    count: int = 0
    """How many events the trail has had: the number of its newest event."""
    last_id: str = ""
    last_hash: str = ""
    last_kind: str = ""
    legacy: int = 0
    """Events 1..legacy were written before the trail was keyed (sealed unkeyed)."""
    purged: int = 0
    """Events 1..purged were deleted by retention (``airlock audit purge``)."""
    purged_hash: str = ""
    """The seal of event ``purged``: the next event follows it."""
    purged_at: datetime | None = None

    _domain: ClassVar[bytes] = b"airlock audit head\n"


class AuditAnchor(_Sealed):
    """How many trails the store has ever started, sealed."""

    trails: int
    since: datetime
    """When the first trail sealed with this anchor's key started."""
    keyed_from: int = 0
    """The number of the first trail sealed with the key (0 while unkeyed): every head
    numbered from it on is sealed with the key, so an unsealed one was forged."""

    _domain: ClassVar[bytes] = b"airlock audit anchor\n"


class HeadCache:
    """The heads one store last wrote or checked, by the exact text that is stored.

    A head read back byte for byte as this store wrote or checked it needs neither parsing
    nor a second check of its seal: that text is what was sealed. Anything else is parsed
    and checked as usual, so a stale or poisoned entry can only miss, never vouch.
    """

    def __init__(self, size: int = 1024) -> None:
        self._heads: OrderedDict[str, tuple[str, AuditHead]] = OrderedDict()
        self._size = size

    def last(self, run_id: str) -> tuple[str, AuditHead] | None:
        """The text and head this store last wrote or checked for the trail, if any.

        To write over it only if it is still stored exactly so (a compare-and-set).
        """
        return self._heads.get(run_id)

    def known(self, run_id: str, text: str | bytes) -> AuditHead | None:
        """The head stored as ``text``, if this store wrote or checked exactly that."""
        entry = self._heads.get(run_id)
        if entry is None or entry[0] != text:
            return None
        self._heads.move_to_end(run_id)
        return entry[1]

    def remember(self, head: AuditHead, text: str) -> None:
        """``head``, checked or written by this store, is stored as ``text``."""
        self._heads[head.run_id] = (text, head)
        self._heads.move_to_end(head.run_id)
        while len(self._heads) > self._size:
            self._heads.popitem(last=False)


@dataclass(kw_only=True, frozen=True)
class AuditTrail:
    """One trail as read in one transaction: its head (if any) and its events, as stored."""

    run_id: str
    head: AuditHead | None
    events: list[AuditEvent]
    unreadable: tuple[str, ...] = ()
    """What is stored but is no head or event ("its head", "the event stored in position 4")."""


def parsed(model: type[_M], raw: str | bytes, *, trail: str, what: str) -> _M:
    """``raw`` as ``model`` for a write to build on; :class:`AuditTampered` if it is not one."""
    try:
        return model.model_validate_json(raw)
    except ValidationError:
        raise AuditTampered(trail, f"{what} is unreadable: it was not written by airlock") from None


def read_trail(run_id: str, head: str | bytes | None, events: Iterable[str | bytes]) -> AuditTrail:
    """A trail from its stored JSON. What does not parse is listed, not raised: someone
    who can write the store must not be able to stop the trail from being checked."""
    unreadable: list[str] = []
    parsed_head = None
    if head is not None:
        try:
            parsed_head = AuditHead.model_validate_json(head)
        except ValidationError:
            unreadable.append("its head")
    parsed: list[AuditEvent] = []
    for position, raw in enumerate(events, start=1):
        try:
            parsed.append(AuditEvent.model_validate_json(raw))
        except ValidationError:
            unreadable.append(f"the event stored in position {position}")
    return AuditTrail(run_id=run_id, head=parsed_head, events=parsed, unreadable=tuple(unreadable))


Sealing = Literal["keyed", "unkeyed", "forged", "other key", "unchecked"]
"""How a record stands against a key: sealed by it, sealed without a key, sealed by nobody
(the seal does not match), sealed by another key, or not checkable (no key to check with).
"""


def sealing(record: _Sealed, key: AuditKey | None) -> Sealing:
    """How ``record``'s seal stands against ``key`` (None: no key to check with)."""
    if not record.key_id:
        return "unkeyed" if record.seal_holds(UNKEYED) else "forged"
    if key is None:
        return "unchecked"
    if record.key_id != key.id:
        return "other key"
    return "keyed" if record.seal_holds(key) else "forged"


def trusted(record: _Sealed, key: AuditKey, *, trail: str) -> None:
    """Raise unless ``record`` may be written over by a store holding ``key``.

    Sealed by ``key``, or sealed unkeyed (then the store seals what it writes next with its
    key): fine. A forged seal raises :class:`AuditTampered`, so no later append launders
    it; another key, or a keyed record in a store without a key, :class:`AuditKeyError`.
    """
    match sealing(record, key if key.keyed else None):
        case "keyed" | "unkeyed":
            return
        case "forged":
            raise AuditTampered(trail, "its seal does not match: it was written without the key")
        case "unchecked":
            raise AuditKeyError(
                f"AIRLOCK_AUDIT_KEY is not set, but this store's audit trail is sealed with"
                f" key {record.key_id}: set the key it was sealed with",
                key_id=record.key_id,
            )
        case "other key":
            raise AuditKeyError(
                f"AIRLOCK_AUDIT_KEY is key {key.id}, but this store's audit trail is sealed"
                f" with key {record.key_id}: every process must use the same key",
                key_id=record.key_id,
            )


def needs_anchor(head: AuditHead | None, key: AuditKey) -> bool:
    """Whether a write to the trail that ``head`` ends must read the anchor too: to start the
    trail, or to take over an unsealed head with a key (rare: a store from before keys)."""
    return head is None or (key.keyed and not head.key_id)


def unsealed_after_keying(head: AuditHead, anchor: AuditAnchor | None, key: AuditKey) -> None:
    """Raise :class:`AuditTampered` for an unsealed head numbered after trails were sealed.

    Such a head can only be a keyed trail rewritten without the key (a downgrade), so a
    store with the key must not take it over; ``anchor`` is read when
    :func:`needs_anchor` says so.
    """
    if not key.keyed or head.key_id or anchor is None or sealing(anchor, key) != "keyed":
        return
    if anchor.keyed_from and head.ordinal >= anchor.keyed_from:
        raise AuditTampered(head.run_id, _DOWNGRADED)


_DOWNGRADED = (
    "its head is unsealed, though it was started after trails were sealed:"
    " it was rewritten without the key"
)


def _taken_over(anchor: AuditAnchor | None, key: AuditKey, now: datetime) -> AuditAnchor | None:
    """An unkeyed anchor sealed by a store taking an unsealed trail over; None if no change."""
    if anchor is None or anchor.key_id:
        return None
    keyed_from = anchor.trails + 1
    return AuditAnchor(trails=anchor.trails, since=now, keyed_from=keyed_from).sealed(key)


def start_trail(
    run_id: str,
    *,
    anchor: AuditAnchor | None,
    last: AuditEvent | None,
    key: AuditKey,
    now: datetime,
) -> tuple[AuditHead, AuditAnchor]:
    """The head of a trail that has none yet, and the anchor that counts it.

    ``last`` is the trail's newest event when it has events from before heads existed:
    they become its unkeyed (legacy) prefix. Sealed events without a head mean the head
    was deleted: :class:`AuditTampered`, rather than a new head that would hide it.
    """
    if anchor is not None:
        trusted(anchor, key, trail="the anchor")
    if last is not None and last.key_id:
        raise AuditTampered(run_id, "its events are sealed but its head is gone")
    ordinal = (anchor.trails if anchor is not None else 0) + 1
    if anchor is not None and anchor.key_id == key.id:
        since, keyed_from = anchor.since, anchor.keyed_from
    else:  # the first anchor, or an unkeyed one that a store with a key takes over
        since, keyed_from = now, ordinal if key.keyed else 0
    counted = AuditAnchor(trails=ordinal, since=since, keyed_from=keyed_from).sealed(key)
    count = 0 if last is None else last.seq
    # Not sealed yet: append_to or purged seals it with what the trail becomes.
    head = AuditHead(
        run_id=run_id,
        ordinal=ordinal,
        count=count,
        legacy=count,
        last_id="" if last is None else last.id,
        last_hash="" if last is None else last.hash,
        last_kind="" if last is None else last.kind,
    )
    return head, counted


def append_to(head: AuditHead, event: AuditEvent, key: AuditKey) -> tuple[AuditEvent, AuditHead]:
    """``event`` sealed as the next of the trail ``head`` ends, and the trail's new head.

    Check ``head`` with :func:`trusted` first. An unkeyed head written over by a keyed
    store keeps its events as the trail's unkeyed prefix.
    """
    legacy = head.legacy if head.key_id == key.id else head.count
    sealed = seal_event(event, seq=head.count + 1, prev_hash=head.last_hash, key=key)
    moved = head.sealed(
        key, count=sealed.seq, last_id=sealed.id, last_hash=sealed.hash, last_kind=sealed.kind,
        legacy=legacy,
    )  # fmt: skip
    return sealed, moved


def purged(head: AuditHead, key: AuditKey, *, now: datetime) -> AuditHead:
    """The tombstone ``head`` becomes when retention deletes every event it counts."""
    legacy = head.legacy if head.key_id == key.id else head.count
    return head.sealed(
        key, purged=head.count, purged_hash=head.last_hash, purged_at=now, legacy=legacy
    )


@dataclass(kw_only=True, frozen=True)
class Write:
    """What one append or purge writes, in one transaction."""

    head: AuditHead
    anchor: AuditAnchor | None = None
    """The anchor, when this write started the trail (and so counted it)."""
    event: AuditEvent | None = None
    """The sealed event, for an append."""


def appended(
    event: AuditEvent,
    *,
    head: AuditHead | None,
    anchor: AuditAnchor | None,
    last: AuditEvent | None,
    key: AuditKey,
    now: datetime,
    checked: bool = False,
) -> Write | None:
    """What appending ``event`` writes; None when it is the trail's newest event already.

    A store reads ``last`` (the newest stored event) only for a trail that has no ``head``,
    and ``anchor`` when :func:`needs_anchor` says so; ``checked`` when ``head`` is one its
    :class:`HeadCache` vouches for. None is retried appends' answer, so appending stays
    idempotent.
    """
    if head is None:
        # The anchor dates from the first event, if that is earlier: a trail's first event
        # is made before it is appended.
        aware = event.at.tzinfo is not None and now.tzinfo is not None
        first_at = event.at if aware and event.at < now else now
        head, anchor = start_trail(event.run_id, anchor=anchor, last=last, key=key, now=first_at)
    else:
        if not checked:
            trusted(head, key, trail=event.run_id)
            unsealed_after_keying(head, anchor, key)
        if head.last_id == event.id:
            return None
        anchor = _taken_over(anchor, key, now) if needs_anchor(head, key) else None
    sealed, moved = append_to(head, event, key)
    return Write(head=moved, anchor=anchor, event=sealed)


def purge(
    run_id: str,
    *,
    head: AuditHead | None,
    anchor: AuditAnchor | None,
    last: AuditEvent | None,
    key: AuditKey,
    now: datetime,
) -> Write | None:
    """What purging the trail writes (its tombstone); None when there is nothing to purge."""
    if head is None:
        if last is None:
            return None
        head, anchor = start_trail(run_id, anchor=anchor, last=last, key=key, now=now)
    else:
        trusted(head, key, trail=run_id)
        unsealed_after_keying(head, anchor, key)
        if head.purged == head.count:
            return None
        anchor = _taken_over(anchor, key, now) if needs_anchor(head, key) else None
    return Write(head=purged(head, key, now=now), anchor=anchor)
