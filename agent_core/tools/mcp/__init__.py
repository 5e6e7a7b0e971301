"""MCP servers (stdio) as tool sources: each server's tools join the registry while it lives.

:class:`McpTools` starts every server of an :class:`McpConfig` concurrently; each
:class:`McpToolSource` runs one server process, registers its tools as ``server__tool``
with ``source="mcp:<server>"``, forwards calls, and withdraws its tools when the
process dies. Failures are reported, never raised into the caller's task.

- ``config``: the config file and the public tool names;
- ``source``: one server, its state and its failures;
- ``manager``: every server together;
- ``_end_watch`` and ``_results``: how a server's death is noticed and its results read.
"""

from agent_core.tools.mcp.config import McpConfig, McpServerConfig, load_mcp_config, public_name
from agent_core.tools.mcp.manager import McpTools
from agent_core.tools.mcp.source import McpFailure, McpServerState, McpToolSource

__all__ = [
    "McpConfig",
    "McpFailure",
    "McpServerConfig",
    "McpServerState",
    "McpToolSource",
    "McpTools",
    "load_mcp_config",
    "public_name",
]
