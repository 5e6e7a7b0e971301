"""The MCP config file: which stdio servers to start, how, and how risky their tools are."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from agent_core.errors import ConfigError
from agent_core.models import RiskLevel
from agent_core.secrets import register_secrets, secret_name

_UNSAFE = re.compile(r"[^a-zA-Z0-9_-]")
_MAX_NAME = 64

ServerName = Annotated[str, StringConstraints(pattern=r"^[a-zA-Z0-9_-]{1,32}$")]
"""A server's name: it prefixes its tools' names, so it must fit their pattern."""


class McpServerConfig(BaseModel):
    """How to start one MCP stdio server and how risky its tools are."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    command: str = Field(min_length=1)
    """The executable that runs the server."""
    args: list[str] = Field(default_factory=list)
    """Its arguments."""
    env: dict[str, str] = Field(default_factory=dict)
    """Extra environment; the server otherwise gets only HOME, PATH, SHELL, TERM, USER, LOGNAME."""
    cwd: Path | None = None
    """Its working folder; None for ours."""
    default_risk: RiskLevel = RiskLevel.HIGH
    """The risk of every tool not named in ``risks``."""
    risks: dict[str, RiskLevel] = Field(default_factory=dict)
    """Risk by the server's own tool name (``read_file``, not ``fs__read_file``)."""
    grantable: bool = False
    """Whether approve-for-this-run may be offered for its tools' calls (only when a person
    who saw one call can foresee what the next ones do)."""
    reads_private_data: bool = True
    """Whether its tools' output may hold private data: once a run called one, outbound calls
    to hosts not on the egress allow-list need a person. Set false only for servers that
    return nothing private."""
    timeout_seconds: float = Field(default=30.0, gt=0)
    """Deadline of one tool call; on expiry the call fails with ToolTimeout and is cancelled."""
    start_timeout_seconds: float = Field(default=30.0, gt=0)
    """Deadline of each start-up request (initialize, list tools); on expiry the server failed."""
    tools_ttl_seconds: float = Field(default=300.0, gt=0)
    """How long its tool list is trusted; then it is listed again and tools come and go."""


class McpConfig(BaseModel):
    """The MCP config file: ``{"servers": {"<name>": {...}}}``."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    servers: dict[ServerName, McpServerConfig]
    """Servers by name."""


def load_mcp_config(path: Path) -> McpConfig:
    """Read and validate the JSON file at ``path``; ConfigError has one line per problem."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError([f"{path}: cannot read the MCP config: {error}"]) from None
    try:
        config = McpConfig.model_validate_json(text)
    except ValidationError as error:
        raise ConfigError([_problem(path, problem) for problem in error.errors()]) from None
    # A server's credentials (GITHUB_TOKEN in its env) are airlock's secrets too.
    register_secrets(*(value for server in config.servers.values()
                       for name, value in server.env.items() if secret_name(name)))  # fmt: skip
    return config


def _problem(path: Path, problem: Any) -> str:
    where = ".".join(str(part) for part in problem["loc"])
    return f"{path}: {where + ': ' if where else ''}{problem['msg']}"


def public_name(server: str, tool: str) -> str:
    """The name the model sees for ``tool`` of ``server``: ``server__tool``.

    A name that does not fit ``^[a-zA-Z0-9_-]{1,64}$`` is cleaned and gets a short digest of
    the original, so two different tools never end up with the same name.
    """
    wanted = f"{server}__{tool}"
    cleaned = _UNSAFE.sub("_", wanted)
    if cleaned == wanted and len(wanted) <= _MAX_NAME:
        return wanted
    digest = hashlib.sha256(wanted.encode()).hexdigest()[:8]
    return f"{cleaned[: _MAX_NAME - 9]}_{digest}"
