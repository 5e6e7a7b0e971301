"""Who may decide: approvers and admins (Slack user ids and user-group ids), and local operators.

Group membership is resolved through the operator channel (Slack's usergroups.users.list) and
cached for a while. People with a shell on the machine (the terminal and the CLI, identified as
``local:<login>``) are trusted as admins: they hold the store and the keys anyway.
"""

from __future__ import annotations

import getpass
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from agent_core.clock import Clock, SystemClock
from agent_core.config import Settings
from agent_core.models import Approval, RiskLevel

__all__ = ["LOCAL_PREFIX", "Authority", "local_identity"]

LOCAL_PREFIX = "local:"
"""Identities of people at this machine's keyboard."""

Resolver = Callable[[str], Awaitable[set[str]]]


def local_identity() -> str:
    """The identity of the person at this machine's keyboard: ``local:<login>``."""
    return f"{LOCAL_PREFIX}{getpass.getuser()}"


@dataclass(kw_only=True)
class Authority:
    """Answers "may this person decide this approval?" with a reason when not."""

    approvers: list[str] = field(default_factory=list)
    """User and group ids that may approve HIGH and CRITICAL actions."""
    admins: list[str] = field(default_factory=list)
    """User and group ids that may decide anything alone and kill any run."""
    allow_self_approval: bool = False
    """Whether a run's requester may approve its own HIGH and CRITICAL actions."""
    members_of: Resolver | None = None
    """Resolves a user-group id to its members."""
    cache_seconds: float = 300.0
    """How long a group's members are trusted before asking again."""
    clock: Clock = field(default_factory=SystemClock)
    _cache: dict[str, tuple[float, set[str]]] = field(default_factory=dict)

    @classmethod
    def from_settings(cls, settings: Settings, *, members_of: Resolver | None = None) -> Authority:
        """The authority the settings describe."""
        return cls(
            approvers=settings.approvers,
            admins=settings.admins,
            allow_self_approval=settings.allow_self_approval,
            members_of=members_of,
            cache_seconds=settings.group_cache_seconds,
        )

    async def is_admin(self, user: str) -> bool:
        """Whether ``user`` has admin authority."""
        return user.startswith(LOCAL_PREFIX) or await self._listed(user, self.admins)

    async def is_approver(self, user: str) -> bool:
        """Whether ``user`` is one of the configured approvers, or an admin."""
        return await self.is_admin(user) or await self._listed(user, self.approvers)

    async def refusal(self, approval: Approval, user: str) -> str | None:
        """Why ``user`` may not decide ``approval``; None when they may."""
        admin = await self.is_admin(user)
        own = user == approval.requester and approval.risk.rank >= RiskLevel.HIGH.rank
        if own and not self.allow_self_approval and not user.startswith(LOCAL_PREFIX):
            return "you asked for this run, and requesters may not approve their own risky actions"
        if admin:
            return None
        allowed = approval.approvers if approval.approvers is not None else self.approvers
        if not allowed:
            return "no approvers are configured (AIRLOCK_APPROVERS), so only admins may decide"
        if not await self._listed(user, allowed):
            return "you are not an approver for this request"
        return None

    async def _listed(self, user: str, ids: list[str]) -> bool:
        if user in ids:
            return True
        for group in (i for i in ids if i.startswith("S")):
            if user in await self._members(group):
                return True
        return False

    async def _members(self, group: str) -> set[str]:
        if self.members_of is None:
            return set()
        now = self.clock.now().timestamp()
        cached = self._cache.get(group)
        if cached is not None and now - cached[0] < self.cache_seconds:
            return cached[1]
        members = await self.members_of(group)
        self._cache[group] = (now, members)
        return members
