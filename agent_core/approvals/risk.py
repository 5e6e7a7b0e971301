"""The risk of one tool call: the one computation the executor and the decision path share.

A call's risk is the highest of: the tool's base risk (``AIRLOCK_TOOL_RISKS`` sets it, up or
down), what its arguments imply (``rm -rf`` is CRITICAL), HIGH for a secret-looking value in
its arguments, and HIGH for sending data to a host not on the egress allow-list once the run
has read private data. Nothing a model or a tool says reaches any of these.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from agent_core.config import Settings
from agent_core.logs import redact
from agent_core.models import RiskLevel
from agent_core.tools import Tool

__all__ = ["CallRisk", "RiskPolicy", "RiskReason", "contains_secret", "host_allowed"]


class RiskReason(StrEnum):
    """Why a call is riskier than its tool's base risk."""

    ARGUMENTS = "arguments"
    """What the arguments do (a destructive command, a method that changes things)."""
    SECRET = "secret"
    """A secret-looking value is among the arguments."""
    EGRESS = "egress"
    """It sends data to a host not on the egress allow-list after private data was read."""


_UNFORESEEABLE = frozenset({RiskReason.SECRET, RiskReason.EGRESS})
"""Reasons that make a call never grantable: a grant must not cover the next exfiltration."""


@dataclass(kw_only=True, frozen=True)
class CallRisk:
    """The risk of one call, and whether approve-for-this-run may be offered for it."""

    level: RiskLevel
    """Decides the gate."""
    grantable: bool
    """Whether a person's approve-for-this-run may cover (or be given on) this call."""
    reasons: tuple[RiskReason, ...] = ()
    """The rules that apply beyond the base risk (a secret or egress even where the base is
    as high already: they still rule out a grant)."""


def contains_secret(text: str) -> bool:
    """Whether ``text`` holds something the secret redaction would mask."""
    return redact(text) != text


def host_allowed(host: str, patterns: Iterable[str]) -> bool:
    """Whether ``host`` matches an exact host or a ``*.suffix`` pattern of ``patterns``.

    ``*.example.com`` matches ``api.example.com`` and ``a.b.example.com``, not
    ``example.com`` itself. ``"*"`` (a host that cannot be told) matches nothing.
    """
    name = normalise_host(host)
    if not name or name == "*":
        return False
    for pattern in (normalise_host(p) for p in patterns):
        if pattern.startswith("*."):
            if name.endswith(pattern[1:]):
                return True
        elif name == pattern:
            return True
    return False


def normalise_host(host: str) -> str:
    """A host name as compared: lower case, no brackets, no trailing dot."""
    return host.strip().strip("[]").lower().rstrip(".")


@dataclass(kw_only=True, frozen=True)
class RiskPolicy:
    """Works out the risk of tool calls from code, settings and the run's state."""

    overrides: Mapping[str, RiskLevel] = field(default_factory=dict)
    """Base risk by tool name (AIRLOCK_TOOL_RISKS), up or down; escalation still applies."""
    egress_allowed_hosts: tuple[str, ...] = ()
    """Hosts (exact or ``*.suffix``) that may receive data after a private read."""

    @classmethod
    def from_settings(cls, settings: Settings) -> RiskPolicy:
        """The policy the settings describe."""
        return cls(
            overrides=dict(settings.tool_risks),
            egress_allowed_hosts=tuple(settings.egress_allowed_hosts),
        )

    def base(self, tool: Tool) -> RiskLevel:
        """The base risk of ``tool``: the configured one, else the tool's own."""
        return self.overrides.get(tool.name, tool.risk)

    def assess(self, tool: Tool, arguments: dict[str, Any], *, private_data_read: bool) -> CallRisk:
        """The risk of calling ``tool`` with ``arguments`` in a run that has (or has not)
        read private data. The one computation of a call's risk, for calls and edits alike."""
        base = self.base(tool)
        raised: list[tuple[RiskLevel, RiskReason]] = []
        implied = tool.risk_for(arguments) if tool.risk_for is not None else None
        if implied is not None and implied.rank > base.rank:
            raised.append((implied, RiskReason.ARGUMENTS))
        if _has_secret(arguments):
            raised.append((RiskLevel.HIGH, RiskReason.SECRET))
        # A tool that reads private data sends what it read in the same call.
        private = private_data_read or tool.reads_private_data
        if private and self._sends_out(tool, arguments):
            raised.append((RiskLevel.HIGH, RiskReason.EGRESS))
        reasons = tuple(why for _, why in raised)
        level = RiskLevel.highest([base, *(level for level, _ in raised)])
        return CallRisk(
            level=level, reasons=reasons, grantable=self._grantable(tool, arguments, level, reasons)
        )

    def _sends_out(self, tool: Tool, arguments: dict[str, Any]) -> bool:
        if tool.destinations is None:
            return False
        hosts = tool.destinations(arguments)
        return any(not host_allowed(host, self.egress_allowed_hosts) for host in hosts)

    @staticmethod
    def _grantable(
        tool: Tool, arguments: dict[str, Any], level: RiskLevel, reasons: tuple[RiskReason, ...]
    ) -> bool:
        if not tool.grantable or level is RiskLevel.CRITICAL or _UNFORESEEABLE & set(reasons):
            return False
        return tool.grantable_for is None or tool.grantable_for(arguments)


def _has_secret(value: Any) -> bool:
    """Whether any key or string in a JSON-like value looks like a secret."""
    if isinstance(value, str):
        return contains_secret(value)
    if isinstance(value, dict):
        return any(_has_secret(str(k)) or _has_secret(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(_has_secret(v) for v in value)
    return False
