"""An MCP tool result as the text the model reads."""

from __future__ import annotations

import json
from typing import assert_never

import mcp.types as types


def result_text(result: types.CallToolResult) -> str:
    """Every content block as text, one per line; the structured content if there is none."""
    parts = [_block_text(block) for block in result.content]
    if not parts and result.structured_content is not None:
        parts.append(json.dumps(result.structured_content, ensure_ascii=False))
    return "\n".join(parts)


def _block_text(block: types.ContentBlock) -> str:
    if isinstance(block, types.TextContent):
        return block.text
    if isinstance(block, types.ImageContent | types.AudioContent):
        return f"[{block.type}: {block.mime_type}, {len(block.data)} base64 characters]"
    if isinstance(block, types.ResourceLink):
        return f"[resource link: {block.uri}]"
    if isinstance(block, types.EmbeddedResource):
        inner = block.resource
        if isinstance(inner, types.TextResourceContents):
            return inner.text
        return f"[resource: {inner.uri}, {inner.mime_type or 'binary'}]"
    assert_never(block)
