"""The exceptions airlock raises.

Every error derives from :class:`AirlockError`::

    AirlockError
    ├── ConfigError                 settings missing or invalid
    │   └── AuditKeyError           no audit key, or not the one the trail is sealed with
    ├── StoreError                  the Store could not do what was asked
    │   ├── AuditTampered           a trail's head or the anchor fails its seal: nothing appended
    │   ├── NotFound                no record with that id
    │   ├── AlreadyExists           a record with that id exists already
    │   ├── IllegalTransition       a run status change the state machine forbids
    │   └── VersionConflict         optimistic write lost: someone saved the record first
    ├── OwnershipLost               another worker took the run over: stop, write nothing
    ├── ApprovalError               a decision that cannot apply to this approval
    │   ├── InvalidDecision         e.g. editing the arguments of a plan approval
    │   └── ApprovalNotUsable       not approved, consumed already, or for other arguments
    ├── LLMError                    a model call failed for good (after retries and fallback)
    ├── PlanError                   no valid plan after the allowed retries
    ├── ToolError                   a tool could not do what was asked
    │   ├── ToolTimeout             it ran past its deadline
    │   └── ToolRefused             policy refused the call (address, path, ...)
    ├── StandInError                a local stand-in was used wrongly (tests and demos)
    └── IndexCorrupt                a saved vector index file cannot be trusted
"""

from __future__ import annotations

from pathlib import Path

__all__ = [
    "AirlockError",
    "AlreadyExists",
    "ApprovalError",
    "ApprovalNotUsable",
    "AuditKeyError",
    "AuditTampered",
    "ConfigError",
    "IllegalTransition",
    "IndexCorrupt",
    "InvalidDecision",
    "LLMError",
    "NotFound",
    "OwnershipLost",
    "PlanError",
    "StandInError",
    "StoreError",
    "ToolError",
    "ToolRefused",
    "ToolTimeout",
    "VersionConflict",
]


class AirlockError(Exception):
    """Root of every exception airlock raises on purpose."""


class ConfigError(AirlockError):
    """Settings are missing or invalid; ``problems`` holds one line per problem."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))


class AuditKeyError(ConfigError):
    """The store cannot seal the audit trail: it has no key, or not the key the trail has.

    ``key_id`` is the id of the key the trail is sealed with (never the key itself).
    """

    def __init__(self, problem: str, *, key_id: str) -> None:
        self.key_id = key_id
        super().__init__([problem])


class StoreError(AirlockError):
    """The Store could not do what was asked."""


class AuditTampered(StoreError):
    """The head of ``trail`` (or the anchor) does not match its seal: written without the key.

    Nothing is appended over it, so the evidence stays for ``airlock audit verify``.
    """

    def __init__(self, trail: str, why: str) -> None:
        self.trail = trail
        self.why = why
        super().__init__(f"audit trail {trail}: {why}")


class NotFound(StoreError):
    """No record of ``kind`` with ``key`` exists."""

    def __init__(self, kind: str, key: str) -> None:
        self.kind = kind
        self.key = key
        super().__init__(f"no {kind} {key!r}")


class AlreadyExists(StoreError):
    """A record of ``kind`` with ``key`` exists already."""

    def __init__(self, kind: str, key: str) -> None:
        self.kind = kind
        self.key = key
        super().__init__(f"{kind} {key!r} exists already")


class IllegalTransition(StoreError):
    """The run state machine has no edge from ``current`` to ``target``."""

    def __init__(self, run_id: str, current: str, target: str) -> None:
        self.run_id = run_id
        self.current = current
        self.target = target
        super().__init__(f"run {run_id}: {current} -> {target} is not a legal transition")


class VersionConflict(StoreError):
    """An optimistic save of ``kind`` ``key`` lost to a newer write."""

    def __init__(self, kind: str, key: str, expected: int, actual: int) -> None:
        self.kind = kind
        self.key = key
        self.expected = expected
        self.actual = actual
        super().__init__(f"{kind} {key!r}: expected version {expected}, found {actual}")


class OwnershipLost(AirlockError):
    """This process no longer owns the run (its lease ran out, or another worker saved it).

    The run is not failed: whoever owns it now goes on with it, so this process stops
    without writing anything more.
    """

    def __init__(self, run_id: str, why: str) -> None:
        self.run_id = run_id
        super().__init__(f"run {run_id}: {why}")


class ApprovalError(AirlockError):
    """A decision that cannot apply to this approval."""


class InvalidDecision(ApprovalError):
    """The decision does not fit the approval (``reason`` says why)."""

    def __init__(self, approval_id: str, reason: str) -> None:
        self.approval_id = approval_id
        self.reason = reason
        super().__init__(f"approval {approval_id}: {reason}")


class ApprovalNotUsable(ApprovalError):
    """An approval cannot release this call; execution must not start (fail closed)."""

    def __init__(self, approval_id: str, reason: str) -> None:
        self.approval_id = approval_id
        self.reason = reason
        super().__init__(f"approval {approval_id} cannot be used: {reason}")


class LLMError(AirlockError):
    """A model call failed for good; ``reason`` says why in words fit for a person.

    ``code`` says it in one low-cardinality word for telemetry (``error.type``): the HTTP
    status (``"529"``), ``"timeout"`` or ``"connection"``; None when nothing more is known.
    """

    def __init__(self, model: str, reason: str, *, code: str | None = None) -> None:
        self.model = model
        self.reason = reason
        self.code = code
        super().__init__(f"{model}: {reason}")


class PlanError(AirlockError):
    """The planner produced no valid plan; ``errors`` are the last validation errors."""

    def __init__(self, errors: list[str]) -> None:
        self.errors = errors
        super().__init__("no valid plan: " + "; ".join(errors))


class ToolError(AirlockError):
    """A tool could not do what was asked."""

    def __init__(self, tool: str, message: str) -> None:
        self.tool = tool
        super().__init__(f"{tool}: {message}")


class ToolTimeout(ToolError):
    """``tool`` ran longer than ``timeout_seconds``."""

    def __init__(self, tool: str, timeout_seconds: float) -> None:
        self.timeout_seconds = timeout_seconds
        super().__init__(tool, f"timed out after {timeout_seconds:g} s")


class ToolRefused(ToolError):
    """Policy refused the call; ``reason`` says which rule."""

    def __init__(self, tool: str, reason: str) -> None:
        self.reason = reason
        super().__init__(tool, f"refused: {reason}")


class StandInError(AirlockError):
    """A local stand-in for an external service was misused."""


class IndexCorrupt(AirlockError):
    """The vector index file at ``path`` is unreadable; ``reason`` says what is wrong.

    The caller rebuilds the index from the store rather than trusting the file.
    """

    def __init__(self, path: Path, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"vector index {path}: {reason}")
