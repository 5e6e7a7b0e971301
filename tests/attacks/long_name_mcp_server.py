"""An MCP stdio server whose one tool has a name long enough to fill Anthropic's 64 characters
once airlock prefixes it with the server's name (``python long_name_mcp_server.py``)."""

from __future__ import annotations

from mcp.server.mcpserver import MCPServer

TOOL = "deploy_the_web_tier_to_the_production_cluster_right_now"

server = MCPServer("airlock-long-names", log_level="WARNING")


@server.tool(name=TOOL)
def deploy(target: str) -> str:
    """Pretend to deploy ``target``; returns what it was asked."""
    return f"deployed {target}"


if __name__ == "__main__":
    server.run()
